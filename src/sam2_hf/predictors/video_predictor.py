"""`Sam2VideoPredictor`: a drop-in for Meta's `sam2.sam2_video_predictor.SAM2VideoPredictor`.

Same methods, arguments, return values and tracking algorithm (per-object memories, objects
addable at any time, corrections, forward/backward propagation). Differences, all invisible to
scripts written for the reference:
- frames are decoded lazily through a small cache instead of all up front;
- objects that share a frame's memory layout are tracked as one batch;
- old memories are spilled to disk (or dropped / kept, see `memory_policy`), so RAM stays flat;
- small holes are filled on CPU too (the reference's kernel is CUDA-only).

The per-frame steps are `TrackingSteps` (tracking/steps.py), shared with the transformers-style session; this
class adds Meta's session methods (prompts, propagation, results at video resolution).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..backends import make_backend
from ..backends.exported import exported_folder_backend
from ..backends.protocol import Sam2Backend
from ..media.frames import open_frames
from ..models.modeling import Sam2VideoModel
from ..models.outputs import NO_OBJECT_SCORE
from ..processing.mask_postprocessing import apply_non_overlapping_constraints
from ..processing.prompts import Prompt
from ..tracking.selection import MemorySelectionFactory
from ..tracking.state import VideoSession, propagation_order
from ..tracking.steps import TrackingSteps
from ..tracking.storage import check_policy

LOGIT_LIMIT = 32.0  # a frame's previous logits, fed back with a correction click, are clamped to +-32


class Sam2VideoPredictor(TrackingSteps):
    """Track objects through a video from clicks, boxes or masks (Meta's SAM2VideoPredictor API).

    Build one with `Sam2VideoPredictor(model, **options)` or `Sam2VideoPredictor.from_pretrained(model_id,
    device=None, **kwargs)`. The options are those of Meta's `SAM2VideoPredictor`, with the defaults of Meta's
    `build_sam2_video_predictor` (which sets `fill_hole_area=8` and `binarize_mask_from_pts_for_mem_enc=True`
    over the class defaults 0 and False), plus `memory_policy` and `memory_dtype`. The model's own tracking
    settings (`num_maskmem`, `max_object_pointers_in_encoder`, multimask rules, ...) are `Sam2VideoConfig`
    fields. Conditioning frames are prompted frames whose results an object's memory keeps for the whole
    session and memory attention always reads (up to `max_cond_frame_num`); the other tracked frames are
    non-conditioning.

    Args:
        model (`Sam2VideoModel`):
            The video model that tracks; it is put in eval mode.
        fill_hole_area (`int`, *optional*, defaults to 8):
            Holes (connected background regions, logits <= 0) of at most this many cells in each object's
            low-resolution mask logits (the S/4 x S/4 decoder output, 256 x 256 at 1024 pixels) are filled with a
            barely-foreground logit (0.1) before results are returned and stored; 0 turns it off. Runs on CPU
            too. Frames tracked from memory have their memory encoded from the unfilled mask, as in the
            reference.
        non_overlap_masks (`bool`, *optional*, defaults to `False`):
            Make the returned masks of different objects not overlap: at each video pixel only the object with
            the highest logit keeps it, the others' logits are clamped to at most -10. Applies to returned masks
            only, not to stored results or memories.
        clear_non_cond_mem_around_input (`bool`, *optional*, defaults to `False`):
            When a prompted frame's result enters an object's memory (when propagation starts) and when
            propagation reaches one of its conditioning frames, drop that object's non-conditioning results
            within `memory_temporal_stride_for_eval * num_maskmem` frames on either side (a non-conditioning
            correction on the frame itself included, as in the reference), so that they are re-tracked from the
            new prompt instead of remembering outdated masks. Per object: other objects keep theirs.
        add_all_frames_to_correct_as_cond (`bool`, *optional*, defaults to `False`):
            True: every prompted frame becomes a conditioning frame of its object, corrections on frames it was
            already tracked on included. False (Meta's default): only frames prompted before the object was
            tracked there do; a correction on a tracked frame replaces that frame's result as a
            non-conditioning output, which memory attention reads like any tracked frame. (`Sam2Tracker` sets
            True.)
        binarize_mask_from_pts_for_mem_enc (`bool`, *optional*, defaults to `True`):
            Encode the memory of prompted frames from the thresholded mask (logits > 0) instead of its sigmoid;
            frames tracked from memory always use the sigmoid.
        memory_temporal_stride_for_eval (`int`, *optional*, defaults to 1):
            Temporal stride r of the memory bank (the r of XMem and Cutie): the `num_maskmem - 1`
            non-conditioning memories read are the previous frame's and those of `num_maskmem - 2` frames at
            multiples of r before it. Also widens the window `clear_non_cond_mem_around_input` clears, and how far
            back the "window" memory policy must keep results.
        memory_policy (`str`, *optional*, defaults to `"disk"`):
            Where an object's older non-conditioning results (mask, object pointer, memory) go once more than
            24 (`tracking.storage.RAM_WINDOW`) are in RAM: "disk" spills them to temporary files, read back when
            needed again (a backward pass, a correction); "window" drops them (for streaming: `init_state` raises
            ValueError if the settings read further back than the window); "ram" keeps everything in RAM, as the
            reference. Conditioning frames always stay in RAM. `init_state(memory_policy=...)` overrides it for
            one session.
        memory_dtype (`torch.dtype`, *optional*, defaults to `torch.bfloat16`):
            The dtype spatial memories are stored in: bfloat16, as Meta and transformers store them; float32
            keeps them exact (e.g. to compare two implementations past bf16 rounding) at twice the memory.
        memory_selection (`Callable[[Sam2VideoConfig, int], MemorySelectionPolicy]`, *optional*, defaults to `None`):
            Which memories a frame reads: a factory called once per session with the model's config and
            `memory_temporal_stride_for_eval`, returning a policy (tracking/selection.py) that is asked for each
            object's memories on each tracked frame and observes every stored output (`FrameSignals`: predicted
            IoU, object score, mask, box). None: SAM 2's own selection (`ReferenceSelection.from_config`).
        backend (`str` or `Sam2Backend`, *optional*, defaults to `None`):
            The compute (backends/protocol.py: image encoder, mask decoder, memory attention, memory encoder):
            None or "torch" (eager PyTorch on `model`), "onnxruntime", "openvino" or "torch-export" (the model
            exported once into a cache and run by that engine, exact; backends/__init__.py), or a backend object.
            `model` stays the predictor's `model` attribute, as in Meta's class (None for a predictor loaded from
            an exported folder).
        model_id (`str` or `os.PathLike`):
            `from_pretrained` only: a Hub repo id, a folder saved with `save_pretrained`, or one of Meta's `.pt`
            checkpoints, loaded with `Sam2VideoModel.from_pretrained`; or a folder written by `sam2-hf export`, run
            by `backend` (default: the engine written for its format, `exported.default_engine`).
        device (`str` or `torch.device`, *optional*, defaults to `None`):
            `from_pretrained` only: where the model is moved after loading; None leaves it where loading put it
            (the CPU unless a loading keyword says otherwise).
        kwargs (*optional*):
            `from_pretrained` only: the options above mixed with `Sam2VideoModel.from_pretrained` keywords (for
            example `dtype`, `image_size`, or `size` / `version` for a Meta `.pt` file).
    """

    def __init__(
        self,
        model: Sam2VideoModel | None,
        fill_hole_area: int = 8,
        non_overlap_masks: bool = False,
        clear_non_cond_mem_around_input: bool = False,
        add_all_frames_to_correct_as_cond: bool = False,
        binarize_mask_from_pts_for_mem_enc: bool = True,
        memory_temporal_stride_for_eval: int = 1,
        memory_policy: str = "disk",
        memory_dtype: torch.dtype = torch.bfloat16,
        memory_selection: MemorySelectionFactory | None = None,
        backend: str | Sam2Backend | None = None,
    ):
        """A predictor on `model` with these options (documented in the class docstring's Args)."""
        self.model = None if model is None else model.eval()
        super().__init__(
            make_backend(self.model, backend),
            fill_hole_area=fill_hole_area,
            clear_non_cond_mem_around_input=clear_non_cond_mem_around_input,
            binarize_mask_from_pts_for_mem_enc=binarize_mask_from_pts_for_mem_enc,
            memory_temporal_stride_for_eval=memory_temporal_stride_for_eval,
            memory_dtype=memory_dtype,
            memory_selection=memory_selection,
        )
        self.non_overlap_masks = non_overlap_masks
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.memory_policy = memory_policy

    PREDICTOR_OPTIONS = (
        "fill_hole_area",
        "non_overlap_masks",
        "clear_non_cond_mem_around_input",
        "add_all_frames_to_correct_as_cond",
        "binarize_mask_from_pts_for_mem_enc",
        "memory_temporal_stride_for_eval",
        "memory_policy",
        "memory_dtype",
        "memory_selection",
        "backend",
    )

    @classmethod
    def from_pretrained(cls, model_id, device=None, **kwargs) -> Sam2VideoPredictor:
        """Hub repo id, saved folder or Meta `.pt`; predictor options and model loading kwargs may be mixed
        (see the class docstring's Args)."""
        options = {k: kwargs.pop(k) for k in cls.PREDICTOR_OPTIONS if k in kwargs}
        exported = exported_folder_backend(model_id, options.get("backend"), device, kwargs, needs_memory=True)
        if exported is not None:
            return cls(None, **{**options, "backend": exported})
        model = Sam2VideoModel.from_pretrained(model_id, **kwargs)
        if device is not None:
            model = model.to(device)
        return cls(model, **options)

    @property
    def device(self) -> torch.device:
        return self.backend.device

    # ------------------------------------------------------------------------------ session
    @torch.inference_mode()
    def init_state(
        self,
        video_path,
        offload_video_to_cpu=False,
        offload_state_to_cpu=False,
        async_loading_frames=False,
        memory_policy: str | None = None,
    ) -> VideoSession:
        """Open a video (file, frame folder, list/array of frames or a FrameSource) for tracking.

        Frames are decoded lazily, so the `offload_*`/`async_*` flags of the reference are accepted
        and have nothing left to do. The first frame is encoded right away, as the reference does.
        """
        policy = memory_policy or self.memory_policy
        check_policy(policy)
        session = VideoSession(open_frames(video_path), self.image_size, self.device, policy)
        self.attach(session)
        self.frame_features(session, 0)
        return session

    @torch.inference_mode()
    def reset_state(self, inference_state: VideoSession) -> None:
        """Remove every object, prompt and result (frames and cached features stay); the session's memory
        selection policy starts anew."""
        inference_state.clear_objects()
        self.attach(inference_state)

    # ------------------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def add_new_points_or_box(
        self,
        inference_state: VideoSession,
        frame_idx: int,
        obj_id,
        points=None,
        labels=None,
        clear_old_points=True,
        normalize_coords=True,
        box=None,
    ):
        """Clicks and/or a box for one object on one frame (Meta's `add_new_points_or_box`).

        points (K, 2) or (1, K, 2) as x, y and labels (K,) or (1, K): 1 positive, 0 negative (2 / 3: box
        corners); box (4,) as x0, y0, x1, y1. Coordinates are video pixels, or fractions in [0, 1] with
        `normalize_coords=False`. `clear_old_points=False` adds the clicks to the frame's earlier ones.
        Returns (frame_idx, obj_ids, masks (num_objects, 1, H, W) float32 logits at video resolution).
        Raises ValueError for a bad or empty prompt (see `Prompt`), IndexError for a frame out of range.
        """
        if box is not None and not clear_old_points:
            raise ValueError(
                "cannot add box without clearing old points, since box prompt must be provided before any "
                "point prompt (please use clear_old_points=True instead)"
            )
        prompt = Prompt(frame_idx, obj_id, points, labels, box, normalized=not normalize_coords)
        return self.add_prompt(inference_state, prompt, clear_old_points)

    add_new_points = add_new_points_or_box

    @torch.inference_mode()
    def add_new_mask(self, inference_state: VideoSession, frame_idx: int, obj_id, mask):
        """A mask (H, W) for one object on one frame (Meta's `add_new_mask`): binary, or float (probabilities or
        logits: the object is where it is >= 0.5, `Prompt.model_mask`); any size, resized to the model's input
        size. Returns (frame_idx, obj_ids, masks (num_objects, 1, H, W) logits)."""
        return self.add_prompt(inference_state, Prompt(frame_idx, obj_id, mask=mask))

    @torch.inference_mode()
    def add_prompt(self, inference_state: VideoSession, prompt: Prompt, clear_old_points: bool = True):
        """Apply one `Prompt` (clicks and/or box, or a mask) for `prompt.obj_id` on `prompt.frame`.

        The frame becomes a conditioning frame of the object when the object was not tracked there yet
        (or always, with `add_all_frames_to_correct_as_cond`); otherwise the result is a correction
        stored as a non-conditioning output, as in the reference. Memory encoding waits for the next
        propagation. Returns (frame_idx, obj_ids, masks (num_objects, 1, H, W) logits at video resolution).
        """
        state, frame_idx = inference_state, prompt.frame
        state.check_frame_index(frame_idx)
        if prompt.mask is None:  # checked against the frame before any state changes
            points, labels = prompt.model_points(state.video_height, state.video_width, self.image_size)
            points, labels = points.to(state.device), labels.to(state.device)
        self.frame_features(state, frame_idx)  # an unreadable frame fails here, before any state changes (then cached)
        obj = state.object(prompt.obj_id, create=True)
        is_init = frame_idx not in obj.tracked
        reverse = False if is_init else obj.tracked[frame_idx]
        is_cond = is_init or self.add_all_frames_to_correct_as_cond
        if prompt.mask is not None:
            mask = prompt.model_mask(self.image_size, state.device)
            obj.masks[frame_idx] = mask
            obj.points.pop(frame_idx, None)
            out = self.infer_prompted(state, obj, frame_idx, is_init, reverse, mask=mask)
        else:
            if not clear_old_points and frame_idx in obj.points:
                old_points, old_labels = obj.points[frame_idx]
                points, labels = torch.cat([old_points, points], 1), torch.cat([old_labels, labels], 1)
            obj.points[frame_idx] = (points, labels)
            obj.masks.pop(frame_idx, None)
            previous = obj.pending[is_cond].get(frame_idx) or obj.memory.get(frame_idx)
            prev_logits = None if previous is None else previous.mask_logits.clamp(-LOGIT_LIMIT, LOGIT_LIMIT)
            out = self.infer_prompted(
                state, obj, frame_idx, is_init, reverse, points=(points, labels), prev_logits=prev_logits
            )
        obj.pending[is_cond][frame_idx] = out
        return frame_idx, state.obj_ids, self._frame_masks(state, frame_idx, is_cond)

    @torch.inference_mode()
    def clear_all_prompts_in_frame(self, inference_state: VideoSession, frame_idx, obj_id, need_output=True):
        """Drop one object's prompts on a frame; a conditioning result there becomes an ordinary one."""
        state = inference_state
        obj = state.object(obj_id)
        obj.points.pop(frame_idx, None)
        obj.masks.pop(frame_idx, None)
        for pending in obj.pending.values():
            pending.pop(frame_idx, None)
        out = obj.memory.cond.pop(frame_idx, None)
        if out is not None:
            self.store(state, obj, frame_idx, out, conditioning=False)
            obj.tracked.pop(frame_idx, None)
        if not need_output:
            return None
        is_cond = any(frame_idx in o.pending[True] for o in state.objects.values())
        return frame_idx, state.obj_ids, self._frame_masks(state, frame_idx, is_cond)

    @torch.inference_mode()
    def remove_object(self, inference_state: VideoSession, obj_id, strict=False, need_output=True):
        """Forget an object; returns (obj_ids, [(frame_idx, masks) for the frames it had prompts on])."""
        state = inference_state
        if obj_id not in state.objects:
            if strict:
                raise RuntimeError(
                    f"Cannot remove object id {obj_id} as it doesn't exist. All existing object ids: {state.obj_ids}."
                )
            return state.obj_ids, []
        if len(state.objects) == 1:
            self.reset_state(state)
            return state.obj_ids, []
        obj = state.objects.pop(obj_id)
        prompted = sorted(set(obj.points) | set(obj.masks))
        obj.memory.clear()
        if not need_output:
            return state.obj_ids, []
        updated = []
        for frame_idx in prompted:
            is_cond = any(frame_idx in o.pending[True] for o in state.objects.values())
            updated.append((frame_idx, self._frame_masks(state, frame_idx, is_cond)))
        return state.obj_ids, updated

    # ------------------------------------------------------------------------------ tracking
    @torch.inference_mode()
    def propagate_in_video_preflight(self, inference_state: VideoSession) -> None:
        """Encode the memories of clicked frames and move them into the memory banks."""
        state = inference_state
        if not state.objects:
            raise RuntimeError("No input points or masks are provided for any object; please add inputs first.")
        for obj_id, obj in state.objects.items():
            for is_cond in (False, True):
                for frame_idx, out in obj.pending[is_cond].items():
                    if out.memory is None:
                        self.encode_prompted_memory(state, frame_idx, out)
                    self.store(state, obj, frame_idx, out, conditioning=is_cond)
                    if self.clear_non_cond_mem_around_input:
                        self.clear_non_cond_memory_around(obj, frame_idx)
                obj.pending[is_cond].clear()
            for frame_idx in obj.memory.cond:
                obj.memory.non_cond.pop(frame_idx)
            if not obj.memory.cond:
                raise RuntimeError(
                    f"No input points or masks are provided for object id {obj_id}; please add inputs first."
                )

    @torch.inference_mode()
    def propagate_in_video(
        self,
        inference_state: VideoSession,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ):
        """Yield (frame_idx, obj_ids, masks (num_objects, 1, H, W) logits) frame by frame."""
        state = inference_state
        self.propagate_in_video_preflight(state)
        if start_frame_idx is None:
            start_frame_idx = min(t for obj in state.objects.values() for t in obj.memory.cond)
        state.check_frame_index(start_frame_idx)
        for frame_idx in propagation_order(start_frame_idx, max_frame_num_to_track, state.num_frames, reverse):
            yield frame_idx, state.obj_ids, self.track_frame(state, frame_idx, reverse)

    @torch.inference_mode()
    def track_frame(self, state: VideoSession, frame_idx: int, reverse: bool) -> torch.Tensor:
        """Track every object on one frame; -> (num_objects, 1, H, W) logits at video resolution."""
        to_track = [obj for obj in state.objects.values() if frame_idx not in obj.memory.cond]
        if to_track:
            self.infer_tracked(state, to_track, frame_idx, reverse)
        for obj in state.objects.values():
            if self.clear_non_cond_mem_around_input and frame_idx in obj.memory.cond:
                self.clear_non_cond_memory_around(obj, frame_idx)
            obj.tracked[frame_idx] = reverse
        masks = torch.cat([obj.memory.get(frame_idx).mask_logits for obj in state.objects.values()])
        return self._to_video_resolution(state, masks)

    # ------------------------------------------------------------------------------ results
    def object_scores(self, state: VideoSession, frame_idx: int) -> dict:
        """Each object's object-score logit on a frame, from its newest result there (pending first, as
        `_frame_masks`): {obj_id: float}, > 0 where the model judges the object present; objects without a
        result on that frame are left out."""
        scores = {}
        for obj_id, obj in state.objects.items():
            out = obj.pending[True].get(frame_idx) or obj.pending[False].get(frame_idx) or obj.memory.get(frame_idx)
            if out is not None:
                scores[obj_id] = float(out.object_score_logits.reshape(-1)[0])
        return scores

    def _frame_masks(self, state: VideoSession, frame_idx: int, is_cond: bool) -> torch.Tensor:
        """Every object's newest result on a frame (pending first), -1024 where none: (N, 1, H, W)."""
        size = self.image_size // 4
        masks = []
        for obj in state.objects.values():
            out = obj.pending[is_cond].get(frame_idx) or obj.memory.get(frame_idx)
            masks.append(
                out.mask_logits
                if out is not None
                else torch.full((1, 1, size, size), NO_OBJECT_SCORE, device=state.device)
            )
        return self._to_video_resolution(state, torch.cat(masks))

    def _to_video_resolution(self, state: VideoSession, masks: torch.Tensor) -> torch.Tensor:
        masks = F.interpolate(masks, size=(state.video_height, state.video_width), mode="bilinear", align_corners=False)
        if self.non_overlap_masks:
            masks = self._apply_non_overlapping_constraints(masks)
        return masks

    @staticmethod
    def _apply_non_overlapping_constraints(pred_masks: torch.Tensor) -> torch.Tensor:
        """Meta's `SAM2Base._apply_non_overlapping_constraints` (its `tools/vos_inference.py` calls it):
        (N, 1, H, W) logits -> at each pixel only the highest-scoring object keeps its logit, the others
        are clamped to <= -10; one object is returned unchanged."""
        return apply_non_overlapping_constraints(pred_masks)
