"""Mask decoder: output tokens + prompt tokens attend to the image embedding, then masks are
predicted by dot products of per-token hypernetwork vectors with an upscaled embedding that is
fused with the high-resolution (stride 4 and 8) features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import FeedForward, LayerNorm2d
from .two_way_transformer import ImageProjections, TwoWayTransformer


@dataclass
class DecoderOutput:
    masks: torch.Tensor  # (N, M, 4h, 4w) low-resolution mask logits, M = 3 (multimask), 1, or 4 (all, unchosen)
    iou_scores: torch.Tensor  # (N, M)
    mask_tokens: torch.Tensor  # (N, M, C) output tokens of the returned masks (for object pointers)
    object_score_logits: torch.Tensor  # (N, 1): > 0 means the object is present
    attentions: tuple[torch.Tensor, ...] | None = None  # per two-way layer, image-to-token attention output (N, HW, C)


class MaskDecoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = config.hidden_size
        self.config = config
        self.num_mask_tokens = config.num_multimask_outputs + 1
        self.obj_score_token = nn.Embedding(1, c)
        self.iou_token = nn.Embedding(1, c)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, c)
        self.transformer = TwoWayTransformer(config)
        self.upscale_conv1 = nn.ConvTranspose2d(c, c // 4, kernel_size=2, stride=2)
        self.upscale_layer_norm = LayerNorm2d(c // 4)
        self.upscale_conv2 = nn.ConvTranspose2d(c // 4, c // 8, kernel_size=2, stride=2)
        self.activation = nn.GELU()
        self.conv_s0 = nn.Conv2d(c, c // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(c, c // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            FeedForward(c, c, c // 8, num_layers=3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = FeedForward(
            c, config.iou_head_hidden_dim, self.num_mask_tokens, config.iou_head_depth, sigmoid_output=True
        )
        self.pred_obj_score_head = FeedForward(c, c, 1, num_layers=3)
        self.dynamic_multimask_via_stability = config.dynamic_multimask_via_stability
        self.stability_delta = config.dynamic_multimask_stability_delta
        self.stability_thresh = config.dynamic_multimask_stability_thresh

    def project_high_res_features(self, stride4: torch.Tensor, stride8: torch.Tensor) -> list[torch.Tensor]:
        """256-channel FPN maps -> the decoder's skip inputs [(B, C/8, 4h, 4w), (B, C/4, 2h, 2w)]."""
        return [self.conv_s0(stride4), self.conv_s1(stride8)]

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_embeddings: torch.Tensor,
        dense_embeddings: torch.Tensor,
        high_res_features: list[torch.Tensor],
        multimask_output: bool,
        attention_similarity: torch.Tensor | None = None,
        target_embedding: torch.Tensor | None = None,
        output_attentions: bool = False,
        sparse_padding: torch.Tensor | None = None,
        image_projections: ImageProjections | None = None,
    ) -> DecoderOutput:
        """One decoding per prompt set: `all_outputs`, then the masks `multimask_output` asks for
        (`choose_outputs`)."""
        out = self.all_outputs(
            image_embeddings, image_pe, sparse_embeddings, dense_embeddings, high_res_features, attention_similarity,
            target_embedding, output_attentions, sparse_padding, image_projections,
        )  # fmt: skip
        return choose_outputs(out, multimask_output, self.stability_rule())

    def all_outputs(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_embeddings: torch.Tensor,
        dense_embeddings: torch.Tensor,
        high_res_features: list[torch.Tensor],
        attention_similarity: torch.Tensor | None = None,
        target_embedding: torch.Tensor | None = None,
        output_attentions: bool = False,
        sparse_padding: torch.Tensor | None = None,
        image_projections: ImageProjections | None = None,
    ) -> DecoderOutput:
        """The four outputs (single-mask, then three multimask) of each prompt set: masks (N, 4, 4h, 4w),
        iou_scores (N, 4), mask_tokens (N, 4, C), object_score_logits (N, 1).

        image_embeddings (N, C, h, w), image_pe (1, C, h, w), sparse_embeddings (N, T, C),
        dense_embeddings (N or 1, C, h, w), high_res_features projected skips with batch N;
        attention_similarity, target_embedding and output_attentions: see `TwoWayTransformer.forward`
        (T there counts the 6 output tokens before the sparse ones). sparse_padding (N, T) bool: sparse
        tokens no token or image position attends to (batch padding; `PromptEncoder.forward`).
        image_projections: `project_image` of these embeddings and dense embeddings (batch N, or 1 when the N are
        one image's embedding repeated), else computed here.
        """
        n, c, h, w = image_embeddings.shape
        output_tokens = torch.cat([self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight])
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(n, -1, -1), sparse_embeddings], dim=1)
        image, image_pe = image_tokens(image_embeddings, dense_embeddings, image_pe)
        token_mask = None
        if sparse_padding is not None:
            padding = torch.cat([sparse_padding.new_zeros(n, output_tokens.shape[0]), sparse_padding], dim=1)
            token_mask = torch.zeros(padding.shape, dtype=tokens.dtype, device=tokens.device)
            token_mask = token_mask.masked_fill(padding, float("-inf"))[:, None, None]  # (N, 1, 1, T) score bias
        hs, image, attentions = self.transformer(
            tokens, image, image_pe, attention_similarity, target_embedding, output_attentions, token_mask,
            image_projections,
        )  # fmt: skip

        image = image.transpose(1, 2).reshape(n, c, h, w)
        feat_s0, feat_s1 = high_res_features
        upscaled = self.activation(self.upscale_layer_norm(self.upscale_conv1(image) + feat_s1))
        upscaled = self.activation(self.upscale_conv2(upscaled) + feat_s0)

        mask_tokens = hs[:, 2 : 2 + self.num_mask_tokens]
        hyper_in = torch.stack([mlp(mask_tokens[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], 1)
        masks = (hyper_in @ upscaled.flatten(2)).view(n, -1, *upscaled.shape[-2:])
        iou_scores = self.iou_prediction_head(hs[:, 1])
        object_score_logits = self.pred_obj_score_head(hs[:, 0])

        return DecoderOutput(masks, iou_scores, mask_tokens, object_score_logits, attentions)

    def project_image(
        self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, dense_embeddings: torch.Tensor
    ) -> ImageProjections:
        """image_embeddings (B, C, h, w), image_pe (1, C, h, w), dense_embeddings (B or 1, C, h, w) -> the
        two-way transformer's prompt-independent `ImageProjections` (each (B, hw, C / attention_downsample_rate)),
        to pass to `all_outputs` for any prompt tokens with the same dense embeddings."""
        return self.transformer.project_image(*image_tokens(image_embeddings, dense_embeddings, image_pe))

    def stability_rule(self) -> tuple[float, float] | None:
        """(delta, threshold) of the single-mask stability check (`select_stable_mask`) when it applies: at
        inference with `dynamic_multimask_via_stability`; else None."""
        if self.dynamic_multimask_via_stability and not self.training:
            return self.stability_delta, self.stability_thresh
        return None


def image_tokens(image_embeddings: torch.Tensor, dense_embeddings: torch.Tensor, image_pe: torch.Tensor):
    """(N, C, h, w) embeddings plus the (N or 1, C, h, w) dense prompt embedding, and the (1, C, h, w) position
    encoding -> the two-way transformer's image tokens (N, hw, C) and their positions (N, hw, C)."""
    image = (image_embeddings + dense_embeddings).flatten(2).transpose(1, 2)
    return image, image_pe.flatten(2).transpose(1, 2).expand(image.shape[0], -1, -1)


def choose_outputs(out: DecoderOutput, multimask_output: bool, stability: tuple[float, float] | None) -> DecoderOutput:
    """All four outputs (N, 4, ...) of the mask decoder -> the three multimask outputs, or the single-mask one
    (replaced by the best multimask output where it is unstable when `stability` = (delta, threshold) is given;
    the mask token stays the single-mask one, as the reference's object pointer reads it)."""
    if multimask_output:
        return DecoderOutput(
            out.masks[:, 1:], out.iou_scores[:, 1:], out.mask_tokens[:, 1:], out.object_score_logits, out.attentions
        )
    masks, iou_scores = out.masks[:, :1], out.iou_scores[:, :1]
    if stability is not None:
        masks, iou_scores = select_stable_mask(out.masks, out.iou_scores, *stability)
    return DecoderOutput(masks, iou_scores, out.mask_tokens[:, :1], out.object_score_logits, out.attentions)


def select_stable_mask(masks: torch.Tensor, iou_scores: torch.Tensor, delta: float, threshold: float):
    """Keep the single-mask output where it is stable, else the best-IoU multimask output.

    masks (N, 4, H, W), iou_scores (N, 4) -> (N, 1, H, W), (N, 1). Stability: the area above +delta over the
    area above -delta of the single-mask logits, at least `threshold`.
    """
    best = iou_scores[:, 1:].argmax(dim=-1) + 1
    rows = torch.arange(masks.shape[0], device=masks.device)
    best_masks, best_ious = masks[rows, best].unsqueeze(1), iou_scores[rows, best].unsqueeze(1)
    single = masks[:, :1].flatten(-2)
    area_inner = (single > delta).sum(-1).float()
    area_outer = (single > -delta).sum(-1).float()
    stability = torch.where(area_outer > 0, area_inner / area_outer, 1.0)
    stable = stability >= threshold  # (N, 1)
    return (
        torch.where(stable[..., None, None], masks[:, :1], best_masks),
        torch.where(stable, iou_scores[:, :1], best_ious),
    )
