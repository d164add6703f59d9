"""Small building blocks shared by the SAM 2 components."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"Unsupported activation {name!r}; expected one of {sorted(ACTIVATIONS)}.") from None


class FeedForward(nn.Module):
    """MLP `proj_in -> (act -> layers[i])* -> act -> proj_out` (+ optional sigmoid). (..., in) -> (..., out)."""

    def __init__(self, in_dim, hidden_dim, out_dim, num_layers, act="relu", sigmoid_output=False):
        super().__init__()
        self.proj_in = nn.Linear(in_dim, hidden_dim)
        self.layers = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers - 2))
        self.proj_out = nn.Linear(hidden_dim, out_dim)
        self.act = activation(act)
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.proj_in(x))
        for layer in self.layers:
            x = self.act(layer(x))
        x = self.proj_out(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) map."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def attention_narrow_values(q, k, v, dropout_p: float = 0.0, query_chunk: int = 256) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v for values narrower than the queries: (..., Nq, d), (..., Nk, d), (..., Nk, dv).

    On CUDA this is SDPA (its memory-efficient kernel takes dv != d). On CPU SDPA's fused kernel needs
    dv == d, so queries go in chunks: only (query_chunk, Nk) scores exist at a time, in reused buffers
    when no gradient is needed.
    """
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    q, k, v = (x.expand(*lead, *x.shape[-2:]) for x in (q, k, v))
    if q.device.type == "cuda":
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    q, keys = q * q.shape[-1] ** -0.5, k.transpose(-2, -1)
    starts = range(0, q.shape[-2], query_chunk)
    if dropout_p or (torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))):
        probs = (torch.softmax(q[..., s : s + query_chunk, :] @ keys, dim=-1) for s in starts)
        return torch.cat([F.dropout(p, dropout_p) @ v for p in probs], dim=-2)
    q, keys, v = q.flatten(0, -3), keys.flatten(0, -3), v.flatten(0, -3)
    out = q.new_empty(*q.shape[:-1], v.shape[-1])
    scores = q.new_empty(min(query_chunk, q.shape[1]), keys.shape[-1])
    probs = torch.empty_like(scores)
    for i in range(q.shape[0]):
        for s in starts:
            n = min(query_chunk, q.shape[1] - s)
            torch.matmul(q[i, s : s + n], keys[i], out=scores[:n])
            torch.ops.aten._softmax.out(scores[:n], -1, False, out=probs[:n])
            torch.matmul(probs[:n], v[i], out=out[i, s : s + n])
    return out.view(*lead, *out.shape[-2:])


class Attention(nn.Module):
    """Multi-head attention with q/k/v/o projections and an optional smaller internal width.

    q: (B, Nq, dim), k/v: (B, Nk, kv_dim) -> (B, Nq, dim).
    """

    def __init__(self, dim, num_heads, downsample_rate=1, kv_dim=None, dropout=0.0):
        super().__init__()
        kv_dim = kv_dim or dim
        self.internal_dim = dim // downsample_rate
        if self.internal_dim % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide the attention width ({self.internal_dim}).")
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, self.internal_dim)
        self.k_proj = nn.Linear(kv_dim, self.internal_dim)
        self.v_proj = nn.Linear(kv_dim, self.internal_dim)
        self.o_proj = nn.Linear(self.internal_dim, dim)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, heads, N, C/heads)."""
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Heads-split q/k/v -> projected output (B, Nq, dim)."""
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        b, h, n, c = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(b, n, h * c))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = (self.split_heads(p(x)) for p, x in ((self.q_proj, q), (self.k_proj, k), (self.v_proj, v)))
        return self.attend(q, k, v)
