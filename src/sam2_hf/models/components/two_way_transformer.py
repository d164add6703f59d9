"""SAM's two-way transformer: prompt tokens and image tokens attend to each other.

tokens (N, T, C), image (N, HW, C) and its position encoding -> updated tokens and image.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .layers import Attention, FeedForward


class ImageProjections(NamedTuple):
    """A two-way layer's projections of the image tokens, each (B, HW, C / attention_downsample_rate). In the first
    layer no prompt changes them: `TwoWayTransformer.project_image` computes them once per image, and every
    decoding of that image (each click, each prompt set of a batch) reuses them."""

    token_to_image_keys: torch.Tensor  # cross_attn_token_to_image.k_proj(image + image_pe)
    token_to_image_values: torch.Tensor  # cross_attn_token_to_image.v_proj(image)
    image_to_token_queries: torch.Tensor  # cross_attn_image_to_token.q_proj(image + image_pe)

    def select(self, index: int) -> ImageProjections:
        """The projections of image `index` of the batch (batch 1)."""
        return ImageProjections(*(p[index : index + 1] for p in self))


class TwoWayAttentionBlock(nn.Module):
    def __init__(self, config, skip_first_layer_pe: bool):
        super().__init__()
        c, heads, rate = config.hidden_size, config.num_attention_heads, config.attention_downsample_rate
        self.self_attn = Attention(config, c, heads)
        self.layer_norm1 = nn.LayerNorm(c)
        self.cross_attn_token_to_image = Attention(config, c, heads, downsample_rate=rate)
        self.layer_norm2 = nn.LayerNorm(c)
        self.mlp = FeedForward(c, config.mlp_dim, c, num_layers=2, act="relu")
        self.layer_norm3 = nn.LayerNorm(c)
        self.layer_norm4 = nn.LayerNorm(c)
        self.cross_attn_image_to_token = Attention(config, c, heads, downsample_rate=rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def project_image(self, keys: torch.Tensor, key_pe: torch.Tensor) -> ImageProjections:
        """keys (B, HW, C), the image tokens, and their position encoding (B or 1, HW, C) -> their projections in
        this layer's two cross attentions (`ImageProjections`)."""
        k = keys + key_pe
        to_image, to_token = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        return ImageProjections(to_image.k_proj(k), to_image.v_proj(keys), to_token.q_proj(k))

    def forward(self, queries, keys, query_pe, key_pe, attention_similarity=None, token_mask=None, projections=None):
        """queries (N, T, C), keys (N, HW, C) and their position encodings; attention_similarity: an additive
        bias on the token-to-image attention scores, broadcastable to (N, heads, T, HW); token_mask: an
        additive bias on the scores of attention *to* the tokens (by tokens and by the image), (N, 1, 1, T);
        projections: `project_image(keys, key_pe)` computed beforehand (batch N or 1, broadcast), else computed here.

        Returns the updated queries and keys and the image-to-token attention output (N, HW, C).
        """
        if projections is None:
            projections = self.project_image(keys, key_pe)
        else:  # one image's projections (batch 1) serve N prompt sets
            projections = ImageProjections(*(p.expand(keys.shape[0], -1, -1) for p in projections))
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries, token_mask)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries, token_mask)
        queries = self.layer_norm1(queries)
        to_image, to_token = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        image_keys, image_values, image_queries = projections
        attended = to_image.attend_projected(
            to_image.q_proj(queries + query_pe), image_keys, image_values, attention_similarity
        )
        queries = self.layer_norm2(queries + attended)
        queries = self.layer_norm3(queries + self.mlp(queries))
        q = queries + query_pe
        attended = to_token.attend_projected(image_queries, to_token.k_proj(q), to_token.v_proj(queries), token_mask)
        return queries, self.layer_norm4(keys + attended), attended


class TwoWayTransformer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layers = nn.ModuleList(TwoWayAttentionBlock(config, i == 0) for i in range(config.num_hidden_layers))
        self.final_attn_token_to_image = Attention(
            config, config.hidden_size, config.num_attention_heads, downsample_rate=config.attention_downsample_rate
        )
        self.layer_norm_final_attn = nn.LayerNorm(config.hidden_size)

    def project_image(self, image: torch.Tensor, image_pe: torch.Tensor) -> ImageProjections:
        """image (B, HW, C) tokens (the embeddings plus the dense prompt embedding) and image_pe (B or 1, HW, C) ->
        the first layer's `ImageProjections`, which depend on no prompt token."""
        return self.layers[0].project_image(image, image_pe)

    def forward(
        self,
        tokens: torch.Tensor,
        image: torch.Tensor,
        image_pe: torch.Tensor,
        attention_similarity: torch.Tensor | None = None,
        target_embedding: torch.Tensor | None = None,
        output_attentions: bool = False,
        token_mask: torch.Tensor | None = None,
        image_projections: ImageProjections | None = None,
    ):
        """tokens (N, T, C), image and image_pe (N, HW, C) -> queries (N, T, C), keys (N, HW, C) and, with
        `output_attentions`, each layer's image-to-token attention output (N, HW, C) (else None).
        image_projections: `project_image(image, image_pe)` computed beforehand (batch N, or 1 for N prompt sets on
        one image), else computed here.

        PerSAM options, as transformers applies them: attention_similarity biases every layer's token-to-image
        scores; target_embedding (broadcastable to (N, T, C)) is added to the tokens before every layer, the
        first time also to their position encoding. token_mask (N, 1, 1, T): an additive score bias (-inf
        for padding tokens) on every attention whose keys are the tokens; the tokens' own attention to the
        image needs none, and a padding token's output is never read.
        """
        if target_embedding is not None:
            tokens = tokens + target_embedding
        queries, keys, attentions = tokens, image, []
        for i, layer in enumerate(self.layers):
            if target_embedding is not None and i > 0:
                queries = queries + target_embedding
            projections = image_projections if i == 0 else None
            queries, keys, attended = layer(
                queries, keys, tokens, image_pe, attention_similarity, token_mask, projections
            )
            if output_attentions:
                attentions.append(attended)
        q, k = queries + tokens, keys + image_pe
        queries = self.layer_norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys, tuple(attentions) if output_attentions else None
