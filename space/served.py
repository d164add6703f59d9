"""The images the page shows, handed to Gradio as files of their own, so no response is ever cut.

Gradio 6 writes an image returned as an array to a cache file named by its content hash, rewriting that file
in place (`processing_utils.save_pil_to_cache`). Two sessions showing the same frame (many visitors on one
example video) then rewrote a file while it was being sent: the browser got "peer closed connection without
sending complete message body". Here every response gets a new file, written in full before Gradio sees its
name, in a folder inside Gradio's cache folder, which Gradio serves where it is (no copy, no rewrite).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from pathlib import Path

import numpy as np
from PIL import Image

EXTENSIONS = {"JPEG": "jpg", "PNG": "png"}
KEEP = 64  # files kept per session: a browser fetches an image after its response, so a few recent ones stay


class ServedImages:
    """One session's served images: `save` writes each to a new file in `folder`; only the newest `keep` stay."""

    def __init__(self, folder: Path, keep: int = KEEP):
        self.folder = folder  # inside Gradio's cache folder (`gradio.utils.get_upload_folder()`) to be served there
        self.keep = keep
        self._numbers = itertools.count()  # file names are never reused: a served file never changes
        self._written: deque[Path] = deque()  # oldest first
        self._lock = threading.Lock()  # several events of one session may answer at once

    def save(self, image: np.ndarray | None, kind: str, format: str) -> str | None:
        """Write `image` ((H, W, 3) uint8; None: nothing to show) as `format` ("JPEG" or "PNG") to a new file
        named after `kind` ("frame", "timeline"); -> its path, for a `gr.Image` value. Deletes the oldest files
        beyond `keep`."""
        if image is None:
            return None
        with self._lock:
            path = self.folder / f"{kind}-{next(self._numbers)}.{EXTENSIONS[format]}"
        self.folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path, format=format)
        with self._lock:
            self._written.append(path)
            old = [self._written.popleft() for _ in range(len(self._written) - self.keep)]
        for p in old:
            p.unlink(missing_ok=True)
        return str(path)
