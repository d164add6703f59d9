"""Prompt encoder: clicks and box corners -> sparse tokens, mask logits -> a dense map.

Point labels: 1 positive, 0 negative, 2 / 3 box top-left / bottom-right, -1 "not a point"
(the padding point the reference always appends), -10 batch padding.

Batch padding (transformers' `point_pad_value`, for objects with fewer points than others in a batch) gets
a zero token, as in transformers, and is also returned as a mask of the sparse tokens, which the mask
decoder's attention leaves out. A zero token alone is not enough: attention still gives it weight
exp(q . 0) = 1 in every softmax over the prompt tokens, and the token itself is updated by the two-way
transformer and attended to by the image, so the padded object's masks would change (about 1 % of its
pixels, as with stock transformers; Meta's "not a point" embedding, which its prompt encoder gives label -1, is a
real token too). Masked out, a padding point leaves every object's result as without it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...processing.prompts import BOX_BOTTOM_RIGHT, BOX_TOP_LEFT, NOT_A_POINT, PADDING
from .layers import Activation, LayerNorm2d
from .position_encoding import RandomFourierEmbedding


class MaskEmbedding(nn.Module):
    """(N, 1, 4h, 4w) mask logits -> (N, C, h, w)."""

    def __init__(self, config):
        super().__init__()
        mid = config.mask_input_channels // 4
        self.conv1 = nn.Conv2d(1, mid, kernel_size=2, stride=2)
        self.layer_norm1 = LayerNorm2d(mid, eps=config.layer_norm_eps)
        self.conv2 = nn.Conv2d(mid, config.mask_input_channels, kernel_size=2, stride=2)
        self.layer_norm2 = LayerNorm2d(config.mask_input_channels, eps=config.layer_norm_eps)
        self.conv3 = nn.Conv2d(config.mask_input_channels, config.hidden_size, kernel_size=1)
        self.act = Activation(config.hidden_act)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        """masks of any float dtype -> (N, C, h, w) in the model's dtype."""
        x = self.act(self.layer_norm1(self.conv1(masks.to(self.conv1.weight.dtype))))
        x = self.act(self.layer_norm2(self.conv2(x)))
        return self.conv3(x)


class PromptEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.input_image_size = config.image_size
        self.embedding_size = config.image_size // config.patch_size
        self.mask_input_size = (4 * self.embedding_size, 4 * self.embedding_size)
        self.shared_embedding = RandomFourierEmbedding(config.hidden_size // 2, config.scale)
        self.point_embed = nn.Embedding(config.num_point_embeddings, config.hidden_size)
        self.not_a_point_embed = nn.Embedding(1, config.hidden_size)
        self.no_mask_embed = nn.Embedding(1, config.hidden_size)
        self.mask_embed = MaskEmbedding(config)

    def embed_points(self, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """points (..., N, 2) in input-image pixels, labels (..., N) (see `sparse_prompt_points`) -> tokens
        (..., N, C)."""
        points = points + 0.5  # pixel centre
        tokens = self.shared_embedding(points / self.input_image_size)
        labels = labels[..., None]
        tokens = torch.where(labels == NOT_A_POINT, self.not_a_point_embed.weight, tokens)
        tokens = torch.where(labels == PADDING, torch.zeros_like(tokens), tokens)
        return tokens + self.point_embed(labels.squeeze(-1).clamp(min=0)) * (labels >= 0)

    def forward(self, points=None, labels=None, boxes=None, masks=None, batch_shape=(1,)):
        """Sparse tokens (..., T, C), dense embedding (N_masks or 1, C, h, w) and the padding mask of the
        sparse tokens: (..., T) bool, True for batch padding (label -10), or None when there is none.

        points (..., N, 2) / labels (..., N), boxes (..., 4), masks (N_masks, 1, 4h, 4w) logits. Points and box
        are embedded as one list (`sparse_prompt_points`: clicks, box corners, the "not a point" token).
        With neither points nor boxes there are no sparse tokens (shape `batch_shape` + (0, C)).
        """
        sparse = self.point_embed.weight.new_zeros(*batch_shape, 0, self.hidden_size)
        padding = None
        if points is not None or boxes is not None:
            coords, kinds = sparse_prompt_points(points, labels, boxes)
            sparse = self.embed_points(coords, kinds)
            padding = kinds == PADDING if bool((kinds == PADDING).any()) else None
        if masks is not None:
            dense = self.mask_embed(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, *([self.embedding_size] * 2))
        return sparse, dense, padding


def sparse_prompt_points(points, labels, boxes) -> tuple[torch.Tensor, torch.Tensor]:
    """The sparse prompt as one point list, as the prompt encoder embeds it: the clicks (..., K, 2) / (..., K), then
    the box (..., 4) as its two corners (labels 2, 3), then the reference's "not a point" (label -1) ->
    coords (..., T, 2) in input pixels and labels (..., T). At least one of points and boxes is given.

    Exported runtimes (backends/exported.py) take this list as their decoder's input, so that one graph serves
    every kind of prompt.
    """
    coords, kinds = [], []
    if points is not None:
        coords.append(points)
        kinds.append(labels)
    if boxes is not None:
        corners = boxes.reshape(*boxes.shape[:-1], 2, 2)
        coords.append(corners.to(coords[0].dtype) if coords else corners)
        corner = torch.tensor([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT], device=boxes.device)
        kinds.append(corner.expand(*boxes.shape[:-1], 2).to(labels.dtype if labels is not None else torch.int64))
    anchor = coords[0]
    coords.append(anchor.new_zeros(*anchor.shape[:-2], 1, 2))
    kinds.append(kinds[0].new_full((*anchor.shape[:-2], 1), NOT_A_POINT))
    return torch.cat(coords, dim=-2), torch.cat(kinds, dim=-1)


def not_a_point_prompt(n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt of N prompt sets without points or box, as the reference's tracker decodes them: one "not a
    point" click each -> points (N, 1, 2) zeros of `like`'s dtype and device, labels (N, 1) int64."""
    return like.new_zeros(n, 1, 2), torch.full((n, 1), NOT_A_POINT, device=like.device)


def mask_input_at(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, 1, H, W) mask logits -> (N, 1, *size), the decoder's mask-input size (bilinear with antialiasing, as
    the reference's `SAM2ImagePredictor` resizes a mask input of another size); unchanged when already that size."""
    if masks.shape[-2:] == tuple(size):
        return masks
    return F.interpolate(masks.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
