"""Position encodings: 2-D sine maps, random-Fourier point encodings, 1-D sine and axial RoPE."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn

from .layers import accumulation_dtype


# The cached tables are built outside inference mode: a table first made under `torch.inference_mode()`
# would be an inference tensor, which autograd refuses to save when the same process trains later.
@lru_cache(maxsize=16)
@torch.inference_mode(False)
def _sine_2d_cpu(num_feats: int, height: int, width: int, temperature: float, dtype: torch.dtype) -> torch.Tensor:
    half = num_feats // 2
    scale = 2 * math.pi
    y = torch.arange(1, height + 1, dtype=dtype)
    x = torch.arange(1, width + 1, dtype=dtype)
    y = y / (y[-1:] + 1e-6) * scale
    x = x / (x[-1:] + 1e-6) * scale
    dim_t = torch.arange(half, dtype=dtype)
    dim_t = temperature ** (2 * (dim_t // 2) / half)
    pos_x = x[:, None] / dim_t  # (W, half)
    pos_y = y[:, None] / dim_t  # (H, half)
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
    pos = torch.cat(
        (pos_y[:, None, :].expand(height, width, half), pos_x[None, :, :].expand(height, width, half)), dim=2
    )
    return pos.permute(2, 0, 1).contiguous()


def sine_position_encoding(
    num_feats: int, height: int, width: int, device=None, dtype=torch.float32, temperature: float = 10000.0
) -> torch.Tensor:
    """DETR-style normalized 2-D sine encoding, (num_feats, H, W): first half encodes y, second x; computed in
    `accumulation_dtype(dtype)` (once per shape), returned in `dtype`."""
    return _sine_2d_cpu(num_feats, height, width, temperature, accumulation_dtype(dtype)).to(device=device, dtype=dtype)


def sine_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """1-D sine encoding of (N,) float positions -> (N, dim) as [sin | cos]."""
    half = dim // 2
    dim_t = torch.arange(half, dtype=torch.float32, device=positions.device)
    dim_t = temperature ** (2 * (dim_t // 2) / half)
    angles = positions.unsqueeze(-1) / dim_t
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class RandomFourierEmbedding(nn.Module):
    """Encodes (x, y) in [0, 1] with a fixed Gaussian frequency matrix: (..., 2) -> (..., 2 * num_feats)."""

    def __init__(self, num_feats: int, scale: float = 1.0):
        super().__init__()
        self.scale = scale  # the frequencies' std, for `_init_weights`
        self.register_buffer("positional_embedding", scale * torch.randn(2, num_feats))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        coords = (2 * coords - 1).to(self.positional_embedding.dtype)  # then in the buffer's dtype, as transformers
        coords = 2 * math.pi * (coords @ self.positional_embedding)
        return torch.cat([coords.sin(), coords.cos()], dim=-1)

    def dense(self, height: int, width: int) -> torch.Tensor:
        """Encoding of every cell centre of an (H, W) grid -> (1, 2 * num_feats, H, W)."""
        device = self.positional_embedding.device
        y = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
        x = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
        grid = torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
        return self(grid).permute(2, 0, 1).unsqueeze(0)


@lru_cache(maxsize=8)
@torch.inference_mode(False)
def _axial_rope_cpu(dim: int, end_x: int, end_y: int, theta: float, dtype: torch.dtype):
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].to(dtype) / dim))
    t = torch.arange(end_x * end_y, dtype=dtype)
    t_x, t_y = t % end_x, torch.div(t, end_x, rounding_mode="floor")
    angles = torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)  # (N, dim/2)
    return angles.cos(), angles.sin()


def clear_cached_tables() -> None:
    """Forget the cached sine and RoPE tables (after tracing a graph, whose tables hold traced values)."""
    _sine_2d_cpu.cache_clear()
    _axial_rope_cpu.cache_clear()


def axial_rope_tables(dim: int, end_x: int, end_y: int, theta: float, device=None, dtype=torch.float32):
    """cos/sin tables (N, dim/2) of 2-D axial RoPE on an end_y x end_x grid (row-major tokens), in
    `accumulation_dtype(dtype)` for queries of `dtype` (float32 for half precision: `apply_rope` rotates in fp32)."""
    cos, sin = _axial_rope_cpu(dim, end_x, end_y, theta, accumulation_dtype(dtype))
    return cos.to(device), sin.to(device)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs of x (..., N, dim) by the angles of cos/sin (N, dim/2), in fp32 (fp64 for
    fp64 inputs).

    If x has r*N tokens the tables apply to each block of N (each memory frame reuses the query grid's positions).
    """
    if not (torch.is_grad_enabled() and x.requires_grad):
        out = x.to(accumulation_dtype(x.dtype), copy=True)
        apply_rope_(out, cos, sin)
        return out
    x = x.to(accumulation_dtype(x.dtype)).unflatten(-2, (-1, cos.shape[0]))
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x_even * cos - x_odd * sin, x_even * sin + x_odd * cos), dim=-1).flatten(-2)
    return out.flatten(-3, -2)


def apply_rope_(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """`apply_rope` written into x itself (fp32 or fp64, no gradient): only a copy of the even channels is allocated."""
    x = x.unflatten(-2, (-1, cos.shape[0]))
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    even = x_even.clone()
    x_even.mul_(cos).addcmul_(x_odd, sin, value=-1)
    x_odd.mul_(cos).addcmul_(even, sin)
