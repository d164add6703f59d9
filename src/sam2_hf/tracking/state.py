"""The state of one tracking session: the video, its objects (prompts, pending outputs, memory storage), cached
frame features and the session's memory selection policy (Meta's `inference_state`, transformers'
`Sam2VideoInferenceSession` internals). Changed only by the tracking steps (tracking/steps.py) and the API faces'
named methods.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..media.frames import FrameSource
from ..models.outputs import FrameOutput, Sam2FrameFeatures
from ..processing.image_processing import normalize
from .selection import MemorySelectionPolicy
from .storage import ObjectMemory


@dataclass
class ObjectState:
    """Prompts, pending (clicked, not yet memory-encoded) outputs and memory of one object."""

    obj_id: Hashable  # the user's id for the object
    memory: ObjectMemory  # its outputs: conditioning frames kept for good, tracked frames in their storage
    points: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # (1,K,2), (1,K)
    masks: dict[int, torch.Tensor] = field(default_factory=dict)  # (1, 1, S, S)
    pending: dict[bool, dict[int, FrameOutput]] = field(default_factory=lambda: {True: {}, False: {}})
    tracked: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse


class VideoSession:
    """The state of one video (Meta's `inference_state`); `state["num_frames"]`-style access works too."""

    def __init__(self, frames: FrameSource, image_size: int, device, memory_policy: str, feature_cache_size=2):
        self.frames = frames  # the video, decoded lazily (never held whole, unlike the reference)
        self.image_size = image_size  # the model's input size S: frames are resized to S x S
        self.device = device  # where features, prompts and memories live
        self.memory_policy = memory_policy  # what objects do with memories outside their RAM window
        self.objects: OrderedDict[object, ObjectState] = OrderedDict()  # obj_id -> prompts, outputs, memory
        self.feature_cache: OrderedDict[int, Sam2FrameFeatures] = OrderedDict()  # frame -> encoder output
        self.feature_cache_size = feature_cache_size  # frames of features kept (least recently used go)
        self.memory_selection: MemorySelectionPolicy | None = None  # which memories a frame reads (set by the steps)

    @property
    def num_frames(self) -> int | None:
        return self.frames.num_frames

    @property
    def video_height(self) -> int:
        return self.frames.height

    @property
    def video_width(self) -> int:
        return self.frames.width

    @property
    def obj_ids(self) -> list:
        return list(self.objects)

    def __getitem__(self, key):
        if key in ("num_frames", "video_height", "video_width", "obj_ids", "device"):
            return getattr(self, key)
        raise KeyError(f"{key!r} is not exposed by sam2_hf's video session.")

    def object(self, obj_id, create=False) -> ObjectState:
        if obj_id not in self.objects:
            if not create:
                raise KeyError(f"Unknown object id {obj_id!r}; known ids: {self.obj_ids}.")
            self.objects[obj_id] = ObjectState(obj_id, ObjectMemory(self.memory_policy))
        return self.objects[obj_id]

    def clear_objects(self) -> None:
        """Remove every object, prompt and result, spilled memories included (frames and features stay)."""
        for obj in self.objects.values():
            obj.memory.clear()
        self.objects.clear()

    def limit_feature_cache(self, max_bytes: int, min_frames: int = 2) -> int:
        """Keep as many frames of features as fit in `max_bytes` (at least `min_frames`), judged by a cached
        frame's size (call it after a frame was encoded); -> the new `feature_cache_size`."""
        per_frame = sum(t.nbytes for t in _tensors(next(iter(self.feature_cache.values()))))
        self.feature_cache_size = max(min_frames, max_bytes // max(per_frame, 1))
        while len(self.feature_cache) > self.feature_cache_size:
            self.feature_cache.popitem(last=False)
        return self.feature_cache_size

    def check_frame_index(self, frame_idx: int) -> None:
        n = self.num_frames
        if not isinstance(frame_idx, (int, np.integer)) or frame_idx < 0 or (n is not None and frame_idx >= n):
            raise IndexError(f"Frame index {frame_idx} is out of range for a video of {n} frames.")

    def pixel_values(self, frame_idx: int) -> torch.Tensor:
        """Frame -> (1, 3, S, S) float32: PIL bicubic resize, /255 in float64 then float32, ImageNet normalization
        (the reference's frame loading, operation for operation)."""
        frame = Image.fromarray(self.frames.frame(frame_idx)).resize((self.image_size, self.image_size))
        x = torch.from_numpy(np.asarray(frame) / 255.0).float().permute(2, 0, 1)
        return normalize(x.unsqueeze(0)).to(self.device)


def _tensors(features: Sam2FrameFeatures) -> list[torch.Tensor]:
    return [features.image_embeddings, *features.high_res_features, features.position_embeddings]


def propagation_order(start_frame_idx: int, max_frame_num_to_track: int | None, num_frames: int, reverse: bool):
    """The frames propagation visits, as the reference orders them: `start_frame_idx` and up to
    `max_frame_num_to_track` (default: all) frames after it, or before it when `reverse` (none from frame 0)."""
    if max_frame_num_to_track is None:
        max_frame_num_to_track = num_frames
    if reverse:
        end = max(start_frame_idx - max_frame_num_to_track, 0)
        return range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 else range(0)
    return range(start_frame_idx, min(start_frame_idx + max_frame_num_to_track, num_frames - 1) + 1)
