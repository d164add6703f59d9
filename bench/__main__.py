"""`python -m bench`: sam2_hf, Meta's reference (sam2==1.1.0) and transformers' Sam2 in one run on one machine.

    python -m bench --sections image video floor memory gpu --size tiny --image-size 1024 --repeats 3 \\
        --objects 1 3 8 --timed-frames 3 2 1 --out bench/results
    python -m bench --sections video --image-size 256 --objects 1 3 8 --timed-frames 3 2 1 --low-res 128

Sections: image (encoder, click, batch), video (s/frame vs object count), floor (GEMM throughput and the
FLOP-count check; adds floor columns to the other tables), memory (summary of bench/memory_vs_length.py's
committed results; reruns it only with --lengths), gpu (skipped without CUDA). Same seeded random weights for
all three (cached in --workdir). Writes suite.json (raw), suite.md (tables) and suite.png to --out; both
record the run's provenance (bench/provenance.py: commit, load, GEMM rate at start, between sections and at
the end) and mark it contended where the load oversubscribed the CPUs or a time / floor came out below 1
(`flops.FloorCheck`: such a ratio is not given).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

from .common import (
    BENCH_BACKENDS,
    REPO,
    cpu_ticks,
    load_meta_model,
    machine_description,
    other_cores,
    prepare_weights,
)
from .provenance import RunProvenance, oversubscription
from .timing import hold_threads, summary

SECTIONS = ("image", "video", "floor", "memory", "gpu")
TIMED_ON_CPU = ("image", "video")  # the sections whose times share the CPU with other processes


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--size", default="tiny", choices=("tiny", "small", "base-plus", "large"))
    p.add_argument("--version", default="2.1", choices=("2.1", "2"))
    p.add_argument("--image-size", type=int, default=1024, help="model input size (multiple of 32)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (video: see --timed-frames)")
    p.add_argument("--objects", type=int, nargs="+", default=[1, 3, 8], help="object counts of the video section")
    p.add_argument("--timed-frames", type=int, nargs="+",
                   help="timed frames per object count, one per --objects entry (default: --repeats for the fewest "
                        "objects, one fewer for each larger count, at least 1: 3 2 1 for 1 3 8)")  # fmt: skip
    p.add_argument("--warmup-frames", type=int, default=8, help="untimed frames tracked before the timed ones")
    p.add_argument("--frame-size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"))
    p.add_argument("--batch-size", type=int, default=4, help="images in the batched-encoder measurement")
    p.add_argument("--low-res", type=int, help="opt-in: also time sam2_hf at this lower image_size (not exact)")
    p.add_argument("--backends", nargs="+", default=[], choices=BENCH_BACKENDS,
                   help="also time sam2_hf's predictors on these backends (rows sam2_hf[NAME]; the model is exported "
                        "untimed into --workdir/exports; ENGINE:PRECISION rows run a lower-precision export, not "
                        "exact, its agreement report in its export.json)")  # fmt: skip
    p.add_argument("--lengths", type=int, nargs="+", help="memory section: rerun memory_vs_length.py with these")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's default)")
    p.add_argument("--gemm-size", type=int, default=2048, help="n of the n³ fp32 matmul of the GEMM rate")
    p.add_argument("--workdir", default="/tmp/sam2_hf_bench", help="cached weights and frames")
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = p.parse_args(argv)
    if args.timed_frames is None:  # fewer samples where one frame costs most (8 objects at 1024: ~1 min/frame)
        counts = sorted(set(args.objects))
        args.timed_frames = [max(1, args.repeats - counts.index(n)) for n in args.objects]
    if len(args.timed_frames) != len(args.objects):
        p.error("--timed-frames needs one count per --objects entry")
    return args


def quiet() -> None:
    """Progress bars and the reference's per-frame CPU warnings (no CUDA hole-filling kernel) off."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore", category=UserWarning)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_sections(args, suite: dict, provenance: RunProvenance) -> None:
    """Fill suite["sections"]; the GEMM rate is measured after each timed CPU section (`provenance`, which took
    the first point at the start), and the CPU time other processes took during those sections is recorded in
    suite["other_cores"]."""
    import torch

    from .flops import attention_layer_check
    from .gpu import run_gpu
    from .image import run_image
    from .memory import rerun_memory, summarize_memory
    from .video import run_video

    workdir, out = Path(args.workdir), Path(args.out)
    os.environ.setdefault("SAM2_HF_EXPORT_CACHE", str(workdir / "exports"))  # exported runtimes' graphs
    weights = prepare_weights(workdir, args.image_size, args.size, args.version)
    hw = tuple(args.frame_size)

    def floor():
        return {"gemm_n": args.gemm_size, "gemm_gflops": summary(provenance.gemm_samples()),
                "attention_check": attention_layer_check(load_meta_model(weights)),
                "uncounted_heavy_ops": uncounted_ops(suite["sections"])}  # fmt: skip

    def memory():
        if args.lengths:
            rerun_memory(args.lengths, out, workdir / "memory_vs_length", torch.get_num_threads())
        return summarize_memory(out)

    steps = {
        "image": lambda: run_image(weights, *hw, args.repeats, args.batch_size, backends=args.backends),
        "video": lambda: run_video(weights, workdir, args.objects, args.timed_frames, args.warmup_frames, hw,
                                   args.low_res, args.backends),
        "floor": floor,
        "memory": memory,
        "gpu": lambda: run_gpu(workdir),
    }  # fmt: skip
    for name, step in steps.items():
        if name in args.sections:
            log(f"{name} section")
            start = cpu_ticks()
            suite["sections"][name] = step()
            if name in TIMED_ON_CPU:
                suite["other_cores"][name] = other_cores(start, cpu_ticks())
                provenance.measure_gemm(f"after {name}")


def add_floors(sections: dict) -> list[str]:
    """Put each timed row's floor (`FloorCheck.entry`: GFLOP, floor seconds, time / floor or None where refused)
    beside its timing: image parts' part["floor"][impl] (per image for the batch, from the encoder's count),
    video rows' row["floor"][impl]. Needs the floor section's GEMM rate; -> the refusals' contended reasons."""
    from .flops import FloorCheck

    if "floor" not in sections:
        return []
    check = FloorCheck(sections["floor"]["gemm_gflops"]["samples"])
    image = sections.get("image")
    for key in ("encoder", "click", "batch") if image else ():
        part = image[key]
        counts = {**image["encoder"]["flops"], **part.get("flops", {})}
        part["floor"] = {impl: check.entry(counts[impl]["total"], row["seconds"]["median"], f"image {key} {impl}",
                                           not lower_precision(impl))
                         for impl, row in part["timing"].items() if impl in counts}  # fmt: skip
    for row in sections.get("video", {}).get("by_objects", []):
        where = f"video {row['objects']} object(s) "
        row["floor"] = {impl: check.entry(row["flops"][impl]["total"], t["seconds"]["median"], where + impl,
                                          not lower_precision(impl))
                        for impl, t in row["timing"].items() if impl in row["flops"]}  # fmt: skip
    return check.reasons()


def lower_precision(impl: str) -> bool:
    """Whether a row runs a lower-precision export (sam2_hf[ENGINE:PRECISION], bench/common.py): its time / floor
    is against the float32 floor and may be below 1."""
    return impl.startswith("sam2_hf[") and ":" in impl


def section_contention(suite: dict) -> list[str]:
    """Contended reasons of the timed sections whose other-process load oversubscribed the CPUs."""
    threads, cpus = suite["settings"]["threads"], suite["machine"]["logical_cpus"]
    found = (oversubscription(cores, threads, cpus, f"{name} section") for name, cores in suite["other_cores"].items())
    return [reason for reason in found if reason]


def uncounted_ops(sections: dict) -> dict:
    """Every matmul/conv/attention op any FLOP count met without a formula (expected: none)."""
    found: dict[str, int] = {}
    for part in (*(sections.get("image", {}).get(k, {}) for k in ("encoder", "click")),
                 *sections.get("video", {}).get("by_objects", [])):  # fmt: skip
        for counted in part.get("flops", {}).values():
            for op, n in counted["uncounted_heavy_ops"].items():
                found[op] = found.get(op, 0) + n
    return found


def main(argv=None) -> None:
    args = parse_args(argv)
    quiet()
    import torch

    from .plot import write_plot
    from .report import write_report

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("sections", "size", "version", "image_size", "repeats", "objects",
                                              "timed_frames", "warmup_frames", "frame_size", "batch_size",
                                              "low_res", "lengths", "gemm_size")}  # fmt: skip
    settings["threads"] = torch.get_num_threads()
    hold_threads(settings["threads"])  # a peer may change it (bench/timing.py)
    settings["threads_held"] = True
    settings["untimed_round"] = True  # bench/timing.py `interleaved`, bench/video.py `track_objects`
    suite = {
        "command": "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_description(),
        "settings": settings,
        "sections": {},
        "other_cores": {},
    }
    start = time.perf_counter()
    provenance = RunProvenance(settings["threads"], args.gemm_size)
    with torch.inference_mode():
        run_sections(args, suite, provenance)
    reasons = add_floors(suite["sections"]) + section_contention(suite)
    suite["provenance"] = provenance.finish(reasons)
    suite.update(finished=time.strftime("%Y-%m-%d %H:%M:%S"), wall_s=time.perf_counter() - start)
    suite["plot"] = "suite.png" if write_plot(suite, out / "suite.png") else None
    (out / "suite.json").write_text(json.dumps(suite, indent=1))
    write_report(suite, out / "suite.md")
    contended = suite["provenance"]["contended"]["contended"]
    log(f"wrote {out / 'suite.md'}, .json, .png" + (" (contended run)" if contended else ""))


if __name__ == "__main__":
    main()
