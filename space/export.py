"""Downloads: a zip of PNG masks per object per frame, the COCO RLE JSON, the overlay MP4 (drawn with the
session's effects) and a zip of transparent RGBA frames for video editors (the objects, with their effects, on an
erased background), in one pass over the video with the library's `ResultWriters` and renderer."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from PIL import Image

from sam2_hf import Masklets
from sam2_hf.media.frames import ImageFolderFrames
from sam2_hf.media.render import Effects, render_effects
from sam2_hf.media.writers import ResultWriters

from .render import color
from .video import VideoInfo


def write_exports(
    video: VideoInfo,
    masklets: Masklets,
    names: Mapping[int, str],
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    effects: Effects | None = None,
) -> list[Path]:
    """Write every frame (an empty mask where an object has no result) for the objects in `names`;
    -> [zip, json, mp4, transparent zip]. The zip holds masks/<obj_id>/<frame:05d>.png and objects.json (names,
    colours); the MP4 is drawn with `effects`; the transparent zip holds frames/<frame:05d>.png, RGBA: `effects`
    with the background erased (alpha 0 outside the objects, or outside the cut-out ones)."""
    stem = Path(video.name).stem or "video"
    paths = {
        "png": out_dir / "masks",
        "rle": out_dir / f"{stem}_masks.json",
        "overlay": out_dir / f"{stem}_overlay.mp4",
    }
    layer = replace(effects or Effects(), background="erase", transparent=True)
    colors, rgba_dir = {i: color(i) for i in names}, out_dir / "frames"
    rgba_dir.mkdir(parents=True, exist_ok=True)
    info = {
        "path": video.name,
        "height": video.height,
        "width": video.width,
        "fps": video.fps,
        "num_frames": video.num_frames,
    }
    frames = ImageFolderFrames(video.frames_dir)
    with ResultWriters(info, paths, colors=colors, effects=effects) as writers:
        for t in range(video.num_frames):
            masks, frame = {i: masklets.mask(t, i) for i in names}, frames.frame(t)
            writers.write(t, masks, frame)
            Image.fromarray(render_effects(frame, masks, colors, layer)).save(rgba_dir / f"{t:05d}.png")
            if progress is not None:
                progress(t + 1, video.num_frames)
    objects = {i: {"name": name, "color": color(i)} for i, name in names.items()}
    (paths["png"] / "objects.json").write_text(json.dumps(objects, indent=1))
    archive = zip_folder(paths["png"], f"{stem}_masks.zip")
    return [archive, paths["rle"], paths["overlay"], zip_folder(rgba_dir, f"{stem}_transparent.zip")]


def zip_folder(folder: Path, name: str) -> Path:
    """Zip `folder`'s files (paths relative to its parent) into `folder.parent / name`, then delete the folder."""
    archive = folder.parent / name
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(folder.parent))
    shutil.rmtree(folder)
    return archive
