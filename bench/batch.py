"""Batch jobs on Ray (`sam2_hf.batch.track_many`): videos per hour and frames per second against actors, and each
actor's peak memory against video length.

    python -m bench.batch                                  # 6 videos x 24 frames, 1 and 2 actors, 30 / 300 frames
    python -m bench.batch --videos 8 --frames 48 --image-size 512 --lengths 50 500

Rows, one run, one machine, the same weights (`bench.common.prepare_weights`: hiera-tiny 2.1, seeded random
weights, object-score bias +4 so objects are tracked) and the same manifest (synthetic clips, one click per
video, tracked forward and backward as `sam2-hf track` does):
- `sequential`: a `Sam2Tracker` loop in this process with every torch thread (what one writes without Ray);
- `ray, 1 actor x 1 CPU`, `ray, 1 actor x N CPUs`, `ray, N actors x 1 CPU`: `track_many` on local Ray.
Each Ray row's wall time covers the whole job: actors starting and loading the model, tracking, writing
Parquet. Reported: wall seconds, videos per hour, frames per second, ratio to the sequential loop, and the
scaling of N actors over 1 (1 CPU each). Memory: one actor tracks a short and a long video (`--lengths`);
the job's videos.parquet records the actor's peak resident memory (VmHWM) after each video.

Results: bench/results/batch.md and .json (machine, provenance, command, tables).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from .common import machine_description, prepare_weights, write_jpeg_folder
from .provenance import RunProvenance, provenance_lines

HEIGHT, WIDTH = 240, 320
CLICK = [[0.15 * WIDTH, 0.3 * HEIGHT]]  # the synthetic clip's red disc on frame 0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_manifest(workdir: Path, name: str, lengths: list[int]) -> Path:
    """A JSONL manifest of synthetic JPEG-folder videos of the given lengths, one click on frame 0 each."""
    rows = []
    for i, length in enumerate(lengths):
        folder = write_jpeg_folder(workdir / "videos" / f"clip_{length}_{i}", length, HEIGHT, WIDTH)
        rows.append({"id": f"{name}-{i}", "video": str(folder), "prompts": [
            {"frame": 0, "obj_id": 1, "points": CLICK, "labels": [1]}]})  # fmt: skip
    path = workdir / f"{name}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run_sequential(manifest: Path, weights, image_size: int) -> dict:
    import torch

    from sam2_hf import Sam2Tracker
    from sam2_hf.batch import read_manifest

    start = time.perf_counter()
    tracker = Sam2Tracker.from_pretrained(weights.folder, image_size=image_size)
    frames = 0
    for job in read_manifest(manifest):
        frames += len(tracker.track(job.video, job.tracking_prompts(), progress=False).processed)
    return {"wall_s": time.perf_counter() - start, "frames": frames, "threads": torch.get_num_threads()}


def run_job(manifest: Path, weights, image_size: int, out: Path, actors: int, cpus: int) -> dict:
    import pyarrow.parquet as pq

    from sam2_hf.batch import track_many

    shutil.rmtree(out, ignore_errors=True)
    summary = track_many(manifest, weights.folder, out, actors=actors, cpus_per_actor=cpus, image_size=image_size,
                         progress=False)  # fmt: skip
    videos = pq.read_table(out / "videos.parquet").to_pylist()
    if summary["failed"] or summary["left"]:
        raise RuntimeError(f"the job did not finish every video: {summary}")
    return {
        "wall_s": summary["seconds"],
        "frames": summary["frames"],
        "video_seconds": sum(v["seconds"] for v in videos),  # inside the actors: tracking and writing only
        "peak_rss_mib": max(v["peak_rss_mib"] for v in videos),
        "videos": [{k: v[k] for k in ("id", "frames", "seconds", "peak_rss_mib", "node")} for v in videos],
    }


def throughput(args, weights, workdir: Path, cpus: int) -> dict:
    manifest = write_manifest(workdir, "throughput", [args.frames] * args.videos)
    rows = {"sequential": run_sequential(manifest, weights, args.image_size)}
    log(f"sequential: {rows['sequential']['wall_s']:.1f} s")
    configs = [(1, 1), (1, cpus), (cpus, 1)] if cpus > 1 else [(1, 1)]
    for actors, per_actor in configs:
        name = f"ray, {actors} actor{'s' * (actors > 1)} x {per_actor} CPU{'s' * (per_actor > 1)}"
        rows[name] = run_job(manifest, weights, args.image_size, workdir / "job", actors, per_actor)
        rows[name].update(actors=actors, cpus_per_actor=per_actor)
        log(f"{name}: {rows[name]['wall_s']:.1f} s")
    return rows


def memory(args, weights, workdir: Path) -> dict:
    out = {}
    for length in args.lengths:
        manifest = write_manifest(workdir, f"long{length}", [length])
        out[str(length)] = run_job(manifest, weights, args.image_size, workdir / "job", 1, 1)
        log(f"{length} frames: actor peak {out[str(length)]['peak_rss_mib']:.0f} MiB")
    return out


def write_report(result: dict, path: Path) -> None:
    m, st, rows = result["machine"], result["settings"], result["throughput"]
    base = rows["sequential"]
    one = next((r for name, r in rows.items() if r.get("actors") == 1 and r.get("cpus_per_actor") == 1), None)
    lines = [
        "# Many videos on Ray: throughput against actors, actor memory against video length (CPU)",
        "",
        f"Command: `{result['command']}`  ",
        f"Run {result['started']} – {result['finished']}.  ",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['ram_gib']} GiB RAM; Python {m['python']}, "
        f"torch {m['torch']}, ray {result['ray']}, sam2-hf {m['sam2-hf']}.  ",
        *provenance_lines(result.get("provenance")),
        "Note: the load check counts Ray's actors as other processes (they are Ray's workers, not this process's "
        "children), so a run is marked contended by its own actors: the flag alone does not mean that other work "
        "ran.  ",
        f"Model: hiera-tiny 2.1, seeded random weights, image_size {st['image_size']}, fp32. Videos: "
        f"{st['videos']} synthetic clips of {st['frames']} frames, {WIDTH}x{HEIGHT} JPEG folders, one click each, "
        "tracked forward and backward.",
        "",
        "| run | wall s | videos / hour | frames / s | vs sequential | time in actors s | actor peak MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        fps = r["frames"] / r["wall_s"]
        ratio = base["wall_s"] / r["wall_s"]
        inside = f"{r['video_seconds']:.1f}" if "video_seconds" in r else "–"
        peak = f"{r['peak_rss_mib']:.0f}" if "peak_rss_mib" in r else "–"
        lines.append(f"| {name} | {r['wall_s']:.1f} | {3600 * st['videos'] / r['wall_s']:.0f} | {fps:.2f} | "
                     f"{ratio:.2f}x | {inside} | {peak} |")  # fmt: skip
    if one is not None:
        many = [r for r in rows.values() if r.get("actors", 0) > 1]
        for r in many:
            lines += ["", f"Scaling: {r['actors']} actors x 1 CPU finish the job {one['wall_s'] / r['wall_s']:.2f}x "
                      f"as fast as 1 actor x 1 CPU (ideal {r['actors']}x)."]  # fmt: skip
    per_frame = one["video_seconds"] / one["frames"] if one else None
    if per_frame:
        lines += [f"Per frame inside one 1-CPU actor: {per_frame:.3f} s (tracking and writing, model load excluded)."]
    lines += ["", "## Actor memory against video length", ""]
    lines += ["| frames | actor peak MiB | s / frame |", "|---|---|---|"]
    for length, r in result["memory"].items():
        lines.append(f"| {length} | {r['peak_rss_mib']:.0f} | {r['video_seconds'] / r['frames']:.3f} |")
    path.write_text("\n".join(lines) + "\n")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--lengths", type=int, nargs="*", default=[30, 300], help="videos of the memory section")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--workdir", default="/tmp/sam2_hf_bench_batch")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    import ray
    import torch

    workdir, out = Path(args.workdir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cpus = os.cpu_count() or 1
    result = {
        "command": "python -m bench.batch " + shlex.join(sys.argv[1:] if argv is None else argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_description(),
        "ray": ray.__version__,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "workdir")},
    }
    provenance = RunProvenance(torch.get_num_threads())
    weights = prepare_weights(workdir, args.image_size, "tiny", "2.1")
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        result["throughput"] = throughput(args, weights, workdir, cpus)
        result["memory"] = memory(args, weights, workdir)
    finally:
        ray.shutdown()
    result["provenance"] = provenance.finish()
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    (out / "batch.json").write_text(json.dumps(result, indent=1))
    write_report(result, out / "batch.md")
    log(f"wrote {out / 'batch.md'}, .json")


if __name__ == "__main__":
    main()
