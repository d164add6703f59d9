"""Peak RSS (and time per frame) against video length, for four implementations of SAM 2 video tracking.

    python bench/memory_vs_length.py                      # 100, 1000, 5000 frames, image_size 128
    python bench/memory_vs_length.py --lengths 100 1000 --image-size 256 --timeout 600

Implementations (each length x implementation runs in a FRESH Python subprocess, so that
`resource.getrusage(RUSAGE_SELF).ru_maxrss` is that run's own peak):
- `sam2_hf-disk`   sam2_hf `Sam2VideoPredictor`, default memory_policy="disk" (old memories spilled to disk);
- `sam2_hf-window` sam2_hf `Sam2VideoPredictor`, memory_policy="window" (old memories dropped);
- `meta`           Meta's `sam2.sam2_video_predictor.SAM2VideoPredictor` (PyPI sam2==1.1.0), JPEG folder input;
- `transformers`   transformers' `Sam2VideoModel.propagate_in_video_iterator` on a `Sam2VideoInferenceSession`
                   built from the whole video (its documented, non-streaming use).

Every run: hiera-tiny with the same seeded random weights (tests/reference.py `build_meta_model`, saved
once as a transformers folder that sam2_hf and transformers load), one object clicked on frame 0, full
forward propagation, no hole filling (transformers has none and the reference skips it on CPU), fp32 on
CPU. All four read the same N JPEG frames (written once per length from a looping synthetic clip,
generated frame by frame), preprocessed identically (PIL bicubic resize to S x S, /255, ImageNet
mean/std): the reference and sam2_hf do that themselves, transformers gets a preallocated (N, 3, S, S)
fp32 tensor filled the same way (its video processor resizes bilinearly, which would change the masks).
The reference and transformers keeping that whole preprocessed video in RAM is part of what is measured.

Recorded per run: ru_maxrss at the end, RSS (VmRSS) after imports / model load / init_state and every
100 tracked frames, init_state time, propagation wall time per frame, the spilled bytes on disk
(sam2_hf-disk: TMPDIR is a fresh folder per run) and the mask logits of a few frames. The masks of the
runs are compared with the reference's (max abs logit difference, pixels whose sign differs).
Runs over `--timeout` seconds are killed; what they reached (RSS samples, frames) is still reported,
and longer lengths of that implementation are skipped. With `--fit`, a length whose time, estimated
from the shorter run, exceeds the timeout is replaced by the longest multiple of 500 frames that fits.

Results: bench/results/memory_vs_length.json and .md (machine, command, table, curves, mask check).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make `bench` importable
from bench.common import (
    BENCH_BACKENDS,
    REPO,
    backend_row,
    backend_source,
    folder_bytes,
    hwm_mib,
    least_squares_slope,
    machine_description,
    object_clicks,
    peak_rss_mib,
    prepare_weights,
    preprocess_jpeg,
    reference_module,
    rss_mib,
    weights_paths,
    write_jpeg_folder,
)
from bench.provenance import RunProvenance, provenance_lines

IMPLEMENTATIONS = ("sam2_hf-disk", "sam2_hf-window", "meta", "transformers")
REFERENCE = "meta"
DEFAULT_LENGTHS = (100, 1000, 5000)
SAMPLE_EVERY = 100


# ------------------------------------------------------------------------------ one run (subprocess)
class Recorder:
    """Per-frame bookkeeping of a run: RSS samples (also appended to a JSONL file, so a killed run keeps
    them), timing and the masks of a few frames."""

    def __init__(self, progress_path: Path, num_frames: int, keep_frames):
        self.progress = open(progress_path, "a", buffering=1)  # noqa: SIM115 (open for the whole run)
        self.num_frames = num_frames
        self.keep_frames = set(keep_frames)
        self.masks = {}
        self.samples = []
        self.count = 0
        self.t0 = None

    def event(self, name: str, **extra):
        row = {"event": name, "rss_mib": round(rss_mib(), 1), "peak_rss_mib": round(peak_rss_mib(), 1), **extra}
        self.progress.write(json.dumps(row) + "\n")
        return row

    def start(self):
        self.t0 = time.perf_counter()

    def frame(self, frame_idx: int, masks):
        """masks: (num_objects, 1, H, W) logits at video resolution; kept as (num_objects, H, W)."""
        self.count += 1
        if frame_idx in self.keep_frames:
            self.masks[frame_idx] = masks[:, 0].float().cpu().numpy().copy()
        if self.count % SAMPLE_EVERY == 0 or self.count == self.num_frames:
            elapsed = time.perf_counter() - self.t0
            self.samples.append(
                self.event("frame", frames=self.count, frame_idx=int(frame_idx), elapsed_s=round(elapsed, 2))
            )


def track_with_predictor_api(predictor, folder: Path, clicks, rec: Recorder, info: dict) -> None:
    """init_state, one click per object on frame 0, full forward propagation through Meta's video-predictor API
    (Meta's own or sam2_hf's), recording RSS, init time and masks."""
    t = time.perf_counter()
    state = predictor.init_state(str(folder))
    info["init_s"] = time.perf_counter() - t
    info["rss_after_init_mib"] = rec.event("init_state")["rss_mib"]
    for obj_id, click in enumerate(clicks, start=1):
        predictor.add_new_points_or_box(state, 0, obj_id, points=[click], labels=[1])
    rec.start()
    for frame_idx, _, masks in predictor.propagate_in_video(state):
        rec.frame(frame_idx, masks)


def load_sam2_hf(impl: str, weights_folder: Path, image_size: int):
    """sam2_hf's video predictor of a run: `sam2_hf-POLICY` (memory_policy, torch) or `sam2_hf[BACKEND]` (a backend
    row of the suite, `bench.common.backend_source`: its export must already be in the export cache, made by the
    driver, so that exporting does not count in this run's peak)."""
    from sam2_hf.predictors.video_predictor import Sam2VideoPredictor

    if impl.startswith("sam2_hf-"):
        policy = impl.split("-", 1)[1]
        return Sam2VideoPredictor.from_pretrained(weights_folder, fill_hole_area=0, memory_policy=policy)
    source, backend = backend_source(weights_paths(weights_folder.parent, image_size), impl[len("sam2_hf[") : -1])
    return Sam2VideoPredictor.from_pretrained(source, backend=backend, fill_hole_area=0)


def worker_impl(name: str) -> str:
    """--worker's choices: an implementation, a backend row `sam2_hf[BACKEND]` or `prepare`."""
    if name in (*IMPLEMENTATIONS, "prepare") or name in map(backend_row, BENCH_BACKENDS):
        return name
    raise argparse.ArgumentTypeError(f"unknown implementation {name!r}")


def run_tag(impl: str, num_frames: int, objects: int = 1) -> str:
    """The file stem of one run's result, progress, masks and log in the work dir."""
    return f"{impl}_{num_frames}" + (f"_{objects}obj" if objects != 1 else "")


def run_worker(args) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    out = Path(args.result)
    rec = Recorder(out.with_suffix(".progress.jsonl"), args.frames, keep_frames=args.keep_frames)
    info = {"impl": args.impl, "frames": args.frames, "objects": args.objects, "image_size": args.image_size}
    folder = Path(args.folder)
    height, width = args.height, args.width
    clicks = object_clicks(args.objects, height, width)  # the red disc first
    info["rss_after_imports_mib"] = rec.event("imports")["rss_mib"]

    if args.impl.startswith("sam2_hf"):
        predictor = load_sam2_hf(args.impl, Path(args.weights), args.image_size)
        info["rss_after_model_mib"] = rec.event("model")["rss_mib"]
        track_with_predictor_api(predictor, folder, clicks, rec, info)

    elif args.impl == "meta":
        # the same seed gives the same weights
        predictor = reference_module().build_meta_model("tiny", "2.1", args.image_size, video=True)
        predictor.fill_hole_area = 0  # its hole filling is CUDA-only; on CPU it warns and skips it
        info["rss_after_model_mib"] = rec.event("model")["rss_mib"]
        with torch.inference_mode():
            track_with_predictor_api(predictor, folder, clicks, rec, info)

    elif args.impl == "transformers":
        import torch.nn.functional as F
        from transformers import (
            Sam2ImageProcessor,
            Sam2VideoInferenceSession,
            Sam2VideoModel,
            Sam2VideoProcessor,
            Sam2VideoVideoProcessor,
        )

        model = Sam2VideoModel.from_pretrained(args.weights).eval()
        info["rss_after_model_mib"] = rec.event("model")["rss_mib"]
        files = sorted(folder.glob("*.jpg"))
        t = time.perf_counter()
        video = torch.empty(len(files), 3, args.image_size, args.image_size)
        for i, path in enumerate(files):
            video[i] = preprocess_jpeg(path, args.image_size)
        session = Sam2VideoInferenceSession(video=video, video_height=height, video_width=width, dtype=torch.float32)
        del video  # the session holds views of it
        processor = Sam2VideoProcessor(Sam2ImageProcessor(), Sam2VideoVideoProcessor(), target_size=args.image_size)
        info["init_s"] = time.perf_counter() - t
        info["rss_after_init_mib"] = rec.event("init_state")["rss_mib"]
        processor.add_inputs_to_inference_session(
            session, 0, list(range(1, len(clicks) + 1)), input_points=[[[c] for c in clicks]],
            input_labels=[[[1] for _ in clicks]],
        )  # fmt: skip
        model(inference_session=session, frame_idx=0)
        rec.start()
        for output in model.propagate_in_video_iterator(session):
            masks = F.interpolate(output.pred_masks, size=(height, width), mode="bilinear", align_corners=False)
            rec.frame(output.frame_idx, masks)
    else:
        raise ValueError(f"unknown implementation {args.impl!r}")

    info["propagate_s"] = time.perf_counter() - rec.t0
    info["frames_tracked"] = rec.count
    info["s_per_frame"] = info["propagate_s"] / max(rec.count, 1)
    info["samples"] = rec.samples
    info["peak_rss_mib"] = peak_rss_mib()
    info["hwm_mib"] = hwm_mib()
    info["rss_end_mib"] = rss_mib()
    rec.event("done")
    np.savez_compressed(out.with_suffix(".masks.npz"), **{str(k): v for k, v in rec.masks.items()})
    out.write_text(json.dumps(info, indent=1))


# ------------------------------------------------------------------------------ driver
def run_prepare(args) -> None:
    """Subprocess: weights and the JPEG folders (keeps torch out of the driver, see `peak_rss_mib`)."""
    workdir = Path(args.workdir)
    prepare_weights(workdir, args.image_size)
    for n in args.lengths:
        write_jpeg_folder(workdir / f"frames_{n}", n, args.height, args.width)


def run_one(args, impl: str, num_frames: int, workdir: Path, keep_frames, objects: int = 1) -> dict:
    """One implementation x length (x object count, one click each) in a fresh subprocess; returns its result
    (partial if it timed out)."""
    tag = run_tag(impl, num_frames, objects)
    timeout = impl_timeout(args, impl)
    result = workdir / f"{tag}.json"
    for suffix in (".json", ".progress.jsonl", ".masks.npz"):
        result.with_suffix(suffix).unlink(missing_ok=True)
    tmp = workdir / f"{tag}_tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--worker", impl,
        "--frames", str(num_frames), "--folder", str(workdir / f"frames_{num_frames}"),
        "--weights", str(weights_paths(workdir, args.image_size).folder),
        "--result", str(result), "--image-size", str(args.image_size), "--height", str(args.height),
        "--width", str(args.width), "--threads", str(args.threads), "--objects", str(objects),
        "--keep-frames", *map(str, keep_frames),
    ]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(tmp), "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    print(f"[{time.strftime('%H:%M:%S')}] {tag} ...", flush=True)
    start = time.perf_counter()
    with open(workdir / f"{tag}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        spilled_max, status, last_poll = 0, "ok", 0.0
        while proc.poll() is None:
            time.sleep(1)
            now = time.perf_counter()
            if now - last_poll >= 10:
                spilled_max, last_poll = max(spilled_max, folder_bytes(tmp)), now
            if now - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)  # the process group of the child started above
                proc.wait()
                status = "timeout"
    wall = time.perf_counter() - start
    if status == "ok" and proc.returncode != 0:
        status = f"failed (exit {proc.returncode})"
    data = (
        json.loads(result.read_text()) if result.exists() else {"impl": impl, "frames": num_frames, "objects": objects}
    )
    data.update(status=status, wall_s=round(wall, 1), spilled_peak_bytes=spilled_max, timeout_s=timeout)
    progress = result.with_suffix(".progress.jsonl")
    if progress.exists():  # a killed run still has what it wrote
        rows = [json.loads(line) for line in progress.read_text().splitlines() if line.strip()]
        data.setdefault("samples", [r for r in rows if r["event"] == "frame"])
        data["peak_rss_so_far_mib"] = max((r["peak_rss_mib"] for r in rows), default=None)
        for r in rows:
            key = {
                "imports": "rss_after_imports_mib",
                "model": "rss_after_model_mib",
                "init_state": "rss_after_init_mib",
            }
            if r["event"] in key:
                data.setdefault(key[r["event"]], r["rss_mib"])
        if data["samples"] and "frames_tracked" not in data:
            last = data["samples"][-1]
            data["frames_tracked"], data["s_per_frame"] = last["frames"], last["elapsed_s"] / last["frames"]
    if status != "ok":
        log_tail = (workdir / f"{tag}.log").read_text(errors="replace").splitlines()[-5:]
        data["log_tail"] = log_tail
    shutil.rmtree(tmp, ignore_errors=True)
    peak = data.get("peak_rss_mib", data.get("peak_rss_so_far_mib")) or float("nan")
    print(f"    {status}: peak RSS {peak:.0f} MiB, {data.get('s_per_frame', float('nan')):.3f} s/frame, "
          f"{data.get('frames_tracked', 0)} frames, wall {wall:.0f} s", flush=True)  # fmt: skip
    return data


def impl_timeout(args, impl: str) -> float:
    caps = dict(item.split("=", 1) for item in args.impl_timeout)
    return float(caps.get(impl, args.timeout))


def compare_masks(workdir: Path, runs: list[dict]) -> list[dict]:
    """Each implementation's kept masks (every object's) vs the reference's on the same length, object count and
    frame."""
    import numpy as np

    rows = []
    by_key = {(r["impl"], r["frames"], r.get("objects", 1)): r for r in runs}
    for r in runs:
        objects = r.get("objects", 1)
        ref = by_key.get((REFERENCE, r["frames"], objects))
        if r["impl"] == REFERENCE or ref is None:
            continue
        a_path, b_path = (workdir / f"{run_tag(x, r['frames'], objects)}.masks.npz" for x in (r["impl"], REFERENCE))
        if not (a_path.exists() and b_path.exists()):
            continue
        ours, theirs = np.load(a_path), np.load(b_path)
        for key in sorted(set(ours.files) & set(theirs.files), key=int):
            a, b = ours[key], theirs[key]
            rows.append({
                "impl": r["impl"], "frames": r["frames"], "objects": objects, "frame_idx": int(key),
                "max_abs_logit_diff": float(np.abs(a - b).max()),
                "sign_mismatch_pixels": int(((a > 0) != (b > 0)).sum()),
                "foreground_pixels_reference": int((b > 0).sum()), "pixels": int(b.size),
            })  # fmt: skip
    return rows


def estimate_fit(prev: dict | None, num_frames: int, timeout: float) -> int:
    """The longest length (multiple of 500, <= num_frames) whose time, estimated from a shorter run, fits."""
    if not prev or prev.get("status") != "ok":
        return num_frames
    per_frame = prev["s_per_frame"] + prev.get("init_s", 0) / prev["frames"]
    overhead = prev["wall_s"] - prev["propagate_s"] - prev.get("init_s", 0)
    if overhead + num_frames * per_frame <= 0.9 * timeout:
        return num_frames
    return max(int((0.9 * timeout - overhead) / per_frame) // 500 * 500, 0)


def peak_of(r: dict):
    return r.get("peak_rss_mib") if r.get("status") == "ok" else None


def growth_stats(runs: list[dict], impl: str) -> dict:
    """MiB per 1,000 frames: slope of peak RSS over the completed lengths; RSS added by init_state per 1,000
    video frames (shortest vs longest run); RSS added while tracking, per 1,000 tracked frames (the longest
    run's curve, from its first sample at 100 tracked frames to its last)."""
    out = {}
    pts = [(r["frames"], peak_of(r)) for r in runs if r["impl"] == impl and peak_of(r) is not None]
    if len(pts) >= 2:
        per_frame = least_squares_slope(pts)
        out["peak_slope"] = None if per_frame is None else 1000 * per_frame
    mine = [r for r in runs if r["impl"] == impl and r.get("rss_after_init_mib") and r.get("rss_after_model_mib")]
    if len({r["frames"] for r in mine}) >= 2:  # constant costs (first encode, weights paged in) cancel out
        short, long_ = min(mine, key=lambda r: r["frames"]), max(mine, key=lambda r: r["frames"])
        delta = [r["rss_after_init_mib"] - r["rss_after_model_mib"] for r in (short, long_)]
        out["init_per_1000"] = 1000 * (delta[1] - delta[0]) / (long_["frames"] - short["frames"])
    if mine:
        longest = max(mine, key=lambda r: r["frames"])
        samples = longest.get("samples") or []
        if len(samples) >= 2 and samples[-1]["frames"] > samples[0]["frames"]:
            first, last = samples[0], samples[-1]
            out["tracking_per_1000"] = 1000 * (last["rss_mib"] - first["rss_mib"]) / (last["frames"] - first["frames"])
            out["tracking_from_run"] = f"{longest['frames']} frames, tracked {first['frames']}..{last['frames']}"
    return out


def hwm_check(runs: list[dict]) -> str:
    """ru_maxrss survives fork+exec on Linux, so it is compared with VmHWM (this process image's own peak)."""
    done = [r for r in runs if r.get("hwm_mib") is not None]
    off = [r for r in done if abs(r["peak_rss_mib"] - r["hwm_mib"]) > 2]
    if not off:
        return f"equal to VmHWM within 2 MiB in all {len(done)} completed runs"
    return "differs from VmHWM in " + ", ".join(f"{r['impl']}/{r['frames']}" for r in off)


def projected_peak(r: dict, tracking_per_1000):
    """A cut-off run's RSS at its last sample plus its tracking growth rate over the frames it did not reach."""
    samples = r.get("samples") or []
    if not samples or tracking_per_1000 is None:
        return None
    last = samples[-1]
    return max(
        r.get("peak_rss_so_far_mib") or 0, last["rss_mib"] + tracking_per_1000 * (r["frames"] - last["frames"]) / 1000
    )


def fmt(x, spec=".0f", missing="–"):
    return missing if x is None else format(x, spec)


def provenance_records(payload: dict) -> list[dict | None]:
    """One `RunProvenance` record per command of the results (None for a run from before they were recorded)."""
    return payload.get("provenance") or [None] * len(payload["commands"])


def write_report(out_dir: Path, payload: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "memory_vs_length.json").write_text(json.dumps(payload, indent=1))
    runs, impls = payload["runs"], payload["implementations"]
    lengths = sorted({r["frames"] for r in runs})
    by_key = {(r["impl"], r["frames"]): r for r in runs}
    m, st = payload["machine"], payload["settings"]
    base = "sam2_hf-disk"
    lines = [
        "# Peak RSS against video length (SAM 2 video tracking, CPU)",
        "",
        "Commands: " + "; ".join(f"`{c}`" for c in payload["commands"]) + "  ",
        (
            f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['ram_gib']} GiB RAM, shared with other work "
            f"(timings are noisy, RSS is not); Python {m['python']}, torch {m['torch']}, transformers "
            f"{m['transformers']}, sam2 {m['sam2']}, sam2-hf {m['sam2-hf']}; {st['threads']} torch threads per run.  "
        ),
        *(
            line
            for command, record in zip(payload["commands"], provenance_records(payload))
            for line in [f"Provenance of `{command}`:  ", *provenance_lines(record)]
        ),
        f"Setup: hiera-tiny (SAM 2.1), seeded random weights, image_size={st['image_size']}, "
        f"{st['width']}x{st['height']} "
        "synthetic JPEG frames, one object clicked on frame 0, full forward propagation, fp32, no hole filling. "
        "One fresh process per cell; peak = `ru_maxrss` at the end of the run ("
        + hwm_check(runs)
        + "). Runs started "
        + ", ".join(payload["started"])
        + ".",
        "",
        "## Peak RSS (MiB)",
        "",
        (
            "| implementation | "
            + " | ".join(f"{n} frames" for n in lengths)
            + " | peak slope / 1,000 frames | init_state / 1,000 video frames | tracking / 1,000 tracked frames |"
        ),
        "|---|" + "---|" * (len(lengths) + 3),
    ]
    for impl in impls:
        cells = []
        for n in lengths:
            r = by_key.get((impl, n))
            if r is None:
                cells.append("–")
            elif r["status"] == "ok":
                cells.append(f"{r['peak_rss_mib']:.0f}")
            else:
                proj = projected_peak(r, growth_stats(runs, impl).get("tracking_per_1000"))
                cells.append(
                    f"≥{fmt(r.get('peak_rss_so_far_mib'))} ({r['status']} after {r.get('frames_tracked', 0)} tracked "
                    f"frames{'' if proj is None else f'; ~{proj:.0f} projected at the end'})"
                )
        g = growth_stats(runs, impl)
        lines.append(f"| {impl} | " + " | ".join(cells) + f" | {fmt(g.get('peak_slope'), '.1f')} | "
                     f"{fmt(g.get('init_per_1000'), '.1f')} | {fmt(g.get('tracking_per_1000'), '.1f')} |")  # fmt: skip
    lines += ["", f"Peak RSS as a multiple of {base}'s on the same length:", "",
              "| implementation | " + " | ".join(f"{n} frames" for n in lengths) + " |",
              "|---|" + "---|" * len(lengths)]  # fmt: skip
    for impl in impls:
        cells = []
        for n in lengths:
            r, b = by_key.get((impl, n)), by_key.get((base, n))
            a_peak = (peak_of(r) or (r or {}).get("peak_rss_so_far_mib")) if r else None
            b_peak = peak_of(b) if b else None
            partial = r is not None and r["status"] != "ok"
            cells.append("–" if a_peak is None or b_peak is None else f"{'≥' if partial else ''}{a_peak / b_peak:.2f}x")
        lines.append(f"| {impl} | " + " | ".join(cells) + " |")

    lines += ["", "## Seconds per tracked frame (ratio to sam2_hf-disk), init_state seconds", "",
              "| implementation | " + " | ".join(f"{n} frames" for n in lengths) + " |",
              "|---|" + "---|" * len(lengths)]  # fmt: skip
    for impl in impls:
        cells = []
        for n in lengths:
            r, b = by_key.get((impl, n)), by_key.get((base, n))
            if r is None or "s_per_frame" not in r:
                cells.append("–")
                continue
            ratio = f" ({r['s_per_frame'] / b['s_per_frame']:.2f}x)" if b and b.get("s_per_frame") else ""
            init = f", init {r['init_s']:.1f} s" if "init_s" in r else ""
            note = "" if r["status"] == "ok" else f" [{r['status']}, {r.get('frames_tracked', 0)} frames]"
            cells.append(f"{r['s_per_frame']:.3f}{ratio}{init}{note}")
        lines.append(f"| {impl} | " + " | ".join(cells) + " |")

    lines += ["", "## RSS curves (MiB)", "", "After model load, after init_state, then at N tracked frames "
              "(every 100 frames, thinned).", ""]  # fmt: skip
    for r in sorted(runs, key=lambda r: (r["frames"], impls.index(r["impl"]) if r["impl"] in impls else 0)):
        s = r.get("samples") or []
        step = SAMPLE_EVERY * max(1, len(s) // 10)
        pts = ", ".join(f"{x['frames']}: {x['rss_mib']:.0f}" for x in s if x["frames"] % step == 0 or x is s[-1])
        spill = (
            f"; spill folder peaked at {r['spilled_peak_bytes'] / 2**20:.1f} MiB on disk (polled every 10 s)"
            if r.get("spilled_peak_bytes")
            else ""
        )
        lines.append(f"- {r['impl']}, {r['frames']} frames ({r['status']}): model {fmt(r.get('rss_after_model_mib'))}, "
                     f"init {fmt(r.get('rss_after_init_mib'))}; {pts}{spill}")  # fmt: skip
    lines += ["", f"## Masks vs the reference ({REFERENCE}) on the same run", "",
              "| implementation | video frames | frame | max abs logit diff | pixels of other sign "
              "| reference foreground px / all |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for c in payload["mask_check"]:
        lines.append(f"| {c['impl']} | {c['frames']} | {c['frame_idx']} | {c['max_abs_logit_diff']:.2e} | "
                     f"{c['sign_mismatch_pixels']} | {c['foreground_pixels_reference']} / {c['pixels']} |")  # fmt: skip
    if payload.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in payload["notes"]]
    (out_dir / "memory_vs_length.md").write_text("\n".join(lines) + "\n")


def run_all(args) -> None:
    out_dir = Path(args.out)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="sam2_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"work dir {workdir}", flush=True)
    command = "python " + " ".join([os.path.relpath(Path(__file__).resolve(), REPO), *sys.argv[1:]])
    settings = {k: getattr(args, k) for k in ("image_size", "height", "width", "threads")}
    payload = {"commands": [], "started": [], "provenance": [], "machine": machine_description(),
               "settings": settings, "implementations": list(IMPLEMENTATIONS), "runs": [], "mask_check": [],
               "notes": []}  # fmt: skip
    previous_file = out_dir / "memory_vs_length.json"
    if args.append and previous_file.exists():
        old = json.loads(previous_file.read_text())
        if old["settings"] != settings:
            raise SystemExit(f"--append: {previous_file} was made with other settings {old['settings']}")
        payload.update({k: old[k] for k in ("commands", "started", "runs", "mask_check", "notes")})
        payload["provenance"] = provenance_records(old)
    payload["commands"].append(command)
    payload["started"].append(time.strftime("%Y-%m-%d %H:%M:%S"))
    provenance = RunProvenance(args.threads)
    payload["provenance"].append(provenance.snapshot())
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", "prepare", "--workdir", str(workdir),
         "--image-size", str(args.image_size), "--height", str(args.height), "--width", str(args.width),
         "--lengths", *map(str, args.lengths)],
        check=True,
    )  # fmt: skip
    lengths = sorted(args.lengths)
    keep = sorted({0, 1, 2, 10, 50, 99, 999})
    previous: dict[str, dict] = {}
    for requested in lengths:
        for impl in args.impls:
            prev = previous.get(impl)
            if prev is not None and prev["status"].startswith("failed"):
                payload["notes"].append(
                    f"{impl}: {requested} frames skipped ({prev['status']} at {prev['frames']} frames)."
                )
                continue
            n = estimate_fit(prev, requested, impl_timeout(args, impl)) if args.fit else requested
            if n < requested:
                if n <= (prev["frames"] if prev else 0):
                    payload["notes"].append(
                        f"{impl}: {requested} frames skipped: estimated to exceed its "
                        f"{impl_timeout(args, impl):.0f} s cap."
                    )
                    continue
                payload["notes"].append(
                    f"{impl}: {requested} frames estimated to exceed its {impl_timeout(args, impl):.0f} s cap; "
                    f"ran {n} instead."
                )
                subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", "prepare",
                                "--workdir", str(workdir), "--image-size", str(args.image_size),
                                "--height", str(args.height), "--width", str(args.width), "--lengths", str(n)],
                               check=True)  # fmt: skip
            result = run_one(args, impl, n, workdir, [f for f in keep if f < n] + [n - 1])
            result["requested_frames"] = requested
            payload["runs"] = [r for r in payload["runs"] if (r["impl"], r["frames"]) != (impl, n)] + [result]
            previous[impl] = result
            fresh = compare_masks(workdir, payload["runs"])
            redone = {(c["impl"], c["frames"]) for c in fresh}
            payload["mask_check"] = [c for c in payload["mask_check"] if (c["impl"], c["frames"]) not in redone] + fresh
            payload["mask_check"].sort(key=lambda c: (c["frames"], c["impl"], c["frame_idx"]))
            payload["driver_peak_rss_mib"] = peak_rss_mib()
            payload["provenance"][-1] = provenance.snapshot()
            write_report(out_dir, payload)  # after every run, so partial results survive
    payload["provenance"][-1] = provenance.finish()
    write_report(out_dir, payload)
    print(f"wrote {out_dir / 'memory_vs_length.md'} and .json", flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--lengths", type=int, nargs="+", default=list(DEFAULT_LENGTHS))
    p.add_argument("--impls", nargs="+", default=list(IMPLEMENTATIONS), choices=IMPLEMENTATIONS)
    p.add_argument("--image-size", type=int, default=128, help="model input size S (multiple of 32; 1024 officially)")
    p.add_argument("--height", type=int, default=180, help="video frame height")
    p.add_argument("--width", type=int, default=320, help="video frame width")
    p.add_argument("--threads", type=int, default=2, help="torch threads per run")
    p.add_argument("--timeout", type=float, default=900, help="cap per run, seconds; a run past it is killed")
    p.add_argument("--impl-timeout", nargs="*", default=[], metavar="IMPL=SECONDS",
                   help="per-implementation caps overriding --timeout, e.g. sam2_hf-disk=3600")  # fmt: skip
    p.add_argument("--fit", action="store_true",
                   help="replace a length whose time, estimated from the shorter run, exceeds --timeout "
                        "by the longest multiple of 500 frames that fits")  # fmt: skip
    p.add_argument("--report-only", action="store_true", help="re-render the markdown from the existing JSON")
    p.add_argument("--append", action="store_true", help="add to (replace matching runs of) the existing results")
    p.add_argument("--workdir", help="frames, weights and per-run files (default: a new temp dir)")
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    # internal: one step in this process
    p.add_argument("--worker", type=worker_impl, dest="impl", help=argparse.SUPPRESS)
    p.add_argument("--objects", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--keep-frames", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.report_only:
        out_dir = Path(args.out)
        payload = json.loads((out_dir / "memory_vs_length.json").read_text())
        write_report(out_dir, payload)
    elif args.impl == "prepare":
        run_prepare(args)
    elif args.impl:
        run_worker(args)
    else:
        run_all(args)


if __name__ == "__main__":
    main()
