"""Video object segmentation datasets on disk, as Meta's `tools/vos_inference.py` reads and writes them.

Two layouts of masks, both one folder per sequence (video) beside `JPEGImages/<seq>/<frame>.jpg`:

- palette PNGs (DAVIS 2017, YouTube-VOS, MOSE, LVOS): `Annotations/<seq>/<frame>.png`, one indexed
  ("P" mode) image per frame whose pixel values are object ids (0 background; 255 is DAVIS's void
  label, read as background as the DAVIS toolkit does);
- per-object PNGs (SA-V): `Annotations/<seq>/<obj_id:03d>/<frame>.png`, one image per object per
  frame, non-zero = the object.

Masks are handled as {obj_id (int): (H, W) bool}; frame names are the image file stems ("00000").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from ..media.frames import is_frame_file

VOID_LABEL = 255  # DAVIS: pixels left out of the annotation


def _voc_palette() -> bytes:
    """The PASCAL VOC colour map (the DAVIS 2017 palette, `DAVIS_PALETTE` in Meta's `tools/vos_inference.py`):
    256 RGB triples, colour i spreading the bits of i over the high bits of R, G and B."""
    palette = bytearray()
    for index in range(256):
        rgb, bits = [0, 0, 0], index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << shift
            bits >>= 3
        palette += bytes(rgb)
    return bytes(palette)


DAVIS_PALETTE = _voc_palette()  # 768 bytes: the palette written when the input masks carry none


def load_ann_png(path) -> tuple[np.ndarray, list | None]:
    """A mask PNG -> ((H, W) uint8 values, its palette as PIL's flat list or None). Meta's `load_ann_png`.
    Raises FileNotFoundError for a missing file, ValueError naming the file for one PIL cannot read."""
    try:
        with Image.open(path) as image:
            return np.array(image).astype(np.uint8), image.getpalette()
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ValueError(f"{path}: not a readable mask PNG ({error})") from error


def save_ann_png(path, mask: np.ndarray, palette) -> None:
    """Write an (H, W) uint8 mask as an indexed PNG with `palette` (Meta's `save_ann_png`)."""
    image = Image.fromarray(np.asarray(mask, dtype=np.uint8))
    image.putpalette(palette)
    image.save(path)


def get_per_obj_mask(mask: np.ndarray) -> dict[int, np.ndarray]:
    """(H, W) object-id values -> {obj_id: (H, W) bool} for each id present (Meta's `get_per_obj_mask`), with 0
    and DAVIS's void label 255 left out (Meta's tool would track 255 as one more object)."""
    ids = [int(i) for i in np.unique(mask) if 0 < i < VOID_LABEL]
    return {obj_id: mask == obj_id for obj_id in ids}


def put_per_obj_mask(per_obj_mask: Mapping[int, np.ndarray], height: int, width: int) -> np.ndarray:
    """{obj_id: (H, W) bool} -> (H, W) uint8 object ids; where masks overlap the smallest id wins (Meta's
    `put_per_obj_mask` paints the ids in decreasing order)."""
    mask = np.zeros((height, width), dtype=np.uint8)
    for obj_id in sorted(per_obj_mask, reverse=True):
        mask[np.asarray(per_obj_mask[obj_id], dtype=bool).reshape(height, width)] = obj_id
    return mask


def is_per_object_layout(sequence_dir) -> bool:
    """True when the sequence's masks are per-object sub-folders (SA-V), False for palette PNGs; decided
    as Meta's SA-V evaluator does (`scan_vid_folder`: any entry that is not a .png means sub-folders)."""
    return not all(name.endswith(".png") for name in _visible(Path(sequence_dir)))


def object_folders(sequence_dir) -> dict[int, Path]:
    """{obj_id: folder} of a per-object (SA-V) sequence folder; folder names are integers ("001").
    Raises ValueError naming a sub-folder whose name is not an integer."""
    folders = {}
    for path in sorted(Path(sequence_dir).iterdir()):
        if path.is_dir() and not path.name.startswith("."):
            if not path.name.isdigit():
                raise ValueError(f"{path}: per-object mask folders must be named by object id (e.g. 001).")
            folders[int(path.name)] = path
    return folders


def read_frame_masks(sequence_dir, frame_name: str, per_obj_png_file: bool, allow_missing: bool = False):
    """One frame's masks of one sequence (Meta's `load_masks_from_dir`): ({obj_id: (H, W) bool}, palette).

    sequence_dir: `Annotations/<seq>`; per_obj_png_file: the SA-V layout. Missing files raise
    FileNotFoundError, or are skipped (an empty dict / that object left out) with `allow_missing`.
    """
    sequence_dir = Path(sequence_dir)
    if not per_obj_png_file:
        path = sequence_dir / f"{frame_name}.png"
        if allow_missing and not path.exists():
            return {}, None
        mask, palette = load_ann_png(path)
        return get_per_obj_mask(mask), palette
    masks, palette = {}, None
    for obj_id, folder in object_folders(sequence_dir).items():
        path = folder / f"{frame_name}.png"
        if allow_missing and not path.exists():
            continue
        mask, palette = load_ann_png(path)
        masks[obj_id] = mask > 0
    return masks, palette


def save_frame_masks(
    sequence_dir, frame_name, masks: Mapping[int, np.ndarray], height, width, per_obj_png_file, palette
):
    """Write one frame's {obj_id: (H, W) bool} (Meta's `save_masks_to_dir`): one palette PNG of object ids
    `<sequence_dir>/<frame_name>.png`, or with `per_obj_png_file` `<sequence_dir>/<obj_id:03d>/<frame_name>.png`
    holding 0 / 1 with the same palette."""
    sequence_dir = Path(sequence_dir)
    sequence_dir.mkdir(parents=True, exist_ok=True)
    if not per_obj_png_file:
        save_ann_png(sequence_dir / f"{frame_name}.png", put_per_obj_mask(masks, height, width), palette)
        return
    for obj_id, mask in masks.items():
        folder = sequence_dir / f"{obj_id:03d}"
        folder.mkdir(exist_ok=True)
        save_ann_png(folder / f"{frame_name}.png", np.asarray(mask).reshape(height, width).astype(np.uint8), palette)


def check_vos_folders(base_video_dir, input_mask_dir, names, per_obj_png_file: bool) -> None:
    """Raises ValueError listing every problem of the folders before any inference: a dataset root given
    where its JPEGImages/ or Annotations/ folder belongs, a missing frame or mask folder, masks in the other
    layout than `per_obj_png_file` says, a mask folder with neither PNGs nor per-object sub-folders, or mask
    PNGs named after no frame (the scorers would blame the predictions for them)."""
    base_video_dir, input_mask_dir = Path(base_video_dir), Path(input_mask_dir)
    problems = [
        problem
        for folder, option, sub in ((base_video_dir, "--base-video-dir", "JPEGImages"),
                                    (input_mask_dir, "--input-mask-dir", "Annotations"))
        if (problem := dataset_root_problem(folder, option, sub))
    ]  # fmt: skip
    for name in names if not problems else ():
        frames, masks = base_video_dir / name, input_mask_dir / name
        if not frames.is_dir():
            problems.append(f"no frame folder {frames}")
        if not masks.is_dir():
            problems.append(f"no mask folder {masks}")
        elif per_obj_png_file and not object_folders(masks):
            found = "palette PNGs (DAVIS layout): leave out --per-obj-png-file" if _pngs(masks) else "no object folders"
            problems.append(f"{masks} holds {found}")
        elif not per_obj_png_file and not _pngs(masks):
            found = "no PNG masks"
            if _has_subfolders(masks):
                found = "per-object folders (SA-V layout): add --per-obj-png-file"
            problems.append(f"{masks} holds {found}")
        elif frames.is_dir() and (unmatched := _masks_without_frames(frames, masks, per_obj_png_file)):
            more = f" and {len(unmatched) - 3} more" if len(unmatched) > 3 else ""
            problems.append(f"{masks} has masks of frames that {frames} lacks: {', '.join(unmatched[:3])}{more}")
    if problems:
        shown = problems[:10] + [f"... and {len(problems) - 10} more"] * (len(problems) > 10)
        raise ValueError("The dataset folders do not fit the VOS layout:\n  " + "\n  ".join(shown))


def dataset_root_problem(folder, option: str, sub: str) -> str | None:
    """What is wrong when `folder` is a dataset root holding `sub` (JPEGImages/, Annotations/) where the
    folder `sub` belongs (given as `option`); None otherwise."""
    folder = Path(folder)
    return f"{folder} looks like the dataset root: give {option} {folder / sub}" if (folder / sub).is_dir() else None


def _masks_without_frames(frames: Path, masks: Path, per_obj_png_file: bool) -> list[str]:
    """The mask PNGs (relative to `masks`) named after no image of `frames`."""
    stems = {p.stem for p in frames.iterdir() if is_frame_file(p)}
    pngs = masks.glob("*/*.png") if per_obj_png_file else masks.glob("*.png")
    return sorted(str(p.relative_to(masks)) for p in pngs if p.stem not in stems)


def _pngs(folder: Path) -> bool:
    return any(name.endswith(".png") for name in _visible(folder))


def _has_subfolders(folder: Path) -> bool:
    return any((folder / name).is_dir() for name in _visible(folder))


def list_sequences(root, video_list_file=None) -> list[str]:
    """Sequence names: the lines of `video_list_file` (e.g. DAVIS's ImageSets/2017/val.txt), or else every
    visible sub-folder of `root`, sorted. Raises FileNotFoundError for a missing root or list file."""
    if video_list_file is not None:
        return [line.strip() for line in Path(video_list_file).read_text().splitlines() if line.strip()]
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"No sequence folder at {root}.")
    return sorted(name for name in _visible(root) if (root / name).is_dir())


def _visible(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if not p.name.startswith(".")]


def read_video_masks(sequence_dir, frame_names, per_obj_png_file: bool, height: int, width: int) -> dict:
    """Dense ground truth of one sequence: {obj_id: (T, H, W) bool} over `frame_names` (every object seen
    on any frame; a frame without a PNG, or without the object, is empty for it). Raises ValueError naming
    a PNG whose size is not (height, width)."""
    video: dict[int, np.ndarray] = {}
    for frame_idx, name in enumerate(frame_names):
        masks, _ = read_frame_masks(sequence_dir, name, per_obj_png_file, allow_missing=True)
        for obj_id, mask in masks.items():
            if mask.shape != (height, width):
                raise ValueError(
                    f"{sequence_dir}: the mask of frame {name} is {mask.shape}, the video {(height, width)}."
                )
            video.setdefault(obj_id, np.zeros((len(frame_names), height, width), dtype=bool))[frame_idx] = mask
    return dict(sorted(video.items()))
