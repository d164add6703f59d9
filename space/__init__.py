"""The Hugging Face Space of sam2-hf: upload a video, click objects, track them, download the masklets.

Modules: `config` (flags, limits, speed presets), `gpu` (ZeroGPU's `spaces.GPU`, or nothing),
`models` (loading and resizing models), `engine` (everything that runs the model), `video`
(reading uploads, example clips), `render` (frames with masks and clicks), `export` (PNG zip,
RLE JSON, overlay MP4), `session` (one user's state and actions), `layout` (the page's components),
`handlers` (what each event does, over `session`), `ui` (the Gradio app: the events wired to the handlers),
`served` (the images each response carries, a new file each), `deploy` (assemble and upload the Space),
`benchmark` (time per frame of each speed preset), `loadtest` (many visitors at once through gradio_client).
"""

from . import gpu  # noqa: F401  (first: ZeroGPU's `spaces` must be imported before torch)


class UserError(Exception):
    """A problem the person using the app can fix (no video yet, a bad file, ...); shown as a warning."""
