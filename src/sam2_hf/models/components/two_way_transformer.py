"""SAM's two-way transformer: prompt tokens and image tokens attend to each other.

tokens (N, T, C), image (N, HW, C) and its position encoding -> updated tokens and image.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import Attention, FeedForward


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

    def forward(self, queries, keys, query_pe, key_pe, attention_similarity=None, token_mask=None):
        """queries (N, T, C), keys (N, HW, C) and their position encodings; attention_similarity: an additive
        bias on the token-to-image attention scores, broadcastable to (N, heads, T, HW); token_mask: an
        additive bias on the scores of attention *to* the tokens (by tokens and by the image), (N, 1, 1, T).

        Returns the updated queries and keys and the image-to-token attention output (N, HW, C).
        """
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries, token_mask)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries, token_mask)
        queries = self.layer_norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.layer_norm2(queries + self.cross_attn_token_to_image(q, k, keys, attention_similarity))
        queries = self.layer_norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        attended = self.cross_attn_image_to_token(k, q, queries, token_mask)
        return queries, self.layer_norm4(keys + attended), attended


class TwoWayTransformer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layers = nn.ModuleList(TwoWayAttentionBlock(config, i == 0) for i in range(config.num_hidden_layers))
        self.final_attn_token_to_image = Attention(
            config, config.hidden_size, config.num_attention_heads, downsample_rate=config.attention_downsample_rate
        )
        self.layer_norm_final_attn = nn.LayerNorm(config.hidden_size)

    def forward(
        self,
        tokens: torch.Tensor,
        image: torch.Tensor,
        image_pe: torch.Tensor,
        attention_similarity: torch.Tensor | None = None,
        target_embedding: torch.Tensor | None = None,
        output_attentions: bool = False,
        token_mask: torch.Tensor | None = None,
    ):
        """tokens (N, T, C), image and image_pe (N, HW, C) -> queries (N, T, C), keys (N, HW, C) and, with
        `output_attentions`, each layer's image-to-token attention output (N, HW, C) (else None).

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
            queries, keys, attended = layer(queries, keys, tokens, image_pe, attention_similarity, token_mask)
            if output_attentions:
                attentions.append(attended)
        q, k = queries + tokens, keys + image_pe
        queries = self.layer_norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys, tuple(attentions) if output_attentions else None
