"""The frame view: a frame with every object's mask blended in its colour, and the clicks and boxes on it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw

from sam2_hf.media.render import PALETTE, Effects, render_effects
from sam2_hf.processing.prompts import Prompt

POSITIVE, NEGATIVE = (40, 200, 70), (230, 40, 40)
VIEW_SIDE = 720  # smaller videos are shown enlarged to this many pixels on the long side
# The timeline: one lane per object, one column per frame, each frame in one of these states
UNTRACKED, EMPTY, MASK, CLICKED = range(4)  # no result yet / object absent / a mask / a clicked frame's mask
LANE, GAP = 14, 4  # pixels: a lane's height and the space around it
TIMELINE_BACKGROUND, EMPTY_GREY, MARKER = (248, 249, 251), (205, 208, 214), (20, 24, 32)
STALE_FADE = 0.6  # a stale mask (made before the last correction) is its colour this far towards white


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


def draw_timeline(
    lanes: Mapping[int, np.ndarray], stale: np.ndarray, marker: int, width: int = VIEW_SIDE
) -> np.ndarray:
    """The per-object timeline, (len(lanes) * (LANE + GAP) + GAP, width, 3) uint8: a lane per object in its colour,
    `lanes` {obj_id: (T,) states (UNTRACKED, EMPTY, MASK, CLICKED)}; frame t spans the columns `timeline_columns`
    gives it. MASK is the object's colour (faded towards white where `stale`, (T,) bool), CLICKED the colour with a
    dark tick above and below, EMPTY grey, UNTRACKED the background; a dark line marks frame `marker`."""
    num_frames = len(stale)
    image = np.empty((len(lanes) * (LANE + GAP) + GAP, width, 3), np.uint8)
    image[:] = TIMELINE_BACKGROUND
    for row, (obj_id, states) in enumerate(lanes.items()):
        top = GAP + row * (LANE + GAP)
        lane = image[top : top + LANE]
        faded = np.round(np.add(color(obj_id), STALE_FADE * (255 - np.asarray(color(obj_id))))).astype(np.uint8)
        for t, state in enumerate(states):
            x0, x1 = timeline_columns(t, num_frames, width)
            if state == EMPTY:
                lane[:, x0:x1] = EMPTY_GREY
            elif state in (MASK, CLICKED):
                lane[:, x0:x1] = faded if stale[t] and state == MASK else color(obj_id)
            if state == CLICKED:
                image[top - GAP // 2 : top, x0:x1] = image[top + LANE : top + LANE + GAP // 2, x0:x1] = MARKER
    x0, x1 = timeline_columns(marker, num_frames, width)
    centre = (x0 + x1) // 2
    image[:, max(centre - 1, 0) : centre + 1] = MARKER
    return image


def timeline_columns(frame: int, num_frames: int, width: int = VIEW_SIDE) -> tuple[int, int]:
    """The columns [x0, x1) frame `frame` spans on a timeline `width` pixels wide (at least one)."""
    x0 = frame * width // num_frames
    return x0, max(x0 + 1, (frame + 1) * width // num_frames)


def timeline_frame(x: float, num_frames: int, width: int = VIEW_SIDE) -> int:
    """The frame under column `x` of the timeline."""
    return min(max(int(x * num_frames // width), 0), num_frames - 1)
