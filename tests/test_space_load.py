"""The Space under load: no response cut, clicks before tracking, tracking runs in turns, admission with a reason.

- Every image a response carries is a file of its own that is never written again (Gradio 6 rewrote a file named
  by its content hash in place while serving it, so two visitors on the same example frame got cut responses).
- The model's computations take turns (`engine.ComputeTurns`): a waiting click before any tracking frame, and
  tracking runs alternate frame by frame.
- Past `max_sessions`, an upload is refused with how many are here and when to come back; nothing is lost.
- Eight visitors at once through gradio_client (`space.loadtest`, the benchmark's own code, against `app.py` in a
  subprocess): all served whole, no error, every export holding only its own object, no session folder left.
  Timings are the benchmark's to report (`python -m space.loadtest --users 50`), not asserted here.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

gr = pytest.importorskip("gradio")
from gradio.utils import get_upload_folder  # noqa: E402
from space import engine, loadtest  # noqa: E402
from space.config import AppConfig, parse_args  # noqa: E402
from space.engine import ComputeTurns, Engine  # noqa: E402
from space.handlers import Handlers  # noqa: E402
from space.models import ModelStore  # noqa: E402

from test_space_api import RED_DISC_AT_0, save_clip, save_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("sam2-tiny-256"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return save_clip(tmp_path_factory.mktemp("videos"))


@pytest.fixture
def handlers(model_dir, monkeypatch):
    """Handlers whose sessions live inside Gradio's cache folder, as `ui.build_demo` places them."""
    models = ModelStore()
    monkeypatch.setattr(engine, "ENGINE", Engine(models))
    cache = Path(get_upload_folder())
    cache.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="sam2-space-sessions-test-", dir=cache))
    handlers = Handlers(AppConfig(model=str(model_dir), examples=False), models, root)
    yield handlers
    for session in list(handlers.sessions.values()):
        handlers.close_session(session)


def served_paths(canvas) -> tuple[str, str]:
    """(frame image, timeline image) file paths of a CANVAS output, as Gradio will serve them."""
    return canvas[1].value["path"], canvas[6]  # the timeline goes out as its path


def test_identical_frames_are_served_from_files_never_written_again(handlers, clip):
    """Two visitors on the same frame of the same video: each response's images are new files (in the session's
    folder, which Gradio serves in place), and a file once handed out is never rewritten. Before, both got the same
    content-hashed cache file, rewritten by every such response while it was being sent."""
    first = handlers.load_video(str(clip), None, request=None)
    second = handlers.load_video(str(clip), None, request=None)
    a, b = first[0], second[0]
    handed_out = served_paths(handlers.canvas(a))
    stamps = {p: (os.stat(p).st_mtime_ns, Path(p).read_bytes()) for p in handed_out}
    seen = set(handed_out)
    for _ in range(3):
        for session in (b, a):
            paths = served_paths(handlers.canvas(session))
            assert not seen & set(paths), "a file name was handed out twice"
            assert all(Path(p).is_relative_to(session.workdir) for p in paths)
            seen |= set(paths)
    assert Path(handed_out[0]).read_bytes() == Path(served_paths(handlers.canvas(b))[0]).read_bytes()  # same frame
    for p, (mtime, data) in stamps.items():
        assert os.stat(p).st_mtime_ns == mtime and Path(p).read_bytes() == data, f"{p} was written again"


def test_old_served_files_are_deleted_and_the_session_folder_with_them(handlers, clip):
    session = handlers.load_video(str(clip), None, request=None)[0]
    frames = [served_paths(handlers.canvas(session))[0] for _ in range(session.served.keep)]  # and as many timelines
    assert not Path(frames[0]).exists() and Path(frames[-1]).exists()
    assert len(list(session.served.folder.iterdir())) == session.served.keep  # the newest frames and timelines
    handlers.close_session(session)
    assert not session.workdir.exists()


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_click_goes_before_tracking_frames_and_tracking_runs_take_turns():
    """While one computation runs, two tracking runs (3 frames each) and then a click ask for turns: the click goes
    first, then the runs alternate frame by frame (each asks again after its frame, behind the other)."""
    turns, order, holding, hold = ComputeTurns(), [], threading.Event(), threading.Event()

    def holder():
        with turns.turn(interactive=False):
            holding.set()
            hold.wait()

    def run(name: str):
        for frame in range(3):
            with turns.turn(interactive=False):
                order.append(f"{name}{frame}")

    def click():
        with turns.turn(interactive=True):
            order.append("click")

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    assert holding.wait(10)
    for i, (target, args) in enumerate([(run, ("A",)), (run, ("B",))]):
        threads.append(threading.Thread(target=target, args=args))
        threads[-1].start()
        wait_until(lambda i=i: turns.waiting(False) == i + 1)
    threads.append(threading.Thread(target=click))
    threads[-1].start()
    wait_until(lambda: turns.waiting(True) == 1)
    hold.set()
    for t in threads:
        t.join(10)
    assert order == ["click", "A0", "B0", "A1", "B1", "A2", "B2"]


def test_two_events_of_one_tab_at_once_run_one_after_the_other(handlers, clip):
    """Gradio runs a tab's events side by side (the click group admits 4 at once): an action that takes a while (a
    speed switch re-segmenting) and a click sent meanwhile must not interleave, or the first one's outputs carry the
    click's status and the page's last word is wrong (CI once showed a click's status lost after a speed switch)."""
    session = handlers.load_video(str(clip), None, request=None)[0]
    second_ran, outputs = threading.Event(), {}

    def first(s):
        s.message = "first"
        second_ran.wait(timeout=1)  # side by side, the second action runs now

    def second(s):
        s.message = "second"
        second_ran.set()

    thread = threading.Thread(target=lambda: outputs.setdefault("first", handlers.run(session, None, first)))
    thread.start()
    wait_until(lambda: session.message == "first")
    outputs["second"] = handlers.run(session, None, second)
    thread.join()
    assert (outputs["first"][2], outputs["second"][2]) == ("first", "second")  # CANVAS[2]: the status line
    assert session.message == "second"  # the last action's word stays


def test_a_tabs_first_events_sent_together_share_its_session(handlers):
    """Two events of a new tab (a speed switch, an upload) both come without the session, which the first one's
    answer brings: they open one session, not two (the other's folder would never be freed)."""
    tab = SimpleNamespace(session_hash="a-new-tab")
    first = handlers.set_speed(None, "fastest", tab)[0]
    second = handlers.add_object(None, tab)[0]
    assert first is second and list(handlers.sessions) == ["a-new-tab"]
    assert handlers.set_speed(None, "best", SimpleNamespace(session_hash="another-tab"))[0] is not first


def test_past_max_sessions_an_upload_is_told_how_many_are_here_and_when_to_return(handlers, clip):
    handlers.config = AppConfig(model=handlers.config.model, examples=False, max_sessions=1)
    first = handlers.load_video(str(clip), None, request=None)[0]
    first.add_point(0, 1, *RED_DISC_AT_0)
    out = handlers.load_video(str(clip), None, request=None)
    refused = out[0]
    assert refused.video is None
    assert out[2] == (
        "The Space is full: 1 person is working on a video here, the most it holds at once. "
        "A place frees when one of them leaves; please try again in a few minutes."
    )
    assert first.prompts and first.video is not None  # nothing of the one served is touched
    handlers.admit(first)  # a session already in may load another video
    handlers.close_session(first)  # a place frees: the refused visitor gets in
    assert handlers.load_video(str(clip), refused, request=None)[0].video is not None
    out = handlers.load_video(str(clip), None, request=None)  # with a measured session length, an estimate
    assert "please try again in about 1 minute." in out[2]


def test_queue_settings_come_from_the_command_line(capsys):
    config, _ = parse_args(["--random-weights", "--track-concurrency", "2", "--queue-size", "9", "--max-sessions", "3"])
    assert (config.track_concurrency, config.queue_size, config.max_sessions) == (2, 9, 3)
    with pytest.raises(SystemExit):
        parse_args(["--max-sessions", "0"])
    assert "--max-sessions must be at least 1, not 0" in capsys.readouterr().err


def test_eight_visitors_at_once_are_all_served_whole_and_kept_apart(tmp_path):
    """`space.loadtest` with 8 visitors, the click-only one and 2 who close their tab mid-track, against app.py:
    nobody refused, cut or failed; each export holds only its visitor's object; every session folder is gone once
    they leave (the leavers' too); no exception in the server's log."""
    result = loadtest.run(8, leavers=2, settle_seconds=60, work=tmp_path)
    assert result["left_mid_track"] == 2
    assert result["warm_up"]["outcome"] == "served", result["warm_up"]
    assert (result["refused"], result["cut"], result["errors"]) == ([], [], [])
    assert result["served"] == 8 and result["isolated"] == 8
    assert result["clicker_errors"] == [] and result["server_exceptions"] == []
    assert result["after"]["session_folders"] == 0
