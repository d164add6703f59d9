"""The model's output records (transformers `ModelOutput`s and the video tracking records) and their constants."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput

NO_OBJECT_SCORE = -1024.0  # mask logit used where the object is judged absent
MASK_AS_OUTPUT_SCALE, MASK_AS_OUTPUT_BIAS = 20.0, -10.0  # binary mask -> logits of +-10


@dataclass
class Sam2ImageSegmentationOutput(ModelOutput):
    """Image-mode outputs, as transformers' `Sam2ImageSegmentationOutput`.

    iou_scores (B, P, M), pred_masks (B, P, M, 4h, 4w) low-resolution logits, object_score_logits (B, P, 1),
    image_embeddings [stride-4 skip (B, 32, 4h, 4w), stride-8 skip (B, 64, 2h, 2w), (B, 256, h, w)].
    With `output_hidden_states` (from pixel_values): vision_hidden_states, the image encoder's embedded input and
    every block's output, channels-last (B, H_i, W_i, C_i). With `output_attentions`: vision_attentions (from
    pixel_values), every image encoder block's attention output, (B * windows, window, window, C_i) for windowed
    blocks and (B, H_i, W_i, C_i) for global ones, and mask_decoder_attentions, every two-way layer's
    image-to-token attention output (B * P, 1, h * w, 256). As in transformers, these are the attention layers'
    outputs, not attention probabilities.
    """

    iou_scores: torch.Tensor | None = None
    pred_masks: torch.Tensor | None = None
    object_score_logits: torch.Tensor | None = None
    image_embeddings: list[torch.Tensor] | None = None
    vision_hidden_states: tuple[torch.Tensor, ...] | None = None
    vision_attentions: tuple[torch.Tensor, ...] | None = None
    mask_decoder_attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class Sam2VisionEncoderOutput(BaseModelOutputWithPooling):
    """`get_image_features` output, as transformers' `Sam2VisionEncoderOutput`.

    last_hidden_state (B, S/32, S/32, C) the image encoder trunk's last stage, channels-last;
    fpn_hidden_states [(4h * 4w, B, 32), (2h * 2w, B, 64), (h * w, B, 256)] the decoder's projected skips and the
    stride-16 features as tokens; fpn_position_encoding the sine encodings of the three levels, (hw, B, 256) each;
    hidden_states / attentions: see `Sam2ImageSegmentationOutput.vision_hidden_states` / `vision_attentions`.
    """

    fpn_hidden_states: list[torch.Tensor] | None = None
    fpn_position_encoding: list[torch.Tensor] | None = None


@dataclass
class Sam2FrameFeatures(ModelOutput):
    """One frame's encoder output, shared by every prompt and object on it.

    image_embeddings (B, 256, h, w) stride-16 features (no memory, no `no_memory_embedding`),
    high_res_features [(B, 32, 4h, 4w), (B, 64, 2h, 2w)] decoder skips, position_embeddings (1, 256, h, w).
    """

    image_embeddings: torch.Tensor | None = None
    high_res_features: list[torch.Tensor] | None = None
    position_embeddings: torch.Tensor | None = None

    def select(self, index) -> Sam2FrameFeatures:
        """The features of some frames of the batch (index: int, slice or index tensor), batch dim kept."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Sam2FrameFeatures(
            self.image_embeddings[index], [f[index] for f in self.high_res_features], self.position_embeddings
        )


@dataclass
class Sam2FramePrediction(ModelOutput):
    """Masks of N objects on one frame (object-absent frames already gated to -1024).

    multimasks (N, M, 4h, 4w), iou_scores (N, M), masks (N, 1, 4h, 4w) the chosen one,
    high_res_masks (N, 1, S, S), object_pointer (N, 256), object_score_logits (N, 1), iou_score (N, 1) the
    chosen mask's predicted IoU (1 for a mask given as the output).
    """

    multimasks: torch.Tensor | None = None
    iou_scores: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    high_res_masks: torch.Tensor | None = None
    object_pointer: torch.Tensor | None = None
    object_score_logits: torch.Tensor | None = None
    iou_score: torch.Tensor | None = None


@dataclass
class FrameOutput:
    """One object on one frame.

    mask_logits (1, 1, 4h, 4w) fp32 low-resolution logits, object_pointer (1, 256),
    object_score_logits (1, 1), memory (1, 64, h, w) bf16 — None until the memory encoder ran
    (frames that received clicks are encoded when propagation starts), iou_score (1, 1) the chosen mask's
    predicted IoU (what memory selection policies may weigh; None for an output built without a prediction).
    """

    mask_logits: torch.Tensor
    object_pointer: torch.Tensor
    object_score_logits: torch.Tensor
    memory: torch.Tensor | None = None
    iou_score: torch.Tensor | None = None


@dataclass
class MemorySelection:
    """What one object's memory attention reads on one frame.

    spatial: (temporal index, output) — index 0 for conditioning frames, num_maskmem - k for the frame k steps
    back (`ReferenceSelection.select`);
    pointers: (temporal offset, output); max_pointers: the offset normaliser.
    """

    spatial: list[tuple[int, FrameOutput]]
    pointers: list[tuple[int, FrameOutput]]
    max_pointers: int

    @property
    def layout(self) -> tuple[int, int]:
        """Objects with the same layout can share one batched memory-attention call."""
        return len(self.spatial), len(self.pointers)


@dataclass
class Sam2HieraDetModelOutput(ModelOutput):
    """transformers' `Sam2HieraDetModelOutput`: last_hidden_state (B, S/32, S/32, 8C) the last stage,
    intermediate_hidden_states the four stages' last blocks (B, S/4/2^i, S/4/2^i, C_i), hidden_states /
    attentions as `Sam2ImageSegmentationOutput.vision_hidden_states` / `vision_attentions` (all channels-last)."""

    last_hidden_state: torch.Tensor | None = None
    intermediate_hidden_states: tuple[torch.Tensor, ...] | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
