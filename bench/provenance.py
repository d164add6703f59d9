"""Where a bench result comes from: the code's commit, the machine's load and its measured GEMM rate.

Every bench writer (the suite `python -m bench`, `bench/memory_vs_length.py`, `python -m bench.finetune`) opens a
`RunProvenance` when it starts, `finish`es it when it ends, stores the record under "provenance" in its JSON and
puts `provenance_lines` at the top of its markdown:

- code: the commit of this checkout (bench's own) and whether its tree had uncommitted changes (which), where
  sam2_hf was imported from, and that checkout's commit when it is another one (an editable install elsewhere);
- load: the load average at start and end, and the CPU cores other processes kept busy on average over the run
  (`common.other_cores`: it excludes the run itself and its waited-for subprocesses, unlike the load average);
- GEMM rate: GFLOP/s of a fixed fp32 n x n x n matmul with the run's torch thread count (`flops.gemm_gflops`),
  measured at the start and the end (the suite also between its sections, for its FLOP floor);
- contended: whether other work left fewer idle cores than the run's threads, or a time came out below its FLOP
  floor (`flops.FloorCheck`), with the reasons.

Light at import time (no torch, sam2_hf not imported): memory_vs_length's driver uses it and must stay small, so
the GEMM rate is measured in a fresh subprocess (`python -m bench.provenance --gemm N --threads T`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from .common import REPO, cpu_ticks, load_average, other_cores
from .timing import summary

GEMM_N = 2048
GEMM_REPEATS = 5
SHOWN_CHANGES = 20  # uncommitted paths listed in the record (all are counted)


# ------------------------------------------------------------------------------ code
def git_state(folder: Path) -> dict:
    """The git checkout holding `folder`: {"checkout": its root, "commit": full HEAD hash, "dirty": whether
    `git status` lists changes (untracked files included), "changes": the first SHOWN_CHANGES of them,
    "num_changes"}. Outside a checkout (or without git): {"checkout": None, "commit": None, "dirty": None}."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError):
            return None
        return done.stdout.rstrip()

    root = git("rev-parse", "--show-toplevel")
    if root is None:
        return {"checkout": None, "commit": None, "dirty": None}
    changes = git("status", "--porcelain").splitlines()
    return {"checkout": root, "commit": git("rev-parse", "HEAD"), "dirty": bool(changes),
            "changes": changes[:SHOWN_CHANGES], "num_changes": len(changes)}  # fmt: skip


def code_state() -> dict:
    """bench's checkout (`git_state(REPO)`) and the folder sam2_hf is imported from (found without importing
    it); "sam2_hf_checkout": that folder's `git_state` where it is another checkout than bench's."""
    spec = importlib.util.find_spec("sam2_hf")
    source = Path(spec.origin).resolve().parent if spec and spec.origin else None
    state = {**git_state(REPO), "sam2_hf_source": str(source) if source else None}
    if source is not None:
        theirs = git_state(source)
        if theirs["checkout"] != state["checkout"]:
            state["sam2_hf_checkout"] = theirs
    return state


# ------------------------------------------------------------------------------ GEMM rate
def measure_gemm(threads: int, n: int = GEMM_N, repeats: int = GEMM_REPEATS) -> dict:
    """`flops.gemm_gflops` in a fresh Python process with `threads` torch threads: the summary
    (`timing.summary`) of `repeats` GFLOP/s samples of an fp32 (n, n) @ (n, n) matmul.

    Raises:
        subprocess.CalledProcessError: the measuring process failed (its stderr is attached).
    """
    command = [sys.executable, "-m", "bench.provenance", "--gemm", str(n), "--threads", str(threads),
               "--repeats", str(repeats)]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    return summary(json.loads(done.stdout))


def oversubscription(busy_cores: float, threads: int, cpus: int, where: str) -> str | None:
    """The reason a stretch of a run was contended, or None: other processes kept `busy_cores` cores busy on
    average, leaving fewer idle cores than the run's `threads` (0.25 core of slack). Oversubscribed OpenMP
    threads then wait for descheduled peers, which inflates times many-fold (up to ~15x seen at image_size
    256), most for code with many small ops, so ratios between implementations are biased too."""
    if busy_cores + threads <= cpus + 0.25:
        return None
    return (f"{where}: other processes kept {busy_cores:.2f} of {cpus} logical CPUs busy on average, beside "
            f"this run's {threads} torch threads (oversubscribed: times inflated, most for code with many small "
            "ops)")  # fmt: skip


class RunProvenance:
    """The provenance record of one bench run: open it at the start, `finish` it at the end.

    Args:
        threads: torch threads the run uses (the GEMM rate is measured with as many).
        gemm_n: side of the fp32 matmul of the GEMM rate.

    `record` (JSON-ready) holds "code" (`code_state` at the start; "commit_at_end" where HEAD moved during the
    run), "threads", "cpus", "load_average" {"start", "end"}, "other_cores_busy" (whole run), "gemm"
    {"n", "threads", "points": [{"when", "gflops": summary}]} and, after `finish`, "contended"
    {"contended": bool, "reasons": [str]}.
    """

    def __init__(self, threads: int, gemm_n: int = GEMM_N):
        self._ticks = cpu_ticks()
        self.record = {
            "code": code_state(),
            "threads": threads,
            "cpus": os.cpu_count(),
            "load_average": {"start": load_average()},
            "gemm": {"n": gemm_n, "threads": threads, "points": []},
        }
        self.measure_gemm("start")

    def measure_gemm(self, when: str) -> None:
        """Add a GEMM-rate point labelled `when` ("start", "after video", ...)."""
        gemm = self.record["gemm"]
        gemm["points"].append({"when": when, "gflops": measure_gemm(gemm["threads"], gemm["n"])})

    def gemm_samples(self) -> list[float]:
        """Every GFLOP/s sample measured so far."""
        return [g for point in self.record["gemm"]["points"] for g in point["gflops"]["samples"]]

    def finish(self, reasons: list[str] = ()) -> dict:
        """The GEMM rate's end point, then `snapshot`: the finished record."""
        self.measure_gemm("end")
        return self.snapshot(reasons)

    def snapshot(self, reasons: list[str] = ()) -> dict:
        """The record as of now (a writer that saves partial results saves this): the load average now as
        "end", other cores' use since the start; the run marked contended when that oversubscribed the CPUs or
        the writer gives `reasons` (its own contention findings)."""
        r = self.record
        r["load_average"]["end"] = load_average()
        r["other_cores_busy"] = other_cores(self._ticks, cpu_ticks())
        head = git_state(REPO)["commit"]
        if head != r["code"]["commit"]:
            r["code"]["commit_at_end"] = head
        whole = oversubscription(r["other_cores_busy"], r["threads"], r["cpus"], "whole run")
        found = [*([whole] if whole else []), *reasons]
        r["contended"] = {"contended": bool(found), "reasons": found}
        return r


# ------------------------------------------------------------------------------ markdown
def gflops_text(s: dict) -> str:
    return f"{s['median']:.3g} [{s['min']:.3g}–{s['max']:.3g}]"


def when_text(when: str) -> str:
    return f"at {when}" if when in ("start", "end") else when


def code_line(code: dict) -> str:
    if code["commit"] is None:
        return "Code: not in a git checkout (commit unknown)."
    tree = "clean tree" if not code["dirty"] else (
        f"**dirty tree**, {code['num_changes']} uncommitted change(s): "
        + ", ".join(f"`{c.strip()}`" for c in code["changes"])
        + (" ..." if code["num_changes"] > len(code["changes"]) else "")
    )  # fmt: skip
    line = f"Code: commit `{code['commit'][:12]}` ({tree}); sam2_hf imported from `{code['sam2_hf_source']}`"
    other = code.get("sam2_hf_checkout")
    if other:
        line += f", another checkout at commit `{(other['commit'] or 'unknown')[:12]}` (dirty: {other['dirty']})"
    if code.get("commit_at_end"):
        line += f"; HEAD moved to `{code['commit_at_end'][:12]}` during the run"
    return line + "."


def provenance_lines(record: dict | None) -> list[str]:
    """Markdown lines for a `RunProvenance.record` (each ends with a line break); for None (a result from before
    bench recorded them) one line saying so."""
    if record is None:
        return ["Provenance: **not recorded** (this result predates bench recording commit, load and GEMM rate).  "]
    load, gemm = record["load_average"], record["gemm"]
    lines = [
        code_line(record["code"]) + "  ",
        f"Load: load average {', '.join(map(str, load['start']))} at start, {', '.join(map(str, load['end']))} "
        f"at end; other processes kept {record['other_cores_busy']:.2f} of {record['cpus']} logical CPUs busy on "
        "average over the run.  ",
        f"GEMM rate (fp32 {gemm['n']}³ matmul, torch threads: {gemm['threads']}; GFLOP/s median [min–max] of "
        f"{gemm['points'][0]['gflops']['n']}): "
        + ", ".join(f"{gflops_text(p['gflops'])} {when_text(p['when'])}" for p in gemm["points"])
        + ".  ",
    ]
    contended = record["contended"]
    if contended["contended"]:
        lines += ["**Contended run**: " + "; ".join(contended["reasons"]) + ".  "]
    return lines


def main(argv=None) -> None:
    """Worker of `measure_gemm`: prints the GFLOP/s samples as a JSON list."""
    p = argparse.ArgumentParser(prog="python -m bench.provenance", description="GEMM rate worker")
    p.add_argument("--gemm", type=int, required=True, help="matmul side n")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeats", type=int, default=GEMM_REPEATS)
    args = p.parse_args(argv)
    import torch

    from .flops import gemm_gflops

    torch.set_num_threads(args.threads)
    print(json.dumps(gemm_gflops(args.gemm, args.repeats)))


if __name__ == "__main__":
    main()
