"""The Space (app.py / space/) end to end through `gradio_client`, against the app launched in-process
with a small random-weight checkpoint: upload, clicks for two objects on different frames, tracking
both ways, every download checked; bad input gives a readable message, never a stack trace."""

from __future__ import annotations

import itertools
import json
import os
import pickle
import re
import socket
import sys
import time
import urllib.request
import zipfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # app.py and space/ live at the repo root
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network calls from the test servers

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from space import engine  # noqa: E402
from space.config import RANDOM_MODEL, UNTRAINED, AppConfig, parse_args  # noqa: E402
from space.deploy import assemble  # noqa: E402
from space.engine import Engine  # noqa: E402
from space.models import RANDOM_OBJECT_SCORE_BIAS, ModelStore  # noqa: E402
from space.session import Session, plan  # noqa: E402
from space.ui import build_demo, launch  # noqa: E402
from space.video import write_mp4  # noqa: E402

from sam2_hf import Sam2VideoConfig, Sam2VideoModel  # noqa: E402
from sam2_hf.media.rle import decode_rle  # noqa: E402
from sam2_hf.media.synthetic import synthetic_clip  # noqa: E402

NUM_FRAMES, HEIGHT, WIDTH = 12, 96, 128
RED_DISC_AT_0 = (26, 25)  # on the red disc on frame 0, where the seeded random weights give a non-empty mask
BLUE_SQUARE_AT_6 = (68, 67)  # and the blue square's on frame 6
OFF_GRID_AT_3 = (36, 46)  # on frame 3 (off the grid of every 2nd and every 4th frame): a partial mask (50 % at 128 px)
NEGATIVE_AT_4 = (66, 66)  # inside the mask tracked (Balanced) from RED_DISC_AT_0 to frame 4; a negative click
# there shrinks it from 49 % to 35 % of the frame
# Output positions (gradio_client leaves out the session State): the canvas every action returns ...
IMAGE, STATUS, SLIDER, OBJECTS, NAME = range(5)
TIMELINE = 5
VIDEO_INFO, OVERLAY, FILES = 6, 7, 8  # ... then /load_video's video info; /track's and /export's results


def value(output):
    """An output's value (component updates come back as {"value": ..., "__type__": "update"})."""
    return output["value"] if isinstance(output, dict) and "__type__" in output else output


def save_tiny_model(path: Path) -> Path:
    """A random-weight SAM 2.1 tiny saved with save_pretrained, native input size 256 (Balanced runs at 128)."""
    torch.manual_seed(0)
    model = Sam2VideoModel(Sam2VideoConfig.from_size("tiny", image_size=256))
    with torch.no_grad():  # objects judged present (the Space's own random model does the same)
        model.mask_decoder.pred_obj_score_head.proj_out.bias += RANDOM_OBJECT_SCORE_BIAS
    model.save_pretrained(path)
    return path


def save_clip(folder: Path) -> Path:
    return write_mp4(synthetic_clip(NUM_FRAMES, HEIGHT, WIDTH), folder / "clip.mp4")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("sam2-tiny-256"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return save_clip(tmp_path_factory.mktemp("videos"))


def encode_video(path: Path, frames, codec: str = "libx264") -> Path:
    """(T, HEIGHT, WIDTH, 3) frames, possibly none (an empty video), at 12 fps; the container follows the suffix."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=12)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        container.start_encoding()
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(config: AppConfig):
    """The app launched in this process on a free localhost port; yields its URL."""
    demo = build_demo(config)
    launch(demo, config, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def url(model_dir):
    with running_app(AppConfig(model=str(model_dir), speed="balanced", examples=False)) as url:
        yield url


@pytest.fixture
def client(url):
    return Client(url, verbose=False)


def test_every_action_is_a_named_endpoint(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {
        f"/{name}"
        for name in (
            "load_video", "show_frame", "add_point", "add_box", "undo", "clear_frame", "start_over", "add_object",
            "select_object", "rename_object", "remove_object", "find_objects", "set_background", "set_object_effect",
            "set_speed", "set_model", "track", "cancel", "export",
        )
    }  # fmt: skip
    params = [p["parameter_name"] for p in endpoints["/add_point"]["parameters"]]
    assert params == ["frame", "obj_id", "label", "x", "y"]


def test_every_endpoint_runs_as_view_api_documents_it(client, clip):
    """view_api's types and example values are what the server accepts: every endpoint called by keyword with
    its documented example inputs answers (a warning in the status line at worst), never a validation error;
    no output is an unnamed `value_N`; frames and object ids are documented as the integers the server takes."""
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name, endpoint in endpoints.items():
        labels = [r["label"] for r in endpoint["returns"]]
        assert not any(re.fullmatch(r"value_\d+", label) for label in labels), (name, labels)
        for p in endpoint["parameters"]:
            if p["parameter_name"] in ("frame", "obj_id"):
                assert p["python_type"]["type"] == "int", (name, p)
    client.predict(handle_file(clip), api_name="/load_video")
    remote = {"/load_video", "/set_model"}  # their examples are a remote file and a Hub download: no network here
    last = ["/remove_object"]  # removes object 1, which the other examples name
    for name, endpoint in sorted(endpoints.items(), key=lambda item: item[0] in last):
        if name not in remote:
            client.predict(**{p["parameter_name"]: p["example_input"] for p in endpoint["parameters"]}, api_name=name)


def test_upload_click_track_both_ways_and_download(client, clip):
    out = client.predict(handle_file(clip), api_name="/load_video")
    assert "12 frames" in out[STATUS] and value(out[SLIDER]) == 0 and out[SLIDER]["maximum"] == NUM_FRAMES - 1
    assert Image.open(value(out[IMAGE])).size == (720, 540)  # small videos are shown enlarged

    out = client.predict(0, 1, "positive", *RED_DISC_AT_0, api_name="/add_point")
    assert out[STATUS].startswith("#1 Object 1: 1 click on frame 0, mask"), out[STATUS]
    out = client.predict(api_name="/add_object")
    assert value(out[OBJECTS]) == 2 and [c[1] for c in out[OBJECTS]["choices"]] == [1, 2]
    client.predict(6, 2, "positive", *BLUE_SQUARE_AT_6, api_name="/add_point")
    out = client.predict(6, 2, "negative", 5, 5, api_name="/add_point")
    assert "#2 Object 2: 2 clicks on frame 6" in out[STATUS]
    out = client.predict(6, 2, 58, 57, 78, 77, api_name="/add_box")
    assert "2 clicks + box on frame 6" in out[STATUS]
    out = client.predict(api_name="/undo")
    assert out[STATUS].startswith("Undone")
    out = client.predict(2, "blue square", api_name="/rename_object")
    assert ["#2 blue square", 2] in out[OBJECTS]["choices"] and value(out[NAME]) == "blue square"

    job = client.submit(6, "both", api_name="/track")
    outputs = list(job)
    assert len(outputs) >= NUM_FRAMES  # a live preview per tracked frame, then the results
    assert any(o[STATUS].startswith("Tracking: frame 6, 1 of 12 done") for o in outputs)
    final = job.outputs()[-1]
    assert final[STATUS].startswith("Tracked 12 of 12 frames in") and final[STATUS].endswith("Downloads ready.")
    check_downloads(final[FILES], objects=[1, 2], names={1: "Object 1", 2: "blue square"})
    assert Path(value(final[OVERLAY])).name == "clip_overlay.mp4"

    out = client.predict(api_name="/export")
    check_downloads(out[FILES], objects=[1, 2], names={1: "Object 1", 2: "blue square"})
    out = client.predict(3, api_name="/show_frame")
    assert len(out) == 3 and Image.open(value(out[IMAGE])).size == (720, 540)
    out = client.predict(9, 1, "negative", 120, 90, api_name="/add_point")  # refining on a later frame
    assert out[STATUS].endswith("Masks on other frames predate this change: track again to update them.")


def test_cancel_keeps_the_frames_done(client, tmp_path):
    long = write_mp4(synthetic_clip(40, HEIGHT, WIDTH), tmp_path / "clip.mp4")
    client.predict(handle_file(long), api_name="/load_video")
    client.predict("best", api_name="/set_speed")
    client.predict(0, 1, "positive", *RED_DISC_AT_0, api_name="/add_point")
    job = client.submit(0, "forward", api_name="/track")
    while not job.outputs() and not job.done():
        time.sleep(0.05)
    assert client.predict(api_name="/cancel") == "Cancelling: the frames done so far are kept."
    final = job.result()
    done = int(re.match(r"Cancelled: tracked (\d+) of 40 frames", final[STATUS]).group(1))
    assert 1 <= done < 40 and final[STATUS].endswith("Track again to continue. Downloads ready.")
    check_downloads(final[FILES], objects=[1], names={1: "Object 1"}, num_frames=40)


def check_downloads(files, objects, names, num_frames=NUM_FRAMES):
    """The zip of PNGs, the RLE JSON and the overlay MP4 cover every frame and object, and agree."""
    archive, rle_json, mp4, transparent = (Path(value(f)) for f in value(files))
    file_names = (archive.name, rle_json.name, mp4.name, transparent.name)
    assert file_names == ("clip_masks.zip", "clip_masks.json", "clip_overlay.mp4", "clip_transparent.zip")
    data = json.loads(rle_json.read_text())
    assert data["video"] == {
        "path": "clip.mp4",
        "height": HEIGHT,
        "width": WIDTH,
        "fps": 12.0,
        "num_frames": num_frames,
    }
    assert data["objects"] == objects and len(data["annotations"]) == num_frames * len(objects)
    rles = {(a["frame_index"], a["object_id"]): decode_rle(a["segmentation"]) for a in data["annotations"]}
    assert set(rles) == {(t, i) for t in range(num_frames) for i in objects}
    with zipfile.ZipFile(archive) as zf:
        pngs = sorted(n for n in zf.namelist() if n.endswith(".png"))
        assert pngs == [f"masks/{i}/{t:05d}.png" for i in objects for t in range(num_frames)]
        meta = json.loads(zf.read("masks/objects.json"))
        assert {int(k): v["name"] for k, v in meta.items()} == names
        for t, i in [(0, objects[0]), (num_frames - 1, objects[-1])]:
            with zf.open(f"masks/{i}/{t:05d}.png") as f:
                png = np.asarray(Image.open(f))
            assert png.shape == (HEIGHT, WIDTH) and set(np.unique(png)) <= {0, 255}
            assert np.array_equal(png > 0, rles[t, i])
    with av.open(str(mp4)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == num_frames and frames[0].shape == (HEIGHT, WIDTH, 3)
    with zipfile.ZipFile(transparent) as zf:  # RGBA frames: opaque exactly on the objects
        assert sorted(zf.namelist()) == [f"frames/{t:05d}.png" for t in range(num_frames)]
        for t in (0, num_frames - 1):
            with zf.open(f"frames/{t:05d}.png") as f:
                rgba = np.asarray(Image.open(f))
            assert rgba.shape == (HEIGHT, WIDTH, 4)
            assert np.array_equal(rgba[..., 3] > 0, np.logical_or.reduce([rles[t, i] for i in objects]))
    return rles


@pytest.mark.parametrize("suffix, codec", [(".mov", "libx264"), (".webm", "libvpx-vp9")])
def test_mov_and_webm_uploads(client, tmp_path, suffix, codec):
    video = encode_video(tmp_path / f"clip{suffix}", synthetic_clip(4, HEIGHT, WIDTH), codec)
    out = client.predict(handle_file(video), api_name="/load_video")
    assert out[STATUS].startswith(f"Loaded clip{suffix} · 4 frames · 12 fps"), out[STATUS]


def test_every_2nd_frame_holds_masks_in_between(client, clip):
    client.predict(handle_file(clip), api_name="/load_video")
    out = client.predict("fast", api_name="/set_speed")
    assert "Fast · 128 px · every 2nd frame" in out[STATUS]
    client.predict(0, 1, "positive", *RED_DISC_AT_0, api_name="/add_point")
    job = client.submit(0, "forward", api_name="/track")
    final = job.result()
    assert final[STATUS].startswith("Tracked 6 of 6 frames in")
    assert final[STATUS].endswith("s/frame; every 2nd frame, masks held in between). Downloads ready.")
    rles = check_downloads(final[FILES], objects=[1], names={1: "Object 1"})
    for t in range(0, NUM_FRAMES, 2):
        assert np.array_equal(rles[t + 1, 1], rles[t, 1])  # frame t+1 holds frame t's mask


def test_tracking_plans():
    assert plan(5, 12, 1, "both", {5}) == [(False, [5, 6, 7, 8, 9, 10, 11]), (True, [4, 3, 2, 1, 0])]
    assert plan(5, 12, 4, "forward", {5}) == [(False, [5, 8])]
    assert plan(5, 12, 4, "backward", {5}) == [(True, [5, 4, 0])]
    assert plan(0, 12, 2, "both", {0}) == [(False, [0, 2, 4, 6, 8, 10])]
    # clicked frames off the grid are tracked by the pass whose direction reaches them
    assert plan(5, 12, 4, "both", {1, 6, 11}) == [(False, [5, 6, 8, 11]), (True, [4, 1, 0])]
    assert plan(5, 12, 4, "forward", {1, 6}) == [(False, [5, 6, 8])]
    assert plan(5, 12, 4, "backward", {1, 6}) == [(True, [5, 4, 1, 0])]


def test_clear_remove_and_start_over(client, clip):
    client.predict(handle_file(clip), api_name="/load_video")
    client.predict(0, 1, "positive", *RED_DISC_AT_0, api_name="/add_point")
    out = client.predict(0, api_name="/clear_frame")
    assert out[STATUS].startswith("Cleared frame 0")
    out = client.predict(api_name="/undo")
    assert out[STATUS].startswith("Undone")
    client.predict(api_name="/add_object")
    out = client.predict(1, api_name="/remove_object")
    assert out[STATUS] == "Removed #1 Object 1." and [c[1] for c in out[OBJECTS]["choices"]] == [2]
    out = client.predict(api_name="/start_over")
    assert out[STATUS].startswith("Started over") and [c[1] for c in out[OBJECTS]["choices"]] == [1]
    assert client.predict(api_name="/cancel") == "Nothing is being tracked."


def test_bad_input_gives_readable_messages(client, tmp_path):
    def status(*args, api_name):
        return client.predict(*args, api_name=api_name)[STATUS]

    assert "Upload a video" in status(0, 1, "positive", 10, 10, api_name="/add_point")  # nothing uploaded yet
    assert "Upload a video" in status(0, "both", api_name="/track")

    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    assert status(handle_file(text), api_name="/load_video") == (
        "notes.mp4 is not a video this app can read; upload an mp4, mov, webm, mkv or avi file."
    )
    empty = encode_video(tmp_path / "empty.mp4", [])
    assert (
        status(handle_file(empty), api_name="/load_video")
        == "empty.mp4 contains no video frames: please upload another video."
    )

    huge = write_mp4(synthetic_clip(2, 1088, 1920), tmp_path / "huge.mp4")
    out = client.predict(handle_file(huge), api_name="/load_video")
    assert "Downscaled from 1920×1088 to 1280×725 (the limit is 1280 px)." in out[VIDEO_INFO]
    assert "1280×725" in out[STATUS]
    long = write_mp4(synthetic_clip(24, 64, 64), tmp_path / "long.mp4", fps=2)
    out = client.predict(handle_file(long), api_name="/load_video")
    assert "Trimmed to the first 10.0 s (20 of 24 frames)" in out[VIDEO_INFO]

    assert "Click on an object first" in status(0, "both", api_name="/track")
    assert "is outside the 64×64 frame" in status(0, 1, "positive", 500, 5, api_name="/add_point")
    with pytest.raises(AppError, match="Value 99 is greater than maximum value 19"):  # Gradio checks these
        client.predict(99, 1, "positive", 5, 5, api_name="/add_point")
    with pytest.raises(AppError, match="Value: 7 .* is not in the list of choices: \\[1\\]"):
        client.predict(0, 7, "positive", 5, 5, api_name="/add_point")
    assert "Nothing to undo" in status(api_name="/undo")


def test_unavailable_model_is_explained(client, clip, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    client.predict(handle_file(clip), api_name="/load_video")
    out = client.predict("facebook/sam2-hiera-large", api_name="/set_model")
    assert out[STATUS].startswith("Could not download the model 'facebook/sam2-hiera-large'")
    assert "--model /path/to/folder" in out[STATUS] and "SAM2_HF_MODEL" in out[STATUS]
    assert value(out[7]) != "facebook/sam2-hiera-large"  # the dropdown goes back to the model in use


def test_model_flag_and_environment_variable(monkeypatch):
    monkeypatch.setenv("SAM2_HF_MODEL", "/models/sam2")
    config, _ = parse_args(["--device", "cpu"])
    assert (config.model, config.speed) == ("/models/sam2", "fast")
    config, _ = parse_args(["--model", "facebook/sam2.1-hiera-large", "--device", "cuda"])
    assert (config.model, config.speed) == ("facebook/sam2.1-hiera-large", "best")


def test_random_weights_flag(monkeypatch, capsys):
    monkeypatch.setenv("SAM2_HF_MODEL", "/models/sam2")  # the flag wins over the environment
    config, _ = parse_args(["--random-weights", "--device", "cpu"])
    assert config.model == RANDOM_MODEL
    with pytest.raises(SystemExit):
        parse_args(["--random-weights", "--model", "facebook/sam2.1-hiera-tiny"])
    assert "argument --model: not allowed with argument --random-weights" in capsys.readouterr().err


def component(url: str, elem_id: str) -> dict:
    """The props the served page renders the component `elem_id` with (from the app's /config)."""
    with urllib.request.urlopen(f"{url}config") as response:
        components = json.load(response)["components"]
    [props] = [c["props"] for c in components if c["props"].get("elem_id") == elem_id]
    return props


def test_random_weights_app_says_its_masks_are_meaningless(url, clip, monkeypatch):
    monkeypatch.setattr(engine, "ENGINE", engine.ENGINE)  # the second app replaces it: given back to `url`'s after
    config, _ = parse_args(["--random-weights", "--device", "cpu"])
    with running_app(replace(config, examples=False)) as untrained_url:
        with urllib.request.urlopen(untrained_url) as response:
            assert "Untrained model: the masks are meaningless." in response.read().decode()
        notice = component(untrained_url, "untrained")
        assert notice["visible"] and "started with `--random-weights`" in notice["value"]
        assert UNTRAINED in component(untrained_url, "help")["value"]
        assert component(untrained_url, "status")["value"].endswith(UNTRAINED)

        client = Client(untrained_url, verbose=False)
        out = client.predict(handle_file(clip), api_name="/load_video")
        assert out[STATUS].startswith("Loaded clip.mp4 · 12 frames") and out[STATUS].endswith(UNTRAINED)
        out = client.predict(0, 1, "positive", *RED_DISC_AT_0, api_name="/add_point")
        area = float(re.match(r"#1 Object 1: 1 click on frame 0, mask ([\d.]+)% of the frame", out[STATUS]).group(1))
        assert area > 0, out[STATUS]
    assert not component(url, "untrained")["visible"]  # an app with trained weights: no notice
    assert UNTRAINED not in component(url, "help")["value"]


def test_deploy_dry_run_assembles_the_space(tmp_path):
    folder = assemble(tmp_path / "space")
    readme = (folder / "README.md").read_text()
    front = readme.split("---")[1]
    for key in ("sdk: gradio", "sdk_version:", "python_version:", "app_file: app.py", "models:"):
        assert key in front
    for path in ("app.py", "space/ui.py", "sam2_hf/__init__.py", "requirements.txt", "packages.txt"):
        assert (folder / path).is_file(), path
    assert not list(folder.rglob("__pycache__")) and not (folder / "space" / "deploy.py").exists()
    assert (folder / "space" / "served.py").is_file() and not (folder / "space" / "loadtest.py").exists()


def test_users_do_not_see_each_other(url, clip, tmp_path):
    alice, bob = Client(url, verbose=False), Client(url, verbose=False)
    alice.predict(handle_file(clip), api_name="/load_video")
    alice.predict(0, 1, "positive", *RED_DISC_AT_0, api_name="/add_point")
    assert "Upload a video" in bob.predict(0, 1, "positive", 5, 5, api_name="/add_point")[STATUS]
    other = write_mp4(synthetic_clip(4, 64, 64), tmp_path / "other.mp4")
    assert "4 frames" in bob.predict(handle_file(other), api_name="/load_video")[STATUS]
    out = alice.predict(api_name="/undo")  # Alice's click is still hers to undo, on her 12-frame video
    assert out[STATUS].startswith("Undone") and out[SLIDER]["maximum"] == NUM_FRAMES - 1


def test_closing_a_session_frees_its_files_and_model_state(url, clip, model_dir, tmp_path):
    session = Session("closing", AppConfig(model=str(model_dir)), engine.ENGINE.models, tmp_path)
    session.load_video(clip, lambda i, n: None)
    session.add_point(0, 1, *RED_DISC_AT_0)
    paths = session.export()
    assert all(p.is_file() for p in paths) and "closing" in engine.ENGINE._live
    session.close()
    assert not any(tmp_path.iterdir()) and "closing" not in engine.ENGINE._live


def test_faster_variants_share_the_weights(model_dir):
    models = ModelStore()
    native, half = (models.predictor(str(model_dir), size).model for size in (256, 128))
    assert (native.config.image_size, half.config.image_size) == (256, 128)
    weight = "vision_encoder.backbone.patch_embed.projection.weight"
    assert native.state_dict()[weight].data_ptr() == half.state_dict()[weight].data_ptr()


def test_gpu_calls_survive_zerogpu_workers(model_dir, clip, tmp_path, monkeypatch):
    """On ZeroGPU `engine.segment` / `engine.track` run in forked workers: arguments and results are
    pickled across, and a worker may not have seen the session before. Simulated by two engines
    taking turns: each call must rebuild what it lacks from the prompts."""
    models = ModelStore()
    workers = itertools.cycle([Engine(models), Engine(models)])
    across = lambda value: pickle.loads(pickle.dumps(value))

    def segment(*args):
        return across(next(workers).segment(*across(args)))

    def track(*args):
        yield from map(across, next(workers).track(*across(args)))

    monkeypatch.setattr(engine, "segment", segment)
    monkeypatch.setattr(engine, "track", track)
    monkeypatch.setattr(engine, "ENGINE", Engine(models))
    session = Session("zerogpu", AppConfig(model=str(model_dir), speed="balanced"), models, tmp_path)
    session.load_video(clip, lambda i, n: None)
    session.add_point(0, 1, *RED_DISC_AT_0)
    session.add_object()
    session.add_point(6, 2, *BLUE_SQUARE_AT_6)
    session.add_point(6, 2, 5, 5, "negative")
    session.undo()
    assert len(list(session.track(6, "both"))) == NUM_FRAMES
    assert session.results.frames() == list(range(NUM_FRAMES)) and session.results.obj_ids == [1, 2]
    session.close()


def test_missing_model_is_explained_on_the_page(tmp_path):
    demo = build_demo(AppConfig(model=str(tmp_path / "no-such-model"), examples=False))
    [banner] = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model-problem"]
    assert banner.visible and "There is no model folder or checkpoint at" in banner.value
