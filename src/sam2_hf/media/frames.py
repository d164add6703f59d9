"""Frame sources for tracking: video files, image folders, arrays and pushed streams, read one frame at a time.

Every source gives frames as `(H, W, 3) uint8` RGB arrays through the same small interface
(`FrameSource`): `num_frames`, `height`, `width`, `fps`, `frame(index)`, iteration and `close()`.
`open_frames(source)` picks the right class for a path, a folder, a list/array or an existing source.
No source holds a whole video in memory: files are decoded lazily with PyAV behind a small LRU cache,
folder images are loaded on access, and streams keep only their last few frames.

Every source reports a frame it cannot give the same way: `VideoDecodeError` with the source, the
frame index and the reason, after which the frames before it remain readable.
"""

from __future__ import annotations

import itertools
import re
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..processing.image_processing import to_rgb_uint8

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class VideoDecodeError(ValueError):
    """A frame source could not give a frame.

    `source`: the file (a video, or the image file of a folder frame) or a description of an in-memory
    source ("frame array", "frame stream"); `frame_index`: the frame that failed (None: the source
    itself failed, e.g. an unreadable video file); `reason`: what went wrong. Frames before
    `frame_index` stay readable, so callers keep what they computed from them.
    """

    def __init__(self, source, reason: str, frame_index: int | None = None):
        where = "" if frame_index is None else f" (frame {frame_index})"
        super().__init__(f"{source}{where}: {reason}")
        self.source = source
        self.reason = reason
        self.frame_index = frame_index

    @property
    def path(self):
        """The failing file (alias of `source`)."""
        return self.source


def to_rgb(image, source="frame", frame_index: int | None = None) -> np.ndarray:
    """A frame in any container and mode `image_processing.to_rgb_pixels` takes -> (H, W, 3) uint8 RGB
    (floats in [0, 1] become round(x * 255)); a frame it refuses raises `VideoDecodeError` naming
    `source` and `frame_index`."""
    try:
        return to_rgb_uint8(image)
    except (TypeError, ValueError) as error:
        raise VideoDecodeError(source, str(error), frame_index) from error


class FrameSource(ABC):
    """Frames of one video. `num_frames` is None while unknown (a stream that has not ended);
    `height`/`width` are the displayed size; `fps` is None when the source has no frame rate."""

    num_frames: int | None
    height: int | None
    width: int | None
    fps: float | None

    @abstractmethod
    def frame(self, index: int) -> np.ndarray:
        """Frame `index` as an (H, W, 3) uint8 RGB array."""

    def __len__(self) -> int:
        if self.num_frames is None:
            raise TypeError(f"{type(self).__name__} has no length yet: the number of frames is unknown.")
        return self.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self.frame(index)

    def close(self) -> None:  # noqa: B027 (optional hook: most sources hold nothing to release)
        """Release files and buffers; a no-op for sources that hold none."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _check_index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"A frame index must be an int, got {type(index).__name__}.")
        if not 0 <= index < len(self):
            raise IndexError(f"Frame index {index} is out of range for a video of {len(self)} frames.")
        return int(index)


@dataclass
class _PacketIndex:
    """What demuxing (without decoding) tells about a video stream.

    `pts`: (T,) int64 presentation timestamps of the frames in display order (None when the packets
    carry no timestamps) and `index_of_pts` its inverse; `keyframes`: sorted indices of the frames
    decoding can start from (always including 0).
    """

    num_frames: int
    pts: np.ndarray | None
    index_of_pts: dict[int, int]
    keyframes: np.ndarray

    @classmethod
    def read(cls, path: Path, stream_index: int) -> _PacketIndex:
        """Demux `path` in a container of its own; a read error ends the index there (a truncated file)."""
        timestamps, is_keyframe = [], []
        with av.open(str(path)) as container:
            try:
                for packet in container.demux(container.streams[stream_index]):
                    if packet.size:  # the last, empty packets only flush the decoder
                        timestamps.append(packet.pts if packet.pts is not None else packet.dts)
                        is_keyframe.append(packet.is_keyframe)
            except av.FFmpegError:
                pass
        if None in timestamps:  # without timestamps decoding can only start at the first frame
            return cls(len(timestamps), None, {}, np.zeros(1, dtype=np.int64))
        order = np.argsort(timestamps, kind="stable")
        pts = np.asarray(timestamps, dtype=np.int64)[order]
        keyframes = np.union1d([0], np.flatnonzero(np.asarray(is_keyframe, dtype=bool)[order]))
        return cls(len(pts), pts, {p: i for i, p in enumerate(pts.tolist())}, keyframes)

    def keyframe_at_or_before(self, index: int) -> int:
        return int(self.keyframes[np.searchsorted(self.keyframes, index, side="right") - 1])


class VideoFileFrames(FrameSource):
    """Frames of a video file (any container and codec PyAV opens), decoded lazily.

    Frame `i` is the i-th decoded frame (in display order), also for variable frame rate;
    `timestamps` gives each frame's time in seconds. Reading frames in order decodes forward;
    any other access seeks to the keyframe at or before the target and decodes forward from there.
    The last `cache_size` decoded frames are kept, so stepping back and forth around a frame is cheap.
    Rotation metadata (the display matrix, read from the first frame) is applied in quarter turns,
    so frames come out upright and `height`/`width` are the displayed size.

    `num_frames` comes from the container metadata, or from demuxing when the container has none.
    Errors: `VideoDecodeError` when the file is unreadable, has no video stream or no frames, and,
    with `frame_index` set, when decoding fails midway (corrupt or truncated data): frames before
    `frame_index` remain readable.
    """

    def __init__(self, path: str | Path, cache_size: int = 4):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"No video file at {self.path}.")
        self._cache_size = max(1, cache_size)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._packet_index_cache: _PacketIndex | None = None
        self._open()
        try:
            rate = self._stream.average_rate or self._stream.guessed_rate
            self.fps = float(rate) if rate else None
            self.num_frames = self._stream.frames or self._packet_index().num_frames
            if self.num_frames == 0:
                raise VideoDecodeError(self.path, "has no frames")
            first = self._decode(0, keep=False)
            self._quarter_turns = round(first.rotation / 90) % 4
            self._remember(0, self._to_rgb(first))
            self.height, self.width = self._cache[0].shape[:2]
        except BaseException:
            self._container.close()
            raise

    def _open(self) -> None:
        """(Re)open the file, ready to decode from its first frame."""
        try:
            container = av.open(str(self.path))
        except av.FFmpegError as error:
            raise VideoDecodeError(self.path, f"not a readable video ({error})") from error
        if not container.streams.video:
            container.close()
            raise VideoDecodeError(self.path, "has no video stream")
        self._container, self._stream = container, container.streams.video[0]
        self._decoder = self._decoded_frames(by_pts=False)
        self._next_index = 0

    @property
    def timestamps(self) -> np.ndarray | None:
        """(T,) float64 presentation time of each frame in seconds (pts x time_base; demuxes the file
        on first use); None when the file's packets carry no timestamps."""
        pts = self._packet_index().pts
        return None if pts is None else pts * float(self._stream.time_base)

    def frame(self, index: int) -> np.ndarray:
        index = self._check_index(index)
        if index not in self._cache:
            self._decode(index, keep=True)
        self._cache.move_to_end(index)
        return self._cache[index].copy()

    def close(self) -> None:
        self._container.close()
        self._cache.clear()

    def _packet_index(self) -> _PacketIndex:
        if self._packet_index_cache is None:
            self._packet_index_cache = _PacketIndex.read(self.path, self._stream.index)
        return self._packet_index_cache

    def _decoded_frames(self, by_pts: bool) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decode from the container's position, yielding (frame index, frame). Indices count up from 0
        (decoding from the start), or, `by_pts` (after a seek), come from the packet index."""
        decoded = self._container.decode(self._stream)
        if not by_pts:
            yield from enumerate(decoded)
            return
        index_of_pts = self._packet_index().index_of_pts
        for av_frame in decoded:
            if av_frame.pts in index_of_pts:
                yield index_of_pts[av_frame.pts], av_frame

    def _decode(self, target: int, keep: bool) -> av.VideoFrame:
        """Decode up to frame `target` and return it; with `keep`, cache the RGB of the last
        `cache_size` frames decoded on the way (the target included)."""
        try:
            if self._can_decode_forward_to(target):
                av_frame = self._decode_forward_to(target, keep)
            else:
                av_frame = self._seek_and_decode_to(target, keep)
        except av.FFmpegError as error:
            self._decoder = None
            failed = self._next_index
            raise VideoDecodeError(self.path, f"decoding failed ({error})", failed) from error
        if av_frame is None:
            self._decoder = None
            failed = min(target, self._next_index)
            raise VideoDecodeError(
                self.path, f"frame {target} could not be decoded (the stream ends or skips it)", failed
            )
        return av_frame

    def _can_decode_forward_to(self, target: int) -> bool:
        if self._decoder is None or target < self._next_index:
            return False
        return target == self._next_index or self._packet_index().keyframe_at_or_before(target) <= self._next_index

    def _decode_forward_to(self, target: int, keep: bool) -> av.VideoFrame | None:
        """Decode on from the current position to frame `target`; None if the stream ends or passes it."""
        for index, av_frame in self._decoder:
            self._next_index = index + 1
            if keep and index > target - self._cache_size:
                self._remember(index, self._to_rgb(av_frame))
            if index >= target:
                return av_frame if index == target else None
        return None

    def _seek_and_decode_to(self, target: int, keep: bool) -> av.VideoFrame | None:
        """Seek to the keyframe at or before `target` and decode forward. Some containers (MPEG-TS) land
        after the keyframe asked for; then back off one keyframe at a time (keyframe 0 always works)."""
        index = self._packet_index()
        keyframe = index.keyframe_at_or_before(min(target, index.num_frames - 1))
        while True:
            self._seek_to_keyframe(keyframe)
            first = next(self._decoder, None)
            if keyframe == 0 or (first is not None and first[0] <= keyframe):
                self._decoder = itertools.chain([first] if first else [], self._decoder)
                return self._decode_forward_to(target, keep)
            keyframe = index.keyframe_at_or_before(keyframe - 1)

    def _seek_to_keyframe(self, keyframe: int) -> None:
        if keyframe == 0:  # start over: the only way in files without timestamps (raw .h264 is not seekable)
            self._container.close()
            self._open()
        else:
            self._container.seek(int(self._packet_index().pts[keyframe]), stream=self._stream)
            self._decoder = self._decoded_frames(by_pts=True)
            self._next_index = keyframe

    def _to_rgb(self, av_frame: av.VideoFrame) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(av_frame.to_ndarray(format="rgb24"), self._quarter_turns))

    def _remember(self, index: int, rgb: np.ndarray) -> None:
        self._cache[index] = rgb
        self._cache.move_to_end(index)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _natural_key(name: str) -> list:
    """Natural sort key: "frame_10.png" sorts after "frame_9.png": digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def is_frame_file(path: Path) -> bool:
    """A visible image file: hidden files (".DS_Store", macOS "._00000.jpg" companions, editor
    backups) and files without an image suffix are not frames."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


class ImageFolderFrames(FrameSource):
    """The images of a folder as frames, loaded on access (EXIF orientation applied).

    Frames are the visible files with an image suffix (`IMAGE_SUFFIXES`, see `is_frame_file`), ordered
    numerically when every file stem is an integer ("0.jpg", "00012.png"), otherwise by natural sort.
    The size is that of the first image. A frame that cannot be read (not an image, truncated, a
    16-bit or otherwise refused mode, another size than the first) raises `VideoDecodeError` naming
    the file and its frame index.
    """

    def __init__(self, folder: str | Path, fps: float | None = None):
        self.folder = Path(folder)
        files = [p for p in self.folder.iterdir() if is_frame_file(p)]
        if not files:
            raise ValueError(f"No {'/'.join(IMAGE_SUFFIXES)} images in {self.folder}.")
        numeric = all(p.stem.isdigit() for p in files)
        self.files = sorted(files, key=lambda p: (int(p.stem), p.name) if numeric else _natural_key(p.name))
        self.num_frames = len(self.files)
        self.fps = fps
        self.height, self.width = self._load(0).shape[:2]

    def frame(self, index: int) -> np.ndarray:
        index = self._check_index(index)
        rgb = self._load(index)
        if rgb.shape[:2] != (self.height, self.width):
            raise VideoDecodeError(
                self.files[index],
                f"the image is {rgb.shape[1]}x{rgb.shape[0]}, but the frames of {self.folder} are "
                f"{self.width}x{self.height} (the size of {self.files[0].name})",
                index,
            )
        return rgb

    def _load(self, index: int) -> np.ndarray:
        path = self.files[index]
        try:
            with Image.open(path) as image:
                return to_rgb(ImageOps.exif_transpose(image), path, index)
        except (UnidentifiedImageError, OSError, SyntaxError) as error:  # PIL's errors for bad / truncated files
            raise VideoDecodeError(path, f"not a readable image ({error})", index) from error


class ArrayFrames(FrameSource):
    """In-memory frames: a (T, H, W, 3) / (T, H, W) array, or a sequence of frames (numpy arrays, PIL
    images or (C, H, W) tensors), converted to uint8 RGB on access as `to_rgb` does. All frames must
    have the same size; a frame that cannot be converted raises `VideoDecodeError` with its index."""

    SOURCE = "frame array"

    def __init__(self, frames: np.ndarray | Sequence, fps: float | None = None):
        if len(frames) == 0:
            raise ValueError("No frames given.")
        if isinstance(frames, np.ndarray):
            one_image = frames.ndim == 3 and frames.shape[2] in (3, 4)  # (H, W, C), not (T, H, W)
            if frames.ndim not in (3, 4) or one_image:
                raise ValueError(
                    f"A frame array must be (T, H, W, 3) or (T, H, W), got {frames.shape}; for one image pass [image]."
                )
        self.frames = frames
        self.num_frames = len(frames)
        self.height, self.width = self.frame(0).shape[:2]  # fail now, not mid-tracking, on a bad first frame
        for index, frame in enumerate(frames):
            size = _frame_size(frame)
            if size is not None and size != (self.height, self.width):
                raise ValueError(
                    f"All frames must have the same size (H, W): frame {index} is {size}, frame 0 is "
                    f"{(self.height, self.width)}."
                )
        self.fps = fps

    def frame(self, index: int) -> np.ndarray:
        index = self._check_index(index)
        return to_rgb(self.frames[index], self.SOURCE, index)


def _frame_size(frame) -> tuple[int, int] | None:
    """(H, W) of an unconverted frame, read from its shape alone; None when its layout is unknown (the
    conversion names the problem when the frame is read)."""
    if isinstance(frame, Image.Image):
        return frame.size[::-1]
    if isinstance(frame, torch.Tensor) and frame.ndim in (2, 3):
        return tuple(frame.shape[-2:])
    if isinstance(frame, np.ndarray) and frame.ndim in (2, 3):
        return frame.shape[:2]
    return None


class StreamFrames(FrameSource):
    """Frames pushed one at a time (a camera loop, a generator); only the last `max_buffered` are kept.

    `push(frame)` returns the new frame's index; `end()` marks the end, after which `num_frames` is
    known. `frame(i)` serves buffered frames and raises IndexError for evicted or not yet pushed ones.
    Iterating yields the frames still buffered, oldest first.
    """

    SOURCE = "frame stream"

    def __init__(self, max_buffered: int = 8, fps: float | None = None):
        if max_buffered < 1:
            raise ValueError(f"max_buffered must be >= 1, got {max_buffered}.")
        self._buffer: deque[np.ndarray] = deque(maxlen=max_buffered)
        self._pushed = 0
        self.num_frames = None
        self.height = self.width = None
        self.fps = fps

    def push(self, frame) -> int:
        """Add the next frame (any container `to_rgb` takes); returns its index. A frame that cannot be
        converted or has another size raises `VideoDecodeError` and is not added (the stream goes on)."""
        if self.num_frames is not None:
            raise RuntimeError("Cannot push frames to a stream that has ended.")
        rgb = to_rgb(frame, self.SOURCE, self._pushed).copy()  # the caller may reuse its buffer for the next frame
        if self.height is None:
            self.height, self.width = rgb.shape[:2]
        elif rgb.shape[:2] != (self.height, self.width):
            raise VideoDecodeError(
                self.SOURCE,
                f"the frame is {rgb.shape[1]}x{rgb.shape[0]}, but the stream's frames are {self.width}x{self.height}",
                self._pushed,
            )
        self._buffer.append(rgb)
        self._pushed += 1
        return self._pushed - 1

    def end(self) -> None:
        """No more frames: `num_frames` becomes the number pushed."""
        self.num_frames = self._pushed

    def frame(self, index: int) -> np.ndarray:
        if self.num_frames is not None:
            self._check_index(index)
        elif not 0 <= index < self._pushed:
            raise IndexError(f"Frame {index} is not in the stream: {self._pushed} frames pushed so far.")
        oldest = self._pushed - len(self._buffer)
        if index < oldest:
            raise IndexError(
                f"Frame {index} was evicted: the stream keeps only its last {self._buffer.maxlen} frames "
                f"({oldest}..{self._pushed - 1})."
            )
        return self._buffer[index - oldest]

    def __iter__(self) -> Iterator[np.ndarray]:
        yield from list(self._buffer)

    def close(self) -> None:
        self._buffer.clear()


def open_frames(source) -> FrameSource:
    """A FrameSource for `source`: a video file path (str or Path), a folder of image frames, a
    (T, H, W, 3) / (T, H, W) array, a list/tuple of frames (arrays, PIL images or tensors), or a
    FrameSource (returned as is)."""
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            return ImageFolderFrames(path)
        if path.is_file():
            return VideoFileFrames(path)
        raise FileNotFoundError(f"No video file or frame folder at {path}.")
    if isinstance(source, (list, tuple, np.ndarray)):
        return ArrayFrames(source)
    raise TypeError(
        f"Cannot read frames from a {type(source).__name__}: pass a video path, a frame folder, "
        "an array/list of frames or a FrameSource."
    )
