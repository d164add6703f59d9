"""Timing on a shared, noisy machine: implementations' repeats interleaved (A B C A B C ...), so a change of
load hits all of them, and every figure summarised as median [min-max] or as a ratio to a peer of the same run.

Every timed call runs with the run's torch thread count (`hold_threads`): the implementations share one process,
and a peer that sets the count would otherwise slow every torch implementation timed after it (Ultralytics'
`select_device` sets `os.cpu_count() - 1` threads on its first call: 1 on a 2-core machine, which halved every torch
row of the runs before this guard while the exported runtimes kept their own thread pools).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

HELD_THREADS: dict[str, int] = {}  # "torch": the thread count every timed call runs with (`hold_threads`)


def hold_threads(threads: int) -> None:
    """Make every later `timed` call run with `threads` torch threads, whatever an implementation set meanwhile."""
    HELD_THREADS["torch"] = threads


def timed(fn: Callable, *args):
    """(seconds, result) of one call, started with the held torch thread count (`hold_threads`), if any."""
    import torch

    held = HELD_THREADS.get("torch")
    if held is not None and torch.get_num_threads() != held:
        torch.set_num_threads(held)
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def interleaved(calls: dict[str, Callable], repeats: int, warmup: int = 1) -> tuple[dict[str, list[float]], dict]:
    """Run each call `warmup` times untimed, then `repeats` times timed, implementations alternating; -> (seconds
    per timed call, last result per call). The untimed round is where a backend compiles or plans for the inputs'
    shapes (torch.compile's first timed image encoder call took 10.6 s, then 2.5 s, when the FLOP-counted call,
    made under FLOP counting, was its only earlier one)."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    last = {}
    for _ in range(warmup):
        for fn in calls.values():
            timed(fn)
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
