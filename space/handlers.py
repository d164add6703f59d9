"""What each event of the page does: `Handlers`, one method per event, each a thin layer over a `Session` action.

A handler takes the session (None before a tab's first action: it is created then) and the inputs' plain
values, and returns the outputs' values or `gr.*` updates in the order `ui.wire` lists the outputs. Most
return the canvas (`CANVAS`). A `UserError` becomes a warning toast and the status line, never a stack
trace. The handlers are methods because they share the app's session registry (`Handlers.sessions`),
and Gradio finds a handler's `gr.Request` / `gr.Progress` parameters on a method as on a function.
"""

from __future__ import annotations

import html
import statistics
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from . import UserError
from .config import AppConfig, noted
from .layout import speed_options
from .models import ModelStore
from .render import timeline_frame
from .session import START, Session, TrackUpdate

CANVAS = ("session", "frame image", "status", "frame slider", "objects", "object name", "timeline")  # `canvas`


def progress_bar(fraction: float, text: str) -> gr.HTML:
    """The tracking bar `fraction` full, with `text` under it."""
    return gr.HTML(
        f'<div class="bar"><div style="width: {100 * fraction:.1f}%"></div></div><span>{html.escape(text)}</span>',
        visible=True,
    )


def downloads(session: Session) -> tuple:
    """(overlay video, downloads [zip, json, mp4]) of the session's last export; unchanged when there is none
    (or when Gradio's `delete_cache` removed its files, an hour after they were handed out)."""
    if not session.exports or not all(p.exists() for p in session.exports):
        return gr.skip(), gr.skip()
    return str(session.exports[2]), gr.File([str(p) for p in session.exports], visible=True)


def buttons(tracking: bool) -> tuple[gr.Button, gr.Button]:
    """(Track, Cancel): while a run goes on, Cancel stands in Track's place."""
    return gr.Button(visible=not tracking), gr.Button(visible=tracking)


def tracking_message(u: TrackUpdate) -> tuple[str, str]:
    """(status line, progress bar text) after a tracked frame: the time left from the measured time per frame per
    object (this run's, else the last run's at this setting), and which it is."""
    done = f"{u.done} of {u.total} done"
    if u.seconds_left is None:
        return f"Tracking: frame {u.frame}, {done}; measuring the time per frame.", f"{u.done} of {u.total} frames"
    basis = "measured in this run" if u.measured else "measured in the last run at this setting"
    status = f"Tracking: frame {u.frame}, {done}, about {u.seconds_left:.0f} s left ({u.pace:.2f} s per frame per"
    return f"{status} object, {basis}).", f"{u.done} of {u.total} frames · about {u.seconds_left:.0f} s left"


class Handlers:
    """The event handlers of one app and the sessions they act on (one per browser tab)."""

    def __init__(self, config: AppConfig, models: ModelStore, root: Path):
        self.config, self.models, self.root = config, models, root
        self.sessions: dict[str, Session] = {}  # by session hash, to free them when the page closes
        self.lifetimes: deque[float] = deque(maxlen=100)  # seconds the last ended sessions lasted
        self._opening = threading.Lock()  # guards `sessions` while a tab's first events open its session

    def __deepcopy__(self, memo) -> Handlers:
        """Itself: Gradio deep-copies the page's config on every page load, and the config holds the session
        State's delete callback, `self.close_session`; a copy would copy every session and the models."""
        return self

    # ------------------------------------------------------------------ sessions and the canvas
    def open_session(self, request: gr.Request | None) -> Session:
        """The session of `request`'s tab for an event that came without one: the session an earlier event of the
        tab opened (two first events sent together reach us side by side, both without it), else a new one (a new
        one always without a request)."""
        sid = getattr(request, "session_hash", None) or uuid.uuid4().hex
        with self._opening:
            if sid not in self.sessions:
                self.sessions[sid] = Session(sid, self.config, self.models, self.root)
            return self.sessions[sid]

    def close_session(self, session: Session | None) -> None:
        """The session State's delete callback (its time to live ran out), and `unload`: free the session."""
        if session is not None:
            if self.sessions.pop(session.sid, None) is not None:
                self.lifetimes.append(time.monotonic() - session.opened)
            session.close()

    def admit(self, session: Session) -> None:
        """Let `session` load a video, or raise UserError when `config.max_sessions` others hold one: the message
        says how many are here and, from how long the last sessions lasted, when a place should free."""
        sessions = list(self.sessions.values())  # a copy: other tabs open theirs meanwhile
        here = [s for s in sessions if s.video is not None and s is not session]
        if session.video is not None or len(here) < self.config.max_sessions:
            return
        when = "in a few minutes"
        if self.lifetimes:
            now, typical = time.monotonic(), statistics.median(self.lifetimes)
            wait = max(60.0, min(typical - (now - s.opened) for s in here))
            when = f"in about {wait / 60:.0f} minute{'s' * (round(wait / 60) != 1)}"
        people = f"{len(here)} people are" if len(here) != 1 else "1 person is"
        raise UserError(
            f"The Space is full: {people} working on a video here, the most it holds at once. "
            f"A place frees when one of them leaves; please try again {when}."
        )

    def canvas(self, session: Session | None) -> tuple:
        """-> CANVAS: the outputs most actions update (the start message when there is no session yet)."""
        if session is None:
            return None, None, noted(START, self.config.model), gr.skip(), gr.skip(), gr.skip(), None
        n = session.video.num_frames if session.video else 1
        label = f"Frame {session.frame} of {n - 1}: click to prompt {session.label(session.current)}"
        return (
            session,
            gr.Image(session.view_file(), label=label if session.video else "Frame"),
            session.message,
            gr.Slider(maximum=max(n - 1, 1), value=session.frame, interactive=session.video is not None),
            gr.Radio([(session.label(i), i) for i in session.objects], value=session.current),
            session.objects[session.current],
            session.timeline_file(),
        )

    def run(self, session: Session | None, request: gr.Request | None, act: Callable[[Session], object]) -> tuple:
        """Apply `act(session)` (creating the session on first use); a UserError becomes a warning and the
        status. -> CANVAS."""
        session = session or self.open_session(request)
        with session.acting():
            session.pending = None  # a confirmation asked for is void once anything else is done
            try:
                act(session)
            except UserError as e:
                gr.Warning(str(e))
                session.message = str(e)
            return self.canvas(session)

    def speed_choices(self, session: Session) -> gr.Radio:
        """The Speed radio for the session's model and speed (unchanged when the model did not load)."""
        try:
            return gr.Radio(speed_options(self.models.native_size(session.model)), value=session.speed)
        except UserError:  # the model did not load: the status says why
            return gr.skip()

    # ------------------------------------------------------------------ video
    def load_video(self, video, session, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        """`video_in.change` (/load_video): read the uploaded video into frames.

        Inputs: the upload's path (None when the upload was cleared), session.
        Outputs: CANVAS, video info, result video, downloads, speed choices, the upload (reset when unreadable).
        """
        if not video:  # the upload was cleared
            return *self.canvas(session), *(gr.skip(),) * 5
        before = session.video if session is not None else None

        def load(s: Session) -> None:
            self.admit(s)
            s.load_video(video, lambda i, n: progress((i, n), desc="Reading frames"))

        out = self.run(session, request, load)
        loaded = out[0].video
        if loaded is None or loaded is before:  # unreadable: the video in use, its results and downloads stay
            return *out, *(gr.skip(),) * 4, None
        for notice in loaded.notices:
            gr.Info(notice)
        info = "  \n".join([loaded.describe(), *(f"⚠ {n}" for n in loaded.notices)])
        return *out, info, None, gr.File(None, visible=False), self.speed_choices(out[0]), gr.skip()

    def show_frame(self, session, frame, request: gr.Request):
        """`frame_slider.input` (/show_frame): show another frame.

        Inputs: session, frame. Outputs: session, frame image, status, timeline (of CANVAS).
        """
        out = self.run(session, request, lambda s: s.show(frame))
        return *out[:3], out[-1]

    def on_timeline_click(self, session, evt: gr.SelectData, request: gr.Request):
        """`timeline.select` (private): a click on the timeline shows the frame under it. Outputs: CANVAS."""
        if session is None or session.video is None or evt.index is None:
            return self.canvas(session)
        frame = timeline_frame(evt.index[0], session.video.num_frames)
        return self.run(session, request, lambda s: s.show(frame))

    # ------------------------------------------------------------------ prompts
    def on_click(self, session, frame, obj_id, mode, evt: gr.SelectData, request: gr.Request):
        """`frame_view.select` (private): a click on the frame view adds a point or a box corner there.

        Inputs: session, frame, object id, click mode (positive / negative / box); the click's position in the
        frame view's pixels. Outputs: CANVAS.
        """
        if evt.index is None:  # outside the picture
            return self.canvas(session)
        x, y = evt.index
        return self.run(session, request, lambda s: s.click(frame, obj_id, x, y, mode))

    def add_point(self, session, frame, obj_id, label, x, y, request: gr.Request):
        """`add_point.click` (/add_point): a point at typed video pixel coordinates.

        Inputs: session, frame, object id, label ("positive" / "negative"), x, y. Outputs: CANVAS.
        """
        return self.run(session, request, lambda s: s.add_point(frame, obj_id, x, y, label))

    def add_box(self, session, frame, obj_id, x0, y0, x1, y1, request: gr.Request):
        """`add_box.click` (/add_box): a box from two typed opposite corners.

        Inputs: session, frame, object id, x0, y0, x1, y1. Outputs: CANVAS.
        """
        return self.run(session, request, lambda s: s.add_box(frame, obj_id, x0, y0, x1, y1))

    def undo(self, session, request: gr.Request):
        """`undo.click` (/undo): undo the last prompt change. Inputs: session. Outputs: CANVAS."""
        return self.run(session, request, Session.undo)

    def clear_frame(self, session, frame, request: gr.Request):
        """`clear_frame.click` (/clear_frame): remove every prompt on the frame.

        Inputs: session, frame. Outputs: CANVAS.
        """
        return self.run(session, request, lambda s: s.clear_frame(frame))

    def start_over(self, session, request: gr.Request):
        """`start_over.click` (/start_over): remove every object, prompt and result; keep the video. With clicks
        to lose, the first press asks and a second one (the next action) does it.

        Inputs: session. Outputs: CANVAS.
        """
        confirmed = session is not None and session.pending == "start_over"
        return self.run(session, request, lambda s: s.start_over(confirmed))

    # ------------------------------------------------------------------ objects
    def add_object(self, session, request: gr.Request):
        """`add_object.click` (/add_object): a new object, which clicks then go to, in positive mode.

        Inputs: session. Outputs: CANVAS, click mode ("positive").
        """
        return *self.run(session, request, Session.add_object), "positive"

    def find_objects(self, session, frame, request: gr.Request):
        """`find_objects.click` (/find_objects): add the objects found on the frame (segment everything).

        Inputs: session, frame. Outputs: CANVAS.
        """
        return self.run(session, request, lambda s: s.find_objects(frame))

    def select_object(self, session, obj_id, request: gr.Request):
        """`objects.input` (/select_object): clicks go to this object.

        Inputs: session, object id. Outputs: CANVAS, the object's effect.
        """
        out = self.run(session, request, lambda s: s.select_object(obj_id))
        return *out, out[0].effects.of(out[0].current)

    def rename_object(self, session, obj_id, new_name, request: gr.Request):
        """`rename.click` and `name.submit` (/rename_object): rename an object.

        Inputs: session, object id, new name. Outputs: CANVAS.
        """
        return self.run(session, request, lambda s: s.rename_object(obj_id, new_name))

    def remove_object(self, session, obj_id, request: gr.Request):
        """`remove_object.click` (/remove_object): remove an object, its prompts and results.

        Inputs: session, object id. Outputs: CANVAS.
        """
        return self.run(session, request, lambda s: s.remove_object(obj_id))

    # ------------------------------------------------------------------ effects
    def set_background(self, session, effect, request: gr.Request):
        """`background.input` (/set_background): the background effect. Inputs: session, effect. Outputs: CANVAS."""
        return self.run(session, request, lambda s: s.set_background(effect))

    def set_object_effect(self, session, obj_id, effect, request: gr.Request):
        """`object_effect.input` (/set_object_effect): an object's effect.

        Inputs: session, object id, effect. Outputs: CANVAS.
        """
        return self.run(session, request, lambda s: s.set_object_effect(obj_id, effect))

    # ------------------------------------------------------------------ settings
    def set_speed(self, session, preset, request: gr.Request):
        """`speed.input` (/set_speed): another speed preset. Inputs: session, preset key. Outputs: CANVAS."""
        return self.run(session, request, lambda s: s.set_speed(preset))

    def set_model(self, session, checkpoint, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        """`model.input` (/set_model): load another checkpoint.

        Inputs: session, checkpoint (Hub id, folder or .pt).
        Outputs: CANVAS, speed choices (for its input size), the checkpoint in use (the old one if it failed).
        """
        progress(0, desc=f"Loading {checkpoint}")
        out = self.run(session, request, lambda s: s.set_model(checkpoint))
        return *out, self.speed_choices(out[0]), out[0].model

    # ------------------------------------------------------------------ tracking and results
    def tracking_canvas(self, session: Session, u: TrackUpdate) -> tuple:
        """-> CANVAS while tracking: the frame just tracked with its masks (the slider stays on the user's frame)."""
        session.message, _ = tracking_message(u)
        image = gr.Image(session.view_file(u.frame), label=f"Tracking: frame {u.frame} (your frame is {session.frame})")
        return session, image, session.message, gr.skip(), gr.skip(), gr.skip(), session.timeline_file(marker=u.frame)

    def track(self, session, frame, direction, request: gr.Request):
        """`track.click` (/track): track every prompted object from the frame; a generator.

        Inputs: session, frame, direction (forward / backward / both).
        Outputs, after each tracked frame (the frame view shows it with its masks) and at the end: CANVAS,
        tracking bar, result video, downloads (the last two once the results are written), the Track and Cancel
        buttons (while the run and its export go on, Cancel stands in Track's place).
        """
        session = session or self.open_session(request)
        running, idle = buttons(tracking=True), buttons(tracking=False)
        with session.handing_out():  # a tab closed meanwhile: its files go once Gradio has read the last output
            try:
                for u in session.track(frame, direction):
                    bar = progress_bar(u.done / u.total, tracking_message(u)[1])
                    yield *self.tracking_canvas(session, u), bar, gr.skip(), gr.skip(), *running
                summary, writing = (
                    session.message,
                    progress_bar(1, "Writing the downloads (overlay video, masks); ▶ Play shows the results meanwhile"),
                )
                yield *self.canvas(session), writing, gr.skip(), gr.skip(), *running
                session.export()
                session.message = f"{summary} Downloads ready. {session.made_at_note()}".rstrip()
                yield *self.canvas(session), gr.HTML(visible=False), *downloads(session), *idle
            except UserError as e:
                gr.Warning(str(e))
                session.message = str(e)
                yield *self.canvas(session), gr.HTML(visible=False), gr.skip(), gr.skip(), *idle

    def cancel(self, session):
        """`cancel.click` (/cancel, not queued): stop tracking after the current frame.

        Inputs: session. Outputs: status.
        """
        if session is None:
            return "Nothing is being tracked."
        try:
            session.cancel()
        except UserError as e:
            gr.Warning(str(e))
            session.message = str(e)
        return session.message

    def export(self, session, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        """`export.click` (/export): write the downloads of the current results; a generator of one output, so
        that the files stay until Gradio has read them (see `Session.handing_out`).

        Inputs: session. Outputs: CANVAS, tracking bar (unchanged), result video, downloads.
        """
        session = session or self.open_session(request)
        with session.handing_out():
            out = self.run(session, request, lambda s: s.export(lambda i, n: progress((i, n), desc="Exporting")))
            yield *out, gr.skip(), *downloads(out[0])

    def unload(self, request: gr.Request):
        """`demo.unload`: the tab was closed; free its session."""
        self.close_session(self.sessions.get(request.session_hash))
