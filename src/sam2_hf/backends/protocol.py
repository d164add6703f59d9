"""The compute seam: the four parts of SAM 2 that every predictor, the tracker, the transformers-style session, the
automatic mask generator and training reach compute through. An exported runtime (ONNX, OpenVINO, torch.export)
implements these four protocols; everything above them (mask choice, object-score gating, pointer gating,
upscaling, hole filling, non-overlap, memory storage and selection) is shared glue in `tracking/` and `predictors/`.

Shapes: S the model's input size (`config.image_size`), h = w = S / 16, N objects (or prompt sets) in a batch,
M = 3 (multimask) or 1 masks per object, K clicks; C = 256 (`fpn_hidden_size`), C_mem = 64
(`memory_encoder_output_channels`). Tensors are in the backend's `dtype` unless stated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from ..models.components.mask_decoder import DecoderOutput
from ..models.components.two_way_transformer import ImageProjections
from ..models.configuration import Sam2Config
from ..models.outputs import MemorySelection, Sam2FrameFeatures


class ImageEncoderPart(Protocol):
    """Hiera + FPN neck + the mask decoder's stride-4 / stride-8 projections, and the no-memory embedding."""

    def encode_frame(self, pixel_values: torch.Tensor) -> Sam2FrameFeatures:
        """(B, 3, S, S) normalized images -> features: image_embeddings (B, C, h, w), high_res_features
        [(B, 32, 4h, 4w), (B, 64, 2h, 2w)], position_embeddings (1, C, h, w)."""

    def image_only_embedding(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) features of a frame read without memory -> the same plus the learned no-memory embedding."""


class MaskDecoderPart(Protocol):
    """Prompt encoder + two-way transformer + mask, IoU and object-score heads, and the object-pointer MLP."""

    def decode(
        self,
        image_embeddings: torch.Tensor,
        high_res_features: list[torch.Tensor],
        points: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        mask_inputs: torch.Tensor | None = None,
        multimask_output: bool = True,
        empty_prompt_as_point: bool = True,
        image_projections: ImageProjections | None = None,
    ) -> DecoderOutput:
        """(N, C, h, w) embeddings (memory-conditioned or not), points (N, K, 2) in model-input pixels, labels
        (N, K), boxes (N, 4) pixels, mask_inputs (N, 1, H', W') logits -> masks (N, M, 4h, 4w) logits, iou_scores
        (N, M), mask_tokens (N, M, C), object_score_logits (N, 1). Without points or boxes a "not a point" click
        is used unless `empty_prompt_as_point=False`. image_projections: what `project_image` returned for these
        embeddings (batch N, or 1 when the N are one image's embedding repeated), never with mask_inputs."""

    def project_image(self, image_embeddings: torch.Tensor) -> ImageProjections | None:
        """(B, C, h, w) embeddings -> the decoder's prompt-independent work on them, done once for every later
        `decode` of the same image without a mask input; None where the backend's decoder does it in each call
        (an exported graph), which then ignores `image_projections`."""

    def downsample_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """(N, 1, S, S) mask -> (N, 1, 4h, 4w), the decoder's mask input (Meta's `mask_downsample`)."""

    def project_object_pointer(self, mask_token: torch.Tensor) -> torch.Tensor:
        """(N, C) the chosen mask's output token -> (N, C) object pointer (before gating)."""

    @property
    def no_object_pointer(self) -> torch.Tensor:
        """(1, C) the learned pointer of an object judged absent."""


class MemoryAttentionPart(Protocol):
    def condition_on_memory(self, features: Sam2FrameFeatures, selections: Sequence[MemorySelection]) -> torch.Tensor:
        """Frame features (batch 1, shared, or N) attended to each object's selected memories (one
        `MemorySelection` per object, all with the same `layout`) -> (N, C, h, w)."""


class MemoryEncoderPart(Protocol):
    def encode_memory(
        self,
        features: Sam2FrameFeatures,
        high_res_masks: torch.Tensor,
        object_score_logits: torch.Tensor,
        binarize: bool = False,
    ) -> torch.Tensor:
        """(N, 1, S, S) mask logits and (N, 1) object scores of a frame -> its memory (N, C_mem, h, w)."""


class Sam2Backend(Protocol):
    """What the glue above the seam holds: the four parts (the memory parts are None for an image model) and the
    read-only facts it needs. No compute happens outside the parts."""

    image_encoder: ImageEncoderPart
    mask_decoder: MaskDecoderPart
    memory_attention: MemoryAttentionPart | None
    memory_encoder: MemoryEncoderPart | None

    @property
    def config(self) -> Sam2Config:
        """The model's configuration (sizes, multimask rules, memory sizes); read, never changed."""

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...
