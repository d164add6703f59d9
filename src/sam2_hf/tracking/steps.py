"""`TrackingSteps`: the per-frame steps of the one tracking algorithm, which both API faces call — Meta's
`Sam2VideoPredictor` (predictors/video_predictor.py, a subclass adding Meta's session methods) and the
transformers-style `Sam2VideoInferenceSession` (predictors/inference_session.py, which holds one).

Per frame the data flow is: frame -> `ImageEncoderPart.encode_frame` (cached per session) -> memory selection
(the session's `MemorySelectionPolicy`) -> `MemoryAttentionPart.condition_on_memory` -> `heads.predict_masks`
(`MaskDecoderPart`) -> hole filling -> `MemoryEncoderPart.encode_memory` -> `store` (the object's memory storage,
observed by the policy). All compute goes through `self.backend` (backends/protocol.py).
"""

from __future__ import annotations

import torch

from ..backends.protocol import Sam2Backend
from ..models.outputs import FrameOutput, MemorySelection, Sam2FrameFeatures, Sam2FramePrediction
from ..processing.mask_postprocessing import fill_holes
from . import heads
from .selection import FrameSignals, MemorySelectionFactory, ReferenceSelection
from .state import ObjectState, VideoSession
from .storage import check_policy

VIDEO_HOLE_FILL_VALUE = 0.1  # filled holes become barely-foreground logits, as in the reference


class TrackingSteps:
    """The tracking steps over `backend`, with the tracking options of Meta's `SAM2VideoPredictor` (documented
    on `Sam2VideoPredictor`): fill_hole_area, clear_non_cond_mem_around_input, binarize_mask_from_pts_for_mem_enc,
    memory_temporal_stride_for_eval, memory_dtype, and memory_selection (a `MemorySelectionFactory`; None: SAM 2's
    `ReferenceSelection`)."""

    def __init__(
        self,
        backend: Sam2Backend,
        fill_hole_area: int = 8,
        clear_non_cond_mem_around_input: bool = False,
        binarize_mask_from_pts_for_mem_enc: bool = True,
        memory_temporal_stride_for_eval: int = 1,
        memory_dtype: torch.dtype = torch.bfloat16,
        memory_selection: MemorySelectionFactory | None = None,
    ):
        self.backend = backend  # the compute: four parts (backends/protocol.py)
        self.fill_hole_area = fill_hole_area
        self.clear_non_cond_mem_around_input = clear_non_cond_mem_around_input
        self.binarize_mask_from_pts_for_mem_enc = binarize_mask_from_pts_for_mem_enc
        self.memory_temporal_stride_for_eval = memory_temporal_stride_for_eval
        self.memory_dtype = memory_dtype
        self.memory_selection = memory_selection  # per-session policy factory; None: ReferenceSelection

    @property
    def image_size(self) -> int:
        return self.backend.config.image_size

    def attach(self, state: VideoSession) -> None:
        """Give a new session its memory selection policy (`memory_selection(config, stride)`), and check that its
        memory storage keeps what the policy reads (ValueError for a "window" too short, see `check_policy`)."""
        make = self.memory_selection or ReferenceSelection.from_config
        state.memory_selection = make(self.backend.config, self.memory_temporal_stride_for_eval)
        check_policy(state.memory_policy, state.memory_selection.frames_read_back())

    def frame_features(self, state: VideoSession, frame_idx: int) -> Sam2FrameFeatures:
        """One frame's `encode_frame` features (batch 1), from the session's small cache (least recently used
        frames dropped). Raises what the frame source raises for an unreadable frame."""
        cache = state.feature_cache
        if frame_idx in cache:
            cache.move_to_end(frame_idx)
        else:
            cache[frame_idx] = self.backend.image_encoder.encode_frame(state.pixel_values(frame_idx))
            while len(cache) > state.feature_cache_size:
                cache.popitem(last=False)
        return cache[frame_idx]

    def select(self, state: VideoSession, obj: ObjectState, frame_idx: int, reverse: bool) -> MemorySelection:
        """What `obj`'s memory attention reads on `frame_idx`: the session's policy over its memory storage."""
        return state.memory_selection.select(obj.memory, frame_idx, reverse, state.num_frames)

    def store(
        self, state: VideoSession, obj: ObjectState, frame_idx: int, out: FrameOutput, conditioning: bool, reverse=False
    ) -> None:
        """The one place an output enters an object's memory storage (conditioning: kept for good, else a
        tracked or corrected frame's); the session's selection policy observes it (`FrameSignals`)."""
        if conditioning:
            obj.memory.cond[frame_idx] = out
        else:
            obj.memory.non_cond[frame_idx] = out
        state.memory_selection.observe(FrameSignals(obj.obj_id, frame_idx, conditioning, reverse, out))

    def infer_prompted(self, state, obj, frame_idx, is_init, reverse, points=None, mask=None, prev_logits=None):
        """One object's result on a prompted frame -> its `FrameOutput` (no memory yet: `encode_prompted_memory`).

        obj: its `ObjectState`; is_init: the object's first prompted frame (no memory read; multimask for one
        click); points: (coords (1, K, 2) in model pixels, labels (1, K)); mask: (1, 1, S, S) binary, used as
        the output itself; prev_logits: (1, 1, S/4, S/4) the frame's previous logits, fed back with a correction.
        """
        features = self.frame_features(state, frame_idx)
        if mask is not None:
            pred = heads.predict_from_mask_input(self.backend, features, mask)
            return self.frame_output(pred)
        if is_init:
            embeddings = self.backend.image_encoder.image_only_embedding(features.image_embeddings)
        else:
            selection = self.select(state, obj, frame_idx, reverse)
            embeddings = self.backend.memory_attention.condition_on_memory(features, [selection])
        coords, labels = points
        multimask = heads.use_multimask(self.backend.config, is_init, labels.shape[1])
        pred = heads.predict_masks(
            self.backend, embeddings, features.high_res_features, coords, labels, prev_logits, multimask
        )
        return self.frame_output(pred)

    def frame_output(self, pred: Sam2FramePrediction) -> FrameOutput:
        """A prompted frame's prediction (batch 1) as the output an object stores: hole-filled low-resolution
        logits, the object pointer, the object score and the chosen mask's predicted IoU."""
        return FrameOutput(
            self.fill_holes(pred.masks), pred.object_pointer, pred.object_score_logits, iou_score=pred.iou_score
        )

    def infer_tracked(
        self, state: VideoSession, objects: list[ObjectState], frame_idx: int, reverse: bool, binarize: bool = False
    ) -> None:
        """Track objects without prompts on this frame, batched by memory layout, and store their memories
        (encoded from the masks' sigmoid, as the reference does; `binarize`: from the thresholded masks)."""
        features = self.frame_features(state, frame_idx)
        groups: dict[tuple, list] = {}
        for obj in objects:
            selection = self.select(state, obj, frame_idx, reverse)
            groups.setdefault(selection.layout, []).append((obj, selection))
        multimask = heads.use_multimask(self.backend.config, False, 0)
        for members in groups.values():
            embeddings = self.backend.memory_attention.condition_on_memory(features, [sel for _, sel in members])
            batch = expand(features, len(members))
            pred = heads.predict_masks(self.backend, embeddings, batch.high_res_features, multimask_output=multimask)
            memory = self.backend.memory_encoder.encode_memory(
                batch, pred.high_res_masks, pred.object_score_logits, binarize
            )
            filled = self.fill_holes(pred.masks)
            for i, (obj, _) in enumerate(members):
                out = FrameOutput(
                    filled[i : i + 1].clone(),
                    pred.object_pointer[i : i + 1].clone(),
                    pred.object_score_logits[i : i + 1].clone(),
                    memory[i : i + 1].to(self.memory_dtype),
                    iou_score=pred.iou_score[i : i + 1].clone(),
                )
                self.store(state, obj, frame_idx, out, conditioning=False, reverse=reverse)

    def encode_prompted_memory(
        self, state: VideoSession, frame_idx: int, out: FrameOutput, high_res_masks: torch.Tensor | None = None
    ) -> None:
        """Give a prompted frame's output its memory (stored in `memory_dtype`), encoded from `high_res_masks`
        (1, 1, S, S) logits (default: its low-resolution logits upscaled, the reference's way), thresholded with
        `binarize_mask_from_pts_for_mem_enc`."""
        if high_res_masks is None:
            high_res_masks = heads.upscale_to_input_size(out.mask_logits, self.image_size)
        memory = self.backend.memory_encoder.encode_memory(
            self.frame_features(state, frame_idx),
            high_res_masks,
            out.object_score_logits,
            binarize=self.binarize_mask_from_pts_for_mem_enc,
        )
        out.memory = memory.to(self.memory_dtype)

    def fill_holes(self, mask_logits: torch.Tensor) -> torch.Tensor:
        """(N, 1, 4h, 4w) logits with holes of at most `fill_hole_area` cells set to 0.1 (unchanged when 0)."""
        if self.fill_hole_area <= 0:
            return mask_logits
        return fill_holes(mask_logits, self.fill_hole_area, threshold=0.0, fill_value=VIDEO_HOLE_FILL_VALUE)

    def clear_non_cond_memory_around(self, obj: ObjectState, frame_idx: int) -> None:
        """Drop one object's non-conditioning outputs within the frames its memory reads around a
        prompted frame (`memory_temporal_stride_for_eval * num_maskmem` either side), so they are
        re-tracked from the new prompt; other objects keep theirs (Meta's per-object clearing)."""
        r = self.memory_temporal_stride_for_eval * self.backend.config.num_maskmem
        for t in range(frame_idx - r, frame_idx + r + 1):
            obj.memory.non_cond.pop(t)


def expand(features: Sam2FrameFeatures, n: int) -> Sam2FrameFeatures:
    """A frame's batch-1 features viewed as a batch of n (no copy)."""
    return Sam2FrameFeatures(
        features.image_embeddings.expand(n, -1, -1, -1),
        [f.expand(n, -1, -1, -1) for f in features.high_res_features],
        features.position_embeddings,
    )
