"""Memory storage: where an object's outputs (masks, object pointers, memories) live. Which of them a frame
reads is memory selection (tracking/selection.py), not this.

The reference keeps every frame's memory until the session is reset. Here an object's
non-conditioning frames live in a small in-RAM window; older ones are spilled to disk
(`policy="disk"`, everything can still be revisited), dropped (`policy="window"`, for
streaming: nothing is ever read again outside the window) or kept (`policy="ram"`, the
reference's behaviour). The string is the `memory_policy` option of the video APIs.
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict

import torch

from ..models.outputs import FrameOutput

POLICIES = ("disk", "window", "ram")
RAM_WINDOW = 24  # non-conditioning outputs an object keeps in RAM (the "window" policy keeps nothing more)


def check_policy(policy: str, frames_back: int = 0, ram_capacity: int = RAM_WINDOW) -> None:
    """ValueError for an unknown policy, or for a "window" whose `ram_capacity` frames cannot hold the
    `frames_back` frames memory selection reads (`MemorySelectionPolicy.frames_read_back`): tracking would silently
    read fewer memories than the selection asks for."""
    if policy not in POLICIES:
        raise ValueError(f"Unknown memory policy {policy!r}; expected one of {POLICIES}.")
    if policy == "window" and ram_capacity < frames_back:
        raise ValueError(
            f'The "window" memory policy keeps {ram_capacity} frames per object in RAM, but memory selection '
            f"reads {frames_back} frames back with these settings (num_maskmem, memory_temporal_stride_for_eval, "
            'max_object_pointers_in_encoder, or the memory_selection policy); use memory_policy="disk" or a smaller '
            "stride."
        )


class FrameOutputStore:
    """frame index -> FrameOutput, holding at most `ram_capacity` entries in RAM; the earliest stored go
    first (tracking stores frames in order, so the RAM holds the last `ram_capacity` frames tracked)."""

    def __init__(self, policy: str = "disk", ram_capacity: int = RAM_WINDOW, spill_dir: str | None = None):
        check_policy(policy)
        self.policy = policy
        self.ram_capacity = ram_capacity
        self._ram: OrderedDict[int, FrameOutput] = OrderedDict()
        self._spilled: dict[int, str] = {}
        self._spill_dir = spill_dir
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __contains__(self, frame_idx: int) -> bool:
        return frame_idx in self._ram or frame_idx in self._spilled

    def __len__(self) -> int:
        return len(self._ram) + len(self._spilled)

    def keys(self):
        return sorted([*self._ram, *self._spilled])

    def get(self, frame_idx: int) -> FrameOutput | None:
        if frame_idx in self._ram:
            return self._ram[frame_idx]
        path = self._spilled.pop(frame_idx, None)
        if path is None:
            return None
        out = FrameOutput(**torch.load(path, weights_only=True))
        os.remove(path)
        self[frame_idx] = out
        return out

    def __setitem__(self, frame_idx: int, out: FrameOutput) -> None:
        self.pop(frame_idx)
        self._ram[frame_idx] = out
        if self.policy != "ram":
            while len(self._ram) > self.ram_capacity:
                self._evict(*self._ram.popitem(last=False))

    def pop(self, frame_idx: int) -> FrameOutput | None:
        out = self._ram.pop(frame_idx, None)
        if out is None and frame_idx in self._spilled:
            out = self.get(frame_idx)
            self._ram.pop(frame_idx)
        return out

    def clear(self) -> None:
        for path in self._spilled.values():
            os.remove(path)
        self._ram.clear()
        self._spilled.clear()

    def _evict(self, frame_idx: int, out: FrameOutput) -> None:
        if self.policy == "window":
            return
        if self._spill_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sam2_hf_memory_")
            self._spill_dir = self._tmp.name
        path = os.path.join(self._spill_dir, f"{id(self)}_{frame_idx}.pt")
        torch.save(vars(out), path)
        self._spilled[frame_idx] = path


class ObjectMemory:
    """Conditioning (prompted) frames, kept for good, and the non-conditioning frames of one object."""

    def __init__(self, policy: str = "disk", ram_capacity: int = RAM_WINDOW):
        self.cond: dict[int, FrameOutput] = {}
        self.non_cond = FrameOutputStore(policy, ram_capacity)

    def get(self, frame_idx: int) -> FrameOutput | None:
        out = self.cond.get(frame_idx)
        return out if out is not None else self.non_cond.get(frame_idx)

    def clear(self) -> None:
        self.cond.clear()
        self.non_cond.clear()
