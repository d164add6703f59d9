"""Image and prompt-coordinate preprocessing, exactly as Meta's `SAM2Transforms`.

An image becomes the model input in three steps (the same arithmetic as torchvision's
`ToTensor -> Resize((S, S)) -> Normalize(mean, std)`, without depending on torchvision):

    uint8 (H, W, 3) -> float (3, H, W) in [0, 1] -> squashed to (3, S, S) (bilinear, antialiased) -> ImageNet-normalized

The resize ignores the aspect ratio, so prompt coordinates are scaled per axis: x * S / W, y * S / H.

One conversion (`to_rgb_pixels`) reads every image and video frame of the package, with one policy:
- containers: numpy arrays (H, W) or (H, W, C); torch tensors (H, W) or (C, H, W) (torchvision's
  layout; a tensor keeps its device); PIL images of any mode. The other layout is read too where
  it cannot be mistaken (a (3, H, W) array whose last side is not 1, 3 or 4, as transformers'
  processors accept), or when `channels_first` says which it is. Views (negative strides, slices,
  non-contiguous memory) are read as they are;
- channels: C = 1 (grayscale, replicated), 3 (RGB) or 4 (RGBA, alpha dropped); PIL's 8-bit modes
  ("1", "L", "P", "LA", "PA", "RGBA", "CMYK", "YCbCr", ...) are converted with `.convert("RGB")`;
- values: uint8 is 0..255; floating point (any float dtype) must already be in [0, 1] (what
  `ToTensor` leaves unscaled). Everything else is rejected with an error naming the dtype or PIL
  mode — uint16 / int32 / bool arrays and PIL's "I;16", "I" modes (16-bit PNGs) included, and a
  PIL "F" image is held to the float rule. A 16-bit image has no one right scale (full 16-bit,
  12-bit sensors, ...), so it is never clipped or rescaled silently: scale it to uint8 or to floats
  in [0, 1] yourself, e.g. `image.astype(np.float32) / 4095` for 12-bit data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import product

import numpy as np
import torch
from PIL import Image
from transformers.image_utils import ChannelDimension
from transformers.models.sam2.image_processing_sam2 import Sam2ImageProcessor as _StockSam2ImageProcessor
from transformers.models.sam2.image_processing_sam2 import (
    Sam2ImageProcessorKwargs as _StockSam2ImageProcessorKwargs,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNELS = (1, 3, 4)  # gray, RGB, RGBA
WIDE_PIL_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")  # more than 8 bits per sample: read as arrays


def to_rgb_pixels(image, channels_first: bool | None = None) -> torch.Tensor:
    """One image in any accepted container (see the module docstring) -> (H, W, 3) channels-last RGB,
    uint8 (0..255) or float32 (0..1) as given, on the CPU (a tensor keeps its device).

    channels_first: the layout of a 3-D array or tensor when known (transformers' `input_data_format`);
    None infers it: the container's usual layout, or the other one where the usual cannot hold channels.
    Raises TypeError for an unsupported container or dtype, ValueError for a bad shape, an empty image
    or floats outside [0, 1] (NaN included); each message names the container and the problem.
    """
    if isinstance(image, Image.Image):
        if image.mode in WIDE_PIL_MODES:
            what = f"PIL image of mode {image.mode!r}"
            return _channels_last(_numpy_to_torch(np.array(image), what), what)
        try:
            rgb = image if image.mode == "RGB" else image.convert("RGB")
        except ValueError as error:
            raise ValueError(f"A PIL image of mode {image.mode!r} cannot be converted to RGB ({error}).") from error
        return _channels_last(_numpy_to_torch(np.array(rgb), "PIL image"), "PIL image")
    if isinstance(image, np.ndarray):
        what = "numpy image"
        tensor = _numpy_to_torch(image, what)
        usual_first = False
    elif isinstance(image, torch.Tensor):
        what, tensor, usual_first = "torch image", image, True
    else:
        raise TypeError(
            f"Images must be numpy arrays (H, W, C), PIL images or torch tensors (C, H, W); got {type(image).__name__}."
        )
    if tensor.ndim == 3 and _is_channels_first(tensor.shape, usual_first, channels_first):
        tensor = tensor.permute(1, 2, 0)
    return _channels_last(tensor, what)


def _is_channels_first(shape, usual_first: bool, channels_first: bool | None) -> bool:
    """Layout of a 3-D image: as stated, else the usual one unless only the other has 1, 3 or 4 channels."""
    if channels_first is not None:
        return channels_first
    first, last = shape[0] in CHANNELS, shape[2] in CHANNELS
    other_only = (last and not first) if usual_first else (first and not last)
    return usual_first != other_only


def _numpy_to_torch(array: np.ndarray, what: str) -> torch.Tensor:
    """A tensor over `array` when torch can share its memory; a copy for read-only, strided (negative
    strides, non-contiguous views) or byte-swapped arrays. Only uint8 and float arrays pass."""
    if array.dtype != np.uint8 and array.dtype.kind != "f":
        raise _dtype_error(what, array.dtype)
    if array.flags.writeable and array.flags.c_contiguous and array.dtype.isnative:
        return torch.from_numpy(array)
    return torch.from_numpy(np.array(array, dtype=array.dtype.newbyteorder("="), order="C"))


def _dtype_error(what: str, dtype) -> TypeError:
    return TypeError(
        f"A {what} must be uint8 (0..255) or float in [0, 1]; got dtype {dtype}. Images with more than 8 bits "
        "per sample (16-bit PNGs, PIL modes 'I;16' / 'I') are not rescaled silently: convert them to uint8, or "
        "to floats in [0, 1] by dividing by their full-scale value (e.g. 65535 or 4095)."
    )


def _channels_last(image: torch.Tensor, what: str) -> torch.Tensor:
    """(H, W) or (H, W, C) uint8 / [0, 1]-float tensor -> (H, W, 3) of the same dtype class (float -> float32)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        layout = "(H, W) or (C, H, W)" if what == "torch image" else "(H, W) or (H, W, C)"
        raise ValueError(f"A {what} must be {layout} (one image); got shape {tuple(image.shape)}.")
    height, width, channels = image.shape
    if channels not in CHANNELS:
        raise ValueError(f"A {what} must have 1 (gray), 3 (RGB) or 4 (RGBA) channels; got {channels}.")
    if height == 0 or width == 0:
        raise ValueError(f"The {what} is empty: height {height}, width {width}.")
    if image.is_floating_point():
        low, high = image.min().item(), image.max().item()
        if not (low >= 0.0 and high <= 1.0):  # also rejects NaN
            raise ValueError(
                f"A floating-point {what} must hold values in [0, 1]; got range [{low}, {high}]. "
                "Pass uint8 for 0..255 pixel values, or divide by the image's full-scale value."
            )
        image = image.float()
    elif image.dtype != torch.uint8:
        raise _dtype_error(what, image.dtype)
    return image[..., :3] if channels == 4 else image.expand(-1, -1, 3)


def to_rgb_tensor(image) -> torch.Tensor:
    """One image (any accepted container) -> (3, H, W) float32 in [0, 1] (ToTensor's scaling)."""
    rgb = to_rgb_pixels(image)
    rgb = rgb.float().div(255) if rgb.dtype == torch.uint8 else rgb
    return rgb.permute(2, 0, 1).contiguous()


def to_rgb_uint8(image) -> np.ndarray:
    """One image or video frame (any accepted container) -> (H, W, 3) uint8 numpy RGB, as the video path
    reads frames (Meta's loader resizes 8-bit frames with PIL); floats in [0, 1] are rounded to x * 255."""
    rgb = to_rgb_pixels(image)
    if rgb.is_floating_point():
        rgb = rgb.mul(255).round_().to(torch.uint8)
    return np.ascontiguousarray(rgb.cpu().numpy())


def normalize(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
    """(B, 3, H, W) floats in [0, 1] -> (x - mean) / std per channel (ImageNet statistics by default)."""
    mean = torch.as_tensor(mean, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
    std = torch.as_tensor(std, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
    return (images - mean) / std


def preprocess_images(
    images, image_size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """One image or a list of images (sizes may differ) -> pixel_values (B, 3, S, S) float32 and the
    original [(H, W)], by `Sam2ImageProcessor`'s default (Meta's) arithmetic."""
    if isinstance(images, (list, tuple)) and len(images) == 0:
        raise ValueError("No images were given (an empty list).")
    out = Sam2ImageProcessor.for_image_size(image_size, image_mean=mean, image_std=std)(images, return_tensors="pt")
    return out["pixel_values"], [tuple(int(v) for v in hw) for hw in out["original_sizes"]]


LETTERBOX_FILL = 114  # the grey Ultralytics pads a letterboxed image with


def letterbox_gain(height: int, width: int, size: int) -> float:
    """The scale that fits an (height, width) image into a size x size square keeping its aspect ratio."""
    return min(size / height, size / width)


def letterbox_pixels(bgr: np.ndarray, size: int) -> torch.Tensor:
    """An (H, W, 3) uint8 BGR image -> (1, 3, size, size) float32 pixel_values as Ultralytics' SAM predictors
    make them: resized keeping the aspect ratio (OpenCV, bilinear; each side rounded, at least 1 pixel), placed at
    the top left, padded right and bottom with `LETTERBOX_FILL`, turned RGB and normalized on the 0..255 scale
    ((x - 255 * mean) / (255 * std), ImageNet statistics). Meta's preprocessing stretches to the square instead."""
    import cv2

    height, width = bgr.shape[:2]
    gain = letterbox_gain(height, width, size)
    new_w, new_h = max(round(width * gain), 1), max(round(height * gain), 1)
    if (new_w, new_h) != (width, height):
        bgr = cv2.resize(bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    padded = np.full((size, size, 3), LETTERBOX_FILL, np.uint8)
    padded[:new_h, :new_w] = bgr
    rgb = torch.from_numpy(np.ascontiguousarray(padded[..., ::-1].transpose(2, 0, 1)))[None]
    mean = torch.tensor([255 * m for m in IMAGENET_MEAN]).reshape(-1, 1, 1)
    std = torch.tensor([255 * s for s in IMAGENET_STD]).reshape(-1, 1, 1)
    return (rgb - mean) / std


def _channel_axis(image):
    """A gray (H, W) array -> (H, W, 1), a gray (H, W) tensor -> (1, H, W); anything else as it is."""
    if isinstance(image, np.ndarray) and image.ndim == 2:
        return image[..., None]
    if isinstance(image, torch.Tensor) and image.ndim == 2:
        return image[None]
    return image


def build_point_grid(n_per_side: int) -> np.ndarray:
    """(n**2, 2) float64 x, y in [0, 1]: the centres of an n x n grid of cells, row by row (Meta's
    `build_point_grid`)."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    return np.stack(np.meshgrid(side, side), axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list[np.ndarray]:
    """One `build_point_grid` per crop layer 0..n_layers, layer i with int(n_per_side / scale_per_layer**i)
    points per side (Meta's `build_all_layer_point_grids`). Raises ValueError when a layer gets no point
    (Meta divides by zero there)."""
    sides = [int(n_per_side / scale_per_layer**i) for i in range(n_layers + 1)]
    if min(sides) < 1:
        raise ValueError(
            f"{n_per_side} points per side downscaled by {scale_per_layer} per layer leaves crop layer "
            f"{sides.index(min(sides))} without points; use fewer crop layers or a smaller downscale factor."
        )
    return [build_point_grid(side) for side in sides]


def generate_crop_boxes(image_hw, n_layers: int, overlap_ratio: float) -> tuple[list[list[int]], list[int]]:
    """Meta's `generate_crop_boxes`: the whole image, then for layer i = 1..n_layers a (2**i) x (2**i)
    grid of overlapping crops. Returns crop boxes [x0, y0, x1, y1] in pixels and each one's layer."""
    height, width = image_hw
    boxes, layers = [[0, 0, width, height]], [0]
    for layer in range(1, n_layers + 1):
        n = 2**layer
        overlap = int(overlap_ratio * min(height, width) * (2 / n))
        crop_w = math.ceil((overlap * (n - 1) + width) / n)
        crop_h = math.ceil((overlap * (n - 1) + height) / n)
        x0s = [int((crop_w - overlap) * i) for i in range(n)]
        y0s = [int((crop_h - overlap) * i) for i in range(n)]
        for x0, y0 in product(x0s, y0s):
            boxes.append([x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)])
            layers.append(layer)
    return boxes, layers


class Sam2ImageProcessorKwargs(_StockSam2ImageProcessorKwargs, total=False):
    """
    rescale_before_resize (`bool`, *optional*, defaults to `True`):
        Scale uint8 pixels to [0, 1] before resizing (Meta's `SAM2Transforms`: `ToTensor`, then a float
        resize), or resize the uint8 image, rounding to uint8, and scale after (transformers' order).
    """

    rescale_before_resize: bool


class Sam2ImageProcessor(_StockSam2ImageProcessor):
    """transformers' `Sam2ImageProcessor` (same options, outputs, `segmentation_maps` → `labels`, the
    mask-generation helpers, the same saved JSON), with this package's two choices:

    - every image is read by `to_rgb_pixels` (one policy for every entry point: uint8, or floats already
      in [0, 1]; 16-bit and other wide images are refused by name, never clipped);
    - `rescale_before_resize=True` (default): pixels are resized as floats, exactly as Meta's
      `SAM2Transforms`. `False` gives stock transformers' arithmetic (the uint8 image is resized and
      rounded, then scaled): pixel values then differ by up to 0.5 / 255 / std ≈ 0.0175 — the README
      says what that does to masks. Floats in [0, 1] are rounded to uint8 first in that mode.

    Segmentation maps (integer instance or class ids) are resized with nearest neighbour, unscaled.
    """

    valid_kwargs = Sam2ImageProcessorKwargs
    rescale_before_resize = True

    @classmethod
    def for_image_size(cls, image_size: int, **kwargs) -> Sam2ImageProcessor:
        """Images to image_size x image_size, segmentation maps to the mask size image_size / 4."""
        square = lambda side: {"height": side, "width": side}
        return cls(size=square(image_size), mask_size=square(image_size // 4), **kwargs)

    def _prepare_images_structure(self, images, expected_ndims: int = 3):
        """transformers' flattening of images / batches into a list, after refusing an empty array by name."""
        if isinstance(images, (np.ndarray, torch.Tensor)) and 0 in images.shape:
            raise ValueError(f"The image is empty: shape {tuple(images.shape)}.")
        if expected_ndims == 3:  # images (not label maps): a gray (H, W) array gets its channel axis
            images = [_channel_axis(x) for x in images] if isinstance(images, (list, tuple)) else _channel_axis(images)
        return super()._prepare_images_structure(images, expected_ndims=expected_ndims)

    def process_image(self, image, do_convert_rgb=None, input_data_format=None, device=None, **kwargs):
        """One raw image -> (3, H, W) uint8 or float32 tensor (label maps: stock's conversion)."""
        if not do_convert_rgb:  # segmentation maps are read without RGB conversion
            return super().process_image(image, do_convert_rgb, input_data_format, device, **kwargs)
        layout = None if input_data_format is None else ChannelDimension(input_data_format)  # str or enum
        channels_first = None if layout is None else layout == ChannelDimension.FIRST
        rgb = to_rgb_pixels(image, channels_first=channels_first).permute(2, 0, 1).contiguous()
        return rgb if device is None else rgb.to(device)

    def _preprocess(self, images, return_tensors, do_rescale=True, rescale_factor=1 / 255, **kwargs):
        """Images (not label maps, which come with `do_rescale=False`) put into the dtype the resize
        works in: floats in [0, 1] (Meta's order) or uint8 (transformers' order)."""
        rescale_first = kwargs.pop("rescale_before_resize", self.rescale_before_resize)
        if do_rescale:
            if rescale_first:
                images = [
                    x if x.is_floating_point() else x.float() / (1 / rescale_factor) for x in images
                ]  # ToTensor's x / 255
            else:
                images = [x.div(rescale_factor).round().to(torch.uint8) if x.is_floating_point() else x for x in images]
            do_rescale = not rescale_first
        return super()._preprocess(
            images, return_tensors=return_tensors, do_rescale=do_rescale, rescale_factor=rescale_factor, **kwargs
        )

    def generate_crop_boxes(
        self,
        image,
        target_size: int,
        crop_n_layers: int = 0,
        overlap_ratio: float = 512 / 1500,
        points_per_crop: int = 32,
        crop_n_points_downscale_factor: int = 1,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """The crops and click grids of automatic mask generation in the layout transformers'
        `pipeline("mask-generation")` reads (stock `generate_crop_boxes`), built as Meta's
        `SAM2AutomaticMaskGenerator` builds them. Two fixes over stock transformers:

        - crop layers with fewer points (`crop_n_points_downscale_factor` > 1) no longer stop the pipeline
          with "stack expects each tensor to be equal size" (huggingface/transformers#35530);
        - points are scaled per axis to the square model input (x * S / w, y * S / h of their crop, as
          Meta), where stock scales both by S / max(h, w) (SAM 1's longest-side resize) and so leaves the
          bottom or right part of a non-square crop without points.

        Args:
            image: the image (any container `to_rgb_pixels` reads).
            target_size: S, the side of the square model input (the pipeline passes `size["height"]`).
            crop_n_layers: layers of crops after the whole image; layer i has (2**i)**2 crops.
            overlap_ratio: overlap of layer 1's crops as a fraction of the image's short side (less deeper).
            points_per_crop: points per side of layer 0's grid; layer i has
                int(points_per_crop / crop_n_points_downscale_factor**i) per side.
            crop_n_points_downscale_factor: the per-layer division of points per side.
            device: where the boxes, points and labels go (default: the CPU).

        Returns:
            crop_boxes: (C, 4) float32 [x0, y0, x1, y1] in image pixels, the whole image first, then layer by
                layer (Meta's order).
            points: (1, N, C, 2) float32 x, y in model-input pixels [0, S]; N is the largest grid's point
                count. The pipeline needs one N for every crop, so a crop with a smaller grid repeats its own
                points in order up to N: a repeated click gives its original's mask and score, which
                `post_process_for_mask_generation` drops, so the masks are those of each crop's own grid (the
                repeats cost mask-decoder time, not image-encoder time).
            cropped_images: C (3, h, w) tensors of the crops, uint8 or float32 as the image is read.
            input_labels: (1, N, C) int64 ones (every point is a foreground click).

        Raises ValueError when a crop layer would get no point (`build_all_layer_point_grids`), and the
        image errors of `to_rgb_pixels`.
        """
        pixels = self.process_image(image, do_convert_rgb=True)
        boxes, layers = generate_crop_boxes(tuple(pixels.shape[-2:]), crop_n_layers, overlap_ratio)
        grids = build_all_layer_point_grids(points_per_crop, crop_n_layers, crop_n_points_downscale_factor)
        count = max(len(grid) for grid in grids)
        repeated = [torch.from_numpy(grid[np.arange(count) % len(grid)]) for grid in grids]
        points = to_model_coords(torch.stack([repeated[layer] for layer in layers], dim=1), None, target_size, True)
        crops = [pixels[:, y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]
        labels = torch.ones((1, *points.shape[:-1]), dtype=torch.int64)
        device = device or "cpu"
        return (
            torch.tensor(boxes, dtype=torch.float32, device=device),
            points[None].to(device),
            crops,
            labels.to(device),
        )

    def post_process_for_mask_generation(self, all_masks, all_scores, all_boxes, crops_nms_thresh):
        """transformers' non-maximum suppression over the masks of every crop (what
        `pipeline("mask-generation")` calls last), after dropping exact repeats: a mask whose RLE and
        predicted IoU both equal an earlier one's, as the clicks `generate_crop_boxes` repeats give (box NMS
        alone keeps repeats whose box is a line of pixels, of zero area).

        Args:
            all_masks: N uncompressed RLEs {"size": [H, W], "counts": [int, ...]} (as `filter_masks` gives).
            all_scores: (N,) float predicted IoUs.
            all_boxes: (N, 4) [x0, y0, x1, y1] pixel boxes of the masks.
            crops_nms_thresh: box IoU above which the lower-scored mask is dropped.

        Returns:
            As stock: the kept masks [(H, W) bool tensors], their scores (K,), RLEs and boxes (K, 4), best first.
        """
        first = {}
        for i, (rle, score) in enumerate(zip(all_masks, all_scores.tolist())):
            first.setdefault((score, tuple(rle["size"]), tuple(rle["counts"])), i)
        keep = sorted(first.values())
        return super().post_process_for_mask_generation(
            [all_masks[i] for i in keep], all_scores[keep], all_boxes[keep], crops_nms_thresh
        )


def to_model_coords(coords: torch.Tensor, original_hw, image_size: int, normalized: bool = False) -> torch.Tensor:
    """x, y pairs in the last dimension (..., 2k) -> model-input pixels (0..S).

    coords are original-image pixels (x / W * S, y / H * S) or, with `normalized=True`, fractions
    of the image in [0, 1] (x * S, y * S). Boxes (..., 4) as x0, y0, x1, y1 work unchanged.
    """
    xy = coords.float().reshape(*coords.shape[:-1], coords.shape[-1] // 2, 2)
    if not normalized:
        height, width = original_hw
        xy = xy / torch.tensor([width, height], dtype=xy.dtype, device=xy.device)
    return (xy * image_size).reshape(coords.shape)
