"""Checkpoint loading: `.pt` files (Meta's and Ultralytics') and strict loading of Hub-format folders.

Meta stores `{"model": state_dict}` keyed like `SAM2Base` (`image_encoder.trunk...`,
`sam_mask_decoder...`). `convert_meta_state_dict` renames those keys to the Hub layout used by
this library (and by transformers' `Sam2VideoModel`), `to_meta_state_dict` back (one table, `KEY_RENAMES`, read
both ways; `write_meta_checkpoint` writes a `.pt` that Meta's `build_sam2` loads). The `.pt` families read are listed in
`PT_FORMATS` (one row per family; add a row for another): Ultralytics' SAM 2 files use Meta's key
layout, so one reader serves both, and a row only adds the family's file names and messages.

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
import warnings
from dataclasses import dataclass

import torch

from .configuration import HIERA_SIZES, SIZE_ALIASES, Sam2VideoConfig, check_requested_model

EXPORT_MANIFEST = "export.json"  # what `sam2-hf export` writes last into its folder (backends/export.py: MANIFEST)

# Meta's model configs, named as Meta's Hydra search path (the `sam2` package) finds them. The
# top-level `sam2_hiera_*.yaml` are Meta's older names for the SAM 2 configs (same files).
# `build_sam.resolve_config_name` also takes them with a leading "/" or without ".yaml", as Hydra does.
_SIZE_LETTERS = {"t": "tiny", "s": "small", "b+": "base-plus", "l": "large"}
META_CONFIGS: dict[str, tuple[str, str]] = {
    **{f"configs/sam2.1/sam2.1_hiera_{k}.yaml": (size, "2.1") for k, size in _SIZE_LETTERS.items()},
    **{f"configs/sam2/sam2_hiera_{k}.yaml": (size, "2") for k, size in _SIZE_LETTERS.items()},
    **{f"sam2_hiera_{k}.yaml": (size, "2") for k, size in _SIZE_LETTERS.items()},
}

# Meta `SAM2Base` names -> Hub names, as runs of dotted segments ("*": an index, kept). A key is renamed in one
# left-to-right pass over its segments, taking at each the longest run that matches; read right to left, the same
# table gives the inverse (`to_meta_key`), so the two directions cannot drift apart.
_MLP_LAYERS = {2: ("proj_in", "proj_out"), 3: ("proj_in", "layers.0", "proj_out")}
_MLPS = {  # Meta's `MLP` modules (`layers.i`) -> Hub's (`proj_in`, `layers.i`, `proj_out`), by number of layers
    "mlp": ("mlp", 2),
    "iou_prediction_head": ("iou_prediction_head", 3),
    "pred_obj_score_head": ("pred_obj_score_head", 3),
    "output_hypernetworks_mlps.*": ("output_hypernetworks_mlps.*", 3),
    "obj_ptr_proj": ("object_pointer_proj", 3),
}
_MASK_DOWNSAMPLER_LAYERS = 4  # Meta's `MaskDownSampler` (total stride 16, stride 2): conv, norm, GELU per layer
KEY_RENAMES: tuple[tuple[str, str], ...] = (
    ("image_encoder.trunk", "vision_encoder.backbone"),
    ("image_encoder.neck", "vision_encoder.neck"),
    ("convs.*.conv", "convs.*"),
    ("patch_embed.proj", "patch_embed.projection"),
    *(
        (f"{meta}.layers.{i}", f"{hub}.{name}")
        for meta, (hub, n) in _MLPS.items()
        for i, name in enumerate(_MLP_LAYERS[n])
    ),
    *((norm, f"layer_{norm}") for norm in ("norm", "norm1", "norm2", "norm3", "norm4", "norm_final_attn")),
    ("out_proj", "o_proj"),
    ("sam_prompt_encoder", "prompt_encoder"),
    ("point_embeddings", "point_embed"),  # Meta's 4 embeddings of (1, C): one (4, C) weight in the Hub layout
    ("pe_layer.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"),
    ("mask_downscaling.0", "mask_embed.conv1"),
    ("mask_downscaling.1", "mask_embed.layer_norm1"),
    ("mask_downscaling.3", "mask_embed.conv2"),
    ("mask_downscaling.4", "mask_embed.layer_norm2"),
    ("mask_downscaling.6", "mask_embed.conv3"),
    ("sam_mask_decoder", "mask_decoder"),
    ("output_upscaling.0", "upscale_conv1"),
    ("output_upscaling.1", "upscale_layer_norm"),
    ("output_upscaling.3", "upscale_conv2"),
    ("maskmem_tpos_enc", "memory_temporal_positional_encoding"),
    ("no_mem_embed", "no_memory_embedding"),
    ("no_mem_pos_enc", "no_memory_positional_encoding"),
    ("no_obj_ptr", "no_object_pointer"),
    ("no_obj_embed_spatial", "occlusion_spatial_embedding_parameter"),
    ("obj_ptr_tpos_proj", "temporal_positional_encoding_projection_layer"),
    ("memory_encoder.out_proj", "memory_encoder.projection"),
    ("pix_feat_proj", "feature_projection"),
    ("fuser", "memory_fuser"),
    ("dwconv", "depthwise_conv"),
    ("pwconv1", "pointwise_conv1"),
    ("pwconv2", "pointwise_conv2"),
    ("gamma", "scale"),
    *(
        (f"mask_downsampler.encoder.{3 * i + j}", f"mask_downsampler.layers.{i}.{part}")
        for i in range(_MASK_DOWNSAMPLER_LAYERS)
        for j, part in enumerate(("conv", "layer_norm"))
    ),
    (f"mask_downsampler.encoder.{3 * _MASK_DOWNSAMPLER_LAYERS}", "mask_downsampler.final_conv"),
)
# Meta's prompt encoder and mask decoder share one Fourier encoding; the Hub layout holds a copy for each.
_SHARED_POSITIONAL_EMBEDDING = ("prompt_encoder.shared_embedding.positional_embedding",
                                "shared_image_embedding.positional_embedding")  # fmt: skip
_POINT_EMBEDDINGS = "prompt_encoder.point_embed"


def _segment_rules(to_hub: bool) -> list[tuple[list[str], list[str]]]:
    """(from segments, to segments) for one direction, the longest runs first."""
    rules = [(a.split("."), b.split(".")) for a, b in KEY_RENAMES]
    rules = rules if to_hub else [(b, a) for a, b in rules]
    return sorted(rules, key=lambda rule: -len(rule[0]))


_TO_HUB, _TO_META = _segment_rules(to_hub=True), _segment_rules(to_hub=False)


def _rename(key: str, rules) -> str:
    """`key` with every run of its segments that a rule matches renamed, left to right, in one pass."""
    segments, out, i = key.split("."), [], 0
    while i < len(segments):
        for source, target in rules:
            run = segments[i : i + len(source)]
            if len(run) == len(source) and all(s == r or (s == "*" and r.isdigit()) for s, r in zip(source, run)):
                indices = iter(r for s, r in zip(source, run) if s == "*")
                out += [next(indices) if t == "*" else t for t in target]
                i += len(source)
                break
        else:
            out.append(segments[i])
            i += 1
    return ".".join(out)


def convert_meta_key(key: str) -> str:
    """One Meta `SAM2Base` key -> its Hub name (`KEY_RENAMES`)."""
    return _rename(key, _TO_HUB)


def to_meta_key(key: str) -> str:
    """One Hub key -> its Meta `SAM2Base` name: `convert_meta_key`'s inverse (`KEY_RENAMES` read backwards)."""
    return _rename(key, _TO_META)


def convert_meta_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Meta `SAM2Base` state dict -> Hub/transformers `Sam2VideoModel` state dict."""
    out = {convert_meta_key(k): v for k, v in state_dict.items()}
    point_keys = [f"{_POINT_EMBEDDINGS}.{i}.weight" for i in range(4)]
    if all(k in out for k in point_keys):
        out[f"{_POINT_EMBEDDINGS}.weight"] = torch.cat([out.pop(k) for k in point_keys], dim=0)
    prompt_encoding, image_encoding = _SHARED_POSITIONAL_EMBEDDING
    if prompt_encoding in out:
        out[image_encoding] = out[prompt_encoding].clone()
    return out


def to_meta_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hub/transformers `Sam2VideoModel` state dict -> Meta `SAM2Base` state dict (`convert_meta_state_dict`'s
    inverse): the (4, C) point embedding split into Meta's four (1, C) ones, the image encoding's copy of the
    prompt encoder's Fourier matrix dropped. Raises ValueError when that copy differs (Meta holds one matrix)."""
    state_dict = dict(state_dict)
    prompt_encoding, image_encoding = _SHARED_POSITIONAL_EMBEDDING
    copy = state_dict.pop(image_encoding, None)
    if copy is not None and not torch.equal(copy, state_dict.get(prompt_encoding, copy)):
        raise ValueError(
            f"{image_encoding} differs from {prompt_encoding}: Meta's SAM2Base holds one positional encoding for "
            "both, so this model cannot be written in its format."
        )
    points = state_dict.pop(f"{_POINT_EMBEDDINGS}.weight", None)
    if points is not None:
        state_dict.update({f"{_POINT_EMBEDDINGS}.{i}.weight": row[None] for i, row in enumerate(points)})
    return {to_meta_key(k): v for k, v in state_dict.items()}


def write_meta_checkpoint(model, path) -> str:
    """Write `model` (a `Sam2VideoModel`, any dtype) as Meta's release files are written: `torch.save({"model":
    state_dict})`, SAM2Base's key names (`to_meta_state_dict`), fp32 tensors. `sam2.build_sam.build_sam2` loads
    it with the config file this returns (e.g. "configs/sam2.1/sam2.1_hiera_t.yaml", `META_CONFIGS`).
    Raises ValueError for a model without the memory weights (an image-only `Sam2Model`): Meta's model has them."""
    state_dict = to_meta_state_dict(model.state_dict())
    if not any(key.startswith("memory_attention.") for key in state_dict):
        raise ValueError(
            f"{type(model).__name__} has no memory weights, which Meta's SAM2Base holds: convert a video model."
        )
    size, version = infer_size_and_version(state_dict)
    state_dict = {k: (v.float() if v.is_floating_point() else v).detach().cpu().clone() for k, v in state_dict.items()}
    torch.save({"model": state_dict}, path)
    return next(name for name, found in META_CONFIGS.items() if found == (size, version))


META_CHECKPOINT_SUFFIXES = (".pt", ".pth")


def check_local_path(name) -> None:
    """FileNotFoundError naming `name` when it can only be a local folder (absolute; starting with ./, ../ or ~; ending
    with a separator; or with more than one "/", where a Hub id is "name" or "namespace/name") and nothing is there.
    Otherwise huggingface_hub would answer with a message about repo ids."""
    try:
        text = os.fspath(name)
    except TypeError:
        return
    if not isinstance(text, str) or os.path.exists(os.path.expanduser(text)) or is_meta_checkpoint_path(text):
        return  # a .pt file: its loader names a missing one
    starts = ("./", "../", "~", "." + os.sep, ".." + os.sep)
    if os.path.isabs(text) or text.startswith(starts) or text.endswith(("/", os.sep)) or text.count("/") > 1:
        raise FileNotFoundError(
            f"{text} does not exist. Give a Hub model id (e.g. facebook/sam2.1-hiera-tiny), a folder written by "
            "save_pretrained or `sam2-hf export`, or a Meta .pt file."
        )


def check_not_an_export(name, model_class) -> None:
    """ValueError when `name` is a folder written by `sam2-hf export` (it holds `EXPORT_MANIFEST`): graphs, which the
    predictors run, not weights that `model_class` could load (transformers would say no model.safetensors)."""
    try:
        text = os.path.expanduser(os.fspath(name))
    except TypeError:
        return
    if isinstance(text, str) and os.path.isfile(os.path.join(text, EXPORT_MANIFEST)):
        raise ValueError(f"{text} is an exported model (graphs written by `sam2-hf export`, not weights), which "
                         f"{model_class.__name__} cannot load: run it with Sam2ImagePredictor.from_pretrained("
                         f"{text!r}) or Sam2VideoPredictor.from_pretrained({text!r}) (`sam2-hf track --model "
                         f"{text}`).")  # fmt: skip


def is_meta_checkpoint_path(path) -> bool:
    """True for a local or named `.pt` / `.pth` file (Meta's format), False for Hub ids and folders."""
    try:
        path = os.fspath(path)
    except TypeError:
        return False
    return isinstance(path, str) and path.lower().endswith(META_CHECKPOINT_SUFFIXES) and not os.path.isdir(path)


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


@dataclass(frozen=True)
class PtFormat:
    """One family of `.pt` files `read_checkpoint` reads; all hold Meta's `SAM2Base` key layout.

    name: the family as messages name it ("Meta", "Ultralytics").
    file_name: regex (full match, case-insensitive) on a release file's name, with groups `version`
        ("sam2" or "sam2.1") and `size` (a key of `sizes`). A name is a hint only: the weights decide.
    sizes: `size` as the file names write it -> the canonical size.
    containers: how the family's tools store the weights (said when a file holds no state dict).
    full_object_hint: advice when a file of this family holds a pickled object (its tool's full-object
        save) instead of tensors, matched by the first pickled class's module prefix `full_object_module`.
    """

    name: str
    file_name: str
    sizes: dict[str, str]
    containers: str
    full_object_module: str = ""
    full_object_hint: str = ""


PT_FORMATS = (
    PtFormat(
        "Meta",
        r"(?P<version>sam2(?:\.1)?)_hiera_(?P<size>tiny|small|base_plus|b\+|large|t|s|l)\.pth?",
        {**{n: n for n in ("tiny", "small", "large")}, **SIZE_ALIASES},
        "{'model': state_dict} (sam2.build_sam._load_checkpoint)",
    ),
    PtFormat(
        "Ultralytics",
        r"(?P<version>sam2(?:\.1)?)_(?P<size>[tsbl])\.pt",
        {"t": "tiny", "s": "small", "b": "base-plus", "l": "large"},
        "{'model': state_dict} or the bare state dict (ultralytics.models.sam.build._load_checkpoint)",
        full_object_module="ultralytics.",
        full_object_hint=(
            "It is an Ultralytics `Model.save()` file, which pickles the whole model object (Ultralytics' own "
            "SAM() cannot rebuild SAM 2 from it either). In an environment you trust, re-save its weights: "
            "torch.save({'model': torch.load(path, weights_only=False)['model'].float().state_dict()}, 'sam2.1_t.pt')."
        ),
    ),
)


def name_hint(path) -> tuple[PtFormat, str, str] | None:
    """(format, size, version) that a release file name suggests, e.g. "sam2.1_b.pt" -> (Ultralytics, "base-plus",
    "2.1"), "sam2_hiera_tiny.pt" -> (Meta, "tiny", "2"); None for other names. Only a hint: weights decide."""
    name = os.path.basename(os.fspath(path))
    for fmt in PT_FORMATS:
        m = re.fullmatch(fmt.file_name, name, flags=re.IGNORECASE)
        if m:
            return fmt, fmt.sizes[m.group("size").lower()], "2.1" if m.group("version").lower() == "sam2.1" else "2"
    return None


def release_repo(path) -> str | None:
    """The official Hub repo holding the weights a release file name stands for ("sam2_b.pt" ->
    "facebook/sam2-hiera-base-plus", "sam2.1_hiera_tiny.pt" -> "facebook/sam2.1-hiera-tiny"); None for other
    names. The one table is `PT_FORMATS`' file names with the canonical sizes."""
    hint = name_hint(path)
    return None if hint is None else f"facebook/sam{hint[2]}-hiera-{hint[1]}"


NOT_SAM2_FILE = re.compile(r"(sam_[bhl]|mobile_sam|FastSAM-[sx]|sam3)\.pt", flags=re.IGNORECASE)  # Ultralytics' others


def fetch_release(path) -> str | None:
    """For a release file name that is not here (`release_repo`): the local folder of its official Hub repo,
    fetched with huggingface_hub (once; cached). None for an existing path or another name. Raises ValueError for
    Ultralytics' SAM 1 / MobileSAM / FastSAM / SAM 3 names (not SAM 2) and FileNotFoundError naming the file, the
    repo, the download command and where release files come from when the repo cannot be reached."""
    try:
        path = os.fspath(path)
    except TypeError:
        return None
    if os.path.exists(path):
        return None
    if NOT_SAM2_FILE.fullmatch(os.path.basename(path)):
        raise ValueError(
            f"{path!r} is not SAM 2 (SAM 1, MobileSAM, FastSAM or SAM 3): sam2_hf runs SAM 2 and 2.1 only; use a SAM 2 "
            "file such as sam2.1_b.pt or sam2_b.pt, or a Hub id such as facebook/sam2.1-hiera-base-plus."
        )
    repo = release_repo(path)
    if repo is None:
        return None
    import huggingface_hub

    try:
        return huggingface_hub.snapshot_download(repo)
    except Exception as e:  # offline, no such repo, a proxy error: one message with the way out
        fmt, size, version = name_hint(path)
        raise FileNotFoundError(
            f"{path!r} is the {fmt.name} release file of SAM {version} {size}. It is not at {os.path.abspath(path)}, "
            f"and its weights could not be fetched from the Hugging Face Hub repo {repo} ({type(e).__name__}: {e}). "
            f"Download them while online (`huggingface-cli download {repo}`, then they are cached), or put the "
            "release file at that path (Ultralytics' files: github.com/ultralytics/assets/releases; Meta's: "
            "dl.fbaipublicfiles.com/segment_anything_2)."
        ) from e


def _describe_hint(hint) -> str:
    fmt, size, version = hint
    return f"named like the {fmt.name} release file of SAM {version} {size}"


def read_checkpoint(path) -> tuple[dict[str, torch.Tensor], str, str]:
    """(state dict in Meta's key layout, size, version) of a `.pt` file of any family in `PT_FORMATS`.

    Read with `read_meta_checkpoint` (weights_only=True); size and version are inferred from the weights
    (`infer_size_and_version`). The file name is a hint only: when the weights cannot be placed the error
    names what the file name suggested; when they disagree with it a warning says so and the weights win
    (Ultralytics would build SAM 2 for "sam2_b.pt" and fail on SAM 2.1 weights in it).
    Raises FileNotFoundError (no file) and ValueError (unreadable, pickled objects, not SAM 2).
    """
    path = os.fspath(path)
    hint = name_hint(path)
    if hint and not os.path.exists(path):
        raise FileNotFoundError(
            f"No checkpoint file at {path!r} ({_describe_hint(hint)}). Weights are not downloaded: download the file "
            "from its publisher (Ultralytics: github.com/ultralytics/assets/releases; Meta: "
            "dl.fbaipublicfiles.com/segment_anything_2) and pass its path."
        )
    state_dict = read_meta_checkpoint(path)
    try:
        size, version = infer_size_and_version(state_dict)
    except ValueError as e:
        if hint is None:
            raise
        raise ValueError(f"{path!r} is {_describe_hint(hint)}, but its weights do not say which model: {e}") from e
    if hint and hint[1:] != (size, version):
        warnings.warn(
            f"{path!r} is {_describe_hint(hint)}, but its weights are SAM {version} {size}; loading them as that.",
            stacklevel=3,
        )
    return state_dict, size, version


def _full_object_advice(pickled_class: str) -> str:
    for fmt in PT_FORMATS:
        if fmt.full_object_module and pickled_class.startswith(fmt.full_object_module):
            return fmt.full_object_hint
    return "Meta's SAM 2 checkpoints hold only tensors; re-save the file as {'model': state_dict}."


def read_meta_checkpoint(path: str) -> dict[str, torch.Tensor]:
    """The state dict of a `.pt` file in Meta's key layout, loaded with `weights_only=True` (no code is run).

    Reads `{"model": state_dict}` (Meta's and Ultralytics' release files) and a bare state dict (which
    Ultralytics' loader also reads). Raises FileNotFoundError, or ValueError for an unreadable file, one
    holding pickled objects (with the advice of the `PT_FORMATS` row whose tool wrote it) or no state dict.
    """
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
                + _full_object_advice(found.group(1))
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
            f"{path!r} holds no SAM 2 state dict (expected "
            + "; ".join(f"{fmt.name}: {fmt.containers}" for fmt in PT_FORMATS)
            + f"; got {type(checkpoint).__name__})."
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
    """Build `model_class` from a `.pt` checkpoint of Meta or Ultralytics (size and version inferred unless given).

    `path`: any file `read_checkpoint` reads (see `PT_FORMATS`). `size` / `version`, when given, must
    agree with the weights. `image_size` sets the input resolution (the weights fit any multiple of
    32; the official models use 1024). Other keyword arguments are `Sam2VideoConfig` fields.
    `Sam2Model` drops the memory weights it does not use.
    """
    unknown = sorted(set(config_kwargs) - _config_arguments())
    if unknown:
        raise TypeError(
            f"Unknown argument(s) {unknown} for loading a .pt checkpoint; accepted: size, version, "
            "image_size, dtype, output_loading_info and Sam2VideoConfig fields."
        )
    path = os.fspath(path)
    meta_state, found_size, found_version = read_checkpoint(path)
    config = Sam2VideoConfig.from_size(found_size, found_version, image_size=image_size, **config_kwargs)
    check_requested_model(f"the checkpoint {path!r}", config, size, version)
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
    explicit `ignore_mismatched_sizes=True`, keeps transformers' lenient behaviour, and so does no
    `name` (None, with `config=` and `state_dict=`: transformers' way to build a model from the weights
    given, as its `test_can_init_all_missing_weights` does): the weights not given are initialised by
    `_init_weights` and reported as transformers reports them (its loading report, `output_loading_info`).
    """
    if strict is None:
        strict = name is not None and not kwargs.get("ignore_mismatched_sizes", False)
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
        source = "the given state_dict" if name is None else repr(os.fspath(name))
        raise ValueError(_describe_mismatch(source, model, missing, unexpected, mismatched))
    return (model, info) if want_info else model
