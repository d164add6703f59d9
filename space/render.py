"""The frame view: a frame with every object's mask blended in its colour, and the clicks and boxes on it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw

from sam2_hf.media.render import PALETTE, Effects, render_effects
from sam2_hf.processing.prompts import Prompt

POSITIVE, NEGATIVE = (40, 200, 70), (230, 40, 40)
VIEW_SIDE = 720  # smaller videos are shown enlarged to this many pixels on the long side


def view_scale(width: int, height: int) -> float:
    """How much the frame view enlarges a frame of this size (never shrinks it)."""
    return max(1.0, VIEW_SIDE / max(width, height))


def color(obj_id: int) -> tuple[int, int, int]:
    """An object's colour, fixed by its id (so it never changes while the object exists)."""
    return PALETTE[(obj_id - 1) % len(PALETTE)]


def overlay_masks(frame: np.ndarray, masks: Mapping[int, np.ndarray], effects: Effects | None = None) -> np.ndarray:
    """`frame` (H, W, 3) uint8 with `masks` {obj_id: (H, W) bool} drawn by the library's one renderer
    (`render_effects` with `effects`, default: the colour overlay), each in `color(obj_id)`: the overlay MP4 of the
    downloads (`OverlayVideoWriter`, given the same colours and effects) draws the same pixels;
    tests/test_space_render.py checks it."""
    return render_effects(frame, masks, {obj_id: color(obj_id) for obj_id in masks}, effects)


def draw_frame(
    frame: np.ndarray,
    masks: Mapping[int, np.ndarray],
    prompts: Mapping[int, Prompt],
    corner: tuple[float, float] | None = None,
    effects: Effects | None = None,
) -> np.ndarray:
    """`frame` (H, W, 3) with `masks` {obj_id: (H, W) bool} drawn with `effects` (`overlay_masks`), each
    object's clicks (green positive, red negative, ringed in its colour) and box, and the first
    corner of a box being drawn; enlarged by `view_scale`."""
    height, width = frame.shape[:2]
    scale = view_scale(width, height)
    image = Image.fromarray(overlay_masks(frame, masks, effects))
    if scale > 1:
        image = image.resize((round(width * scale), round(height * scale)), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    r = max(6, round(min(image.size) / 45))
    for obj_id, prompt in prompts.items():
        ring = color(obj_id)
        if prompt.box is not None:
            box = [v * scale for v in prompt.box.tolist()]
            draw.rectangle(box, outline="white", width=r // 2 + 2)
            draw.rectangle(box, outline=ring, width=r // 2)
        for (x, y), label in prompt.clicks:
            x, y = x * scale, y * scale
            draw.ellipse((x - r - 2, y - r - 2, x + r + 2, y + r + 2), fill="white")
            draw.ellipse((x - r, y - r, x + r, y + r), fill=POSITIVE if label else NEGATIVE, outline=ring, width=r // 3)
            draw.line((x - r / 2, y, x + r / 2, y), fill="white", width=2)
            if label:
                draw.line((x, y - r / 2, x, y + r / 2), fill="white", width=2)
    if corner is not None:
        x, y = corner[0] * scale, corner[1] * scale
        draw.line((x - 2 * r, y, x + 2 * r, y), fill="white", width=2)
        draw.line((x, y - 2 * r, x, y + 2 * r), fill="white", width=2)
    return np.asarray(image)
