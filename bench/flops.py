"""FLOPs counted per call, the machine's GEMM throughput, and the floor they give (FLOPs / throughput).

`torch.utils.flop_counter.FlopCounterMode` counts matmuls and convolutions, but on CPU it has no formula for
`aten._scaled_dot_product_flash_attention_for_cpu` (what `F.scaled_dot_product_attention` runs there), so it
silently counts attention as 0. `CPU_FORMULAS` adds that op (2·L·S·E for QKᵀ plus 2·L·S·Ev for PV per head,
torch's own `sdpa_flop_count`); `count_flops` also lists every matmul/conv/attention-like op it met without a
formula, so nothing heavy is missed unseen. `attention_layer_check` verifies the counts against a hand count
of one of Meta's memory-attention layers. Elementwise work (norms, softmax, RoPE, GELU) is not counted: the
floor is the time the matrix products alone would take at the measured GEMM rate.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry, sdpa_flop_count

aten = torch.ops.aten
HEAVY_OP_WORDS = {"mm", "bmm", "addmm", "baddbmm", "addbmm", "matmul", "linear", "einsum", "attention"}


def _sdpa_cpu_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


CPU_FORMULAS = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}


class _OpRecorder(TorchDispatchMode):
    """Names of the ops that reach the bottom of the dispatch (after FlopCounterMode's decompositions)."""

    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket] += 1
        return func(*args, **(kwargs or {}))


def is_heavy(op_name: str) -> bool:
    """A matmul, convolution or attention op (`aten._upsample_bilinear2d_aa` is not: words, not substrings)."""
    words = op_name.rsplit(".", 1)[-1].strip("_").split("_")
    return any(w in HEAVY_OP_WORDS or w.startswith("conv") for w in words)


def count_flops(fn, *args):
    """(result, {"total", "by_op", "uncounted_heavy_ops"}) of one call of `fn`."""
    recorder = _OpRecorder()
    with recorder, FlopCounterMode(display=False, custom_mapping=CPU_FORMULAS) as counter:
        result = fn(*args)
    known = set(flop_registry) | set(CPU_FORMULAS)
    known |= {op.overloadpacket for op in known if hasattr(op, "overloadpacket")}
    uncounted = {str(op): n for op, n in recorder.ops.items() if op not in known and is_heavy(str(op))}
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return result, {"total": int(counter.get_total_flops()), "by_op": by_op, "uncounted_heavy_ops": uncounted}


def gemm_gflops(n: int = 2048, repeats: int = 5) -> list[float]:
    """fp32 (n, n) @ (n, n) matmul throughput in GFLOP/s, one sample per call (after one untimed call)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        samples.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return samples


def floor_seconds(flops: float, gflops_samples: list[float]) -> float:
    """Seconds the counted FLOPs take at the median measured GEMM throughput."""
    return flops / (statistics.median(gflops_samples) * 1e9)


class FloorCheck:
    """The one rule for every time / floor a bench writes.

    No time can beat its floor (counted FLOPs / measured GEMM rate): the floor counts only the matrix products
    and the GEMM rate is the best the machine did on a plain matmul. A ratio below 1 therefore means the GEMM
    rate was measured while other work held the cores (too low a rate, too high a floor). Such a ratio is
    refused: `entry` gives None for it and `reasons` records where, for the run's "contended" marking.

    Args:
        gflops_samples: the run's GEMM-rate samples (GFLOP/s); the floor uses their median (`floor_seconds`).
    """

    def __init__(self, gflops_samples: list[float]):
        self.gflops_samples = list(gflops_samples)
        self.refused: list[str] = []

    def entry(self, flops: float, seconds: float, where: str, bound: bool = True) -> dict:
        """{"gflop": FLOPs / 1e9, "floor_s": floor seconds, "time_over_floor": seconds / floor, or None when
        that is below 1 (refused, `where` recorded)}. `flops` and `seconds` are for the same unit of work.
        `bound=False` for a row that computes in lower precision than the float32 GEMM the floor is measured with
        (it may legitimately beat the floor: its ratio is kept as is)."""
        floor = floor_seconds(flops, self.gflops_samples)
        ratio = seconds / floor
        if ratio < 1 and bound:
            self.refused.append(where)
            ratio = None
        return {"gflop": flops / 1e9, "floor_s": floor, "time_over_floor": ratio}

    def reasons(self) -> list[str]:
        """The contended marking's reason when some ratio was refused (else none)."""
        if not self.refused:
            return []
        rate = statistics.median(self.gflops_samples)
        return [f"time / floor below 1 for {', '.join(self.refused)}: faster than the FLOP floor is impossible, so "
                f"the GEMM rate of the floor ({rate:.3g} GFLOP/s) was measured under contention; those ratios are "
                "not given, and the run's other time / floor figures use the same rate and may be too low "
                "as well"]  # fmt: skip


def memory_attention_hand_count(num_queries: int, num_memory: int, dim: int, kv_dim: int, ff_dim: int) -> int:
    """FLOPs of one memory-attention layer (1 head, no downsampling) counted by hand: self-attention (q, k, v, o
    projections, QKᵀ, PV), cross-attention to the memory (keys/values projected from kv_dim), the MLP."""
    n, m, c = num_queries, num_memory, dim
    self_attention = 4 * (2 * n * c * c) + 2 * (2 * n * n * c)
    cross_attention = 2 * (2 * n * c * c) + 2 * (2 * m * kv_dim * c) + 2 * (2 * n * m * c)
    mlp = 2 * (2 * n * c * ff_dim)
    return self_attention + cross_attention + mlp


def attention_layer_check(meta_model, num_memory_frames: int = 7, num_pointer_tokens: int = 64) -> dict:
    """Counted vs hand-counted FLOPs of the first memory-attention layer of Meta's model, with a full bank."""
    layer = meta_model.memory_attention.layers[0]
    side = meta_model.image_size // 16
    n = side * side
    m = num_memory_frames * n + num_pointer_tokens
    dim, kv_dim = layer.self_attn.q_proj.in_features, layer.cross_attn_image.k_proj.in_features
    ff_dim = layer.linear1.out_features
    x, pos = torch.randn(1, n, dim), torch.randn(1, n, dim)
    memory, memory_pos = torch.randn(1, m, kv_dim), torch.randn(1, m, kv_dim)
    _, counted = count_flops(
        lambda: layer(x, memory, pos=memory_pos, query_pos=pos, num_k_exclude_rope=num_pointer_tokens)
    )
    hand = memory_attention_hand_count(n, m, dim, kv_dim, ff_dim)
    return {
        "layer": "Meta memory_attention.layers[0]", "queries": n, "memory_tokens": m, "dim": dim, "kv_dim": kv_dim,
        "ff_dim": ff_dim, "counted": counted["total"], "by_op": counted["by_op"], "hand_count": hand,
        "equal": counted["total"] == hand, "uncounted_heavy_ops": counted["uncounted_heavy_ops"],
    }  # fmt: skip
