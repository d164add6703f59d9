"""Memory attention against Meta's, the two kernels its speed comes from, and the mask decoder's few-keys attention.

sam2_hf's cross-attention attends the raw 64-d memory tokens and projects the result (instead of
projecting every memory token), one frame can be shared by several objects (its first self-attention
runs once), and RoPE has an in-place inference form: each must give Meta's result, with and without
gradients.

Tolerances are small multiples of the errors measured (fp32, 2 threads, 2026-12-05), which each test prints:
memory attention vs Meta 1.7e-6 (outputs of std 1, max 4.6); its gradients 4.9e-6 (current frame) and
1.3e-6 (memory) of the largest gradient; the narrow-value attention vs the plain formula 3.3e-7; the few-keys
attention vs the formula 8.9e-7.
"""

from __future__ import annotations

import math

import pytest
import torch

from sam2_hf import Sam2VideoModel
from sam2_hf.models.components import layers
from sam2_hf.models.components.layers import attention_narrow_values, eager_attention, sdpa_attention
from sam2_hf.models.components.position_encoding import (
    apply_rope,
    apply_rope_,
    axial_rope_tables,
    sine_position_encoding,
)

from reference import max_abs_diff

pytest.importorskip("sam2", reason="Meta's reference implementation (pip install sam2==1.1.0) is needed")

IMAGE_SIZE = 256  # 16 x 16 memory-attention grid
TOL = 1e-5  # memory attention vs Meta: measured 1.7e-6
GRAD_RTOL = {"current frame": 4e-5, "memory": 1e-5}  # of the largest gradient: measured 4.9e-6, 1.3e-6
NARROW_TOL = 2e-6  # attention_narrow_values vs softmax(q k^T / sqrt(d)) v: measured 3.3e-7


@pytest.fixture(scope="module")
def models(reference_models):
    reference = reference_models("tiny", "2.1", IMAGE_SIZE)
    return reference.new_meta(), reference.load(Sam2VideoModel).eval()  # backward reaches the weights of both


def memory_inputs(num_objects: int, num_frames: int = 3, num_pointers: int = 5):
    """A frame's tokens (1, HW, 256) and each object's memory bank (B, M, 64): frames then pointer tokens."""
    g = torch.Generator().manual_seed(1)
    hw = (IMAGE_SIZE // 16) ** 2
    m = num_frames * hw + 4 * num_pointers
    curr, curr_pos = torch.randn(1, hw, 256, generator=g), torch.randn(1, hw, 256, generator=g)
    memory, memory_pos = torch.randn(num_objects, m, 64, generator=g), torch.randn(num_objects, m, 64, generator=g)
    return curr, curr_pos, memory, memory_pos, 4 * num_pointers


def meta_memory_attention(meta, curr, curr_pos, memory, memory_pos, num_pointer_tokens):
    """Meta's call (sequence-first tensors), one object at a time as its video predictor runs it."""
    outs = [
        meta.memory_attention(
            curr=[curr.transpose(0, 1)],
            curr_pos=[curr_pos.transpose(0, 1)],
            memory=memory[i : i + 1].transpose(0, 1),
            memory_pos=memory_pos[i : i + 1].transpose(0, 1),
            num_obj_ptr_tokens=num_pointer_tokens,
        ).transpose(0, 1)
        for i in range(memory.shape[0])
    ]
    return torch.cat(outs)


@pytest.mark.parametrize("num_objects", [1, 3])
def test_memory_attention_matches_meta(models, num_objects):
    meta, ours = models
    inputs = memory_inputs(num_objects)
    with torch.no_grad():
        expected = meta_memory_attention(meta, *inputs)
        shared = ours.memory_attention(*inputs)  # the frame given once for all objects
        curr, curr_pos, *rest = inputs
        per_object = ours.memory_attention(curr.expand(num_objects, -1, -1), curr_pos, *rest)
    assert expected.shape == shared.shape == (num_objects, *curr.shape[1:])
    assert expected.std() > 0.1
    errors = {"shared": max_abs_diff(shared, expected), "per object": max_abs_diff(per_object, expected)}
    print(f"\nmemory attention vs Meta, {num_objects} object(s): max abs diff {errors} (tolerance {TOL:g})")
    assert max(errors.values()) < TOL, errors


def test_memory_attention_gradients_match_meta(models):
    """The training path (autograd through the chunked attention and RoPE) gives Meta's gradients."""
    meta, ours = models
    curr, curr_pos, memory, memory_pos, num_pointer_tokens = memory_inputs(2)
    grads = []
    for run in (
        lambda c, m: meta_memory_attention(meta, c, curr_pos, m, memory_pos, num_pointer_tokens),
        lambda c, m: ours.memory_attention(c, curr_pos, m, memory_pos, num_pointer_tokens),
    ):
        c, m = curr.clone().requires_grad_(), memory.clone().requires_grad_()
        (run(c, m) ** 2).sum().backward()
        grads.append((c.grad, m.grad))
    (meta_curr, meta_memory), (our_curr, our_memory) = grads
    assert meta_memory.abs().max() > 1e-3
    errors = {
        "current frame": max_abs_diff(our_curr, meta_curr) / meta_curr.abs().max().item(),
        "memory": max_abs_diff(our_memory, meta_memory) / meta_memory.abs().max().item(),
    }
    print(f"\nmemory attention gradients vs Meta, max abs diff / largest gradient: {errors} (tolerance {GRAD_RTOL})")
    assert all(errors[k] < GRAD_RTOL[k] for k in errors), errors


@pytest.mark.parametrize(
    ("q_shape", "kv_batch"),
    [((2, 1, 300, 32), (2, 1)), ((1, 1, 300, 32), (3, 1)), ((2, 2, 100, 16), (2, 2))],
)
def test_attention_narrow_values(q_shape, kv_batch):
    """softmax(q k^T / sqrt(d)) v with dv < d, q broadcast over k's batch, several query and key tiles."""
    g = torch.Generator().manual_seed(2)
    q = torch.randn(*q_shape, generator=g)
    k = torch.randn(*kv_batch, 500, q_shape[-1], generator=g)
    v = torch.randn(*kv_batch, 500, 8, generator=g)
    expected = torch.softmax(q @ k.transpose(-2, -1) / q_shape[-1] ** 0.5, dim=-1) @ v
    with torch.no_grad():
        inference = attention_narrow_values(q, k, v, tile=128)
    q_grad = q.clone().requires_grad_()
    training = attention_narrow_values(q_grad, k, v, tile=128)
    training.sum().backward()
    assert inference.shape == expected.shape == training.shape
    errors = {"inference": max_abs_diff(inference, expected), "training": max_abs_diff(training, expected)}
    print(f"\nnarrow-value attention vs the formula: max abs diff {errors} (tolerance {NARROW_TOL:g})")
    assert max(errors.values()) < NARROW_TOL, errors
    assert q_grad.grad.abs().max() > 0


@pytest.mark.parametrize("padding", [None, "additive", "boolean"])
def test_attention_to_few_keys(padding, monkeypatch):
    """The mask decoder's image-to-token attention (many queries, a few prompt tokens as keys): "sdpa" runs it keys
    first in float32 CPU inference, with the formula's result, also with padding tokens masked out (-inf); a boolean
    mask (True: attend) and training stay SDPA's."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 8, n, 16, generator=g) for n in (1000, 7, 7))
    mask = torch.zeros(2, 1, 1, 7)
    mask[1, ..., -2:] = -math.inf  # the second prompt set's last two tokens are batch padding
    mask = {None: None, "additive": mask, "boolean": mask == 0}[padding]
    calls, few_keys = [], layers.attention_to_few_keys
    monkeypatch.setattr(layers, "attention_to_few_keys", lambda *args: calls.append(1) or few_keys(*args))
    expected = eager_attention(q, k, v, mask=mask if padding != "boolean" else mask.float().log())
    with torch.no_grad():
        inference = sdpa_attention(q, k, v, mask=mask)
    assert len(calls) == (padding != "boolean")
    training = sdpa_attention(q.clone().requires_grad_(), k, v, mask=mask)
    assert len(calls) == (padding != "boolean")  # with gradients: SDPA
    error, sdpa_error = max_abs_diff(inference, expected), max_abs_diff(training, expected)
    print(f"\nfew-keys attention vs the formula: max abs diff {error:.2e} (SDPA's {sdpa_error:.2e})")
    assert error < NARROW_TOL
    if padding:  # the padded tokens change nothing: the same as attending to the first 5 only
        alone = eager_attention(q[1], k[1, :, :5], v[1, :, :5])
        assert max_abs_diff(inference[1], alone) < NARROW_TOL


def test_apply_rope_inference_training_and_in_place_forms_agree():
    """Tables of one grid applied to a bank of 3 frames: each frame rotated by the same positions."""
    cos, sin = axial_rope_tables(32, 8, 8, 10000.0)
    x = torch.randn(2, 1, 3 * 64, 32)
    with torch.no_grad():
        inference = apply_rope(x, cos, sin)
    training = apply_rope(x.clone().requires_grad_(), cos, sin)
    per_frame = torch.cat([apply_rope(x[:, :, i * 64 : (i + 1) * 64], cos, sin) for i in range(3)], dim=2)
    in_place = x.clone()
    with torch.no_grad():
        apply_rope_(in_place[:, :, 64:], cos, sin)  # rotate the last two frames only
    assert max_abs_diff(inference, training) < 1e-6
    assert max_abs_diff(inference, per_frame) == 0
    assert max_abs_diff(in_place[:, :, 64:], inference[:, :, 64:]) < 1e-6
    assert torch.equal(in_place[:, :, :64], x[:, :, :64])
    assert max_abs_diff(inference.norm(dim=-1), x.norm(dim=-1)) < 1e-5  # a rotation keeps lengths (9.5e-7)
    assert max_abs_diff(inference, x) > 0.1


def test_tables_first_made_in_inference_mode_still_train():
    """The cached RoPE / sine tables of a grid first used by inference (a tracking run) serve training too."""
    with torch.inference_mode():
        axial_rope_tables(32, 7, 5, 10000.0)  # a grid no other test uses, so this call fills the cache
        sine_position_encoding(64, 7, 5)
    cos, sin = axial_rope_tables(32, 7, 5, 10000.0)
    pos = sine_position_encoding(64, 7, 5)
    assert not (cos.is_inference() or sin.is_inference() or pos.is_inference())
    x = torch.randn(1, 1, 35, 32, requires_grad=True)
    (apply_rope(x, cos, sin) * pos.flatten(1).T[:, :32]).sum().backward()
    assert x.grad.abs().max() > 0


def test_memory_attention_in_float64_computes_in_float64():
    """A model run in float64 (the float64 parity tests, users who call `.double()`) stays in float64 through
    the steps that upcast half precision to fp32: RoPE tables and rotation, the narrow-value attention, the
    sine position tables and LayerNorm2d. Each is checked against the plain formula in float64: a hidden fp32
    step would leave an error near 1e-7, far above the 1e-12 asserted."""
    from sam2_hf.models.components.layers import LayerNorm2d

    cos, sin = axial_rope_tables(32, 8, 8, 10000.0, dtype=torch.float64)
    assert cos.dtype == sin.dtype == torch.float64
    assert axial_rope_tables(32, 8, 8, 10000.0)[0].dtype == torch.float32  # a different cache entry
    x = torch.randn(2, 1, 64, 32, dtype=torch.float64)
    freqs = 1.0 / 10000.0 ** (torch.arange(0, 32, 4, dtype=torch.float64)[:8] / 32)
    t = torch.arange(64, dtype=torch.float64)
    angles = torch.cat([torch.outer(t % 8, freqs), torch.outer(torch.div(t, 8, rounding_mode="floor"), freqs)], 1)
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack((even * angles.cos() - odd * angles.sin(), even * angles.sin() + odd * angles.cos()), -1)
    with torch.no_grad():
        assert max_abs_diff(apply_rope(x, cos, sin), rotated.flatten(-2)) < 1e-12

    q, k, v = (torch.randn(1, 2, n, d, dtype=torch.float64) for n, d in ((50, 16), (70, 16), (70, 8)))
    expected = torch.softmax(q @ k.transpose(-2, -1) / 4.0, dim=-1) @ v
    with torch.no_grad():
        out = attention_narrow_values(q, k, v)
    assert out.dtype == torch.float64 and max_abs_diff(out, expected) < 1e-12

    assert sine_position_encoding(64, 7, 5, dtype=torch.float64).dtype == torch.float64
    assert (
        max_abs_diff(
            sine_position_encoding(64, 7, 5, dtype=torch.float64)[0, -1, 0],
            math.sin(2 * math.pi * 7 / (7 + 1e-6)),  # channel 0: sin(y), last row
        )
        < 1e-12
    )

    norm, maps = LayerNorm2d(6).double(), torch.randn(2, 6, 3, 4, dtype=torch.float64)
    centred = maps - maps.mean(1, keepdim=True)
    assert max_abs_diff(norm(maps), centred / torch.sqrt(centred.square().mean(1, keepdim=True) + 1e-6)) < 1e-12
