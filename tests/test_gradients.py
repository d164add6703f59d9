"""Fine-tuning: gradients through sam2_hf's image path and memory encoder equal Meta's.

The inference paths write into fresh intermediates in place (activations, residual adds, RoPE) and
run the memory encoder object by object on CPU; with gradients enabled every one of them must fall
back to autograd-safe forms. One backward pass each (tiny 2.1 at 256 px, two images, two objects)
checks the gradients of every parameter against Meta's reference, weights shared through its `.pt`.
"""

from __future__ import annotations

import pytest
import torch

from sam2_hf import Sam2VideoModel
from sam2_hf.backends.torch import TorchBackend
from sam2_hf.tracking import heads as tracking_heads

from reference import max_abs_diff

pytest.importorskip("sam2", reason="Meta's reference implementation (pip install sam2==1.1.0) is needed")

IMAGE_SIZE = 256


@pytest.fixture(scope="module")
def models(reference_models):
    reference = reference_models("tiny", "2.1", IMAGE_SIZE)
    return reference.new_meta(), reference.load(Sam2VideoModel).eval()  # the test writes gradients into both


def inputs():
    g = torch.Generator().manual_seed(5)
    pixels = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    points = torch.tensor([[[0.3, 0.4], [0.7, 0.6]], [[0.6, 0.3], [0.2, 0.8]]]) * IMAGE_SIZE
    labels = torch.tensor([[1, 0], [1, 1]])
    return pixels, points, labels


def meta_loss(meta, pixels, points, labels):
    out = meta.forward_image(pixels)
    _, vision_feats, _, feat_sizes = meta._prepare_backbone_features(out)
    fpn = out["backbone_fpn"]
    heads = meta._forward_sam_heads(
        backbone_features=fpn[2] + meta.no_mem_embed.reshape(1, -1, 1, 1),
        point_inputs={"point_coords": points, "point_labels": labels.int()},
        high_res_features=[fpn[0], fpn[1]],
        multimask_output=True,
    )
    multimasks, _, iou, _, high_res, pointer, object_score = heads
    memory, _ = meta._encode_new_memory(vision_feats, feat_sizes, high_res, object_score, is_mask_from_pts=False)
    return multimasks.square().mean() + iou.sum() + pointer.square().mean() + memory.square().mean()


def our_loss(model, pixels, points, labels):
    features = model.encode_frame(pixels)
    heads = tracking_heads.predict_masks(
        TorchBackend(model),
        model.image_only_embedding(features.image_embeddings),
        features.high_res_features,
        points,
        labels,
        None,
        True,
    )
    memory = model.encode_memory(features, heads.high_res_masks, heads.object_score_logits)
    pointer = heads.object_pointer
    return heads.multimasks.square().mean() + heads.iou_scores.sum() + pointer.square().mean() + memory.square().mean()


def test_gradients_match_meta(models):
    meta, ours = models
    pixels, points, labels = inputs()
    meta.zero_grad()
    ours.zero_grad()
    meta_loss(meta, pixels, points, labels).backward()
    our_loss(ours, pixels, points, labels).backward()

    meta_grads = {name: p.grad for name, p in meta.named_parameters() if p.grad is not None}
    our_grads = {name: p.grad for name, p in ours.named_parameters() if p.grad is not None}
    # Spot-check parameters by name (the checkpoint converter maps the rest), and the total gradient
    # norm, which covers every parameter that received one (Meta's four point embeddings are one table here).
    pairs = {
        "image_encoder.trunk.patch_embed.proj.weight": "vision_encoder.backbone.patch_embed.projection.weight",
        "image_encoder.trunk.blocks.0.mlp.layers.0.weight": "vision_encoder.backbone.blocks.0.mlp.proj_in.weight",
        "image_encoder.trunk.blocks.5.attn.qkv.weight": "vision_encoder.backbone.blocks.5.attn.qkv.weight",
        "image_encoder.neck.convs.0.conv.weight": "vision_encoder.neck.convs.0.weight",
        "memory_encoder.fuser.layers.0.pwconv1.weight": "memory_encoder.memory_fuser.layers.0.pointwise_conv1.weight",
        "memory_encoder.mask_downsampler.encoder.1.weight": (
            "memory_encoder.mask_downsampler.layers.0.layer_norm.weight"
        ),
    }
    for meta_name, our_name in pairs.items():
        expected, actual = meta_grads[meta_name], our_grads[our_name]
        assert expected.abs().max() > 0, meta_name
        assert max_abs_diff(actual, expected) < 1e-3 * expected.abs().max(), (meta_name, our_name)
    meta_norm = torch.stack([g.norm() for g in meta_grads.values()]).norm()
    our_norm = torch.stack([g.norm() for g in our_grads.values()]).norm()
    assert abs(our_norm - meta_norm) < 1e-3 * meta_norm
