"""Image and prompt-coordinate preprocessing, exactly as Meta's `SAM2Transforms`.

An image becomes the model input in three steps (the same arithmetic as torchvision's
`ToTensor -> Resize((S, S)) -> Normalize(mean, std)`, without depending on torchvision):

    uint8 (H, W, 3) -> float (3, H, W) in [0, 1] -> squashed to (3, S, S) (bilinear, antialiased) -> ImageNet-normalized

The resize ignores the aspect ratio, so prompt coordinates are scaled per axis: x * S / W, y * S / H.

Accepted images:
- numpy arrays (H, W) or (H, W, C) with C = 1 (grayscale, replicated), 3 (RGB) or 4 (RGBA, alpha dropped);
- PIL images of any mode (converted with `.convert("RGB")`);
- torch tensors in the torchvision layout (H, W) or (C, H, W), same channel rules.
Pixel values must be uint8 (0..255) or floating point already scaled to [0, 1] (what `ToTensor` leaves
unscaled); anything else (int64, uint16, bool, floats above 1) is rejected rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _is_pil_image(image) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL is a transformers dependency
        return False
    return isinstance(image, Image.Image)


def to_rgb_tensor(image) -> torch.Tensor:
    """One image (numpy HWC / HW, PIL, or torch CHW / HW) -> (3, H, W) float32 in [0, 1] on the CPU
    (a tensor keeps its device)."""
    if _is_pil_image(image):
        return _channels_last_to_rgb(torch.tensor(np.asarray(image.convert("RGB"))), "PIL image")
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3:
            raise ValueError(f"A numpy image must be (H, W) or (H, W, C); got shape {image.shape}.")
        if image.shape[2] not in (1, 3, 4) and image.shape[0] in (1, 3, 4):
            raise ValueError(
                f"A numpy image must be channels-last (H, W, C); got shape {image.shape}, which looks "
                "channels-first: use image.transpose(1, 2, 0)."
            )
        return _channels_last_to_rgb(torch.tensor(image), "numpy image")
    if isinstance(image, torch.Tensor):
        if image.ndim == 2:
            image = image[None]
        if image.ndim != 3:
            raise ValueError(f"A torch image must be (H, W) or (C, H, W); got shape {tuple(image.shape)}.")
        return _channels_last_to_rgb(image.permute(1, 2, 0), "torch image (C, H, W)")
    raise TypeError(
        f"Images must be numpy arrays (H, W, C), PIL images or torch tensors (C, H, W); got {type(image).__name__}."
    )


def _channels_last_to_rgb(image: torch.Tensor, what: str) -> torch.Tensor:
    """(H, W, C) uint8 or [0, 1]-float tensor -> (3, H, W) float32 in [0, 1]."""
    height, width, channels = image.shape
    if channels not in (1, 3, 4):
        raise ValueError(f"A {what} must have 1 (gray), 3 (RGB) or 4 (RGBA) channels; got {channels}.")
    if height == 0 or width == 0:
        raise ValueError(f"The {what} is empty: height {height}, width {width}.")
    if image.dtype == torch.uint8:
        image = image.float().div(255)  # ToTensor's scaling
    elif image.is_floating_point():
        low, high = image.min().item(), image.max().item()
        if not (low >= 0.0 and high <= 1.0):  # also rejects NaN
            raise ValueError(
                f"A floating-point {what} must hold values in [0, 1]; got range [{low}, {high}]. "
                "Pass uint8 for 0..255 pixel values."
            )
        image = image.float()
    else:
        raise TypeError(f"A {what} must be uint8 (0..255) or float in [0, 1]; got dtype {image.dtype}.")
    image = image[..., :3] if channels == 4 else image.expand(-1, -1, 3)
    return image.permute(2, 0, 1).contiguous()


def resize_and_normalize(
    images: torch.Tensor, image_size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """(B, 3, H, W) floats in [0, 1] -> (B, 3, S, S) squashed to S x S and normalized.

    Bilinear with antialiasing and `align_corners=False`, as torchvision's `Resize` does on tensors.
    """
    if tuple(images.shape[-2:]) != (image_size, image_size):
        images = F.interpolate(
            images, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )
    mean = torch.as_tensor(mean, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
    std = torch.as_tensor(std, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
    return (images - mean) / std


def preprocess_images(
    images, image_size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """One image or a list of images (sizes may differ) -> pixel_values (B, 3, S, S) and the original [(H, W)]."""
    if not isinstance(images, (list, tuple)):
        images = [images]
    if len(images) == 0:
        raise ValueError("No images were given (an empty list).")
    pixel_values, original_sizes = [], []
    for image in images:
        rgb = to_rgb_tensor(image)
        original_sizes.append(tuple(rgb.shape[-2:]))
        pixel_values.append(resize_and_normalize(rgb[None], image_size, mean, std))
    return torch.cat(pixel_values), original_sizes


def to_model_coords(coords: torch.Tensor, original_hw, image_size: int, normalized: bool = False) -> torch.Tensor:
    """x, y pairs in the last dimension (..., 2k) -> model-input pixels (0..S).

    coords are original-image pixels (x / W * S, y / H * S) or, with `normalized=True`, fractions
    of the image in [0, 1] (x * S, y * S). Boxes (..., 4) as x0, y0, x1, y1 work unchanged.
    """
    xy = coords.float().reshape(*coords.shape[:-1], -1, 2)
    if not normalized:
        height, width = original_hw
        xy = xy / torch.tensor([width, height], dtype=xy.dtype, device=xy.device)
    return (xy * image_size).reshape(coords.shape)
