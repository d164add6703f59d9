"""Video section: steady-state seconds per frame with a full memory bank, for several object counts.

Each object gets one positive click on frame 0 of the synthetic clip (its own shape or place, see
`common.object_clicks`); the clip is then propagated forwards. The implementations run in lockstep, one frame
each in turn (A B C A B C ...): frame 0 (init_state, prompts) and frames 1..W are untimed warm-up, frame W is
FLOP-counted, frame W+1 untimed again (torch.compile compiled again after the counted frame: 17.6 s, then 4.8 s),
and frames W+2..W+T+1 are timed, so with W >= 6 every timed frame attends to a full memory bank
(the prompted frame + the 6 previous ones; object pointers, 4 tokens each, keep growing to 16: a small part).
Each timed frame is one sample; its masks are compared with Meta's.

- `sam2_hf`       `sam2_hf.Sam2VideoPredictor` (objects of a frame tracked as one batch);
- `meta`          Meta's `SAM2VideoPredictor`, the same calls, built from the same `.pt` and config;
- `transformers`  `Sam2VideoModel.propagate_in_video_iterator` on a `Sam2VideoInferenceSession` holding the frames
                  preprocessed as Meta's JPEG loader does (its own video processor resizes bilinearly instead);
- `ultralytics`   (when installed) Ultralytics' `SAM2VideoPredictor` streaming the same frames from a Motion-JPEG
                  file (it reads video files only), one click per object, `stream=True`: a frame is read, encoded
                  and tracked per step. It letterboxes the frames (Meta stretches them), keeps objects from
                  overlapping and returns binary masks only, so its check is pixels of other sign, not logits;
- `sam2_hf@S`     optional (`low_res`): the same weights in a model built for image_size S < the exact one, a
                  non-exact speed option; compared with the exact sam2_hf masks by IoU instead.
All read the same JPEG folder, no hole filling (Meta's is CUDA-only, transformers has none), fp32.
"""

from __future__ import annotations

import gc
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from .agreement import logit_agreement, mask_agreement, mask_iou, worst
from .common import (
    Weights,
    auto_engines,
    backend_row,
    backend_source,
    least_squares_slope,
    load_meta_model,
    object_clicks,
    preprocess_jpeg,
    ultralytics_checkpoint,
    with_model_flops,
    write_jpeg_folder,
    write_video_file,
)
from .flops import count_flops
from .timing import timed, timing_table

REFERENCE = "meta"
EXACT = "sam2_hf"


def predictor_frames(predictor, folder: Path, clicks):
    """Meta's video-predictor API (Meta's own or sam2_hf's): yields (frame_idx, (N, 1, H, W) logits)."""
    state = predictor.init_state(str(folder))
    for obj_id, xy in enumerate(clicks, start=1):
        predictor.add_new_points_or_box(state, 0, obj_id, points=[xy], labels=[1])
    for frame_idx, _, masks in predictor.propagate_in_video(state):
        yield frame_idx, masks


def transformers_frames(model, folder: Path, clicks, image_size: int, height: int, width: int):
    """transformers' documented whole-video use; masks upscaled to the video size as its post-processing does."""
    from transformers import Sam2ImageProcessor, Sam2VideoInferenceSession, Sam2VideoProcessor, Sam2VideoVideoProcessor

    video = torch.stack([preprocess_jpeg(path, image_size) for path in sorted(folder.glob("*.jpg"))])
    session = Sam2VideoInferenceSession(video=video, video_height=height, video_width=width, dtype=torch.float32)
    processor = Sam2VideoProcessor(Sam2ImageProcessor(), Sam2VideoVideoProcessor(), target_size=image_size)
    obj_ids = list(range(1, len(clicks) + 1))
    processor.add_inputs_to_inference_session(
        session, 0, obj_ids, input_points=[[[xy] for xy in clicks]], input_labels=[[[1] for _ in clicks]]
    )
    model(inference_session=session, frame_idx=0)
    for output in model.propagate_in_video_iterator(session):
        masks = F.interpolate(output.pred_masks, size=(height, width), mode="bilinear", align_corners=False)
        yield output.frame_idx, masks


def ultralytics_frames(checkpoint: Path, folder: Path, clicks, image_size: int):
    """Ultralytics' documented video use (`predictor(source=video, points=..., labels=..., stream=True)`): yields
    (frame_idx, (N, 1, H, W) binary masks), each click its own object."""
    from ultralytics.models.sam import SAM2VideoPredictor

    overrides = dict(model=str(checkpoint), imgsz=image_size, conf=0.0, device="cpu", save=False, verbose=False)
    predictor = SAM2VideoPredictor(overrides=overrides)
    results = predictor(source=str(write_video_file(folder)), points=clicks, labels=[1] * len(clicks), stream=True)
    for frame_idx, result in enumerate(results):
        yield frame_idx, result.masks.data[:, None]


class VideoModels:
    """The models of the section, loaded once and shared by every object count."""

    def __init__(self, weights: Weights, low_res: int | None = None, backends=()):
        from transformers import Sam2VideoModel

        from sam2_hf.predictors.video_predictor import Sam2VideoPredictor

        self.weights = weights
        self.sam2_hf = Sam2VideoPredictor.from_pretrained(weights.folder, fill_hole_area=0)
        self.meta = load_meta_model(weights)
        self.transformers = Sam2VideoModel.from_pretrained(weights.folder).eval()
        self.ultralytics = ultralytics_checkpoint(weights) if importlib.util.find_spec("ultralytics") else None
        self.low_res = low_res
        self.sam2_hf_low_res = (
            Sam2VideoPredictor.from_pretrained(weights.pt, image_size=low_res, fill_hole_area=0) if low_res else None
        )
        self.exported = {}
        for b in backends:
            source, name = backend_source(weights, b)
            self.exported[backend_row(b)] = Sam2VideoPredictor.from_pretrained(source, backend=name, fill_hole_area=0)

    def streams(self, folder: Path, clicks, height: int, width: int) -> dict:
        """A fresh session per implementation, as generators of (frame_idx, masks); order = turn order."""
        streams = {
            EXACT: predictor_frames(self.sam2_hf, folder, clicks),
            REFERENCE: predictor_frames(self.meta, folder, clicks),
            "transformers": transformers_frames(
                self.transformers, folder, clicks, self.weights.image_size, height, width
            ),
        }
        if self.ultralytics:
            streams["ultralytics"] = ultralytics_frames(self.ultralytics, folder, clicks, self.weights.image_size)
        if self.low_res:
            streams[f"sam2_hf@{self.low_res}"] = predictor_frames(self.sam2_hf_low_res, folder, clicks)
        for name, predictor in self.exported.items():
            streams[name] = predictor_frames(predictor, folder, clicks)
        return streams


def advance(streams: dict, expected_frame: int) -> dict:
    """One frame of every stream, in turn; -> {name: masks}."""
    masks = {}
    for name, stream in streams.items():
        frame_idx, masks[name] = next(stream)
        assert frame_idx == expected_frame, (name, frame_idx, expected_frame)
    return masks


def track_objects(models: VideoModels, folder: Path, num_objects: int, warmup: int, timed_frames: int, hw) -> dict:
    """One object count: warm-up, one FLOP-counted frame, one untimed frame, `timed_frames` timed frames, masks
    checked."""
    height, width = hw
    streams = models.streams(folder, object_clicks(num_objects, height, width), height, width)
    for frame in range(warmup):
        advance(streams, frame)
    flops = {}
    for name, stream in streams.items():
        (frame_idx, _), flops[name] = count_flops(next, stream)
        assert frame_idx == warmup, (name, frame_idx, warmup)
    advance(streams, warmup + 1)
    first_timed = warmup + 2
    samples = {name: [] for name in streams}
    checks = {name: [] for name in streams}
    low_res_iou = []
    for frame in range(first_timed, first_timed + timed_frames):
        masks = {}
        for name, stream in streams.items():
            seconds, (frame_idx, masks[name]) = timed(next, stream)
            assert frame_idx == frame, (name, frame_idx, frame)
            samples[name].append(seconds)
        for name in (EXACT, REFERENCE, "transformers", *models.exported):
            checks[name].append(logit_agreement(masks[name], masks[REFERENCE]))
        if "ultralytics" in masks:
            checks["ultralytics"].append(mask_agreement(masks["ultralytics"], masks[REFERENCE]))
        if models.low_res:
            low_res_iou.append(mask_iou(masks[f"sam2_hf@{models.low_res}"], masks[EXACT]))
    del streams
    gc.collect()
    result = {
        "objects": num_objects,
        "flop_counted_frame": warmup,
        "timed_frames": list(range(first_timed, first_timed + timed_frames)),
        "timing": timing_table(samples, peers=(REFERENCE, "transformers", EXACT)),
        "flops": with_model_flops(flops),
        "agreement": {name: worst(rows) for name, rows in checks.items() if rows},
    }
    if low_res_iou:
        per_object = list(zip(*low_res_iou))
        result["low_res_iou"] = {"min_per_object": [min(v) for v in per_object],
                                 "mean_per_object": [sum(v) / len(v) for v in per_object]}  # fmt: skip
    return result


def marginal_cost(rows: list[dict]) -> dict:
    """Seconds per extra object per implementation, from the median s/frame of each object count: the slope of a
    least-squares line, and (t_most - t_fewest) / (most - fewest objects)."""
    if len(rows) < 2:
        return {}
    counts = [r["objects"] for r in rows]
    out = {}
    for name in rows[0]["timing"]:
        times = [r["timing"][name]["seconds"]["median"] for r in rows]
        out[name] = {"least_squares_slope": least_squares_slope(zip(counts, times)),
                     "end_to_end": (times[-1] - times[0]) / (counts[-1] - counts[0])}  # fmt: skip
    return out


@torch.inference_mode()
def run_video(weights: Weights, workdir: Path, objects, timed_frames, warmup: int, hw, low_res=None, backends=()):
    """The video section's results (JSON-ready). `timed_frames`: one count per entry of `objects`; `backends`:
    exported runtimes timed as rows sam2_hf[NAME]."""
    if warmup < 1:
        raise ValueError("warmup must be >= 1 (the last warm-up frame is the FLOP-counted one)")
    height, width = hw
    num_frames = 2 + warmup + max(timed_frames)
    folder = write_jpeg_folder(workdir / f"frames_{num_frames}_{height}x{width}", num_frames, height, width)
    models = VideoModels(weights, low_res, backends)
    rows = [track_objects(models, folder, n, warmup, t, hw) for n, t in sorted(zip(objects, timed_frames))]
    return {
        "settings": {"frame_hw": [height, width], "frames": num_frames, "warmup_frames": warmup,
                     "objects": list(objects), "timed_frames": list(timed_frames), "low_res": low_res,
                     "backends": list(backends), "auto_engines": auto_engines(models.exported)},
        "by_objects": rows,
        "marginal_cost_per_object": marginal_cost(rows),
    }  # fmt: skip
