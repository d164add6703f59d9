"""Memory selection: which of an object's stored outputs a frame's memory attention reads, with which temporal
positions and object pointers. The seam for memory policies for long videos (motion-aware selection such as
SAMURAI's, quality-gated memories, ...): a policy implements `MemorySelectionPolicy`; `ReferenceSelection` is
SAM 2's own and the default. Where memories live (RAM, disk, a window) is storage (tracking/storage.py), not this.

A policy is made per session (`memory_selection(config, stride)`, an option of every video face), sees every
output the session stores through `observe(FrameSignals)`, and is asked once per tracked object and frame
through `select(...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

import torch

from ..models.configuration import Sam2VideoConfig
from ..models.outputs import FrameOutput, MemorySelection
from .storage import ObjectMemory


@dataclass(frozen=True)
class FrameSignals:
    """What a policy may learn from one stored output (passed to `observe` when tracking stores it).

    obj_id: the object; frame_idx: the frame; conditioning: a prompted frame kept for good (else a tracked or
    corrected one); reverse: stored while tracking backwards; output: the stored `FrameOutput` (mask_logits
    (1, 1, 4h, 4w), object_score_logits (1, 1), object_pointer (1, 256), iou_score (1, 1), 1 for a mask given
    as input)."""

    obj_id: Hashable
    frame_idx: int
    conditioning: bool
    reverse: bool
    output: FrameOutput

    @property
    def iou_score(self) -> torch.Tensor | None:
        """(1, 1) the decoder's predicted IoU of the chosen mask (1 for a mask prompt taken as the output)."""
        return self.output.iou_score

    @property
    def object_score_logit(self) -> float:
        """> 0: the object is judged present on the frame."""
        return float(self.output.object_score_logits.flatten()[0])

    @property
    def mask_logits(self) -> torch.Tensor:
        """(1, 1, 4h, 4w) the stored low-resolution logits (hole-filled as returned)."""
        return self.output.mask_logits

    @property
    def box(self) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of the mask (logits > 0) in low-resolution cells (inclusive), None when empty;
        computed on demand."""
        ys, xs = torch.nonzero(self.output.mask_logits[0, 0] > 0, as_tuple=True)
        if len(xs) == 0:
            return None
        return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


class MemorySelectionPolicy(Protocol):
    def select(self, memory: ObjectMemory, frame_idx: int, reverse: bool, num_frames: int | None) -> MemorySelection:
        """The memories one object reads on `frame_idx` (tracking forwards, or backwards with `reverse`; num_frames
        None for a stream): spatial (temporal index 0 for conditioning frames, 1..num_maskmem-1 for the frame that
        many steps back), pointers (temporal offset, output), max_pointers (the offsets' normaliser). Objects whose
        selections have the same `layout` are batched into one memory-attention call."""

    def frames_read_back(self) -> int:
        """How far back (non-conditioning frames) `select` can read: the "window" storage must hold that many."""

    def observe(self, signals: FrameSignals) -> None:
        """Called for every output the session stores (conditioning or not); the reference ignores it."""


class ReferenceSelection:
    """SAM 2's selection (the reference's `SAM2Base._prepare_memory_conditioned_features`): every conditioning
    frame (or the `max_cond_frames` closest), the `num_maskmem - 1` previous tracked frames at `stride`, and up
    to `max_pointers` object pointers (conditioning frames first, then the previous frames').

    num_maskmem, max_cond_frames, max_pointers: `Sam2VideoConfig`'s `num_maskmem`, `max_cond_frame_num`,
    `max_object_pointers_in_encoder`; stride: `memory_temporal_stride_for_eval` (1 in training);
    only_past_cond_pointers: read the object pointers of conditioning frames on this side of the frame only (the
    reference in eval mode; training reads every selected one); signed_pointer_offsets: offsets negative for
    conditioning frames ahead (the reference), else their distance."""

    def __init__(
        self,
        num_maskmem: int = 7,
        max_cond_frames: int = -1,
        max_pointers: int = 16,
        stride: int = 1,
        only_past_cond_pointers: bool = True,
        signed_pointer_offsets: bool = True,
    ):
        self.num_maskmem = num_maskmem
        self.max_cond_frames = max_cond_frames
        self.max_pointers = max_pointers
        self.stride = stride
        self.only_past_cond_pointers = only_past_cond_pointers
        self.signed_pointer_offsets = signed_pointer_offsets

    @classmethod
    def from_config(cls, config: Sam2VideoConfig, stride: int = 1, training: bool = False) -> ReferenceSelection:
        """The selection a model with `config` was trained with, at `stride`; `training`: Meta's train mode."""
        return cls(
            config.num_maskmem,
            config.max_cond_frame_num,
            config.max_object_pointers_in_encoder,
            stride,
            only_past_cond_pointers=not training,
        )

    def frames_read_back(self) -> int:
        """The oldest spatial memory lies (num_maskmem - 2) * stride + 1 frames back, the oldest object pointer
        max_pointers - 1 frames back."""
        return max((self.num_maskmem - 2) * self.stride + 1, self.max_pointers - 1)

    def observe(self, signals: FrameSignals) -> None:
        """SAM 2's selection depends on frame positions only."""

    def select(self, memory: ObjectMemory, frame_idx: int, reverse: bool, num_frames: int | None) -> MemorySelection:
        selected, unselected = closest_cond_frames(frame_idx, memory.cond, self.max_cond_frames)
        spatial = [(0, out) for out in selected.values()]
        stride = self.stride
        for t_pos in range(1, self.num_maskmem):
            t_rel = self.num_maskmem - t_pos  # frames back
            if t_rel == 1:
                prev = frame_idx + 1 if reverse else frame_idx - 1
            elif not reverse:
                prev = ((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride
            else:
                prev = -(-(frame_idx + 2) // stride) * stride + (t_rel - 2) * stride
            out = memory.non_cond.get(prev)
            if out is None:
                out = unselected.get(prev)
            if out is not None:
                spatial.append((t_pos, out))

        max_ptrs = self.max_pointers if num_frames is None else min(num_frames, self.max_pointers)
        sign = -1 if reverse else 1
        pointers = [
            ((frame_idx - t) * sign if self.signed_pointer_offsets else abs(frame_idx - t), out)
            for t, out in selected.items()
            if not self.only_past_cond_pointers or (t >= frame_idx if reverse else t <= frame_idx)
        ]
        for t_diff in range(1, max_ptrs):
            t = frame_idx + t_diff if reverse else frame_idx - t_diff
            if t < 0 or (num_frames is not None and t >= num_frames):
                break
            out = memory.non_cond.get(t)
            if out is None:
                out = unselected.get(t)
            if out is not None:
                pointers.append((t_diff, out))
        return MemorySelection(spatial, pointers, max_ptrs)


MemorySelectionFactory = Callable[[Sam2VideoConfig, int], MemorySelectionPolicy]
"""`memory_selection=` of the video faces: (model config, memory_temporal_stride_for_eval) -> a new policy for one
session. The default is `ReferenceSelection.from_config`."""


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
