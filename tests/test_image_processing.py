"""Image preprocessing (vs Meta's SAM2Transforms), coordinate scaling and mask post-processing."""

from collections import deque

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_hf.processing.image_processing import preprocess_images, to_model_coords, to_rgb_tensor
from sam2_hf.processing.mask_postprocessing import (
    apply_non_overlapping_constraints,
    clean_masks,
    fill_holes,
    postprocess_masks,
    small_components,
)


def random_image(h, w, c=3, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (h, w, c), dtype=np.uint8)


# ------------------------------------------------------------------------------------ images
@pytest.mark.parametrize("image_size", [256, 1024])
@pytest.mark.parametrize("hw", [(300, 400), (97, 61), (256, 256), (1500, 2250)])
def test_preprocessing_matches_meta_transforms(image_size, hw):
    from sam2.utils.transforms import SAM2Transforms

    meta = SAM2Transforms(resolution=image_size, mask_threshold=0.0)
    image = random_image(*hw)
    ours, sizes = preprocess_images(image, image_size)
    assert ours.shape == (1, 3, image_size, image_size) and ours.dtype == torch.float32
    assert sizes == [hw]
    assert (ours[0] - meta(image)).abs().max().item() <= 1e-6
    ours_pil, _ = preprocess_images(Image.fromarray(image), image_size)
    assert (ours_pil[0] - meta(Image.fromarray(image))).abs().max().item() <= 1e-6


def test_batch_of_different_sizes():
    images = [random_image(120, 80, seed=1), random_image(64, 200, seed=2)]
    batch, sizes = preprocess_images(images, 256)
    assert batch.shape == (2, 3, 256, 256) and sizes == [(120, 80), (64, 200)]
    assert torch.equal(batch[1], preprocess_images(images[1], 256)[0][0])


def test_grayscale_rgba_and_pil_modes_become_rgb():
    rgb = random_image(40, 50)
    gray = rgb[..., 0]
    expected_gray = to_rgb_tensor(np.repeat(gray[..., None], 3, axis=2))
    assert torch.equal(to_rgb_tensor(gray), expected_gray)
    assert torch.equal(to_rgb_tensor(gray[..., None]), expected_gray)
    rgba = np.concatenate([rgb, random_image(40, 50, c=1, seed=3)], axis=2)
    assert torch.equal(to_rgb_tensor(rgba), to_rgb_tensor(rgb))
    for mode in ("1", "L", "LA", "RGBA", "P", "PA", "CMYK", "YCbCr"):  # 8-bit modes; wider ones: test_inputs
        pil = Image.fromarray(rgb).convert(mode)
        assert torch.equal(to_rgb_tensor(pil), to_rgb_tensor(np.asarray(pil.convert("RGB"))))


def test_float_and_torch_inputs():
    rgb = random_image(30, 20)
    expected = to_rgb_tensor(rgb)
    assert torch.equal(to_rgb_tensor(rgb.astype(np.float32) / 255), expected)
    assert torch.equal(to_rgb_tensor(torch.from_numpy(rgb).permute(2, 0, 1)), expected)
    assert torch.equal(to_rgb_tensor(torch.from_numpy(rgb[..., 0])), to_rgb_tensor(rgb[..., 0]))
    assert expected.shape == (3, 30, 20) and expected.min() >= 0 and expected.max() <= 1


@pytest.mark.parametrize(
    "image, error, match",
    [
        (np.full((10, 10, 3), 200.0), ValueError, r"must hold values in \[0, 1\]"),
        (np.full((10, 10, 3), np.nan, dtype=np.float32), ValueError, r"values in \[0, 1\]"),
        (np.zeros((10, 10, 3), dtype=np.int64), TypeError, "uint8.*int64"),
        (np.zeros((10, 10, 3), dtype=bool), TypeError, "uint8.*bool"),
        (np.zeros((10, 10, 2), dtype=np.uint8), ValueError, r"1 \(gray\), 3 \(RGB\) or 4 \(RGBA\) channels; got 2"),
        (np.zeros((0, 10, 3), dtype=np.uint8), ValueError, "empty"),
        (np.zeros((10, 0), dtype=np.uint8), ValueError, "empty"),
        (torch.zeros(2, 8, 8, dtype=torch.uint8), ValueError, "channels; got 2"),
        ([[0, 1], [2, 3]], TypeError, "got type=<class 'int'>"),
    ],
)
def test_bad_images_raise(image, error, match):
    with pytest.raises(error, match=match):
        preprocess_images(image, 256)


def test_empty_image_list_raises():
    with pytest.raises(ValueError, match="No images"):
        preprocess_images([], 256)


# ------------------------------------------------------------------------------- coordinates
def test_coordinates_scale_per_axis():
    points = torch.tensor([[400.0, 300.0], [0.0, 150.0]])
    assert torch.allclose(to_model_coords(points, (300, 400), 1024), torch.tensor([[1024.0, 1024.0], [0.0, 512.0]]))
    normalized = torch.tensor([[0.5, 0.25]])
    assert torch.allclose(to_model_coords(normalized, (300, 400), 256, normalized=True), torch.tensor([[128.0, 64.0]]))
    box = torch.tensor([[100.0, 30.0, 200.0, 60.0]])
    assert torch.allclose(to_model_coords(box, (300, 400), 1024), torch.tensor([[256.0, 102.4, 512.0, 204.8]]))


def test_coordinates_match_meta_transforms():
    from sam2.utils.transforms import SAM2Transforms

    meta = SAM2Transforms(resolution=512, mask_threshold=0.0)
    coords = torch.tensor([[[13.7, 250.1], [399.0, 0.5]]])
    ours = to_model_coords(coords, (333, 401), 512)
    assert torch.equal(ours, meta.transform_coords(coords, normalize=True, orig_hw=(333, 401)))
    boxes = torch.tensor([[1.0, 2.0, 300.5, 200.25]])
    assert torch.equal(
        to_model_coords(boxes, (333, 401), 512).reshape(-1, 2, 2),
        meta.transform_boxes(boxes, normalize=True, orig_hw=(333, 401)),
    )


# -------------------------------------------------------------------------- mask cleaning
def brute_force_components(binary: np.ndarray):
    """Per-pixel (component label, component area) of a 2-D bool array, 8-connected, by flood fill."""
    h, w = binary.shape
    labels = np.zeros((h, w), dtype=np.int64)
    areas = np.zeros((h, w), dtype=np.int64)
    next_label = 0
    for y in range(h):
        for x in range(w):
            if not binary[y, x] or labels[y, x]:
                continue
            next_label += 1
            queue, members = deque([(y, x)]), []
            labels[y, x] = next_label
            while queue:
                cy, cx = queue.popleft()
                members.append((cy, cx))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = cy + dy, cx + dx
                        if 0 <= ny < h and 0 <= nx < w and binary[ny, nx] and not labels[ny, nx]:
                            labels[ny, nx] = next_label
                            queue.append((ny, nx))
            for cy, cx in members:
                areas[cy, cx] = len(members)
    return labels, areas


def brute_force_clean(logits: np.ndarray, max_hole, max_sprinkle, threshold, hole_value=None):
    out = logits.copy()
    for index in np.ndindex(*logits.shape[:-2]):
        mask = logits[index]
        _, hole_areas = brute_force_components(mask <= threshold)
        _, sprinkle_areas = brute_force_components(mask > threshold)
        if max_hole > 0:
            hole = (mask <= threshold) & (hole_areas <= max_hole)
            out[index][hole] = threshold + 10.0 if hole_value is None else hole_value
        if max_sprinkle > 0:
            out[index][(mask > threshold) & (sprinkle_areas <= max_sprinkle)] = threshold - 10.0
    return out


def synthetic_logits():
    """A 1 x 1 x 16 x 16 mask: an object (logit 3) with holes of 1 px, 4 px, 9 px and a 5-px diagonal
    line (one 8-connected region); background (-1) with sprinkles of 1 px, 2 px, 5 px and a 3-px diagonal."""
    m = -np.ones((16, 16), dtype=np.float32)
    m[0:12, 0:12] = 3.0  # object
    m[1, 1] = -2.0  # hole, 1 px
    m[1:3, 5:7] = -0.5  # hole, 4 px
    for i in range(5):
        m[5 + i, 1 + i] = -1.0  # hole, 5 px diagonal
    m[4:7, 8:11] = -4.0  # hole, 9 px
    m[14, 1] = 2.0  # sprinkle, 1 px
    m[13, 7:9] = 1.0  # sprinkle, 2 px
    m[13:15, 3:5] = m[15, 3] = 1.0  # sprinkle, 5 px
    for i in range(3):
        m[13 + i, 13 + i] = 5.0  # sprinkle, 3 px diagonal
    return m[None, None]


def test_hole_filling_and_sprinkle_removal_hand_built():
    m = synthetic_logits()
    out = clean_masks(torch.from_numpy(m), max_hole_area=4, max_sprinkle_area=2).numpy()[0, 0]
    expected = m[0, 0].copy()
    expected[1, 1] = 10.0
    expected[1:3, 5:7] = 10.0
    expected[14, 1] = -10.0
    expected[13, 7:9] = -10.0
    # kept: the 9-px hole, the diagonal 5-px hole and 3-px sprinkle (8-connected), the 5-px sprinkle
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("threshold", [0.0, 0.5])
@pytest.mark.parametrize("max_hole, max_sprinkle", [(0, 3), (5, 0), (4, 2), (30, 30)])
def test_cleaning_matches_brute_force(threshold, max_hole, max_sprinkle):
    logits = torch.randn(2, 3, 20, 24, generator=torch.Generator().manual_seed(1)) + threshold  # half foreground
    ours = clean_masks(logits, max_hole, max_sprinkle, threshold)
    expected = brute_force_clean(logits.numpy(), max_hole, max_sprinkle, threshold)
    np.testing.assert_array_equal(ours.numpy(), expected)
    assert not torch.equal(ours, logits)


def test_video_hole_fill_value_and_components():
    m = torch.from_numpy(synthetic_logits())
    filled = fill_holes(m, 8, fill_value=0.1)
    expected = brute_force_clean(m.numpy(), 8, 0, 0.0, hole_value=0.1)
    np.testing.assert_array_equal(filled.numpy(), expected)
    assert filled[0, 0, 1, 1] == pytest.approx(0.1) and filled[0, 0, 5, 9] == -4.0  # 1 px filled, 9 px kept
    assert fill_holes(m, 0) is m
    binary = torch.from_numpy(synthetic_logits()[0, 0] > 0)
    expected_small = (brute_force_components(binary.numpy())[1] <= 2) & binary.numpy()
    np.testing.assert_array_equal(small_components(binary, 2).numpy(), expected_small)


def test_postprocess_upscale_matches_meta():
    from sam2.utils.transforms import SAM2Transforms

    low_res = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    meta = SAM2Transforms(resolution=256, mask_threshold=0.0).postprocess_masks(low_res, (300, 401))
    ours = postprocess_masks(low_res, (300, 401))
    assert ours.shape == (2, 3, 300, 401)
    assert torch.equal(ours, meta)


def test_postprocess_cleaning_matches_meta_with_a_cpu_component_kernel(monkeypatch):
    """Meta's cleaning needs its CUDA kernel; give it a brute-force CPU one and compare."""
    import sam2.utils.misc
    from sam2.utils.transforms import SAM2Transforms

    def get_connected_components(mask):  # (N, 1, H, W) -> labels, areas
        results = [brute_force_components(m[0].numpy().astype(bool)) for m in mask]
        labels = torch.tensor(np.stack([r[0] for r in results]))[:, None]
        areas = torch.tensor(np.stack([r[1] for r in results]))[:, None]
        return labels, areas

    monkeypatch.setattr(sam2.utils.misc, "get_connected_components", get_connected_components)
    low_res = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    meta = SAM2Transforms(resolution=128, mask_threshold=0.2, max_hole_area=6, max_sprinkle_area=4)
    expected = meta.postprocess_masks(low_res, (50, 70))
    ours = postprocess_masks(low_res, (50, 70), threshold=0.2, max_hole_area=6, max_sprinkle_area=4)
    assert torch.equal(ours, expected)
    assert not torch.equal(ours, postprocess_masks(low_res, (50, 70)))


def test_non_overlapping_constraints():
    masks = torch.tensor([[[[1.0, -3.0], [5.0, 2.0]]], [[[2.0, -1.0], [-20.0, 4.0]]]])  # 2 objects, 1x2x2
    out = apply_non_overlapping_constraints(masks)
    expected = torch.tensor([[[[-10.0, -10.0], [5.0, -10.0]]], [[[2.0, -1.0], [-20.0, 4.0]]]])
    assert torch.equal(out, expected)
    assert torch.equal(apply_non_overlapping_constraints(masks[:1]), masks[:1])


def test_either_layout_is_read_where_it_cannot_be_mistaken():
    """transformers' processors accept channels-first arrays and channels-last tensors; so does the one reader."""
    image = random_image(10, 12)
    expected = to_rgb_tensor(image)
    assert torch.equal(to_rgb_tensor(image.transpose(2, 0, 1)), expected)
    assert torch.equal(to_rgb_tensor(torch.from_numpy(image)), expected)
    batch, _ = preprocess_images(np.stack([image, image]), 64)  # a 4-D array is a batch, as in transformers
    assert batch.shape == (2, 3, 64, 64) and torch.equal(batch[1], preprocess_images(image, 64)[0][0])
    square = random_image(3, 3)  # (3, 3, 3): the container's usual layout, unless stated
    assert torch.equal(to_rgb_tensor(square), to_rgb_tensor(torch.from_numpy(square).permute(2, 0, 1)))
