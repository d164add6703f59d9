"""One person's session: the video, the objects, their prompts and results, and every action on them.

Plain Python (no Gradio): `handlers` is a thin layer over it, and the actions can be called directly.
Actions raise `UserError` for what the user can fix. Prompts are the source of truth; the model's
state follows them through `engine`, and results are kept per object per frame as COCO RLE
(`Masklets`), so the frame view, the live preview and the exports read the same data.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sam2_hf import Masklets, Prompt
from sam2_hf.media.frames import ImageFolderFrames, VideoDecodeError
from sam2_hf.media.render import BACKGROUND_EFFECTS, OBJECT_EFFECTS, Effects
from sam2_hf.processing.prompts import NEGATIVE, POSITIVE

from . import UserError, engine
from .config import SPEEDS, AppConfig, Speed, every, noted
from .engine import Key, Masks, Setup
from .export import write_exports
from .models import ModelStore
from .render import CLICKED, EMPTY, MASK, UNTRACKED, draw_frame, draw_timeline, view_scale
from .served import ServedImages
from .video import VideoInfo, read_video

DIRECTIONS = ("forward", "backward", "both")
MAX_NAME = 40
START = "Upload a video or pick an example to start."
Progress = Callable[[int, int], None]


PACES: dict[tuple[str, int], float] = {}  # (model, image size) -> seconds per frame per object, the app's last run


@dataclass
class PaceMeter:
    """A tracking run's time left, from measured time: seconds per frame per object over the frames that ran the
    model (a clicked frame's mask is kept, nothing runs there), this run's once it has one, else the last run's at
    the same model and size (`PACES`), else unknown."""

    key: tuple[str, int]  # (model, image size)
    objects: int
    to_compute: int  # frames of the run that run the model
    seconds: float = 0.0  # wall time of the computed frames so far (the page's drawing between them included)
    computed: int = 0
    last: float = field(default_factory=time.perf_counter)

    def lap(self, computes: bool) -> None:
        """A frame came out; `computes`: the model ran for it."""
        now = time.perf_counter()
        if computes:
            self.seconds, self.computed = self.seconds + now - self.last, self.computed + 1
        self.last = now

    @property
    def measured(self) -> bool:
        """The pace is this run's (else the last run's, or none)."""
        return self.computed > 0

    @property
    def pace(self) -> float | None:
        """Seconds per frame per object; None before anything was measured at this setting."""
        return self.seconds / (self.computed * self.objects) if self.computed else PACES.get(self.key)

    def seconds_left(self) -> float | None:
        pace = self.pace
        return None if pace is None else pace * self.objects * (self.to_compute - self.computed)

    def save(self) -> None:
        """Keep this run's pace for the next run at the same setting."""
        if self.computed:
            PACES[self.key] = self.pace


@dataclass
class TrackUpdate:
    """One tracked frame of a run: its index and masks, how many of the run's frames are done, the time left."""

    frame: int
    masks: Masks  # object id -> (H, W) bool, the masks just computed for `frame`
    done: int
    total: int
    pace: float | None  # seconds per frame per object (`PaceMeter`); None: not measured yet at this setting
    seconds_left: float | None
    measured: bool  # the pace is this run's, not the last run's


@dataclass(frozen=True)
class Change:
    """One entry of the undo stack: what a prompt change did, in words, and the prompts it replaced."""

    what: str  # e.g. "#1 Object 1: point on frame 3"
    before: dict[Key, Prompt | None]  # the prompts of the keys it changed (None: there was none)


def plan(start: int, num_frames: int, stride: int, direction: str, prompted: set[int]) -> list[tuple[bool, list[int]]]:
    """[(reverse, frames)] passes from `start`: every frame on the `stride` grid, every `prompted` frame (its
    conditioning result is kept, never held over) and `start`; forward then backward for "both" (the start
    frame is tracked once)."""
    tracked = set(range(0, num_frames, stride)) | prompted
    forward = [start] + sorted(t for t in tracked if t > start)
    backward = sorted((t for t in tracked if t < start), reverse=True)
    passes = {
        "forward": [(False, forward)],
        "backward": [(True, [start] + backward)],
        "both": [(False, forward), (True, backward)],
    }[direction]
    return [(reverse, frames) for reverse, frames in passes if frames]


class Session:
    """One browser tab's work. The video, prompts and results change only through the actions below; none
    of them loses what the user made: a bad upload, a speed or model switch, a closed tab mid-run."""

    def __init__(self, sid: str, config: AppConfig, models: ModelStore, root: Path):
        self.sid, self.config, self.models = sid, config, models
        self.workdir = Path(tempfile.mkdtemp(prefix="session-", dir=root))  # frames and exports, deleted on close
        self.served = ServedImages(self.workdir / "served")  # the images handed to the page, a new file each
        self.model, self.speed = config.model, config.speed  # the checkpoint and speed preset in use
        self.video: VideoInfo | None = None  # the loaded video (None before the first good upload)
        self.frames: ImageFolderFrames | None = None  # its frames, for the view and the exports
        self.results: Masklets | None = None  # per object per frame, the masks shown and exported
        self.exports: list[Path] = []  # the last export's [zip, json, mp4]
        self.frame = 0  # the frame the user works on: tracking never moves it
        self.tracked = False  # a tracking run has stored masks since the video was loaded / started over
        self.stale = False  # prompts changed after tracking: other frames' masks predate them
        self.made_at: str | None = None  # the setting that made the tracked masks, when it is no longer in use
        self.pending: str | None = None  # an action waiting for its confirming second press ("start_over")
        self.effects = Effects()  # how the view and the exported videos draw the masks (per video; per object)
        self.message = noted(START, self.model)  # the status line
        self.closed = False  # the tab was closed: no new work; files are freed once the running work stops
        self.opened = time.monotonic()  # when the tab's first action came (the Space's admission estimates)
        self._working: str | None = None  # "tracking" / "exporting" while that runs (one at a time)
        self._users = 0  # runs and hand-outs using the session's files: a `close` meanwhile frees them after them
        self._lifecycle = threading.Lock()  # guards `closed`, `_working` and `_users` between a run and `close`
        self._acting = threading.Lock()  # held by the action under way: a tab's events reach us side by side
        self._cancel = threading.Event()
        self._runs = itertools.count()
        self._reset_prompts()

    @property
    def tracking(self) -> bool:
        return self._working == "tracking"

    # ------------------------------------------------------------------ video
    def load_video(self, path, progress: Progress) -> None:
        """Read the upload at `path` into frames and make it the session's video (its prompts and results start
        empty). A file that cannot be read raises UserError and changes nothing: the current video, its clicks
        and masks stay."""
        self._idle()
        if not path:
            raise UserError("Upload a video (mp4, mov, webm) or pick an example.")
        folder = self.workdir / f"video-{next(self._runs)}"
        try:
            video = read_video(path, folder / "frames", self.config.limits, progress)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.close_video()
        self.video, self.frames = video, ImageFolderFrames(video.frames_dir)
        self.results = Masklets(self.video.height, self.video.width, self.video.num_frames, self.video.fps)
        self._segment()  # builds the model's state now, so the first click is quick
        self.message = noted(f"Loaded {self.video.describe()}. Click an object to segment it.", self.model)

    def close_video(self) -> None:
        """Forget the video, its prompts and results (the files too)."""
        engine.ENGINE.drop(self.sid)
        if self.video is not None:
            shutil.rmtree(self.video.frames_dir.parent, ignore_errors=True)
        self.video = self.frames = self.results = None
        self.exports, self.frame, self.tracked, self.stale, self.made_at = [], 0, False, False, None
        self._reset_prompts()

    def close(self) -> None:
        """The session is over (its tab closed or timed out): stop tracking, free the model state, delete the
        files. A track, export or hand-out still going on stops at its next frame and frees them when it ends."""
        with self._lifecycle:
            self.closed = True
            self._cancel.set()
            if self._users:
                return
        self._free()

    def _free(self) -> None:
        self.close_video()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def handing_out(self) -> AbstractContextManager[None]:
        """Keep the session's files while the page is handed some: Gradio reads the files an event hands out (the
        frame view, the overlay video, the downloads) after the handler returns or yields them, so a handler holds
        this across its yields; a `close` meanwhile frees the files when it ends. Does nothing on a closed
        session (its files are freed, or will be by the run holding them)."""
        return self._use_files(None)

    def acting(self) -> AbstractContextManager[object]:
        """Hold while an action changes the session and its outputs are read. Gradio runs a tab's events side by
        side (the click group admits 4 at once), so without it a quick speed switch and click interleave and the
        click's outputs carry the switch's status. Tracking holds it only while it starts (its frames do not
        block an action: the actions that change prompts refuse to run meanwhile); Cancel never waits for it."""
        return self._acting

    def _work(self, what: str) -> AbstractContextManager[None]:
        """Run a long action ("tracking" / "exporting"): refused on a closed session; a `close` during it is
        finished when it ends."""
        return self._use_files(what)

    @contextmanager
    def _use_files(self, working: str | None) -> Iterator[None]:
        with self._lifecycle:
            if self.closed and working is not None:
                raise UserError("This session is closed: reload the page to start again.")
            held = not self.closed
            self._users += held
            if working is not None:
                self._working = working
        try:
            yield
        finally:
            with self._lifecycle:
                self._users -= held
                if working is not None:
                    self._working = None
                free = held and self.closed and not self._users
            if free:
                self._free()

    # ------------------------------------------------------------------ prompts
    def click(self, frame, obj_id, view_x, view_y, mode: str) -> None:
        """A click at (view_x, view_y) on the frame view (`view()`'s pixels): a point, or in box mode one
        corner of the box (the second click draws it)."""
        scale = view_scale(self._video().width, self.video.height)
        x, y = view_x / scale, view_y / scale
        if mode != "box":
            return self.add_point(frame, obj_id, x, y, mode)
        key, (x, y) = self._key(frame, obj_id), self._inside(x, y)
        if self.corner is not None and self.corner[0] == key[0]:
            (_, x0, y0), self.corner = self.corner, None
            return self.add_box(frame, obj_id, x0, y0, x, y)
        self.corner = (key[0], x, y)
        self.message = "Now click the opposite corner of the box."

    def add_point(self, frame, obj_id, x, y, label: str = "positive") -> None:
        if label not in ("positive", "negative"):
            raise UserError(f"A point is 'positive' or 'negative', not {label!r}.")
        key, (x, y) = self._key(frame, obj_id), self._inside(x, y)
        label = POSITIVE if label == "positive" else NEGATIVE
        prompt = self.prompts.get(key)
        self._change(
            {
                key: prompt.with_point(x, y, label)
                if prompt is not None
                else Prompt(*key, points=[(x, y)], labels=[label])
            }
        )

    def add_box(self, frame, obj_id, x0, y0, x1, y1) -> None:
        key = self._key(frame, obj_id)
        (x0, y0), (x1, y1) = self._inside(x0, y0), self._inside(x1, y1)
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            raise UserError("That box is too small: give two opposite corners at least 2 pixels apart.")
        prompt = self.prompts.get(key)
        self._change({key: prompt.with_box(box) if prompt is not None else Prompt(*key, box=box)})

    def undo(self) -> None:
        """Put back the prompts before the last change; the message names what was undone."""
        self._idle()
        if not self.history:
            raise UserError("Nothing to undo.")
        change = self.history.pop()
        for key, prompt in change.before.items():
            self._put(key, prompt)
        seconds = self._segment()
        self.message = f"Undone: {change.what} ({seconds:.2f} s)."

    def clear_frame(self, frame) -> None:
        frame = self._frame(frame)
        keys = [k for k in self.prompts if k[0] == frame]
        if not keys:
            raise UserError(f"There are no clicks on frame {frame}.")
        self._change(dict.fromkeys(keys), f"Cleared frame {frame}")

    def start_over(self, confirmed: bool = False) -> None:
        """Remove every object, click and result; keep the video. When there are clicks to lose, the first
        call only asks (`pending` = "start_over"); a call with `confirmed` does it."""
        self._idle()
        if self.prompts and not confirmed:
            n = len({obj for _, obj in self.prompts})
            self.pending = "start_over"
            self.message = (
                f"Start over removes {n} object{'s' * (n != 1)} with {len(self.prompts)} prompted frame"
                f"{'s' * (len(self.prompts) != 1)} and every mask, for good: press Start over again to confirm."
            )
            return
        self._reset_prompts()
        if self.video is not None:
            self.results = Masklets(self.video.height, self.video.width, self.video.num_frames, self.video.fps)
            self.tracked = self.stale = False
            self.exports, self.made_at = [], None
            self._segment()
        self.message = "Started over: click an object to segment it."

    # ------------------------------------------------------------------ objects
    def add_object(self) -> None:
        if len(self.objects) >= self.config.limits.max_objects:
            raise UserError(f"This demo tracks up to {self.config.limits.max_objects} objects at once.")
        self.current = self._next_id
        self.objects[self.current] = f"Object {self.current}"
        self._next_id += 1
        self.message = f"Added {self.label(self.current)}: click on it."

    def find_objects(self, frame) -> None:
        """Add the objects the automatic mask generator finds on `frame`, up to the object cap: each a new object
        (the current one first, while it has no clicks) prompted with its box and the click that found it, so it
        can be refined, undone (all at once) or removed like a clicked one."""
        self._idle()
        frame = self._frame(frame)
        free = [obj for obj in self.objects if obj not in {o for _, o in self.prompts}]
        room = self.config.limits.max_objects - len(self.objects) + len(free)
        if room <= 0:
            raise UserError(f"This demo tracks up to {self.config.limits.max_objects} objects: remove one first.")
        found = engine.find_objects(self._setup(), frame, room)
        if not found:
            self.message = f"No objects found on frame {frame}: click on them instead."
            return
        new = {}
        for box, point in found:
            if not free:
                self.add_object()
                free.append(self.current)
            obj_id = free.pop(0)
            new[frame, obj_id] = Prompt(frame, obj_id, points=[point], labels=[POSITIVE], box=box)
        self.current = next(iter(new))[1]
        self._change(new, f"Found {len(found)} object{'s' * (len(found) != 1)} on frame {frame}")

    def select_object(self, obj_id) -> None:
        self.current = self._object(obj_id)
        self.message = f"Clicks now go to {self.label(self.current)}."

    def rename_object(self, obj_id, name: str) -> None:
        obj_id, name = self._object(obj_id), " ".join(str(name or "").split())[:MAX_NAME]
        if not name:
            raise UserError("Type a name first.")
        self.objects[obj_id] = name
        self.message = f"Renamed to {self.label(obj_id)}."

    def remove_object(self, obj_id) -> None:
        self._idle()
        obj_id = self._object(obj_id)
        label = self.label(obj_id)
        del self.objects[obj_id]
        self.prompts = {k: p for k, p in self.prompts.items() if k[1] != obj_id}
        kept = (Change(c.what, {k: p for k, p in c.before.items() if k[1] != obj_id}) for c in self.history)
        self.history = [c for c in kept if c.before]
        if not self.objects:
            self.add_object()
        if self.current == obj_id:
            self.current = next(iter(self.objects))
        if self.video is not None:
            self._segment()
        self.message = f"Removed {label}."

    def label(self, obj_id: int) -> str:
        return f"#{obj_id} {self.objects[obj_id]}"

    # ------------------------------------------------------------------ effects
    def set_background(self, name: str) -> None:
        """The background effect (one of `BACKGROUND_EFFECTS`) of the view and the exported videos."""
        if name not in BACKGROUND_EFFECTS:
            raise UserError(f"Unknown background effect {name!r}; choose one of {', '.join(BACKGROUND_EFFECTS)}.")
        self.effects = replace(self.effects, background=name)
        self.message = f"Background: {name}. Exports made from now on use it."

    def set_object_effect(self, obj_id, name: str) -> None:
        """Object `obj_id`'s effect (one of `OBJECT_EFFECTS`) in the view and the exported videos."""
        obj_id = self._object(obj_id)
        if name not in OBJECT_EFFECTS:
            raise UserError(f"Unknown object effect {name!r}; choose one of {', '.join(OBJECT_EFFECTS)}.")
        self.effects = replace(self.effects, objects={**self.effects.objects, obj_id: name})
        self.message = f"{self.label(obj_id)}: {name}. Exports made from now on use it."

    # ------------------------------------------------------------------ settings
    def set_speed(self, key: str) -> None:
        if key not in SPEEDS:
            raise UserError(f"Unknown speed {key!r}; choose one of {', '.join(SPEEDS)}.")
        self._settings(self.model, key)

    def set_model(self, spec: str) -> None:
        self._idle()
        self.models.native_size(spec)  # loads it, or says why it cannot
        self._settings(spec, self.speed)

    def setting(self) -> str:
        """The model and speed in use, in words (what `made_at` records)."""
        return f"{self.model} · {self.speed_info.label(self.models.native_size(self.model))}"

    def _settings(self, model: str, speed: str) -> None:
        """Switch model / speed. Every mask stays: the prompted frames are segmented again with the new
        setting, the tracked ones keep the old setting's masks (`made_at`, said on the page and at export)
        until the next tracking run."""
        self._idle()
        before, old = (self._setup(), self.setting()) if self.video is not None else (None, None)
        self.model, self.speed = model, speed
        note = ""
        if self.video is not None and self._setup() != before:
            if self.tracked:
                self.made_at, self.stale = self.made_at or old, True
            self._segment()
            if self.made_at is not None:
                note = f" {self.made_at_note()}"
        self.message = noted(f"Using {self.setting()}.{note}", model)

    def made_at_note(self) -> str:
        """What the page says while tracked masks come from a setting no longer in use ('' when they do not)."""
        if self.made_at is None:
            return ""
        return (
            f"The tracked masks were made with {self.made_at} and are kept; the clicked frames use the new setting. "
            "Track again to remake them all with it."
        )

    @property
    def speed_info(self) -> Speed:
        return SPEEDS[self.speed]

    # ------------------------------------------------------------------ tracking
    def track(self, frame, direction: str = "both") -> Iterator[TrackUpdate]:
        """Track every prompted object from `frame`; yields after each frame. With a stride, the frames of
        `plan` are tracked (the clicked ones among them) and the frames between two of them hold the earlier
        one's masks. Cancelling, a closed page or the time limit stop it between frames and keep what was done.
        The user's frame (`frame`) stays where it was; each update carries the tracked frame."""
        with ExitStack() as running:
            with self._acting:  # starts as one action: no click lands between its checks and the tracking flag
                video = self._video()
                self._idle()
                if direction not in DIRECTIONS:
                    raise UserError(f"Direction is one of {', '.join(DIRECTIONS)}, not {direction!r}.")
                if not self.prompts:
                    raise UserError("Click on an object first: tracking follows the objects you clicked.")
                start, stride, setup, prompted = (
                    self._frame(frame),
                    self.speed_info.stride,
                    self._setup(),
                    self._prompted(),
                )
                passes = plan(start, video.num_frames, stride, direction, prompted)
                total, done, stopped, began = sum(len(f) for _, f in passes), 0, None, time.perf_counter()
                computed = sum(t not in prompted for _, f in passes for t in f)
                meter = PaceMeter((setup.model, setup.image_size), len({obj for _, obj in self.prompts}), computed)
                anchor = None  # the start frame's result: "both" holds it over the backward pass's first gap
                self._cancel.clear()
                running.enter_context(self._work("tracking"))
            for reverse, frames in passes:
                last = anchor
                run = engine.track(self.sid, setup, stride, dict(self.prompts), frames, reverse)
                try:
                    for t, masks in run:
                        self.results.add(t, masks)
                        if last is not None:
                            self._hold(last, range(last[0] + (-1 if reverse else 1), t, -1 if reverse else 1))
                        last, done = (t, masks), done + 1
                        anchor = last if t == start else anchor
                        elapsed = time.perf_counter() - began
                        meter.lap(t not in prompted)
                        yield TrackUpdate(t, masks, done, total, meter.pace, meter.seconds_left(), meter.measured)
                        if self._cancel.is_set():
                            stopped = "Cancelled"
                        elif elapsed > self.config.limits.max_track_seconds:
                            stopped = f"Stopped at the {self.config.limits.max_track_seconds:g} s limit of one run"
                        if stopped:
                            break
                except VideoDecodeError as e:  # a damaged frame file: keep every frame done before it
                    stopped = f"Stopped: frame {e.frame_index} could not be read ({e.reason})"
                finally:
                    run.close()
                if stopped:
                    break
                if last is not None:  # hold the last mask to the end of the video
                    self._hold(last, range(last[0] - 1, -1, -1) if reverse else range(last[0] + 1, video.num_frames))
        meter.save()
        self.tracked, self.stale = True, False
        if not stopped:
            self.made_at = None
        elapsed = time.perf_counter() - began
        summary = f"tracked {done} of {total} frames in {elapsed:.1f} s ({elapsed / max(done, 1):.2f} s/frame"
        summary += f"; {every(stride)}, masks held in between)." if stride > 1 else ")."
        self.message = f"{stopped}: {summary} Track again to continue." if stopped else summary.capitalize()

    def cancel(self) -> None:
        if not self.tracking:
            raise UserError("Nothing is being tracked.")
        self._cancel.set()
        self.message = "Cancelling: the frames done so far are kept."

    def export(self, progress: Progress | None = None) -> list[Path]:
        """[zip of PNG masks, COCO RLE JSON, overlay MP4] of every frame and prompted object. A closed session
        stops between frames (UserError); the message warns when tracked masks come from an older setting."""
        video = self._video()
        self._idle()
        names = {i: name for i, name in self.objects.items() if i in self.results.obj_ids}
        if not names:
            raise UserError("Nothing to export yet: click on an object first.")

        def step(done: int, total: int) -> None:
            if self.closed:
                raise UserError("The session was closed during the export.")
            if progress is not None:
                progress(done, total)

        with self._work("exporting"):
            for old in {p.parent for p in self.exports}:
                shutil.rmtree(old, ignore_errors=True)
            out_dir = video.frames_dir.parent / f"export-{next(self._runs)}"
            self.exports = write_exports(video, self.results, names, out_dir, step, self.effects)
        if self.made_at is not None:
            self.message = f"Exported, mixing settings: {self.made_at_note()}"
        return self.exports

    # ------------------------------------------------------------------ the view
    def view(self, frame: int | None = None) -> np.ndarray | None:
        """Frame `frame` (default: the user's frame) with its masks, clicks and boxes, (h, w, 3) uint8 at the
        view's scale; None before a video is loaded."""
        if self.video is None:
            return None
        frame = self.frame if frame is None else frame
        prompts = {obj: p for (t, obj), p in self.prompts.items() if t == frame}
        corner = self.corner[1:] if self.corner is not None and self.corner[0] == frame else None
        return draw_frame(self.frames.frame(frame), self.results.masks(frame), prompts, corner, self.effects)

    def timeline(self, marker: int | None = None) -> np.ndarray | None:
        """The per-object timeline (`draw_timeline`) with a line at frame `marker` (default: the user's frame);
        None before a video is loaded."""
        if self.video is None:
            return None
        lanes, stale = self.timeline_states()
        return draw_timeline(lanes, stale, self.frame if marker is None else marker)

    def view_file(self, frame: int | None = None) -> str | None:
        """`view(frame)` written to a new JPEG file for the page (`ServedImages`); None before a video is loaded."""
        return self.served.save(self.view(frame), "frame", "JPEG")

    def timeline_file(self, marker: int | None = None) -> str | None:
        """`timeline(marker)` written to a new PNG file for the page; None before a video is loaded."""
        return self.served.save(self.timeline(marker), "timeline", "PNG")

    def timeline_states(self) -> tuple[dict[int, np.ndarray], np.ndarray]:
        """({obj_id: (T,) uint8 state per frame: UNTRACKED, EMPTY (no mask), MASK or CLICKED}, (T,) bool stale:
        the tracked masks there predate the last change of prompts or setting)."""
        n = self._video().num_frames
        lanes = {}
        for obj_id in self.objects:
            states = np.full(n, UNTRACKED, np.uint8)
            for t in self.results.frames(obj_id):
                states[t] = MASK if self.results.area(t, obj_id) else EMPTY
            states[[t for t, obj in self.prompts if obj == obj_id]] = CLICKED
            lanes[obj_id] = states
        stale = np.zeros(n, bool)
        if self.stale or self.made_at is not None:
            stale[self.results.frames()] = True
            stale[list(self._prompted())] = False
        return lanes, stale

    def show(self, frame) -> None:
        self.frame = self._frame(frame)

    # ------------------------------------------------------------------ internals
    def _reset_prompts(self) -> None:
        self.objects: dict[int, str] = {1: "Object 1"}
        self.current, self._next_id = 1, 2
        self.prompts: dict[Key, Prompt] = {}  # (frame, obj_id) -> that object's clicks and box on that frame
        self.history: list[Change] = []  # undo stack, oldest first
        self.corner: tuple[int, float, float] | None = None  # first corner of a box being drawn

    def _change(self, new: dict[Key, Prompt | None], what: str | None = None) -> None:
        """Set (or, with None, remove) the prompts of some (frame, object) keys and segment again."""
        self._idle()
        before = {k: self.prompts.get(k) for k in new}
        for key, prompt in new.items():
            self._put(key, prompt)
        seconds = self._segment()
        done, hint = what, ""
        if what is None:  # one object on one frame
            (frame, obj_id), prompt = next(iter(new.items()))
            n = prompt.num_points
            clicks = f"{n} click{'s' * (n != 1)}" + (" + box" if prompt.box is not None else "")
            what = f"{self.label(obj_id)}: {clicks} on frame {frame}"
            done = f"{what}, mask {self.results.mask(frame, obj_id).mean():.1%} of the frame"
            if prompt.box is None and not (prompt.labels == POSITIVE).any():
                hint = (
                    " Only negative clicks: they say where the object is not, so the mask is a guess."
                    " Add a positive click on the object."
                )
        self.history.append(Change(what, before))
        if self.stale:
            hint += " Masks on other frames predate this change: track again to update them."
        self.message = f"{done} ({seconds:.2f} s).{hint}"

    def _put(self, key: Key, prompt: Prompt | None) -> None:
        if prompt is not None:
            self.prompts[key] = prompt
        else:
            self.prompts.pop(key, None)

    def _segment(self) -> float:
        """Bring the model in line with the prompts and store the masks of the frames that changed."""
        began = time.perf_counter()
        touched = engine.segment(self.sid, self._setup(), self.speed_info.stride, dict(self.prompts))
        prompted = {obj for _, obj in self.prompts}
        for obj_id in [o for o in self.results.obj_ids if o not in prompted]:
            del self.results.rles[obj_id]
        for frame, masks in touched.items():
            self.results.add(frame, masks)
        self.stale = self.tracked and bool(touched)
        return time.perf_counter() - began

    def _prompted(self) -> set[int]:
        """The frames with prompts (conditioning frames: tracking keeps their masks, the model does not run)."""
        return {t for t, _ in self.prompts}

    def _hold(self, last: tuple[int, Masks], frames: range) -> None:
        """Give `frames` (a gap of the plan: none of them tracked or prompted) the masks of frame `last[0]`."""
        for t in frames:
            self.results.add(t, last[1])

    def _setup(self) -> Setup:
        size = self.speed_info.image_size(self.models.native_size(self.model))
        return Setup(self.model, size, str(self._video().frames_dir))

    def _video(self) -> VideoInfo:
        if self.video is None:
            raise UserError("Upload a video (or pick an example) first.")
        return self.video

    def _idle(self) -> None:
        if self.tracking:
            raise UserError("Tracking is running: wait for it or press Cancel first.")

    def _frame(self, frame) -> int:
        n = self._video().num_frames
        try:
            frame = int(frame)
        except (TypeError, ValueError):
            raise UserError(f"A frame number is a whole number from 0 to {n - 1}, not {frame!r}.") from None
        if not 0 <= frame < n:
            raise UserError(f"Frame {frame} does not exist: this video has frames 0 to {n - 1}.")
        self.frame = frame
        return frame

    def _object(self, obj_id) -> int:
        try:
            obj_id = int(obj_id)
        except (TypeError, ValueError):
            obj_id = None
        if obj_id not in self.objects:
            raise UserError(f"There is no object {obj_id}; the objects are {', '.join(map(self.label, self.objects))}.")
        return obj_id

    def _key(self, frame, obj_id) -> Key:
        key = self._frame(frame), self._object(obj_id)
        self.current = key[1]
        return key

    def _inside(self, x, y) -> tuple[float, float]:
        w, h = self.video.width, self.video.height
        try:
            x, y = float(x), float(y)
        except (TypeError, ValueError):
            raise UserError(f"Coordinates are numbers, not {x!r}, {y!r}.") from None
        if not (0 <= x <= w and 0 <= y <= h):
            raise UserError(f"({x:g}, {y:g}) is outside the {w}×{h} frame.")
        return x, y
