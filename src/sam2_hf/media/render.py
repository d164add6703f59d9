"""The one mask renderer: masks blended into a frame in their objects' colours and outlined (`blend_masks`), and
the effects built on it (`Effects`, `render_effects`: the background blurred, desaturated, erased or pixelated;
each object overlaid, outlined, cut out or spotlit). The overlay MP4 (`OverlayVideoWriter`), `sam2-hf segment`'s
overlay.png and the Space's frame view and exports all draw here."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

PALETTE = (  # matplotlib's tab10, RGB: object k gets PALETTE[k % 10]
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip
MASK_OPACITY = 0.5
OUTLINE_WIDTH = 2  # pixels, drawn inside the mask at full opacity
BACKGROUND_EFFECTS = ("none", "blur", "desaturate", "erase", "pixelate")  # for the pixels outside every mask
OBJECT_EFFECTS = ("overlay", "outline", "cutout", "spotlight")  # per object, for its mask
BLUR_RADIUS = 0.01  # Gaussian blur's radius, as a fraction of the frame's diagonal (at least 2 pixels)
PIXEL_BLOCK = 0.025  # pixelate's block side, as a fraction of the frame's longer side (at least 4 pixels)
SPOTLIGHT_DIM = 0.3  # what a spotlight leaves of the brightness outside its objects
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B: desaturate's grey


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
            canvas[outline(mask)] = rgb
    return canvas.round().astype(np.uint8)


def outline(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> the mask's pixels within `OUTLINE_WIDTH` of its border, (H, W) bool."""
    return mask & ~ndimage.binary_erosion(mask, iterations=OUTLINE_WIDTH)


@dataclass(frozen=True)
class Effects:
    """How `render_effects` draws a frame and its masks.

    background: one of `BACKGROUND_EFFECTS`, for the pixels outside every mask (default "none": unchanged).
    objects: {obj_id: one of `OBJECT_EFFECTS`}; objects not named get `default_object` (default "overlay": the
        colour blend and outline of `blend_masks`). "outline" draws only the outline; "cutout" keeps the object's
        own pixels and erases the background (every pixel outside all masks), whatever `background` says;
        "spotlight" keeps the object's pixels and dims the rest of the frame to `SPOTLIGHT_DIM` (after the
        background effect).
    transparent: erased pixels get alpha 0 in an RGBA result instead of black (for video editors).
    Raises ValueError naming an unknown effect.
    """

    background: str = "none"
    objects: Mapping[Hashable, str] = field(default_factory=dict)
    default_object: str = "overlay"
    transparent: bool = False

    def __post_init__(self):
        if self.background not in BACKGROUND_EFFECTS:
            raise ValueError(f"Unknown background effect {self.background!r}; choose one of {BACKGROUND_EFFECTS}.")
        for obj_id, name in [*self.objects.items(), ("default_object", self.default_object)]:
            if name not in OBJECT_EFFECTS:
                raise ValueError(f"Unknown object effect {name!r} for {obj_id}; choose one of {OBJECT_EFFECTS}.")

    def of(self, obj_id: Hashable) -> str:
        """The effect object `obj_id` gets."""
        return self.objects.get(obj_id, self.default_object)

    def erases(self, obj_ids) -> bool:
        """Whether the background is erased for objects `obj_ids` (by "erase", or by a cut-out object)."""
        return self.background == "erase" or any(self.of(obj_id) == "cutout" for obj_id in obj_ids)


def render_effects(
    frame: np.ndarray,
    masks: Mapping[Hashable, np.ndarray],
    colors: Mapping[Hashable, tuple[int, int, int]],
    effects: Effects | None = None,
) -> np.ndarray:
    """`frame` (H, W, 3) uint8 with `masks` {obj_id: (H, W) bool} drawn with `effects` (default: `Effects()`,
    which draws what `blend_masks` draws); `colors` {obj_id: RGB} for the overlay and outline effects.

    Order: the background effect outside every mask (erased when an object is cut out); spotlights dim outside the
    spotlit objects; then each overlaid / outlined object in the masks' order.
    Returns (H, W, 3) uint8, or (H, W, 4) RGBA when `effects.transparent` (alpha 0 where erased, else 255).
    """
    effects = effects or Effects()
    union, canvas = np.zeros(frame.shape[:2], bool), frame.astype(np.float32)
    for mask in masks.values():
        union |= mask
    erased = ~union if effects.erases(masks) else np.zeros_like(union)
    if effects.background not in ("none", "erase"):
        canvas[~union] = _background(frame, effects.background)[~union]
    spotlit = [mask for obj_id, mask in masks.items() if effects.of(obj_id) == "spotlight"]
    if spotlit:
        canvas[~np.logical_or.reduce(spotlit)] *= SPOTLIGHT_DIM
    canvas[erased] = 0
    drawn = canvas.round().astype(np.uint8)
    drawn = blend_masks(drawn, {i: m for i, m in masks.items() if effects.of(i) == "overlay"}, colors)
    for obj_id, mask in masks.items():
        if effects.of(obj_id) == "outline":
            drawn[outline(mask)] = colors[obj_id]
    if not effects.transparent:
        return drawn
    return np.dstack([drawn, np.where(erased, 0, 255).astype(np.uint8)])


def _background(frame: np.ndarray, name: str) -> np.ndarray:
    """The whole `frame` (H, W, 3) uint8 with background effect `name` ("blur", "desaturate", "pixelate")."""
    height, width = frame.shape[:2]
    image = Image.fromarray(frame)
    if name == "blur":
        radius = max(2.0, BLUR_RADIUS * float(np.hypot(height, width)))
        return np.asarray(image.filter(ImageFilter.GaussianBlur(radius)))
    if name == "desaturate":
        grey = frame.astype(np.float32) @ np.asarray(LUMA, np.float32)
        return np.repeat(grey[..., None], 3, axis=2).round().astype(np.uint8)
    block = max(4, round(PIXEL_BLOCK * max(height, width)))
    small = image.resize((max(1, -(-width // block)), max(1, -(-height // block))), Image.BOX)
    return np.asarray(small.resize((width, height), Image.NEAREST))
