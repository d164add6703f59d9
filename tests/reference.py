"""Meta's reference SAM 2 (PyPI `sam2==1.1.0`, a test-only dependency) with seeded random weights.

Weights cannot be downloaded here, so parity tests build the reference from its own YAML configs,
randomize every weight with a fixed seed, save it as a Meta-format `.pt`, and load that file
into sam2_hf. Tests get all three through the session fixture `reference_models` (tests/conftest.py),
which builds each configuration once; bench/ calls `build_meta_model` and `save_meta_checkpoint` directly.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import numpy as np
import torch

META_CONFIGS = {
    ("tiny", "2.1"): "configs/sam2.1/sam2.1_hiera_t.yaml",
    ("small", "2.1"): "configs/sam2.1/sam2.1_hiera_s.yaml",
    ("base-plus", "2.1"): "configs/sam2.1/sam2.1_hiera_b+.yaml",
    ("large", "2.1"): "configs/sam2.1/sam2.1_hiera_l.yaml",
    ("tiny", "2"): "configs/sam2/sam2_hiera_t.yaml",
    ("small", "2"): "configs/sam2/sam2_hiera_s.yaml",
    ("base-plus", "2"): "configs/sam2/sam2_hiera_b+.yaml",
    ("large", "2"): "configs/sam2/sam2_hiera_l.yaml",
}
ALL_CONFIGS = list(META_CONFIGS)


def build_meta_model(
    size="tiny", version="2.1", image_size=1024, seed=0, object_score_bias=4.0, video=False, train_kwargs=None
):
    """A Meta `SAM2Base` (or `SAM2VideoPredictor` if `video`, or `training.model.sam2.SAM2Train` with
    `train_kwargs`, its training arguments, and dropout 0) in eval mode with seeded random weights.

    Built as Meta's builders build it (`apply_postprocessing=True`: dynamic multimask via stability;
    for video also mask binarization on clicked frames and 8-px hole filling). Every floating-point
    weight gets N(0, 0.02) noise so no learned constant is trivially zero, and the object-score head's
    output bias is raised by `object_score_bias` so objects are judged present (random heads otherwise
    sit on the decision boundary, which would hide bugs in the mask path).
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    feat = image_size // 16
    overrides = [
        f"++model.image_size={image_size}",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{feat},{feat}]",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{feat},{feat}]",
    ]
    if video:
        overrides += [
            "++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor",
            "++model.binarize_mask_from_pts_for_mem_enc=true",
            "++model.fill_hole_area=8",
        ]
    if train_kwargs is not None:  # dropout off: its random draws could not be matched
        overrides += ["++model._target_=training.model.sam2.SAM2Train"]
        overrides += [f"++model.memory_attention.layer.{k}=0.0" for k in ("dropout", "self_attention.dropout")]
        overrides += ["++model.memory_attention.layer.cross_attention.dropout=0.0"]
        overrides += [f"++model.{k}={v}" for k, v in train_kwargs.items()]
    GlobalHydra.instance().clear()
    with initialize_config_module("sam2", version_base="1.2"):
        cfg = compose(config_name=META_CONFIGS[(size, version)], overrides=overrides)
    OmegaConf.resolve(cfg)
    torch.manual_seed(seed)
    model = instantiate(cfg.model, _recursive_=True)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.add_(torch.randn(value.shape, generator=generator) * 0.02)
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += object_score_bias
    return model.eval()


DISCS = [(30, 35, 18, (220, 60, 60)), (85, 120, 22, (60, 200, 90)), (90, 40, 12, (80, 90, 230))]


def discs_image(height=120, width=160) -> np.ndarray:
    """(height, width, 3) uint8: three flat discs (centre y, x, radius, colour in `DISCS`) on a dark background."""
    image = np.full((height, width, 3), 30, np.uint8)
    y, x = np.mgrid[0:height, 0:width]
    for cy, cx, r, color in DISCS:
        image[(y - cy) ** 2 + (x - cx) ** 2 < r**2] = color
    return image


def follow_content(meta_model):
    """Change a random-weight Meta model (in place, returned) so that its masks follow the image: random
    weights make every click give the same noisy, image-wide mask. The Hiera position embeddings are zeroed
    (masks then follow the image's flat regions, not positions) and mask tokens 0 and 1 are negated (those
    masks are the small regions, the others the background)."""
    with torch.no_grad():
        meta_model.image_encoder.trunk.pos_embed.zero_()
        meta_model.image_encoder.trunk.pos_embed_window.zero_()
        for k in (0, 1):
            last = meta_model.sam_mask_decoder.output_hypernetworks_mlps[k].layers[-1]
            last.weight.neg_()
            last.bias.neg_()
    return meta_model


def save_meta_checkpoint(model, path) -> str:
    """Write `model` (a module or a state dict) the way Meta's release files are written: {"model": state_dict}."""
    torch.save({"model": model if isinstance(model, dict) else model.state_dict()}, path)
    return str(path)


def max_abs_diff(a, b) -> float:
    """Max abs difference of two same-shape arrays or tensors, computed in float64 (exact for fp32 inputs)."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    assert a.shape == b.shape, f"shape mismatch {tuple(a.shape)} vs {tuple(b.shape)}"
    return (a.double() - b.double()).abs().max().item()


@contextlib.contextmanager
def double_precision():
    """Inside, torch code that names float32 computes in float64: `torch.float32` and `torch.float` are
    `torch.float64`, `Tensor.float()` is `Tensor.double()`, and the default dtype is float64.

    Both implementations hard-code float32 in places that a model's `.double()` does not reach: the position
    encodings and RoPE tables, casts around the mask decoder's outputs and the memory encoder, Meta's frame
    loading. A comparison of two float64 runs must reach every one of them (a single float32 rounding on one
    side is a 1e-7 difference that weights where the memory matters amplify, frame after frame). sam2_hf's
    cached position tables are keyed by dtype, so the float64 ones made inside do not leak out.
    """
    saved = torch.float32, torch.float, torch.Tensor.float, torch.get_default_dtype()
    torch.float32 = torch.float = torch.float64
    torch.Tensor.float = torch.Tensor.double
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.float32, torch.float, torch.Tensor.float = saved[:3]
        torch.set_default_dtype(saved[3])


def meta_in_double(meta):
    """Meta's model in float64, for use inside `double_precision()`: parameters and buffers, and the RoPE
    tables that its memory attention keeps as a plain (complex64) attribute, recomputed in complex128."""
    meta.double()
    for module in meta.modules():
        if hasattr(module, "compute_cis"):
            side = math.isqrt(module.freqs_cis.shape[0])
            with double_precision():
                module.freqs_cis = module.compute_cis(end_x=side, end_y=side)
    return meta


def merge_artifact(path: Path, entries: dict, section: str | None = None) -> None:
    """Merge `entries` into the JSON test artifact at `path` (under `data[section]` if given), keeping what
    other entries (earlier runs, other tests) recorded there; an unreadable file is started afresh."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {}
    if path.exists():
        with contextlib.suppress(ValueError, OSError):
            data = json.loads(path.read_text())
    (data.setdefault(section, {}) if section else data).update(entries)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
