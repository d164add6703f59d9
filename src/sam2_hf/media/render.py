"""The one mask renderer: masks blended into a frame in their objects' colours and outlined. The overlay MP4
(`OverlayVideoWriter`), `sam2-hf segment`'s overlay.png and the Space's frame view all draw with `blend_masks`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from scipy import ndimage

PALETTE = (  # matplotlib's tab10, RGB: object k gets PALETTE[k % 10]
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip
MASK_OPACITY = 0.5
OUTLINE_WIDTH = 2  # pixels, drawn inside the mask at full opacity


def blend_masks(
    frame: np.ndarray, masks: Mapping[Hashable, np.ndarray], colors: Mapping[Hashable, tuple[int, int, int]]
) -> np.ndarray:
    """`frame` (H, W, 3) uint8 with each of `masks` {obj_id: (H, W) bool} blended in `colors[obj_id]` (RGB) at
    `MASK_OPACITY` and outlined `OUTLINE_WIDTH` pixels inside the mask at full opacity, in the masks' order (a
    later object is drawn over an earlier one where they overlap) -> a new (H, W, 3) uint8 array."""
    canvas = frame.astype(np.float32)
    for obj_id, mask in masks.items():
        if mask.any():
            rgb = np.asarray(colors[obj_id], dtype=np.float32)
            canvas[mask] = (1 - MASK_OPACITY) * canvas[mask] + MASK_OPACITY * rgb
            canvas[mask & ~ndimage.binary_erosion(mask, iterations=OUTLINE_WIDTH)] = rgb
    return canvas.round().astype(np.uint8)
