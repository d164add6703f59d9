"""Semi-supervised VOS inference vs Meta's `tools/vos_inference.py` loop driven with Meta's SAM2VideoPredictor on
the same weights (the content-bearing ones, both sides in float64: why in tests/test_video_parity.py), on a
generated DAVIS-style folder (palette PNGs), its SA-V-style copy (per-object PNGs) and a copy where an object
enters later (per-object inference). The tool is not shipped in Meta's wheel, so its two loops are transcribed
below (`meta_vos_inference`, `meta_separate_inference`)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_hf.evaluation import (
    DAVIS_PALETTE,
    evaluate_video,
    run_vos_inference,
    score_folder,
    summarize,
    vos_predictor_options,
)
from sam2_hf.evaluation.layout import save_ann_png, save_frame_masks
from sam2_hf.media.synthetic import save_jpeg_folder
from sam2_hf.predictors.video_predictor import Sam2VideoPredictor
from test_video_parity import patch_reference_memory_dtype

from reference import double_precision, meta_in_double

IMAGE_SIZE = 256
H, W = 64, 96


# ------------------------------------------------------------------------------ Meta's tool, transcribed
def tool_frame_names(video_dir):
    names = [p.stem for p in video_dir.iterdir() if p.suffix in (".jpg", ".jpeg", ".JPG", ".JPEG")]
    return sorted(names, key=int)


def tool_load_masks(mask_dir, frame_name, per_obj_png_file, allow_missing=False):
    """The tool's `load_masks_from_dir` -> {object_id: (H, W) bool}."""
    if not per_obj_png_file:
        path = mask_dir / f"{frame_name}.png"
        if allow_missing and not path.exists():
            return {}
        mask = np.array(Image.open(path)).astype(np.uint8)
        return {int(i): mask == i for i in np.unique(mask) if i > 0}
    masks = {}
    for object_dir in mask_dir.iterdir():
        path = object_dir / f"{frame_name}.png"
        if allow_missing and not path.exists():
            continue
        masks[int(object_dir.name)] = np.array(Image.open(path)).astype(np.uint8) > 0
    return masks


TOLERANCE = 1e-5  # logits of sam2_hf and Meta agree to this (tests/test_video_parity.py)


def tool_masks(predictor, scores, obj_ids, non_overlap, score_thresh):
    """The tool's thresholding of one frame's (N, 1, H, W) logits -> ({object_id: (H, W) bool}, near_threshold,
    ties): (H, W) bool pixels whose result a logit change within TOLERANCE could flip, because an object's logit
    is at the threshold, or (with non-overlapping objects) because two objects' logits tie at the top."""
    raw = scores
    if non_overlap:
        scores = predictor._apply_non_overlapping_constraints(scores)
    masks = {o: (scores[i] > score_thresh).numpy()[0] for i, o in enumerate(obj_ids)}
    near_threshold = ((raw - score_thresh).abs() < TOLERANCE).any(dim=0)[0].numpy()
    ties = np.zeros_like(near_threshold)
    if non_overlap and len(obj_ids) > 1:
        top2 = raw[:, 0].topk(2, dim=0).values
        ties = ((top2[0] - top2[1] < TOLERANCE) & (top2[0] > score_thresh)).numpy()
    return masks, near_threshold, ties


def meta_vos_inference(predictor, video_dir, mask_dir, per_obj_png_file, score_thresh=0.0):
    """The tool's `vos_inference` (first-frame masks) -> {frame_name: `tool_masks`' result}.
    The predictor runs with non_overlap_masks=False and the constraint is applied here (the same function
    the tool's non_overlap_masks=True applies inside `propagate_in_video`), to see the logits before it."""
    frame_names = tool_frame_names(video_dir)
    state = predictor.init_state(video_path=str(video_dir), async_loading_frames=False)
    for object_id, mask in tool_load_masks(mask_dir, frame_names[0], per_obj_png_file).items():
        predictor.add_new_mask(inference_state=state, frame_idx=0, obj_id=object_id, mask=mask)
    segments = {}
    for t, obj_ids, logits in predictor.propagate_in_video(state):
        segments[frame_names[t]] = tool_masks(predictor, logits.cpu(), obj_ids, not per_obj_png_file, score_thresh)
    return segments


def meta_separate_inference(predictor, video_dir, mask_dir, per_obj_png_file, score_thresh=0.0):
    """The tool's `vos_separate_inference_per_object` (each object from its first mask)."""
    frame_names = tool_frame_names(video_dir)
    state = predictor.init_state(video_path=str(video_dir), async_loading_frames=False)
    inputs = {}
    for idx, name in enumerate(frame_names):
        for object_id, mask in tool_load_masks(mask_dir, name, per_obj_png_file, allow_missing=True).items():
            if np.any(mask) and object_id not in inputs:
                inputs[object_id] = (idx, mask)
    object_ids = sorted(inputs)
    scores_per_object = {}
    for object_id in object_ids:
        idx, mask = inputs[object_id]
        predictor.reset_state(state)
        predictor.add_new_mask(inference_state=state, frame_idx=idx, obj_id=object_id, mask=mask)
        scores_per_object[object_id] = {
            t: logits.cpu() for t, _, logits in predictor.propagate_in_video(state, start_frame_idx=idx, reverse=False)
        }
    segments = {}
    for t, name in enumerate(frame_names):
        scores = torch.full((len(object_ids), 1, H, W), -1024.0)
        for i, object_id in enumerate(object_ids):
            if t in scores_per_object[object_id]:
                scores[i] = scores_per_object[object_id][t]
        segments[name] = tool_masks(predictor, scores, object_ids, not per_obj_png_file, score_thresh)
    return segments


# ------------------------------------------------------------------------------ datasets
def per_object_copy(davis_folder, root):
    """The DAVIS-style annotations rewritten in SA-V's layout (<seq>/<obj:03d>/<frame>.png)."""
    for src in (davis_folder / "Annotations").iterdir():
        for png in sorted(src.iterdir()):
            mask = np.array(Image.open(png))
            masks = {k: mask == k for k in (1, 2, 3)}
            save_frame_masks(root / src.name, png.stem, masks, H, W, True, DAVIS_PALETTE)
    return root


def later_object_copy(davis_folder, root):
    """Object 2 (the blue square) removed from the first two frames: it enters on frame 2."""
    shutil.copytree(davis_folder / "Annotations", root)
    for png in sorted((root / "shapes").iterdir())[:2]:
        image = Image.open(png)
        mask = np.array(image)
        mask[mask == 2] = 0
        out = Image.fromarray(mask)
        out.putpalette(image.getpalette())
        out.save(png)
    return root


def read_output(folder, frame_names, per_obj_png_file):
    return {name: tool_load_masks(folder, name, per_obj_png_file) for name in frame_names}


@pytest.mark.parametrize("mode", ["palette", "per_object", "later_objects"])
def test_vos_inference_matches_meta_tool_loop(davis_folder, tmp_path, video_reference, mode):
    """On the content-bearing weights, both sides in float64 (why: tests/test_video_parity.py)."""
    per_obj = mode == "per_object"
    masks_dir = davis_folder / "Annotations"
    if per_obj:
        masks_dir = per_object_copy(davis_folder, tmp_path / "sav_annotations")
    elif mode == "later_objects":
        masks_dir = later_object_copy(davis_folder, tmp_path / "later_annotations")
    reference = video_reference("2.1", content=True)
    meta = reference.new_meta()
    meta.fill_hole_area, meta.binarize_mask_from_pts_for_mem_enc, meta.non_overlap_masks = 0, False, False
    patch_reference_memory_dtype(meta)
    meta_in_double(meta)
    ours = reference.load(Sam2VideoPredictor, **vos_predictor_options(per_obj))
    ours.model.to(torch.float64)
    video_dir = davis_folder / "JPEGImages" / "shapes"
    meta_loop = meta_separate_inference if mode == "later_objects" else meta_vos_inference
    with torch.inference_mode(), double_precision():
        expected = meta_loop(meta, video_dir, masks_dir / "shapes", per_obj)
        done = run_vos_inference(
            ours, davis_folder / "JPEGImages", masks_dir, tmp_path / "out", ["shapes"],
            per_obj_png_file=per_obj, track_object_appearing_later_in_video=mode == "later_objects", progress=False,
        )  # fmt: skip
    assert done == ["shapes"]
    got = read_output(tmp_path / "out" / "shapes", list(expected), per_obj)

    differing = num_near = num_ties = 0
    for name, (masks, near_threshold, ties) in expected.items():
        union_got, union_expected = np.any(list(got[name].values()), 0), np.any(list(masks.values()), 0)
        assert not (union_got != union_expected)[~near_threshold].any(), name  # foreground: exact
        for obj_id, mask in masks.items():  # which object owns a pixel: exact where no two objects tie
            ours = got[name].get(obj_id, np.zeros_like(mask))  # a palette PNG holds only the objects on it
            assert not (ours != mask)[~(ties | near_threshold)].any(), (name, obj_id)
            differing += int((ours != mask).sum())
        num_near, num_ties = num_near + int(near_threshold.sum()), num_ties + int(ties.sum())
    print(f"\n{mode}: {differing} object pixels differ from Meta's tool loop; {num_near} pixels at the threshold, "
          f"{num_ties} where objects tie within {TOLERANCE}")  # fmt: skip
    assert num_near <= 0.01 * len(expected) * H * W
    # Not vacuous: three objects, each partly covering the frame, present on most frames.
    fractions = np.array([[m.mean() for m in masks.values()] for masks, *_ in expected.values()])
    print(f"object fractions (frames x objects):\n{fractions.round(4)}")
    assert fractions.shape == (6, 3) and (fractions < 0.5).all() and (fractions > 0).sum() >= 12, fractions
    if not per_obj:
        with Image.open(tmp_path / "out" / "shapes" / "00003.png") as png:
            assert png.mode == "P" and bytes(png.getpalette()[:30]) == DAVIS_PALETTE[:30]


def test_resume_skips_finished_sequences(davis_folder, tmp_path, reference_models):
    ours = reference_models("tiny", "2.1", IMAGE_SIZE, video=True).load(Sam2VideoPredictor, **vos_predictor_options())
    args = (ours, davis_folder / "JPEGImages", davis_folder / "Annotations", tmp_path / "out")
    (tmp_path / "out" / ".shapes-b.partial").mkdir(parents=True)  # an interrupted earlier run
    (tmp_path / "out" / "shapes").mkdir()  # a finished one
    assert run_vos_inference(*args, progress=False) == ["shapes-b"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["shapes", "shapes-b"]
    assert len(list((tmp_path / "out" / "shapes-b").iterdir())) == 5
    assert run_vos_inference(*args, progress=False) == []
    assert run_vos_inference(*args, ["shapes"], overwrite=True, progress=False) == ["shapes"]
    assert len(list((tmp_path / "out" / "shapes").iterdir())) == 6


def test_bad_inputs_name_the_problem(davis_folder, tmp_path, reference_models):
    ours = reference_models("tiny", "2.1", IMAGE_SIZE, video=True).load(Sam2VideoPredictor, **vos_predictor_options())
    masks_dir = later_object_copy(davis_folder, tmp_path / "later")
    with pytest.raises(ValueError, match="appear on frame 2 but not on the first input frame"):
        run_vos_inference(ours, davis_folder / "JPEGImages", masks_dir, tmp_path / "out", ["shapes"],
                          use_all_masks=True, progress=False)  # fmt: skip
    (masks_dir / "shapes" / "00000.png").unlink()
    with pytest.raises(ValueError, match="no mask for frame 00000"):
        run_vos_inference(ours, davis_folder / "JPEGImages", masks_dir, tmp_path / "out", ["shapes"], progress=False)
    assert not (tmp_path / "out" / "shapes").exists()


def test_folders_that_do_not_fit_the_layout_are_listed_before_any_inference(davis_folder, tmp_path):
    """Every misplaced folder is named with what to give instead; nothing runs, nothing is written."""
    frames, masks, out = davis_folder / "JPEGImages", davis_folder / "Annotations", tmp_path / "out"
    cases = [
        (davis_folder, masks, False, [f"{davis_folder} looks like the dataset root: give --base-video-dir {frames}"]),
        (frames, davis_folder, False, [f"{davis_folder} looks like the dataset root: give --input-mask-dir {masks}"]),
        (frames, frames, False, [f"{frames / n} holds no PNG masks" for n in ("shapes", "shapes-b")]),
        (frames, masks, True, [f"{masks / n} holds palette PNGs (DAVIS layout): leave out --per-obj-png-file"
                               for n in ("shapes", "shapes-b")]),
        (frames, tmp_path, False, [f"no mask folder {tmp_path / n}" for n in ("shapes", "shapes-b")]),
    ]  # fmt: skip
    for base_video_dir, input_mask_dir, per_obj_png_file, problems in cases:
        with pytest.raises(ValueError) as error:
            # a predictor is never needed: the folders are checked first
            run_vos_inference(None, base_video_dir, input_mask_dir, out, per_obj_png_file=per_obj_png_file)
        assert str(error.value).splitlines()[1:] == [f"  {p}" for p in problems]
    short = tmp_path / "short"  # a sequence whose last frame image is gone but not its mask
    shutil.copytree(frames / "shapes", short / "shapes")
    (short / "shapes" / "00005.jpg").unlink()
    with pytest.raises(
        ValueError, match=f"{masks / 'shapes'} has masks of frames that {short / 'shapes'} lacks: 00005.png"
    ):
        run_vos_inference(None, short, masks, out, ["shapes"])
    sav = tmp_path / "sav"
    (sav / "shapes" / "001").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds per-object folders \\(SA-V layout\\): add --per-obj-png-file"):
        run_vos_inference(None, frames, sav, out, ["shapes"])
    assert not out.exists()


def test_evaluate_video_in_memory_equals_the_folders(davis_folder, tmp_path, reference_models):
    """The entry point for training loops: frames and ground truth in memory, J&F out, the very values that
    scoring the masks `run_vos_inference` writes gives (same predictor, same sequence)."""
    ours = reference_models("tiny", "2.1", IMAGE_SIZE, video=True).load(Sam2VideoPredictor, **vos_predictor_options())
    frames_dir, masks_dir = davis_folder / "JPEGImages" / "shapes", davis_folder / "Annotations" / "shapes"
    frames = np.stack([np.array(Image.open(p)) for p in sorted(frames_dir.iterdir())])
    labels = np.stack([np.array(Image.open(p)) for p in sorted(masks_dir.iterdir())])
    scores = evaluate_video(ours, frames, {k: labels == k for k in (1, 2, 3)}, sequence="shapes")
    assert [s.obj_id for s in scores] == [1, 2, 3] and all(len(s.j) == 4 for s in scores)
    run_vos_inference(ours, davis_folder / "JPEGImages", davis_folder / "Annotations", tmp_path, ["shapes"],
                      progress=False)  # fmt: skip
    from_folders = score_folder(davis_folder / "Annotations", tmp_path, sequences=["shapes"], progress=False)
    assert per_frame(scores) == per_frame(from_folders)
    summary = summarize(scores)
    assert summary == summarize(from_folders)
    assert 0 < summary["J&F-Mean"] < 1  # untrained, but neither lost nor perfect


def per_frame(scores):
    """[(obj_id, per-frame J, per-frame F)] of `ObjectScore`s, as lists (compared exactly)."""
    return [(s.obj_id, s.j.tolist(), s.f.tolist()) for s in scores]


class HeldMaskPredictor:
    """A video predictor (Meta's `init_state` / `add_new_mask` / `propagate_in_video`) that "tracks" by holding
    each object's prompt mask on every frame (logits +-1): the J&F of a ground truth that moves is then known."""

    non_overlap_masks = False

    def init_state(self, frames):
        return {"num_frames": frames.num_frames, "masks": {}}

    def add_new_mask(self, state, frame_idx, obj_id, mask):
        state["masks"][obj_id] = np.asarray(mask, dtype=bool)

    def propagate_in_video(self, state):
        logits = torch.from_numpy(np.where(np.stack(list(state["masks"].values())), 1.0, -1.0))[:, None]
        for frame_idx in range(state["num_frames"]):
            yield frame_idx, list(state["masks"]), logits


def test_jf_of_a_hand_made_case_in_memory_and_from_folders(tmp_path):
    """4 frames of 32 x 48 (frames 1 and 2 scored), `HeldMaskPredictor` holding the frame-0 masks.
    Object 1, an 8 x 8 square that stays (rows 4-11, columns 4-11): predicted exactly, J = F = 1.
    Object 2, an 8 x 8 square (rows 18-25) at columns 10-17 on frame 0, 14-21 after: the held mask covers half
    of it, J = 32 / (64 + 64 - 32) = 1/3. F (DAVIS: `seg2bmap` boundaries, the 9 x 9 rings of rows 17-25 at
    columns 9-17 and 13-21, 32 pixels each; matched within ceil(0.008 * diagonal 57.7) = 1 pixel, a plus shape):
    of the predicted ring, the top and bottom rows at columns 12-17 (6 + 6) and the right column's end pixels
    next to them (rows 18 and 24) are matched, 14 of 32, and so, by symmetry, of the true ring: F = 14/32.
    J-Mean = (1 + 1/3) / 2 = 2/3, F-Mean = (1 + 14/32) / 2 = 23/32, J&F = (2/3 + 23/32) / 2 = 133/192."""
    labels = np.zeros((4, 32, 48), dtype=np.uint8)
    labels[:, 4:12, 4:12], labels[0, 18:26, 10:18], labels[1:, 18:26, 14:22] = 1, 2, 2
    (tmp_path / "Annotations" / "seq").mkdir(parents=True)
    for t, frame in enumerate(labels):
        save_ann_png(tmp_path / "Annotations" / "seq" / f"{t:05d}.png", frame, DAVIS_PALETTE)
    frames = np.zeros((4, 32, 48, 3), np.uint8)
    save_jpeg_folder(frames, tmp_path / "JPEGImages" / "seq")
    run_vos_inference(HeldMaskPredictor(), tmp_path / "JPEGImages", tmp_path / "Annotations", tmp_path / "out",
                      progress=False)  # fmt: skip
    for protocol in ("davis", "sav"):  # the same here: both objects are on every frame
        scores = evaluate_video(HeldMaskPredictor(), frames, {k: labels == k for k in (1, 2)}, protocol, sequence="seq")
        assert per_frame(scores) == [(1, [1.0, 1.0], [1.0, 1.0]), (2, [1 / 3, 1 / 3], [14 / 32, 14 / 32])]
        assert summarize(scores)["J&F-Mean"] == pytest.approx(133 / 192, rel=1e-12)
        from_folders = score_folder(tmp_path / "Annotations", tmp_path / "out", protocol, progress=False)
        assert per_frame(from_folders) == per_frame(scores) and summarize(from_folders) == summarize(scores)
