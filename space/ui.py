"""The Gradio app: layout, events and their API names.

Every handler is one line over a `Session` action, so everything the page does is also a named
endpoint for `gradio_client` (clicks by coordinates: /add_point, /add_box). Problems the user can
fix become a warning toast and the status line, never a stack trace.
"""

from __future__ import annotations

import atexit
import html
import shutil
import tempfile
import uuid
from pathlib import Path

import gradio as gr

from . import UserError, engine
from .config import DEFAULT_MODEL, HUB_MODELS, RANDOM_MODEL, SPEEDS, AppConfig, noted
from .engine import Engine
from .models import ModelStore
from .render import color
from .session import DIRECTIONS, START, Session
from .video import example_clips

SESSION_TTL = 2 * 3600  # seconds a session lives after its last action
THEME = gr.themes.Soft(
    primary_hue="blue",
    neutral_hue="slate",
    font=["ui-sans-serif", "system-ui", "sans-serif"],  # local fonts: the page works offline
    font_mono=["ui-monospace", "monospace"],
)
CSS = """
#frame img { cursor: crosshair; }
#objects label { border-left: 6px solid transparent; }
#progress { padding: 0 4px; }
#progress .bar { height: 10px; border-radius: 5px; background: var(--neutral-200); overflow: hidden; margin: 4px 0; }
#progress .bar > div { height: 100%; background: var(--color-accent); transition: width 0.3s; }
#progress span { font-size: var(--text-sm); color: var(--body-text-color-subdued); }
footer { margin-top: 8px; }
""" + "".join(  # each object's radio label in its colour (labels start with "#<id> ")
    f'#objects label[data-testid^="#{i} "] {{ border-left-color: rgb{color(i)}; }}\n' for i in range(1, 100)
)
HELP = """# SAM 2 video masklets
**1** Upload a video or pick an example · **2** click on objects (positive: part of it, negative: not part of it;
add more objects on the right) · **3** track them through the video · **4** download the masks.
Clicks on any frame refine the result; track again to update. Model `{model}` on {device}."""
UNTRAINED_NOTICE = (
    "**⚠ Untrained model: the masks are meaningless.** This app was started with `--random-weights`: SAM 2.1 "
    "tiny with seeded random weights, to try the app offline. Start it without `--random-weights` (it downloads "
    f"`{DEFAULT_MODEL}`) or with `--model` for real masks."
)
MODES = [("Positive point", "positive"), ("Negative point", "negative"), ("Box (2 corners)", "box")]


def build_demo(config: AppConfig) -> gr.Blocks:
    """The app for `config`; launch it with `launch(demo, config, ...)`."""
    models = ModelStore(config.device)
    engine.ENGINE = Engine(models, config.feature_cache_mb)
    root = Path(tempfile.mkdtemp(prefix="sam2-space-"))
    atexit.register(shutil.rmtree, root, True)
    sessions: dict[str, Session] = {}  # by session hash, to free them when the page closes
    try:
        native = models.native_size(config.model)
        problem = None
    except UserError as e:
        native, problem = 1024, str(e)
    limits = config.limits

    def new_session(request: gr.Request | None) -> Session:
        sid = getattr(request, "session_hash", None) or uuid.uuid4().hex
        sessions[sid] = Session(sid, config, models, root)
        return sessions[sid]

    def close_session(session: Session | None) -> None:
        if session is not None:
            sessions.pop(session.sid, None)
            session.close()

    def canvas(session: Session | None) -> tuple:
        """(state, frame image, status, frame slider, objects, object name): what most actions update."""
        if session is None:
            return None, None, noted(START, config.model), gr.skip(), gr.skip(), gr.skip()
        n = session.video.num_frames if session.video else 1
        label = f"Frame {session.frame} of {n - 1}: click to prompt {session.label(session.current)}"
        return (
            session,
            gr.Image(session.view(), label=label if session.video else "Frame"),
            session.message,
            gr.Slider(maximum=max(n - 1, 1), value=session.frame, interactive=session.video is not None),
            gr.Radio([(session.label(i), i) for i in session.objects], value=session.current),
            session.objects[session.current],
        )

    def run(session: Session | None, request: gr.Request | None, act) -> tuple:
        """Apply `act(session)` (creating the session on first use) and return the canvas."""
        session = session or new_session(request)
        try:
            act(session)
        except UserError as e:
            gr.Warning(str(e))
            session.message = str(e)
        return canvas(session)

    def downloads(session: Session) -> tuple:
        """(overlay video, [zip, json, mp4]) of the last export."""
        if not session.exports:
            return gr.skip(), gr.skip()
        return str(session.exports[2]), gr.File([str(p) for p in session.exports], visible=True)

    def speed_choices(session: Session) -> gr.Radio:
        try:
            return gr.Radio(speed_options(models.native_size(session.model)), value=session.speed)
        except UserError:  # the model did not load: the status says why
            return gr.skip()

    with gr.Blocks(title="SAM 2 video masklets", delete_cache=(1800, 3600)) as demo:
        state = gr.State(None, time_to_live=SESSION_TTL, delete_callback=close_session)
        gr.Markdown(noted(HELP.format(model=config.model, device=config.device.upper()), config.model), elem_id="help")
        gr.Markdown(UNTRAINED_NOTICE, visible=config.model == RANDOM_MODEL, elem_id="untrained")
        gr.Markdown(f"**The model is not available.** {problem}", visible=problem is not None, elem_id="model-problem")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                frame_view = gr.Image(
                    label="Frame",
                    interactive=False,
                    format="jpeg",
                    height=520,
                    elem_id="frame",
                    buttons=["fullscreen"],
                    placeholder="Upload a video or pick an example",
                )
                frame_slider = gr.Slider(0, 1, value=0, step=1, label="Frame", interactive=False, elem_id="scrubber")
                status = gr.Textbox(
                    label="Status",
                    interactive=False,
                    lines=2,
                    elem_id="status",
                    value=noted(START, config.model),
                )
                tracking_bar = gr.HTML(visible=False, elem_id="progress")
                overlay = gr.Video(
                    label="4 · Result", interactive=False, height=400, elem_id="overlay", loop=True, autoplay=True
                )
            with gr.Column(scale=2, min_width=340):
                with gr.Group():
                    video_in = gr.Video(label="1 · Video", sources=["upload"], height=180, elem_id="video-in")
                    limits_md = gr.Markdown(
                        f"Up to {limits.max_seconds:g} s and {limits.max_side} px: longer videos are trimmed, "
                        "larger ones downscaled.",
                        elem_id="video-info",
                        padding=True,
                    )
                if config.examples:
                    gr.Examples(
                        [[str(p)] for p in example_clips(root / "examples")],
                        [video_in],
                        label="Examples",
                        elem_id="examples",
                    )
                with gr.Group():
                    objects = gr.Radio([("#1 Object 1", 1)], value=1, label="2 · Objects", elem_id="objects")
                    with gr.Row(equal_height=True):
                        name = gr.Textbox("Object 1", show_label=False, placeholder="Name", scale=3, max_length=40)
                        rename = gr.Button("Rename", size="sm", scale=1, min_width=70)
                    with gr.Row():
                        add_obj = gr.Button("+ Add object", size="sm", min_width=70)
                        remove_obj = gr.Button("Remove object", size="sm", variant="stop", min_width=70)
                    mode = gr.Radio(MODES, value="positive", label="A click adds", elem_id="mode")
                    with gr.Row():
                        undo = gr.Button("Undo", size="sm", min_width=60)
                        clear = gr.Button("Clear frame", size="sm", min_width=60)
                        start_over = gr.Button("Start over", size="sm", min_width=60)
                with gr.Accordion("Type coordinates (pixels)", open=False):
                    with gr.Row():
                        px, py = gr.Number(label="x", minimum=0), gr.Number(label="y", minimum=0)
                        add_pt = gr.Button("Add point", size="sm")
                    with gr.Row():
                        bx0, by0 = gr.Number(label="x0", minimum=0), gr.Number(label="y0", minimum=0)
                        bx1, by1 = gr.Number(label="x1", minimum=0), gr.Number(label="y1", minimum=0)
                        add_bx = gr.Button("Add box", size="sm")
                with gr.Group():
                    direction = gr.Radio(list(DIRECTIONS), value="both", label="3 · Track from the shown frame")
                    speed = gr.Radio(
                        speed_options(native),
                        value=config.speed,
                        label="Speed",
                        elem_id="speed",
                        info=f"Default: {SPEEDS[config.speed].name} on this {config.device.upper()}. Lower "
                        "resolution and skipping frames (masks held in between; clicked frames are always tracked) "
                        "are faster.",
                    )
                    with gr.Row():
                        track = gr.Button("Track", variant="primary", elem_id="track")
                        cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
                with gr.Group():
                    files = gr.File(
                        label="Downloads: PNG masks (zip) · COCO RLE (json) · overlay (mp4)",
                        file_count="multiple",
                        interactive=False,
                        visible=False,  # until there is something to download
                        elem_id="downloads",
                    )
                    export = gr.Button("Export masks", size="sm", elem_id="export")
                with gr.Accordion("Model", open=False):
                    model = gr.Dropdown(
                        list(dict.fromkeys([config.model, *HUB_MODELS])),
                        value=config.model,
                        label="Checkpoint",
                        info="Hub models are downloaded on first use.",
                    )

        view = [state, frame_view, status]
        full = [*view, frame_slider, objects, name]
        busy = dict(concurrency_id="model", concurrency_limit=2)  # clicks: never queued behind tracking

        # -- video
        def load_video(video, session, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            """-> canvas, video info, result video, downloads, speed choices, the upload (reset when unreadable)."""
            if not video:  # the upload was cleared
                return *canvas(session), *(gr.skip(),) * 5
            out = run(
                session, request, lambda s: s.load_video(video, lambda i, n: progress((i, n), desc="Reading frames"))
            )
            loaded = out[0].video
            if loaded is None:
                return *out, *(gr.skip(),) * 4, None
            for notice in loaded.notices:
                gr.Info(notice)
            info = "  \n".join([loaded.describe(), *(f"⚠ {n}" for n in loaded.notices)])
            return *out, info, None, gr.File(None, visible=False), speed_choices(out[0]), gr.skip()

        video_in.change(
            load_video,
            [video_in, state],
            [*full, limits_md, overlay, files, speed, video_in],
            api_name="load_video",
            **busy,
        )

        def show_frame(session, frame):
            return run(session, None, lambda s: s.show(frame))[:3]

        frame_slider.input(
            show_frame,
            [state, frame_slider],
            view,
            api_name="show_frame",
            show_progress="hidden",
            trigger_mode="always_last",
            concurrency_limit=8,
        )

        # -- prompts
        def on_click(session, frame, obj_id, mode, evt: gr.SelectData, request: gr.Request):
            if evt.index is None:  # outside the picture
                return canvas(session)
            x, y = evt.index
            return run(session, request, lambda s: s.click(frame, obj_id, x, y, mode))

        frame_view.select(on_click, [state, frame_slider, objects, mode], full, api_visibility="private", **busy)

        def add_point(session, frame, obj_id, label, x, y, request: gr.Request):
            return run(session, request, lambda s: s.add_point(frame, obj_id, x, y, label))

        add_pt.click(add_point, [state, frame_slider, objects, mode, px, py], full, api_name="add_point", **busy)

        def add_box(session, frame, obj_id, x0, y0, x1, y1, request: gr.Request):
            return run(session, request, lambda s: s.add_box(frame, obj_id, x0, y0, x1, y1))

        add_bx.click(add_box, [state, frame_slider, objects, bx0, by0, bx1, by1], full, api_name="add_box", **busy)

        def undo_click(session, request: gr.Request):
            return run(session, request, Session.undo)

        undo.click(undo_click, [state], full, api_name="undo", **busy)

        def clear_frame(session, frame, request: gr.Request):
            return run(session, request, lambda s: s.clear_frame(frame))

        clear.click(clear_frame, [state, frame_slider], full, api_name="clear_frame", **busy)

        def start_again(session, request: gr.Request):
            return run(session, request, Session.start_over)

        start_over.click(start_again, [state], full, api_name="start_over", **busy)

        # -- objects
        def add_object(session, request: gr.Request):
            return run(session, request, Session.add_object)

        add_obj.click(add_object, [state], full, api_name="add_object")

        def select_object(session, obj_id, request: gr.Request):
            return run(session, request, lambda s: s.select_object(obj_id))

        objects.input(select_object, [state, objects], full, api_name="select_object")

        def rename_object(session, obj_id, new_name, request: gr.Request):
            return run(session, request, lambda s: s.rename_object(obj_id, new_name))

        gr.on([rename.click, name.submit], rename_object, [state, objects, name], full, api_name="rename_object")

        def remove_object(session, obj_id, request: gr.Request):
            return run(session, request, lambda s: s.remove_object(obj_id))

        remove_obj.click(remove_object, [state, objects], full, api_name="remove_object", **busy)

        # -- settings
        def set_speed(session, preset, request: gr.Request):
            return run(session, request, lambda s: s.set_speed(preset))

        speed.input(set_speed, [state, speed], full, api_name="set_speed", **busy)

        def set_model(session, checkpoint, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            progress(0, desc=f"Loading {checkpoint}")
            out = run(session, request, lambda s: s.set_model(checkpoint))
            return *out, speed_choices(out[0]), out[0].model

        model.input(set_model, [state, model], [*full, speed, model], api_name="set_model", **busy)

        # -- tracking and results
        def track_objects(session, frame, direction, request: gr.Request):
            """Streams the canvas (the frame view follows the tracked frames) and a progress bar; then the results."""
            session = session or new_session(request)
            try:
                for u in session.track(frame, direction):
                    left = u.seconds_per_frame * (u.total - u.done)
                    session.message = (
                        f"Tracking: frame {u.frame}, {u.done} of {u.total} done, "
                        f"{u.seconds_per_frame:.2f} s/frame, about {left:.0f} s left."
                    )
                    bar = progress_bar(
                        u.done / u.total, f"{u.done} of {u.total} frames · {u.seconds_per_frame:.2f} s/frame"
                    )
                    yield *canvas(session), bar, gr.skip(), gr.skip()
                summary = session.message
                yield *canvas(session), progress_bar(1, "Writing the overlay video and the masks"), gr.skip(), gr.skip()
                session.export()
                session.message = f"{summary} Downloads ready."
                yield *canvas(session), gr.HTML(visible=False), *downloads(session)
            except UserError as e:
                gr.Warning(str(e))
                session.message = str(e)
                yield *canvas(session), gr.HTML(visible=False), gr.skip(), gr.skip()

        track.click(
            track_objects,
            [state, frame_slider, direction],
            [*full, tracking_bar, overlay, files],
            api_name="track",
            concurrency_id="track",
            concurrency_limit=config.track_concurrency,
            show_progress="hidden",
        )

        def cancel_tracking(session):
            if session is None:
                return "Nothing is being tracked."
            try:
                session.cancel()
            except UserError as e:
                gr.Warning(str(e))
                session.message = str(e)
            return session.message

        cancel.click(cancel_tracking, [state], [status], api_name="cancel", queue=False)

        def export_masks(session, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            out = run(session, request, lambda s: s.export(lambda i, n: progress((i, n), desc="Exporting")))
            return *out, gr.skip(), *downloads(out[0])

        export.click(
            export_masks,
            [state],
            [*full, tracking_bar, overlay, files],
            api_name="export",
            concurrency_id="export",
            concurrency_limit=2,
        )

        def unload(request: gr.Request):
            close_session(sessions.get(request.session_hash))

        demo.unload(unload)
    return demo


def progress_bar(fraction: float, text: str) -> gr.HTML:
    return gr.HTML(
        f'<div class="bar"><div style="width: {100 * fraction:.1f}%"></div></div><span>{html.escape(text)}</span>',
        visible=True,
    )


def speed_options(native_size: int) -> list[tuple[str, str]]:
    return [(s.label(native_size), s.key) for s in SPEEDS.values()]


def launch(demo: gr.Blocks, config: AppConfig, **kwargs):
    """Queue with limits and launch (the app and the tests use the same settings)."""
    demo.queue(max_size=config.queue_size, default_concurrency_limit=4)
    return demo.launch(theme=THEME, css=CSS, max_file_size=f"{config.limits.max_upload_mb}mb", **kwargs)
