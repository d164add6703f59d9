"""The page: every component of the app, created in display order and returned by name (`Layout`).

Nothing here reacts to anything; `ui.wire` connects the components' events to the `handlers`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from sam2_hf.media.render import BACKGROUND_EFFECTS, OBJECT_EFFECTS

from .config import DEFAULT_MODEL, HUB_MODELS, RANDOM_MODEL, SPEEDS, AppConfig, noted
from .session import DIRECTIONS, START, Session
from .video import example_clips

SESSION_TTL = 2 * 3600  # seconds a session lives after its last action
HELP = """# SAM 2 video masklets
**1** Upload a video or pick an example · **2** click on objects (positive: part of it, negative: not part of it;
add more objects on the right) · **3** track them through the video · **4** download the masks.
Clicks on any frame refine the result; track again to update. Model `{model}` on {device} ({backend})."""
UNTRAINED_NOTICE = (
    "**⚠ Untrained model: the masks are meaningless.** This app was started with `--random-weights`: SAM 2.1 "
    "tiny with seeded random weights, to try the app offline. Start it without `--random-weights` (it downloads "
    f"`{DEFAULT_MODEL}`) or with `--model` for real masks."
)
MODES = [("Positive point", "positive"), ("Negative point", "negative"), ("Box (2 corners)", "box")]
KEYS = (
    "Keys: **P** positive · **N** negative · **B** box · **Z** undo · **← / →** previous / next frame · **T** track"
    " · **K** play / pause"
)
PLAY_FPS = 8  # frames a second of ▶ Play: each frame is drawn on the server (masks, effects), as when scrubbing
# The page's script, for `launch(js=...)`: ▶ Play steps the frame slider through the video (the results play
# at once, before or without an overlay video), and the keys above (ignored while typing in a field or with
# Ctrl / Alt / Cmd held). Both move the slider as a user would: its "input" event shows the frame.
PAGE_JS = """() => {
  const q = (selector) => document.querySelector(selector);
  const mode = (name) => [...document.querySelectorAll("#mode label")].find((l) => l.textContent.includes(name));
  const slider = () => q("#scrubber input[type=range]");
  const go = (value) => {  // show frame `value` (clamped); false when the slider is off or already there
    const s = slider();
    if (!s || s.disabled) return false;
    value = Math.min(Math.max(value, +s.min), +s.max);
    if (value === +s.value) return false;
    s.value = value;
    s.dispatchEvent(new Event("input", {bubbles: true}));
    return true;
  };
  const step = (delta) => go(+(slider()?.value ?? 0) + delta);
  let playing = null;
  const play = () => {
    const button = q("#play");
    if (playing !== null) {
      clearInterval(playing);
      playing = null;
    } else if (slider() && !slider().disabled) {
      if (+slider().value === +slider().max) go(+slider().min);  // from the start again
      playing = setInterval(() => { if (!step(1)) play(); }, 1000 / PLAY_FPS);
    }
    if (button) button.textContent = playing === null ? "▶ Play" : "⏸ Pause";
  };
  document.addEventListener("click", (event) => { if (event.target.closest("#play")) play(); });
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input[type=text], input[type=number], textarea, [contenteditable]")) return;
    if (event.ctrlKey || event.altKey || event.metaKey) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const target = {p: mode("Positive"), n: mode("Negative"), b: mode("Box"), z: q("#undo"), t: q("#track")}[key];
    if (target) target.click();
    else if (key === "k") play();
    else if (key === "ArrowLeft" || key === "ArrowRight") step(key === "ArrowRight" ? 1 : -1);
    else return;
    event.preventDefault();
  });
}""".replace("PLAY_FPS", str(PLAY_FPS))


def speed_options(native_size: int) -> list[tuple[str, str]]:
    """The Speed radio's (label, key) choices for a model of this native input size."""
    return [(s.label(native_size), s.key) for s in SPEEDS.values()]


def integer_choices(radio: gr.Radio) -> gr.Radio:
    """`radio` (whose values are integers) documented in the API as an integer: Gradio documents a Radio's
    values as strings, and view_api showed obj_id="1", which the Radio refuses (it takes 1). A Radio subclass
    would do it too, but Gradio writes a .pyi stub beside any module that defines one."""
    radio.api_info = lambda: {"type": "integer", "title": "Object id", "description": "as on the page (#1: 1)"}
    return radio


@dataclass
class Layout:
    """The components that events read, update or are triggered by (the static text is left out)."""

    state: gr.State  # the `Session` of this browser tab (None until the first action)
    # left column: the frame and the results
    frame_view: gr.Image
    frame_slider: gr.Slider
    timeline: gr.Image
    status: gr.Textbox
    tracking_bar: gr.HTML
    overlay: gr.Video
    # right column, 1: the video
    video_in: gr.Video
    video_info: gr.Markdown
    # 2: objects and prompts
    objects: gr.Radio
    name: gr.Textbox
    rename: gr.Button
    add_object: gr.Button
    remove_object: gr.Button
    find_objects: gr.Button
    mode: gr.Radio
    undo: gr.Button
    clear_frame: gr.Button
    start_over: gr.Button
    background: gr.Radio
    object_effect: gr.Radio
    point_x: gr.Number
    point_y: gr.Number
    add_point: gr.Button
    box_x0: gr.Number
    box_y0: gr.Number
    box_x1: gr.Number
    box_y1: gr.Number
    add_box: gr.Button
    # 3: tracking
    direction: gr.Radio
    speed: gr.Radio
    track: gr.Button
    cancel: gr.Button
    # 4: results and settings
    files: gr.File
    export: gr.Button
    model: gr.Dropdown


def build_layout(
    config: AppConfig,
    native_size: int,
    problem: str | None,
    examples_dir: Path,
    on_session_end: Callable[[Session | None], None],
) -> Layout:
    """Create the page's components; call inside `gr.Blocks()`. `native_size`: the model's input size (for
    the Speed choices); `problem`: why the model is not available, or None; `examples_dir`: where the example
    clips are written (when `config.examples`); `on_session_end`: called with a tab's session when it expires."""
    limits = config.limits
    state = gr.State(None, time_to_live=SESSION_TTL, delete_callback=on_session_end)
    gr.Markdown(
        noted(
            HELP.format(model=config.model, device=config.device.upper(), backend=backend_words(config.backend)),
            config.model,
        ),
        elem_id="help",
    )
    gr.Markdown(UNTRAINED_NOTICE, visible=config.model == RANDOM_MODEL, elem_id="untrained")
    gr.Markdown(f"**The model is not available.** {problem}", visible=problem is not None, elem_id="model-problem")
    with gr.Row(equal_height=False, elem_id="workspace"):
        with gr.Column(scale=3, elem_id="work"):
            frame_view = gr.Image(
                label="Frame",
                interactive=False,
                format="jpeg",
                height=400,
                elem_id="frame",
                buttons=["fullscreen"],
                placeholder="Upload a video or pick an example",
            )
            with gr.Row(equal_height=True):
                frame_slider = gr.Slider(  # the maximum follows the video; the API documents the limit
                    minimum=0,
                    maximum=max(limits.max_frames - 1, 1),
                    value=0,
                    step=1,
                    precision=0,
                    label="Frame",
                    interactive=False,
                    elem_id="scrubber",
                    scale=6,
                )
                gr.Button("▶ Play", size="sm", scale=1, min_width=80, elem_id="play")  # PAGE_JS plays
            timeline = gr.Image(
                label="Timeline",
                interactive=False,
                format="png",
                buttons=[],
                show_label=False,
                elem_id="timeline",
                placeholder=None,
            )
            with gr.Row(equal_height=True, elem_id="track-row"):  # Track beside the frame: in view while working
                direction = gr.Radio(
                    list(DIRECTIONS), value="both", label="3 · Track from the shown frame", scale=3, elem_id="direction"
                )
                track = gr.Button("Track", variant="primary", elem_id="track", scale=1, min_width=90)
                cancel = gr.Button("Cancel", variant="stop", elem_id="cancel", visible=False, scale=1, min_width=90)
            tracking_bar = gr.HTML(label="Progress", visible=False, elem_id="progress")
            status = gr.Textbox(
                label="Status",
                interactive=False,
                lines=2,
                elem_id="status",
                value=noted(START, config.model),
            )
            gr.Markdown(KEYS, elem_id="keys")
            overlay = gr.Video(
                label="4 · Result", interactive=False, height=400, elem_id="overlay", loop=True, autoplay=True
            )
        with gr.Column(scale=2, min_width=340, elem_id="controls"):
            with gr.Group(elem_id="upload"):
                video_in = gr.Video(label="1 · Video", sources=["upload"], height=180, elem_id="video-in")
                video_info = gr.Markdown(
                    f"Up to {limits.max_seconds:g} s and {limits.max_side} px: longer videos are trimmed, "
                    "larger ones downscaled.",
                    label="Video info",
                    elem_id="video-info",
                    padding=True,
                )
            if config.examples:
                gr.Examples(
                    [[str(p)] for p in example_clips(examples_dir)],
                    [video_in],
                    label="Examples",
                    elem_id="examples",
                )
            with gr.Group():
                objects = gr.Radio([("#1 Object 1", 1)], value=1, label="2 · Objects", elem_id="objects")
                integer_choices(objects)
                with gr.Row(equal_height=True):
                    name = gr.Textbox(
                        "Object 1", label="Object name", show_label=False, placeholder="Name", scale=3, max_length=40
                    )
                    rename = gr.Button("Rename", size="sm", scale=1, min_width=70)
                with gr.Row():
                    add_object = gr.Button("+ Add object", size="sm", min_width=70)
                    remove_object = gr.Button("Remove object", size="sm", variant="stop", min_width=70)
                    find_objects = gr.Button("Find objects", size="sm", min_width=70, elem_id="find-objects")
                mode = gr.Radio(MODES, value="positive", label="A click adds", elem_id="mode")
                with gr.Row():
                    undo = gr.Button("Undo", size="sm", min_width=60, elem_id="undo")
                    clear_frame = gr.Button("Clear frame", size="sm", min_width=60)
                    start_over = gr.Button("Start over", size="sm", min_width=60)
            with gr.Accordion("Effects", open=False, elem_id="effects"):
                background = gr.Radio(list(BACKGROUND_EFFECTS), value="none", label="Background", elem_id="background")
                object_effect = gr.Radio(
                    list(OBJECT_EFFECTS),
                    value="overlay",
                    label="Selected object",
                    elem_id="object-effect",
                    info="Shown on the frame and used by the exported videos.",
                )
            with gr.Accordion("Type coordinates (pixels)", open=False):
                with gr.Row():
                    point_x, point_y = gr.Number(label="x", minimum=0), gr.Number(label="y", minimum=0)
                    add_point = gr.Button("Add point", size="sm")
                with gr.Row():
                    box_x0, box_y0 = gr.Number(label="x0", minimum=0), gr.Number(label="y0", minimum=0)
                    box_x1, box_y1 = gr.Number(label="x1", minimum=0), gr.Number(label="y1", minimum=0)
                    add_box = gr.Button("Add box", size="sm")
            with gr.Group():
                speed = gr.Radio(
                    speed_options(native_size),
                    value=config.speed,
                    label="Speed",
                    elem_id="speed",
                    info=f"Default: {SPEEDS[config.speed].name} on this {config.device.upper()}. Lower "
                    "resolution and skipping frames (masks held in between; clicked frames are always tracked) "
                    "are faster.",
                )
            with gr.Group():
                files = gr.File(
                    label="Downloads: PNG masks (zip) · COCO RLE (json) · overlay (mp4) · transparent frames (zip)",
                    file_count="multiple",
                    interactive=False,
                    visible=False,  # until there is something to download
                    elem_id="downloads",
                )
                export = gr.Button("Export masks", size="sm", elem_id="export")
            with gr.Accordion("Model", open=False, elem_id="model-accordion"):
                model = gr.Dropdown(
                    list(dict.fromkeys([config.model, *HUB_MODELS])),
                    value=config.model,
                    label="Checkpoint",
                    elem_id="checkpoint",
                    info="Any SAM 2 model: a Hub id (fine-tuned variants too; downloaded on first use), a folder "
                    "saved with save_pretrained or a Meta .pt. Clicks and masks are kept; track again to use it.",
                    allow_custom_value=True,
                )
    return Layout(
        state=state,
        frame_view=frame_view,
        frame_slider=frame_slider,
        timeline=timeline,
        status=status,
        tracking_bar=tracking_bar,
        overlay=overlay,
        video_in=video_in,
        video_info=video_info,
        objects=objects,
        name=name,
        rename=rename,
        add_object=add_object,
        remove_object=remove_object,
        find_objects=find_objects,
        mode=mode,
        undo=undo,
        clear_frame=clear_frame,
        start_over=start_over,
        background=background,
        object_effect=object_effect,
        point_x=point_x,
        point_y=point_y,
        add_point=add_point,
        box_x0=box_x0,
        box_y0=box_y0,
        box_x1=box_x1,
        box_y1=box_y1,
        add_box=add_box,
        direction=direction,
        speed=speed,
        track=track,
        cancel=cancel,
        files=files,
        export=export,
        model=model,
    )


def backend_words(backend: str) -> str:
    """What the page says runs the model: the backend's name, "auto" explained."""
    return "auto: each part on the fastest exact engine, measured on this CPU" if backend == "auto" else backend
