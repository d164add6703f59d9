"""Checkpoint loading: Meta's original `.pt` files and strict loading of Hub-format folders.

Meta stores `{"model": state_dict}` keyed like `SAM2Base` (`image_encoder.trunk...`,
`sam_mask_decoder...`). `convert_meta_state_dict` renames those keys to the Hub layout used by
this library (and by transformers' `Sam2VideoModel`).

Both paths refuse to return a half-loaded model: transformers' `from_pretrained` only warns
about missing or unexpected weights and re-initializes them randomly, which for a config.json
that disagrees with its weights silently gives a wrong model. Here that is an error naming the
offending keys (`strict=False` restores transformers' behaviour for Hub folders).
"""

from __future__ import annotations

import inspect
import os
import pickle
import re

import torch

from .configuration_sam2 import HIERA_SIZES, Sam2VideoConfig, canonical_size

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


META_CHECKPOINT_SUFFIXES = (".pt", ".pth")


def is_meta_checkpoint_path(path) -> bool:
    """True for a local or named `.pt` / `.pth` file (Meta's format), False for Hub ids and folders."""
    try:
        path = os.fspath(path)
    except TypeError:
        return False
    return isinstance(path, str) and path.lower().endswith(META_CHECKPOINT_SUFFIXES) and not os.path.isdir(path)


def normalize_version(version) -> str:
    """'2', '2.0', 2, 2.0 -> '2'; '2.1', 2.1 -> '2.1'; anything else raises."""
    text = str(version).strip().lower().removeprefix("sam").strip()
    if text in ("2", "2.0"):
        return "2"
    if text == "2.1":
        return "2.1"
    raise ValueError(f"Unknown SAM 2 version {version!r}; expected '2' or '2.1'.")


def infer_size_and_version(state_dict: dict[str, torch.Tensor]) -> tuple[str, str]:
    """('tiny' | 'small' | 'base-plus' | 'large', '2' | '2.1') from a Meta or Hub state dict.

    Only weight shapes and key names are used, so the answer does not depend on the image size
    the model was built for.
    """
    patch = state_dict.get("image_encoder.trunk.patch_embed.proj.weight")
    if patch is None:
        patch = state_dict.get("vision_encoder.backbone.patch_embed.projection.weight")
    if patch is None:
        raise ValueError(
            "Not a SAM 2 checkpoint: it has no image-encoder patch embedding weight "
            "('image_encoder.trunk.patch_embed.proj.weight' in Meta's layout)."
        )
    block_ids = {int(m.group(1)) for k in state_dict if (m := re.search(r"(?:trunk|backbone)\.blocks\.(\d+)\.", k))}
    hidden, depth = patch.shape[0], len(block_ids)
    contiguous = block_ids == set(range(depth))
    for name, spec in HIERA_SIZES.items():
        if contiguous and spec["hidden_size"] == hidden and sum(spec["blocks_per_stage"]) == depth:
            size = name
            break
    else:
        known = ", ".join(
            f"{n}: width {s['hidden_size']}, {sum(s['blocks_per_stage'])} blocks" for n, s in HIERA_SIZES.items()
        )
        gaps = "" if contiguous else f"; block indices are not 0..{depth - 1}: {sorted(block_ids)[:50]}"
        raise ValueError(
            f"The checkpoint's image encoder (width {hidden}, {depth} blocks{gaps}) matches no SAM 2 size ({known})."
        )
    has_occlusion = any(k in state_dict for k in ("no_obj_embed_spatial", "occlusion_spatial_embedding_parameter"))
    return size, "2.1" if has_occlusion else "2"


def read_meta_checkpoint(path: str) -> dict[str, torch.Tensor]:
    """The `"model"` state dict of a Meta `.pt` file, loaded with `weights_only=True` (no code is run)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No checkpoint file at {path!r}.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found:
            raise ValueError(
                f"Refusing to load {path!r}: it contains a pickled Python object ({found.group(1)}) besides "
                "tensors, and is only read with torch.load(weights_only=True), which never runs pickled code. "
                "Meta's SAM 2 checkpoints hold only tensors; re-save the file as {'model': state_dict}."
            ) from e
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(e))
        raise ValueError(
            f"{path!r} is not a readable PyTorch checkpoint (truncated, corrupt or not a torch.save file): "
            f"{detail.group(1).strip() if detail else type(e).__name__}"
        ) from e
    except Exception as e:  # a corrupt file can fail anywhere inside the (safe) unpickler or zip reader
        raise ValueError(
            f"{path!r} is not a readable PyTorch checkpoint (truncated, corrupt or not a torch.save file): "
            f"{type(e).__name__}: {str(e).strip()[:300]}"
        ) from e
    state_dict = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not state_dict:
        raise ValueError(
            f"{path!r} holds no SAM 2 state dict "
            f"(expected {{'model': {{name: tensor}}}}, got {type(checkpoint).__name__})."
        )
    not_tensors = sorted(k for k, v in state_dict.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise ValueError(
            f"{path!r} holds no SAM 2 state dict: {len(not_tensors)} entries are not tensors, e.g. {not_tensors[:5]}."
        )
    return state_dict


def _config_arguments() -> set[str]:
    params = inspect.signature(Sam2VideoConfig.__init__).parameters
    return {n for n, p in params.items() if n != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}


def load_meta_checkpoint(
    model_class,
    path: str,
    size=None,
    version=None,
    image_size: int = 1024,
    dtype=None,
    output_loading_info: bool = False,
    torch_dtype=None,
    **config_kwargs,
):
    """Build `model_class` from a Meta `.pt` checkpoint (size and version inferred unless given).

    `size` / `version`, when given, must agree with the weights. `image_size` sets the input
    resolution (the weights fit any multiple of 32; the official models use 1024). Other keyword
    arguments are `Sam2VideoConfig` fields. `Sam2Model` drops the memory weights it does not use.
    """
    unknown = sorted(set(config_kwargs) - _config_arguments())
    if unknown:
        raise TypeError(
            f"Unknown argument(s) {unknown} for loading a Meta .pt checkpoint; accepted: size, version, "
            "image_size, dtype, output_loading_info and Sam2VideoConfig fields."
        )
    path = os.fspath(path)
    meta_state = read_meta_checkpoint(path)
    found_size, found_version = infer_size_and_version(meta_state)
    if size is not None and canonical_size(size) != found_size:
        raise ValueError(f"size={size!r} was requested but the checkpoint {path!r} holds a {found_size} model.")
    if version is not None and normalize_version(version) != found_version:
        raise ValueError(f"version={version!r} was requested but the checkpoint {path!r} is SAM {found_version}.")
    config = Sam2VideoConfig.from_size(found_size, found_version, image_size=image_size, **config_kwargs)
    model = model_class(config)
    info = load_converted_state_dict(model, convert_meta_state_dict(meta_state), source=path)
    dtype = dtype if dtype is not None else torch_dtype
    if dtype is not None and dtype != "auto":
        model = model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    model.eval()
    return (model, info) if output_loading_info else model


def _ignored_unexpected(model, key: str) -> bool:
    patterns = getattr(model, "_keys_to_ignore_on_load_unexpected", None) or []
    return any(re.search(p, key) for p in patterns)


_MEMORY_PREFIXES = (
    "memory_",
    "mask_downsample",
    "object_pointer_proj",
    "temporal_positional_encoding",
    "no_memory_positional_encoding",
    "no_object_pointer",
    "occlusion_spatial_embedding",
)


def _describe_mismatch(source, model, missing, unexpected, mismatched) -> str:
    config = model.config
    vision = getattr(config, "vision_config", config)  # a whole model, or the image encoder alone
    backbone = getattr(vision, "backbone_config", vision)
    if missing and not unexpected and not mismatched and all(k.startswith(_MEMORY_PREFIXES) for k in missing):
        hint = (
            "The checkpoint lacks memory weights: an image-only (Sam2Model) save loads with Sam2Model, and "
            "SAM 2 weights need a SAM 2 (not 2.1) config."
        )
    else:
        hint = "Is config.json from another model size or SAM version than the weights?"
    return (
        f"The weights in {source} do not fit {type(model).__name__} (config: Hiera width {backbone.hidden_size}, "
        f"{sum(backbone.blocks_per_stage)} blocks{f', SAM {config.version}' if hasattr(config, 'version') else ''}): "
        f"{len(missing)} missing {sorted(missing)[:5]}, {len(unexpected)} unexpected {sorted(unexpected)[:5]}, "
        f"{len(mismatched)} with other shapes {sorted(mismatched)[:5]}. {hint} "
        "Refusing to return a model with randomly initialized weights."
    )


def load_converted_state_dict(model, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """Strict load that names missing, unexpected and mis-shaped keys.

    Keys the model ignores by design (`_keys_to_ignore_on_load_unexpected`: the memory weights for
    the image-only `Sam2Model`) are dropped. Returns transformers-style loading info (all empty).
    """
    expected = model.state_dict()
    state_dict = {k: v for k, v in state_dict.items() if k in expected or not _ignored_unexpected(model, k)}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        raise ValueError(_describe_mismatch(source, model, missing, unexpected, mismatched))
    model.load_state_dict(state_dict, strict=True)
    return {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}


def from_pretrained_checked(load, name, *args, strict: bool | None = None, **kwargs):
    """Run transformers' `from_pretrained` (`load`), but fail instead of re-initializing weights.

    transformers (5.x) by default raises on shape mismatches but only *warns* about missing or
    unexpected weights and fills missing ones randomly; a corrupt `model.safetensors` surfaces as a
    bare `SafetensorError`. Here any missing / unexpected / mis-shaped weight raises a `ValueError`
    naming them, and unreadable weight files raise a `ValueError` saying so. `strict=False`, or an
    explicit `ignore_mismatched_sizes=True`, keeps transformers' lenient behaviour.
    """
    if strict is None:
        strict = not kwargs.get("ignore_mismatched_sizes", False)
    if not strict:
        return load(name, *args, **kwargs)
    want_info = kwargs.pop("output_loading_info", False)
    kwargs["ignore_mismatched_sizes"] = True  # collect mismatches in the loading info; we raise below
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover - safetensors is a transformers dependency
        SafetensorError = ()
    try:
        model, info = load(name, *args, output_loading_info=True, **kwargs)
    except SafetensorError as e:
        raise ValueError(
            f"The weights of {os.fspath(name)!r} are not a readable safetensors file (truncated or corrupt? "
            f"re-download or re-save it): {e}"
        ) from e
    except RuntimeError as e:
        if "Error(s) in loading state_dict" in str(e) or "during automatic conversion" in str(e):
            raise ValueError(f"The weights of {os.fspath(name)!r} could not be loaded: {e}") from e
        raise
    missing = set(info.get("missing_keys") or ())
    unexpected = {k for k in info.get("unexpected_keys") or () if not _ignored_unexpected(model, k)}
    mismatched = [f"{k}: checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in info.get("mismatched_keys") or ()]
    if missing or unexpected or mismatched or info.get("error_msgs"):
        raise ValueError(_describe_mismatch(repr(os.fspath(name)), model, missing, unexpected, mismatched))
    return (model, info) if want_info else model
