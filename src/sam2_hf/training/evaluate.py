"""Validation of a model being fine-tuned, measured as `sam2-hf eval` measures a saved model.

Images: 1-click and 5-click mIoU with simulated clicks (`evaluation.evaluate_clicks`, what `sam2-hf eval clicks`
runs). Videos: J&F with the first frame's masks as prompts, tracked by `Sam2VideoPredictor` with the settings of
`sam2-hf eval vos` (`vos_predictor_options`: Meta's `tools/vos_inference.py`, objects kept from overlapping)
and scored with the DAVIS conventions (`evaluation.score_video`: first and last frame left out; a 2-frame clip,
which `eval vos` cannot score, scores its second frame). The model runs in eval mode, as a loaded model does,
so the numbers the Trainer logs and the model card publishes are the ones those commands print for the saved
folder on the same data.
"""

from __future__ import annotations

import numpy as np
import torch

from ..evaluation.clicks import evaluate_clicks
from ..evaluation.scoring import score_video, summarize
from ..evaluation.vos import segment_video, vos_predictor_options
from ..predictors.image_predictor import Sam2ImagePredictor
from ..predictors.video_predictor import Sam2VideoPredictor
from .data_formats import AnnotatedVideo

NUM_CLICKS = 5
METRIC_NAMES = ("mIoU@1", "mIoU@5", "J&F", "J", "F")


@torch.no_grad()
def evaluate_model(model, videos: list[AnnotatedVideo], max_items: int | None = None) -> dict[str, float]:
    """Score `model` (a `Sam2VideoModel`) on annotated images and videos, in eval mode (the mask decoder's
    dynamic multimask selection on, dropout off, as in a loaded model); its mode is restored after.

    Args:
        model: the model to score, on its device.
        videos: annotated items (`ClipDataset.videos` of a validation dataset): 1-frame items are images,
            longer ones videos (see `video_jf` for which frames are scored).
        max_items: score at most this many images and this many videos (the first ones), for quick checks.

    Returns:
        {"mIoU@1", "mIoU@5"} (in [0, 1], mean over objects, when there are images) and {"J&F", "J", "F"}
        (in [0, 1], mean over objects, when there are videos with objects on their first frame).
    """
    images = [v for v in videos if len(v) == 1][:max_items]
    clips = [v for v in videos if len(v) > 1][:max_items]
    metrics, was_training = {}, model.training
    model.eval()
    try:
        if images:
            metrics.update(image_click_miou(Sam2ImagePredictor(model), images))
        if clips:
            metrics.update(video_jf(Sam2VideoPredictor(model, memory_policy="ram", **vos_predictor_options()), clips))
    finally:
        model.train(was_training)
    return metrics


def item_counts(videos: list[AnnotatedVideo]) -> dict[str, int]:
    """{"images": count of 1-frame items, "videos": count of longer ones}, the zero counts left out."""
    images = sum(len(v) == 1 for v in videos)
    return {k: n for k, n in (("images", images), ("videos", len(videos) - images)) if n}


def image_click_miou(predictor: Sam2ImagePredictor, images: list[AnnotatedVideo]) -> dict[str, float]:
    """mIoU after 1 and after `NUM_CLICKS` simulated clicks, over every object of every image."""
    ious = []
    for item in images:
        (image,) = item.read_frames([0])
        masks = item.read_masks(0)
        if masks:
            ious.append(evaluate_clicks(predictor, image, list(masks.values()), num_clicks=NUM_CLICKS))
    ious = np.concatenate(ious) if ious else np.zeros((0, NUM_CLICKS))
    return {"mIoU@1": float(ious[:, 0].mean()), f"mIoU@{NUM_CLICKS}": float(ious[:, -1].mean())}


def video_jf(predictor: Sam2VideoPredictor, clips: list[AnnotatedVideo]) -> dict[str, float]:
    """J&F of tracking every object of the first frame from its ground-truth mask, scored with the DAVIS
    conventions (`score_video`: the first and last frames left out); a 2-frame clip scores its second frame.
    Clips with no object on their first frame are left out; {} when no clip is left. `predictor` should have
    `vos_predictor_options()` (as `sam2-hf eval vos`) for the scores to be that command's."""
    scores = []
    for item in clips:
        masks = [item.read_masks(t) for t in range(len(item))]
        if not masks[0]:
            continue
        frames = np.stack(item.read_frames(list(range(len(item)))))
        predicted = segment_video(predictor, frames, {0: masks[0]})
        empty = np.zeros(frames.shape[1:3], dtype=bool)
        gt = {obj_id: np.stack([m.get(obj_id, empty) for m in masks]) for obj_id in masks[0]}
        pred = {obj_id: np.stack([predicted.mask(t, obj_id) for t in range(len(item))]) for obj_id in masks[0]}
        if len(item) == 2:  # nothing would be left without the first and last frame
            gt, pred = ({obj_id: m[1:] for obj_id, m in d.items()} for d in (gt, pred))
        scores += score_video(gt, pred, "davis", str(item.source), skip_first_and_last=len(item) > 2)
    if not scores:
        return {}
    summary = summarize(scores)
    return {"J&F": summary["J&F-Mean"], "J": summary["J-Mean"], "F": summary["F-Mean"]}
