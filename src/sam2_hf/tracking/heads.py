"""The glue between the mask decoder and the tracking state, above the compute seam, once: which mask of the
decoder's candidates an object gets, object-score gating of masks and pointers, a mask prompt taken as the output,
and upscaling to the model's input size. Every video face (Meta's predictor, the transformers session, the
tracker, segment-everything tracking) and training call these on a backend (backends/protocol.py); none of them
computes anything itself.

Follows the reference's `SAM2Base._forward_sam_heads` (mask choice, gating) and `_use_mask_as_output`.
Shapes: N objects, M = 3 or 1 candidate masks, S the model's input size, h = w = S / 16, C = 256.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..backends.protocol import Sam2Backend
from ..models.configuration import Sam2VideoConfig
from ..models.outputs import (
    MASK_AS_OUTPUT_BIAS,
    MASK_AS_OUTPUT_SCALE,
    NO_OBJECT_SCORE,
    Sam2FrameFeatures,
    Sam2FramePrediction,
)
from ..processing.mask_postprocessing import upscale_masks


def use_multimask(config: Sam2VideoConfig, is_init_cond_frame: bool, num_points: int) -> bool:
    """Whether the decoder outputs 3 masks on a frame (the reference's `SAM2Base._use_multimask`): on initial
    conditioning frames (and tracked frames with `multimask_output_for_tracking`) with between
    `multimask_min_pt_num` and `multimask_max_pt_num` clicks (a box's 2 corners count)."""
    return (
        config.multimask_output_in_sam
        and (is_init_cond_frame or config.multimask_output_for_tracking)
        and config.multimask_min_pt_num <= num_points <= config.multimask_max_pt_num
    )


def gate_object_pointer(pointer: torch.Tensor, present: torch.Tensor, no_object_pointer: torch.Tensor) -> torch.Tensor:
    """(N, C) pointers, (N, 1) presence (bool or 0/1) -> the pointers of absent objects replaced by the learned
    `no_object_pointer` (1, C): (N, C) in pointer's dtype."""
    present = present.to(pointer.dtype)
    return present * pointer + (1 - present) * no_object_pointer


def upscale_to_input_size(masks: torch.Tensor, image_size: int) -> torch.Tensor:
    """Low-resolution logits (N, M, 4h, 4w) -> (N, M, S, S) float32, bilinear (align_corners=False)."""
    return upscale_masks(masks, (image_size, image_size))


def predict_masks(
    backend: Sam2Backend,
    embeddings: torch.Tensor,
    high_res_features: list[torch.Tensor],
    points: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    mask_inputs: torch.Tensor | None = None,
    multimask_output: bool = False,
) -> Sam2FramePrediction:
    """The mask decoder on (memory-conditioned) embeddings (N, C, h, w), one prompt set per object (points
    (N, K, 2) model-input pixels, labels (N, K), mask_inputs (N, 1, 4h, 4w) logits) -> `Sam2FramePrediction`.

    Masks of objects judged absent (object score <= 0) become `NO_OBJECT_SCORE`; with multimask output the
    candidate with the highest predicted IoU is chosen; the object pointer is projected from that candidate's
    output token only, and absent objects get `no_object_pointer`."""
    decoder = backend.mask_decoder
    out = decoder.decode(embeddings, high_res_features, points, labels, None, mask_inputs, multimask_output)
    present = out.object_score_logits > 0  # (N, 1)
    multimasks = torch.where(present[..., None, None], out.masks, NO_OBJECT_SCORE).float()
    best = out.iou_scores.argmax(dim=-1) if multimask_output else torch.zeros_like(present[:, 0], dtype=torch.long)
    rows = torch.arange(multimasks.shape[0], device=multimasks.device)
    masks = multimasks[rows, best].unsqueeze(1)
    token = out.mask_tokens[rows, best if out.mask_tokens.shape[1] > 1 else 0]
    pointer = gate_object_pointer(decoder.project_object_pointer(token), present.float(), decoder.no_object_pointer)
    return Sam2FramePrediction(
        multimasks=multimasks,
        iou_scores=out.iou_scores,
        masks=masks,
        iou_score=out.iou_scores[rows, best].unsqueeze(1),
        high_res_masks=upscale_to_input_size(masks, backend.config.image_size),
        object_pointer=pointer,
        object_score_logits=out.object_score_logits,
    )


def predict_from_mask_input(
    backend: Sam2Backend, features: Sam2FrameFeatures, mask: torch.Tensor
) -> Sam2FramePrediction:
    """A given binary mask (N, 1, S, S) taken as the output itself (logits +-10; the reference's
    `_use_mask_as_output`). The decoder only runs, on memory-free features, for the object pointer."""
    mask = mask.float()
    high_res = mask * MASK_AS_OUTPUT_SCALE + MASK_AS_OUTPUT_BIAS
    low_res = F.interpolate(
        high_res,
        size=(high_res.shape[-2] // 4, high_res.shape[-1] // 4),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    mask_input = backend.mask_decoder.downsample_mask(mask)
    token_source = predict_masks(backend, features.image_embeddings, features.high_res_features, mask_inputs=mask_input)
    present = (mask.flatten(1) > 0).any(dim=1, keepdim=True).float()
    return Sam2FramePrediction(
        multimasks=low_res,
        iou_scores=mask.new_ones(mask.shape[0], 1),
        masks=low_res,
        iou_score=mask.new_ones(mask.shape[0], 1),
        high_res_masks=high_res,
        object_pointer=gate_object_pointer(
            token_source.object_pointer, present, backend.mask_decoder.no_object_pointer
        ),
        object_score_logits=MASK_AS_OUTPUT_SCALE * present + MASK_AS_OUTPUT_BIAS,
    )


def mask_prompt_pointer(backend: Sam2Backend, features: Sam2FrameFeatures, mask: torch.Tensor) -> torch.Tensor:
    """A mask prompt's object pointer as transformers computes it: (N, C) from the best of the decoder's three
    masks for the downsampled mask (N, 1, S, S) (Meta, and `predict_from_mask_input`, take its single-mask
    output), replaced by `no_object_pointer` for an empty mask."""
    dense = backend.mask_decoder.downsample_mask(mask)
    pointer = predict_masks(
        backend, features.image_embeddings, features.high_res_features, mask_inputs=dense, multimask_output=True
    ).object_pointer
    return gate_object_pointer(
        pointer, mask.flatten(1).any(dim=1, keepdim=True), backend.mask_decoder.no_object_pointer
    )
