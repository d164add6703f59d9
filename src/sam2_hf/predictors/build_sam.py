"""Meta's model builders (`sam2.build_sam`) on sam2_hf, so Meta's scripts run by changing their imports.

    from sam2_hf.predictors.build_sam import build_sam2, build_sam2_video_predictor
    from sam2_hf import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(build_sam2("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"))
    video = build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt")

Same names, arguments and defaults as Meta's `sam2/build_sam.py` (sam2 1.1.0), same config names,
and Meta's Hydra override strings (`hydra_overrides_extra`) are translated to sam2_hf settings
through one table, `OVERRIDES`: `Sam2VideoConfig` fields, mask-decoder fields, or `Sam2VideoPredictor`
options. An override sam2_hf has no equivalent for is a `ValueError` naming it. Hydra itself is
not used (nor needed).

- `build_sam2` returns a `Sam2Model` (wrap it in `Sam2ImagePredictor`, as Meta wraps its
  `SAM2Base` in `SAM2ImagePredictor`);
- `build_sam2_video_predictor` returns a `Sam2VideoPredictor`;
- `build_sam2_hf` / `build_sam2_video_predictor_hf` download Meta's `.pt` from the Hub, as Meta's do.

`apply_postprocessing=True` adds exactly Meta's overrides (dynamic multimask fallback via
stability; for video also binarized click masks for the memory encoder and 8-pixel hole filling);
with `False` the settings are Meta's bare config defaults (as `tools/vos_inference.py` runs).
`vos_optimized=True` is accepted: Meta's `SAM2VideoPredictorVOS` only wraps the image encoder,
memory encoder, memory attention, prompt encoder and mask decoder in
`torch.compile(mode="max-autotune")` (plus the `.clone()` calls compilation needs); it changes no
formula, only speed and the rounding of compiled kernels. sam2_hf runs eagerly either way.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass

import torch

from ..models.checkpoint import META_CONFIGS, convert_meta_state_dict, load_converted_state_dict, read_checkpoint
from ..models.configuration import Sam2VideoConfig
from ..models.modeling import Sam2Model, Sam2VideoModel
from .video_predictor import Sam2VideoPredictor

logger = logging.getLogger(__name__)

# Meta's table (sam2/build_sam.py): Hub repo -> (config name, checkpoint file in that repo).
HF_MODEL_ID_TO_FILENAMES = {
    "facebook/sam2-hiera-tiny": ("configs/sam2/sam2_hiera_t.yaml", "sam2_hiera_tiny.pt"),
    "facebook/sam2-hiera-small": ("configs/sam2/sam2_hiera_s.yaml", "sam2_hiera_small.pt"),
    "facebook/sam2-hiera-base-plus": ("configs/sam2/sam2_hiera_b+.yaml", "sam2_hiera_base_plus.pt"),
    "facebook/sam2-hiera-large": ("configs/sam2/sam2_hiera_l.yaml", "sam2_hiera_large.pt"),
    "facebook/sam2.1-hiera-tiny": ("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
    "facebook/sam2.1-hiera-small": ("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
    "facebook/sam2.1-hiera-base-plus": ("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt"),
    "facebook/sam2.1-hiera-large": ("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
}


@dataclass(frozen=True)
class Override:
    """One Hydra key of Meta's model config (after "model.") and where its value goes in sam2_hf.

    target: "config" (a `Sam2VideoConfig` field), "mask_decoder" (a `Sam2MaskDecoderConfig` field),
    "predictor" (a `Sam2VideoPredictor` option) or "speed" (accepted, changes no number).
    kind: bool, int, float or "int pair" (a list of two positive ints).
    meta_default: the value when neither Meta's YAML nor an override sets it (None: sam2_hf's own
    default gives the same numbers).
    in_yaml: the key is in every Meta model YAML, so Hydra refuses `+key=` (append) and accepts
    plain `key=`; a key not in the YAML needs `+` or `++`.
    video_only: an argument of Meta's `SAM2VideoPredictor`, not of `SAM2Base`: Meta's `build_sam2`
    rejects it, so ours does too.
    field: the sam2_hf name (default: the key's last part).
    """

    key: str
    target: str
    kind: object
    meta_default: object
    in_yaml: bool = False
    video_only: bool = False
    field: str = ""

    def __post_init__(self):
        if not self.field:
            object.__setattr__(self, "field", self.key.rsplit(".", 1)[-1])


_DECODER = "sam_mask_decoder_extra_args."
_ROPE = "memory_attention.layer."
_ROPE_FIELD = "memory_attention_rope_feat_sizes"

# THE override table: one row per supported Hydra key; add a row to support another one.
OVERRIDES: dict[str, Override] = {
    o.key: o
    for o in (
        # model (Sam2VideoConfig fields)
        Override("image_size", "config", int, 1024, in_yaml=True),
        Override("num_maskmem", "config", int, 7, in_yaml=True),
        Override("sigmoid_scale_for_mem_enc", "config", float, 20.0, in_yaml=True),
        Override("sigmoid_bias_for_mem_enc", "config", float, -10.0, in_yaml=True),
        Override("multimask_output_in_sam", "config", bool, True, in_yaml=True),
        Override("multimask_min_pt_num", "config", int, 0, in_yaml=True),
        Override("multimask_max_pt_num", "config", int, 1, in_yaml=True),
        Override("multimask_output_for_tracking", "config", bool, True, in_yaml=True),
        Override("max_cond_frames_in_attn", "config", int, -1, field="max_cond_frame_num"),
        Override("max_obj_ptrs_in_encoder", "config", int, 16, field="max_object_pointers_in_encoder"),
        # Memory-attention RoPE grid: Meta and sam2_hf recompute it for the actual feature grid when it
        # differs, so it changes no number; accepted because Meta needs it with another image_size.
        Override(_ROPE + "self_attention.feat_sizes", "config", "int pair", None, in_yaml=True, field=_ROPE_FIELD),
        Override(_ROPE + "cross_attention.feat_sizes", "config", "int pair", None, in_yaml=True, field=_ROPE_FIELD),
        # SAM mask decoder (Sam2MaskDecoderConfig fields); Meta's decoder defaults differ from sam2_hf's config
        Override(_DECODER + "dynamic_multimask_via_stability", "mask_decoder", bool, False),
        Override(_DECODER + "dynamic_multimask_stability_delta", "mask_decoder", float, 0.05),
        Override(_DECODER + "dynamic_multimask_stability_thresh", "mask_decoder", float, 0.98),
        # video predictor options that are SAM2Base arguments (build_sam2 accepts them; they act on video only)
        Override("binarize_mask_from_pts_for_mem_enc", "predictor", bool, False),
        Override("memory_temporal_stride_for_eval", "predictor", int, 1),
        # video predictor options that are SAM2VideoPredictor arguments
        Override("fill_hole_area", "predictor", int, 0, video_only=True),
        Override("non_overlap_masks", "predictor", bool, False, video_only=True),
        Override("clear_non_cond_mem_around_input", "predictor", bool, False, video_only=True),
        Override("add_all_frames_to_correct_as_cond", "predictor", bool, False, video_only=True),
        # speed only: Meta torch.compiles its image encoder; sam2_hf runs eagerly (same numbers)
        Override("compile_image_encoder", "speed", bool, False, in_yaml=True),
    )
}

# What Meta's builders add for `apply_postprocessing=True` (after the caller's overrides, so they win).
IMAGE_POSTPROCESSING_OVERRIDES = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
)
VIDEO_POSTPROCESSING_OVERRIDES = (
    *IMAGE_POSTPROCESSING_OVERRIDES,
    "++model.binarize_mask_from_pts_for_mem_enc=true",
    "++model.fill_hole_area=8",
)
# What Meta's `vos_optimized=True` adds (besides switching to the compiling SAM2VideoPredictorVOS class).
VOS_OPTIMIZED_OVERRIDES = ("++model.compile_image_encoder=True",)

# sam2_hf-only keyword arguments of build_sam2_video_predictor (Meta's builders ignore unknown ones).
VIDEO_EXTRA_KWARGS = ("memory_policy", "memory_dtype", "memory_selection", "backend")


# ---------------------------------------------------------------------------------------------- builders
def build_sam2(
    config_file,
    ckpt_path=None,
    device=None,
    mode="eval",
    hydra_overrides_extra=[],  # noqa: B006 - Meta's signature; never mutated
    apply_postprocessing=True,
    **kwargs,
) -> Sam2Model:
    """The image model (`Sam2Model`) for one of Meta's config names and `.pt` checkpoints.

    config_file: e.g. "configs/sam2.1/sam2.1_hiera_l.yaml" (see `META_CONFIGS`).
    ckpt_path: Meta's or Ultralytics' `.pt` (loaded strictly: it must hold exactly this size and version), or None
    for an untrained model. device: where the model goes; by default CUDA when it is available, else the CPU
    with one warning (Meta defaults to "cuda" and fails without it, e.g. in its `tools/vos_inference.py` and
    `sam2/benchmark.py`, which pass no device); "cuda" or "mps" asked for where it is missing is a
    RuntimeError saying to pass "cpu". mode: "eval" puts the model in eval mode, anything else leaves it training.
    hydra_overrides_extra: Meta's Hydra override strings ("++model.image_size=512", ...; see `OVERRIDES`).
    apply_postprocessing: Meta's dynamic multimask fallback via stability for single-mask outputs.
    """
    device = resolve_device(device)
    _warn_ignored(kwargs, "build_sam2", ())
    overrides = [
        *_override_list(hydra_overrides_extra),
        *(IMAGE_POSTPROCESSING_OVERRIDES if apply_postprocessing else ()),
    ]
    size, version = resolve_config_name(config_file)
    config, _ = settings_from_overrides(size, version, overrides, video=False)
    model = _build_model(Sam2Model, config, size, version, config_file, ckpt_path)
    model = model.to(device)
    model.train(mode != "eval")
    return model


def build_sam2_video_predictor(
    config_file,
    ckpt_path=None,
    device=None,
    mode="eval",
    hydra_overrides_extra=[],  # noqa: B006 - Meta's signature; never mutated
    apply_postprocessing=True,
    vos_optimized=False,
    **kwargs,
) -> Sam2VideoPredictor:
    """The video predictor (`Sam2VideoPredictor`) for one of Meta's config names and `.pt` checkpoints.

    Arguments as `build_sam2` (`device` too: CUDA when available, else the CPU with one warning), plus
    `vos_optimized` (accepted; Meta only compiles with it, see the module docstring) and sam2_hf's
    `memory_policy`, `memory_dtype` and `memory_selection` keywords (`Sam2VideoPredictor`).
    `apply_postprocessing` adds Meta's video post-processing: dynamic multimask fallback, binarized click masks
    for the memory encoder and hole filling up to 8 low-resolution pixels; without it these are off, as in
    Meta's `tools/vos_inference.py`.
    """
    device = resolve_device(device)
    extra = _warn_ignored(kwargs, "build_sam2_video_predictor", VIDEO_EXTRA_KWARGS)
    overrides = [
        *(VOS_OPTIMIZED_OVERRIDES if vos_optimized else ()),
        *_override_list(hydra_overrides_extra),
        *(VIDEO_POSTPROCESSING_OVERRIDES if apply_postprocessing else ()),
    ]
    size, version = resolve_config_name(config_file)
    config, options = settings_from_overrides(size, version, overrides, video=True)
    model = _build_model(Sam2VideoModel, config, size, version, config_file, ckpt_path)
    predictor = Sam2VideoPredictor(model.to(device), **options, **extra)
    predictor.model.train(mode != "eval")
    return predictor


def build_sam2_hf(model_id, **kwargs) -> Sam2Model:
    """`build_sam2` on Meta's checkpoint from the Hub repo `model_id` (e.g. "facebook/sam2.1-hiera-large")."""
    config_name, ckpt_path = _hf_download(model_id)
    return build_sam2(config_file=config_name, ckpt_path=ckpt_path, **kwargs)


def build_sam2_video_predictor_hf(model_id, **kwargs) -> Sam2VideoPredictor:
    """`build_sam2_video_predictor` on Meta's checkpoint from the Hub repo `model_id`."""
    config_name, ckpt_path = _hf_download(model_id)
    return build_sam2_video_predictor(config_file=config_name, ckpt_path=ckpt_path, **kwargs)


# ---------------------------------------------------------------------------------------------- config names
def resolve_config_name(config_file) -> tuple[str, str]:
    """Meta config name -> (size, version), e.g. "configs/sam2.1/sam2.1_hiera_b+.yaml" -> ("base-plus", "2.1")."""
    name = str(config_file).strip()
    key = name.lstrip("/")
    if not key.endswith(".yaml"):
        key += ".yaml"
    if key not in META_CONFIGS:
        raise ValueError(
            f"Unknown SAM 2 config {config_file!r}. Known names (as Meta's sam2 package resolves them; "
            f"'.yaml' optional): {', '.join(META_CONFIGS)}."
        )
    return META_CONFIGS[key]


# ---------------------------------------------------------------------------------------------- overrides
_OVERRIDE_RE = re.compile(r"^(?P<prefix>\+\+|\+|~)?(?P<key>[A-Za-z_][\w.]*)\s*(?:=(?P<value>.*))?$", re.DOTALL)
_DIGITS = r"\d(?:_?\d)*"
_INT_RE = re.compile(r"[+-]?(?:0|[1-9](?:_?\d)*)")
_FLOAT_RE = re.compile(
    rf"[+-]?(?:(?:(?:{_DIGITS})?\.{_DIGITS}|{_DIGITS}\.)(?:[eE][+-]?{_DIGITS})?|{_DIGITS}[eE][+-]?{_DIGITS}|inf|nan)",
    re.IGNORECASE,
)


def parse_hydra_value(text: str):
    """A Hydra override value as Hydra types it: true/false (any case), null, ints ("1_000", "+5"),
    floats ("1e-3", ".5", "inf"), lists ("[16, 16]"), quoted or bare strings."""
    s = text.strip()
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    if _INT_RE.fullmatch(s):
        return int(s.replace("_", ""))
    if _FLOAT_RE.fullmatch(s):
        return float(s.replace("_", ""))
    if s.startswith("[") and s.endswith("]"):
        inner = s[1:-1].strip()
        return [parse_hydra_value(part) for part in _split_top_level(inner)] if inner else []
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    return s


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _supported_list(video: bool) -> str:
    keys = [f"model.{k}" for k, o in OVERRIDES.items() if video or not o.video_only]
    return ", ".join(keys)


def _typed(value, kind, override: str):
    """Check / convert a parsed value to the option's kind; a ValueError names the override."""
    ok = False
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind == "int pair":
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        )
    if not ok:
        expected = kind if isinstance(kind, str) else kind.__name__
        raise ValueError(f"Override {override!r}: expected a value of type {expected}, got {value!r}.")
    return value


def _override_list(overrides) -> list:
    """`hydra_overrides_extra` as a list; one string (a common slip) is a TypeError, not split into characters."""
    if isinstance(overrides, str):
        raise TypeError("hydra_overrides_extra must be a list of override strings, not one string.")
    return list(overrides)


def parse_overrides(overrides, video: bool) -> dict[str, object]:
    """Hydra override strings -> {table key: typed value}, applied in order (a later one wins, as in
    Hydra). Unknown keys, deletions, ill-typed values and Hydra's append/override rules are errors."""
    values: dict[str, object] = {}
    present = {k for k, o in OVERRIDES.items() if o.in_yaml}
    for text in _override_list(overrides):
        m = _OVERRIDE_RE.match(str(text).strip())
        if m is not None and m.group("prefix") == "~":
            raise ValueError(f"Override {text!r} deletes a config key, which sam2_hf does not support.")
        if m is None or m.group("value") is None:
            raise ValueError(f"Cannot parse the Hydra override {text!r}; expected '[+|++]model.<key>=<value>'.")
        prefix, full_key = m.group("prefix") or "", m.group("key")
        key = full_key.removeprefix("model.")
        option = OVERRIDES.get(key) if full_key.startswith("model.") else None
        if option is None:
            raise ValueError(
                f"Unsupported override {text!r}: sam2_hf has no equivalent of {full_key!r}. "
                f"Supported keys: {_supported_list(video)}."
            )
        if option.video_only and not video:
            raise ValueError(
                f"Override {text!r} sets an option of Meta's SAM2VideoPredictor, which build_sam2's model "
                "(SAM2Base) does not have (Meta's build_sam2 rejects it too); use build_sam2_video_predictor."
            )
        if prefix == "+" and key in present:
            raise ValueError(
                f"Override {text!r}: 'model.{key}' is already in Meta's config, so Hydra refuses to append it; "
                f"use 'model.{key}=...' or '++model.{key}=...'."
            )
        if prefix == "" and key not in present:
            raise ValueError(
                f"Override {text!r}: 'model.{key}' is not in Meta's config, so Hydra refuses to override it; "
                f"use '+model.{key}=...' or '++model.{key}=...'."
            )
        present.add(key)
        values[key] = _typed(parse_hydra_value(m.group("value")), option.kind, text)
    return values


def settings_from_overrides(size: str, version: str, overrides, video: bool) -> tuple[Sam2VideoConfig, dict]:
    """(Sam2VideoConfig, Sam2VideoPredictor options) for Meta's config of this size/version with `overrides`.

    Starts from Meta's defaults (`Override.meta_default`), then applies the overrides in order.
    """
    values = {k: o.meta_default for k, o in OVERRIDES.items() if o.meta_default is not None}
    values.update(parse_overrides(overrides, video))
    by_field: dict[tuple[str, str], object] = {}
    for key, value in values.items():
        option = OVERRIDES[key]
        where = (option.target, option.field)
        if where in by_field and by_field[where] != value:
            keys = [f"model.{k}" for k, o in OVERRIDES.items() if (o.target, o.field) == where]
            raise ValueError(f"Overrides {keys} set the same sam2_hf setting to different values.")
        by_field[where] = value
    config = Sam2VideoConfig.from_size(size, version, image_size=values["image_size"])
    options = {}
    for (target, field), value in by_field.items():
        if target == "config":
            setattr(config, field, list(value) if isinstance(value, list) else value)
        elif target == "mask_decoder":
            setattr(config.mask_decoder_config, field, value)
        elif target == "predictor":
            options[field] = value
    if not video:
        options = {}  # SAM2Base's video options have nothing to act on in image mode
    return config, options


# ---------------------------------------------------------------------------------------------- internals
def resolve_device(device) -> torch.device:
    """The builders' device: `device` (a str or `torch.device`) when given, else CUDA when available, else the
    CPU with one UserWarning (where Meta's default "cuda" fails). Raises RuntimeError for "cuda" / "mps"
    asked for on a machine without it, saying to pass "cpu"."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        warnings.warn(
            "CUDA is not available: building the model on the CPU (Meta's builders default to device='cuda' "
            "and fail here); pass device= to choose.",
            stacklevel=3,
        )
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={str(device)!r} but CUDA is not available here; pass device='cpu' (or 'mps' on Apple silicon)."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device={str(device)!r} but MPS is not available here; pass device='cpu'.")
    return device


def _warn_ignored(kwargs: dict, builder: str, accepted) -> dict:
    """Keep the sam2_hf extras in `accepted`; warn about the rest, which Meta's builders ignore too."""
    ignored = sorted(k for k in kwargs if k not in accepted)
    if ignored:
        warnings.warn(f"{builder} ignores the keyword argument(s) {ignored} (as Meta's does).", stacklevel=3)
    return {k: v for k, v in kwargs.items() if k in accepted}


def _build_model(model_class, config: Sam2VideoConfig, size: str, version: str, config_file, ckpt_path):
    model = model_class(config)
    if ckpt_path is None:
        return model
    state, found_size, found_version = read_checkpoint(ckpt_path)  # Meta's or Ultralytics' .pt
    if (found_size, found_version) != (size, version):
        raise ValueError(
            f"Config {config_file!r} is SAM {version} {size}, but the checkpoint {str(ckpt_path)!r} holds a "
            f"SAM {found_version} {found_size} model (Meta's builder fails on it too: missing/unexpected keys)."
        )
    load_converted_state_dict(model, convert_meta_state_dict(state), source=repr(str(ckpt_path)))
    logger.info("Loaded checkpoint successfully")
    return model


def _hf_download(model_id):
    if model_id not in HF_MODEL_ID_TO_FILENAMES:
        raise ValueError(f"Unknown SAM 2 Hub model {model_id!r}; known: {', '.join(HF_MODEL_ID_TO_FILENAMES)}.")
    from huggingface_hub import hf_hub_download

    config_name, checkpoint_name = HF_MODEL_ID_TO_FILENAMES[model_id]
    return config_name, hf_hub_download(repo_id=model_id, filename=checkpoint_name)
