"""Interactive video segmentation (promptable visual segmentation, PVS), the SAM 2 paper's offline protocol
at small scale: k simulated clicks on each object's first frame, tracking, then rounds of one correction
click per object on its worst frame, re-tracking after each; J&F is reported after every round.

    predictor = Sam2VideoPredictor.from_pretrained(model, add_all_frames_to_correct_as_cond=True)
    rounds = evaluate_pvs(predictor, frames, {1: gt_masks_of_object_1}, num_clicks=3, num_rounds=3)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..media.frames import open_frames
from .clicks import next_click
from .metrics import db_eval_boundary, db_eval_iou


def evaluate_pvs(
    predictor, video, gt_masks: Mapping, num_clicks: int = 3, num_rounds: int = 3, score_thresh: float = 0.0
) -> list[dict]:
    """J&F of click-prompted tracking after the first-frame clicks and after each correction round.

    predictor: a `Sam2VideoPredictor` with `add_all_frames_to_correct_as_cond=True` (the paper's interactive
    setting: a corrected frame becomes a conditioning frame, so re-tracking keeps the correction).
    video: frames as `init_state` takes them. gt_masks: {obj_id: (T, H, W) bool} on every frame.
    Round 0: per object, `num_clicks` clicks from `next_click` on the first frame where its ground truth is
    non-empty, each computed from the mask the previous click gave; then tracking forward from the earliest
    such frame (frames before an object's first frame count as empty). Rounds 1..num_rounds: per object one
    click from `next_click` on its frame of lowest J&F (first on a tie; none when every frame is exact),
    then tracking again. Scores: J (`db_eval_iou`) and F (`db_eval_boundary`) over all frames per object,
    averaged over frames, then objects.
    Returns [{"round", "J&F", "J", "F", "clicks"}] for rounds 0..num_rounds, scores in [0, 1], "clicks" the
    total number of clicks so far. Raises ValueError for the predictor option, num_clicks < 1 or num_rounds
    < 0, no object, mis-sized masks or an object whose ground truth is empty on every frame.
    """
    if not predictor.add_all_frames_to_correct_as_cond:
        raise ValueError("evaluate_pvs needs a predictor with add_all_frames_to_correct_as_cond=True.")
    if num_clicks < 1 or num_rounds < 0:
        raise ValueError(f"num_clicks must be at least 1 and num_rounds at least 0; got {num_clicks}, {num_rounds}.")
    if not gt_masks:
        raise ValueError("No object in the ground truth: nothing to click on.")
    frames = open_frames(video)
    shape = (frames.num_frames, frames.height, frames.width)
    gt = {obj_id: np.asarray(m).astype(bool) for obj_id, m in gt_masks.items()}
    for obj_id, masks in gt.items():
        if masks.shape != shape:
            raise ValueError(f"Ground truth of object {obj_id} is {masks.shape}; the video is {shape}.")
        if not masks.any():
            raise ValueError(f"Ground truth of object {obj_id} is empty on every frame.")
    state, clicks = predictor.init_state(frames), 0
    for obj_id, masks in gt.items():
        clicks += _first_frame_clicks(predictor, state, obj_id, masks, num_clicks, score_thresh)
    pred = _track(predictor, state, shape, score_thresh)
    results = [_score(gt, pred, 0, clicks)]
    for round_idx in range(1, num_rounds + 1):
        for obj_id, masks in gt.items():
            clicks += _correct(predictor, state, obj_id, masks, pred[obj_id])
        pred = _track(predictor, state, shape, score_thresh)
        results.append(_score(gt, pred, round_idx, clicks))
    return results


def _click(predictor, state, frame_idx, obj_id, click):
    x, y, label = click
    _, obj_ids, logits = predictor.add_new_points_or_box(
        state, frame_idx, obj_id, points=[[x, y]], labels=[label], clear_old_points=False
    )
    return logits[list(obj_ids).index(obj_id), 0]


def _first_frame_clicks(predictor, state, obj_id, masks, num_clicks, score_thresh) -> int:
    frame_idx = int(np.argmax(masks.any(axis=(1, 2))))
    pred = None
    for count in range(num_clicks):
        click = next_click(masks[frame_idx], pred)
        if click is None:
            return count
        pred = (_click(predictor, state, frame_idx, obj_id, click) > score_thresh).cpu().numpy()
    return num_clicks


def _correct(predictor, state, obj_id, masks, pred) -> int:
    jf = (db_eval_iou(masks, pred) + db_eval_boundary(masks, pred)) / 2
    frame_idx = int(np.argmin(jf))
    click = next_click(masks[frame_idx], pred[frame_idx])
    if click is None:
        return 0
    _click(predictor, state, frame_idx, obj_id, click)
    return 1


def _track(predictor, state, shape, score_thresh) -> dict:
    """{obj_id: (T, H, W) bool} from propagating forward from the first prompted frame."""
    pred = {obj_id: np.zeros(shape, dtype=bool) for obj_id in state.obj_ids}
    for frame_idx, obj_ids, logits in predictor.propagate_in_video(state):
        for i, obj_id in enumerate(obj_ids):
            pred[obj_id][frame_idx] = (logits[i, 0] > score_thresh).cpu().numpy()
    return pred


def _score(gt, pred, round_idx, clicks) -> dict:
    j = float(np.mean([np.mean(db_eval_iou(gt[k], pred[k])) for k in gt]))
    f = float(np.mean([np.mean(db_eval_boundary(gt[k], pred[k])) for k in gt]))
    return {"round": round_idx, "J&F": (j + f) / 2, "J": j, "F": f, "clicks": clicks}
