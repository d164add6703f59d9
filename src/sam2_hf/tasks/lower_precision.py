"""Lower-precision exports written and measured: `export_lower_precision` writes an export in one of
backends/precision.py's precisions (bf16, fp16, int8, int8-static), calibrating a static int8 export on the inputs
each graph sees while the user's frames are tracked, and records in its `export.json` how far its masks are from
the exact ones on a clip (`agreement`). Such an export is never called exact.

Calibration and the agreement check prompt the clip the same way: one object per click of `CHECK_CLICKS` on its
first frame, tracked forward (an image model: each click on each frame).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..backends.export import convert_to_openvino, export_model, read_json, staging_folder, write_manifest
from ..backends.exported import ExportedBackend
from ..backends.precision import get_precision, quantize_graphs
from ..backends.torch import TorchBackend
from ..evaluation.metrics import db_eval_iou
from ..media.frames import open_frames
from ..media.synthetic import synthetic_clip
from ..predictors.image_predictor import Sam2ImagePredictor
from ..predictors.video_predictor import Sam2VideoPredictor
from ..processing.prompts import Prompt
from .tracker import Sam2Tracker

CHECK_CLICKS = ((0.5, 0.5), (0.25, 0.25), (0.75, 0.75))  # normalized (x, y), one object each, on the first frame
MAX_FRAMES = 8  # frames of a calibration / check clip used (the first ones)
SYNTHETIC_CLIP = dict(num_frames=MAX_FRAMES, height=240, width=320, seed=0)  # the check clip when none is given


def export_lower_precision(
    model, out: str | Path, format: str, precision: str, calibration=None, check_clip=None
) -> dict:
    """Write `model`'s graphs to `out` in `format` ("onnx" or "openvino") at `precision` and return the agreement
    report also stored in `out/export.json` (see `agreement`).

    Args:
        model (`Sam2VideoModel` or `Sam2Model`): float32; an image model gets the image graphs only.
        calibration: frames for "int8-static" (a video file, a frame folder, an array (T, H, W, 3) uint8 or a list
            of frames): its first `MAX_FRAMES` are tracked and each quantized graph is calibrated on its inputs.
        check_clip: frames the agreement is measured on (default: `calibration`, else a synthetic clip).

    Raises ValueError for an exact precision (use `export_model`), a precision that cannot be written in `format`,
    or "int8-static" without calibration frames; what `open_frames` raises for a `calibration` or `check_clip` it
    cannot read (before anything is exported); ImportError naming the extra for a missing tool.
    """
    spec = get_precision(precision, format)
    if spec.exact:
        raise ValueError(f"{precision} is the exact export: use export_model.")
    if spec.quantization == "static" and calibration is None:
        raise ValueError("int8-static calibrates on your frames: give calibration= (CLI: --calibration), a video or "
                         "a folder of frames like the ones it will run on.")  # fmt: skip
    # Both clips read now, each once: bad frames are refused before anything is exported.
    calibration_clip = check_frames(calibration) if spec.quantization == "static" else None
    if check_clip is None and calibration_clip is not None:
        check = calibration_clip
    else:
        check = check_frames(check_clip if check_clip is not None else calibration)
    out = Path(out)
    staging = staging_folder(out.parent)  # `out` gets only a finished export
    try:
        export_model(model, staging, "onnx")
        feeds = record_feeds(staging, calibration_clip[0]) if calibration_clip else None
        if format == "openvino":
            convert_to_openvino(staging)  # then quantized by OpenVINO's own quantizer (backends/precision.py)
        quantized = quantize_graphs(staging, spec, feeds)
        content = read_json(staging) | {"precision": precision, "quantized_graphs": quantized}
        if calibration_clip:
            content["calibration"] = calibration_clip[1]
        write_manifest(staging, content)
        engine = "openvino" if format == "openvino" else spec.engines[0]
        report = agreement_on(TorchBackend(model), ExportedBackend(staging, engine), *check)
        write_manifest(staging, content | {"agreement": report})
        out.mkdir(exist_ok=True)
        for file in staging.iterdir():
            file.replace(out / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def describe(frames) -> str:
    """A frames source as a report names it."""
    return str(frames) if isinstance(frames, str | Path) else f"{type(frames).__name__} of frames"


def check_frames(frames) -> tuple[np.ndarray, str]:
    """The first `MAX_FRAMES` frames of `frames` (None: `synthetic_clip(**SYNTHETIC_CLIP)`) as (T, H, W, 3) uint8,
    and what they are."""
    if frames is None:
        clip = synthetic_clip(**SYNTHETIC_CLIP)
        return clip, f"synthetic clip ({len(clip)} frames, {clip.shape[2]}x{clip.shape[1]}, media/synthetic.py)"
    source = open_frames(frames)
    clip = np.stack([np.asarray(source.frame(t)) for t in range(min(source.num_frames, MAX_FRAMES))])
    return clip, f"{describe(frames)} (first {len(clip)} frames, {clip.shape[2]}x{clip.shape[1]})"


def track_clicks(backend, clip: np.ndarray) -> list[dict]:
    """Per frame of `clip`, {object: (H, W) bool mask} on `backend`: with memory graphs one object per
    `CHECK_CLICKS` click on frame 0 tracked forward; an image model segments each click on each frame."""
    if backend.memory_attention is None:
        predictor = Sam2ImagePredictor(None, backend=backend)
        h, w = clip.shape[1:3]
        results = []
        for frame in clip:
            predictor.set_image(frame)
            masks = {}
            for i, (x, y) in enumerate(CHECK_CLICKS, start=1):
                out, _, _ = predictor.predict(np.array([[x * w, y * h]]), np.array([1]), multimask_output=False)
                masks[i] = out[0].astype(bool)
            results.append(masks)
        return results
    tracker = Sam2Tracker(Sam2VideoPredictor(None, backend=backend, add_all_frames_to_correct_as_cond=True))
    prompts = [
        Prompt(frame=0, obj_id=i, points=[xy], labels=[1], normalized=True) for i, xy in enumerate(CHECK_CLICKS, 1)
    ]
    masklets = tracker.track(clip, prompts, direction="forward", progress=False)
    return [masklets.masks(t) for t in range(len(clip))]


def agreement(exact, approximate, frames=None) -> dict:
    """How far `approximate`'s masks are from `exact`'s (two backends of the same weights) on `frames` (see
    `check_frames`) prompted as `track_clicks` does: per object the mean and lowest IoU over frames (J, 1 where
    both are empty), the pixels whose mask differs (of other sign), and the exact masks' pixels (so that an
    agreement on empty masks shows as such)."""
    return agreement_on(exact, approximate, *check_frames(frames))


def agreement_on(exact, approximate, clip: np.ndarray, source: str) -> dict:
    """`agreement` on frames already read by `check_frames`: `clip` (T, H, W, 3) uint8, described as `source`."""
    with torch.inference_mode():
        reference, approx = track_clicks(exact, clip), track_clicks(approximate, clip)
    objects = {}
    for obj in reference[0]:
        ious = [db_eval_iou(r[obj], a[obj]) for r, a in zip(reference, approx, strict=True)]
        objects[str(obj)] = {
            "iou_mean": float(np.mean(ious)),
            "iou_min": float(np.min(ious)),
            "pixels_of_other_sign": int(sum((r[obj] != a[obj]).sum() for r, a in zip(reference, approx, strict=True))),
            "exact_mask_pixels": int(sum(r[obj].sum() for r in reference)),
        }
    total = clip.shape[0] * clip.shape[1] * clip.shape[2] * len(objects)
    return {
        "clip": source,
        "prompts": f"one object per click at {list(CHECK_CLICKS)} (normalized x, y)"
        + (" on frame 0, tracked forward" if exact.memory_attention is not None else ", on every frame"),
        "iou_mean": float(np.mean([o["iou_mean"] for o in objects.values()])),
        "iou_min": float(min(o["iou_min"] for o in objects.values())),
        "pixels_of_other_sign": sum(o["pixels_of_other_sign"] for o in objects.values()),
        "pixels": total,
        "objects": objects,
    }


class RecordingGraph:
    """A graph runner that keeps every call's inputs ({input name: array}) in `feeds` and runs the graph."""

    def __init__(self, graph, feeds: list):
        self.graph, self.feeds = graph, feeds

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        self.feeds.append({n: x.detach().cpu().numpy() for n, x in zip(self.graph.names, inputs, strict=True)})
        return self.graph(*inputs)


def record_feeds(folder: Path, clip: np.ndarray) -> dict[str, list[dict]]:
    """The inputs each graph of the float32 ONNX export in `folder` receives while `clip` (T, H, W, 3) is
    tracked (`track_clicks`): {graph name: [{input name: array}, ...]}."""
    feeds: dict[str, list] = {}
    wrap: Callable = lambda name, graph: RecordingGraph(graph, feeds.setdefault(name, []))
    with torch.inference_mode():
        track_clicks(ExportedBackend(folder, "onnxruntime", wrap=wrap), clip)
    return feeds
