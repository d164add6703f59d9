"""Fine-tuning data: datasets of clips drawn as Meta's trainer draws them, their collation into Meta's batch
layout, a checker that lists every problem of a dataset, and a generated dataset for demos and tests.

    dataset = build_dataset("my_videos/", image_size=1024, num_frames=8, max_num_objects=3, seed=0)
    batch = collate_clips([dataset[0], dataset[1]])   # pixel_values (T, B, 3, S, S), masks, obj_to_frame_idx
    problems = check_dataset("my_videos/")            # [] when every file reads and pairs up

Layouts (images folder, COCO JSON, `datasets.Dataset`, DAVIS / YouTube-VOS / MOSE, SA-V, sam2-hf exports) are
described in `sam2_hf.training.data_formats`. Sampling follows Meta's `training/dataset/vos_sampler.py`
`RandomUniformSampler` and `vos_dataset.VOSDataset`: every `sample_rate`-th annotated frame is kept, a clip is
`num_frames` consecutive ones from a random start (reversed with `reverse_time_prob`), redrawn until an object
is visible on its first frame, and up to `max_num_objects` of those visible objects are drawn; an object
missing from a later frame gets an empty mask there. Images are clips of one frame.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..media.render import PALETTE
from ..media.rle import encode_rle
from ..media.synthetic import save_jpeg_folder, textured_scene
from ..media.writers import RleJsonWriter
from .data_formats import LAYOUTS, SAV_ANN_EVERY, AnnotatedVideo, DataError, is_visible, read_layout
from .transforms import ClipTransforms

MAX_RETRIES = 1000  # Meta's RandomUniformSampler: clip draws before giving up on a video
CHECK_CHUNK = 16  # frames read at once by check_dataset

__all__ = [
    "LAYOUTS",
    "ClipDataset",
    "ClipSample",
    "DataError",
    "MixedClipDataset",
    "build_dataset",
    "check_dataset",
    "collate_clips",
    "make_synthetic_dataset",
]


@dataclass
class ClipSample:
    """One training sample: a clip of T frames (T = 1 for an image) with O objects.

    pixel_values: (T, 3, S, S) float32, ImageNet-normalized (`image_processing.IMAGENET_MEAN` / `_STD`).
    masks: (T, O, S, S) bool; an object may be empty on frames after the first (it vanished).
    object_ids: the O object ids (as in the annotation files); frame_names: the T frames' names;
    source: the file or folder the clip comes from (for messages).
    """

    pixel_values: torch.Tensor
    masks: torch.Tensor
    object_ids: list[int]
    frame_names: list[str]
    source: str


class ClipDataset(torch.utils.data.Dataset):
    """Map-style dataset of `ClipSample`: item `idx` is a clip drawn from video (or image) `idx`.

    Each item is drawn with its own seed: from (`seed`, epoch, idx) when `seed` is given, so items do not
    depend on workers or order, and `set_epoch(epoch)` (called by accelerate's data loaders) draws new clips
    each epoch; from torch's global generator when `seed` is None (seeded per worker by the DataLoader,
    itself seeded by transformers' Trainer). Reading raises `DataError` naming the file and the problem.
    """

    def __init__(self, videos: list[AnnotatedVideo], transforms: ClipTransforms, num_frames: int = 8,
                 max_num_objects: int = 3, reverse_time_prob: float = 0.0, seed: int | None = None):  # fmt: skip
        self.videos, self.transforms = videos, transforms
        self.num_frames, self.max_num_objects, self.reverse_time_prob = num_frames, max_num_objects, reverse_time_prob
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return len(self.videos)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        """Items 0 .. len - 1, once each: `__getitem__` also takes larger indices (a sampler's later passes), so
        Python's default iteration, until IndexError, would never end."""
        return (self[idx] for idx in range(len(self)))

    def __getitem__(self, idx: int) -> ClipSample:
        """Item `idx` (`idx` >= len: item `idx % len` drawn anew, as a sampler's later pass over the data in the
        same epoch reads it)."""
        video = self.videos[idx % len(self.videos)]
        seed = self._sample_seed(idx)
        generator = torch.Generator().manual_seed(seed)
        positions, object_ids = sample_clip(
            video, self.num_frames, self.max_num_objects, self.reverse_time_prob, generator, self.transforms.image_size
        )
        frames, masks = read_clip(video, positions, object_ids)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            pixel_values, masks = self.transforms(frames, masks)
        kept = masks[0].flatten(1).any(1)
        if not kept.any():
            raise DataError(
                video.mask_file(positions[0]),
                f"objects {object_ids} vanish when the frame is resized to {self.transforms.image_size} pixels",
            )
        return ClipSample(
            pixel_values=pixel_values,
            masks=masks[:, kept],
            object_ids=[i for i, k in zip(object_ids, kept.tolist()) if k],
            frame_names=[video.frame_names[p] for p in positions],
            source=video.source,
        )

    def _sample_seed(self, idx: int) -> int:
        if self.seed is None:
            return int(torch.randint(2**62, ()).item())
        return int(np.random.SeedSequence([self.seed, self.epoch, idx]).generate_state(1, np.uint64)[0] >> 2)


def sample_clip(video: AnnotatedVideo, num_frames: int, max_num_objects: int, reverse_time_prob: float,
                generator: torch.Generator, image_size: int | None = None) -> tuple[list[int], list[int]]:  # fmt: skip
    """Meta's `RandomUniformSampler.sample`: (frame positions, object ids). A random start and optional time
    reversal, redrawn (up to MAX_RETRIES) until an object is visible on the clip's first frame (at the training
    size `image_size`, when given: Meta's sampler looks at the source size, and an object that vanishes in the
    resize would start the clip empty); then up to `max_num_objects` of the visible objects in random order.
    One-frame clips for images. DataError when no draw has a visible object."""
    length = 1 if video.is_image else num_frames
    for _ in range(MAX_RETRIES):
        start = int(torch.randint(len(video) - length + 1, (), generator=generator))
        positions = list(range(start, start + length))
        if float(torch.rand((), generator=generator)) < reverse_time_prob:
            positions.reverse()
        visible = video.visible_objects(positions[0], image_size)
        if visible:
            break
    else:
        if video.is_image:
            empty = sorted(video.read_masks(0))
            at_size = f" or vanish at {image_size}x{image_size} pixels" if image_size else ""
            reason = f"objects {empty} have an empty mask{at_size} (nothing to prompt from)" if empty else "no object"
            raise DataError(video.mask_file(0), reason)
        raise DataError(video.source, f"no object is visible on the first frame of any clip of {length} frames")
    order = torch.randperm(len(visible), generator=generator)[:max_num_objects]
    return positions, [visible[i] for i in order.tolist()]


def read_clip(video: AnnotatedVideo, positions: list[int], object_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (T, H, W, 3) uint8 and masks (T, O, H, W) bool of `object_ids` (empty where an object is not
    annotated). DataError: frames of different sizes, a mask of another size than its frame, an empty mask
    of an image's object."""
    frames = video.read_frames(positions)
    height, width = frames[0].shape[:2]
    masks = np.zeros((len(positions), len(object_ids), height, width), dtype=bool)
    for t, (position, frame) in enumerate(zip(positions, frames)):
        if frame.shape[:2] != (height, width):
            raise DataError(video.frame_file(position), f"the frame is {_size(frame)}, the clip's first is "
                            f"{width}x{height} ({video.frame_file(positions[0])})")  # fmt: skip
        annotated = video.read_masks(position)
        check_masks(video, position, annotated, (height, width))
        for k, obj_id in enumerate(object_ids):
            if obj_id in annotated:
                masks[t, k] = annotated[obj_id]
    return torch.from_numpy(np.stack(frames)), torch.from_numpy(masks)


def check_masks(video: AnnotatedVideo, position: int, masks: dict, frame_size: tuple[int, int]) -> None:
    """DataError if a mask's size is not the frame's, or (images) an object's mask is empty."""
    for obj_id, mask in masks.items():
        if mask.shape != frame_size:
            raise DataError(
                video.mask_file(position),
                f"the mask of object {obj_id} is {_size(mask)} but the image {video.frame_file(position)} is "
                f"{frame_size[1]}x{frame_size[0]}",
            )
    empty = [obj_id for obj_id, mask in masks.items() if not mask.any()]
    if video.is_image and empty:
        raise DataError(video.mask_file(position), f"objects {empty} have an empty mask (nothing to prompt from)")


def _size(array: np.ndarray) -> str:
    return f"{array.shape[1]}x{array.shape[0]}"


def build_dataset(
    source,
    image_size: int = 1024,
    num_frames: int = 8,
    max_num_objects: int = 3,
    augment: bool = True,
    seed: int | None = None,
    *,
    layout: str | None = None,
    sample_rate: int = 1,
    reverse_time_prob: float = 0.0,
    transforms: ClipTransforms | None = None,
    check: bool = True,
    **options,
) -> ClipDataset | MixedClipDataset:
    """A `ClipDataset` of `ClipSample` from a folder, a JSON file or a `datasets.Dataset`; from a list of
    several sources, a `MixedClipDataset` of them.

    source: the dataset (layouts in `data_formats`; detected unless `layout` names one of `LAYOUTS`), or a list
        of them, each a source or a (source, weight) pair (weights: every source's or none; `MixedClipDataset`).
    image_size: side S of the square model input, pixels. num_frames: frames per video clip (images: 1).
    max_num_objects: objects per clip at most. augment: Meta's fine-tuning augmentations (`ClipTransforms`);
    False: resize + normalize only. seed: per-item determinism (see `ClipDataset`); None: torch's generator.
    sample_rate: keep every n-th annotated frame (Meta's `sample_rate`, a stride). reverse_time_prob: chance
    of a reversed clip (Meta's default 0). transforms: a `ClipTransforms` replacing the default one.
    check: read every frame and mask now and refuse the dataset on any problem `check_dataset` lists, so that
    training never stops on one mid-run; False (a large dataset already checked): only the structure is
    checked, and a bad file raises DataError when its item is read.
    options: `image_column` / `mask_column` / `split` ("hf"), `image_dir` ("coco"), `frames_dir` / `ann_every`
    ("sav", "masklets"); see `data_formats.read_layout`.

    Raises DataError (with `.problems`, every one found, of every source) when the layout is unknown, files
    do not pair up, JSON cannot be read, a video has fewer annotated frames than `num_frames`, nothing is left
    (empty), or (`check`) any pixel-level problem `check_dataset` lists; ValueError for bad weights.
    """
    if isinstance(source, list):
        sources, weights = _split_weights(source)
        settings = dict(layout=layout, sample_rate=sample_rate, reverse_time_prob=reverse_time_prob,
                        transforms=transforms, check=check, **options)  # fmt: skip
        datasets, problems = [], []
        for item in sources:
            try:
                datasets.append(build_dataset(item, image_size, num_frames, max_num_objects, augment, seed, **settings))
            except DataError as error:
                problems += error.problems
        if problems:
            raise DataError(
                ", ".join(map(str, sources)), f"{len(problems)} problem(s):\n" + "\n".join(problems), problems
            )
        return MixedClipDataset(datasets, weights, seed) if len(datasets) > 1 else datasets[0]
    transforms = transforms or ClipTransforms(image_size=image_size, augment=augment)
    videos, problems = _read_videos(source, layout, num_frames, sample_rate, **options)
    if check and not problems:
        problems = [p for video in videos for p in _video_problems(video, num_frames, transforms.image_size)]
    if problems:
        raise DataError(source, f"{len(problems)} problem(s):\n" + "\n".join(problems), problems)
    return ClipDataset(videos, transforms, num_frames, max_num_objects, reverse_time_prob, seed)


def _read_videos(source, layout, num_frames, sample_rate, **options) -> tuple[list[AnnotatedVideo], list[str]]:
    """The source's videos (stride applied) and the structural problems, short videos and emptiness included."""
    videos, problems = read_layout(source, layout, **options)
    for video in videos:
        video.keep_every(sample_rate)
        if not video.is_image and len(video) < num_frames:
            problems.append(
                f"{video.source}: {len(video)} annotated frames (after sample_rate {sample_rate}), fewer than "
                f"num_frames={num_frames}; lower num_frames or leave this video out"
            )
    if not videos and not problems:
        problems.append(f"{source}: empty dataset (no annotated image or video found)")
    return videos, problems


def parse_data_source(text: str):
    """A `--data` value -> the source, or (source, weight) for `PATH:WEIGHT` (a positive number after the last
    colon of a text that is not itself an existing path). Raises ValueError for a weight that is not > 0."""
    path, colon, weight = text.rpartition(":")
    if not colon or Path(text).exists():
        return text
    try:
        value = float(weight)
    except ValueError:
        return text  # a colon that is part of the name
    if not value > 0:
        raise ValueError(f"--data {text}: the sampling weight after ':' must be a positive number, not {weight!r}")
    return path, value


def _split_weights(items: list) -> tuple[list, list[float] | None]:
    """[source or (source, weight)] -> (sources, weights or None). ValueError when only some have a weight."""
    pairs = [item if isinstance(item, tuple) else (item, None) for item in items]
    weights = [w for _, w in pairs]
    if not pairs:
        raise ValueError("An empty list of data sources.")
    if None in weights and any(w is not None for w in weights):
        raise ValueError(
            "Give a sampling weight to every data source or to none (e.g. --data imgs/:1 --data vids/:3); "
            f"got {[str(s) if w is None else f'{s}:{w:g}' for s, w in pairs]}"
        )
    return [s for s, _ in pairs], None if None in weights else [float(w) for w in weights]


class MixedClipDataset(torch.utils.data.Dataset):
    """Several `ClipDataset`s (e.g. images and videos) trained on together, as Meta's `TorchTrainMixedDataset`.

    Item `i` is item `i` of the sources laid end to end. Clips of one batch must share their frame count, so
    batches come from one source each: `sampler(batch_size)` orders the items that way. Each batch's source is
    drawn with probability `weights[k] / sum(weights)` (Meta's `dataset_prob`), or, without weights, in
    proportion to the source's number of batches (Meta's default: every item about once per epoch). A source
    that runs out starts a new shuffled pass, so the weights are the shares of batches over the whole run
    (Meta's `MixedDataLoader` instead stops drawing from an exhausted source, so over a full epoch every
    source is used exactly once whatever its probability). An item met again in an epoch is drawn anew.

    datasets: the sources (`ClipDataset`). weights: one positive number per source, or None.
    seed: seeds the batch order with the epoch (None: torch's generator draws a seed).
    """

    def __init__(self, datasets: list[ClipDataset], weights: list[float] | None = None, seed: int | None = None):
        if weights is not None and (len(weights) != len(datasets) or min(weights) <= 0):
            raise ValueError(f"weights must be {len(datasets)} positive numbers, one per dataset; got {weights}")
        self.datasets, self.weights, self.seed, self.epoch = datasets, weights, seed, 0
        self.offsets = np.cumsum([0] + [len(d) for d in datasets]).tolist()

    def __len__(self) -> int:
        return self.offsets[-1]

    __iter__ = ClipDataset.__iter__  # items 0 .. len - 1 once each (larger indices are later passes)

    def __getitem__(self, idx: int) -> ClipSample:
        """Item `idx` of the sources laid end to end; `idx` = `n * len + i` (pass n, from `sampler`) reads item
        `i` drawn anew for that pass."""
        repeat, idx = divmod(idx, len(self))
        k = int(np.searchsorted(self.offsets, idx, side="right")) - 1
        return self.datasets[k][idx - self.offsets[k] + repeat * len(self.datasets[k])]

    @property
    def videos(self) -> list[AnnotatedVideo]:
        return [video for dataset in self.datasets for video in dataset.videos]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for dataset in self.datasets:
            dataset.set_epoch(epoch)

    def sampler(self, batch_size: int) -> MixedBatchOrder:
        """The item order for a `DataLoader` of `batch_size` (batches of one source each)."""
        return MixedBatchOrder(self, batch_size)


class MixedBatchOrder(torch.utils.data.Sampler):
    """Indices of a `MixedClipDataset`, each run of `batch_size` from one source (class docstring of
    `MixedClipDataset`). An epoch is as many batches as the sources hold (last partial batches counted),
    always full: `len` = batches x `batch_size`. The order depends on (seed, epoch) only, so a resumed run
    that skips the epoch's first batches meets the same ones."""

    def __init__(self, dataset: MixedClipDataset, batch_size: int):
        self.dataset, self.batch_size, self.epoch = dataset, batch_size, 0
        self.seed = dataset.seed if dataset.seed is not None else int(torch.randint(2**62, ()).item())
        self.batches = [-(-len(d) // batch_size) for d in dataset.datasets]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return sum(self.batches) * self.batch_size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        shares = torch.tensor(self.dataset.weights or self.batches, dtype=torch.float64)
        passes = [_shuffled_passes(len(d), generator) for d in self.dataset.datasets]
        for k in torch.multinomial(shares, sum(self.batches), replacement=True, generator=generator).tolist():
            for _ in range(self.batch_size):
                repeat, i = next(passes[k])
                yield repeat * len(self.dataset) + self.dataset.offsets[k] + i


def _shuffled_passes(length: int, generator: torch.Generator):
    """(pass, index): 0..length-1 in a new random order on every pass, endlessly."""
    for repeat in itertools.count():
        yield from ((repeat, i) for i in torch.randperm(length, generator=generator).tolist())


def collate_clips(samples: list[ClipSample]) -> dict[str, torch.Tensor]:
    """Clips -> Meta's `BatchedVideoDatapoint` layout (`training.utils.data_utils.collate_fn`) as plain tensors:

    pixel_values (T, B, 3, S, S) float32; masks (T, O_total, S, S) bool, objects in clip order then object
    order; obj_to_frame_idx (T, O_total, 2) int64 = [frame index t, clip index b] of each object (Meta builds
    the same values as int32). Raises ValueError for an empty batch or clips of different T or S.
    """
    if not samples:
        raise ValueError("collate_clips got no samples.")
    shapes = {tuple(s.pixel_values.shape) for s in samples}
    if len(shapes) > 1:
        sources = ", ".join(f"{s.source} {tuple(s.pixel_values.shape)}" for s in samples)
        raise ValueError(f"Clips in a batch must have the same frames and size (T, 3, S, S); got {sources}.")
    num_frames = samples[0].pixel_values.shape[0]
    clip_index = torch.cat([torch.full((s.masks.shape[1],), b, dtype=torch.long) for b, s in enumerate(samples)])
    frame_index = torch.arange(num_frames)[:, None].expand(-1, len(clip_index))
    return {
        "pixel_values": torch.stack([s.pixel_values for s in samples], dim=1),
        "masks": torch.cat([s.masks for s in samples], dim=1),
        "obj_to_frame_idx": torch.stack([frame_index, clip_index.expand(num_frames, -1)], dim=-1),
    }


def check_dataset(source, num_frames: int = 8, image_size: int = 1024, *, layout: str | None = None,
                  sample_rate: int = 1, **options) -> list[str]:  # fmt: skip
    """Every problem of a dataset, one line each ("<file>: <problem>"); [] when it is clean.

    Reads every annotated frame and mask (arguments as `build_dataset`; `image_size` S the training input
    side): the structural problems (files that do not pair up, unreadable JSON, COCO annotations without a
    mask, short videos), plus unreadable files, frame / mask size mismatches, mask values that are not
    instance ids, RLE that does not cover its image, empty object masks on images, objects that vanish when
    resized to S x S (on an image; on every frame of a video), objects empty on every frame of a video, and
    videos where no clip of `num_frames` frames starts with a visible object.
    """
    if isinstance(source, list):
        return [p for item in _split_weights(source)[0] for p in check_dataset(
            item, num_frames, image_size, layout=layout, sample_rate=sample_rate, **options)]  # fmt: skip
    try:
        videos, problems = _read_videos(source, layout, num_frames, sample_rate, **options)
    except DataError as error:
        return list(error.problems)
    for video in videos:
        problems += _video_problems(video, num_frames, image_size)
    return problems


def _video_problems(video: AnnotatedVideo, num_frames: int, image_size: int) -> list[str]:
    """The pixel-level problems of one video or image (`check_dataset`)."""
    problems, seen, seen_at_size = [], {}, {}
    for chunk in range(0, len(video), CHECK_CHUNK):
        positions = list(range(chunk, min(chunk + CHECK_CHUNK, len(video))))
        for position, frame in zip(positions, _frames_or_none(video, positions, problems)):
            try:
                masks = video.read_masks(position)
                if frame is not None:
                    check_masks(video, position, masks, frame.shape[:2])
            except DataError as error:
                problems.append(str(error))
                continue
            for obj_id, mask in masks.items():
                seen[obj_id] = seen.get(obj_id, False) or is_visible(mask)
                seen_at_size[obj_id] = seen_at_size.get(obj_id, False) or is_visible(mask, image_size)
    vanish = sorted(i for i in seen if seen[i] and not seen_at_size[i])
    too_small = f"vanish when resized to {image_size}x{image_size} for training (too small; a larger size keeps them)"
    if video.is_image:
        if not seen and not problems:  # e.g. an all-zero instance-id PNG
            problems.append(f"{video.mask_file(0)}: no object annotated (nothing to prompt from)")
        if vanish:
            problems.append(f"{video.mask_file(0)}: objects {vanish} {too_small}")
        return problems
    never = sorted(i for i, visible in seen.items() if not visible)
    if never:
        problems.append(f"{video.source}: objects {never} are empty on every frame (they can never be prompted)")
    if vanish:
        problems.append(f"{video.source}: objects {vanish} {too_small} on every frame")
    starts = range(len(video) - num_frames + 1)  # empty for a short video (reported already)
    if (
        any(seen_at_size.values())
        and len(starts)
        and not any(video.visible_objects(p, image_size) for p in starts if _masks_readable(video, p))
    ):
        problems.append(f"{video.source}: no clip of {num_frames} frames starts on a frame with an object visible at "
                        f"{image_size}x{image_size}")  # fmt: skip
    return problems


def _frames_or_none(video: AnnotatedVideo, positions: list[int], problems: list[str]) -> list:
    """The frames at `positions`, read together; when that fails, one by one (None for each unreadable one,
    its problem recorded)."""
    try:
        return video.read_frames(positions)
    except DataError:
        frames = []
        for position in positions:
            try:
                frames.append(video.read_frames([position])[0])
            except DataError as error:
                problems.append(str(error))
                frames.append(None)
        return frames


def _masks_readable(video: AnnotatedVideo, position: int) -> bool:
    try:
        video.visible_objects(position)
        return True
    except DataError:
        return False


# ------------------------------------------------------------------------------------------ synthetic datasets


def make_synthetic_dataset(
    out_dir,
    kind: str = "images",
    num_items: int = 6,
    num_frames: int = 8,
    height: int = 128,
    width: int = 128,
    num_targets: int = 2,
    num_distractors: int = 3,
    seed: int = 0,
    per_object_masks: bool = False,
) -> Path:
    """Write a generated dataset (`media.synthetic.textured_scene`: striped targets among checkered look-alikes;
    only targets are annotated) in one of the layouts, and return the path to give `build_dataset`.

    kind: "images" (images/ + masks/<stem>.png palette instance PNGs, or with `per_object_masks`
    masks/<stem>/<obj>.png), "coco" (images/ + annotations.json, RLE), "davis" (JPEGImages/ + Annotations/
    palette PNGs), "sav" (<id>/ frame folders + <id>_manual.json, annotated every 4th frame of num_frames * 4),
    "masklets" (<name>/ frame folders + <name>_masks.json as sam2-hf exports it). num_items images or videos of
    `num_frames` frames (images: 1), height x width pixels; item i uses seed `seed + i`.
    """
    writers = {"images": _write_images, "coco": _write_coco, "davis": _write_davis, "sav": _write_sav,
               "masklets": _write_masklets}  # fmt: skip
    if kind not in writers:
        raise ValueError(f"Unknown synthetic dataset kind {kind!r}; expected one of {list(writers)}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    length = 1 if kind in ("images", "coco") else num_frames * (SAV_ANN_EVERY if kind == "sav" else 1)
    scenes = {f"{i:04d}": textured_scene(length, height, width, num_targets, num_distractors, seed + i)
              for i in range(num_items)}  # fmt: skip
    writers[kind](out_dir, scenes, num_targets=num_targets, per_object_masks=per_object_masks)
    return out_dir


def save_palette_png(ids: np.ndarray, path: Path) -> None:
    """(H, W) uint8 object ids -> a palette ("P") PNG, as DAVIS stores annotations (colours from `PALETTE`)."""
    image = Image.fromarray(ids.astype(np.uint8))
    image.putpalette([0, 0, 0, *[c for color in PALETTE for c in color]])
    image.save(path)


def _objects(ids: np.ndarray) -> list[int]:
    return [int(v) for v in np.unique(ids[ids != 0])]


def _write_images(out_dir: Path, scenes: dict, per_object_masks: bool, **_) -> None:
    (out_dir / "images").mkdir(exist_ok=True)
    (out_dir / "masks").mkdir(exist_ok=True)
    for name, (frames, instances) in scenes.items():
        Image.fromarray(frames[0]).save(out_dir / "images" / f"{name}.jpg", quality=95)
        if not per_object_masks:
            save_palette_png(instances[0], out_dir / "masks" / f"{name}.png")
            continue
        (out_dir / "masks" / name).mkdir(exist_ok=True)
        for obj_id in _objects(instances[0]):
            mask = (instances[0] == obj_id).astype(np.uint8) * 255
            Image.fromarray(mask).save(out_dir / "masks" / name / f"{obj_id}.png")


def _write_coco(out_dir: Path, scenes: dict, **_) -> None:
    (out_dir / "images").mkdir(exist_ok=True)
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "target"}]}
    for image_id, (name, (frames, instances)) in enumerate(scenes.items(), start=1):
        Image.fromarray(frames[0]).save(out_dir / "images" / f"{name}.jpg", quality=95)
        height, width = instances.shape[1:]
        coco["images"].append({"id": image_id, "file_name": f"{name}.jpg", "height": height, "width": width})
        for obj_id in _objects(instances[0]):
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "segmentation": encode_rle(instances[0] == obj_id),
            })  # fmt: skip
    (out_dir / "annotations.json").write_text(json.dumps(coco))


def _write_davis(out_dir: Path, scenes: dict, **_) -> None:
    for name, (frames, instances) in scenes.items():
        save_jpeg_folder(frames, out_dir / "JPEGImages" / name)
        (out_dir / "Annotations" / name).mkdir(parents=True, exist_ok=True)
        for t, ids in enumerate(instances):
            save_palette_png(ids, out_dir / "Annotations" / name / f"{t:05d}.png")


def _write_sav(out_dir: Path, scenes: dict, num_targets: int, **_) -> None:
    for name, (frames, instances) in scenes.items():
        save_jpeg_folder(frames, out_dir / name)
        masklet = [[encode_rle(ids == k) for k in range(1, num_targets + 1)] for ids in instances[::SAV_ANN_EVERY]]
        data = {"video_id": name, "video_frame_count": len(frames), "video_height": frames.shape[1],
                "video_width": frames.shape[2], "masklet": masklet, "masklet_id": list(range(1, num_targets + 1)),
                "masklet_num": num_targets}  # fmt: skip
        (out_dir / f"{name}_manual.json").write_text(json.dumps(data))


def _write_masklets(out_dir: Path, scenes: dict, num_targets: int, **_) -> None:
    for name, (frames, instances) in scenes.items():
        save_jpeg_folder(frames, out_dir / name)
        info = {"path": name, "height": frames.shape[1], "width": frames.shape[2], "fps": None,
                "num_frames": len(frames)}  # fmt: skip
        with RleJsonWriter(out_dir / f"{name}_masks.json", info) as writer:
            for t, ids in enumerate(instances):
                writer.write(t, {k: ids == k for k in range(1, num_targets + 1)})
