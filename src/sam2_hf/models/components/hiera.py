"""Hiera trunk: a hierarchical ViT with windowed attention and query pooling between stages.

(B, 3, S, S) image -> four channels-first maps at strides 4, 8, 16, 32 with C, 2C, 4C, 8C channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils.output_capturing import resolve_hidden_states_indices

from .layers import FeedForward, attention_function


def window_partition(x: torch.Tensor, window: int):
    """(B, H, W, C) -> (B * nWindows, window, window, C), zero-padding H, W up to multiples of `window`."""
    b, h, w, c = x.shape
    pad_h, pad_w = (window - h % window) % window, (window - w % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), (hp, wp)


def window_unpartition(windows: torch.Tensor, window: int, padded_hw, hw) -> torch.Tensor:
    """Inverse of `window_partition`: (B * nWindows, window, window, C) -> (B, H, W, C)."""
    hp, wp = padded_hw
    h, w = hw
    b = windows.shape[0] // (hp * wp // window // window)
    x = windows.reshape(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w, :] if (hp > h or wp > w) else x


def max_pool_2x2(x: torch.Tensor, stride) -> torch.Tensor:
    """Channels-last (B, H, W, C) max pooling by `stride`."""
    return F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=stride, stride=stride).permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    def __init__(self, in_channels, dim, kernel, stride, padding):
        super().__init__()
        self.projection = nn.Conv2d(in_channels, dim, kernel_size=kernel, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) of any float dtype -> (B, S/4, S/4, C) in the model's dtype (as transformers casts)."""
        return self.projection(x.to(self.projection.weight.dtype)).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Self-attention over windows; on stage changes the queries are max-pooled (halving H and W).
    `config._attn_implementation` ("eager" or "sdpa") picks the attention function."""

    def __init__(self, config, dim, dim_out, num_heads, query_stride=None):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.query_stride = query_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H', W', C_out), H' = H / query stride."""
        b, h, w, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).unbind(2)
        if self.query_stride:
            q = max_pool_2x2(q.reshape(b, h, w, -1), self.query_stride)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)
        x = attention_function(self.config)(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(x.transpose(1, 2).reshape(b, h, w, -1))


class MultiScaleBlock(GradientCheckpointingLayer):
    def __init__(self, config, dim, dim_out, num_heads, window_size, query_stride=None):
        super().__init__()
        self.window_size = window_size
        self.query_stride = query_stride
        self.layer_norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = MultiScaleAttention(config, dim, dim_out, num_heads, query_stride)
        self.layer_norm2 = nn.LayerNorm(dim_out, eps=config.layer_norm_eps)
        hidden = int(dim_out * config.mlp_ratio)
        self.mlp = FeedForward(dim_out, hidden, dim_out, num_layers=2, act=config.hidden_act)
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out else None

    def forward(self, x: torch.Tensor, output_attention: bool = False):
        """(B, H, W, C) -> (B, H', W', C_out) and, with `output_attention`, the attention output before the
        windows are merged back, (B * windows, window, window, C_out) (B, H', W', C_out for global blocks), as
        transformers records it (else None)."""
        shortcut = x
        x = self.layer_norm1(x)
        if self.proj is not None:
            shortcut = self.proj(x)
            if self.query_stride:
                shortcut = max_pool_2x2(shortcut, self.query_stride)
        window = self.window_size
        if window > 0:
            hw = x.shape[1:3]
            x, padded_hw = window_partition(x, window)
        x = self.attn(x)
        attention = x if output_attention else None
        if window > 0:
            if self.query_stride:  # the windows shrank with the pooled queries
                window //= self.query_stride[0]
                hw = shortcut.shape[1:3]
                padded_hw = tuple(s + (window - s % window) % window for s in hw)
            x = window_unpartition(x, window, padded_hw, hw)
        # residual adds into fresh outputs (no new (H, W, C) tensors), unless x may be a view of the returned attention
        x = x + shortcut if output_attention else x.add_(shortcut)
        return self.mlp(self.layer_norm2(x)).add_(x), attention


class HieraTrunk:
    """The Hiera trunk's layers and forward pass, mixed into transformers' `Sam2HieraDetModel` (models/modeling.py),
    whose parameter names (patch_embed, pos_embed, pos_embed_window, blocks) they are."""

    def build_trunk(self, config) -> None:
        """Add the trunk's layers to this module, from a `Sam2HieraDetConfig`."""
        c = config
        self.patch_embed = PatchEmbed(
            c.num_channels, c.hidden_size, c.patch_kernel_size, c.patch_stride, c.patch_padding
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, c.hidden_size, *c.window_positional_embedding_background_size))
        window0 = c.window_size_per_stage[0]
        self.pos_embed_window = nn.Parameter(torch.zeros(1, c.hidden_size, window0, window0))

        stage_ends = [sum(c.blocks_per_stage[: i + 1]) - 1 for i in range(len(c.blocks_per_stage))]
        pool_blocks = [end + 1 for end in stage_ends[:-1]][: c.num_query_pool_stages]
        self.stage_ends = stage_ends
        self.blocks = nn.ModuleList()
        stage, dim, heads = 0, c.hidden_size, c.num_attention_heads
        for i in range(sum(c.blocks_per_stage)):
            dim_out = dim
            # The first block of a stage still uses the previous stage's window size.
            window = 0 if i in c.global_attention_blocks else c.window_size_per_stage[stage]
            if i - 1 in stage_ends:
                stage += 1
                dim_out, heads = c.embed_dim_per_stage[stage], c.num_attention_heads_per_stage[stage]
            query_stride = c.query_stride if i in pool_blocks else None
            self.blocks.append(MultiScaleBlock(c, dim, dim_out, heads, window, query_stride))
            dim = dim_out

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """Background embedding (bicubic to the grid) plus the window embedding tiled over it: (1, H, W, C)."""
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        win = self.pos_embed_window
        pos = pos + win.tile(1, 1, h // win.shape[-2], w // win.shape[-1])
        return pos.permute(0, 2, 3, 1)

    def run_trunk(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | Sequence[int] = False,
        output_attentions: bool = False,
    ):
        """(B, 3, S, S) -> (stage maps, hidden states, attentions).

        Stage maps: the last block of each stage, channels-first (B, C_i, S/4/2^i, S/4/2^i). With
        `output_hidden_states` True, the embedded input and every block's output, channels-last (B, H, W, C);
        a sequence of indices into those (negative ones from the end) keeps only the selected states, None in
        the others' places (transformers' `capture_outputs` selection; out-of-range indices select nothing).
        With `output_attentions`, every block's attention output (see `MultiScaleBlock.forward`); else None.
        """
        keep = None
        if not isinstance(output_hidden_states, bool):
            keep = resolve_hidden_states_indices(self, list(output_hidden_states), len(self.blocks) + 1)
        x = self.patch_embed(pixel_values)
        x = x + self.position_embedding(*x.shape[1:3])
        stage_maps, hidden_states, attentions = [], [x if keep is None or 0 in keep else None], []
        for i, block in enumerate(self.blocks):
            x, attention = block(x, output_attentions)
            if output_hidden_states:
                hidden_states.append(x if keep is None or i + 1 in keep else None)
            if output_attentions:
                attentions.append(attention)
            if i in self.stage_ends:
                stage_maps.append(x.permute(0, 3, 1, 2))
        return (
            stage_maps,
            tuple(hidden_states) if output_hidden_states else None,
            tuple(attentions) if output_attentions else None,
        )
