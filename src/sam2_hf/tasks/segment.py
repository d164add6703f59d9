"""Segmenting one image: its masks saved as a video's are (PNG masks, COCO RLE JSON) plus an overlay image."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ..media.render import PALETTE, blend_masks
from .tracker import Masklets

OVERLAY_IMAGE = "overlay.png"


def save_image_results(image, masks: dict, folder: Path, overwrite: bool = False) -> Path:
    """One image's masks {obj_id: (H, W) bool} as `Masklets.save` writes a video's (PNG masks, COCO RLE JSON;
    frame 0) plus `overlay.png` (the masks drawn by `media.render.blend_masks` in the tracking palette, in order);
    returns the folder."""
    masklets = Masklets(image.shape[0], image.shape[1], num_frames=1)
    masklets.add(0, masks)
    masklets.save(image, folder, ("png", "rle"), overwrite=overwrite)
    colors = {obj_id: PALETTE[i % len(PALETTE)] for i, obj_id in enumerate(masks)}
    Image.fromarray(blend_masks(image, masks, colors)).save(folder / OVERLAY_IMAGE)
    return folder
