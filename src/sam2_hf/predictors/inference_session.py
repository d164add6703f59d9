"""transformers' video API (`Sam2VideoInferenceSession`, `Sam2VideoModel.forward(inference_session=...)`,
`propagate_in_video_iterator`) as a thin layer over the one tracking algorithm, `TrackingSteps`
(tracking/steps.py), which `Sam2VideoPredictor` runs too.

The session holds a `VideoSession` (objects, prompts, per-object memory storage with its bounded RAM and
`memory_policy`, the memory selection policy, the feature cache) and runs transformers' per-frame control
flow with the tracking steps: on each frame, every object either reuses its conditioning output, is segmented
from the inputs it was just given, or is tracked from its memory. Masks equal transformers' on the same
weights and pixels (tests/test_transformers_video_api.py).

Where transformers' `Sam2VideoModel` computes something other than Meta's `SAM2VideoPredictor` (and so
`Sam2VideoPredictor`), this API follows transformers; `Sam2VideoPredictor` keeps Meta's way:
- a click on a frame already tracked is decoded without the frame's previous mask logits as a dense
  prompt (Meta feeds them), and it stays a non-conditioning output tracking may overwrite (as in Meta);
- a frame becomes "tracked" for an object only when tracking (not its conditioning output) ran there,
  so a new click on an object's first prompted frame starts it over (Meta: it refines it);
- prompted frames are memory-encoded when the model runs on them, not when propagation starts (same
  numbers); a model call that segments new inputs encodes every object's memory of that frame from the
  thresholded mask, tracked objects included (Meta: the sigmoid of their masks);
- a mask prompt's memory is encoded from the mask itself (Meta: from its logits downsampled to the
  low-resolution mask and upscaled back, which moves the mask's edge by up to a pixel);
- memory selection has no stride (`memory_temporal_stride_for_eval` is 1), masks get no hole filling;
- streaming: object-pointer look-back is not capped by the number of frames seen so far.
Memories are stored in bfloat16, as transformers and Meta store them (computation stays in the model's dtype).
"""

from __future__ import annotations

import numbers
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers.utils import ModelOutput

from ..backends import BACKENDS, make_backend
from ..models.modeling import Sam2VideoModel
from ..models.outputs import MASK_AS_OUTPUT_BIAS, MASK_AS_OUTPUT_SCALE
from ..tracking import heads
from ..tracking.selection import MemorySelectionFactory
from ..tracking.state import ObjectState, VideoSession, propagation_order
from ..tracking.steps import TrackingSteps
from ..tracking.storage import check_policy

STREAM_BUFFER = 8  # frames given one at a time (`frame=` / `add_new_frame`) kept in memory, the newest


def check_backend(backend: str | None, dtype: torch.dtype) -> None:
    """ValueError for a backend name not in `BACKENDS`, or an exported backend with a dtype other than float32."""
    if backend in (None, "torch", "compile", "auto"):  # "auto" is "torch" in another dtype than float32
        return
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; expected one of {BACKENDS}.")
    if dtype != torch.float32:
        raise ValueError(f"backend={backend!r} computes in float32; init the session with dtype=torch.float32 "
                         f"(got {dtype}), or use backend='torch' for {dtype}.")  # fmt: skip


@dataclass
class Sam2VideoSegmentationOutput(ModelOutput):
    """One frame's masks for every object of a session, as transformers' `Sam2VideoSegmentationOutput`.

    object_ids: the session's object ids, in the order of the masks; pred_masks (num_objects, 1, S/4, S/4)
    low-resolution mask logits (`Sam2VideoProcessor.post_process_masks` brings them to the video's size);
    object_score_logits (num_objects, 1): > 0 where the object is judged present; frame_idx: the frame.
    """

    object_ids: list | None = None
    pred_masks: torch.Tensor | None = None
    object_score_logits: torch.Tensor | None = None
    frame_idx: int | None = None


class PixelFrames:
    """A session's frames as model input, (3, S, S) each: a video, and frames given one at a time.

    video: a (T, 3, S, S) tensor of pixel values, or any sequence of (3, S, S) frames (what
    `Sam2VideoProcessor.init_video_session` passes: the video preprocessed frame by frame on access, so
    it is never held whole); None for a stream. Frames given one at a time are kept for the newest
    `STREAM_BUFFER` (a stream may run for hours). Frames are handed out on `storage_device` in `dtype`.
    """

    def __init__(self, video: Sequence | None, storage_device, dtype: torch.dtype):
        self.video = video  # the whole video (None: a stream)
        self.pushed: OrderedDict[int, torch.Tensor] = OrderedDict()  # frame index -> (3, S, S), the newest
        self.count = 0 if video is None else len(video)  # frames the session has had
        self.storage_device = storage_device
        self.dtype = dtype

    @property
    def num_frames(self) -> int | None:
        """The video's length as memory selection reads it; None for a stream (it has no end yet)."""
        return None if self.video is None else self.count

    def push(self, pixel_values: torch.Tensor, frame_idx: int | None = None) -> int:
        """Add (3, S, S) or (1, 3, S, S) pixel values as frame `frame_idx` (default: the next one); -> its index."""
        frame_idx = self.count if frame_idx is None else int(frame_idx)
        pixels = pixel_values.to(self.storage_device, dtype=self.dtype)
        self.pushed[frame_idx] = pixels.squeeze(0) if pixels.dim() == 4 else pixels
        self.pushed.move_to_end(frame_idx)
        while len(self.pushed) > STREAM_BUFFER:
            self.pushed.popitem(last=False)
        self.count = max(self.count, frame_idx + 1)
        return frame_idx

    def get(self, frame_idx: int) -> torch.Tensor:
        """Frame `frame_idx` as (3, S, S) pixel values; IndexError for a frame the session does not have."""
        if frame_idx in self.pushed:
            return self.pushed[frame_idx]
        if self.video is not None and 0 <= frame_idx < len(self.video):
            return self.video[frame_idx].to(self.storage_device, dtype=self.dtype)
        streamed = f"; frames given one at a time are kept for the newest {STREAM_BUFFER}" if self.pushed else ""
        raise IndexError(f"Frame {frame_idx} is not in the session ({self.count} frames{streamed}).")


class PixelVideoSession(VideoSession):
    """The tracking state of a transformers session: frames come as model input (`PixelFrames`)."""

    def pixel_values(self, frame_idx: int) -> torch.Tensor:
        """Frame -> (1, 3, S, S) on the session's device, as given (already preprocessed)."""
        return self.frames.get(frame_idx).unsqueeze(0).to(self.device)


class Sam2VideoInferenceSession:
    """One video's tracking state for transformers' video API (see the module docstring).

    video: (T, 3, S, S) pixel values or a sequence of (3, S, S) frames (None when streaming); video_height,
    video_width: the original frame size (prompts are given in it; set by `add_inputs_to_inference_session`
    with `original_size=` when streaming). inference_device: where the model runs and features, prompts and
    memories are kept; inference_state_device: accepted (memories live on the inference device, the older
    ones spilled to disk: see `memory_policy`); video_storage_device / dtype: where and in which dtype
    frames are kept; max_vision_features_cache_size: frames whose image features are kept;
    memory_policy: what objects do with memories outside their RAM window ("disk", "window", "ram",
    see `sam2_hf.tracking.storage`); memory_selection: which memories a frame reads, a `MemorySelectionFactory`
    (tracking/selection.py; None: SAM 2's `ReferenceSelection`); backend: what runs the model's four parts (None
    or "torch": the model called; "onnxruntime", "openvino", "torch-export": its graphs, exported once into the
    cache, see `sam2_hf.backends`; exported graphs compute in float32, so `dtype` must be float32 with them).
    Raises ValueError for an unknown memory policy or backend, or a backend with another dtype.
    """

    def __init__(
        self,
        video: Sequence | None = None,
        video_height: int | None = None,
        video_width: int | None = None,
        inference_device: torch.device | str = "cpu",
        inference_state_device: torch.device | str = "cpu",
        video_storage_device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        max_vision_features_cache_size: int = 1,
        memory_policy: str = "disk",
        memory_selection: MemorySelectionFactory | None = None,
        backend: str | None = None,
    ):
        check_policy(memory_policy)
        check_backend(backend, dtype)
        self.video_height = video_height  # original frame size: prompts are scaled from it
        self.video_width = video_width
        self.inference_device = inference_device
        self.inference_state_device = inference_state_device
        self.video_storage_device = video_storage_device
        self.dtype = dtype
        self.max_vision_features_cache_size = max_vision_features_cache_size
        self.frames = PixelFrames(video, video_storage_device, dtype)  # model-input frames, by index
        # objects (in the order of `obj_ids`), their prompts and memory banks, the image-feature cache
        self.state = PixelVideoSession(
            self.frames, None, inference_device, memory_policy, feature_cache_size=max_vision_features_cache_size
        )
        self.obj_with_new_inputs: list = []  # objects whose newest inputs the model has not segmented yet
        self.memory_selection = memory_selection  # the selection policy's factory (None: SAM 2's)
        self.backend = backend  # what runs the model's parts (None: the model itself), made when the model is called
        self.steps: TrackingSteps | None = None  # the tracking steps over the model last called
        self._steps_model: Sam2VideoModel | None = None  # that model

    # ------------------------------------------------------------------------------ frames
    @property
    def num_frames(self) -> int | None:
        """Frames in the session (for a stream: frames given so far); None for a stream before its first frame."""
        return self.frames.count if self.frames.count or self.frames.video is not None else None

    def add_new_frame(self, pixel_values: torch.Tensor, frame_idx: int | None = None) -> int:
        """Add (3, S, S) or (1, 3, S, S) pixel values as frame `frame_idx` (default: after the last); -> its index."""
        return self.frames.push(pixel_values, frame_idx)

    def get_frame(self, frame_idx: int) -> torch.Tensor:
        """Frame `frame_idx` as (3, S, S) pixel values on the inference device."""
        return self.frames.get(frame_idx).to(self.inference_device)

    def check_frame_index(self, frame_idx: int, streaming_ok: bool = False) -> None:
        """IndexError unless frame_idx is a frame of the session (`streaming_ok`: or any later frame of a stream)."""
        n = self.num_frames
        open_ended = streaming_ok and self.frames.video is None
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, numbers.Integral) or frame_idx < 0:
            raise IndexError(f"A frame index must be an int >= 0; got {frame_idx!r}.")
        if not open_ended and (n is None or frame_idx >= n):
            raise IndexError(f"Frame index {frame_idx} is out of range for a video of {n or 0} frames.")

    # ------------------------------------------------------------------------------ objects
    @property
    def obj_ids(self) -> list:
        """Object ids in the order of the masks (the order they were first given inputs)."""
        return self.state.obj_ids

    def obj_id_to_idx(self, obj_id) -> int:
        """The index of object `obj_id` among `obj_ids`, adding the object if it is new."""
        self.state.object(obj_id, create=True)
        return self.obj_ids.index(obj_id)

    def obj_idx_to_id(self, obj_idx: int):
        """The id of the object at index `obj_idx` of `obj_ids`."""
        if not 0 <= obj_idx < self.get_obj_num():
            raise KeyError(
                f"No object at index {obj_idx}; the session has {self.get_obj_num()} objects: {self.obj_ids}."
            )
        return self.obj_ids[obj_idx]

    def get_obj_num(self) -> int:
        return len(self.state.objects)

    def _object(self, obj_idx: int) -> ObjectState:
        return self.state.objects[self.obj_idx_to_id(obj_idx)]

    # ------------------------------------------------------------------------------ prompts
    def add_point_inputs(self, obj_idx: int, frame_idx: int, inputs: dict) -> None:
        """Set an object's clicks on a frame: inputs["point_coords"] (1, 1, K, 2) in model-input pixels and
        inputs["point_labels"] (1, 1, K) (box corners first, labelled 2 and 3)."""
        device = self.inference_device
        coords, labels = inputs["point_coords"], inputs["point_labels"]
        self._object(obj_idx).points[frame_idx] = (coords[0].float().to(device), labels[0].long().to(device))

    def remove_point_inputs(self, obj_idx: int, frame_idx: int) -> None:
        self._object(obj_idx).points.pop(frame_idx, None)

    def add_mask_inputs(self, obj_idx: int, frame_idx: int, inputs: torch.Tensor) -> None:
        """Set an object's mask prompt on a frame: (1, 1, S, S) 0/1 at the model's input size."""
        self._object(obj_idx).masks[frame_idx] = inputs.float().to(self.inference_device)

    def remove_mask_inputs(self, obj_idx: int, frame_idx: int) -> None:
        self._object(obj_idx).masks.pop(frame_idx, None)

    @property
    def point_inputs_per_obj(self) -> dict:
        """{obj_idx: {frame_idx: {"point_coords": (1, 1, K, 2), "point_labels": (1, 1, K)}}} (a read-only view)."""
        return {
            i: {t: {"point_coords": xy[None], "point_labels": lab[None]} for t, (xy, lab) in obj.points.items()}
            for i, obj in enumerate(self.state.objects.values())
        }

    @property
    def mask_inputs_per_obj(self) -> dict:
        """{obj_idx: {frame_idx: (1, 1, S, S) mask}} (a read-only view)."""
        return {i: dict(obj.masks) for i, obj in enumerate(self.state.objects.values())}

    # ------------------------------------------------------------------------------ resets
    def reset_tracking_data(self) -> None:
        """Forget every object, prompt and result (frames and cached image features stay); the memory selection
        policy starts anew on the next model call."""
        self.state.clear_objects()
        self.obj_with_new_inputs = []
        self.steps = None

    def reset_inference_session(self) -> None:
        """`reset_tracking_data`, and the cached image features too."""
        self.reset_tracking_data()
        self.state.feature_cache.clear()

    # ------------------------------------------------------------------------------ segmentation
    def segment_frame(
        self,
        model: Sam2VideoModel,
        frame_idx: int | None,
        frame: torch.Tensor | None,
        reverse: bool,
        run_mem_encoder: bool,
    ) -> Sam2VideoSegmentationOutput:
        """What `Sam2VideoModel.forward(inference_session=...)` does: every object on one frame.

        frame (3, S, S) / (1, 3, S, S): pixel values of a streamed frame, added first (as frame `frame_idx`,
        default the next). Per object: new inputs on this frame are segmented (a conditioning output on a
        frame the object was not tracked on, else a correction); otherwise a conditioning output is reused;
        otherwise the object is tracked from its memory. Memories are encoded right away;
        `run_mem_encoder=False` is accepted, but a frame's memory is stored either way (transformers would
        store none and fail when a later frame reads it). -> `Sam2VideoSegmentationOutput`.
        """
        if frame is not None:
            frame_idx = self.add_new_frame(frame, frame_idx)
            if not self.state.objects:
                raise ValueError("No objects are provided for tracking; please add inputs first.")
        self.check_frame_index(frame_idx)
        steps = self._steps(model)
        prompted = [obj_id for obj_id in self.obj_with_new_inputs if self._has_inputs(obj_id, frame_idx)]
        to_track = [
            obj
            for obj_id, obj in self.state.objects.items()
            if obj_id not in prompted and frame_idx not in obj.memory.cond
        ]
        for obj in to_track:
            self._check_trackable(obj)
        if to_track:
            steps.infer_tracked(self.state, to_track, frame_idx, reverse, binarize=bool(prompted))
        for obj_id in prompted:
            self._segment_prompted(steps, obj_id, frame_idx, reverse)
        for obj in to_track:
            obj.tracked[frame_idx] = reverse
        outputs = [obj.memory.get(frame_idx) for obj in self.state.objects.values()]
        return Sam2VideoSegmentationOutput(
            object_ids=list(self.obj_ids),
            pred_masks=torch.cat([out.mask_logits for out in outputs]),
            object_score_logits=torch.cat([out.object_score_logits for out in outputs]),
            frame_idx=frame_idx,
        )

    def propagate(
        self,
        model: Sam2VideoModel,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
        show_progress_bar: bool = False,
    ):
        """What `Sam2VideoModel.propagate_in_video_iterator` does: `model(inference_session=self, frame_idx=t,
        reverse=reverse)` for every frame t from `start_frame_idx` (default: the earliest conditioning frame)
        over `max_frame_num_to_track` more frames (default: to the end / the start). Yields
        `Sam2VideoSegmentationOutput`s."""
        if start_frame_idx is None:
            cond_frames = [t for obj in self.state.objects.values() for t in obj.memory.cond]
            if not cond_frames:
                raise ValueError(
                    "Cannot determine the starting frame index; please specify it manually, or run inference on a "
                    "frame with inputs first."
                )
            start_frame_idx = min(cond_frames)
        self.check_frame_index(start_frame_idx)
        order = propagation_order(start_frame_idx, max_frame_num_to_track, self.num_frames, reverse)
        for frame_idx in tqdm(order, desc="propagate in video", disable=not show_progress_bar):
            yield model(inference_session=self, frame_idx=frame_idx, reverse=reverse)

    def _steps(self, model: Sam2VideoModel) -> TrackingSteps:
        """The tracking steps with transformers' settings (no hole filling, stride 1) over `model` (built on first
        use, or when the model changes, which also gives the session a new selection policy)."""
        if self.steps is None or self._steps_model is not model:
            backend = make_backend(model, self.backend)
            self.steps = TrackingSteps(backend, fill_hole_area=0, memory_selection=self.memory_selection)
            self.steps.attach(self.state)
            self._steps_model = model
        return self.steps

    def _has_inputs(self, obj_id, frame_idx: int) -> bool:
        obj = self.state.objects.get(obj_id)
        return obj is not None and (frame_idx in obj.points or frame_idx in obj.masks)

    def _check_trackable(self, obj: ObjectState) -> None:
        """ValueError for an object that has nothing to be tracked from yet (no conditioning output)."""
        if not obj.memory.cond:
            obj_id = next(i for i, o in self.state.objects.items() if o is obj)
            frames = sorted(set(obj.points) | set(obj.masks))
            raise ValueError(
                f"Object {obj_id!r} has no conditioning output to be tracked from: its inputs (on frames {frames}) "
                "were not segmented. Run the model on a frame right after adding inputs there "
                "(each add_inputs_to_inference_session call replaces `obj_with_new_inputs`)."
            )

    def _segment_prompted(self, steps: TrackingSteps, obj_id, frame_idx: int, reverse: bool) -> None:
        """Segment an object from its new inputs on a frame, store the output with its memory, mark the inputs used."""
        obj = self.state.objects[obj_id]
        is_init = frame_idx not in obj.tracked
        mask = obj.masks.get(frame_idx)
        out = steps.infer_prompted(
            self.state,
            obj,
            frame_idx,
            is_init,
            False if is_init else reverse,
            points=obj.points.get(frame_idx),
            mask=mask,
        )
        if mask is None:
            steps.encode_prompted_memory(self.state, frame_idx, out)
        else:  # transformers' pointer for a mask prompt, and the memory of the mask itself
            features = steps.frame_features(self.state, frame_idx)
            out.object_pointer = heads.mask_prompt_pointer(steps.backend, features, mask)
            steps.encode_prompted_memory(self.state, frame_idx, out, MASK_AS_OUTPUT_SCALE * mask + MASK_AS_OUTPUT_BIAS)
        if is_init:
            obj.memory.non_cond.pop(frame_idx)
        else:
            obj.tracked[frame_idx] = reverse
        steps.store(self.state, obj, frame_idx, out, conditioning=is_init, reverse=reverse)
        self.obj_with_new_inputs.remove(obj_id)
