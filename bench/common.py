"""Shared pieces of the benchmarks: seeded random weights, synthetic inputs, RSS probes, machine facts.

Used by the suite (`python -m bench`) and by `bench/memory_vs_length.py`. Light at import time (no torch):
memory_vs_length's driver imports this module and must stay small.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOOP_FRAMES = 48  # the synthetic clip is generated as a 48-frame loop played back and forth
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ------------------------------------------------------------------------------ weights
@dataclass(frozen=True)
class Weights:
    """One seeded random model, as Meta's `.pt` (also read by Ultralytics, see `ultralytics_checkpoint`) and as a
    `save_pretrained` folder (sam2_hf and transformers)."""

    size: str
    version: str
    image_size: int
    pt: Path
    folder: Path


def weights_paths(workdir: Path, image_size: int, size: str = "tiny", version: str = "2.1") -> Weights:
    stem = f"{size}_{image_size}" if version == "2.1" else f"{size}_v{version}_{image_size}"
    return Weights(size, version, image_size, workdir / f"{stem}.pt", workdir / f"{stem}_hf")


def reference_module():
    """tests/reference.py (Meta's model with seeded random weights)."""
    if str(REPO / "tests") not in sys.path:
        sys.path.insert(0, str(REPO / "tests"))
    import reference

    return reference


def prepare_weights(workdir: Path, image_size: int, size: str = "tiny", version: str = "2.1") -> Weights:
    """Seeded random Meta model (tests/reference.py) -> `.pt` -> sam2_hf -> `save_pretrained` folder; cached."""
    weights = weights_paths(workdir, image_size, size, version)
    if weights.pt.exists() and (weights.folder / "config.json").exists():
        return weights
    from sam2_hf.predictors.video_predictor import Sam2VideoPredictor

    reference = reference_module()
    workdir.mkdir(parents=True, exist_ok=True)
    meta = reference.build_meta_model(size, version, image_size, video=True)
    reference.save_meta_checkpoint(meta, weights.pt)
    Sam2VideoPredictor.from_pretrained(weights.pt, image_size=image_size).model.save_pretrained(weights.folder)
    return weights


def ultralytics_checkpoint(weights: Weights) -> Path:
    """The weights' `.pt` under the name of Ultralytics' release file of that model (e.g. `sam2.1_t.pt`: its builder
    takes SAM 2 vs 2.1 from the name; names from sam2_hf's `PT_FORMATS`), hard-linked (copied where links fail)
    into a folder of its own; Meta's `{"model": state_dict}` is a layout Ultralytics reads."""
    import shutil

    from sam2_hf.models.checkpoint import PT_FORMATS

    letters = {size: letter for letter, size in next(f for f in PT_FORMATS if f.name == "Ultralytics").sizes.items()}
    path = (
        weights.pt.parent
        / f"ultralytics_{weights.pt.stem}"
        / f"sam2{'.1' if weights.version == '2.1' else ''}_{letters[weights.size]}.pt"
    )
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(weights.pt, path)
        except OSError:
            shutil.copyfile(weights.pt, path)
    return path


def load_meta_model(weights: Weights):
    """Meta's `SAM2VideoPredictor` (a `SAM2Base`, so it also serves the image predictor), built with the same
    config as the weights and loaded from their `.pt`; hole filling off (CUDA-only in the reference)."""
    import torch

    meta = reference_module().build_meta_model(weights.size, weights.version, weights.image_size, video=True)
    meta.load_state_dict(torch.load(weights.pt, map_location="cpu", weights_only=True)["model"])
    meta.fill_hole_area = 0
    return meta.eval()


# ------------------------------------------------------------------------------ input video
def synthetic_frames(num_frames: int, height: int, width: int):
    """Yield `num_frames` (H, W, 3) uint8 frames one at a time: sam2_hf's synthetic clip (moving shapes,
    an occluder) as a LOOP_FRAMES-frame loop played forwards then backwards, so any length has motion."""
    from sam2_hf.media.synthetic import synthetic_clip

    loop = synthetic_clip(num_frames=LOOP_FRAMES, height=height, width=width)
    period = 2 * (LOOP_FRAMES - 1)
    for t in range(num_frames):
        k = t % period
        yield loop[k if k < LOOP_FRAMES else period - k]


def write_jpeg_folder(folder: Path, num_frames: int, height: int, width: int) -> Path:
    """N JPEGs named 00000.jpg... (the layout Meta's loader reads); reused if already complete."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) == num_frames:
        return folder
    for i, frame in enumerate(synthetic_frames(num_frames, height, width)):
        Image.fromarray(frame).save(folder / f"{i:05d}.jpg", quality=95)
    return folder


def write_video_file(folder: Path) -> Path:
    """The JPEG folder's frames as one Motion-JPEG `.avi` next to it (for APIs that read only video files); reused."""
    import cv2

    path = folder.with_suffix(".avi")
    if path.exists():
        return path
    frames = sorted(folder.glob("*.jpg"))
    first = cv2.imread(str(frames[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24, (first.shape[1], first.shape[0]))
    for frame in frames:
        writer.write(cv2.imread(str(frame)))
    writer.release()
    return path


def preprocess_jpeg(path, image_size: int):
    """Meta's JPEG loader (= sam2_hf's VideoSession.pixel_values): (3, S, S) fp32."""
    import numpy as np
    import torch
    from PIL import Image

    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    image = Image.open(path).convert("RGB").resize((image_size, image_size))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - mean) / std


def object_clicks(num_objects: int, height: int, width: int) -> list[list[float]]:
    """One click (x, y) per object on frame 0 of the synthetic clip, each on another shape or place: the red
    disc, the blue square, the green square, the grey occluder (top, bottom), then background patches."""
    spots = [(0.15, 0.3), (0.2, 0.7), (0.75, 0.5), (0.52, 0.2), (0.52, 0.85), (0.35, 0.12), (0.88, 0.12), (0.88, 0.88)]
    if num_objects > len(spots):
        raise ValueError(f"at most {len(spots)} objects have a click of their own; got {num_objects}")
    return [[width * fx, height * fy] for fx, fy in spots[:num_objects]]


# ------------------------------------------------------------------------------ memory probes
def _proc_status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib() -> float:
    """Current resident set size of this process (VmRSS), MiB."""
    return _proc_status_mib("VmRSS")


def hwm_mib() -> float:
    """VmHWM: peak RSS of this process image since exec, MiB."""
    return _proc_status_mib("VmHWM")


def peak_rss_mib() -> float:
    """ru_maxrss of this process, MiB (Linux reports KiB). Linux carries the parent's peak over fork and
    exec, so a driver stays small (no torch) and this is checked against VmHWM (`hwm_mib`)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_bytes(path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while walking
                total += os.path.getsize(os.path.join(root, name))
    return total


def least_squares_slope(points) -> float | None:
    """Least-squares slope of (x, y) points; None with fewer than two distinct x."""
    points = list(points)
    if len({x for x, _ in points}) < 2:
        return None
    mx, my = (sum(v) / len(points) for v in zip(*points))
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


# ------------------------------------------------------------------------------ machine
def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_ticks() -> tuple[int, int, float]:
    """(busy clock ticks of all CPUs, this run's ticks, wall time) for `other_cores`. This run's ticks: user +
    system time of this process and of its waited-for subprocesses (proc(5) utime, stime, cutime, cstime)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return busy, sum(int(x) for x in own[11:15]), time.monotonic()


def other_cores(start: tuple, end: tuple) -> float:
    """CPU cores that other processes kept busy on average between two `cpu_ticks()` (the load this run shared
    the machine with; it excludes the run itself and the subprocesses it waited for, unlike the load
    average; a subprocess still running at `end` counts as other)."""
    ticks = os.sysconf("SC_CLK_TCK") * (end[2] - start[2])
    return max(0.0, ((end[0] - start[0]) - (end[1] - start[1])) / ticks) if ticks > 0 else 0.0


def machine_description() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    cpuinfo, meminfo = Path("/proc/cpuinfo").read_text().splitlines(), Path("/proc/meminfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    mem = next((ln.split()[1] for ln in meminfo if ln.startswith("MemTotal")), "0")
    info = {
        "cpu": cpu, "logical_cpus": os.cpu_count(), "ram_gib": round(int(mem) / 1024**2, 1),
        "python": platform.python_version(), "platform": platform.platform(),
    }  # fmt: skip
    for package in ("torch", "transformers", "sam2", "sam2-hf", "ultralytics", "samexporter"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = "not installed"
    return info


# --backends choices: backends by name (exact), and ENGINE:PRECISION rows running a lower-precision export
# (sam2_hf.backends.precision, not exact; written untimed, with its agreement report, by `export_lower_precision`).
LOWER_PRECISION_ROWS = ("onnxruntime:int8", "onnxruntime:int8-static", "openvino:int8-static", "openvino:bf16",
                        "openvino:fp16")  # fmt: skip
BENCH_BACKENDS = ("auto", "compile", "onnxruntime", "openvino", "torch-export", *LOWER_PRECISION_ROWS)
CALIBRATION_CLIP = dict(num_frames=8, height=480, width=640, seed=1)  # int8-static's frames (`synthetic_clip`)


def backend_row(backend: str) -> str:
    """The row name of sam2_hf on another backend."""
    return f"sam2_hf[{backend}]"


def auto_engines(predictors: dict) -> dict:
    """{row: which engine runs which part} of the rows whose backend is auto's `MixedBackend` (what it measured and
    chose, in its own words: `MixedBackend.describe`)."""
    return {
        row: p.backend.describe() for row, p in predictors.items() if hasattr(getattr(p, "backend", None), "engines")
    }


def backend_source(weights: Weights, backend: str) -> tuple[Path, str]:
    """(model to load, backend) of a sam2_hf[backend] row: the weights' folder on a backend by name, or for
    ENGINE:PRECISION the lower-precision export of the video model (made once, untimed, beside the export cache)
    on that engine."""
    if ":" not in backend:
        return weights.folder, backend
    from sam2_hf import Sam2VideoModel
    from sam2_hf.backends import export_cache
    from sam2_hf.backends.export import MANIFEST
    from sam2_hf.media.synthetic import synthetic_clip
    from sam2_hf.tasks.lower_precision import export_lower_precision

    engine, precision = backend.split(":")
    fmt = "openvino" if engine == "openvino" and precision == "int8-static" else "onnx"
    folder = export_cache() / f"bench-{weights.folder.name}-{precision}-{fmt}"
    if not (folder / MANIFEST).is_file():
        calibration = synthetic_clip(**CALIBRATION_CLIP) if precision == "int8-static" else None
        model = Sam2VideoModel.from_pretrained(weights.folder)
        export_lower_precision(model, folder, fmt, precision, calibration=calibration)
    return folder, engine


EXPORTED_ROWS = {"samexporter": "meta"}  # rows running another row's model as ONNX graphs: name -> that row


def with_model_flops(flops: dict) -> dict:
    """FLOP counts per row, the exported model's own count given to rows that run it as graphs (sam2_hf's exported
    runtimes, `EXPORTED_ROWS`): the counter sees torch operators only, and an exported graph computes the same
    model (its floor is the same)."""

    def source(name: str) -> str:
        return "sam2_hf" if name.startswith("sam2_hf[") else EXPORTED_ROWS.get(name, name)

    return {name: flops[source(name)] for name in flops}
