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
