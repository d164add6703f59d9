"""Meta's original `.pt` checkpoints: safe loading, size/version inference and key conversion.

Meta stores `{"model": state_dict}` keyed like `SAM2Base` (`image_encoder.trunk...`,
`sam_mask_decoder...`). `convert_meta_state_dict` renames those keys to the Hub layout used by
this library (and by transformers' `Sam2VideoModel`).
"""

from __future__ import annotations

import os
import re
import zipfile

import torch

from .configuration_sam2 import HIERA_SIZES, Sam2Config, canonical_size

# Substring renames, applied in order to every key (the order matters: later rules see earlier results).
RENAMES = [
    ("iou_prediction_head.layers.0", "iou_prediction_head.proj_in"),
    ("iou_prediction_head.layers.1", "iou_prediction_head.layers.0"),
    ("iou_prediction_head.layers.2", "iou_prediction_head.proj_out"),
    ("mask_decoder.output_upscaling.0", "mask_decoder.upscale_conv1"),
    ("mask_decoder.output_upscaling.1", "mask_decoder.upscale_layer_norm"),
    ("mask_decoder.output_upscaling.3", "mask_decoder.upscale_conv2"),
    ("mask_downscaling.0", "mask_embed.conv1"),
    ("mask_downscaling.1", "mask_embed.layer_norm1"),
    ("mask_downscaling.3", "mask_embed.conv2"),
    ("mask_downscaling.4", "mask_embed.layer_norm2"),
    ("mask_downscaling.6", "mask_embed.conv3"),
    ("dwconv", "depthwise_conv"),
    ("pwconv", "pointwise_conv"),
    ("fuser", "memory_fuser"),
    ("point_embeddings", "point_embed"),
    ("pe_layer.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"),
    ("obj_ptr_tpos_proj", "temporal_positional_encoding_projection_layer"),
    ("no_obj_embed_spatial", "occlusion_spatial_embedding_parameter"),
    ("sam_prompt_encoder", "prompt_encoder"),
    ("sam_mask_decoder", "mask_decoder"),
    ("maskmem_tpos_enc", "memory_temporal_positional_encoding"),
    ("gamma", "scale"),
    ("image_encoder.neck", "vision_encoder.neck"),
    ("image_encoder", "vision_encoder.backbone"),
    ("pix_feat_proj", "feature_projection"),
    ("patch_embed.proj", "patch_embed.projection"),
    ("no_mem_embed", "no_memory_embedding"),
    ("no_mem_pos_enc", "no_memory_positional_encoding"),
    ("obj_ptr", "object_pointer"),
    (".norm", ".layer_norm"),
    ("trunk.", ""),
    ("out_proj", "o_proj"),
]
THREE_LAYER_MLP = {"0": "proj_in", "1": "layers.0", "2": "proj_out"}
TWO_LAYER_MLP = {"0": "proj_in", "1": "proj_out"}


def _rename_mlp(key: str, prefix_pattern: str, names: dict) -> str:
    m = re.match(prefix_pattern + r"\.layers\.(\d+)\.(.*)$", key)
    return f"{m.group(1)}.{names[m.group(2)]}.{m.group(3)}" if m else key


def convert_meta_key(key: str) -> str:
    """One Meta `SAM2Base` key -> its Hub name."""
    for old, new in RENAMES:
        key = key.replace(old, new)
    key = _rename_mlp(key, r"(vision_encoder\.backbone\.blocks\.\d+\.mlp)", TWO_LAYER_MLP)
    key = _rename_mlp(key, r"(mask_decoder\.transformer\.layers\.\d+\.mlp)", TWO_LAYER_MLP)
    key = _rename_mlp(key, r"(mask_decoder\.pred_obj_score_head)", THREE_LAYER_MLP)
    key = _rename_mlp(key, r"(.*output_hypernetworks_mlps\.\d+)", THREE_LAYER_MLP)
    key = _rename_mlp(key, r"(object_pointer_proj)", THREE_LAYER_MLP)
    key = re.sub(r"^(vision_encoder\.neck\.convs\.\d+)\.conv\.", r"\1.", key)
    key = re.sub(r"^memory_encoder\.o_proj\.", "memory_encoder.projection.", key)
    m = re.match(r"^memory_encoder\.mask_downsampler\.encoder\.(\d+)\.(.*)$", key)
    if m:
        n = int(m.group(1))
        if n == 12:
            key = f"memory_encoder.mask_downsampler.final_conv.{m.group(2)}"
        else:
            part = "conv" if n % 3 == 0 else "layer_norm"
            key = f"memory_encoder.mask_downsampler.layers.{n // 3}.{part}.{m.group(2)}"
    return key


def convert_meta_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Meta `SAM2Base` state dict -> Hub/transformers `Sam2VideoModel` state dict."""
    out = {convert_meta_key(k): v for k, v in state_dict.items()}
    point_keys = [f"prompt_encoder.point_embed.{i}.weight" for i in range(4)]
    if all(k in out for k in point_keys):
        out["prompt_encoder.point_embed.weight"] = torch.cat([out.pop(k) for k in point_keys], dim=0)
    gaussian = out.get("prompt_encoder.shared_embedding.positional_embedding")
    if gaussian is not None:
        out["shared_image_embedding.positional_embedding"] = gaussian.clone()
    return out


def infer_size_and_version(state_dict: dict[str, torch.Tensor]) -> tuple[str, str]:
    """('tiny' | 'small' | 'base-plus' | 'large', '2' | '2.1') from a Meta or Hub state dict."""
    patch = state_dict.get("image_encoder.trunk.patch_embed.proj.weight")
    if patch is None:
        patch = state_dict.get("vision_encoder.backbone.patch_embed.projection.weight")
    if patch is None:
        raise ValueError("Not a SAM 2 checkpoint: it has no image-encoder patch embedding weight.")
    block_ids = {int(m.group(1)) for k in state_dict if (m := re.search(r"(?:trunk|backbone)\.blocks\.(\d+)\.", k))}
    hidden, depth = patch.shape[0], len(block_ids)
    for name, spec in HIERA_SIZES.items():
        if spec["hidden_size"] == hidden and sum(spec["blocks_per_stage"]) == depth:
            size = name
            break
    else:
        known = ", ".join(f"{n}: {s['hidden_size']}/{sum(s['blocks_per_stage'])}" for n, s in HIERA_SIZES.items())
        raise ValueError(
            f"The checkpoint's image encoder (width {hidden}, {depth} blocks) matches no SAM 2 size ({known})."
        )
    is_21 = any(k in state_dict for k in ("no_obj_embed_spatial", "occlusion_spatial_embedding_parameter"))
    return size, "2.1" if is_21 else "2"


def read_meta_checkpoint(path: str) -> dict[str, torch.Tensor]:
    """The `"model"` state dict of a Meta `.pt` file, loaded with `weights_only=True`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No checkpoint file at {path!r}.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise ValueError(f"{path!r} is not a readable PyTorch checkpoint (truncated or corrupt?): {e}") from e
    except Exception as e:  # weights_only refuses arbitrary pickled objects
        raise ValueError(f"{path!r} could not be loaded safely with weights_only=True: {e}") from e
    state_dict = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{path!r} holds no SAM 2 state dict (expected a dict of tensors under 'model').")
    return state_dict


def load_meta_checkpoint(model_class, path: str, size=None, version=None, image_size=1024, **config_kwargs):
    """Build `model_class` from a Meta `.pt` checkpoint (size/version inferred unless given)."""
    meta_state = read_meta_checkpoint(path)
    found_size, found_version = infer_size_and_version(meta_state)
    if size is not None and canonical_size(size) != found_size:
        raise ValueError(f"size={size!r} was requested but the checkpoint {path!r} holds a {found_size} model.")
    if version is not None and str(version) != found_version:
        raise ValueError(f"version={version!r} was requested but the checkpoint {path!r} is SAM {found_version}.")
    config = Sam2Config.from_size(found_size, found_version, image_size=image_size, **config_kwargs)
    model = model_class(config)
    load_converted_state_dict(model, convert_meta_state_dict(meta_state), source=path)
    return model.eval()


def load_converted_state_dict(model, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strict load that names missing, unexpected and mis-shaped keys (memory keys are optional for image models)."""
    expected = model.state_dict()
    if not getattr(model, "has_memory", True):
        state_dict = {k: v for k, v in state_dict.items() if k in expected}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"The weights in {source} do not fit the model config: "
            f"{len(missing)} missing {missing[:5]}, {len(unexpected)} unexpected {unexpected[:5]}, "
            f"{len(mismatched)} with other shapes {mismatched[:5]}."
        )
    model.load_state_dict(state_dict, strict=True)
