"""The renderer's effects (`sam2_hf.media.render.render_effects`), pixel by pixel, on a textured frame with two
known shapes: each background effect changes only the pixels outside every mask, each object effect only what
it says; the default draws exactly `blend_masks`; the overlay video draws with the same effects."""

from __future__ import annotations

from types import SimpleNamespace

import av
import numpy as np
import pytest

from sam2_hf.media import writers
from sam2_hf.media.render import (
    BACKGROUND_EFFECTS,
    PALETTE,
    SPOTLIGHT_DIM,
    Effects,
    blend_masks,
    outline,
    render_effects,
)

H, W = 60, 80
COLORS = {1: PALETTE[0], 2: PALETTE[1]}


@pytest.fixture(scope="module")
def scene():
    """(frame (H, W, 3) uint8 noise, masks {1: a disc, 2: a box apart from it})."""
    frame = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:H, :W]
    masks = {1: (yy - 25) ** 2 + (xx - 22) ** 2 < 180, 2: (yy > 15) & (yy < 45) & (xx > 48) & (xx < 72)}
    return frame, masks


def outside(masks) -> np.ndarray:
    return ~(masks[1] | masks[2])


def test_the_default_draws_the_colour_overlay(scene):
    frame, masks = scene
    assert np.array_equal(render_effects(frame, masks, COLORS), blend_masks(frame, masks, COLORS))
    assert np.array_equal(render_effects(frame, masks, COLORS, Effects()), blend_masks(frame, masks, COLORS))


@pytest.mark.parametrize("background", [b for b in BACKGROUND_EFFECTS if b != "none"])
def test_a_background_effect_changes_only_the_background(scene, background):
    frame, masks = scene
    plain = render_effects(frame, masks, COLORS)
    drawn = render_effects(frame, masks, COLORS, Effects(background=background))
    changed = (drawn != plain).any(axis=2)
    assert not changed[~outside(masks)].any()  # the objects are drawn as without the effect
    assert changed[outside(masks)].mean() > 0.9  # and the background did change (noise: nearly every pixel)
    back = drawn[outside(masks)]
    if background == "erase":
        assert not back.any()
    if background == "desaturate":
        assert (back[:, 0] == back[:, 1]).all() and (back[:, 1] == back[:, 2]).all()


def test_pixelate_makes_blocks_and_blur_smooths(scene):
    frame, _ = scene
    pixelated = render_effects(frame, {}, COLORS, Effects(background="pixelate"))
    block = pixelated[:4, :4].reshape(-1, 3)  # PIXEL_BLOCK of 80 px: at least 4 px
    assert (block == block[0]).all() and not (pixelated == pixelated[0, 0]).all()
    blurred = render_effects(frame, {}, COLORS, Effects(background="blur")).astype(float)
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.3 * np.abs(np.diff(frame.astype(float), axis=1)).mean()


def test_outline_keeps_the_inside_and_colours_the_border(scene):
    frame, masks = scene
    drawn = render_effects(frame, masks, COLORS, Effects(default_object="outline"))
    for obj_id, mask in masks.items():
        border = outline(mask)
        assert border.any() and (drawn[border] == COLORS[obj_id]).all()
        assert np.array_equal(drawn[mask & ~border], frame[mask & ~border])
    assert np.array_equal(drawn[outside(masks)], frame[outside(masks)])


def test_cutout_keeps_only_the_object_and_is_transparent_elsewhere(scene):
    frame, masks = scene
    only = {1: masks[1]}
    drawn = render_effects(frame, only, COLORS, Effects(objects={1: "cutout"}))
    assert np.array_equal(drawn[masks[1]], frame[masks[1]]) and not drawn[~masks[1]].any()
    rgba = render_effects(frame, only, COLORS, Effects(objects={1: "cutout"}, transparent=True))
    assert rgba.shape == (H, W, 4) and np.array_equal(rgba[..., 3] == 255, masks[1])
    assert set(np.unique(rgba[..., 3])) == {0, 255} and np.array_equal(rgba[..., :3], drawn)
    # beside an overlaid object: the background is erased, the other object still drawn (and opaque)
    both = render_effects(frame, masks, COLORS, Effects(objects={1: "cutout"}, transparent=True))
    assert np.array_equal(both[..., 3] == 255, ~outside(masks))
    assert np.array_equal(both[masks[2], :3], blend_masks(frame, {2: masks[2]}, COLORS)[masks[2]])


def test_spotlight_dims_everything_but_its_object(scene):
    frame, masks = scene
    drawn = render_effects(frame, {1: masks[1]}, COLORS, Effects(objects={1: "spotlight"}))
    assert np.array_equal(drawn[masks[1]], frame[masks[1]])
    dimmed = (frame[~masks[1]].astype(np.float32) * SPOTLIGHT_DIM).round()
    assert np.array_equal(drawn[~masks[1]], dimmed.astype(np.uint8))


def test_unknown_effects_are_named():
    with pytest.raises(ValueError, match="background effect 'sepia'"):
        Effects(background="sepia")
    with pytest.raises(ValueError, match="object effect 'glow' for 2"):
        Effects(objects={2: "glow"})


def test_the_overlay_video_draws_the_effects(scene, tmp_path, monkeypatch):
    frame, masks = scene
    effects = Effects(background="desaturate", objects={2: "outline"}, transparent=True)
    written = []

    def from_ndarray(image, format):
        written.append(image.copy())
        return av.VideoFrame.from_ndarray(image, format=format)

    writer = writers.OverlayVideoWriter(tmp_path / "overlay.mp4", 12, W, H, colors=COLORS, effects=effects)
    monkeypatch.setattr(writers, "av", SimpleNamespace(VideoFrame=SimpleNamespace(from_ndarray=from_ndarray)))
    writer.write(0, masks, frame)
    writer.close()
    assert np.array_equal(written[0], render_effects(frame, masks, COLORS, effects)[..., :3])  # an MP4 has no alpha
