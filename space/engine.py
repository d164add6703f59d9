"""Everything that runs the model.

A session keeps only plain data: the prompts the user made, the results, file paths. Here each
session gets a `Sam2VideoPredictor` state that is brought in line with those prompts on every call:
a new click re-runs the decoder for that object on that frame only (the frame's image embedding is
cached), an undo re-applies the previous prompt, a change of model or input size rebuilds the state
by replaying every prompt. Tracking reuses the memories of frames tracked before and a per-session
cache of image embeddings (`feature_cache_mb`), so re-tracking after a correction is cheaper.

`segment` and `track` are the GPU entry points (`spaces.GPU` on ZeroGPU). Their arguments and
results are plain picklable data, so they also work where ZeroGPU runs them in a forked worker:
a worker that has not seen a session rebuilds its state from the prompts.
"""

from __future__ import annotations

import ctypes
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import numpy as np
import torch

from sam2_hf.media.frames import ImageFolderFrames
from sam2_hf.predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator
from sam2_hf.processing.prompts import Prompt
from sam2_hf.tasks.tracker import binarize
from sam2_hf.tracking.state import VideoSession

from .gpu import gpu
from .models import ModelStore

Key = tuple[int, int]  # (frame index, object id)
Masks = dict[int, np.ndarray]  # object id -> (H, W) bool
Found = tuple[tuple[float, float, float, float], tuple[float, float]]  # a found object: box (x0, y0, x1, y1), click
# "Find objects": the automatic mask generator's settings (Meta's thresholds; a 16 x 16 grid keeps it quick on CPU)
FIND = dict(points_per_side=16, points_per_batch=64, pred_iou_thresh=0.8, stability_score_thresh=0.95)


class ComputeTurns:
    """Whose model computation runs next: one at a time (they would share the same cores or GPU anyway), a
    waiting interactive one (a click's decoder, an undo, Find objects) before any tracking frame, and tracking
    frames first come first served, so that runs admitted together alternate frame by frame (a long video shares
    the model with the runs beside it instead of holding it to the end)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._waiting: dict[bool, deque] = {True: deque(), False: deque()}  # interactive? -> tickets, oldest first
        self._busy = False  # a computation holds the turn

    @contextmanager
    def turn(self, interactive: bool) -> Iterator[None]:
        """Wait for this computation's turn, hold it while the block runs."""
        ticket, line = object(), self._waiting[interactive]
        with self._cond:
            line.append(ticket)
            self._cond.wait_for(lambda: not self._busy and self._next() is ticket)
            line.popleft()
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def waiting(self, interactive: bool) -> int:
        """How many interactive (or tracking) computations wait for their turn now."""
        with self._cond:
            return len(self._waiting[interactive])

    def _next(self) -> object | None:
        return next((line[0] for line in (self._waiting[True], self._waiting[False]) if line), None)


@dataclass(frozen=True)
class Setup:
    """What a predictor state is built from; any change rebuilds it."""

    model: str
    image_size: int
    frames_dir: str


@dataclass
class _Live:
    setup: Setup
    state: VideoSession
    applied: dict[Key, Prompt] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Engine:
    def __init__(self, models: ModelStore, feature_cache_mb: int = 256, max_sessions: int = 16):
        self.models = models
        self.feature_cache_bytes = feature_cache_mb * 2**20
        self.max_sessions = max_sessions
        self._live: OrderedDict[str, _Live] = OrderedDict()
        self._lock = threading.Lock()
        self.turns = ComputeTurns()  # every session's model computations take turns here

    def segment(self, sid: str, setup: Setup, stride: int, prompts: Mapping[Key, Prompt]) -> dict[int, Masks]:
        """Apply what changed in `prompts`; -> {frame: masks of every prompted object} for the frames it touched."""
        live = self._session(sid, setup, stride)
        with live.lock, self.turns.turn(interactive=True):
            return self._sync(live, stride, prompts)

    def track(
        self, sid: str, setup: Setup, stride: int, prompts: Mapping[Key, Prompt], frames: list[int], reverse: bool
    ) -> Iterator[tuple[int, Masks]]:
        """Track every prompted object through `frames` (in order), yielding (frame, masks) as each completes."""
        live = self._session(sid, setup, stride)
        predictor = self.models.predictor(setup.model, setup.image_size, stride)
        with live.lock:
            with self.turns.turn(interactive=False):
                self._sync(live, stride, prompts)
                predictor.propagate_in_video_preflight(live.state)
            for frame in frames:
                with self.turns.turn(interactive=False), torch.inference_mode():
                    logits = predictor.track_frame(live.state, frame, reverse)
                yield frame, binarize(live.state.obj_ids, logits)

    def find_objects(self, setup: Setup, frame: int, limit: int) -> list[Found]:
        """The automatic mask generator (`FIND`) on `frame` at the setup's model and size: the `limit` masks with
        the highest predicted IoU, each as its box (pixels, x0 y0 x1 y1) and the grid click that made it."""
        predictor = self.models.predictor(setup.model, setup.image_size)
        with self.turns.turn(interactive=True), torch.inference_mode():
            records = Sam2AutomaticMaskGenerator(predictor.model, backend=predictor.backend, **FIND).generate(
                ImageFolderFrames(setup.frames_dir).frame(frame)
            )
        records = sorted(records, key=lambda r: -r["predicted_iou"])[:limit]
        return [((x, y, x + w, y + h), tuple(r["point_coords"][0])) for r in records for x, y, w, h in [r["bbox"]]]

    def drop(self, sid: str) -> None:
        """Forget a session's state (freed once a tracking run still using it ends; spilled memories go with it)."""
        with self._lock:
            live = self._live.pop(sid, None)
        if live is not None:
            del live  # the state goes now, unless a tracking run still holds it
            trim_heap()

    def _session(self, sid: str, setup: Setup, stride: int) -> _Live:
        with self._lock:
            live = self._live.get(sid)
            if live is not None and live.setup == setup:
                self._live.move_to_end(sid)
                return live
        state = self.models.predictor(setup.model, setup.image_size, stride).init_state(setup.frames_dir)
        state.limit_feature_cache(self.feature_cache_bytes)
        with self._lock:
            self._live[sid] = live = _Live(setup, state)
            while len(self._live) > self.max_sessions:  # the least recently used rebuild when they come back
                self._live.popitem(last=False)
        return live

    def _sync(self, live: _Live, stride: int, prompts: Mapping[Key, Prompt]) -> dict[int, Masks]:
        predictor = self.models.predictor(live.setup.model, live.setup.image_size, stride)
        state, applied, touched = live.state, live.applied, {}
        wanted = {obj for _, obj in prompts}
        for obj in [o for o in state.obj_ids if o not in wanted]:
            _, updated = predictor.remove_object(state, obj)
            touched.update((frame, binarize(state.obj_ids, logits)) for frame, logits in updated)
            for key in [k for k in applied if k[1] == obj]:
                del applied[key]
        for frame, obj in [k for k in applied if k not in prompts]:
            _, ids, logits = predictor.clear_all_prompts_in_frame(state, frame, obj)
            touched[frame] = binarize(ids, logits)
            del applied[frame, obj]
        for (frame, obj), prompt in sorted(prompts.items()):
            if applied.get((frame, obj)) != prompt:
                _, ids, logits = predictor.add_prompt(state, prompt)
                touched[frame] = binarize(ids, logits)
                applied[frame, obj] = prompt
        return touched


def trim_heap() -> None:
    """Hand the heap memory freed so far back to the OS. glibc keeps freed memory in each thread's arena, and the
    app's worker threads each get one, so without this the resident memory stays at its high-water mark after
    the sessions that needed it have ended. A no-op where the C library has no `malloc_trim`."""
    with suppress(OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        ctypes.CDLL(None).malloc_trim(0)


ENGINE: Engine | None = None  # set by the app; module level so ZeroGPU's forked workers inherit it


def _track_seconds(sid, setup, stride, prompts, frames, reverse) -> int:
    """ZeroGPU time to reserve for a tracking run."""
    return int(20 + 0.25 * len(frames) * max(1, len({obj for _, obj in prompts})))


@gpu(duration=30)
def segment(sid: str, setup: Setup, stride: int, prompts: dict[Key, Prompt]) -> dict[int, Masks]:
    return ENGINE.segment(sid, setup, stride, prompts)


@gpu(duration=30)
def find_objects(setup: Setup, frame: int, limit: int) -> list[Found]:
    return ENGINE.find_objects(setup, frame, limit)


@gpu(duration=_track_seconds)
def track(sid, setup, stride, prompts, frames, reverse) -> Iterator[tuple[int, Masks]]:
    yield from ENGINE.track(sid, setup, stride, prompts, frames, reverse)
