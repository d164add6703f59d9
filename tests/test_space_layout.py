"""The Space's wiring, without a server: every event's trigger, handler inputs and outputs (in order), API
name and parameter names, and queue settings, as `gradio_client` users and tests/test_space_api.py rely on
them; and the handlers called directly, with plain values."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # app.py and space/ live at the repo root
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

gr = pytest.importorskip("gradio")
from space import engine  # noqa: E402
from space.config import AppConfig  # noqa: E402
from space.handlers import Handlers  # noqa: E402
from space.layout import backend_words  # noqa: E402
from space.models import ModelStore  # noqa: E402
from space.session import START  # noqa: E402
from space.ui import build_demo, prepare_backend  # noqa: E402

CANVAS = [
    *["State", "Image:Frame", "Textbox:Status", "Slider:Frame", "Radio:2 · Objects", "Textbox:Object name"],
    "Image:Timeline",
]
DOWNLOADS = "File:Downloads: PNG masks (zip) · COCO RLE (json) · overlay (mp4) · transparent frames (zip)"
RESULTS = ["HTML:Progress", "Video:4 · Result", DOWNLOADS]
CLICK = ("click", 4)  # the concurrency group of everything that runs the model for a click
OWN = (None, "default")  # a group of its own, the queue's default limit
# api name: (triggers, inputs, outputs, (concurrency id, limit), queued)
EVENTS = {
    "load_video": (
        ["Video:1 · Video.change"],
        ["Video:1 · Video", "State"],
        [*CANVAS, "Markdown:Video info", "Video:4 · Result", RESULTS[2], "Radio:Speed", "Video:1 · Video"],
        ("upload", 2),
        True,
    ),
    "show_frame": (["Slider:Frame.input"], ["State", "Slider:Frame"], [*CANVAS[:3], CANVAS[-1]], (None, 8), True),
    "on_timeline_click": (["Image:Timeline.select"], ["State"], CANVAS, (None, 8), True),
    "on_click": (
        ["Image:Frame.select"],
        ["State", "Slider:Frame", "Radio:2 · Objects", "Radio:A click adds"],
        CANVAS,
        CLICK,
        True,
    ),
    "add_point": (
        ["Button:Add point.click"],
        ["State", "Slider:Frame", "Radio:2 · Objects", "Radio:A click adds", "Number:x", "Number:y"],
        CANVAS,
        CLICK,
        True,
    ),
    "add_box": (
        ["Button:Add box.click"],
        ["State", "Slider:Frame", "Radio:2 · Objects", "Number:x0", "Number:y0", "Number:x1", "Number:y1"],
        CANVAS,
        CLICK,
        True,
    ),
    "undo": (["Button:Undo.click"], ["State"], CANVAS, CLICK, True),
    "clear_frame": (["Button:Clear frame.click"], ["State", "Slider:Frame"], CANVAS, CLICK, True),
    "start_over": (["Button:Start over.click"], ["State"], CANVAS, CLICK, True),
    "add_object": (["Button:+ Add object.click"], ["State"], [*CANVAS, "Radio:A click adds"], OWN, True),
    "select_object": (
        ["Radio:2 · Objects.input"],
        ["State", "Radio:2 · Objects"],
        [*CANVAS, "Radio:Selected object"],
        OWN,
        True,
    ),
    "rename_object": (
        ["Button:Rename.click", "Textbox:Object name.submit"],
        ["State", "Radio:2 · Objects", "Textbox:Object name"],
        CANVAS,
        OWN,
        True,
    ),
    "remove_object": (["Button:Remove object.click"], ["State", "Radio:2 · Objects"], CANVAS, CLICK, True),
    "find_objects": (["Button:Find objects.click"], ["State", "Slider:Frame"], CANVAS, CLICK, True),
    "set_background": (["Radio:Background.input"], ["State", "Radio:Background"], CANVAS, OWN, True),
    "set_object_effect": (
        ["Radio:Selected object.input"],
        ["State", "Radio:2 · Objects", "Radio:Selected object"],
        CANVAS,
        OWN,
        True,
    ),
    "set_speed": (["Radio:Speed.input"], ["State", "Radio:Speed"], CANVAS, CLICK, True),
    "set_model": (
        ["Dropdown:Checkpoint.input"],
        ["State", "Dropdown:Checkpoint"],
        [*CANVAS, "Radio:Speed", "Dropdown:Checkpoint"],
        ("model", 1),
        True,
    ),
    "track": (
        ["Button:Track.click"],
        ["State", "Slider:Frame", "Radio:3 · Track from the shown frame"],
        [*CANVAS, *RESULTS, "Button:Track", "Button:Cancel"],
        ("track", 3),  # config.track_concurrency below
        True,
    ),
    "cancel": (["Button:Cancel.click"], ["State"], ["Textbox:Status"], OWN, False),
    "export": (["Button:Export masks.click"], ["State"], [*CANVAS, *RESULTS], ("export", 2), True),
    "unload": (["demo.unload"], [], [], OWN, True),
}
PARAMETERS = {  # the public endpoints' parameter names, as gradio_client shows them
    "load_video": ["video"],
    "show_frame": ["frame"],
    "add_point": ["frame", "obj_id", "label", "x", "y"],
    "add_box": ["frame", "obj_id", "x0", "y0", "x1", "y1"],
    "undo": [],
    "clear_frame": ["frame"],
    "start_over": [],
    "add_object": [],
    "select_object": ["obj_id"],
    "rename_object": ["obj_id", "new_name"],
    "remove_object": ["obj_id"],
    "find_objects": ["frame"],
    "set_background": ["effect"],
    "set_object_effect": ["obj_id", "effect"],
    "set_speed": ["preset"],
    "set_model": ["checkpoint"],
    "track": ["frame", "direction"],
    "cancel": [],
    "export": [],
}


def describe(block) -> str:
    """A component as the tables above name it: its class and its label (or button text, elem_id, placeholder)."""
    if block is None:
        return "demo"
    name = block.value if isinstance(block, gr.Button) else None
    name = name or getattr(block, "label", None) or getattr(block, "elem_id", None)
    name = name or getattr(block, "placeholder", None)
    return f"{type(block).__name__}:{name}" if name else type(block).__name__


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    # a model that is not there: nothing is loaded, and the page says why (the wiring is the same)
    model = str(tmp_path_factory.mktemp("models") / "none")
    return build_demo(AppConfig(model=model, examples=False, track_concurrency=3))


def test_every_event_keeps_its_endpoint_inputs_outputs_and_queue(demo):
    events = {}
    for fn in demo.fns.values():
        concurrency_id = None if fn.concurrency_id.isdigit() else fn.concurrency_id  # digits: a group of its own
        events[fn.api_name] = (
            [f"{describe(demo.blocks.get(target))}.{event}" for target, event in fn.targets],
            [describe(b) for b in fn.inputs],
            [describe(b) for b in fn.outputs],
            (concurrency_id, fn.concurrency_limit),
            fn.queue,
        )
    assert list(events) == list(EVENTS)  # the order too: events are numbered in it
    for name, expected in EVENTS.items():
        assert events[name] == expected, name


def test_endpoint_parameters_and_descriptions(demo):
    endpoints = demo.get_api_info()["named_endpoints"]
    assert {name: [p["parameter_name"] for p in e["parameters"]] for name, e in endpoints.items()} == {
        f"/{name}": params for name, params in PARAMETERS.items()
    }
    # the State stays on the server; gradio_client gets no value for a button
    returns = {
        name: [o for o in EVENTS[name][2] if o != "State" and not o.startswith("Button:")] for name in PARAMETERS
    }
    assert {name: len(e["returns"]) for name, e in endpoints.items()} == {f"/{n}": len(r) for n, r in returns.items()}
    descriptions = {name: e["description"] for name, e in endpoints.items() if e["description"]}
    assert set(descriptions) == {"/load_video", "/track"}  # the handlers' docstrings are not shown
    assert not any("Inputs:" in d for d in descriptions.values())


def test_loading_the_page_does_not_copy_the_sessions(demo):
    """Gradio deep-copies the config (the State's delete callback, a handler, with it) on every page load."""
    [state] = [b for b in demo.blocks.values() if isinstance(b, gr.State)]
    handlers = state.delete_callback.__self__
    assert isinstance(handlers, Handlers) and copy.deepcopy(state.delete_callback).__self__ is handlers
    config = copy.deepcopy(demo.get_config_file())
    [props] = [c["props"] for c in config["components"] if c["id"] == state._id]
    assert props["delete_callback"].__self__ is handlers


def test_handlers_take_plain_values(tmp_path):
    handlers = Handlers(AppConfig(model=str(tmp_path / "none"), examples=False), ModelStore(), tmp_path)
    assert handlers.cancel(None) == "Nothing is being tracked."
    session, image, status, *_ = handlers.canvas(None)
    assert (session, image, status) == (None, None, START)

    session, _, status, _, objects, name, _, mode = handlers.add_object(None, None)
    assert status == "Added #2 Object 2: click on it." and name == "Object 2" and mode == "positive"
    assert objects.choices == [("#1 Object 1", 1), ("#2 Object 2", 2)] and objects.value == 2
    with pytest.warns(UserWarning, match="Upload a video"):
        status = handlers.add_point(session, 0, 2, "positive", 10, 10, None)[2]
    assert status == "Upload a video (or pick an example) first."
    assert handlers.sessions == {session.sid: session}
    handlers.close_session(session)
    assert handlers.sessions == {} and not session.workdir.exists()


def test_every_session_is_named_by_its_tab(tmp_path):
    """A session first created by any event (here moving the frame slider before anything else) takes the tab's
    session hash as its id, so closing the tab (`unload`, which looks the session up by that hash) frees it."""
    handlers = Handlers(AppConfig(model=str(tmp_path / "none"), examples=False), ModelStore(), tmp_path)
    tab = SimpleNamespace(session_hash="tab-1")
    session = handlers.show_frame(None, 0, tab)[0]
    assert session.sid == "tab-1" and handlers.sessions == {"tab-1": session}
    handlers.close_session(session)
    assert handlers.sessions == {}


def test_the_page_says_which_backend_runs_the_model(tmp_path, monkeypatch):
    """The app runs on the backend its config names (auto by default: measured per part on a CPU, torch elsewhere)
    and says so on the page; its model store makes each variant's backend once and keeps it."""
    from space.config import RANDOM_MODEL

    monkeypatch.delenv("SAM2_HF_BACKEND")
    assert AppConfig().backend == "auto" and AppConfig().resolved_backend() == "auto"  # engines installed here
    assert AppConfig(device="cuda", backend="auto").resolved_backend() == "torch"
    assert "measured on this CPU" in backend_words("auto")
    monkeypatch.setenv("SAM2_HF_BACKEND", "onnxruntime")
    demo = build_demo(AppConfig(model=RANDOM_MODEL, examples=False))
    help_text = next(b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) == "help")
    assert "on CPU (onnxruntime)" in help_text
    monkeypatch.setenv("SAM2_HF_EXPORT_CACHE", str(tmp_path / "exports"))
    store = ModelStore(backend="openvino")
    first, again = store.predictor(RANDOM_MODEL, 256), store.predictor(RANDOM_MODEL, 256, stride=2)
    assert first.backend is again.backend and first.backend.engine == "openvino"
    exports = [p for p in (tmp_path / "exports").iterdir() if p.name != "openvino"]  # OpenVINO's model cache apart
    assert first.backend.config.image_size == 256 and len(exports) == 1
    config = AppConfig(model=RANDOM_MODEL, speed="fastest", examples=False)  # 384 px
    build_demo(config)  # on onnxruntime ($SAM2_HF_BACKEND)
    prepare_backend(config).join()  # launch() starts it: the default speed's variant exported before any visitor
    assert engine.ENGINE.models._variants(RANDOM_MODEL)["backend", 384].engine == "onnxruntime"
    config = AppConfig(model=RANDOM_MODEL, speed="fastest", examples=False, backend="torch")
    build_demo(config)
    assert prepare_backend(config) is None  # the model itself: nothing to prepare
