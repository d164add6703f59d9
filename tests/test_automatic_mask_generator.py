"""Sam2AutomaticMaskGenerator vs Meta's SAM2AutomaticMaskGenerator on the same random weights (image_size 256).

Random weights make every click give the same noisy, image-wide mask, so every box is the whole image
and everything but one record is a duplicate. To give the generator real work, the shared weights are
changed the same way for both: the Hiera position embeddings are zeroed (masks then follow the image's
flat regions, not positions) and mask tokens 0 and 1 are negated (those masks are the small regions,
the others the background), on an image of three flat discs.
"""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from sam2_hf.predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator, uncompressed_rle

from reference import discs_image, follow_content, save_meta_checkpoint

S = 256
TOL = 1e-4
BASE = dict(points_per_side=4, points_per_batch=5, stability_score_offset=0.05)  # batches of 5, 5, 5, 1 clicks


@pytest.fixture(scope="module")
def content_models(reference_models, tmp_path_factory):
    """Meta's model with the changed weights, and the .pt it was saved to."""
    meta = follow_content(reference_models("tiny", "2.1", S).new_meta())
    return meta, save_meta_checkpoint(meta, tmp_path_factory.mktemp("amg") / "sam2.1_hiera_tiny.pt")


def meta_generator(meta_model, **options):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    generator = SAM2AutomaticMaskGenerator(meta_model, **options)
    generator.predictor._bb_feat_sizes = [(S // 4, S // 4), (S // 8, S // 8), (S // 16, S // 16)]  # set for 1024
    return generator


def cpu_connected_components(mask: torch.Tensor):
    """Meta's CUDA-only `get_connected_components` on the CPU (scipy, 8-connectivity): (N, 1, H, W) ->
    labels (0 outside components) and each pixel's component area, both (N, 1, H, W) int32."""
    from scipy import ndimage

    masks = mask.cpu().numpy().astype(bool)
    labels, areas = np.zeros(masks.shape, np.int32), np.zeros(masks.shape, np.int32)
    for i, image in enumerate(masks[:, 0]):
        labels[i, 0], _ = ndimage.label(image, structure=np.ones((3, 3)))
        counts = np.bincount(labels[i, 0].ravel())
        counts[0] = 0
        areas[i, 0] = counts[labels[i, 0]]
    return torch.from_numpy(labels), torch.from_numpy(areas)


FILTERS = dict(pred_iou_thresh=0.0, stability_score_thresh=0.05)  # lowered for random weights; drops empty masks
CASES = {
    "crop layers, small regions": dict(crop_n_layers=1, min_mask_region_area=20, **FILTERS),
    "crop layers, m2m": dict(crop_n_layers=1, use_m2m=True, **FILTERS),
}


@pytest.mark.parametrize("case", CASES)
def test_generator_matches_meta(case, content_models, monkeypatch):
    """Records one to one in Meta's order: masks, areas, boxes, clicks and crops equal, scores within 1e-4.
    Meta's small-region step needs its CUDA kernel; it runs here on `cpu_connected_components`."""
    monkeypatch.setattr("sam2.utils.misc.get_connected_components", cpu_connected_components)
    meta_model, path = content_models
    options = {**BASE, **CASES[case]}
    image = discs_image()
    theirs = meta_generator(meta_model, **options).generate(image)
    ours = Sam2AutomaticMaskGenerator.from_pretrained(path, image_size=S, **options).generate(image)

    assert len(ours) == len(theirs)
    worst = 0.0
    for mine, ref in zip(ours, theirs):
        assert np.array_equal(mine["segmentation"], ref["segmentation"])
        for key in ("area", "bbox", "point_coords", "crop_box"):
            assert mine[key] == ref[key], key
        for key in ("predicted_iou", "stability_score"):
            worst = max(worst, abs(mine[key] - ref[key]))
    print(f"\n{case}: {len(ours)} records, max score difference {worst:.2e}")
    assert worst <= TOL

    # Not vacuous: several records, from the image and from crops, partial masks of different sizes.
    crops = {tuple(r["crop_box"]) for r in theirs}
    areas = [r["area"] for r in theirs]
    assert len(theirs) >= 2 and len(crops) >= 2
    assert all(0 < a < image.shape[0] * image.shape[1] for a in areas) and len(set(areas)) == len(areas)


def test_output_modes_and_no_masks(content_models):
    """coco_rle and uncompressed_rle hold the binary masks (uncompressed as Meta's `mask_to_rle_pytorch`
    writes it); thresholds nothing passes give an empty list."""
    from sam2.utils.amg import mask_to_rle_pytorch

    _, path = content_models
    image = discs_image()
    records = {
        mode: Sam2AutomaticMaskGenerator.from_pretrained(path, image_size=S, output_mode=mode, **BASE, **FILTERS)
        .generate(image)
        for mode in ("binary_mask", "coco_rle", "uncompressed_rle")
    }  # fmt: skip
    assert len(records["binary_mask"]) >= 1
    for binary, coco, raw in zip(*records.values()):
        mask = binary["segmentation"]
        assert 0 < mask.mean() < 1 and binary["area"] == coco["area"] == raw["area"] == mask.sum()
        assert np.array_equal(mask_utils.decode(coco["segmentation"]), mask)
        assert raw["segmentation"] == mask_to_rle_pytorch(torch.from_numpy(mask)[None])[0]
        assert raw["segmentation"] == uncompressed_rle(mask)
    strict = Sam2AutomaticMaskGenerator.from_pretrained(path, image_size=S, **BASE, pred_iou_thresh=0.99)
    assert strict.generate(image) == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="Exactly one of points_per_side or point_grids"):
        Sam2AutomaticMaskGenerator(None, points_per_side=None)
    with pytest.raises(ValueError, match="output_mode"):
        Sam2AutomaticMaskGenerator(None, output_mode="polygon")
    with pytest.raises(ValueError, match="crop_n_layers=1 needs 2"):
        Sam2AutomaticMaskGenerator(None, points_per_side=None, point_grids=[np.zeros((1, 2))], crop_n_layers=1)
