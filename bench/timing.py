"""Timing on a shared, noisy machine: implementations' repeats interleaved (A B C A B C ...), so a change of
load hits all of them, and every figure summarised as median [min-max] or as a ratio to a peer of the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable, *args):
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def interleaved(calls: dict[str, Callable], repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Run each call `repeats` times, implementations alternating; -> (seconds per call, last result per call)."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    last = {}
    for _ in range(repeats):
        for name, fn in calls.items():
            seconds, last[name] = timed(fn)
            samples[name].append(seconds)
    return samples, last


def summary(samples: list[float]) -> dict:
    """median, min, max and the raw samples."""
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
        "samples": list(samples),
    }


def paired_ratios(samples: list[float], peer: list[float]) -> dict:
    """Summary of samples[i] / peer[i]: both taken in the same round of the interleaving, under the same load."""
    return summary([a / b for a, b in zip(samples, peer)])


def timing_table(samples: dict[str, list[float]], peers=("meta", "transformers")) -> dict[str, dict]:
    """Per implementation: the summary of its seconds and its paired ratios to each peer present."""
    table = {}
    for name, values in samples.items():
        row = {"seconds": summary(values)}
        for peer in peers:
            if peer in samples:
                row[f"ratio_to_{peer}"] = paired_ratios(values, samples[peer])
        table[name] = row
    return table
