"""Simulated clicks (image click mIoU) and the interactive video protocol (PVS) on generated data."""

from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from PIL import Image

from sam2_hf import Sam2ImagePredictor
from sam2_hf.evaluation import evaluate_clicks, evaluate_coco, evaluate_pvs, next_click
from sam2_hf.video.predictor import Sam2VideoPredictor
from sam2_hf.video.synthetic import synthetic_clip

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


class OraclePredictor:
    """A predictor stub that segments the ground-truth component under the clicks (predict's Meta signature)."""

    def __init__(self, gt):
        self.gt = gt

    def set_image(self, image):
        pass

    def predict(self, point_coords, point_labels, mask_input=None, multimask_output=True):
        batched = np.ndim(point_coords) == 3
        coords = point_coords if batched else point_coords[None]
        masks = np.stack([[g] * (3 if multimask_output else 1) for g in self.gt[: len(coords)]]).astype(np.float32)
        masks[:, 1:] = 0  # extra multimask outputs are wrong, and scored lower
        scores = np.tile([0.9, 0.1, 0.1][: masks.shape[1]], (len(coords), 1))
        low_res = np.zeros((*masks.shape[:2], 4, 4), np.float32)
        return (masks, scores, low_res) if batched else (masks[0], scores[0], low_res[0])


def test_evaluate_clicks_control_flow_with_an_oracle():
    gt = np.zeros((2, 16, 16), dtype=bool)
    gt[0, 2:8, 2:8], gt[1, 9:14, 5:15] = True, True
    ious = evaluate_clicks(OraclePredictor(gt), np.zeros((16, 16, 3), np.uint8), gt, num_clicks=3)
    np.testing.assert_array_equal(ious, np.ones((2, 3)))  # the best-scored multimask output is kept


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


def test_files_that_are_not_coco_are_named(tmp_path):
    from sam2_hf.evaluation.clicks import load_coco

    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "entry.json").write_text('{"images": [{"file_name": "a.png"}], "annotations": []}')
    (tmp_path / "bad.json").write_text("{")
    for name, message in (("list", "no 'images' and 'annotations'"), ("entry", "KeyError\\('id'\\) in an entry"),
                          ("bad", "not valid JSON")):  # fmt: skip
        with pytest.raises(ValueError, match=f"{name}.json: .*{message}"):
            load_coco(tmp_path / f"{name}.json")
