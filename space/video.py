"""Uploads become a folder of JPEG frames within the limits; the bundled example clips are made here.

A frame folder gives the predictor, the frame view and the exports instant random access to any
frame, whatever the codec of the upload. Videos over the limits are trimmed and/or downscaled,
each with a notice for the page; only unreadable, empty or absurdly large ones are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from sam2_hf.media.frames import VideoDecodeError, VideoFileFrames
from sam2_hf.media.synthetic import synthetic_clip
from sam2_hf.media.writers import DEFAULT_FPS

from . import UserError
from .config import Limits

JPEG_QUALITY = 92


@dataclass
class VideoInfo:
    name: str  # the uploaded file's name
    frames_dir: Path  # 00000.jpg, 00001.jpg, ...
    num_frames: int
    fps: float
    width: int
    height: int
    notices: list[str] = field(default_factory=list)  # what was trimmed / downscaled

    def describe(self) -> str:
        return (
            f"{self.name} · {self.num_frames} frames · {self.fps:.3g} fps · {self.num_frames / self.fps:.1f} s · "
            f"{self.width}×{self.height}"
        )


def read_video(path: str | Path, frames_dir: Path, limits: Limits, progress: Callable[[int, int], None]) -> VideoInfo:
    """Decode `path` into `frames_dir` as JPEGs, within `limits`; raises UserError with a readable reason."""
    path, name = Path(path), Path(path).name
    try:
        source = VideoFileFrames(path)
    except VideoDecodeError as e:
        raise _unreadable(name, e) from e
    with source:
        width, height = source.width, source.height
        if width * height > limits.max_input_pixels:
            raise UserError(
                f"{name} is {width}×{height}: videos up to {limits.max_input_pixels / 1e6:.0f} megapixels per frame "
                f"are accepted (they are downscaled to {limits.max_side} px)."
            )
        fps = source.fps or DEFAULT_FPS
        notices = [] if source.fps else [f"{name} has no frame rate; assuming {DEFAULT_FPS:g} fps."]
        keep = min(source.num_frames, limits.max_frames, max(1, int(limits.max_seconds * fps)))
        if keep < source.num_frames:
            notices.append(
                f"Trimmed to the first {keep / fps:.1f} s ({keep} of {source.num_frames} frames): the limit is "
                f"{limits.max_seconds:g} s and {limits.max_frames} frames."
            )
        scale = min(1.0, limits.max_side / max(width, height))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if scale < 1:
            notices.append(
                f"Downscaled from {width}×{height} to {size[0]}×{size[1]} (the limit is {limits.max_side} px)."
            )
        frames_dir.mkdir(parents=True, exist_ok=True)
        for index in range(keep):
            try:
                frame = Image.fromarray(source.frame(index))
            except VideoDecodeError as e:
                if index == 0:
                    raise _unreadable(name, e) from e
                notices.append(f"{name} is damaged after frame {index}; using the first {index} frames.")
                keep = index
                break
            if scale < 1:
                frame = frame.resize(size, Image.BILINEAR, reducing_gap=3.0)
            frame.save(frames_dir / f"{index:05d}.jpg", quality=JPEG_QUALITY)
            progress(index + 1, keep)
    return VideoInfo(name, frames_dir, keep, fps, size[0], size[1], notices)


def _unreadable(name: str, error: VideoDecodeError) -> UserError:
    if str(error).endswith(("has no frames", "has no video stream")):
        return UserError(f"{name} contains no video frames: please upload another video.")
    return UserError(f"{name} is not a video this app can read; upload an mp4, mov, webm, mkv or avi file.")


def write_mp4(frames: np.ndarray, path: Path, fps: float = 12) -> Path:
    """(T, H, W, 3) uint8 frames (even H and W) -> a browser-playable H.264 MP4."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def example_clips(folder: Path) -> list[Path]:
    """The bundled examples: generated moving shapes (one passes behind a bar, one leaves the frame and comes back)."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = {
        "shapes.mp4": dict(num_frames=24, height=360, width=480, seed=0),
        "shapes-long.mp4": dict(num_frames=72, height=360, width=640, seed=1),
    }
    return [write_mp4(synthetic_clip(**spec), folder / name) for name, spec in specs.items()]
