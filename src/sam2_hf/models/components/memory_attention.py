"""Memory attention: the current frame's stride-16 tokens self-attend, then cross-attend to the
memory bank (spatial memories of past frames + object-pointer tokens), with 2-D axial RoPE.

curr (1 or B, HW, C), curr_pos (1, HW, C), memory (B, M, Cm), memory_pos (B, M, Cm) -> (B, HW, C).
A current frame given once (batch 1) is shared by the B objects: the first self-attention, which
only sees the frame, runs once for all of them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from .layers import NARROW_VALUE_ATTENTION_FUNCTIONS, Activation, Attention, attention_function
from .position_encoding import apply_rope, apply_rope_, axial_rope_tables


class RoPEAttention(Attention):
    """Attention whose queries and (spatial) keys are rotated by axial RoPE over the query grid."""

    def __init__(self, config, dim, num_heads, feat_sizes, theta, kv_dim=None, downsample_rate=1, dropout=0.0):
        super().__init__(config, dim, num_heads, downsample_rate=downsample_rate, kv_dim=kv_dim, dropout=dropout)
        self.head_dim = self.internal_dim // num_heads
        self.theta = theta
        self.feat_sizes = tuple(feat_sizes)

    def rope_tables(self, num_queries: int, device, dtype=torch.float32):
        w, h = self.feat_sizes
        if w * h != num_queries:  # another resolution: assume a square grid
            w = h = math.isqrt(num_queries)
        return axial_rope_tables(self.head_dim, w, h, self.theta, device=device, dtype=dtype)

    def rotated_queries_and_keys(self, q, k, num_k_exclude_rope: int = 0):
        """Project and rotate: -> (B, heads, Nq, C/heads), (B, heads, Nk, C/heads); the last
        `num_k_exclude_rope` keys (object pointers) are not rotated."""
        q, k = self.split_heads(self.q_proj(q)), self.split_heads(self.k_proj(k))
        cos, sin = self.rope_tables(q.shape[-2], q.device, q.dtype)
        num_rope = k.shape[-2] - num_k_exclude_rope
        if k.dtype == q.dtype in (torch.float32, torch.float64) and not torch.is_grad_enabled():  # rotate in place
            apply_rope_(q, cos, sin)
            apply_rope_(k[:, :, :num_rope], cos, sin)
            return q, k
        q = apply_rope(q, cos, sin).type_as(k)
        k = torch.cat([apply_rope(k[:, :, :num_rope], cos, sin).type_as(k), k[:, :, num_rope:]], dim=2)
        return q, k

    def forward(self, q, k, v, num_k_exclude_rope: int = 0):
        q, k = self.rotated_queries_and_keys(q, k, num_k_exclude_rope)
        return self.attend(q, k, self.split_heads(self.v_proj(v)))


class MemoryCrossAttention(RoPEAttention):
    """RoPE cross-attention to the memory bank, with the value path in the narrow memory space.

    Attention rows sum to one, so probs @ v_proj(memory) == v_proj-per-head(probs @ memory): the
    (B, M, 64) memory tokens are attended first and only the (B, HW, 64) result is projected, instead
    of projecting all M memory tokens to the attention width.
    """

    def forward(self, q, k, v, num_k_exclude_rope: int = 0):
        q, k = self.rotated_queries_and_keys(q, k, num_k_exclude_rope)
        dropout = self.dropout if self.training else 0.0
        attend = attention_function(self.config, NARROW_VALUE_ATTENTION_FUNCTIONS)
        attended = attend(q, k, v.unsqueeze(1).type_as(k), dropout_p=dropout)  # (B, 1, Nq, Cm)
        head_weights = self.v_proj.weight.view(self.num_heads, self.head_dim, -1)  # (heads, C/heads, Cm)
        values = torch.einsum("bnk,hck->bhnc", attended[:, 0], head_weights)
        values = values + self.v_proj.bias.view(1, self.num_heads, 1, self.head_dim)
        b, h, n, c = values.shape
        return self.o_proj(values.transpose(1, 2).reshape(b, n, h * c))


class MemoryAttentionLayer(GradientCheckpointingLayer):
    def __init__(self, config):
        super().__init__()
        c = config.memory_attention_hidden_size
        rope = dict(
            num_heads=config.memory_attention_num_attention_heads,
            feat_sizes=config.memory_attention_rope_feat_sizes,
            theta=config.rope_parameters["rope_theta"],
            downsample_rate=config.memory_attention_downsample_rate,
            dropout=config.memory_attention_rope_dropout,
        )
        self.self_attn = RoPEAttention(config, c, **rope)
        self.cross_attn_image = MemoryCrossAttention(config, c, kv_dim=config.memory_encoder_output_channels, **rope)
        self.linear1 = nn.Linear(c, config.memory_attention_feed_forward_hidden_size)
        self.linear2 = nn.Linear(config.memory_attention_feed_forward_hidden_size, c)
        self.layer_norm1 = nn.LayerNorm(c)
        self.layer_norm2 = nn.LayerNorm(c)
        self.layer_norm3 = nn.LayerNorm(c)
        self.act = Activation(config.memory_attention_feed_forward_hidden_act)
        self.dropout = config.memory_attention_dropout

    def drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.dropout, self.training)

    def forward(self, x, memory, memory_pos, num_object_pointer_tokens: int):
        """x (1 or B, HW, C) -> (B, HW, C)."""
        normed = self.layer_norm1(x)
        x = x + self.drop(self.self_attn(normed, normed, normed))
        normed = self.layer_norm2(x)
        x = x + self.drop(
            self.cross_attn_image(normed, memory + memory_pos, memory, num_k_exclude_rope=num_object_pointer_tokens)
        )
        normed = self.layer_norm3(x)
        return x + self.drop(self.linear2(self.drop(self.act(self.linear1(normed), overwrite=True))))


class MemoryAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layers = nn.ModuleList(MemoryAttentionLayer(config) for _ in range(config.memory_attention_num_layers))
        self.layer_norm = nn.LayerNorm(config.memory_attention_hidden_size)

    def forward(self, curr, curr_pos, memory, memory_pos, num_object_pointer_tokens: int = 0) -> torch.Tensor:
        """The last `num_object_pointer_tokens` memory tokens are object pointers (no RoPE)."""
        x = curr + 0.1 * curr_pos
        for layer in self.layers:
            x = layer(x, memory, memory_pos, num_object_pointer_tokens)
        return self.layer_norm(x)
