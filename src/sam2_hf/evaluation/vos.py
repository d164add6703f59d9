"""Semi-supervised video object segmentation inference, as Meta's `tools/vos_inference.py`.

Given each object's ground-truth mask on its first frame (or on every annotated frame), SAM 2 tracks
the objects through the video and the thresholded masks are written in the dataset's own layout
(see `layout`), ready for the official scorers or `sam2_hf.evaluation.scoring`.

Two ways to run, as in Meta's tool:
- all objects together (`vos_inference`), every object given on the first input frame (DAVIS, MOSE,
  SA-V); the predictor tracks them as one batch where their memories line up;
- each object on its own from its first appearance (`vos_separate_inference_per_object`, the tool's
  `--track_object_appearing_later_in_video`, for YouTube-VOS and LVOS), the per-object scores merged
  per frame (non-overlapping unless per-object PNGs are written).

Differences from the tool, none of which changes a mask: frames are decoded lazily; masks are written
(and, in per-object mode, merged) frame by frame instead of after the whole video, the per-object runs
advancing in step and sharing the image features of each frame; a sequence is written to a hidden
`.<seq>.partial` folder renamed when complete, so an interrupted run resumes by skipping the sequences
whose folders exist.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..media.frames import ImageFolderFrames, open_frames
from ..models.outputs import NO_OBJECT_SCORE
from ..predictors.video_predictor import Sam2VideoPredictor
from ..processing.mask_postprocessing import apply_non_overlapping_constraints
from ..tasks.tracker import Masklets
from .layout import (
    DAVIS_PALETTE,
    check_vos_folders,
    list_sequences,
    object_folders,
    read_frame_masks,
    save_frame_masks,
)
from .scoring import ObjectScore, score_video

LATER_OBJECTS_HINT = (
    "objects that do not all appear on the first frame (YouTube-VOS, LVOS) are tracked each from its own first "
    "mask with `sam2-hf eval vos --track-object-appearing-later-in-video` (in Python, "
    "track_object_appearing_later_in_video=True or separate_objects=True)"
)


def vos_predictor_options(per_obj_png_file: bool = False) -> dict:
    """`Sam2VideoPredictor` options of Meta's `tools/vos_inference.py`: its post-processing off (no hole
    filling, clicked masks not binarized for memory: Meta's `apply_postprocessing=False`) and objects kept
    from overlapping (`non_overlap_masks`) unless per-object PNGs are written. Meta's dynamic multimask
    fallback is off there too; it never acts on mask prompts and multimask tracking, so it is left as is."""
    return {"fill_hole_area": 0, "binarize_mask_from_pts_for_mem_enc": False, "non_overlap_masks": not per_obj_png_file}


def iter_vos_masks(
    predictor: Sam2VideoPredictor,
    video,
    input_masks: Mapping[int, Mapping[int, np.ndarray]],
    score_thresh: float = 0.0,
    separate_objects: bool = False,
) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    """Track objects from mask prompts; yields (frame_idx, {obj_id: (H, W) bool}) frame by frame, in order.

    predictor: a `Sam2VideoPredictor` (see `vos_predictor_options` for the tool's settings).
    video: frames as `Sam2VideoPredictor.init_state` takes them (folder, file, (T, H, W, 3) uint8 array,
    list of frames or a FrameSource). input_masks: {frame_idx: {obj_id: (H, W) bool}} at video resolution.
    score_thresh: a pixel is foreground where its logit is > score_thresh.
    separate_objects: False -> Meta's `vos_inference`: every object must be on the first input frame
    (ValueError naming the object otherwise); frames from the first input frame on are yielded.
    True -> Meta's `vos_separate_inference_per_object`: each object tracked alone, forward from its first
    input frame; every frame is yielded, objects not started yet empty, merged with
    `apply_non_overlapping_constraints` when `predictor.non_overlap_masks`.
    Raises ValueError when no object is given.
    """
    if not any(len(masks) for masks in input_masks.values()):
        raise ValueError(f"No object masks to start from (input masks on frames {sorted(input_masks)}).")
    frames = open_frames(video)
    if separate_objects:
        yield from _iter_separate(predictor, frames, input_masks, score_thresh)
        return
    _check_first_frame_objects(input_masks)
    state = predictor.init_state(frames)
    for frame_idx in sorted(input_masks):
        for obj_id, mask in input_masks[frame_idx].items():
            predictor.add_new_mask(state, frame_idx, obj_id, mask)
    for frame_idx, obj_ids, logits in predictor.propagate_in_video(state):
        yield frame_idx, {obj_id: (logits[i, 0] > score_thresh).cpu().numpy() for i, obj_id in enumerate(obj_ids)}


def _check_first_frame_objects(input_masks) -> None:
    frames = sorted(t for t, masks in input_masks.items() if masks)
    known = set(input_masks[frames[0]])
    for frame_idx in frames[1:]:
        new = sorted(set(input_masks[frame_idx]) - known)
        if new:
            raise ValueError(
                f"Objects {new} appear on frame {frame_idx} but not on the first input frame {frames[0]}: "
                + LATER_OBJECTS_HINT
                + "."
            )


def _iter_separate(predictor, frames, input_masks, score_thresh):
    per_object: dict[int, dict[int, np.ndarray]] = {}
    for frame_idx in sorted(input_masks):
        for obj_id, mask in input_masks[frame_idx].items():
            per_object.setdefault(obj_id, {})[frame_idx] = mask
    object_ids = sorted(per_object)
    starts = {obj_id: min(per_object[obj_id]) for obj_id in object_ids}
    streams, features = {}, None
    for obj_id in object_ids:
        state = predictor.init_state(frames)
        features = state.feature_cache if features is None else features
        state.feature_cache = features  # the runs share each frame's image features
        for frame_idx, mask in per_object[obj_id].items():
            predictor.add_new_mask(state, frame_idx, obj_id, mask)
        streams[obj_id] = predictor.propagate_in_video(state, start_frame_idx=starts[obj_id], reverse=False)
    for frame_idx in range(frames.num_frames):
        scores = torch.full((len(object_ids), 1, frames.height, frames.width), NO_OBJECT_SCORE)
        for i, obj_id in enumerate(object_ids):
            if frame_idx >= starts[obj_id]:
                _, _, logits = next(streams[obj_id])
                scores[i] = logits[0].float().cpu()
        if predictor.non_overlap_masks:
            scores = apply_non_overlapping_constraints(scores)
        yield frame_idx, {obj_id: (scores[i, 0] > score_thresh).numpy() for i, obj_id in enumerate(object_ids)}


def segment_video(predictor, video, input_masks, score_thresh: float = 0.0, separate_objects: bool = False) -> Masklets:
    """`iter_vos_masks` collected as `Masklets` (masks stored as RLE): the in-memory entry point, e.g. for
    scoring a model during training. Arguments and errors as `iter_vos_masks`."""
    frames = open_frames(video)
    masklets = Masklets(frames.height, frames.width, frames.num_frames, frames.fps)
    for frame_idx, masks in iter_vos_masks(predictor, frames, input_masks, score_thresh, separate_objects):
        masklets.add(frame_idx, masks)
    return masklets


def read_input_masks(sequence_dir, frame_names, per_obj_png_file=False, use_all_masks=False, separate_objects=False):
    """The prompts of one sequence as Meta's tool picks them: ({frame_idx: {obj_id: (H, W) bool}}, palette).

    sequence_dir: `Annotations/<seq>`; frame_names: the video's frame stems in order.
    Default: the first frame's masks. use_all_masks: every annotated frame's masks. separate_objects:
    each object's first non-empty mask (every non-empty one with `use_all_masks`), wherever it appears.
    palette: of the last mask PNG read (None if it had none). Raises ValueError naming the sequence when
    a needed mask file is missing or no object is found.
    """
    sequence_dir = Path(sequence_dir)
    if not sequence_dir.is_dir():
        raise ValueError(f"No annotation folder {sequence_dir}.")
    if separate_objects:
        return _read_each_object_inputs(sequence_dir, frame_names, per_obj_png_file, use_all_masks)
    indices = _annotated_frames(sequence_dir, frame_names, per_obj_png_file) if use_all_masks else [0]
    inputs, palette = {}, None
    for frame_idx in indices:
        try:
            inputs[frame_idx], palette = read_frame_masks(sequence_dir, frame_names[frame_idx], per_obj_png_file)
        except FileNotFoundError as error:
            raise ValueError(f"{sequence_dir}: no mask for frame {frame_names[frame_idx]} ({error}); "
                             + LATER_OBJECTS_HINT + ".") from error  # fmt: skip
    if not any(inputs.values()):
        raise ValueError(f"{sequence_dir}: no object on frames {indices}; " + LATER_OBJECTS_HINT + ".")
    return inputs, palette


def _annotated_frames(sequence_dir: Path, frame_names, per_obj_png_file) -> list[int]:
    folders = list(object_folders(sequence_dir).values()) if per_obj_png_file else [sequence_dir]
    found = [i for i, name in enumerate(frame_names) if any((f / f"{name}.png").exists() for f in folders)]
    if not found:
        raise ValueError(f"{sequence_dir}: no mask PNG named after any frame ({frame_names[0]}.png, ...).")
    return found


def _read_each_object_inputs(sequence_dir: Path, frame_names, per_obj_png_file, use_all_masks):
    inputs, palette, seen = {}, None, set()
    for frame_idx, name in enumerate(frame_names):
        masks, frame_palette = read_frame_masks(sequence_dir, name, per_obj_png_file, allow_missing=True)
        palette = frame_palette or palette
        for obj_id, mask in masks.items():
            if mask.any() and (use_all_masks or obj_id not in seen):
                inputs.setdefault(frame_idx, {})[obj_id] = mask
                seen.add(obj_id)
    if not inputs:
        raise ValueError(f"{sequence_dir}: no object in any mask.")
    return inputs, palette


def run_vos_inference(
    predictor: Sam2VideoPredictor,
    base_video_dir,
    input_mask_dir,
    output_mask_dir,
    video_names=None,
    score_thresh: float = 0.0,
    use_all_masks: bool = False,
    per_obj_png_file: bool = False,
    track_object_appearing_later_in_video: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> list[str]:
    """Meta's `tools/vos_inference.py` over a dataset: for each sequence, frames from
    `base_video_dir/<seq>/` (JPEG or other image files named by frame), prompts from `input_mask_dir/<seq>/`
    (see `read_input_masks`), masks written to `output_mask_dir/<seq>/` in the input's layout with the
    input's palette (`DAVIS_PALETTE` when it has none).

    video_names: the sequences (default: every sub-folder of `base_video_dir`). The options are the tool's
    flags; `track_object_appearing_later_in_video` selects per-object inference (`iter_vos_masks`).
    Sequences whose output folder exists are skipped unless `overwrite`; a sequence is written to
    `.<seq>.partial` and renamed when complete. progress: a tqdm bar over sequences.
    Returns the sequences run. Raises ValueError listing every sequence whose folders do not fit the
    layout before running any (`check_vos_folders`), and naming the sequence on bad masks found while
    running (earlier sequences stay written).
    """
    out_root = Path(output_mask_dir)
    names = list_sequences(base_video_dir) if video_names is None else list(video_names)
    check_vos_folders(base_video_dir, input_mask_dir, names, per_obj_png_file)
    done = []
    for name in tqdm(names, desc="VOS inference", unit="video", disable=not progress):
        if (out_root / name).exists() and not overwrite:
            continue
        run_vos_sequence(predictor, base_video_dir, input_mask_dir, output_mask_dir, name, score_thresh,
                         use_all_masks, per_obj_png_file, track_object_appearing_later_in_video)  # fmt: skip
        done.append(name)
    return done


def run_vos_sequence(
    predictor: Sam2VideoPredictor,
    base_video_dir,
    input_mask_dir,
    output_mask_dir,
    name: str,
    score_thresh: float = 0.0,
    use_all_masks: bool = False,
    per_obj_png_file: bool = False,
    track_object_appearing_later_in_video: bool = False,
) -> Path:
    """One sequence of `run_vos_inference` (same arguments, `name` the sequence): its masks written to
    `.<name>.partial` and renamed to `output_mask_dir/<name>` (replacing what was there) when complete.
    Returns the sequence's output folder; raises ValueError naming the sequence on bad masks."""
    out_root = Path(output_mask_dir)
    target = out_root / name
    frames = ImageFolderFrames(Path(base_video_dir) / name)
    frame_names = [path.stem for path in frames.files]
    inputs, palette = read_input_masks(
        Path(input_mask_dir) / name,
        frame_names,
        per_obj_png_file,
        use_all_masks,
        track_object_appearing_later_in_video,
    )
    partial = out_root / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    stream = iter_vos_masks(predictor, frames, inputs, score_thresh, track_object_appearing_later_in_video)
    for frame_idx, masks in stream:
        save_frame_masks(partial, frame_names[frame_idx], masks, frames.height, frames.width,
                         per_obj_png_file, palette or DAVIS_PALETTE)  # fmt: skip
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return target


def evaluate_video(
    predictor, video, gt_masks, protocol: str = "davis", score_thresh=0.0, separate_objects=False, sequence=""
) -> list[ObjectScore]:
    """Semi-supervised J&F of one video in memory: track from the ground truth's first-frame masks (each
    object's first non-empty mask with `separate_objects`) and score every frame (`score_video`).

    predictor: a `Sam2VideoPredictor` (e.g. on a model being fine-tuned; `vos_predictor_options` gives
    Meta's evaluation settings). video: frames as `init_state` takes them. gt_masks: {obj_id: (T, H, W)
    bool} on every frame. Returns [ObjectScore] (`summarize` gives the J&F). Raises ValueError as
    `iter_vos_masks` and `score_video` do.
    """
    gt = {obj_id: np.asarray(m).astype(bool) for obj_id, m in gt_masks.items()}
    inputs: dict[int, dict] = {}
    for obj_id, masks in gt.items():
        present = np.flatnonzero(masks.any(axis=(1, 2)))
        frame_idx = int(present[0]) if separate_objects and len(present) else 0
        if masks[frame_idx].any():
            inputs.setdefault(frame_idx, {})[obj_id] = masks[frame_idx]
    masklets = segment_video(predictor, video, inputs, score_thresh, separate_objects)
    num_frames = next(iter(gt.values())).shape[0] if gt else 0
    pred = {obj_id: np.stack([masklets.mask(t, obj_id) for t in range(num_frames)]) for obj_id in masklets.obj_ids}
    return score_video(gt, pred, protocol, sequence)
