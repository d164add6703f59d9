"""Per-object memory bank: what tracking keeps of each frame, and which of it a new frame reads.

The reference keeps every frame's memory until the session is reset. Here an object's
non-conditioning frames live in a small in-RAM window; older ones are spilled to disk
(`policy="disk"`, everything can still be revisited), dropped (`policy="window"`, for
streaming: nothing is ever read again outside the window) or kept (`policy="ram"`, the
reference's behaviour).
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict

import torch

from ..models.outputs import FrameOutput, MemorySelection

POLICIES = ("disk", "window", "ram")
RAM_WINDOW = 24  # non-conditioning outputs an object keeps in RAM (the "window" policy keeps nothing more)


def frames_read_back(num_maskmem: int, stride: int, max_pointers: int) -> int:
    """How many frames back (or ahead, in reverse) `ObjectMemory.select` reads non-conditioning outputs:
    the oldest spatial memory lies (num_maskmem - 2) * stride + 1 frames back, the oldest object pointer
    max_pointers - 1 frames back. A "window" store must hold at least this many frames."""
    return max((num_maskmem - 2) * stride + 1, max_pointers - 1)


def check_policy(policy: str, frames_back: int = 0, ram_capacity: int = RAM_WINDOW) -> None:
    """ValueError for an unknown policy, or for a "window" whose `ram_capacity` frames cannot hold the
    `frames_back` frames memory selection reads (see `frames_read_back`): tracking would silently read
    fewer memories than the reference."""
    if policy not in POLICIES:
        raise ValueError(f"Unknown memory policy {policy!r}; expected one of {POLICIES}.")
    if policy == "window" and ram_capacity < frames_back:
        raise ValueError(
            f'The "window" memory policy keeps {ram_capacity} frames per object in RAM, but memory selection '
            f"reads {frames_back} frames back with these settings (num_maskmem, memory_temporal_stride_for_eval, "
            'max_object_pointers_in_encoder); use memory_policy="disk" or a smaller stride.'
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

    def select(
        self,
        frame_idx: int,
        reverse: bool,
        num_frames: int | None,
        num_maskmem: int = 7,
        max_cond_frames: int = -1,
        max_pointers: int = 16,
        stride: int = 1,
        signed_pointer_offsets: bool = True,
        only_past_cond_pointers: bool = True,
    ) -> MemorySelection:
        """The reference's memory selection (SAM2Base._prepare_memory_conditioned_features).

        only_past_cond_pointers: read the object pointers of conditioning frames on this side of
        `frame_idx` only (the reference in eval mode); training reads every selected one."""
        selected, unselected = closest_cond_frames(frame_idx, self.cond, max_cond_frames)
        spatial = [(0, out) for out in selected.values()]
        for t_pos in range(1, num_maskmem):
            t_rel = num_maskmem - t_pos  # frames back
            if t_rel == 1:
                prev = frame_idx + 1 if reverse else frame_idx - 1
            elif not reverse:
                prev = ((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride
            else:
                prev = -(-(frame_idx + 2) // stride) * stride + (t_rel - 2) * stride
            out = self.non_cond.get(prev)
            if out is None:
                out = unselected.get(prev)
            if out is not None:
                spatial.append((t_pos, out))

        max_ptrs = max_pointers if num_frames is None else min(num_frames, max_pointers)
        sign = -1 if reverse else 1
        pointers = [
            ((frame_idx - t) * sign if signed_pointer_offsets else abs(frame_idx - t), out)
            for t, out in selected.items()
            if not only_past_cond_pointers or (t >= frame_idx if reverse else t <= frame_idx)
        ]
        for t_diff in range(1, max_ptrs):
            t = frame_idx + t_diff if reverse else frame_idx - t_diff
            if t < 0 or (num_frames is not None and t >= num_frames):
                break
            out = self.non_cond.get(t)
            if out is None:
                out = unselected.get(t)
            if out is not None:
                pointers.append((t_diff, out))
        return MemorySelection(spatial, pointers, max_ptrs)


def closest_cond_frames(frame_idx: int, cond: dict[int, FrameOutput], max_num: int):
    """Split conditioning frames into (selected, unselected): all when max_num is -1, else the closest
    one before, the closest one at/after, then the temporally nearest others."""
    if max_num == -1 or len(cond) <= max_num:
        return dict(cond), {}
    if max_num < 2:
        raise ValueError("max_cond_frame_num must be -1 or at least 2.")
    selected = {}
    before = max((t for t in cond if t < frame_idx), default=None)
    after = min((t for t in cond if t >= frame_idx), default=None)
    for t in (before, after):
        if t is not None:
            selected[t] = cond[t]
    rest = sorted((t for t in cond if t not in selected), key=lambda t: abs(t - frame_idx))
    selected.update((t, cond[t]) for t in rest[: max_num - len(selected)])
    return selected, {t: v for t, v in cond.items() if t not in selected}
