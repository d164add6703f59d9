"""Simulated clicks (image click mIoU) and the interactive video protocol (PVS) on generated data."""

from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from PIL import Image

from sam2_hf import Sam2ImagePredictor
from sam2_hf.evaluation import evaluate_clicks, evaluate_coco, evaluate_pvs, next_click
from sam2_hf.media.synthetic import synthetic_clip
from sam2_hf.predictors.video_predictor import Sam2VideoPredictor

IMAGE_SIZE = 256


def test_first_click_is_the_farthest_point_from_the_boundary():
    gt = np.zeros((20, 30), dtype=bool)
    gt[2:9, 3:10] = True  # 7 x 7: centre row 5, column 6, 4 pixels from the background
    gt[12:15, 20:23] = True  # a smaller second part
    assert next_click(gt) == (6, 5, 1)
    assert next_click(gt, gt) is None


def test_next_click_goes_to_the_largest_error_region():
    gt = np.zeros((20, 30), dtype=bool)
    gt[2:12, 2:12] = True
    missed = gt.copy()
    missed[2:12, 8:12] = False  # a 10 x 4 strip missed
    assert next_click(gt, missed) == (9, 3, 1)  # 2 pixels from the strip's edges; the first such pixel row-major
    extra = gt.copy()
    extra[14:20, 20:30] = True  # 6 x 10 false positive at the border: the border is a boundary too
    extra[2:4, 2:4] = False  # a smaller miss
    assert next_click(gt, extra) == (22, 16, 0)  # 3 pixels from the region's top and left, the image's bottom


def click_squares(points, labels, shape) -> np.ndarray:
    """The hand-made "model" of the fake predictors below: (H, W) bool, the union of the 5 x 5 squares centred on
    the positive clicks minus the squares on the negative ones (clipped to the image). points: (n, 2) x, y."""
    mask, removed = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    for (x, y), label in zip(np.asarray(points, dtype=int), labels):
        (mask if label == 1 else removed)[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3] = True
    return mask & ~removed


class ClickSquaresPredictor:
    """An image predictor (`predict` with Meta's signature) whose masks are `click_squares` of all clicks given,
    so each click changes the mask in a way worked out by hand. multimask_output gives three masks, the squares
    scored best and second (a wrong choice scores the whole image or nothing); low-resolution logits are +-1 at
    full size. It checks that a mask input, when given, is the logits of its previous answer (all clicks but
    the last), i.e. the kept multimask output was passed on."""

    def __init__(self, shape):
        self.shape = shape

    def set_image(self, image):
        pass

    def predict(self, point_coords, point_labels, mask_input=None, multimask_output=True):
        batched = np.ndim(point_coords) == 3
        coords, labels = (point_coords, point_labels) if batched else (point_coords[None], point_labels[None])
        masks = np.stack([click_squares(xy, lab, self.shape) for xy, lab in zip(coords, labels)])[:, None]
        if mask_input is not None:
            previous = [click_squares(xy[:-1], lab[:-1], self.shape) for xy, lab in zip(coords, labels)]
            np.testing.assert_array_equal(np.reshape(mask_input, masks.shape) > 0, np.stack(previous)[:, None])
        scores = np.full((len(masks), 1), 0.9)
        if multimask_output:
            masks = np.concatenate([np.ones_like(masks), masks, np.zeros_like(masks)], axis=1)
            scores = np.tile([0.2, 0.9, 0.1], (len(masks), 1))
        low_res = np.where(masks, 1.0, -1.0).astype(np.float32)
        out = masks.astype(np.float32), scores, low_res
        return out if batched else tuple(o[0] for o in out)


def test_evaluate_clicks_on_a_hand_made_case():
    """Two objects on a 16 x 24 image, clicked as one batch, with `ClickSquaresPredictor` (5 x 5 squares):
    object 0: rectangle A (rows 1-5, columns 1-13, 65 px) and square B (rows 9-13, columns 17-21, 25 px), 90 px;
    object 1: a 5 x 5 square (rows 10-14, columns 3-7). Clicks (x, y), each the deepest pixel (largest distance
    to the region's edge, first in row-major order) of the largest error region:
      1. + (3, 3): the larger part A (depth 3 on row 3, columns 3-11) -> rows 1-5 x cols 1-5: IoU 25/90;
      2. + (8, 3): A's missed rows 1-5 x cols 6-13 (40 px > B's 25; depth 3 at columns 8-11, the predicted
         column 5 counting as edge) -> rows 1-5 x cols 1-10: IoU 50/90;
      3. + (19, 11): B (25 px > A's 15 missed) -> B found: IoU 75/90;
      4. + (12, 2): A's missed rows 1-5 x cols 11-13 (depth 2 on column 12, rows 2-4) -> its square rows 0-4 x
         cols 10-14 finds 12 px and takes 9 false ones (row 0, columns 10-14; rows 1-4, column 14): 3 px stay
         missed (row 5, columns 11-13): IoU 87 / (87 + 9 + 3) = 87/99;
      5. - (10, 0): the false positives (9 px > 3, all at depth 1) -> rows 0-2 x cols 8-12 removed: 10 found
         pixels lost (rows 1-2, columns 8-12), 3 false ones gone: IoU 77 / (77 + 6 + 13) = 77/96.
    Object 1 is found by its first click (its centre (5, 12)) and gets no more; IoU 1 throughout. A click
    left out or moved, a wrong label, the wrong multimask output or mask input, or points given to the wrong
    object each change these values."""
    gt = np.zeros((2, 16, 24), dtype=bool)
    gt[0, 1:6, 1:14], gt[0, 9:14, 17:22], gt[1, 10:15, 3:8] = True, True, True
    image = np.zeros((16, 24, 3), np.uint8)
    for previous_logits in (True, False):
        ious = evaluate_clicks(ClickSquaresPredictor((16, 24)), image, gt, 5, use_previous_logits=previous_logits)
        np.testing.assert_allclose(ious, [[25 / 90, 50 / 90, 75 / 90, 87 / 99, 77 / 96], [1] * 5], rtol=1e-12)


@pytest.fixture(scope="module")
def image_predictor(reference_models):
    return reference_models("tiny", "2.1", IMAGE_SIZE).load(Sam2ImagePredictor)


def shapes_and_masks(seed=0):
    frame = synthetic_clip(num_frames=1, height=64, width=96, seed=seed)[0]
    colors = ((220, 40, 40), (40, 60, 220), (40, 200, 60))
    return frame, np.stack([np.all(frame == c, axis=-1) for c in colors])


def test_evaluate_clicks_batched_equals_one_object_at_a_time(image_predictor):
    image, gt = shapes_and_masks()
    ious = evaluate_clicks(image_predictor, image, gt, num_clicks=3)
    alone = np.concatenate([evaluate_clicks(image_predictor, image, gt[i : i + 1], num_clicks=3) for i in range(3)])
    np.testing.assert_allclose(ious, alone, atol=1e-6)
    assert ious.shape == (3, 3) and ((ious > 0) & (ious < 1)).mean() > 0.5, ious  # untrained, but not trivial


def test_evaluate_coco(image_predictor, tmp_path):
    images, annotations = [], []
    for image_id in (1, 2):
        image, gt = shapes_and_masks(seed=image_id)
        Image.fromarray(image).save(tmp_path / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": 64, "width": 96})
        for k, mask in enumerate(gt):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            area = float(mask_utils.area(rle))
            annotations.append({"id": 10 * image_id + k, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "segmentation": rle, "area": area, "bbox": list(mask_utils.toBbox(rle))})  # fmt: skip
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "shape"}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    result = evaluate_coco(image_predictor, tmp_path / "coco.json", tmp_path, 2, min_area=100, progress=False)
    expected = [evaluate_clicks(image_predictor, *shapes_and_masks(seed=i), num_clicks=2) for i in (1, 2)]
    expected = np.concatenate([e[[k for k in range(3) if shapes_and_masks(seed=i)[1][k].sum() >= 100]]
                               for i, e in zip((1, 2), expected)])  # fmt: skip
    assert result["num_images"] == 2 and result["num_masks"] == len(expected)
    np.testing.assert_allclose(result["miou"], expected.mean(axis=0))
    for annotation in annotations:  # "area" is optional (sam2-hf's own COCO exports leave it out)
        del annotation["area"]
    (tmp_path / "no_area.json").write_text(json.dumps(coco))
    without_area = evaluate_coco(image_predictor, tmp_path / "no_area.json", tmp_path, 2, min_area=100, progress=False)
    assert without_area == result
    with pytest.raises(FileNotFoundError, match="2.png"):
        (tmp_path / "2.png").unlink()
        evaluate_coco(image_predictor, tmp_path / "coco.json", tmp_path, progress=False)


def test_pvs_rounds(davis_folder, reference_models):
    """`evaluate_pvs` drives the real video predictor (its values are checked on the hand-made case above)."""
    frames_dir, masks_dir = davis_folder / "JPEGImages" / "shapes-b", davis_folder / "Annotations" / "shapes-b"
    frames = np.stack([np.array(Image.open(p)) for p in sorted(frames_dir.iterdir())])[:3]
    labels = np.stack([np.array(Image.open(p)) for p in sorted(masks_dir.iterdir())])[:3]
    gt = {k: labels == k for k in (1, 2)}
    reference = reference_models("tiny", "2.1", IMAGE_SIZE, video=True)
    predictor = reference.load(Sam2VideoPredictor, add_all_frames_to_correct_as_cond=True, fill_hole_area=0)
    rounds = evaluate_pvs(predictor, frames, gt, num_clicks=2, num_rounds=1)
    assert [r["round"] for r in rounds] == [0, 1]
    assert 2 <= rounds[0]["clicks"] <= 4 and rounds[0]["clicks"] < rounds[1]["clicks"] <= rounds[0]["clicks"] + 2
    assert all(0 < r["J&F"] < 1 and r["J&F"] == pytest.approx((r["J"] + r["F"]) / 2) for r in rounds)
    with pytest.raises(ValueError, match="add_all_frames_to_correct_as_cond"):
        evaluate_pvs(reference.load(Sam2VideoPredictor), frames, gt)


class ClickState:
    """The inference state of `ClickSquaresVideoPredictor`: frame size and count, {obj_id: {frame_idx: clicks}}."""

    def __init__(self, frames):
        self.shape, self.num_frames, self.clicks = (frames.height, frames.width), frames.num_frames, {}

    @property
    def obj_ids(self) -> list:
        return list(self.clicks)


class ClickSquaresVideoPredictor:
    """A video predictor (Meta's `init_state` / `add_new_points_or_box` / `propagate_in_video`) whose "tracking"
    carries every click forward: an object's mask on frame t is `click_squares` of its clicks on frames <= t
    (empty before its first clicked frame); logits +-1. Propagation starts at the earliest clicked frame."""

    add_all_frames_to_correct_as_cond = True

    def init_state(self, frames):
        return ClickState(frames)

    def add_new_points_or_box(self, state, frame_idx, obj_id, points, labels, clear_old_points=True):
        frames = state.clicks.setdefault(obj_id, {})
        if clear_old_points:
            frames[frame_idx] = []
        frames.setdefault(frame_idx, []).extend(zip(map(tuple, points), labels))
        return frame_idx, state.obj_ids, self._logits(state, frame_idx)

    def propagate_in_video(self, state):
        for frame_idx in range(min(min(f) for f in state.clicks.values()), state.num_frames):
            yield frame_idx, state.obj_ids, self._logits(state, frame_idx)

    def _logits(self, state, frame_idx):
        masks = []
        for frames in state.clicks.values():
            clicks = [c for t in sorted(frames) if t <= frame_idx for c in frames[t]]
            masks.append(click_squares([p for p, _ in clicks], [label for _, label in clicks], state.shape))
        return torch.from_numpy(np.where(np.stack(masks), 1.0, -1.0))[:, None]


def test_pvs_on_a_hand_made_case():
    """`evaluate_pvs` with `ClickSquaresVideoPredictor` (5 x 5 squares) on 3 frames of 14 x 16, 2 clicks, 1 round.
    J = IoU; F as DAVIS (`seg2bmap` boundary: the outline of the box one pixel larger towards the origin, so a
    rows r0-r1 x cols c0-c1 mask has the ring of rows r0-1..r1 x cols c0-1..c1; matched within 1 pixel, the
    disk of radius ceil(0.008 * diagonal 21.3) = 1, a plus shape).
    Object 1: rows 2-6 x cols 2-11 (50 px) on frame 0, cols 2-10 (45 px) on frame 1, cols 2-6 (25 px) on frame 2.
      Round 0, frame 0: + (4, 4) (depth 3 on row 4, columns 4-9; first) gives cols 2-6, + (9, 4) (the missed
      cols 7-11, centre) gives cols 2-11: exact. Tracked: cols 2-11 on every frame.
        frame 0: J = 1, F = 1;  frame 1: J = 45/50 = 0.9, F = 1 (every boundary pixel 1 column from the other);
        frame 2: J = 25/50 = 0.5; predicted ring 30 px (rows 1-6 x cols 1-11), ground-truth ring 20 (rows 1-6 x
        cols 1-6): precision 18/30 (top and bottom rows up to column 7, the left column), recall 18/20 (all but
        column 6's rows 3-4): F = 2 * 0.6 * 0.9 / 1.5 = 0.72.
      Round 1: worst frame 2 (J&F 0.61 < 0.95 < 1): its 25 false positives -> - (9, 4): frame 2 exact; frames 0, 1
        keep their scores.
    Object 2: rows 8-12 x cols 10-14 from frame 1 (empty on frame 0): + (12, 10) on frame 1 finds it (1 click);
      frame 0 empty on both sides scores J = F = 1. Round 1: every frame exact, no click.
    Round 0: J = (2.4/3 + 1) / 2 = 5.4/6, F = (2.72/3 + 1) / 2 = 5.72/6, J&F = 11.12/12; 3 clicks.
    Round 1: J = (2.9/3 + 1) / 2 = 5.9/6, F = 1, J&F = 11.9/12; 4 clicks."""
    gt = {1: np.zeros((3, 14, 16), dtype=bool), 2: np.zeros((3, 14, 16), dtype=bool)}
    gt[1][0, 2:7, 2:12], gt[1][1, 2:7, 2:11], gt[1][2, 2:7, 2:7], gt[2][1:, 8:13, 10:15] = True, True, True, True
    rounds = evaluate_pvs(ClickSquaresVideoPredictor(), np.zeros((3, 14, 16, 3), np.uint8), gt, 2, 1)
    expected = [(0, 3, 5.4 / 6, 5.72 / 6, 11.12 / 12), (1, 4, 5.9 / 6, 1.0, 11.9 / 12)]
    got = [(r["round"], r["clicks"], r["J"], r["F"], r["J&F"]) for r in rounds]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_files_that_are_not_coco_are_named(tmp_path):
    from sam2_hf.evaluation.clicks import load_coco

    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "entry.json").write_text('{"images": [{"file_name": "a.png"}], "annotations": []}')
    (tmp_path / "bad.json").write_text("{")
    for name, message in (("list", "no 'images' and 'annotations'"), ("entry", "KeyError\\('id'\\) in an entry"),
                          ("bad", "not valid JSON")):  # fmt: skip
        with pytest.raises(ValueError, match=f"{name}.json: .*{message}"):
            load_coco(tmp_path / f"{name}.json")
