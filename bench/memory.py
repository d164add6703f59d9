"""Memory section: peak RSS against video length, measured by bench/memory_vs_length.py.

That script runs each implementation x length in a fresh process (100 / 1,000 / 5,000 frames take hours), so
the suite does not rerun it by default: it summarises the results committed in
bench/results/memory_vs_length.json. `--sections memory --lengths N ...` reruns it first with those lengths.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .common import REPO

SCRIPT = REPO / "bench" / "memory_vs_length.py"
COMMITTED = REPO / "bench" / "results" / "memory_vs_length.json"


def rerun_memory(lengths, out_dir: Path, workdir: Path, threads: int) -> None:
    cmd = [sys.executable, str(SCRIPT), "--lengths", *map(str, lengths), "--out", str(out_dir),
           "--workdir", str(workdir), "--threads", str(threads)]  # fmt: skip
    subprocess.run(cmd, check=True)


def summarize_memory(out_dir: Path) -> dict:
    """Peak RSS (MiB) per implementation and length, with the settings and commands that produced them: from
    out_dir's memory_vs_length.json (a rerun's), else from the committed one."""
    results_file = out_dir / "memory_vs_length.json"
    if not results_file.exists():
        results_file = COMMITTED
    if not results_file.exists():
        return {"measured": False, "reason": f"{results_file} does not exist"}
    data = json.loads(results_file.read_text())
    runs = [
        {
            "impl": r["impl"], "frames": r["frames"], "status": r["status"],
            "peak_rss_mib": r.get("peak_rss_mib") if r["status"] == "ok" else r.get("peak_rss_so_far_mib"),
            "frames_tracked": r.get("frames_tracked"), "s_per_frame": r.get("s_per_frame"),
        }
        for r in data["runs"]
    ]  # fmt: skip
    worst_diff = max((c["max_abs_logit_diff"] for c in data.get("mask_check", [])), default=None)
    return {
        "measured": True,
        "source": str(results_file),
        "link": os.path.relpath(results_file.with_suffix(".md"), out_dir),
        "commands": data["commands"],
        "started": data["started"],
        "settings": data["settings"],
        "implementations": data["implementations"],
        "runs": runs,
        "worst_mask_logit_diff_vs_meta": worst_diff,
    }
