"""The Space's sessions driven without a server (`Session` actions and the `Handlers` over them), on the
random-weight tiny model and the 12-frame synthetic clip of tests/test_space_api.py: what the user made is
never lost or silently changed — by a speed or model switch, a bad upload, a busy Track, tracking itself
(the user's frame), a closed tab mid-run — and each action says what it did."""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import av
import httpx2
import numpy as np
import pytest
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
from PIL import Image
from scipy import ndimage

gr = pytest.importorskip("gradio")
from space import UserError, engine  # noqa: E402
from space import models as models_module  # noqa: E402
from space import session as session_module  # noqa: E402
from space.config import AppConfig, parse_args  # noqa: E402
from space.engine import Engine  # noqa: E402
from space.handlers import Handlers, tracking_message  # noqa: E402
from space.models import ModelStore  # noqa: E402
from space.render import (  # noqa: E402
    CLICKED,
    EMPTY,
    GAP,
    LANE,
    MARKER,
    MASK,
    STALE_FADE,
    UNTRACKED,
    VIEW_SIDE,
    color,
    timeline_columns,
    timeline_frame,
)
from space.session import Session  # noqa: E402

from sam2_hf.training.finetune import finetune  # noqa: E402
from test_space_api import NEGATIVE_AT_4, NUM_FRAMES, OFF_GRID_AT_3, RED_DISC_AT_0, save_clip, save_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("sam2-tiny-256"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return save_clip(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="module")
def models():
    return ModelStore()


@pytest.fixture
def open_session(models, model_dir, clip, tmp_path, monkeypatch):
    """speed preset -> a Session with `clip` loaded, on the random-weight model, driven without the UI."""
    monkeypatch.setattr(engine, "ENGINE", Engine(models))
    sessions = []

    def open_at(speed: str) -> Session:
        session = Session(f"direct-{len(sessions)}", AppConfig(model=str(model_dir), speed=speed), models, tmp_path)
        session.load_video(clip, lambda i, n: None)
        sessions.append(session)
        return session

    yield open_at
    for session in sessions:
        session.close()


def all_masks(session: Session) -> np.ndarray:
    """(T, objects, H, W) bool: every frame's masks of the session's objects, in id order."""
    return np.stack([[session.results.mask(t, o) for o in sorted(session.objects)] for t in range(NUM_FRAMES)])


# ------------------------------------------------------------------------------------------------ tracking
@pytest.mark.parametrize("speed", ["fast", "fastest"])
@pytest.mark.parametrize("start", [0, NUM_FRAMES - 1])  # frame 3 is reached by the forward / the backward pass
def test_clicked_frames_keep_their_masks_at_every_stride(open_session, speed, start):
    session = open_session(speed)
    stride = session.speed_info.stride
    session.add_point(0, 1, *RED_DISC_AT_0)
    session.add_object()
    session.add_point(3, 2, *OFF_GRID_AT_3)
    clicked = {(0, 1): session.results.mask(0, 1), (3, 2): session.results.mask(3, 2)}
    assert 0.05 < clicked[3, 2].mean() < 0.95  # what OFF_GRID_AT_3 says: a partial mask, not an empty or full one

    list(session.track(start, "both"))
    for (t, obj), mask in clicked.items():
        assert np.array_equal(session.results.mask(t, obj), mask), f"frame {t} lost object {obj}'s clicked mask"
    neighbour = 3 // stride * stride if start < 3 else -(-3 // stride) * stride  # the grid frame the pass comes from
    assert not np.array_equal(session.results.mask(neighbour, 2), clicked[3, 2])  # holding it would change frame 3


def test_a_correction_on_a_tracked_frame_survives_tracking_again(open_session):
    session, k = open_session("balanced"), 4
    session.add_point(0, 1, *RED_DISC_AT_0)
    list(session.track(0, "forward"))
    tracked = [session.results.mask(t, 1) for t in range(NUM_FRAMES)]

    session.add_point(k, 1, *NEGATIVE_AT_4, "negative")
    corrected = session.results.mask(k, 1)
    x, y = NEGATIVE_AT_4
    assert tracked[k][y, x] and not corrected[y, x]  # the click removed part of the tracked mask ...
    assert 0 < corrected.sum() < tracked[k].sum()  # ... and left the rest

    list(session.track(k, "forward"))
    assert np.array_equal(session.results.mask(k, 1), corrected)
    assert not np.array_equal(session.results.mask(k + 1, 1), tracked[k + 1])  # the track follows the correction


def test_a_damaged_frame_stops_tracking_and_keeps_the_frames_before_it(open_session):
    session = open_session("balanced")
    session.add_point(0, 1, *RED_DISC_AT_0)
    (session.video.frames_dir / "00005.jpg").write_bytes(b"\xff\xd8 damaged")
    list(session.track(0, "forward"))
    assert session.message.startswith("Stopped: frame 5 could not be read") and not session.tracking
    assert session.results.frames(1) == [0, 1, 2, 3, 4]
    assert session.results.mask(4, 1).any()


def test_tracking_streams_masks_and_leaves_the_users_frame(open_session):
    """Each update carries the tracked frame and its masks (the page shows them as they come); the frame the
    user works on — where the next Track starts — stays where it was."""
    session = open_session("balanced")
    session.add_point(5, 1, *RED_DISC_AT_0)
    session.show(5)
    updates = list(session.track(5, "both"))
    assert [u.frame for u in updates] == [5, 6, 7, 8, 9, 10, 11, 4, 3, 2, 1, 0]
    for u in updates:
        assert np.array_equal(u.masks[1], session.results.mask(u.frame, 1))
    assert sum(u.masks[1].any() for u in updates) >= NUM_FRAMES // 2  # not a run of empty masks
    assert session.frame == 5


# ------------------------------------------------------------------------------------------------ nothing lost
def test_switching_speed_or_model_keeps_every_mask(open_session, model_dir, tmp_path):
    """A switch of speed preset (another input size) or of model keeps the tracked masks, says they come from the
    other setting (and so does an export made before tracking again); the clicked frame gets the new setting's
    mask; tracking again remakes them all."""
    session = open_session("balanced")
    session.add_point(0, 1, *RED_DISC_AT_0)
    list(session.track(0, "forward"))
    tracked = all_masks(session)
    assert tracked[1:].any(axis=(2, 3)).all()  # every tracked frame has a mask to lose

    session.set_speed("best")  # 256 px instead of 128
    kept = all_masks(session)
    assert np.array_equal(kept[1:], tracked[1:]), "the tracked masks were dropped"
    assert kept[0].any() and not np.array_equal(kept[0], tracked[0])  # the clicked frame, remade at 256 px
    assert "made with" in session.message and "128 px" in session.message and "Track again" in session.message
    session.export()
    assert session.message.startswith("Exported, mixing settings:")

    other = shutil.copytree(model_dir, tmp_path / "another-model")
    session.set_model(str(other))
    assert np.array_equal(all_masks(session)[1:], tracked[1:]) and "128 px" in session.message  # the first setting

    list(session.track(0, "forward"))
    assert session.made_at is None and not np.array_equal(all_masks(session)[1:], tracked[1:])
    session.export()
    assert not session.message.startswith("Exported, mixing")


@pytest.mark.parametrize("content", [b"", b"this is a text file, not a video\n"], ids=["empty", "text"])
def test_a_bad_upload_changes_nothing(open_session, content, tmp_path):
    session = open_session("balanced")
    session.add_point(0, 1, *RED_DISC_AT_0)
    list(session.track(0, "forward"))
    session.show(3)
    before = (session.video, dict(session.prompts), all_masks(session), session.frame, session.message)

    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(content)
    with pytest.raises(UserError, match="holiday.mp4"):
        session.load_video(bad, lambda i, n: None)
    assert session.video is before[0] and session.prompts == before[1] and session.frame == before[3]
    assert np.array_equal(all_masks(session), before[2]) and session.message == before[4]
    assert session.video.frames_dir.is_dir() and session.view() is not None
    assert [p.name for p in session.workdir.iterdir()] == [session.video.frames_dir.parent.name]  # no leftovers


def test_track_while_busy_shows_cancel_in_its_place(open_session, tmp_path):
    """While a run (and its export) goes on, the Track button is hidden and Cancel shown (a second Track click
    was dropped without a word); both come back when it ends. Another Track request is refused with a reason."""
    handlers = Handlers(AppConfig(examples=False), engine.ENGINE.models, tmp_path)
    session = open_session("balanced")
    session.add_point(0, 1, *RED_DISC_AT_0)
    run = handlers.track(session, 0, "forward", None)
    first = next(run)
    track, cancel = first[-2:]
    assert track.visible is False and cancel.visible is True
    with pytest.raises(UserError, match="Tracking is running"):
        next(session.track(0, "forward"))
    *_, last = run
    track, cancel = last[-2:]
    assert track.visible is True and cancel.visible is False
    assert last[2].endswith("Downloads ready.")


def test_closing_the_tab_mid_track_or_mid_export_ends_cleanly(open_session):
    session = open_session("balanced")
    session.add_point(0, 1, *RED_DISC_AT_0)
    run = session.track(0, "forward")
    next(run)
    session.close()  # the tab's delete callback, from another thread in the app
    assert session.workdir.exists()  # the run still reads the frames: freed when it stops
    rest = list(run)
    assert len(rest) <= 1 and session.message.startswith("Cancelled") and not session.workdir.exists()

    session = open_session("balanced")
    session.add_point(0, 1, *RED_DISC_AT_0)

    def close_midway(done, total):
        if done == 3:
            session.close()

    with pytest.raises(UserError, match="closed during the export"):
        session.export(close_midway)
    assert not session.workdir.exists()
    with pytest.raises(UserError):  # a readable message, not a stack trace
        session.export()


def test_a_tab_closed_while_its_downloads_are_handed_out_keeps_them_until_gradio_read_them(open_session, tmp_path):
    """The tab closes (`unload`) right after /track or /export yields its downloads, before Gradio has read them (it
    checks and copies the overlay video and the files after the handler yields): the files stay until the handler
    ends, then the session's folder goes. Before, the CI load test's server logged FileNotFoundError on a leaver's
    clip_overlay.mp4."""
    handlers = Handlers(AppConfig(examples=False), engine.ENGINE.models, tmp_path)
    for event in ("track", "export"):
        session = open_session("balanced")
        session.add_point(0, 1, *RED_DISC_AT_0)
        if event == "track":
            run = handlers.track(session, 0, "forward", None)
            out = next(o for o in run if str(o[2]).endswith("Downloads ready."))
        else:
            list(session.track(0, "forward"))
            run = handlers.export(session, None)
            out = next(run)
        handed_out = session.exports  # the result video (read by Gradio after the yield) and the downloads
        assert Path(out[8]) in handed_out and Path(out[8]).name.endswith("_overlay.mp4")
        handlers.close_session(session)  # the tab's unload, from another thread in the app
        assert all(p.is_file() for p in handed_out), event
        assert next(run, None) is None  # Gradio asks for the next output once it has read this one: the end
        assert not session.workdir.exists(), event


# ------------------------------------------------------------------------------------------------ saying what
def test_undo_says_what_it_undid(open_session):
    session = open_session("balanced")
    session.add_point(0, 1, *RED_DISC_AT_0)
    session.add_point(4, 1, *NEGATIVE_AT_4, "negative")
    session.undo()
    assert session.message.startswith("Undone: #1 Object 1: 1 click on frame 4 (")
    session.clear_frame(0)
    session.undo()
    assert session.message.startswith("Undone: Cleared frame 0 (")


def test_a_negative_only_prompt_is_explained(open_session):
    session = open_session("balanced")
    session.add_point(0, 1, *RED_DISC_AT_0, "negative")
    assert "Only negative clicks" in session.message
    session.add_point(0, 1, *RED_DISC_AT_0)
    assert "Only negative clicks" not in session.message


def test_a_new_object_starts_positive_and_start_over_asks_first(open_session, tmp_path):
    handlers = Handlers(AppConfig(examples=False), engine.ENGINE.models, tmp_path)
    session = open_session("balanced")
    handlers.add_point(session, 0, 1, "negative", *RED_DISC_AT_0, None)
    assert handlers.add_object(session, None)[-1] == "positive"  # the click mode after "+ Add object"

    handlers.start_over(session, None)
    assert session.pending == "start_over" and "press Start over again" in session.message and session.prompts
    handlers.undo(session, None)  # anything else in between: the question lapses
    handlers.add_point(session, 0, 1, "positive", *RED_DISC_AT_0, None)
    handlers.start_over(session, None)
    assert session.prompts
    handlers.start_over(session, None)
    assert not session.prompts and session.message.startswith("Started over")


def test_help_shows_the_limits_defaults(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    limits = [("--max-seconds", "10"), ("--max-side", "1280"), ("--max-frames", "300"), ("--port", "7860")]
    queueing = [("--track-concurrency", "4"), ("--queue-size", "256"), ("--max-sessions", "64")]
    for flag, default in limits + queueing:
        assert f"default: {default})" in text.split(flag)[-1].split("--")[0], flag


# ------------------------------------------------------------------------------------------------ effects
def test_effects_show_on_the_frame_and_in_the_exports(open_session):
    """A background and an object effect change the frame view and the exported videos (the overlay MP4 and the
    transparent frames), drawn by the library's renderer; an unknown effect is named."""
    session = open_session("balanced")
    session.add_point(0, 1, *RED_DISC_AT_0)
    mask, plain = session.results.mask(0, 1), session.view()
    assert 0.05 < mask.mean() < 0.95  # something to cut out, and a background to erase
    session.set_object_effect(1, "cutout")
    assert session.message.startswith("#1 Object 1: cutout")
    cut = session.view()
    y, x = np.argwhere(ndimage.binary_erosion(~mask, iterations=2))[0]  # a background pixel, away from the edge
    scale = cut.shape[0] / mask.shape[0]  # the view is enlarged
    assert cut[round((y + 0.5) * scale), round((x + 0.5) * scale)].max() == 0 < plain.max()  # the background: erased
    with pytest.raises(UserError, match="Unknown background effect 'sepia'"):
        session.set_background("sepia")
    with pytest.raises(UserError, match="Unknown object effect 'glow'"):
        session.set_object_effect(1, "glow")

    _, _, mp4, transparent = session.export()
    with av.open(str(mp4)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    assert first[~mask].mean() < 8 and first[mask].mean() > 40  # erased (codec noise aside) / the object's pixels
    with zipfile.ZipFile(transparent) as zf, zf.open("frames/00000.png") as f:
        alpha = np.asarray(Image.open(f))[..., 3]
    assert np.array_equal(alpha > 0, mask)


# ------------------------------------------------------------------------------------------------ data engine
def test_annotate_fine_tune_and_serve_the_variant(open_session, clip, tmp_path):
    """The data-engine loop: masks made in the Space and downloaded (the COCO RLE JSON, put next to the video) are
    data `sam2-hf finetune` reads; 2 training steps on them give a folder the Space serves (the masks kept)."""
    session = open_session("balanced")
    session.add_point(0, 1, *RED_DISC_AT_0)
    list(session.track(0, "forward"))
    rle_json = session.export()[1]
    data = tmp_path / "annotated"
    data.mkdir()
    shutil.copy(rle_json, data / rle_json.name)  # clip_masks.json ...
    shutil.copy(clip, data / "clip.mp4")  # ... next to its video: the "sam2-hf exports" layout

    run = dict(recipe="fast", max_steps=2, use_cpu=True, save_strategy="no", report_to="none", seed=0)
    result = finetune(session.model, str(data), str(tmp_path / "variant"), **run)
    assert result.trainer.state.global_step == 2

    tracked = all_masks(session)
    session.set_model(str(tmp_path / "variant"))
    assert session.message.startswith(f"Using {tmp_path / 'variant'}")
    assert np.array_equal(all_masks(session)[1:], tracked[1:])  # kept until tracked again
    list(session.track(0, "forward"))
    assert session.made_at is None and session.results.mask(0, 1).any()


def test_time_left_comes_from_frames_that_ran_the_model(open_session, monkeypatch):
    """The time left is the measured seconds per frame per object times the objects and the frames still to run
    the model (a clicked frame runs nothing: the first ETA came from one, 10x too short); before any such frame
    it is the last run's at this setting, said as such, or unknown."""
    monkeypatch.setattr(session_module, "PACES", {})
    session = open_session("balanced")
    session.add_point(0, 1, *RED_DISC_AT_0)
    session.add_object()
    session.add_point(0, 2, *OFF_GRID_AT_3)
    first_run = list(session.track(0, "forward"))  # frame 0 clicked, frames 1-11 run the model
    assert first_run[0].seconds_left is None and first_run[0].pace is None
    for k, u in enumerate(first_run[1:], start=1):
        assert u.measured and u.seconds_left == pytest.approx(u.pace * 2 * (11 - k))
    earlier = session_module.PACES[session.model, 128]  # (the second run then keeps its own)
    second_run = list(session.track(0, "forward"))
    assert not second_run[0].measured and second_run[0].seconds_left == pytest.approx(earlier * 2 * 11)
    status = tracking_message(second_run[0])[0]
    assert status.endswith("s per frame per object, measured in the last run at this setting).")


# ------------------------------------------------------------------------------------------------ any model
def hub_error(kind):
    """What `huggingface_hub.model_info` raises for a missing / gated repo or without a network."""
    response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co/api/models/me/x"))
    return {
        "missing": RepositoryNotFoundError("404", response=response),
        "gated": GatedRepoError("403", response=response),
        "offline": httpx2.ConnectError("[Errno -2] Name or service not known"),
    }[kind]


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "There is no model 'me/missing' on the Hugging Face Hub, or it is private"),
        ("gated", "'me/gated' is a gated model"),
        ("offline", "Could not download the model 'me/offline' from the Hugging Face Hub (no internet connection?)"),
        ("bert", "'me/bert' is not a SAM 2 model (its config says 'bert')"),
        ("bert folder", "bert folder' is not a SAM 2 model (its config says 'bert')"),
        ("malformed", "'not an id!' is neither a Hub model id (owner/name), a folder nor a .pt file."),
    ],
)
def test_a_model_that_cannot_serve_is_explained_at_once(open_session, monkeypatch, tmp_path, case, message):
    """Any Hub id, folder or .pt can be served; one that cannot says why with one quick Hub request at most (no
    download and its half minute of retries), and the current model, clicks and masks stay."""
    session = open_session("balanced")
    session.add_point(0, 1, *RED_DISC_AT_0)
    list(session.track(0, "forward"))
    before = (session.model, all_masks(session), dict(session.prompts))
    real_model_info = models_module.model_info

    def model_info(spec, timeout):
        assert timeout == models_module.HUB_TIMEOUT
        if case == "malformed":
            return real_model_info(spec, timeout=timeout)  # refused before any request
        if case == "bert":
            return SimpleNamespace(config={"model_type": "bert"})
        raise hub_error(case)

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(models_module, "model_info", model_info)
    monkeypatch.setattr(models_module.Sam2VideoModel, "from_pretrained", no_download)
    spec = {"malformed": "not an id!", "bert folder": str(tmp_path / "bert folder")}.get(case, f"me/{case}")
    if case == "bert folder":
        (tmp_path / "bert folder").mkdir()
        (tmp_path / "bert folder" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(UserError, match=re.escape(message)):
        session.set_model(spec)
    assert (session.model, dict(session.prompts)) == (before[0], before[2])
    assert np.array_equal(all_masks(session), before[1])


# ------------------------------------------------------------------------------------------------ timeline
def test_the_timeline_shows_each_objects_frames(open_session):
    """One lane per object in its colour: clicked frames (ticked), masks, empty frames (grey), untracked ones
    (background); masks made before a correction fade; the line marks the user's frame; a click on a column shows
    that frame."""
    session = open_session("balanced")
    session.add_point(0, 1, *RED_DISC_AT_0)
    session.add_object()
    session.add_point(6, 2, *OFF_GRID_AT_3)
    lanes, _ = session.timeline_states()
    assert (np.delete(lanes[1], [0, 6]) == UNTRACKED).all()  # only the clicked frames have results yet
    list(session.track(0, "forward"))
    lanes, stale = session.timeline_states()
    assert lanes[1][0] == CLICKED and lanes[2][6] == CLICKED and not stale.any()
    assert set(lanes[1][1:]) <= {MASK, EMPTY} and (lanes[1][1:] == MASK).sum() >= 6  # tracked: a state per frame
    for t in range(1, NUM_FRAMES):
        assert (lanes[1][t] == MASK) == session.results.mask(t, 1).any()

    session.add_point(4, 1, *NEGATIVE_AT_4, "negative")  # a correction: the other tracked frames are stale
    lanes, stale = session.timeline_states()
    assert lanes[1][4] == CLICKED and stale[5] and not stale[0] and not stale[4]
    session.show(3)
    image = session.timeline()
    assert image.shape == (2 * (LANE + GAP) + GAP, VIEW_SIDE, 3)
    lane_1 = image[GAP + LANE // 2]
    x0, x1 = timeline_columns(1, NUM_FRAMES)
    if lanes[1][1] == MASK:
        faded = np.round(np.add(color(1), STALE_FADE * (255 - np.asarray(color(1)))))
        assert (lane_1[x0:x1] == faded).all()  # frame 1: a stale mask
    x0, x1 = timeline_columns(3, NUM_FRAMES)
    assert (image[:, (x0 + x1) // 2] == MARKER).all()  # the user's frame
    x0, x1 = timeline_columns(4, NUM_FRAMES)
    assert (image[GAP - 1, x0 + 1] == MARKER).all()  # frame 4's tick: clicked
    for t in range(NUM_FRAMES):
        x0, x1 = timeline_columns(t, NUM_FRAMES)
        assert {timeline_frame(x, NUM_FRAMES) for x in range(x0, x1)} == {t}


# ------------------------------------------------------------------------------------------------ find objects
def test_find_objects_adds_them_up_to_the_cap(open_session, monkeypatch):
    """ "Find objects" adds what the automatic mask generator finds on the shown frame (the untrained model's
    masks pass the filters only with them lowered), as objects with a box and a click each: up to the object
    cap, the unclicked current object first; one undo takes them all back; none found is said."""
    lenient = dict(points_per_side=4, pred_iou_thresh=-1e9, stability_score_thresh=-1e9, box_nms_thresh=1.0)
    monkeypatch.setattr(engine, "FIND", lenient)
    session = open_session("balanced")
    session.config = replace(session.config, limits=replace(session.config.limits, max_objects=3))
    session.add_point(0, 1, *RED_DISC_AT_0)
    session.add_object()  # object 2, not clicked yet: the first one found goes there
    session.find_objects(5)
    assert session.message.startswith("Found 2 objects on frame 5")
    assert sorted(session.objects) == [1, 2, 3] and {k for k in session.prompts if k[0] == 5} == {(5, 2), (5, 3)}
    for obj_id in (2, 3):
        prompt = session.prompts[5, obj_id]
        assert prompt.box is not None and prompt.num_points == 1 and session.results.mask(5, obj_id).any()
    with pytest.raises(UserError, match="up to 3 objects: remove one first"):
        session.find_objects(5)
    session.undo()
    assert set(session.prompts) == {(0, 1)} and session.message.startswith("Undone: Found 2 objects on frame 5")

    monkeypatch.setattr(engine, "FIND", {**lenient, "pred_iou_thresh": 1e9})
    session.find_objects(5)
    assert session.message == "No objects found on frame 5: click on them instead."
