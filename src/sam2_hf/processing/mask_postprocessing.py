"""Mask post-processing: small-hole filling, sprinkle removal, upscaling, non-overlap.

Meta runs the connected-component step with a CUDA kernel (8-connectivity) and silently skips it
when that kernel is missing (always on CPU). Here it runs everywhere, on the CPU with
`scipy.ndimage.label`, with the same semantics:

- a *hole* is a connected background region (logits <= threshold) of at most `max_hole_area`
  low-resolution pixels; its logits are raised to foreground (threshold + 10 in the image
  predictor, 0.1 in the video tracker);
- a *sprinkle* is a connected foreground region (logits > threshold) of at most
  `max_sprinkle_area` pixels; its logits are lowered to threshold - 10.

Both are found on the input logits (a sprinkle inside a filled hole is still removed) and any
region counts, including one touching the border.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
HOLE_FILL_OFFSET = 10.0  # image predictor: holes -> threshold + 10, sprinkles -> threshold - 10
NON_OVERLAP_MAX_LOGIT = -10.0  # losing objects are clamped to at most this (sigmoid ~ 4.5e-5)


def small_components(binary: torch.Tensor, max_area: float) -> torch.Tensor:
    """Pixels of `binary` (..., H, W) that lie in an 8-connected component of area <= max_area."""
    flat = binary.detach().reshape(-1, *binary.shape[-2:]).cpu().numpy().astype(bool)
    small = np.zeros_like(flat)
    for i, image in enumerate(flat):
        labels, _ = ndimage.label(image, structure=EIGHT_CONNECTED)
        areas = np.bincount(labels.ravel())
        areas[0] = max_area + 1  # label 0 is the complement, never a component
        small[i] = areas[labels] <= max_area
    return torch.from_numpy(small).reshape(binary.shape).to(binary.device)


def fill_holes(logits: torch.Tensor, max_area: float, threshold: float = 0.0, fill_value: float | None = None):
    """Set background regions (<= threshold) of area <= max_area in (..., H, W) logits to `fill_value`.

    fill_value defaults to threshold + 10 (Meta's image predictor); Meta's video tracker uses 0.1
    with threshold 0 (`fill_holes_in_mask_scores`).
    """
    if max_area <= 0:
        return logits
    fill_value = threshold + HOLE_FILL_OFFSET if fill_value is None else fill_value
    return torch.where(small_components(logits <= threshold, max_area), fill_value, logits)


def clean_masks(
    logits: torch.Tensor, max_hole_area: float = 0.0, max_sprinkle_area: float = 0.0, threshold: float = 0.0
):
    """Meta's image-predictor cleanup of (..., H, W) logits: holes -> threshold + 10, sprinkles ->
    threshold - 10, both judged on the input logits."""
    out = fill_holes(logits, max_hole_area, threshold)
    if max_sprinkle_area > 0:
        sprinkles = small_components(logits > threshold, max_sprinkle_area)
        out = torch.where(sprinkles, threshold - HOLE_FILL_OFFSET, out)
    return out


def upscale_masks(logits: torch.Tensor, size) -> torch.Tensor:
    """(N, M, h, w) logits -> (N, M, H, W) float32: bilinear, align_corners=False."""
    return F.interpolate(logits.float(), size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)


def postprocess_masks(
    low_res_logits: torch.Tensor,
    original_hw,
    threshold: float = 0.0,
    max_hole_area: float = 0.0,
    max_sprinkle_area: float = 0.0,
) -> torch.Tensor:
    """Meta's `SAM2Transforms.postprocess_masks`: clean the (N, M, h, w) low-resolution logits, then
    upscale them to the original (H, W): -> (N, M, H, W) logits."""
    logits = clean_masks(low_res_logits.float(), max_hole_area, max_sprinkle_area, threshold)
    return upscale_masks(logits, original_hw)


def apply_non_overlapping_constraints(masks: torch.Tensor) -> torch.Tensor:
    """Keep, at each pixel, only the highest-scoring object of (num_objects, ...) logits; the
    others are clamped to <= -10 (as Meta's `_apply_non_overlapping_constraints`)."""
    if masks.shape[0] <= 1:
        return masks
    winner = masks.argmax(dim=0, keepdim=True)
    objects = torch.arange(masks.shape[0], device=masks.device).reshape(-1, *([1] * (masks.ndim - 1)))
    return torch.where(winner == objects, masks, masks.clamp(max=NON_OVERLAP_MAX_LOGIT))
