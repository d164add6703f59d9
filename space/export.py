"""Downloads: a zip of PNG masks per object per frame, the COCO RLE JSON and the overlay MP4, in one
pass over the video with the library's `ResultWriters`."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

from sam2_hf import Masklets
from sam2_hf.media.frames import ImageFolderFrames
from sam2_hf.media.writers import ResultWriters

from .render import color
from .video import VideoInfo


def write_exports(
    video: VideoInfo,
    masklets: Masklets,
    names: Mapping[int, str],
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write every frame (an empty mask where an object has no result) for the objects in `names`;
    -> [zip, json, mp4]. The zip holds masks/<obj_id>/<frame:05d>.png and objects.json (names, colours)."""
    stem = Path(video.name).stem or "video"
    paths = {
        "png": out_dir / "masks",
        "rle": out_dir / f"{stem}_masks.json",
        "overlay": out_dir / f"{stem}_overlay.mp4",
    }
    info = {
        "path": video.name,
        "height": video.height,
        "width": video.width,
        "fps": video.fps,
        "num_frames": video.num_frames,
    }
    frames = ImageFolderFrames(video.frames_dir)
    with ResultWriters(info, paths, colors={i: color(i) for i in names}) as writers:
        for t in range(video.num_frames):
            writers.write(t, {i: masklets.mask(t, i) for i in names}, frames.frame(t))
            if progress is not None:
                progress(t + 1, video.num_frames)
    objects = {i: {"name": name, "color": color(i)} for i, name in names.items()}
    (paths["png"] / "objects.json").write_text(json.dumps(objects, indent=1))
    archive = out_dir / f"{stem}_masks.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
        for file in sorted(paths["png"].rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(out_dir))
    shutil.rmtree(paths["png"])
    return [archive, paths["rle"], paths["overlay"]]
