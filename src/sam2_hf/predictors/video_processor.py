"""`Sam2VideoProcessor`: transformers' video processor API (sessions and their prompts) on `Sam2Processor`.

    processor = Sam2VideoProcessor.from_pretrained("facebook/sam2.1-hiera-tiny")
    session = processor.init_video_session(video=frames)          # (T, H, W, 3), a list of frames or a path
    processor.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=1,
                                              input_points=[[[[210, 350]]]], input_labels=[[[1]]])
    outputs = model(inference_session=session, frame_idx=0)       # sam2_hf.Sam2VideoModel
    masks = processor.post_process_masks([outputs.pred_masks], [[session.video_height, session.video_width]])[0]

Frames are preprocessed by the image processor (the same pixels `processor(images=frame)` gives when
streaming) one at a time when the model reads them, so a session never holds the whole video as
pixel values (transformers' does, 12 MiB per frame at 1024 x 1024). With the default
`rescale_before_resize=True` pixels are resized as Meta does (floats); transformers resizes uint8 and
rounds, which `Sam2ImageProcessor(rescale_before_resize=False)` reproduces exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers.models.sam2_video.video_processing_sam2_video import (
    Sam2VideoVideoProcessor as _StockSam2VideoVideoProcessor,
)

from ..media.frames import FrameSource, open_frames
from ..processing.image_processing import Sam2ImageProcessor
from ..processing.processor import Sam2Processor
from ..processing.prompts import BOX_BOTTOM_RIGHT, BOX_TOP_LEFT, Prompt, check_not_empty
from ..tracking.selection import MemorySelectionFactory
from .inference_session import Sam2VideoInferenceSession

# the image processor's settings a default `Sam2VideoVideoProcessor` takes
VIDEO_PROCESSOR_KEYS = (
    "do_convert_rgb",
    "do_normalize",
    "do_rescale",
    "do_resize",
    "image_mean",
    "image_std",
    "resample",
    "rescale_factor",
    "size",
)


class PreprocessedVideo:
    """The frames of a `FrameSource` as model input, each preprocessed when read: (3, S, S) float32."""

    def __init__(self, frames: FrameSource, image_processor, device=None):
        self.frames = frames
        self.image_processor = image_processor
        self.device = device

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> torch.Tensor:
        pixels = self.image_processor(self.frames.frame(index), return_tensors="pt", device=self.device)
        return pixels["pixel_values"][0]


class Sam2VideoVideoProcessor(_StockSam2VideoVideoProcessor):
    """transformers' `Sam2VideoVideoProcessor` (resize to S x S, rescale, ImageNet normalization of whole
    videos), the `video_processor` part of `Sam2VideoProcessor`: saved, loaded and callable as stock's.
    Sessions do not use it: they preprocess each frame with the image processor when the model reads it."""


class Sam2VideoProcessor(Sam2Processor):
    """`Sam2Processor` plus transformers' video sessions: `init_video_session` and
    `add_inputs_to_inference_session`; transformers' `ProcessorMixin` with an image and a video processor.

    image_processor: `Sam2ImageProcessor` (default 1024 px); video_processor: `Sam2VideoVideoProcessor`
    (default: the image processor's size, scaling and statistics); target_size, point_pad_value: as
    `Sam2Processor`.
    """

    def __init__(
        self, image_processor=None, video_processor=None, target_size=None, point_pad_value: int = -10, **kwargs
    ):
        image_processor = image_processor if image_processor is not None else Sam2ImageProcessor()
        if video_processor is None:
            settings = {key: getattr(image_processor, key) for key in VIDEO_PROCESSOR_KEYS}
            video_processor = Sam2VideoVideoProcessor(**settings)
        super().__init__(image_processor, target_size, point_pad_value, video_processor=video_processor, **kwargs)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        """The saved image processor (as `Sam2Processor`) and video processor (built from the image
        processor's settings when the folder has none, as older Hub folders)."""
        (image_processor,) = super()._get_arguments_from_pretrained(pretrained_model_name_or_path, **kwargs)
        kwargs.pop("subfolder", None)
        try:
            video_processor = Sam2VideoVideoProcessor.from_pretrained(pretrained_model_name_or_path, **kwargs)
        except OSError:
            video_processor = None
        return [image_processor, video_processor]

    def init_video_session(
        self,
        video=None,
        inference_device: torch.device | str = "cpu",
        inference_state_device: torch.device | str | None = None,
        processing_device: torch.device | str | None = None,
        video_storage_device: torch.device | str | None = None,
        max_vision_features_cache_size: int = 1,
        dtype: torch.dtype = torch.float32,
        memory_policy: str = "disk",
        memory_selection: MemorySelectionFactory | None = None,
        backend: str | None = None,
    ) -> Sam2VideoInferenceSession:
        """A session for `video`, or for frames streamed one at a time (`video=None`).

        video: (T, H, W, 3) numpy array or tensor ((T, 3, H, W) too), a list of frames (PIL images, (H, W, 3)
        arrays, (3, H, W) tensors), a video file or a folder of frames (read lazily). Devices default to
        `inference_device`; `processing_device` is where frames are preprocessed. memory_policy, memory_selection,
        backend (e.g. "onnxruntime": the model's parts run exported): see `Sam2VideoInferenceSession`.
        """
        storage_device = video_storage_device if video_storage_device is not None else inference_device
        frames, height, width = None, None, None
        if video is not None:
            source = _frame_source(video)
            height, width = source.height, source.width
            frames = PreprocessedVideo(source, self.image_processor, processing_device or inference_device)
        return Sam2VideoInferenceSession(
            video=frames,
            video_height=height,
            video_width=width,
            inference_device=inference_device,
            inference_state_device=inference_state_device if inference_state_device is not None else inference_device,
            video_storage_device=storage_device,
            dtype=dtype,
            max_vision_features_cache_size=max_vision_features_cache_size,
            memory_policy=memory_policy,
            memory_selection=memory_selection,
            backend=backend,
        )

    def add_inputs_to_inference_session(
        self,
        inference_session: Sam2VideoInferenceSession,
        frame_idx: int,
        obj_ids,
        input_points=None,
        input_labels=None,
        input_boxes=None,
        input_masks=None,
        original_size=None,
        clear_old_inputs: bool = True,
    ) -> None:
        """Give objects clicks, boxes or masks on one frame; the model segments them when it runs on that frame.

        obj_ids: one id or a list (any hashable ids), one per object of the prompts. input_points
        [[obj][point][x, y]] nested in one more list (the image level), input_labels [[obj][point]] likewise
        (1 positive, 0 negative), input_boxes [[x0, y0, x1, y1] per object], in the video's pixels; or
        input_masks, one (H, W) mask per object (any size; binary, or float such as probabilities or logits: the
        object is where it is >= 0.5, see `Prompt.model_mask`; not with points or boxes).
        A box becomes two points labelled 2 and 3 before the clicks. original_size (H, W): the frame size
        when streaming. clear_old_inputs=False adds the clicks to the object's earlier ones on this frame.
        Each call replaces the session's `obj_with_new_inputs` with `obj_ids`.
        Raises ValueError for a bad prompt (`Prompt`'s messages), `EmptyPromptError` naming an empty prompt
        argument, IndexError for a frame outside the video.
        """
        prompts = dict(
            input_points=input_points, input_labels=input_labels, input_boxes=input_boxes, input_masks=input_masks
        )
        for name, value in prompts.items():
            check_not_empty(value, name, "Sam2VideoProcessor.add_inputs_to_inference_session")
        obj_ids = list(obj_ids) if isinstance(obj_ids, (list, tuple)) else [obj_ids]
        if (input_points is None) != (input_labels is None):
            raise ValueError("points and labels must be provided together")
        if input_points is None and input_boxes is None and input_masks is None:
            Prompt(frame_idx, obj_ids[0] if obj_ids else None)  # raises the empty-prompt error
        if input_masks is not None and (input_points is not None or input_boxes is not None):
            raise ValueError("masks cannot be provided together with points or boxes")
        inference_session.check_frame_index(frame_idx, streaming_ok=True)
        if input_masks is not None:
            self.process_new_mask_for_video_frame(inference_session, frame_idx, obj_ids, input_masks)
        else:
            self.process_new_points_or_boxes_for_video_frame(
                inference_session,
                frame_idx,
                obj_ids,
                input_points,
                input_labels,
                input_boxes,
                original_size,
                clear_old_inputs,
            )

    def process_new_points_or_boxes_for_video_frame(
        self,
        inference_session: Sam2VideoInferenceSession,
        frame_idx: int,
        obj_ids: list,
        input_points=None,
        input_labels=None,
        input_boxes=None,
        original_size=None,
        clear_old_inputs: bool = True,
    ) -> None:
        """Clicks and/or boxes for `obj_ids` on one frame, rescaled to model-input pixels and stored
        (see `add_inputs_to_inference_session`); objects with fewer clicks keep their padding points."""
        if original_size is not None:
            inference_session.video_height, inference_session.video_width = (int(v) for v in original_size)
        elif inference_session.video_height is None or inference_session.video_width is None:
            raise ValueError("original_size must be provided when adding points or boxes on a first streamed frame")
        if input_boxes is not None and not clear_old_inputs:
            raise ValueError(
                "cannot add box without clearing old points, since box prompt must be provided before any point "
                "prompt (please use clear_old_points=True instead)"
            )
        size = [[inference_session.video_height, inference_session.video_width]]
        inputs = self(
            input_points=input_points,
            input_labels=input_labels,
            input_boxes=input_boxes,
            original_sizes=size,
            return_tensors="pt",
        )
        n = len(obj_ids)
        for name in ("input_points", "input_labels", "input_boxes"):
            if name in inputs and inputs[name].shape[1] != n:
                raise ValueError(
                    f"Number of object ids ({n}) does not match number of {name[6:]} ({inputs[name].shape[1]})"
                )
        points = inputs.get("input_points", torch.zeros(1, n, 0, 2))
        labels = inputs.get("input_labels", torch.zeros(1, n, 0, dtype=torch.int64))
        if "input_boxes" in inputs:
            corners = torch.tensor([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]).repeat(1, n, 1)
            points = torch.cat([inputs["input_boxes"].reshape(1, n, 2, 2), points], dim=2)
            labels = torch.cat([corners, labels], dim=2)
        earlier = inference_session.point_inputs_per_obj
        for i, obj_id in enumerate(obj_ids):
            obj_idx = inference_session.obj_id_to_idx(obj_id)
            coords, obj_labels = points[:, i : i + 1], labels[:, i : i + 1]
            old = None if clear_old_inputs else earlier.get(obj_idx, {}).get(frame_idx)
            if old is not None:
                coords = torch.cat([old["point_coords"].cpu(), coords], dim=2)
                obj_labels = torch.cat([old["point_labels"].cpu(), obj_labels], dim=2)
            inference_session.add_point_inputs(obj_idx, frame_idx, {"point_coords": coords, "point_labels": obj_labels})
            inference_session.remove_mask_inputs(obj_idx, frame_idx)
        inference_session.obj_with_new_inputs = obj_ids

    def process_new_mask_for_video_frame(
        self, inference_session: Sam2VideoInferenceSession, frame_idx: int, obj_ids: list, input_masks
    ) -> None:
        """Mask prompts for `obj_ids` on one frame: one (H, W) mask each (also (1, H, W) or (1, 1, H, W); a
        list, or one mask for one object), resized to the model's input size (antialiased, >= 0.5:
        `Prompt.model_mask`) and stored."""
        masks = input_masks if isinstance(input_masks, list) else [input_masks]
        if len(masks) != len(obj_ids):
            raise ValueError(f"Number of object ids ({len(obj_ids)}) does not match number of masks ({len(masks)})")
        prompts = [Prompt(frame_idx, obj_id, mask=_mask_2d(mask)) for obj_id, mask in zip(obj_ids, masks)]
        for prompt in prompts:
            obj_idx = inference_session.obj_id_to_idx(prompt.obj_id)
            mask = prompt.model_mask(self.target_size, inference_session.inference_device)
            inference_session.add_mask_inputs(obj_idx, frame_idx, mask)
            inference_session.remove_point_inputs(obj_idx, frame_idx)
        inference_session.obj_with_new_inputs = obj_ids


def _frame_source(video) -> FrameSource:
    """A video in any form `init_video_session` takes -> a `FrameSource` (frames read and checked on access)."""
    if isinstance(video, (list, tuple)) and len(video) == 1 and getattr(video[0], "ndim", 0) == 4:
        video = video[0]  # a batch of one video, as transformers' processors take it
    if isinstance(video, torch.Tensor):
        video = list(video)  # (3, H, W) or (H, W, 3) frames, told apart by `to_rgb_pixels`
    return open_frames(video)


def _mask_2d(mask):
    """A mask given as (H, W), (1, H, W) or (1, 1, H, W) -> (H, W); other shapes are left for `Prompt` to refuse."""
    if not isinstance(mask, torch.Tensor):
        mask = np.asarray(mask)
    if mask.ndim in (3, 4) and all(side == 1 for side in mask.shape[:-2]):
        mask = mask.reshape(mask.shape[-2:])
    return mask
