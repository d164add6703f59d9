"""Readers of the dataset layouts fine-tuning takes, each giving a list of `AnnotatedVideo` (an image is a
one-frame video), and the checks that turn bad files into `DataError` naming the file and the problem.

Layouts (`LAYOUTS`; `detect_layout` tells which one a folder or file is):

- "images": `images/<stem>.<ext>` with `masks/<stem>.png` (one instance-id PNG: 0 background, k object k)
  or `masks/<stem>/<obj_id>.png` (one PNG per object, nonzero = object);
- "coco": a COCO instance JSON ("images", "annotations"; RLE or polygons, crowd regions left out, an
  annotation without a mask, boxes only, a problem), image files relative to `image_dir` when given, else
  to the JSON's folder, its `images/` subfolder or, in COCO's own layout (`annotations/instances_train2017.json`
  beside `train2017/`), `../train2017/`;
- "hf": a Hugging Face `datasets.Dataset` (or a `save_to_disk` folder, or a Hub dataset id "owner/name"; a
  `DatasetDict`'s "train" split unless `split` says another) with an image column and a mask column (an
  instance-id map, or a list / (O, H, W) stack of per-object masks);
- "davis": `JPEGImages*/<seq>/*.jpg` with `Annotations*/<seq>/<frame>.png` palette PNGs (DAVIS, YouTube-VOS,
  MOSE) or `Annotations*/<seq>/<obj_id>/<frame>.png` per-object PNGs (SA-V val/test); DAVIS' `480p`
  resolution folder is entered; frames without an annotation are left out;
- "sav": SA-V training videos, `<video_id>_manual.json` (masklet[k][i]: COCO RLE of object i on annotated
  frame k, i.e. video frame k * ann_every, ann_every 4 for SA-V's 24 fps videos annotated at 6 fps, or
  24 // "fps" when the JSON has it) with frames in `<video_id>.mp4` or `<video_id>/<frame index>.jpg`;
  annotated frames where an object's entry is null are left out (Meta's `JSONRawDataset`);
- "masklets": this project's exports (the COCO RLE JSON `sam2-hf track` and the Space write, see
  `sam2_hf.media.writers`) as `<name>.json` or `<name>_masks.json` with the video next to it (`<name>.mp4`
  or any video suffix, or a `<name>/` frame folder) or at the JSON's "video.path".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..media.frames import ImageFolderFrames, VideoDecodeError, is_frame_file, open_frames
from ..media.rle import decode_segmentation
from ..processing.image_processing import to_rgb_uint8
from ..processing.validation import NotJsonError, read_json_file
from .transforms import resize_masks

LAYOUTS = ("images", "coco", "hf", "davis", "sav", "masklets")
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi")
SAV_ANN_EVERY = 4  # SA-V: 24 fps videos annotated at 6 fps
SAV_FRAMES_FPS = 24  # Meta's JSONRawDataset `frames_fps`
MASK_COLUMNS = ("masks", "mask", "label", "annotation", "segmentation")
HF_SAVED_FILES = ("state.json", "dataset_dict.json")  # what `save_to_disk` writes (a Dataset, a DatasetDict)
ID_MODES = ("P", "L", "1", "I", "I;16", "I;16L", "I;16B")  # single-channel PIL modes whose values are ids


class DataError(ValueError):
    """A problem with training data. `source`: the file, folder or dataset row; `reason`: what is wrong;
    `problems`: every problem found (one line each, `"<source>: <reason>"`) when several were gathered."""

    def __init__(self, source, reason: str, problems: list[str] | None = None):
        super().__init__(f"{source}: {reason}")
        self.source, self.reason = source, reason
        self.problems = problems if problems is not None else [str(self)]


class AnnotatedVideo(ABC):
    """One annotated video of a dataset, or one image (a video of one frame), read lazily.

    `source`: the file or folder it comes from (for messages); `frame_names`: its annotated frames in time
    order ("00005.jpg", "frame 12"), addressed by position 0..len-1; `is_image`: a single image.
    Readers raise `DataError` naming the file and the problem.
    """

    is_image = False

    def __init__(self, source, frame_names: list[str]):
        self.source = str(source)
        self.frame_names = frame_names
        self._visible: dict[tuple[int, int | None], list[int]] = {}

    def __len__(self) -> int:
        return len(self.frame_names)

    @abstractmethod
    def read_frames(self, positions: list[int]) -> list[np.ndarray]:
        """The frames at `positions`, each (H, W, 3) uint8 RGB."""

    @abstractmethod
    def read_masks(self, position: int) -> dict[int, np.ndarray]:
        """{object id: (H, W) bool mask} of the objects annotated on frame `position` (an object missing from
        the dict has no annotation there: it counts as absent)."""

    @abstractmethod
    def frame_file(self, position: int) -> str:
        """Where frame `position` is read from (for messages)."""

    @abstractmethod
    def mask_file(self, position: int) -> str:
        """Where the masks of frame `position` are read from (for messages)."""

    def visible_objects(self, position: int, image_size: int | None = None) -> list[int]:
        """Ids of the objects with a non-empty mask on frame `position`, in id order (cached); with
        `image_size` S, non-empty once resized to S x S for training (`transforms.resize_masks`)."""
        key = (position, image_size)
        if key not in self._visible:
            masks = self.read_masks(position)
            self._visible[key] = sorted(i for i, m in masks.items() if is_visible(m, image_size))
        return self._visible[key]

    def keep_every(self, rate: int) -> None:
        """Keep every `rate`-th annotated frame from the first (Meta's `sample_rate`)."""
        self.frame_names = self.frame_names[::rate]
        self._visible.clear()


def is_visible(mask: np.ndarray, image_size: int | None = None) -> bool:
    """Whether an (H, W) bool mask has a pixel, at its size or once resized to `image_size` S for training."""
    if image_size is None:
        return bool(mask.any())
    return bool(resize_masks(torch.from_numpy(mask), image_size).any())


# ---------------------------------------------------------------------------------------------- file reading


def read_json(path: Path):
    try:
        return read_json_file(path)
    except NotJsonError as error:
        raise DataError(path, error.reason) from None
    except OSError as error:
        raise DataError(path, f"not a readable file ({error.strerror})") from None


def read_image(path: Path) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB, EXIF orientation applied (as the frame readers do)."""
    try:
        with Image.open(path) as image:
            return to_rgb_uint8(ImageOps.exif_transpose(image))
    except (UnidentifiedImageError, OSError, SyntaxError, TypeError, ValueError) as error:
        raise DataError(path, f"not a readable image ({error})") from error


def read_id_map(path: Path) -> np.ndarray:
    """A mask PNG whose values are object ids (palette "P", "L", 1-bit or 16-bit) -> (H, W) int64.
    RGB masks are refused: their colours are not ids (a palette PNG saved as RGB has lost them)."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            values = np.array(image) if mode in ID_MODES else None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(path, f"not a readable mask image ({error})") from error
    if values is None:
        raise DataError(
            path,
            f"the mask is a {mode!r} image; masks must be single-channel PNGs (palette 'P', 'L' or 16-bit) whose "
            "values are object ids. A palette PNG converted to RGB has lost its ids: save the index image instead.",
        )
    return values.astype(np.int64)


def check_ids(ids: np.ndarray, path) -> None:
    """DataError if an instance-id map looks antialiased (soft edges): most of its ids have no pixel whose
    4 neighbours share its value, i.e. they only appear along the edges of other objects."""
    values = np.unique(ids[ids != 0])
    if len(values) < 2:
        return
    same = (ids[1:-1, 1:-1] == ids[:-2, 1:-1]) & (ids[1:-1, 1:-1] == ids[2:, 1:-1])
    same &= (ids[1:-1, 1:-1] == ids[1:-1, :-2]) & (ids[1:-1, 1:-1] == ids[1:-1, 2:])
    edge_only = np.setdiff1d(values, ids[1:-1, 1:-1][same])
    if len(edge_only) >= 2 and 2 * len(edge_only) >= len(values):
        raise DataError(
            path,
            f"the mask values are not instance ids: {len(edge_only)} of its {len(values)} values (e.g. "
            f"{edge_only[:5].tolist()}) occur only along edges, as antialiasing leaves them. Save masks without "
            "smoothing (nearest-neighbour), one integer id per object.",
        )


def read_instance_masks(path: Path) -> dict[int, np.ndarray]:
    """An instance-id PNG -> {id: (H, W) bool} for every nonzero id."""
    ids = read_id_map(path)
    check_ids(ids, path)
    return {int(v): ids == v for v in np.unique(ids) if v != 0}


def read_object_mask(path: Path) -> np.ndarray:
    """A one-object mask PNG (0 and one foreground value; gray stored as RGB is accepted) -> (H, W) bool."""
    try:
        with Image.open(path) as image:
            values = np.array(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(path, f"not a readable mask image ({error})") from error
    if values.ndim == 3:
        if values.shape[2] == 4 or not (values == values[..., :1]).all():
            raise DataError(path, "a per-object mask must be single-channel (0 = background); this one has colours")
        values = values[..., 0]
    foreground = np.unique(values[values != 0])
    if len(foreground) > 1:
        check_ids(values.astype(np.int64), path)
        raise DataError(
            path,
            f"a per-object mask must hold 0 and one foreground value, found {len(foreground)} values "
            f"{foreground[:5].tolist()}; several objects go into an instance-id PNG (masks/<stem>.png)",
        )
    return values != 0


# ------------------------------------------------------------------------------------------------- images


class ImageWithMasks(AnnotatedVideo):
    """One image of the "images" layout: an instance-id PNG (`masks` a file) or per-object PNGs (a folder)."""

    is_image = True

    def __init__(self, image: Path, masks: Path):
        super().__init__(image, [image.name])
        self.image, self.masks = image, masks

    def read_frames(self, positions):
        return [read_image(self.image) for _ in positions]

    def read_masks(self, position):
        if self.masks.is_file():
            return read_instance_masks(self.masks)
        files = sorted(p for p in self.masks.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
        ids = [int(p.stem) if p.stem.isdigit() else k + 1 for k, p in enumerate(files)]
        return {i: read_object_mask(p) for i, p in zip(ids, files)}

    def frame_file(self, position):
        return str(self.image)

    def mask_file(self, position):
        return str(self.masks)


def read_image_folder(root: Path, problems: list[str]) -> list[AnnotatedVideo]:
    images = {p.stem: p for p in sorted((root / "images").iterdir()) if is_frame_file(p)}
    masks = {p.name if p.is_dir() else p.stem: p for p in (root / "masks").iterdir() if _is_mask_entry(p)}
    items = []
    for stem, image in images.items():
        if stem in masks:
            items.append(ImageWithMasks(image, masks[stem]))
        else:
            problems.append(f"{image}: no mask (expected masks/{stem}.png or a folder masks/{stem}/ of object PNGs)")
    problems += [f"{masks[s]}: a mask without an image (no images/{s}.*)" for s in sorted(set(masks) - set(images))]
    return items


def _is_mask_entry(path: Path) -> bool:
    return not path.name.startswith(".") and (path.is_dir() or path.suffix.lower() == ".png")


# --------------------------------------------------------------------------------------------------- COCO


class CocoImage(AnnotatedVideo):
    """One image of a COCO instance JSON with its (non-crowd) annotations; object ids are annotation ids."""

    is_image = True

    def __init__(self, json_path: Path, image: Path, info: dict, annotations: list[dict]):
        super().__init__(image, [image.name])
        self.json_path, self.image, self.info, self.annotations = json_path, image, info, annotations

    def read_frames(self, positions):
        rgb = read_image(self.image)
        expected = (self.info.get("height"), self.info.get("width"))
        if None not in expected and rgb.shape[:2] != expected:
            raise DataError(
                self.image,
                f"the image is {rgb.shape[1]}x{rgb.shape[0]} but {self.json_path.name} gives "
                f"{expected[1]}x{expected[0]}",
            )
        return [rgb for _ in positions]

    def read_masks(self, position):
        height, width = self.info["height"], self.info["width"]
        masks = {}
        for ann in self.annotations:
            try:
                masks[int(ann["id"])] = decode_segmentation(ann.get("segmentation"), height, width)
            except ValueError as error:
                where = f"annotation {ann.get('id')} of image {self.info.get('id')}"
                raise DataError(self.json_path, f"{where}: {error}") from None
        return masks

    def frame_file(self, position):
        return str(self.image)

    def mask_file(self, position):
        return f"{self.json_path} (image id {self.info.get('id')})"


def read_coco(json_path: Path, problems: list[str], image_dir: Path | None = None) -> list[AnnotatedVideo]:
    """The images of a COCO instance JSON with their annotations. Each "file_name" is looked up in `image_dir`
    when given, else next to the JSON, in its `images/` folder, and (COCO's own layout,
    `annotations/instances_<split>.json` beside `<split>/`) in `../<split>/`."""
    data = read_json(json_path)
    if not isinstance(data, dict) or not {"images", "annotations"} <= set(data):
        raise DataError(json_path, "not a COCO instance file: it needs 'images' and 'annotations' lists")
    by_image: dict = {}
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        if not ann.get("segmentation"):  # [] or missing: a detection dataset's boxes-only annotation
            problems.append(f"{json_path}: annotation {ann.get('id')} of image {ann.get('image_id')} has no mask "
                            "('segmentation' is empty): an object without a mask cannot supervise mask training; "
                            "add its mask or leave the annotation out")  # fmt: skip
            continue
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    image_ids = {info.get("id") for info in data["images"]}
    for image_id in sorted(set(by_image) - image_ids, key=str):
        ids = [ann.get("id") for ann in by_image[image_id]]
        problems.append(f"{json_path}: annotations {ids[:3]}{' ...' * (len(ids) > 3)} name image_id {image_id!r}, "
                        "which is not in 'images'")  # fmt: skip
    items = []
    for info in data["images"]:
        if info.get("id") not in by_image:
            continue  # an image without objects has nothing to train on
        name = info.get("file_name", "")
        candidates = [image_dir / name] if image_dir is not None else [
            json_path.parent / name, json_path.parent / "images" / name,
            json_path.parent.parent / json_path.stem.removeprefix("instances_") / name,
        ]  # fmt: skip
        image = next((p for p in candidates if p.is_file()), None)
        if image is None:
            problems.append(f"{json_path}: image {info.get('id')} {name!r} not found (looked for {candidates[0]})")
        elif not {"height", "width"} <= set(info):
            problems.append(f"{json_path}: image {info.get('id')} {name!r} has no 'height'/'width'")
        else:
            items.append(CocoImage(json_path, image, info, by_image[info["id"]]))
    return items


# ------------------------------------------------------------------------------------ Hugging Face datasets


class DatasetRow(AnnotatedVideo):
    """One row of a `datasets.Dataset`: an image column and a mask column (instance-id map, or per-object masks)."""

    is_image = True

    def __init__(self, dataset, row: int, image_column: str, mask_column: str):
        super().__init__(f"dataset row {row}", [f"row {row}"])
        self.dataset, self.row, self.image_column, self.mask_column = dataset, row, image_column, mask_column

    def read_frames(self, positions):
        try:
            rgb = to_rgb_uint8(self.dataset[self.row][self.image_column])
        except (TypeError, ValueError) as error:
            raise DataError(self.frame_file(0), f"unreadable image ({error})") from error
        return [rgb for _ in positions]

    def read_masks(self, position):
        value = self.dataset[self.row][self.mask_column]
        if isinstance(value, Image.Image):
            if value.mode not in ID_MODES:
                raise DataError(self.mask_file(0), f"the mask is a {value.mode!r} image; masks must hold object ids")
            value = np.array(value)
        value = np.asarray(value)
        if value.ndim == 2:
            ids = value.astype(np.int64)
            check_ids(ids, self.mask_file(0))
            return {int(v): ids == v for v in np.unique(ids) if v != 0}
        if value.ndim == 3:  # per-object masks
            return {k + 1: np.asarray(m) != 0 for k, m in enumerate(value)}
        raise DataError(self.mask_file(0), f"a mask must be (H, W) ids or (O, H, W) masks, got shape {value.shape}")

    def frame_file(self, position):
        return f"dataset row {self.row} column {self.image_column!r}"

    def mask_file(self, position):
        return f"dataset row {self.row} column {self.mask_column!r}"


def read_hf_dataset(dataset, image_column: str = "image", mask_column: str | None = None) -> list[AnnotatedVideo]:
    columns = list(dataset.column_names)
    if mask_column is None:
        mask_column = next((c for c in MASK_COLUMNS if c in columns), None)
    if image_column not in columns or mask_column not in columns:
        raise DataError(
            "datasets.Dataset",
            f"needs an image column ({image_column!r}) and a mask column (one of {list(MASK_COLUMNS)} or "
            f"mask_column=...); it has {columns}",
        )
    return [DatasetRow(dataset, row, image_column, mask_column) for row in range(len(dataset))]


# ----------------------------------------------------------------------------------------- DAVIS / VOS / SA-V val


class FolderVideo(AnnotatedVideo):
    """A sequence of the "davis" layout: a frame folder and, per annotated frame, a palette PNG (`masks[k]` a
    path) or per-object PNGs (`masks[k]` {object id: path})."""

    def __init__(self, frames: ImageFolderFrames, positions: list[int], masks: list):
        super().__init__(frames.folder, [frames.files[i].name for i in positions])
        self.frames, self.positions, self.masks = frames, positions, masks

    def read_frames(self, positions):
        return [_read_frame(self.frames, self.positions[p]) for p in positions]

    def read_masks(self, position):
        entry = self.masks[position]
        if isinstance(entry, dict):
            return {obj_id: read_object_mask(path) for obj_id, path in entry.items()}
        return read_instance_masks(entry)

    def keep_every(self, rate):
        super().keep_every(rate)
        self.positions, self.masks = self.positions[::rate], self.masks[::rate]

    def frame_file(self, position):
        return str(self.frames.files[self.positions[position]])

    def mask_file(self, position):
        entry = self.masks[position]
        return str(next(iter(entry.values())).parent.parent) if isinstance(entry, dict) else str(entry)


def _read_frame(frames, index: int) -> np.ndarray:
    try:
        return frames.frame(index)
    except (VideoDecodeError, IndexError) as error:
        raise DataError(getattr(error, "source", frames), str(getattr(error, "reason", error))) from error


def open_frame_source(path: Path):
    """`open_frames(path)` (a video file or a frame folder), its errors as DataError naming the path."""
    try:
        return open_frames(path)
    except (ValueError, FileNotFoundError) as error:
        raise DataError(path, str(error)) from error


def _pick_folder(root: Path, prefix: str) -> Path | None:
    """`root/<prefix>*` (JPEGImages, JPEGImages_24fps, ...), entering DAVIS' `480p` resolution folder."""
    folder = next((p for p in sorted(root.iterdir()) if p.is_dir() and p.name.startswith(prefix)), None)
    if folder is not None and (folder / "480p").is_dir():
        folder = folder / "480p"
    return folder


def read_davis(root: Path, problems: list[str]) -> list[AnnotatedVideo]:
    images, annotations = _pick_folder(root, "JPEGImages"), _pick_folder(root, "Annotations")
    sequences = sorted(p.name for p in annotations.iterdir() if p.is_dir() and not p.name.startswith("."))
    problems += [
        f"{images / s}: frames without annotations (no {annotations / s})"
        for s in sorted(p.name for p in images.iterdir() if p.is_dir() and not (annotations / p.name).is_dir())
    ]
    videos = []
    for name in sequences:
        try:
            videos.append(_davis_sequence(images / name, annotations / name, problems))
        except DataError as error:
            problems.append(str(error))
    return [v for v in videos if v is not None]


def _davis_sequence(frames_dir: Path, masks_dir: Path, problems: list[str]) -> FolderVideo | None:
    if not frames_dir.is_dir():
        raise DataError(masks_dir, f"annotations without frames (no folder {frames_dir})")
    frames = open_frame_source(frames_dir)
    position_of = {p.stem: i for i, p in enumerate(frames.files)}
    object_dirs = sorted(p for p in masks_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if object_dirs:  # per-object PNGs: <seq>/<obj_id>/<frame>.png
        by_frame: dict = {}
        for k, obj_dir in enumerate(object_dirs):
            obj_id = int(obj_dir.name) if obj_dir.name.isdigit() else k + 1
            for png in obj_dir.glob("*.png"):
                by_frame.setdefault(png.stem, {})[obj_id] = png
    else:
        by_frame = {p.stem: p for p in masks_dir.glob("*.png") if not p.name.startswith(".")}
    missing = sorted(set(by_frame) - set(position_of))
    if missing:
        problems.append(f"{masks_dir}: annotations of missing frames {missing[:5]} (no such image in {frames_dir})")
    annotated = sorted((position_of[s], entry) for s, entry in by_frame.items() if s in position_of)
    if not annotated:
        raise DataError(masks_dir, f"no annotation PNG matches a frame of {frames_dir}")
    return FolderVideo(frames, [i for i, _ in annotated], [entry for _, entry in annotated])


# ------------------------------------------------------------------------------------- RLE JSON videos (SA-V, exports)


class RleVideo(AnnotatedVideo):
    """A video whose masks are COCO RLE in one JSON: SA-V's `<id>_manual.json` (`kind="sav"`) or this project's
    export (`kind="masklets"`). `indices`: the video frame index of each annotated frame (frames are read from
    `frames_path`, a video file or a frame folder, at `source_indices`)."""

    def __init__(self, json_path: Path, frames_path: Path, kind: str, indices: list[int], source_indices: list[int],
                 ann_every: int = 1):  # fmt: skip
        super().__init__(json_path, [f"frame {i}" for i in indices])
        self.json_path, self.frames_path, self.kind, self.ann_every = json_path, frames_path, kind, ann_every
        self.indices, self.source_indices = indices, source_indices

    def read_frames(self, positions):
        with open_frame_source(self.frames_path) as frames:
            return [_read_frame(frames, self.source_indices[p]) for p in positions]

    def read_masks(self, position):
        rles = rle_annotations(read_json(self.json_path), self.kind, self.ann_every).get(self.indices[position], {})
        masks = {}
        for obj_id, rle in rles.items():
            try:  # the RLE's size is checked against the frame's by `check_masks`
                masks[obj_id] = decode_segmentation(rle, *rle["size"])
            except (KeyError, TypeError, ValueError) as error:
                raise DataError(self.mask_file(position), f"object {obj_id}: unreadable RLE ({error})") from None
        return masks

    def keep_every(self, rate):
        super().keep_every(rate)
        self.indices, self.source_indices = self.indices[::rate], self.source_indices[::rate]

    def frame_file(self, position):
        return f"{self.frames_path} (frame {self.source_indices[position]})"

    def mask_file(self, position):
        return f"{self.json_path} (frame {self.indices[position]})"


def rle_annotations(data, kind: str, ann_every: int) -> dict[int, dict[int, dict]]:
    """{video frame index: {object id: RLE}} of an SA-V masklet JSON or of a project export."""
    if kind == "sav":
        ids = data.get("masklet_id") or list(range(len(data["masklet"][0]) if data["masklet"] else 0))
        return {
            k * ann_every: {int(i): rle for i, rle in zip(ids, frame)}
            for k, frame in enumerate(data["masklet"])
            if None not in frame  # Meta's JSONRawDataset drops frames with a missing entry (rm_unannotated)
        }
    by_frame: dict = {}
    for ann in data["annotations"]:
        by_frame.setdefault(int(ann["frame_index"]), {})[int(ann["object_id"])] = ann["segmentation"]
    return by_frame


def sav_ann_every(data: dict, default: int = SAV_ANN_EVERY) -> int:
    """Video frames per annotated frame: Meta's rule (24 fps frames, JSON "fps" annotations) or `default`."""
    fps = data.get("fps")
    if fps is None:
        return default
    return SAV_FRAMES_FPS // int(fps[0] if isinstance(fps, list) else fps)


def _frames_next_to(json_path: Path, name: str, extra: Path | None) -> Path | None:
    """The video `<name>.<video suffix>` or frame folder `<name>/` next to the JSON (or in `extra`)."""
    for folder in [json_path.parent] + ([extra] if extra is not None else []):
        candidates = [folder / f"{name}{suffix}" for suffix in VIDEO_SUFFIXES] + [folder / name]
        found = next((p for p in candidates if p.is_file() or p.is_dir()), None)
        if found is not None:
            return found
    return None


def read_rle_video(json_path: Path, kind: str, frames_dir: Path | None = None, ann_every: int | None = None):
    """One SA-V JSON or project export -> an RleVideo (DataError: unreadable JSON, no frames, missing frames)."""
    data = read_json(json_path)
    if kind == "sav":
        name = json_path.name[: -len("_manual.json")]
        ann_every = sav_ann_every(data, ann_every or SAV_ANN_EVERY)
        frames_path = _frames_next_to(json_path, name, frames_dir)
    else:
        name = json_path.stem[: -len("_masks")] if json_path.stem.endswith("_masks") else json_path.stem
        stated = data.get("video", {}).get("path")
        stated = None if stated is None else json_path.parent / stated
        frames_path = stated if stated is not None and stated.exists() else _frames_next_to(json_path, name, frames_dir)
        ann_every = 1
    if frames_path is None:
        raise DataError(json_path, f"no video for it: expected {name}.mp4 (or another video suffix) or folder {name}/")
    try:
        annotated = sorted(rle_annotations(data, kind, ann_every))
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise DataError(json_path, f"not a {kind} annotation file ({error!r})") from error
    source_indices = _source_indices(frames_path, annotated, by_stem=kind == "sav")
    missing = [i for i, s in zip(annotated, source_indices) if s is None]
    if missing:
        raise DataError(json_path, f"annotated frames {missing[:5]} are missing from {frames_path}")
    return RleVideo(json_path, frames_path, kind, annotated, source_indices, ann_every)


def _source_indices(frames_path: Path, indices: list[int], by_stem: bool) -> list[int | None]:
    """Where each video frame index is in the frame source: itself for a video file or (exports) a folder in
    order; for SA-V frame folders the file whose stem is the index (Meta extracts `<index>.jpg`)."""
    with open_frame_source(frames_path) as frames:
        if by_stem and isinstance(frames, ImageFolderFrames):
            position_of = {int(p.stem): k for k, p in enumerate(frames.files) if p.stem.isdigit()}
            return [position_of.get(i) for i in indices]
        return [i if i < len(frames) else None for i in indices]


def read_json_videos(root: Path, kind: str, problems: list[str], frames_dir=None, ann_every=None):
    pattern = "*_manual.json" if kind == "sav" else "*.json"
    files = sorted(root.rglob(pattern)) if root.is_dir() else [root]
    videos = []
    for path in files:
        try:
            videos.append(read_rle_video(path, kind, frames_dir, ann_every))
        except DataError as error:
            problems.append(str(error))
    return videos


# ------------------------------------------------------------------------------------------------- detection


def json_kind(path: Path) -> str | None:
    """ "coco", "sav" or "masklets" from a JSON file's keys; None for other JSON or a file that is not JSON."""
    try:
        return data_kind(read_json_file(path))
    except (OSError, ValueError):
        return None


def data_kind(data) -> str | None:
    """ "coco", "sav" or "masklets" from parsed JSON's keys; None for other JSON."""
    if not isinstance(data, dict):
        return None
    if {"images", "annotations"} <= set(data):
        return "coco"
    if "masklet" in data:
        return "sav"
    if {"video", "annotations"} <= set(data):
        return "masklets"
    return None


def detect_layout(source) -> str:
    """The layout (one of `LAYOUTS`) of a folder, a JSON file or a `datasets.Dataset`; DataError if none fits."""
    if not isinstance(source, (str, Path)):
        if hasattr(source, "column_names"):
            return "hf"
        raise DataError(type(source).__name__, "a dataset source is a folder, a JSON file or a datasets.Dataset")
    path = Path(source)
    if path.is_file():
        kind = data_kind(read_json(path)) if path.suffix.lower() == ".json" else None  # not JSON: DataError why
        if kind is None:
            raise DataError(path, "not a COCO instance JSON, an SA-V masklet JSON or a sam2-hf export JSON")
        return kind
    if not path.is_dir():
        raise DataError(path, "no such file or folder")
    names = {p.name for p in path.iterdir() if p.is_dir()}
    if {"images", "masks"} <= names:
        return "images"
    if any(n.startswith("JPEGImages") for n in names) and any(n.startswith("Annotations") for n in names):
        return "davis"
    if next(path.rglob("*_manual.json"), None) is not None:
        return "sav"
    kinds = {json_kind(p) for p in sorted(path.glob("*.json"))} - {None}
    if len(kinds) == 1:
        return kinds.pop()
    raise DataError(
        path,
        "no known dataset layout: expected images/ + masks/, JPEGImages/ + Annotations/ (DAVIS, YouTube-VOS, MOSE, "
        "SA-V val), SA-V <id>_manual.json files, sam2-hf export JSONs next to their videos, or a COCO JSON"
        + (f" (found JSON files of several kinds: {sorted(kinds)})" if kinds else ""),
    )


def is_hub_id(text) -> bool:
    """True for a Hub repo id ("owner/name", valid as huggingface_hub validates ids) that is not a local path."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(text, str) or text.count("/") != 1 or Path(text).exists():
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def open_hf_dataset(source, split: str | None = None):
    """`source` as a `datasets.Dataset` when it names one: a `save_to_disk` folder (`datasets.load_from_disk`)
    or a Hub dataset id "owner/name" that is no local path (`datasets.load_dataset`); else `source` itself.
    A `DatasetDict` gives its `split` ("train" unless given). Raises DataError naming the source when the
    dataset cannot be loaded or has no such split."""
    if not isinstance(source, (str, Path)):
        return source
    path = Path(source)
    saved = path.is_dir() and any((path / f).is_file() for f in HF_SAVED_FILES)
    if not saved and not is_hub_id(str(source)):
        return source
    import datasets

    try:
        dataset = datasets.load_from_disk(str(path)) if saved else datasets.load_dataset(str(source))
    except Exception as error:  # datasets raises many kinds (FileNotFoundError, DatasetNotFoundError, ConnectionError)
        where = "a datasets save_to_disk folder" if saved else "no local file or folder, nor a loadable Hub dataset"
        raise DataError(source, f"{where} ({type(error).__name__}: {error})") from None
    if isinstance(dataset, (datasets.DatasetDict, dict)):
        split = split or "train"
        if split not in dataset:
            raise DataError(source, f"no {split!r} split; it has {sorted(dataset)}")
        dataset = dataset[split]
    return dataset


def read_layout(source, layout: str | None = None, **options) -> tuple[list[AnnotatedVideo], list[str]]:
    """(videos, problems) of a dataset source, its layout detected unless given. `options`: `image_column`,
    `mask_column`, `split` ("hf": a `datasets.Dataset`, a `save_to_disk` folder or a Hub id, `open_hf_dataset`),
    `image_dir` ("coco"), `frames_dir`, `ann_every` ("sav", "masklets"). Structure only: files are paired and
    listed, JSON parsed; pixels are read later. A source that cannot be read at all raises DataError."""
    source = open_hf_dataset(source, options.get("split"))
    layout = layout or detect_layout(source)
    if layout not in LAYOUTS:
        raise DataError(source, f"unknown layout {layout!r}; expected one of {list(LAYOUTS)}")
    problems: list[str] = []
    if layout == "hf":
        return read_hf_dataset(source, options.get("image_column", "image"), options.get("mask_column")), problems
    path = Path(source)
    if layout == "images":
        videos = read_image_folder(path, problems)
    elif layout == "davis":
        videos = read_davis(path, problems)
    elif layout == "coco":
        files = [path] if path.is_file() else [p for p in sorted(path.glob("*.json")) if json_kind(p) == "coco"]
        image_dir = options.get("image_dir")
        videos = [v for f in files for v in read_coco(f, problems, image_dir and Path(image_dir))]
    else:
        frames_dir = options.get("frames_dir")
        videos = read_json_videos(path, layout, problems, frames_dir and Path(frames_dir), options.get("ann_every"))
    return videos, problems
