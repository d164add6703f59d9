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

from collections.abc import Sequence

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


def _channel_axis(image):
    """A gray (H, W) array -> (H, W, 1), a gray (H, W) tensor -> (1, H, W); anything else as it is."""
    if isinstance(image, np.ndarray) and image.ndim == 2:
        return image[..., None]
    if isinstance(image, torch.Tensor) and image.ndim == 2:
        return image[None]
    return image


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
