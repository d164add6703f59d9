"""Small building blocks shared by the SAM 2 components."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"gelu": (F.gelu, torch.ops.aten.gelu_), "relu": (F.relu, F.relu_)}


class Activation(nn.Module):
    """GELU or ReLU. `forward(x, overwrite=True)` activates x in place when no gradient is needed: for
    callers that own x (a fresh intermediate), it spares allocating and page-faulting a tensor of x's size."""

    def __init__(self, name: str):
        super().__init__()
        try:
            self.function, self.in_place = ACTIVATIONS[name]
        except KeyError:
            raise ValueError(f"Unsupported activation {name!r}; expected one of {sorted(ACTIVATIONS)}.") from None
        self.name = name

    def forward(self, x: torch.Tensor, overwrite: bool = False) -> torch.Tensor:
        if overwrite and not (torch.is_grad_enabled() and x.requires_grad):
            return self.in_place(x)
        return self.function(x)

    def extra_repr(self) -> str:
        return self.name


class FeedForward(nn.Module):
    """MLP `proj_in -> (act -> layers[i])* -> act -> proj_out` (+ optional sigmoid). (..., in) -> (..., out)."""

    def __init__(self, in_dim, hidden_dim, out_dim, num_layers, act="relu", sigmoid_output=False):
        super().__init__()
        self.proj_in = nn.Linear(in_dim, hidden_dim)
        self.layers = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers - 2))
        self.proj_out = nn.Linear(hidden_dim, out_dim)
        self.act = Activation(act)
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.proj_in(x), overwrite=True)
        for layer in self.layers:
            x = self.act(layer(x), overwrite=True)
        x = self.proj_out(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a numerically sensitive step (norm, attention, RoPE) computes in: fp32 for half-precision inputs
    (fp16 / bf16, as fused kernels accumulate them), the input's own dtype otherwise (fp32, or fp64 when a caller
    runs the model in double precision)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) map."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> same shape and dtype; half inputs computed in fp32 (as `F.layer_norm` accumulates them)."""
        dtype = x.dtype
        x = x.to(accumulation_dtype(dtype))
        centred = x - x.mean(1, keepdim=True)
        x = centred / torch.sqrt(centred.square().mean(1, keepdim=True) + self.eps)
        weight, bias = self.weight.to(x.dtype)[:, None, None], self.bias.to(x.dtype)[:, None, None]
        return torch.addcmul(bias, weight, x).to(dtype)


def attention_narrow_values(q, k, v, dropout_p: float = 0.0, tile: int = 1024) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v for values narrower than the queries: (..., Nq, d), (..., Nk, d), (..., Nk, dv).

    On CUDA this is SDPA (its memory-efficient kernel takes dv != d). On CPU SDPA's fused kernel needs
    dv == d, so without gradients it runs `_attend_in_tiles`; with them, queries go in chunks of `tile`.
    """
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    q, k, v = (x.expand(*lead, *x.shape[-2:]) for x in (q, k, v))
    if q.device.type == "cuda":
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    if q.dtype != accumulation_dtype(q.dtype):  # CPU half: in fp32, as SDPA's CPU kernels accumulate half inputs
        return attention_narrow_values(q.float(), k.float(), v.float(), dropout_p, tile).type_as(q)
    q, keys = q * q.shape[-1] ** -0.5, k.transpose(-2, -1)
    if dropout_p or (torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))):
        probs = (torch.softmax(q[..., s : s + tile, :] @ keys, dim=-1) for s in range(0, q.shape[-2], tile))
        return torch.cat([F.dropout(p, dropout_p) @ v for p in probs], dim=-2)
    q, keys, v = q.flatten(0, -3), keys.flatten(0, -3), v.flatten(0, -3)
    out = q.new_empty(*q.shape[:-1], v.shape[-1])
    for i in range(q.shape[0]):
        _attend_in_tiles(q[i], keys[i], v[i], out[i], tile)
    return out.view(*lead, *out.shape[-2:])


@torch.compiler.disable
def _attend_in_tiles(q, keys, v, out, tile: int) -> None:
    """out (Nq, dv) = softmax(q (Nq, d) @ keys (d, Nk)) @ v (Nk, dv), one (tile, tile) score block at a time.

    Flash-attention's online softmax: each query tile keeps a running row max, row sum and unnormalised
    output, rescaled by exp(old max - new max) when a key block raises the max. The score block stays
    in cache, where a full (tile, Nk) row of scores would not.
    Left out of torch.compile graphs (backend="compile"): its loop bound depends on Nk, which grows with the memory
    bank, so a traced loop would compile again for each new tile count; run as written it is the same matmuls.
    """
    rows, nk = min(tile, q.shape[0]), keys.shape[1]
    scores, block_out = q.new_empty(rows, min(tile, nk)), q.new_empty(rows, v.shape[1])
    row_max, new_max, rescale, row_sum = (q.new_empty(rows, 1) for _ in range(4))
    for s in range(0, q.shape[0], tile):
        n = min(tile, q.shape[0] - s)
        o, max_, sum_, new_, scale_ = out[s : s + n], row_max[:n], row_sum[:n], new_max[:n], rescale[:n]
        max_.fill_(-math.inf)
        sum_.zero_()
        o.zero_()
        for ks in range(0, nk, tile):
            kn = min(tile, nk - ks)
            block = torch.matmul(q[s : s + n], keys[:, ks : ks + kn], out=scores[:n, :kn])
            torch.maximum(torch.amax(block, -1, keepdim=True, out=new_), max_, out=new_)
            torch.sub(max_, new_, out=scale_).exp_()
            max_.copy_(new_)
            block.sub_(max_).exp_()
            sum_.mul_(scale_).add_(block.sum(-1, keepdim=True))
            o.mul_(scale_).add_(torch.matmul(block, v[ks : ks + kn], out=block_out[:n]))
        o.div_(sum_)


def eager_attention(q, k, v, dropout_p: float = 0.0, mask=None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v as explicit matmuls, the softmax in fp32 (transformers' "eager").

    q (..., Nq, d), k (..., Nk, d), v (..., Nk, dv), mask broadcastable to (..., Nq, Nk) -> (..., Nq, dv).
    """
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))
    if mask is not None:
        scores = scores + mask
    probs = torch.softmax(scores, dim=-1, dtype=accumulation_dtype(scores.dtype)).to(v.dtype)
    return torch.matmul(F.dropout(probs, dropout_p) if dropout_p else probs, v)


FEW_KEYS = 64  # `sdpa_attention` on CPU: at most this many keys (and more queries) go to `attention_to_few_keys`


def sdpa_attention(q, k, v, dropout_p: float = 0.0, mask=None) -> torch.Tensor:
    """`eager_attention` computed by `F.scaled_dot_product_attention` (transformers' "sdpa"), or on CPU in float32
    inference without a boolean mask, for many queries and at most `FEW_KEYS` keys, by `attention_to_few_keys`.
    (The shapes are compared last: a traced graph, with gradients on, must not be guarded on its token count.)"""
    additive = mask is None or mask.is_floating_point()
    inference = q.device.type == "cpu" and q.dtype == torch.float32 and not (dropout_p or torch.is_grad_enabled())
    if inference and additive and k.shape[-2] <= FEW_KEYS < q.shape[-2]:
        return attention_to_few_keys(q, k, v, mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


def attention_to_few_keys(q, k, v, mask=None) -> torch.Tensor:
    """`eager_attention` with the scores laid out keys first: (..., Nk, Nq), so that the softmax runs along Nk over
    contiguous rows of Nq. q (..., Nq, d), k (..., Nk, d), v (..., Nk, dv), mask: additive, broadcastable to
    (..., Nq, Nk).

    For a handful of keys, PyTorch's CPU softmax (and SDPA's CPU kernels) spend their time on rows of Nk values:
    for the mask decoder's image-to-token attention (4096 queries, 8 prompt tokens, 8 heads of 16; 2 cores) this
    takes 1.5 ms where SDPA takes 2.2, and a click on a cached embedding 7-9% less time; equal up to float32 rounding.
    """
    scores = torch.matmul(k * k.shape[-1] ** -0.5, q.transpose(-2, -1))
    if mask is not None:
        scores = scores + mask.transpose(-2, -1)
    return torch.matmul(torch.softmax(scores, dim=-2).transpose(-2, -1), v)


# config._attn_implementation -> attention function; values narrower than the queries (memory cross-attention)
# use `attention_narrow_values` for "sdpa": SDPA itself on CUDA, its tiled equivalent on CPU.
ATTENTION_FUNCTIONS = {"eager": eager_attention, "sdpa": sdpa_attention}
NARROW_VALUE_ATTENTION_FUNCTIONS = {"eager": eager_attention, "sdpa": attention_narrow_values}


def attention_function(config, functions=ATTENTION_FUNCTIONS):
    """The attention function `config._attn_implementation` selects ("eager" or "sdpa")."""
    try:
        return functions[config._attn_implementation]
    except KeyError:
        raise ValueError(
            f"attn_implementation {config._attn_implementation!r} is not supported; use one of {sorted(functions)}."
        ) from None


class Attention(nn.Module):
    """Multi-head attention with q/k/v/o projections and an optional smaller internal width.

    q: (B, Nq, dim), k/v: (B, Nk, kv_dim) -> (B, Nq, dim). `config._attn_implementation` ("eager" or
    "sdpa") picks the attention function at each call.
    """

    def __init__(self, config, dim, num_heads, downsample_rate=1, kv_dim=None, dropout=0.0):
        super().__init__()
        kv_dim = kv_dim or dim
        self.config = config
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

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask=None) -> torch.Tensor:
        """Heads-split q/k/v -> projected output (B, Nq, dim); mask: an additive score bias broadcastable to
        (B, heads, Nq, Nk)."""
        if mask is not None:
            mask = mask.to(q.dtype)
        dropout = self.dropout if self.training else 0.0
        out = attention_function(self.config)(q, k, v, dropout_p=dropout, mask=mask)
        b, h, n, c = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(b, n, h * c))

    def attend_projected(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask=None) -> torch.Tensor:
        """Projected q (B, Nq, C'), k and v (B, Nk, C') -> (B, Nq, dim); mask as `attend`."""
        return self.attend(self.split_heads(q), self.split_heads(k), self.split_heads(v), mask)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask=None) -> torch.Tensor:
        return self.attend_projected(self.q_proj(q), self.k_proj(k), self.v_proj(v), mask)
