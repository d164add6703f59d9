"""Writers for tracking results: per-object PNG masks, a COCO-style RLE JSON, and an overlay MP4.

Results arrive one frame at a time as `(frame_index, {obj_id: mask}, frame)`, each mask an (H, W) bool
(or 0/1) array and `frame` the (H, W, 3) uint8 image (only the overlay needs it). Every writer has
that one `write` signature; `FORMATS` is the registry of them (one place to add a format), and
`ResultWriters` fans the stream out to any subset of it.

RLE JSON format (written by `RleJsonWriter`, read back by `load_rle_json`), COCO-like:

    {
      "video": {"path": "in.mp4", "height": H, "width": W, "fps": 30.0, "num_frames": T},
      "objects": [1, 2],
      "frames": [0, 1, 2],
      "annotations": [
        {"frame_index": 0, "object_id": 1,
         "segmentation": {"size": [H, W], "counts": "<COCO compressed RLE>"},
         "area": 1234, "bbox": [x, y, w, h]},
        ...
      ]
    }

- "video": what was passed as `video_info`; "path" is optional, "fps" may be null (image folders),
  and a null "num_frames" (a stream) is replaced by the highest written frame index + 1.
- "objects": object ids in order of first appearance.
- "frames": every written frame's index, in write order, also a frame written without any object.
- "annotations": one per object per written frame, in write order; an empty mask still gets one,
  with area 0 and bbox [0, 0, 0, 0]. "segmentation" is COCO compressed RLE (column-major) that
  `pycocotools.mask.decode` and `decode_rle` turn back into the (H, W) mask; "bbox" is in pixels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from .render import PALETTE, Effects, render_effects
from .rle import as_mask, encode_rle

DEFAULT_FPS = 30.0  # overlay frame rate for sources without one (image folders, arrays)
VIDEO_INFO_KEYS = ("height", "width", "fps", "num_frames")


def _plain_id(obj_id):
    """numpy scalars -> Python scalars, so ids serialize to JSON and compare equal to plain ints."""
    return obj_id.item() if isinstance(obj_id, np.generic) else obj_id


class _Writer:
    def write(self, frame_index: int, masks: Mapping, frame: np.ndarray | None = None) -> None:
        """Write frame `frame_index`'s masks {obj_id: (H, W) mask}; `frame` (H, W, 3) uint8 is the image."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class PngMaskWriter(_Writer):
    """One single-channel PNG (0 / 255, mode "L") per object per frame: `out_dir/<obj_id>/<frame:05d>.png`."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def write(self, frame_index: int, masks: Mapping, frame: np.ndarray | None = None) -> None:
        for obj_id, mask in masks.items():
            folder = self.out_dir / str(_plain_id(obj_id))
            folder.mkdir(exist_ok=True)
            Image.fromarray(as_mask(mask).astype(np.uint8) * 255).save(folder / f"{frame_index:05d}.png")

    def close(self) -> None:
        """Nothing is buffered: every PNG is written by `write`."""


class RleJsonWriter(_Writer):
    """Collects masks as COCO RLE strings (no dense masks are kept) and writes one JSON on `close()`.

    `video_info`: {"height", "width", "fps", "num_frames"} and optionally "path"; format in the module docstring.
    """

    def __init__(self, path: str | Path, video_info: Mapping):
        missing = [key for key in VIDEO_INFO_KEYS if key not in video_info]
        if missing:
            raise ValueError(f"video_info lacks {missing}; it needs {list(VIDEO_INFO_KEYS)} (and optionally 'path').")
        self.path = Path(path)
        fps, num_frames = video_info["fps"], video_info["num_frames"]
        self.video = {  # plain JSON types (sources may hand out numpy ints or Fractions)
            **({"path": str(video_info["path"])} if "path" in video_info else {}),
            "height": int(video_info["height"]),
            "width": int(video_info["width"]),
            "fps": None if fps is None else float(fps),
            "num_frames": None if num_frames is None else int(num_frames),
        }
        self.objects: dict = {}  # ids in order of first appearance (a dict keeps insertion order)
        self.frames: list[int] = []
        self.annotations: list[dict] = []

    def write(self, frame_index: int, masks: Mapping, frame: np.ndarray | None = None) -> None:
        shape = (self.video["height"], self.video["width"])
        rles = {_plain_id(obj_id): encode_rle(as_mask(mask, shape)) for obj_id, mask in masks.items()}
        self.frames.append(int(frame_index))  # after every mask was checked: a refused frame is not recorded
        for obj_id, rle in rles.items():
            self.objects.setdefault(obj_id, None)
            self.annotations.append({
                "frame_index": int(frame_index),
                "object_id": obj_id,
                "segmentation": rle,
                "area": int(mask_utils.area(rle)),
                "bbox": [int(v) for v in mask_utils.toBbox(rle)],
            })  # fmt: skip

    def close(self) -> None:
        video = dict(self.video)
        if video["num_frames"] is None:
            video["num_frames"] = max(self.frames, default=-1) + 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        result = {"video": video, "objects": list(self.objects), "frames": self.frames, "annotations": self.annotations}
        self.path.write_text(json.dumps(result))


class OverlayVideoWriter(_Writer):
    """An H.264 MP4 of the frames with each object's mask blended in its colour and outlined, or drawn with
    `effects` (`render_effects`; an MP4 has no alpha: erased pixels are black).

    Browser-playable: libx264, yuv420p, moov atom first (`+faststart`). yuv420p needs an even size,
    so an odd width/height is padded by one pixel that repeats the last column/row.
    Colours: `colors` {obj_id: (r, g, b)} where given, else `PALETTE` in order of the objects' first
    appearance, so an object keeps its colour for the whole video. Each `write` adds the next frame.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        width: int,
        height: int,
        colors: Mapping | None = None,
        effects: Effects | None = None,
    ):
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}.")
        self.path = Path(path)
        self.effects = replace(effects or Effects(), transparent=False)
        self.width, self.height = width, height
        self.colors = {_plain_id(k): tuple(v) for k, v in (colors or {}).items()}
        self._palette_used = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), "w", format="mp4", options={"movflags": "+faststart"})
        self._stream = self._container.add_stream("libx264", rate=Fraction(float(fps)).limit_denominator(1001))
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"

    def color(self, obj_id) -> tuple[int, int, int]:
        """The object's RGB colour, assigned from the palette on first use."""
        obj_id = _plain_id(obj_id)
        if obj_id not in self.colors:
            self.colors[obj_id] = PALETTE[self._palette_used % len(PALETTE)]
            self._palette_used += 1
        return self.colors[obj_id]

    def write(self, frame_index: int, masks: Mapping, frame: np.ndarray | None = None) -> None:
        """Append `frame` (H, W, 3) uint8 with `masks` {obj_id: (H, W) mask} drawn over it (frames are
        appended in call order; `frame_index` is not used)."""
        if frame is None:
            raise ValueError("The overlay video needs the frame: pass frame=(H, W, 3) uint8.")
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"Frames must be ({self.height}, {self.width}, 3) uint8, got {frame.shape} {frame.dtype}.")
        masks = {obj_id: as_mask(mask, (self.height, self.width)) for obj_id, mask in masks.items()}
        blended = render_effects(frame, masks, {obj_id: self.color(obj_id) for obj_id in masks}, self.effects)
        image = np.pad(blended, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file (safe to call twice)."""
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None


@dataclass(frozen=True)
class OutputFormat:
    """One kind of result file: its name, the file / folder name it gets in an output folder, and how
    to open its writer for a video (`video_info` as `ResultWriters` takes it, optional colours and effects)."""

    name: str
    default_name: str
    description: str
    open: Callable[[Path, Mapping, Mapping | None, Effects | None], _Writer]


FORMATS = {
    f.name: f
    for f in (
        OutputFormat("png", "masks", "per-object PNG masks", lambda path, info, colors, effects: PngMaskWriter(path)),
        OutputFormat(
            "rle", "masks.json", "the COCO RLE JSON", lambda path, info, colors, effects: RleJsonWriter(path, info)
        ),
        OutputFormat(
            "overlay",
            "overlay.mp4",
            "the overlay MP4",
            lambda path, info, colors, effects: OverlayVideoWriter(
                path, info["fps"] or DEFAULT_FPS, info["width"], info["height"], colors, effects
            ),
        ),
    )
}


def check_formats(formats) -> None:
    """ValueError unless `formats` names at least one format, all of them in `FORMATS`."""
    if not formats:
        raise ValueError(f"No output format chosen: give some of {list(FORMATS)}.")
    unknown = [name for name in formats if name not in FORMATS]
    if unknown:
        raise ValueError(f"Unknown output formats {unknown}; expected some of {list(FORMATS)}.")


def output_paths(out_dir: str | Path, formats=tuple(FORMATS)) -> dict[str, Path]:
    """{format name: out_dir / its default name} for the chosen formats (at least one)."""
    check_formats(formats)
    return {name: Path(out_dir) / FORMATS[name].default_name for name in formats}


def existing_outputs(out_dir: str | Path, formats=tuple(FORMATS)) -> list[Path]:
    """The chosen formats' paths in `out_dir` that already exist (results of an earlier run)."""
    return [path for path in output_paths(out_dir, formats).values() if path.exists()]


class ResultWriters(_Writer):
    """Writes one stream of per-frame results to several outputs: `outputs` {format name: path} with
    names from `FORMATS` ("png": a folder, "rle": a JSON file, "overlay": an MP4).

    `video_info`: {"height", "width", "fps", "num_frames"} (+ optional "path") of the tracked video;
    the overlay uses its fps, or `DEFAULT_FPS` when that is None, and draws with `colors` and `effects`
    (`OverlayVideoWriter`). Closing closes every writer.
    """

    def __init__(
        self,
        video_info: Mapping,
        outputs: Mapping[str, str | Path],
        colors: Mapping | None = None,
        effects: Effects | None = None,
    ):
        if not outputs:
            raise ValueError(f"No output requested: give outputs {{name: path}} with names from {list(FORMATS)}.")
        check_formats(list(outputs))  # before any file is opened
        self.writers: list[_Writer] = []
        try:  # the overlay (an open file) comes last in FORMATS
            for name in FORMATS:
                if name in outputs:
                    self.writers.append(FORMATS[name].open(Path(outputs[name]), video_info, colors, effects))
        except BaseException:
            self.close()
            raise

    def write(self, frame_index: int, masks: Mapping, frame: np.ndarray | None = None) -> None:
        """Write frame `frame_index`'s masks {obj_id: (H, W) mask} to every output; `frame` (H, W, 3) uint8
        is needed for the overlay video, whose frames are appended in call order."""
        for writer in self.writers:
            writer.write(frame_index, masks, frame)

    def close(self) -> None:
        with ExitStack() as stack:  # closes every writer even if one of them raises
            for writer in self.writers:
                stack.callback(writer.close)
