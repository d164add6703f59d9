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
        self.self_attn = Attention(c, heads)
        self.layer_norm1 = nn.LayerNorm(c)
        self.cross_attn_token_to_image = Attention(c, heads, downsample_rate=rate)
        self.layer_norm2 = nn.LayerNorm(c)
        self.mlp = FeedForward(c, config.mlp_dim, c, num_layers=2, act="relu")
        self.layer_norm3 = nn.LayerNorm(c)
        self.layer_norm4 = nn.LayerNorm(c)
        self.cross_attn_image_to_token = Attention(c, heads, downsample_rate=rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.layer_norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.layer_norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.layer_norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        keys = self.layer_norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layers = nn.ModuleList(TwoWayAttentionBlock(config, i == 0) for i in range(config.num_hidden_layers))
        self.final_attn_token_to_image = Attention(
            config.hidden_size, config.num_attention_heads, downsample_rate=config.attention_downsample_rate
        )
        self.layer_norm_final_attn = nn.LayerNorm(config.hidden_size)

    def forward(self, tokens: torch.Tensor, image: torch.Tensor, image_pe: torch.Tensor):
        queries, keys = tokens, image
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, image_pe)
        q, k = queries + tokens, keys + image_pe
        queries = self.layer_norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
