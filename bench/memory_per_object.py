"""Peak RSS per tracked object: sam2_hf on each backend beside Meta's reference and transformers.

    python bench/memory_per_object.py --objects 1 2 4 --frames 10 --image-size 1024 \\
        --backends onnxruntime openvino auto openvino:int8-static --workdir /tmp/sam2_hf_bench_backends

Each implementation x object count runs in a FRESH Python subprocess (`memory_vs_length.run_one`, the same worker:
one positive click per object on frame 0, `common.object_clicks`, then forward propagation over the JPEG folder),
so its `ru_maxrss` is that run's own peak. Memory per object is the least-squares slope of the peak RSS over the
object counts; the peak minus the RSS after the model (and its exported graphs) loaded is the run's working memory.
With `--frames` >= 8 the last frames attend to a full bank of spatial memories (the prompted frame + 6 previous
ones), the state whose size grows with the objects; object pointers (4 tokens each) keep growing until 16 frames,
a small part.

Implementations: `sam2_hf` (torch, memory_policy="disk", the default), `sam2_hf[BACKEND]` for each `--backends`
entry (the suite's rows, `bench.common.backend_source`; exported, and auto's engines measured, by an untimed
subprocess before the runs, so that exporting is not in any run's peak), `meta` (`SAM2VideoPredictor`,
sam2==1.1.0), `transformers` (`Sam2VideoModel` on a session holding the whole preprocessed video, its documented
use). Not run: torch.compile (inductor compiles in the measured process and again for each object count) and
Ultralytics (the length bench's worker has no Ultralytics path). Masks of kept frames are compared with Meta's on
the same object count (every object's logits).

Results: --out/memory_per_object.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make `bench` importable
from bench.common import BENCH_BACKENDS, REPO, backend_row, least_squares_slope, machine_description, weights_paths
from bench.memory_vs_length import REFERENCE, compare_masks, fmt, load_sam2_hf, run_one
from bench.provenance import RunProvenance, provenance_lines

PEERS = ("meta", "transformers")
EXACT = "sam2_hf-disk"


def implementations(backends) -> list[str]:
    return [EXACT, *map(backend_row, backends), *PEERS]


def prepare(args, workdir: Path) -> None:
    """Subprocess: weights and frames (memory_vs_length's `prepare` worker), then each backend's export (and auto's
    measurements) into the export cache."""
    script = REPO / "bench" / "memory_vs_length.py"
    subprocess.run([sys.executable, str(script), "--worker", "prepare", "--workdir", str(workdir),
                    "--image-size", str(args.image_size), "--height", str(args.height), "--width", str(args.width),
                    "--lengths", str(args.frames)], check=True)  # fmt: skip
    if args.backends:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--export", *args.backends, "--workdir", str(workdir),
               "--image-size", str(args.image_size)]  # fmt: skip
        subprocess.run(cmd, check=True)


def export_backends(args) -> None:
    weights = weights_paths(Path(args.workdir), args.image_size).folder
    for backend in args.export:
        print(f"[{time.strftime('%H:%M:%S')}] exporting for {backend_row(backend)}", flush=True)
        load_sam2_hf(backend_row(backend), weights, args.image_size)


def per_object(runs: list[dict], impl: str) -> dict:
    """MiB per object of one implementation: slopes of its peak RSS and of its working memory (peak - RSS after
    the model loaded) over its completed object counts."""
    done = [r for r in runs if r["impl"] == impl and r["status"] == "ok"]
    return {
        "peak_per_object_mib": least_squares_slope([(r["objects"], r["peak_rss_mib"]) for r in done]),
        "working_per_object_mib": least_squares_slope(
            [(r["objects"], r["peak_rss_mib"] - r["rss_after_model_mib"]) for r in done]
        ),
    }


def write_report(out_dir: Path, payload: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "memory_per_object.json").write_text(json.dumps(payload, indent=1))
    runs, impls, st, m = payload["runs"], payload["implementations"], payload["settings"], payload["machine"]
    counts = sorted({r["objects"] for r in runs})
    by_key = {(r["impl"], r["objects"]): r for r in runs}
    lines = [
        "# Peak RSS per tracked object (SAM 2 video tracking, CPU)",
        "",
        f"Command: `{payload['command']}`  ",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['ram_gib']} GiB RAM; Python {m['python']}, "
        f"torch {m['torch']}, transformers {m['transformers']}, sam2 {m['sam2']}, sam2-hf {m['sam2-hf']}; "
        f"{st['threads']} torch threads per run.  ",
        *provenance_lines(payload["provenance"]),
        f"Setup: hiera-{st['size']} (SAM 2.1), seeded random weights, image_size {st['image_size']}, "
        f"{st['width']}x{st['height']} synthetic JPEG frames, {st['frames']} frames tracked forwards from one click "
        "per object on frame 0, fp32 (the int8 row: its export), no hole filling. One fresh process per cell; "
        "peak = `ru_maxrss` at its end; model = RSS after the model (and its graphs) loaded; working = peak - model.",
        "",
        "## Peak RSS, MiB (working memory in parentheses)",
        "",
        "| implementation | " + " | ".join(f"{n} object{'s' * (n > 1)}" for n in counts)
        + " | peak MiB per object | working MiB per object | s/frame |",
        "|---|" + "---|" * (len(counts) + 3),
    ]  # fmt: skip
    for impl in impls:
        cells = []
        for n in counts:
            r = by_key.get((impl, n))
            if r is None:
                cells.append("–")
            elif r["status"] != "ok":
                cells.append(f"{r['status']}")
            else:
                cells.append(f"{r['peak_rss_mib']:.0f} ({r['peak_rss_mib'] - r['rss_after_model_mib']:.0f})")
        g = per_object(runs, impl)
        speeds = [
            f"{by_key[(impl, n)]['s_per_frame']:.2f}" for n in counts if "s_per_frame" in by_key.get((impl, n), {})
        ]
        lines.append(f"| {impl} | " + " | ".join(cells) + f" | {fmt(g['peak_per_object_mib'], '.0f')} | "
                     f"{fmt(g['working_per_object_mib'], '.0f')} | {' / '.join(speeds) or '–'} |")  # fmt: skip
    lines += ["", "s/frame: wall time of the propagation over the frames tracked, per frame, for each object count "
              "(one run each, warm-up included: a rough figure; the suite's video section times steady state).",
              "", f"## Masks vs the reference ({REFERENCE}), worst kept frame per run", "",
              "| implementation | objects | frames compared | max abs logit diff | pixels of other sign "
              "| reference foreground px / all |", "|---|---|---|---|---|---|"]  # fmt: skip
    for impl in impls:
        for n in counts:
            rows = [c for c in payload["mask_check"] if c["impl"] == impl and c["objects"] == n]
            if rows:
                worst = max(rows, key=lambda c: c["max_abs_logit_diff"])
                fg, other = (f(c[k] for c in rows) for f, k in ((min, "foreground_pixels_reference"),
                                                                 (max, "sign_mismatch_pixels")))  # fmt: skip
                lines.append(f"| {impl} | {n} | {len(rows)} | {worst['max_abs_logit_diff']:.2e} | {other} | "
                             f"≥{fg} / {worst['pixels']} |")  # fmt: skip
    (out_dir / "memory_per_object.md").write_text("\n".join(lines) + "\n")


def run_all(args) -> None:
    workdir, out_dir = Path(args.workdir), Path(args.out)
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SAM2_HF_EXPORT_CACHE", str(workdir / "exports"))  # the suite's cache, if the same workdir
    provenance = RunProvenance(args.threads)
    prepare(args, workdir)
    settings = {k: getattr(args, k) for k in ("size", "image_size", "height", "width", "threads", "frames", "objects",
                                              "backends")}  # fmt: skip
    payload = {"command": "python " + " ".join([os.path.relpath(Path(__file__).resolve(), REPO), *sys.argv[1:]]),
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_description(), "settings": settings,
               "implementations": implementations(args.backends), "runs": [], "mask_check": []}  # fmt: skip
    keep = sorted({args.frames // 2, args.frames - 1})
    for objects in sorted(args.objects):
        for impl in payload["implementations"]:
            payload["runs"].append(run_one(args, impl, args.frames, workdir, keep, objects))
            payload["mask_check"] = compare_masks(workdir, payload["runs"])
            payload["provenance"] = provenance.snapshot()
            write_report(out_dir, payload)  # after every run, so partial results survive
    payload["per_object"] = {impl: per_object(payload["runs"], impl) for impl in payload["implementations"]}
    payload["provenance"] = provenance.finish()
    payload["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_report(out_dir, payload)
    print(f"wrote {out_dir / 'memory_per_object.md'} and .json", flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, nargs="+", default=[1, 2, 4], help="object counts (one click each)")
    p.add_argument("--frames", type=int, default=10, help="video frames tracked per run")
    p.add_argument("--backends", nargs="*", default=["onnxruntime", "openvino", "auto", "openvino:int8-static"],
                   choices=[b for b in BENCH_BACKENDS if b != "compile"], help="sam2_hf[BACKEND] rows")  # fmt: skip
    p.add_argument("--size", default="tiny", choices=("tiny",), help="model size (the worker builds hiera-tiny)")
    p.add_argument("--image-size", type=int, default=1024, help="model input size (multiple of 32)")
    p.add_argument("--height", type=int, default=480, help="video frame height")
    p.add_argument("--width", type=int, default=640, help="video frame width")
    p.add_argument("--threads", type=int, default=2, help="torch threads per run")
    p.add_argument("--timeout", type=float, default=1200, help="cap per run, seconds; a run past it is killed")
    p.add_argument("--workdir", default="/tmp/sam2_hf_bench", help="weights, frames, exports and per-run files")
    p.add_argument("--out", default=str(REPO / "bench" / "results"),
                   help="where memory_per_object.json / .md go (default: bench/results, the committed)")  # fmt: skip
    p.add_argument("--export", nargs="+", help=argparse.SUPPRESS)  # internal: the prepare step's exports
    args = p.parse_args(argv)
    args.impl_timeout = []  # memory_vs_length.run_one's per-implementation caps: none here
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.export:
        export_backends(args)
    else:
        run_all(args)


if __name__ == "__main__":
    main()
