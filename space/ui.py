"""The Gradio app: `build_demo` puts together the page (`layout`), the event handlers (`handlers`) and
`wire`, which connects each event to its handler with its API name, inputs, outputs and queue settings.

Everything the page does is also a named endpoint for `gradio_client` (clicks by coordinates:
/add_point, /add_box). Problems the user can fix become a warning toast and the status line, never a
stack trace.
"""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile
import threading
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from . import UserError, engine
from .config import SPEEDS, AppConfig
from .engine import Engine
from .handlers import Handlers
from .layout import PAGE_JS, Layout, build_layout
from .models import ModelStore
from .render import color

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
#keys { font-size: var(--text-sm); color: var(--body-text-color-subdued); }
footer { margin-top: 8px; }
@media (max-width: 720px) {  /* a phone: the upload first, then the frame with Track, then the other controls */
  #workspace { flex-direction: column; }
  #controls { display: contents; }
  #upload, #examples { order: -1; }
  #keys { display: none; }
}
""" + "".join(  # each object's radio label in its colour (labels start with "#<id> ")
    f'#objects label[data-testid^="#{i} "] {{ border-left-color: rgb{color(i)}; }}\n' for i in range(1, 100)
)
# The API page's endpoint descriptions (the handlers' docstrings are for developers; Gradio would show them).
API_DESCRIPTIONS = {
    "load_video": "-> canvas, video info, result video, downloads, speed choices, the upload (reset when unreadable).",
    "track": "Streams the canvas (the frame view follows the tracked frames) and a progress bar; then the results.",
}


def build_demo(config: AppConfig) -> gr.Blocks:
    """The app for `config`; launch it with `launch(demo, config, ...)`."""
    config = dataclasses.replace(config, backend=config.resolved_backend())  # the page says which
    models = ModelStore(config.device, backend=config.backend)
    engine.ENGINE = Engine(models, config.feature_cache_mb)
    root = Path(tempfile.mkdtemp(prefix="sam2-space-"))  # the example clips
    # the sessions' files, inside Gradio's cache folder: Gradio serves them where they are (space/served.py)
    cache = Path(get_upload_folder())
    cache.mkdir(parents=True, exist_ok=True)
    sessions = Path(tempfile.mkdtemp(prefix="sam2-space-sessions-", dir=cache))
    for folder in (root, sessions):
        atexit.register(shutil.rmtree, folder, True)
    try:
        native, problem = models.native_size(config.model), None
    except UserError as e:
        native, problem = 1024, str(e)
    handlers = Handlers(config, models, sessions)
    with gr.Blocks(title="SAM 2 video masklets", delete_cache=(1800, 3600)) as demo:
        ui = build_layout(config, native, problem, root / "examples", on_session_end=handlers.close_session)
        wire(demo, ui, handlers, config)
    return demo


def endpoint(name: str) -> dict:
    """An event's `api_name` and the description the API page shows for it."""
    return dict(api_name=name, api_description=API_DESCRIPTIONS.get(name, False))


def wire(demo: gr.Blocks, ui: Layout, h: Handlers, config: AppConfig) -> None:
    """Connect every event of the page to its handler (inside `demo`'s `with` block)."""
    view = [ui.state, ui.frame_view, ui.status]
    canvas = [*view, ui.frame_slider, ui.objects, ui.name, ui.timeline]  # handlers.CANVAS, what most handlers return
    results = [ui.tracking_bar, ui.overlay, ui.files]
    # Each kind of work waits in its own line (README, "The Space": "Under load"); the model's computations then take
    # turns in `engine.ComputeTurns`, a click before any tracking frame.
    busy = dict(concurrency_id="click", concurrency_limit=4)  # clicks and prompt changes: never behind tracking

    # -- video
    ui.video_in.change(
        h.load_video,
        [ui.video_in, ui.state],
        [*canvas, ui.video_info, ui.overlay, ui.files, ui.speed, ui.video_in],
        **endpoint("load_video"),
        concurrency_id="upload",
        concurrency_limit=2,
    )
    ui.frame_slider.input(
        h.show_frame,
        [ui.state, ui.frame_slider],
        [*view, ui.timeline],
        **endpoint("show_frame"),
        show_progress="hidden",
        trigger_mode="always_last",
        concurrency_limit=8,
    )

    ui.timeline.select(
        h.on_timeline_click, [ui.state], canvas, api_visibility="private", show_progress="hidden", concurrency_limit=8
    )

    # -- prompts
    ui.frame_view.select(
        h.on_click, [ui.state, ui.frame_slider, ui.objects, ui.mode], canvas, api_visibility="private", **busy
    )
    ui.add_point.click(
        h.add_point,
        [ui.state, ui.frame_slider, ui.objects, ui.mode, ui.point_x, ui.point_y],
        canvas,
        **endpoint("add_point"),
        **busy,
    )
    ui.add_box.click(
        h.add_box,
        [ui.state, ui.frame_slider, ui.objects, ui.box_x0, ui.box_y0, ui.box_x1, ui.box_y1],
        canvas,
        **endpoint("add_box"),
        **busy,
    )
    ui.undo.click(h.undo, [ui.state], canvas, **endpoint("undo"), **busy)
    ui.clear_frame.click(h.clear_frame, [ui.state, ui.frame_slider], canvas, **endpoint("clear_frame"), **busy)
    ui.start_over.click(h.start_over, [ui.state], canvas, **endpoint("start_over"), **busy)

    # -- objects
    ui.add_object.click(h.add_object, [ui.state], [*canvas, ui.mode], **endpoint("add_object"))
    ui.objects.input(h.select_object, [ui.state, ui.objects], [*canvas, ui.object_effect], **endpoint("select_object"))
    gr.on(
        [ui.rename.click, ui.name.submit],
        h.rename_object,
        [ui.state, ui.objects, ui.name],
        canvas,
        **endpoint("rename_object"),
    )
    ui.remove_object.click(h.remove_object, [ui.state, ui.objects], canvas, **endpoint("remove_object"), **busy)
    ui.find_objects.click(h.find_objects, [ui.state, ui.frame_slider], canvas, **endpoint("find_objects"), **busy)

    # -- effects
    ui.background.input(h.set_background, [ui.state, ui.background], canvas, **endpoint("set_background"))
    ui.object_effect.input(
        h.set_object_effect, [ui.state, ui.objects, ui.object_effect], canvas, **endpoint("set_object_effect")
    )

    # -- settings
    ui.speed.input(h.set_speed, [ui.state, ui.speed], canvas, **endpoint("set_speed"), **busy)
    ui.model.input(
        h.set_model,
        [ui.state, ui.model],
        [*canvas, ui.speed, ui.model],
        **endpoint("set_model"),
        concurrency_id="model",
        concurrency_limit=1,
    )

    # -- tracking and results
    ui.track.click(
        h.track,
        [ui.state, ui.frame_slider, ui.direction],
        [*canvas, *results, ui.track, ui.cancel],
        **endpoint("track"),
        concurrency_id="track",
        concurrency_limit=config.track_concurrency,
        show_progress="minimal",  # a run waiting for its turn shows its place in line on the status line
        show_progress_on=[ui.status],
    )
    ui.cancel.click(h.cancel, [ui.state], [ui.status], **endpoint("cancel"), queue=False)
    ui.export.click(
        h.export,
        [ui.state],
        [*canvas, *results],
        **endpoint("export"),
        concurrency_id="export",
        concurrency_limit=2,
    )
    demo.unload(h.unload)


def launch(demo: gr.Blocks, config: AppConfig, **kwargs):
    """Queue with limits and launch (the app and the tests use the same settings); an exported backend is prepared
    meanwhile (`prepare_backend`)."""
    prepare_backend(config)
    demo.queue(max_size=config.queue_size, default_concurrency_limit=4)
    return demo.launch(theme=THEME, css=CSS, js=PAGE_JS, max_file_size=f"{config.limits.max_upload_mb}mb", **kwargs)


def prepare_backend(config: AppConfig) -> threading.Thread | None:
    """Start making the backend of the default speed's model variant in the background, when it runs exported
    engines (export, and for "auto" the measurement of each part: a minute or more on a CPU), so that the first
    visitor does not wait for it; a visitor who comes sooner waits for the same work (`ModelStore` makes each
    variant's backend once). -> the thread, or None when there is nothing to prepare."""
    models = engine.ENGINE.models
    if models.backend in ("torch", "compile"):
        return None
    try:
        size = SPEEDS[config.speed].image_size(models.native_size(config.model))
    except UserError:  # the page says why the model is not available
        return None
    thread = threading.Thread(target=models.predictor, args=(config.model, size), name="prepare-backend", daemon=True)
    thread.start()
    return thread
