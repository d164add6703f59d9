"""The common job in a few lines: a video plus prompts in, masklets out.

    tracker = Sam2Tracker.from_pretrained("facebook/sam2.1-hiera-tiny")
    masklets = tracker.track("clip.mp4", [Prompt(frame=0, obj_id=1, points=[(210, 350)], labels=[1])])
    masklets.mask(frame=10, obj_id=1)  # (H, W) bool

`iter_track` yields `(frame_idx, {obj_id: mask})` as frames complete; `stream()` tracks frames that
arrive one at a time (a camera loop). Results are kept as COCO RLE, never as float logits.

Without prompts, `track(video)` segments everything (`iter_track_everything`): the automatic mask
generator's masks on frame 0 become objects, every one tracked, and generation re-runs every
`new_objects_every` frames to add objects that appear later (the SA-V data engine's automatic masklets).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import torch
from tqdm.auto import tqdm

from ..media.frames import StreamFrames, VideoDecodeError, open_frames
from ..media.rle import decode_rle, decode_segmentation, encode_rle
from ..media.writers import FORMATS, ResultWriters, existing_outputs, output_paths
from ..predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator
from ..predictors.video_predictor import Sam2VideoPredictor
from ..processing.prompts import Prompt, check_not_empty
from ..tracking.state import VideoSession

DIRECTIONS = ("forward", "backward", "both")
NEW_OBJECT_IOU = 0.3  # a generated mask matching a tracked object at IoU above this is that object, not a new one
MAX_OBJECTS = 64  # default cap on the objects "segment everything" tracks


@dataclass
class Masklets:
    """Per-object, per-frame masks of a tracked video, stored as COCO RLE.

    Every frame given to `add` counts as processed, also one with no object on it (`{}`: nothing tracked
    yet, or a detect-every-K-frames loop that found nothing), so `save` writes it to every output.
    """

    height: int
    width: int
    num_frames: int | None = None
    fps: float | None = None
    rles: dict = field(default_factory=dict)  # obj_id -> {frame_idx: rle}
    processed: set = field(default_factory=set)  # every frame_idx given to `add`, with objects or none
    scores: dict = field(default_factory=dict)  # obj_id -> {frame_idx: object-score logit} where `add` gave one

    @property
    def obj_ids(self) -> list:
        return list(self.rles)

    def add(self, frame_idx: int, masks: Mapping, scores: Mapping | None = None) -> None:
        """Record frame `frame_idx`'s results {obj_id: (H, W) bool (or 0/1) mask}, `{}` for a frame without
        objects, and optionally the objects' object-score logits {obj_id: float} (> 0: judged present); a
        later `add` for the same frame and object replaces that mask (and score)."""
        self.processed.add(int(frame_idx))
        for obj_id, mask in masks.items():
            self.rles.setdefault(obj_id, {})[frame_idx] = encode_rle(mask)
        for obj_id, score in (scores or {}).items():
            if obj_id in masks:
                self.scores.setdefault(obj_id, {})[frame_idx] = float(score)

    def frames(self, obj_id=None) -> list[int]:
        """Sorted frame indices: every processed frame, or for `obj_id` those where that object has a result."""
        return sorted(self.processed if obj_id is None else self.rles.get(obj_id, {}))

    def mask(self, frame: int, obj_id) -> np.ndarray:
        """(H, W) bool; all False where the object has no result on that frame."""
        rle = self.rles.get(obj_id, {}).get(frame)
        return decode_rle(rle) if rle is not None else np.zeros((self.height, self.width), dtype=bool)

    def masks(self, frame: int) -> dict:
        return {obj_id: self.mask(frame, obj_id) for obj_id in self.rles}

    def score(self, frame: int, obj_id) -> float | None:
        """The object's object-score logit on `frame` (> 0: judged present); None where none was recorded."""
        return self.scores.get(obj_id, {}).get(frame)

    def area(self, frame: int, obj_id) -> int | None:
        """Pixels in the object's mask on `frame`, read from its RLE without decoding it; None where it has no
        result on that frame."""
        rle = self.rles.get(obj_id, {}).get(frame)
        return None if rle is None else int(mask_utils.area(rle))

    def save(self, video, out_dir, formats=tuple(FORMATS), overwrite: bool = False) -> dict[str, Path]:
        """Write the chosen `formats` (names from `results.FORMATS`, or one name: per-object PNGs in
        out_dir/masks/<obj>/, the COCO RLE JSON out_dir/masks.json, the overlay MP4 out_dir/overlay.mp4)
        in frame order; returns {format: path written}. Every processed frame is in every output, in
        sync: an overlay frame, an RLE JSON entry in "frames" and, for each object, a PNG and an annotation
        (empty where the object has no result on that frame). `video` (any frame source) is read only for
        the overlay. Results already at those paths raise FileExistsError, or with `overwrite` are removed
        first, so old and new results never mix."""
        formats = (formats,) if isinstance(formats, str) else tuple(formats)
        paths, existing = output_paths(out_dir, formats), existing_outputs(out_dir, formats)
        if existing and not overwrite:
            raise FileExistsError(
                f"{out_dir} already holds results ({', '.join(p.name for p in existing)}); pass overwrite=True "
                "to replace them, or choose another folder."
            )
        for path in existing:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        info = {"height": self.height, "width": self.width, "fps": self.fps, "num_frames": self.num_frames}
        frames = open_frames(video) if "overlay" in paths else None
        with ResultWriters(info, paths) as writers:
            for t in self.frames():
                writers.write(t, self.masks(t), frames.frame(t) if frames is not None else None)
        return {name: path for name, path in paths.items() if path.exists()}  # an empty overlay is not written


class TrackingError(RuntimeError):
    """Tracking stopped early (e.g. the video failed to decode); `masklets` holds every result computed before."""

    def __init__(self, message: str, masklets: Masklets, frame_index: int | None = None):
        super().__init__(message)
        self.masklets = masklets
        self.frame_index = frame_index


def binarize(obj_ids, logits: torch.Tensor, threshold: float = 0.0) -> dict:
    """(N, 1, H, W) mask logits of the objects `obj_ids` (in order) -> {obj_id: (H, W) bool numpy mask}."""
    return dict(zip(obj_ids, (logits[:, 0] > threshold).cpu().numpy()))


class Sam2Tracker:
    """High-level video tracking on top of `Sam2VideoPredictor` (whose options it takes).

    Unlike the Meta-compatible predictor's default, every prompted frame is a conditioning frame
    (`add_all_frames_to_correct_as_cond=True`, the paper's interactive setting), so a correction on a
    frame that was already tracked stays as given when tracking runs again.

    Build one with `Sam2Tracker(predictor, threshold)` or `Sam2Tracker.from_pretrained(model_id, device=None,
    threshold=0.0, **kwargs)`.

    Args:
        predictor (`Sam2VideoPredictor`):
            The predictor that tracks; its options (hole filling, memory policy, ...) apply as given.
        threshold (`float`, *optional*, defaults to 0.0):
            Mask logit above which a pixel belongs to an object when results are binarized (0.0 is
            probability 0.5); applies to every mask this tracker returns or stores in `Masklets`.
        model_id (`str` or `os.PathLike`):
            `from_pretrained` only: a Hub repo id, a folder saved with `save_pretrained`, or one of Meta's `.pt`
            checkpoints (see `Sam2VideoPredictor.from_pretrained`).
        device (`str` or `torch.device`, *optional*, defaults to `None`):
            `from_pretrained` only: where the model is moved after loading; None leaves it where loading put it.
        kwargs (*optional*):
            `from_pretrained` only: `Sam2VideoPredictor` options and `Sam2VideoModel.from_pretrained` keywords,
            mixed, as `Sam2VideoPredictor.from_pretrained` takes them; `add_all_frames_to_correct_as_cond`
            defaults to True here.
    """

    def __init__(self, predictor: Sam2VideoPredictor, threshold: float = 0.0):
        self.predictor = predictor
        self.threshold = threshold

    @classmethod
    def from_pretrained(cls, model_id, device=None, threshold: float = 0.0, **kwargs) -> Sam2Tracker:
        """A tracker on `Sam2VideoPredictor.from_pretrained(model_id, **kwargs)`; the predictor option
        `add_all_frames_to_correct_as_cond` defaults to True here."""
        kwargs.setdefault("add_all_frames_to_correct_as_cond", True)
        return cls(Sam2VideoPredictor.from_pretrained(model_id, device=device, **kwargs), threshold)

    def iter_track(
        self,
        video,
        prompts: Iterable[Prompt] | None = None,
        direction: str = "both",
        start_frame: int | None = None,
        max_frames: int | None = None,
        progress: bool = True,
        **everything,
    ) -> Iterator[tuple[int, dict]]:
        """Yield (frame_idx, {obj_id: (H, W) bool mask}) for every tracked frame.

        direction: "forward", "backward" or "both" (forward, then backward) from `start_frame`
        (default: the earliest prompted frame). The prompted frames' own results come first.
        Without prompts (None), everything is segmented and tracked forward from frame 0
        (`iter_track_everything`, which takes the `everything` keywords).
        """
        for frame_idx, masks, _ in self._track_frames(
            video, prompts, direction, start_frame, max_frames, progress, **everything
        ):
            yield frame_idx, masks

    def _track_frames(self, video, prompts, direction, start_frame, max_frames, progress, **everything):
        """`iter_track`'s frames with each object's object-score logit: (frame_idx, masks, {obj_id: float})."""
        if prompts is None:
            if direction == "backward" or start_frame not in (None, 0):
                raise ValueError("Segmenting everything tracks forward from frame 0; leave out direction, start_frame.")
            yield from self._everything_frames(video, max_frames=max_frames, progress=progress, **everything)
            return
        if everything:
            raise TypeError(f"{sorted(everything)} apply only without prompts (segment everything).")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}.")
        state = self.predictor.init_state(video)
        prompted = self.add_prompts(state, prompts)
        start = min(prompted) if start_frame is None else start_frame
        passes = {"forward": [False], "backward": [True], "both": [False, True]}[direction]
        total = self._count_frames(state.num_frames, start, max_frames, passes)
        with tqdm(total=total, desc="tracking", unit="frame", disable=not progress) as bar:
            for reverse in passes:
                frames = self.predictor.propagate_in_video(state, start, max_frames, reverse=reverse)
                for frame_idx, obj_ids, logits in frames:
                    if reverse and direction == "both" and frame_idx == start:
                        continue  # already yielded by the forward pass
                    bar.update()
                    yield frame_idx, self._binarize(obj_ids, logits), self.predictor.object_scores(state, frame_idx)

    def iter_track_everything(
        self,
        video,
        generator=None,
        new_objects_every: int | None = None,
        new_object_iou: float = NEW_OBJECT_IOU,
        max_objects: int = MAX_OBJECTS,
        max_frames: int | None = None,
        progress: bool = True,
    ) -> Iterator[tuple[int, dict]]:
        """Segment and track every object without prompts; yield (frame_idx, {obj_id: (H, W) bool mask})
        for frames 0, 1, ... (frame 0 and up to `max_frames` after it).

        generator: anything with `generate(image) -> records` as `Sam2AutomaticMaskGenerator` (default: one
            on this tracker's model with Meta's defaults); records need "segmentation" (a mask or RLE) and
            "predicted_iou".
        new_objects_every: K; generation runs on frame 0 and, if given, on every K-th frame after it.
        new_object_iou: a generated mask whose IoU with every tracked object's mask on that frame is at
            most this becomes a new object (ids 1, 2, ... in order of appearance, best predicted IoU first).
        max_objects: objects tracked at most; masks beyond it are left out (lowest predicted IoU first).
        A new object's masklet starts on the frame it was found. All objects are tracked as one batch
        per memory layout. Raises ValueError for a video of unknown length or a bad K / cap.
        """
        for frame_idx, masks, _ in self._everything_frames(
            video, generator, new_objects_every, new_object_iou, max_objects, max_frames, progress
        ):
            yield frame_idx, masks

    def _everything_frames(
        self,
        video,
        generator=None,
        new_objects_every=None,
        new_object_iou=NEW_OBJECT_IOU,
        max_objects=MAX_OBJECTS,
        max_frames=None,
        progress=True,
    ):
        """`iter_track_everything`'s frames with the object-score logits: (frame_idx, masks, {obj_id: float})."""
        if new_objects_every is not None and new_objects_every < 1:
            raise ValueError(f"new_objects_every must be a positive number of frames, got {new_objects_every}.")
        if max_objects < 1:
            raise ValueError(f"max_objects must be at least 1, got {max_objects}.")
        state = self.predictor.init_state(video)
        if state.num_frames is None:
            raise ValueError("Segmenting everything needs a video of known length (a file, folder or array).")
        generator = generator or Sam2AutomaticMaskGenerator(self.predictor.model, backend=self.predictor.backend)
        last = state.num_frames - 1 if max_frames is None else min(max_frames, state.num_frames - 1)
        added = False
        with tqdm(total=last + 1, desc="segmenting everything", unit="frame", disable=not progress) as bar:
            for frame_idx in range(last + 1):
                masks = self._track_frame(state, frame_idx, preflight=added) if state.objects else {}
                added = False
                if frame_idx == 0 or (new_objects_every and frame_idx % new_objects_every == 0):
                    new = self._add_new_objects(state, frame_idx, masks, generator, new_object_iou, max_objects)
                    masks, added = {**masks, **new}, bool(new)
                bar.update()
                yield frame_idx, masks, self.predictor.object_scores(state, frame_idx)

    def _track_frame(self, state: VideoSession, frame_idx: int, preflight: bool) -> dict:
        if preflight:  # objects were added on the previous frame: encode their memories first
            self.predictor.propagate_in_video_preflight(state)
        return self._binarize(state.obj_ids, self.predictor.track_frame(state, frame_idx, reverse=False))

    def _add_new_objects(self, state: VideoSession, frame_idx: int, tracked: dict, generator, iou, max_objects):
        """Generate masks on a frame; those matching no tracked mask at IoU > `iou` become objects (while
        fewer than `max_objects` exist). Returns {new obj_id: (H, W) bool mask on this frame}."""
        records = sorted(generator.generate(state.frames.frame(frame_idx)), key=lambda r: -r["predicted_iou"])
        candidates = [encode_rle(_record_mask(r, state.video_height, state.video_width)) for r in records]
        if tracked and candidates:
            known = [encode_rle(mask) for mask in tracked.values()]
            overlap = mask_utils.iou(candidates, known, [0] * len(known)).max(axis=1)
            candidates = [rle for rle, o in zip(candidates, overlap) if o <= iou]
        candidates = candidates[: max(max_objects - len(state.objects), 0)]
        next_id = max((i for i in state.obj_ids if isinstance(i, int)), default=0) + 1
        result = None
        for obj_id, rle in enumerate(candidates, start=next_id):
            result = self.predictor.add_new_mask(state, frame_idx, obj_id, decode_rle(rle))
        if result is None:
            return {}
        _, obj_ids, logits = result  # the last call returns every object's mask on this frame
        return {i: m for i, m in self._binarize(obj_ids, logits).items() if i >= next_id}

    def track(
        self,
        video,
        prompts: Iterable[Prompt] | None = None,
        direction: str = "both",
        start_frame: int | None = None,
        max_frames: int | None = None,
        progress: bool = True,
        **everything,
    ) -> Masklets:
        """Track and collect everything as `Masklets` (masks and object-score logits); a decode failure midway
        raises `TrackingError` carrying the masklets of every frame done before it. The arguments are
        `iter_track`'s; without prompts, everything is segmented and tracked (see `iter_track_everything`
        for its keywords)."""
        frames = open_frames(video)
        masklets = Masklets(frames.height, frames.width, frames.num_frames, frames.fps)
        results = self._track_frames(frames, prompts, direction, start_frame, max_frames, progress, **everything)
        try:
            for frame_idx, masks, scores in results:
                masklets.add(frame_idx, masks, scores)
        except VideoDecodeError as e:
            raise TrackingError(f"Tracking stopped: {e}", masklets, e.frame_index) from e
        return masklets

    def stream(self, max_buffered: int = 8, fps: float | None = None) -> TrackingStream:
        """Track frames that arrive one at a time; see `TrackingStream`."""
        return TrackingStream(self, max_buffered, fps)

    def add_prompts(self, state: VideoSession, prompts: Iterable[Prompt]) -> list[int]:
        """Apply prompts (each for one object on one frame) to a session; returns the prompted frame indices.
        An empty list of prompts is an `EmptyPromptError` (None means "segment everything" to `track`)."""
        prompts = list(prompts)
        check_not_empty(prompts, "prompts", "Sam2Tracker")
        for p in prompts:
            if not isinstance(p, Prompt) or p.frame is None:
                raise TypeError(f"Tracking prompts are Prompt(frame, obj_id, ...) with a frame index; got {p!r}.")
            self.predictor.add_prompt(state, p)
        return [p.frame for p in prompts]

    def _binarize(self, obj_ids, logits: torch.Tensor) -> dict:
        return binarize(obj_ids, logits, self.threshold)

    @staticmethod
    def _count_frames(num_frames, start, max_frames, passes) -> int | None:
        if num_frames is None:
            return None
        limit = num_frames if max_frames is None else max_frames
        forward = min(start + limit, num_frames - 1) - start + 1
        backward = start - max(start - limit, 0) + 1 if start > 0 else 0
        counts = {False: forward, True: backward}
        return sum(counts[r] for r in passes) - (1 if len(passes) == 2 and backward else 0)


def _record_mask(record: Mapping, height: int, width: int) -> np.ndarray:
    """A mask generator record's "segmentation" ((H, W) mask, COCO RLE or uncompressed RLE) -> (H, W) bool."""
    segmentation = record["segmentation"]
    if not isinstance(segmentation, Mapping):
        return np.asarray(segmentation, dtype=bool)
    return decode_segmentation(segmentation, height, width)


class TrackingStream:
    """Frames pushed one at a time; prompts apply to the newest frame; tracking runs forward only.

        stream = tracker.stream()
        for i, frame in enumerate(camera):
            masks = stream.push(frame)             # {obj_id: mask} ({} until an object is prompted)
            if i == 0:
                masks = stream.add_prompt(1, points=[(210, 350)], labels=[1])

    Only the memories tracking still reads are kept (`memory_policy="window"`), so memory stays flat.
    Made by `Sam2Tracker.stream(max_buffered, fps)`.

    Args:
        tracker (`Sam2Tracker`):
            The tracker whose predictor tracks and whose `threshold` binarizes the masks.
        max_buffered (`int`, *optional*, defaults to 8):
            Pushed frames kept (at least 1): older ones can no longer be read, e.g. to encode a frame again once
            its features have left the session's small feature cache. Prompts apply to the newest frame.
        fps (`float`, *optional*, defaults to `None`):
            The stream's frame rate, recorded as the frame source's `fps`; tracking does not use it.
    """

    def __init__(self, tracker: Sam2Tracker, max_buffered: int = 8, fps: float | None = None):
        self.tracker = tracker
        self.frames = StreamFrames(max_buffered=max_buffered, fps=fps)
        self.state: VideoSession | None = None
        self.last_index: int | None = None
        self.needs_preflight = False

    @property
    def predictor(self) -> Sam2VideoPredictor:
        return self.tracker.predictor

    def push(self, frame) -> dict:
        """Add the next frame; returns its masks for every prompted object."""
        index = self.last_index = self.frames.push(frame)
        if self.state is None:
            self.state = self.predictor.init_state(self.frames, memory_policy="window")
        if not self.state.objects:
            return {}
        with torch.inference_mode():
            self._preflight()
            logits = self.predictor.track_frame(self.state, index, reverse=False)
        return binarize(self.state.obj_ids, logits, self.tracker.threshold)

    def add_prompt(self, obj_id, points=None, labels=None, box=None, mask=None) -> dict:
        """Prompt an object on the newest frame (the arguments of `Prompt`); returns that frame's masks
        for every object."""
        if self.state is None:
            raise RuntimeError(
                "Push a frame before adding prompts: in streaming mode prompts apply to the newest frame."
            )
        prompt = Prompt(self.last_index, obj_id, points, labels, box, mask)
        _, obj_ids, logits = self.predictor.add_prompt(self.state, prompt)
        self.needs_preflight = True
        return binarize(obj_ids, logits, self.tracker.threshold)

    def _preflight(self) -> None:
        if self.needs_preflight:
            self.predictor.propagate_in_video_preflight(self.state)
            self.needs_preflight = False

    def end(self) -> None:
        self.frames.end()
