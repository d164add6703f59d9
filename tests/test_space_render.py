"""The Space's mask drawing: the frame view (`space.render.overlay_masks`) blends masks exactly as the
downloaded overlay MP4 (the library's `OverlayVideoWriter`, given the Space's colours) does."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # app.py and space/ live at the repo root
from space.render import color, draw_frame, overlay_masks

from sam2_hf.media import writers


def test_frame_view_and_overlay_video_draw_masks_alike(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:48, :64]
    masks = {
        1: (yy - 20) ** 2 + (xx - 20) ** 2 < 150,  # a disc
        3: (yy > 10) & (yy < 40) & (xx > 25) & (xx < 60),  # a box over part of it: drawn after, on top
        12: np.zeros((48, 64), bool),  # an empty mask changes nothing
    }
    written = []

    def from_ndarray(image, format):
        written.append(image.copy())
        return av.VideoFrame.from_ndarray(image, format=format)

    writer = writers.OverlayVideoWriter(tmp_path / "overlay.mp4", 12, 64, 48, colors={i: color(i) for i in masks})
    monkeypatch.setattr(writers, "av", SimpleNamespace(VideoFrame=SimpleNamespace(from_ndarray=from_ndarray)))
    writer.write(0, masks, frame)
    writer.close()

    view = overlay_masks(frame, masks)
    assert view.dtype == np.uint8 and view.shape == frame.shape
    assert np.array_equal(view, written[0])
    assert not np.array_equal(view[masks[1]], frame[masks[1]])
    assert np.array_equal(view[~(masks[1] | masks[3])], frame[~(masks[1] | masks[3])])
    enlarged = Image.fromarray(view).resize((720, 540), Image.BILINEAR)  # the view is 720 px on the long side
    assert np.array_equal(draw_frame(frame, masks, {}), np.asarray(enlarged))  # no prompts: just the masks
