"""Configuration of SAM 2 / 2.1, in the JSON layout of the official Hub repos.

`Sam2Config` reads and writes exactly the `config.json` of `facebook/sam2.1-hiera-*`
(transformers' `sam2_video` model type), so a folder saved here loads in stock
`transformers.Sam2VideoModel` and the Hub configs load here.
"""

from __future__ import annotations

import copy

from transformers import PreTrainedConfig

# Per-size Hiera settings (Meta's YAML configs; memory/decoder parts are the same for all sizes).
HIERA_SIZES = {
    "tiny": dict(
        hidden_size=96,
        num_attention_heads=1,
        blocks_per_stage=[1, 2, 7, 2],
        global_attention_blocks=[5, 7, 9],
        window_positional_embedding_background_size=[7, 7],
        window_size_per_stage=[8, 4, 14, 7],
    ),
    "small": dict(
        hidden_size=96,
        num_attention_heads=1,
        blocks_per_stage=[1, 2, 11, 2],
        global_attention_blocks=[7, 10, 13],
        window_positional_embedding_background_size=[7, 7],
        window_size_per_stage=[8, 4, 14, 7],
    ),
    "base-plus": dict(
        hidden_size=112,
        num_attention_heads=2,
        blocks_per_stage=[2, 3, 16, 3],
        global_attention_blocks=[12, 16, 20],
        window_positional_embedding_background_size=[14, 14],
        window_size_per_stage=[8, 4, 14, 7],
    ),
    "large": dict(
        hidden_size=144,
        num_attention_heads=2,
        blocks_per_stage=[2, 6, 36, 4],
        global_attention_blocks=[23, 33, 43],
        window_positional_embedding_background_size=[7, 7],
        window_size_per_stage=[8, 4, 16, 8],
    ),
}
SIZE_ALIASES = {"t": "tiny", "s": "small", "b+": "base-plus", "b": "base-plus", "base_plus": "base-plus", "l": "large"}
VERSIONS = ("2", "2.1")
DEFAULT_MODEL = "facebook/sam2.1-hiera-tiny"  # what the CLI, the annotator and the Space load unless told otherwise


def canonical_size(size: str) -> str:
    """'b+' / 'base_plus' / 'Base-Plus' -> 'base-plus' (any case); raises on unknown names."""
    text = str(size).strip().lower()
    name = SIZE_ALIASES.get(text, text)
    if name not in HIERA_SIZES:
        raise ValueError(f"Unknown SAM 2 size {size!r}; expected one of {sorted(HIERA_SIZES)} (or "
                         f"{', '.join(SIZE_ALIASES)}).")  # fmt: skip
    return name


def normalize_version(version) -> str:
    """'2', '2.0', 2, 2.0 -> '2'; '2.1', 2.1, 'SAM 2.1' -> '2.1'; anything else raises."""
    text = str(version).strip().lower().removeprefix("sam").strip()
    if text in ("2", "2.0"):
        return "2"
    if text == "2.1":
        return "2.1"
    raise ValueError(f"Unknown SAM 2 version {version!r}; expected '2' or '2.1'.")


def official_size(config) -> str | None:
    """The official size ('tiny', 'small', 'base-plus', 'large') whose Hiera trunk a `Sam2Config` or
    `Sam2VideoConfig` has (width and blocks per stage), or None for a trunk of no official size."""
    trunk = config.vision_config.backbone_config
    for name, spec in HIERA_SIZES.items():
        if trunk.hidden_size == spec["hidden_size"] and list(trunk.blocks_per_stage) == spec["blocks_per_stage"]:
            return name
    return None


def check_model_names(size=None, version=None) -> None:
    """ValueError for a size or version name that is not one of SAM 2's (`canonical_size`, `normalize_version`);
    None is not asked. Loaders call it before reading anything, so a typo is named as such."""
    if size is not None:
        canonical_size(size)
    if version is not None:
        normalize_version(version)


def check_requested_model(source: str, config, size=None, version=None) -> None:
    """The `size=` / `version=` a loader was asked for (None: not asked) against the `Sam2Config` or
    `Sam2VideoConfig` that `source` holds (`official_size`; `Sam2VideoConfig.version`).

    Raises ValueError for an unknown size or version name (`check_model_names`), naming both when they differ, and
    when `version` is asked of a source read as an image model (a `Sam2Config`: SAM 2 and 2.1 share it, so it does
    not record the version).
    """
    check_model_names(size, version)
    if size is not None and canonical_size(size) != (found_size := official_size(config)):
        held = f"a {found_size} model" if found_size else "a model of no official size"
        raise ValueError(f"size={size!r} was requested but {source} holds {held}.")
    if version is None:
        return
    if not isinstance(config, Sam2VideoConfig):
        raise ValueError(f"version={version!r} cannot be checked for {source}: it is read as an image model, whose "
                         "configuration does not record the SAM version (SAM 2 and 2.1 image models differ only in "
                         "their weights); load it without version=.")  # fmt: skip
    if normalize_version(version) != config.version:
        raise ValueError(f"version={version!r} was requested but {source} is SAM {config.version}.")


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value, value]


def _as_given(value):
    """A size kept as given (an int, or a list: tuples become lists for JSON), as transformers keeps it."""
    return list(value) if isinstance(value, tuple) else value


class Sam2HieraDetConfig(PreTrainedConfig):
    """Configuration of the Hiera trunk, the hierarchical ViT of the image encoder (`Sam2HieraDetModel`).

    Hiera turns a (B, 3, S, S) image into four stage outputs at strides 4, 8, 16 and 32 with C, 2C, 4C and 8C
    channels (C = `hidden_size`): windowed self-attention with a few global-attention blocks, and query pooling
    at the start of stages 2 to 4. The per-size values (tiny, small, base-plus, large) are in `HIERA_SIZES`;
    SAM 2 and SAM 2.1 use the same trunk. "Cells" below are positions of a stage's feature grid.

    Args:
        hidden_size (`int`, *optional*, defaults to 96):
            Channel width C of the first stage: the patch embedding's output channels and the width of both
            position embeddings; later stages default to 2C, 4C and 8C (`embed_dim_per_stage`). 96 for tiny and
            small, 112 for base-plus, 144 for large (Meta: `embed_dim`).
        num_attention_heads (`int`, *optional*, defaults to 1):
            Attention heads of the first stage's blocks; later stages default to 2x, 4x and 8x this
            (`num_attention_heads_per_stage`). 1 for tiny and small, 2 for base-plus and large (Meta: `num_heads`).
        num_channels (`int`, *optional*, defaults to 3):
            Channels of the input image (RGB): the input channels of the patch embedding convolution.
        image_size (`int` or `list[int]`, *optional*, defaults to `[1024, 1024]`):
            Input size (height, width) in pixels. Informational: the trunk runs at any multiple of 32 (its
            background position embedding is interpolated to the actual grid) and does not read it;
            `from_size` / `with_image_size` keep it equal to the model's input size, as transformers writes it,
            and `Sam2Config` / `Sam2VideoConfig` reject a trunk whose `image_size` differs from theirs.
        patch_kernel_size (`int` or `list[int]`, *optional*, defaults to `[7, 7]`):
            Kernel size, in pixels, of the patch embedding convolution that turns pixels into the first stage's
            tokens.
        patch_stride (`int` or `list[int]`, *optional*, defaults to `[4, 4]`):
            Stride, in pixels, of the patch embedding convolution: the first stage's grid is S/4 x S/4 cells.
        patch_padding (`int` or `list[int]`, *optional*, defaults to `[3, 3]`):
            Zero padding, in pixels, of the patch embedding convolution.
        query_stride (`int` or `list[int]`, *optional*, defaults to `[2, 2]`):
            Pooling factor between stages: the first block of each pooled stage max-pools its queries (and its
            shortcut) by this stride, so the grid shrinks and the stride doubles (Meta: `q_stride`).
        window_positional_embedding_background_size (`list[int]`, *optional*, defaults to `[7, 7]`):
            Size (height, width) of the learned background position embedding (`pos_embed`), which is
            bicubically interpolated to the first stage's S/4 x S/4 grid; the learned window embedding
            (`pos_embed_window`, `window_size_per_stage[0]` cells a side) is tiled over it and added. [7, 7] for
            tiny, small and large, [14, 14] for base-plus (Meta: `window_pos_embed_bkg_spatial_size`).
        num_query_pool_stages (`int`, *optional*, defaults to 3):
            Number of stage transitions that pool the queries (the first `num_query_pool_stages` stages after
            the first one start with a pooling block); 3 gives the strides 4, 8, 16 and 32 (Meta: `q_pool`).
        blocks_per_stage (`list[int]`, *optional*, defaults to `[1, 2, 7, 2]`):
            Number of Hiera blocks (transformer layers) in each of the four stages: [1, 2, 7, 2] tiny,
            [1, 2, 11, 2] small, [2, 3, 16, 3] base-plus, [2, 6, 36, 4] large (Meta: `stages`).
        embed_dim_per_stage (`list[int]`, *optional*, defaults to `None`):
            Channel width of each stage; None means `hidden_size * [1, 2, 4, 8]`. The first entry is not read:
            the first stage has `hidden_size` channels.
        num_attention_heads_per_stage (`list[int]`, *optional*, defaults to `None`):
            Attention heads of each stage; None means `num_attention_heads * [1, 2, 4, 8]`. The first entry is
            not read: the first stage has `num_attention_heads` heads.
        window_size_per_stage (`list[int]`, *optional*, defaults to `[8, 4, 14, 7]`):
            Side, in cells of each stage's grid, of the square windows its windowed blocks attend within
            ([8, 4, 16, 8] for large; Meta: `window_spec`). As in Meta's Hiera, the first (pooling) block of a
            stage still partitions the grid before pooling with the previous stage's window size.
        global_attention_blocks (`list[int]`, *optional*, defaults to `[5, 7, 9]`):
            Indices (0-based, counted over all blocks of the trunk) of the blocks that attend over the whole grid
            instead of within windows: [5, 7, 9] tiny, [7, 10, 13] small, [12, 16, 20] base-plus, [23, 33, 43]
            large (Meta: `global_att_blocks`).
        mlp_ratio (`float`, *optional*, defaults to 4.0):
            Hidden width of each block's MLP, as a multiple of the block's output width.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the blocks' MLPs ("gelu" or "relu" in this implementation).
        layer_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon of the blocks' LayerNorms.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialization of the trunk's linear and convolution weights when it
            is built without a checkpoint (the position embeddings start at zero).
    """

    model_type = "sam2_hiera_det_model"
    base_config_key = "backbone_config"

    def __init__(
        self,
        hidden_size=96,
        num_attention_heads=1,
        num_channels=3,
        image_size=(1024, 1024),
        patch_kernel_size=(7, 7),
        patch_stride=(4, 4),
        patch_padding=(3, 3),
        query_stride=(2, 2),
        window_positional_embedding_background_size=(7, 7),
        num_query_pool_stages=3,
        blocks_per_stage=(1, 2, 7, 2),
        embed_dim_per_stage=None,
        num_attention_heads_per_stage=None,
        window_size_per_stage=(8, 4, 14, 7),
        global_attention_blocks=(5, 7, 9),
        mlp_ratio=4.0,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        initializer_range=0.02,
        **kwargs,
    ):
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.num_channels = num_channels
        self.image_size = _as_given(image_size)
        self.patch_kernel_size = _as_given(patch_kernel_size)
        self.patch_stride = _as_given(patch_stride)
        self.patch_padding = _as_given(patch_padding)
        self.query_stride = _as_given(query_stride)
        self.window_positional_embedding_background_size = _as_list(window_positional_embedding_background_size)
        self.num_query_pool_stages = num_query_pool_stages
        self.blocks_per_stage = list(blocks_per_stage)
        self.embed_dim_per_stage = (
            list(embed_dim_per_stage) if embed_dim_per_stage is not None else [hidden_size * 2**i for i in range(4)]
        )
        self.num_attention_heads_per_stage = (
            list(num_attention_heads_per_stage)
            if num_attention_heads_per_stage is not None
            else [num_attention_heads * 2**i for i in range(4)]
        )
        self.window_size_per_stage = list(window_size_per_stage)
        self.global_attention_blocks = list(global_attention_blocks)
        self.mlp_ratio = mlp_ratio
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        super().__init__(**kwargs)


class Sam2VisionConfig(PreTrainedConfig):
    """Configuration of the image encoder (`Sam2VisionModel`): the Hiera trunk followed by an FPN neck.

    The neck projects the trunk's four stage outputs to `fpn_hidden_size` channels with lateral convolutions
    and adds upsampled coarser levels into some finer ones (top-down path). The encoder returns the levels at
    strides 4, 8 and 16: the stride-16 map (h x w = S/16 x S/16 cells) is the image embedding that the mask
    decoder and the memory work on; the stride-4 and stride-8 maps become the mask decoder's high-resolution
    skip features. The same in SAM 2 and SAM 2.1; only the trunk differs between sizes.

    Args:
        backbone_config (`Sam2HieraDetConfig` or `dict`, *optional*, defaults to `None`):
            The Hiera trunk. None: `Sam2HieraDetConfig()`, the tiny size at 1024 pixels.
        backbone_channel_list (`list[int]`, *optional*, defaults to `[768, 384, 192, 96]`):
            Channels of the trunk's stage outputs from the coarsest (stride 32) to the finest (stride 4), i.e.
            `embed_dim_per_stage` reversed; one lateral convolution per entry (Meta's `FpnNeck` argument of the
            same name).
        backbone_feature_sizes (`list[list[int]]`, *optional*, defaults to `[[256, 256], [128, 128], [64, 64]]`):
            Grid sizes (height, width), in cells, of the three returned levels: S/4, S/8 and S/16. Not read by
            this implementation (the sizes follow from the input); transformers reshapes the features with it,
            so `from_size` / `with_image_size` keep it consistent with the input size, and `Sam2Config` /
            `Sam2VideoConfig` reject other values.
        fpn_hidden_size (`int`, *optional*, defaults to 256):
            Channel width of the FPN outputs (Meta: `d_model`). It is the width of the image embedding that the
            mask decoder, the memory attention and the memory encoder read, of the `no_memory_embedding` and of
            the object pointers, so it must match the prompt encoder's and mask decoder's `hidden_size` and the
            video config's `memory_attention_hidden_size` / `memory_encoder_hidden_size` (`Sam2Config` and
            `Sam2VideoConfig` raise a ValueError otherwise).
        fpn_kernel_size (`int`, *optional*, defaults to 1):
            Kernel size, in cells, of the lateral convolutions.
        fpn_stride (`int`, *optional*, defaults to 1):
            Stride of the lateral convolutions; 1 keeps each level's resolution, which the 2x top-down
            upsampling relies on.
        fpn_padding (`int`, *optional*, defaults to 0):
            Zero padding, in cells, of the lateral convolutions.
        fpn_top_down_levels (`list[int]`, *optional*, defaults to `[2, 3]`):
            Levels (0 = stride 4, 1 = stride 8, 2 = stride 16, 3 = stride 32) whose output adds the next coarser
            level's output upsampled 2x (nearest). With [2, 3] only the stride-16 map receives the stride-32
            features; the stride-4 and stride-8 maps are plain lateral projections of the trunk's stages.
        num_feature_levels (`int`, *optional*, defaults to 3):
            How many FPN levels, finest first, the image encoder returns: 3 gives strides 4, 8 and 16 (the
            stride-32 level only feeds the stride-16 one and is then dropped). This implementation needs 3: the
            mask decoder always uses the stride-4 and stride-8 skips (Meta: `use_high_res_features_in_sam`).
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Not read by this implementation (the FPN neck has no activation); kept for transformers' format.
        layer_norm_eps (`float`, *optional*, defaults to 1e-6):
            Not read by this implementation (the FPN neck has no normalization); kept for transformers' format.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialization of the FPN neck's convolutions when the encoder is
            built without a checkpoint (the trunk uses `backbone_config.initializer_range`: transformers
            initializes every sub-model with its own configuration).
    """

    model_type = "sam2_vision_model"
    base_config_key = "vision_config"
    sub_configs = {"backbone_config": Sam2HieraDetConfig}

    def __init__(
        self,
        backbone_config=None,
        backbone_channel_list=(768, 384, 192, 96),
        backbone_feature_sizes=((256, 256), (128, 128), (64, 64)),
        fpn_hidden_size=256,
        fpn_kernel_size=1,
        fpn_stride=1,
        fpn_padding=0,
        fpn_top_down_levels=(2, 3),
        num_feature_levels=3,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        initializer_range=0.02,
        **kwargs,
    ):
        if isinstance(backbone_config, dict):
            backbone_config = Sam2HieraDetConfig(**{k: v for k, v in backbone_config.items() if k != "model_type"})
        self.backbone_config = backbone_config if backbone_config is not None else Sam2HieraDetConfig()
        self.backbone_channel_list = list(backbone_channel_list)
        self.backbone_feature_sizes = [list(s) for s in backbone_feature_sizes]
        self.fpn_hidden_size = fpn_hidden_size
        self.fpn_kernel_size = fpn_kernel_size
        self.fpn_stride = fpn_stride
        self.fpn_padding = fpn_padding
        self.fpn_top_down_levels = list(fpn_top_down_levels)
        self.num_feature_levels = num_feature_levels
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        super().__init__(**kwargs)


class Sam2PromptEncoderConfig(PreTrainedConfig):
    """Configuration of the prompt encoder: clicks and box corners become sparse tokens, a mask prompt a dense
    embedding on the image-embedding grid, both `hidden_size` wide, for the mask decoder. The same in SAM 2 and
    SAM 2.1.

    Args:
        hidden_size (`int`, *optional*, defaults to 256):
            Width of the prompt tokens and of the dense mask embedding; equal to the mask decoder's `hidden_size`
            and the FPN's `fpn_hidden_size`. Point positions are encoded with `hidden_size // 2` random Fourier
            frequencies (a sine and a cosine half).
        image_size (`int`, *optional*, defaults to 1024):
            The model's input size S in pixels (images are resized to S x S). Point and box coordinates, given
            in input pixels, are normalized by it. In a `Sam2Config` this is the model's `image_size`.
        patch_size (`int`, *optional*, defaults to 16):
            Stride, in pixels, of the image embedding the mask decoder works on (not Hiera's 4-pixel patch): the
            embedding grid is `image_size // patch_size` cells a side (64 at 1024), and mask prompts are read at
            4x that resolution (256 x 256 logits at 1024).
        mask_input_channels (`int`, *optional*, defaults to 16):
            Channels of the mask embedding, which turns a (N, 1, 4h, 4w) mask prompt into an (N, hidden_size, h, w)
            map: a 2x2 stride-2 convolution to `mask_input_channels // 4` channels and another to
            `mask_input_channels`, each followed by LayerNorm and the activation, then a 1x1 convolution.
        num_point_embeddings (`int`, *optional*, defaults to 4):
            Number of learned point-label embeddings added to the point tokens: label 0 (negative click),
            1 (positive click), 2 (box top-left corner) and 3 (box bottom-right corner). The "not a point"
            label -1 has an embedding of its own; batch padding (-10) gets none.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the mask embedding ("gelu" or "relu").
        layer_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon of the mask embedding's LayerNorms.
        scale (`float`, *optional*, defaults to 1):
            Standard deviation of the Gaussian random-Fourier frequency matrix that encodes point positions (and,
            shared, the image embedding's dense positional encoding) when drawn at initialization. The matrix is
            a buffer saved with the weights, so this only matters for a model built without a checkpoint.
    """

    model_type = "sam2_prompt_encoder"
    base_config_key = "prompt_encoder_config"

    def __init__(
        self,
        hidden_size=256,
        image_size=1024,
        patch_size=16,
        mask_input_channels=16,
        num_point_embeddings=4,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        scale=1,
        **kwargs,
    ):
        self.hidden_size = hidden_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.mask_input_channels = mask_input_channels
        self.num_point_embeddings = num_point_embeddings
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.scale = scale
        super().__init__(**kwargs)


class Sam2MaskDecoderConfig(PreTrainedConfig):
    """Configuration of the mask decoder. Output tokens (object score, IoU and mask tokens) and the prompt
    tokens attend to the stride-16 image embedding and back in a two-way transformer; the embedding is then
    upscaled 4x, fused with the stride-8 and stride-4 skip features, and each mask token's hypernetwork MLP
    turns it into low-resolution (S/4 x S/4) mask logits. An IoU head scores each mask and an object-score
    head predicts whether the object is present at all (SAM 2's occlusion prediction). The same in SAM 2 and
    SAM 2.1.

    Args:
        hidden_size (`int`, *optional*, defaults to 256):
            Width of the decoder's tokens and of the image embedding it reads (`fpn_hidden_size`). The upscaled
            mask features have `hidden_size // 8` channels; the stride-4 and stride-8 skips are projected to
            `hidden_size // 8` and `hidden_size // 4` channels.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Not read by this implementation: as in Meta's and transformers' decoders, the upscaling uses GELU
            and the two-way transformer's MLPs ReLU. Kept for transformers' format.
        mlp_dim (`int`, *optional*, defaults to 2048):
            Hidden width of the MLP in each two-way attention block.
        num_hidden_layers (`int`, *optional*, defaults to 2):
            Number of two-way attention blocks (self-attention of the tokens, token-to-image attention, MLP,
            image-to-token attention), followed by a final token-to-image attention.
        num_attention_heads (`int`, *optional*, defaults to 8):
            Heads of every attention of the two-way transformer.
        attention_downsample_rate (`int`, *optional*, defaults to 2):
            The cross-attentions (token-to-image, image-to-token and the final token-to-image) project queries,
            keys and values to `hidden_size // attention_downsample_rate` channels (128); the tokens'
            self-attention keeps the full width.
        num_multimask_outputs (`int`, *optional*, defaults to 3):
            Number of masks returned in multimask mode. The decoder has `num_multimask_outputs + 1` mask tokens:
            token 0 gives the single-mask output, tokens 1 to 3 the multimask outputs; the IoU head scores all.
        iou_head_depth (`int`, *optional*, defaults to 3):
            Number of linear layers of the IoU prediction MLP (sigmoid output: predicted IoU in [0, 1]).
        iou_head_hidden_dim (`int`, *optional*, defaults to 256):
            Hidden width of the IoU prediction MLP.
        dynamic_multimask_via_stability (`bool`, *optional*, defaults to `True`):
            When a single mask is asked for (`multimask_output=False`) in eval mode, return the single-mask
            token's mask only if it is stable, else the multimask output with the highest predicted IoU (as
            Meta's decoder does for tracked frames and refinement clicks). In training mode the single-mask
            output is always returned.
        dynamic_multimask_stability_delta (`float`, *optional*, defaults to 0.05):
            Logit margin of the stability score: area(logits > delta) / area(logits > -delta) of the single-mask
            output.
        dynamic_multimask_stability_thresh (`float`, *optional*, defaults to 0.98):
            Stability score at or above which the single-mask output is kept.
    """

    model_type = "sam2_mask_decoder"
    base_config_key = "mask_decoder_config"

    def __init__(
        self,
        hidden_size=256,
        hidden_act="gelu",
        mlp_dim=2048,
        num_hidden_layers=2,
        num_attention_heads=8,
        attention_downsample_rate=2,
        num_multimask_outputs=3,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
        dynamic_multimask_via_stability=True,
        dynamic_multimask_stability_delta=0.05,
        dynamic_multimask_stability_thresh=0.98,
        **kwargs,
    ):
        self.hidden_size = hidden_size
        self.hidden_act = hidden_act
        self.mlp_dim = mlp_dim
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.attention_downsample_rate = attention_downsample_rate
        self.num_multimask_outputs = num_multimask_outputs
        self.iou_head_depth = iou_head_depth
        self.iou_head_hidden_dim = iou_head_hidden_dim
        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh
        super().__init__(**kwargs)


def _with_parent_args(summary: str, parent: type) -> str:
    """A subclass docstring: `summary`, then the `Args:` section of `parent`'s docstring (the same fields)."""
    return f"{summary}\n\n    {parent.__doc__[parent.__doc__.index('Args:') :]}"


class Sam2VideoPromptEncoderConfig(Sam2PromptEncoderConfig):
    __doc__ = _with_parent_args(
        "The prompt encoder inside a `Sam2VideoConfig` (the same fields as `Sam2PromptEncoderConfig`; "
        "transformers' video model type).",
        Sam2PromptEncoderConfig,
    )

    model_type = "sam2_video_prompt_encoder"

    def __init__(self, **kwargs):  # the parent's fields (a subclass without __init__ would lose them)
        super().__init__(**kwargs)


class Sam2VideoMaskDecoderConfig(Sam2MaskDecoderConfig):
    __doc__ = _with_parent_args(
        "The mask decoder inside a `Sam2VideoConfig` (the same fields as `Sam2MaskDecoderConfig`; "
        "transformers' video model type).",
        Sam2MaskDecoderConfig,
    )

    model_type = "sam2_video_mask_decoder"

    def __init__(self, **kwargs):  # the parent's fields (a subclass without __init__ would lose them)
        super().__init__(**kwargs)


def _sub_config(cls, value):
    if isinstance(value, dict):
        return cls(**{k: v for k, v in value.items() if k != "model_type"})
    return value if value is not None else cls()


def _check_image_size(image_size, field: str = "image_size") -> int:
    """The model's input size S, checked: the trunk's stride-32 grid must tile the image (the FPN adds it,
    upsampled 2x, to the stride-16 grid, and the 8-cell window embedding tiles the stride-4 grid), so S is a
    positive multiple of 32."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0 or image_size % 32:
        raise ValueError(f"{field} must be a positive multiple of 32, got {image_size!r}.")
    return image_size


def _feature_sizes(image_size: int) -> list[list[int]]:
    """`backbone_feature_sizes` at input size S: the grids of the stride-4, 8 and 16 levels."""
    return [[image_size // s, image_size // s] for s in (4, 8, 16)]


def _resize_vision(vision: Sam2VisionConfig, image_size: int) -> None:
    """Set the image encoder's copies of the input size (the trunk's `image_size`, `backbone_feature_sizes`)."""
    vision.backbone_config.image_size = [image_size, image_size]
    vision.backbone_feature_sizes = _feature_sizes(image_size)


def _image_parts(size: str, image_size: int):
    """(vision, prompt encoder, mask decoder) configs of an official size at `image_size` pixels."""
    hiera = HIERA_SIZES[canonical_size(size)]
    _check_image_size(image_size)
    c = hiera["hidden_size"]
    vision = Sam2VisionConfig(
        backbone_config=Sam2HieraDetConfig(image_size=[image_size, image_size], **hiera),
        backbone_channel_list=[c * 8, c * 4, c * 2, c],
        backbone_feature_sizes=_feature_sizes(image_size),
    )
    return vision, Sam2PromptEncoderConfig(image_size=image_size), Sam2MaskDecoderConfig()


_SIZE_HINT = "omit {} to derive it from the input size, or use from_size / with_image_size"


class _Sam2SizedConfig(PreTrainedConfig):
    """What the image and video configurations share: the input size, the embedding grid, and the checks that
    every stored copy of the input size and the widths the model connects agree."""

    @property
    def embedding_size(self) -> int:
        """Side of the stride-16 image embedding (64 at 1024 px)."""
        return self.image_size // 16

    def with_image_size(self, image_size: int):
        """A copy of this configuration for another input size S (a multiple of 32), every resolution-dependent
        field changed as `from_size` sets it; no weight depends on S. Raises ValueError for another S."""
        _check_image_size(image_size)
        config = copy.deepcopy(self)
        _resize_vision(config.vision_config, image_size)
        config.prompt_encoder_config.image_size = image_size
        return config

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """transformers' `from_dict` (which `from_pretrained` calls); an `image_size` keyword resizes the whole
        configuration (`with_image_size`) instead of setting the top-level field alone."""
        image_size = kwargs.pop("image_size", None)
        result = super().from_dict(config_dict, **kwargs)
        if image_size is None:
            return result
        if isinstance(result, tuple):  # return_unused_kwargs=True
            return (result[0].with_image_size(image_size), *result[1:])
        return result.with_image_size(image_size)

    def _init_parts(self, vision_config, prompt_encoder_config, mask_decoder_config, image_size) -> tuple[str, int]:
        """Set the three sub-configs, those not given (None) at the input size S. Returns (field, S): S is
        `image_size` when given, else the given prompt encoder's, else the given trunk's (when square), else 1024;
        field names where S came from, for error messages."""
        self.vision_config = _sub_config(self.sub_configs["vision_config"], vision_config)
        self.prompt_encoder_config = _sub_config(self.sub_configs["prompt_encoder_config"], prompt_encoder_config)
        self.mask_decoder_config = _sub_config(self.sub_configs["mask_decoder_config"], mask_decoder_config)
        source, image_size = self._size_source(image_size, vision_config is not None, prompt_encoder_config is not None)
        _check_image_size(image_size, source)
        if vision_config is None:
            _resize_vision(self.vision_config, image_size)
        if prompt_encoder_config is None:
            self.prompt_encoder_config.image_size = image_size
        return source, image_size

    def _size_source(self, image_size, vision_given: bool, prompt_encoder_given: bool) -> tuple[str, int]:
        """(field, S) of `_init_parts`, once the sub-configs are set."""
        trunk = _as_list(self.vision_config.backbone_config.image_size)
        if image_size is not None:
            return "image_size", image_size
        if prompt_encoder_given:
            return "prompt_encoder_config.image_size", self.prompt_encoder_config.image_size
        if vision_given and trunk[0] == trunk[-1]:
            return "vision_config.backbone_config.image_size", trunk[0]
        return "image_size", 1024

    def _size_fields(self, image_size: int) -> list[tuple[str, object, object]]:
        """(field, stored value, value at input size S) for every stored copy of the input size."""
        vision = self.vision_config
        return [
            ("prompt_encoder_config.image_size", self.prompt_encoder_config.image_size, image_size),
            ("vision_config.backbone_config.image_size", _as_list(vision.backbone_config.image_size), [image_size] * 2),
            ("vision_config.backbone_feature_sizes", vision.backbone_feature_sizes, _feature_sizes(image_size)),
        ]

    def _width_pairs(self) -> list[tuple[str, int, str, int]]:
        """(field, width, other field, width) pairs the model connects, so each pair must be equal: the mask
        decoder reads the FPN's maps, and the prompt tokens and positional encoding join its tokens and maps."""
        fpn, decoder = self.vision_config.fpn_hidden_size, self.mask_decoder_config.hidden_size
        prompt = self.prompt_encoder_config.hidden_size
        return [
            ("mask_decoder_config.hidden_size", decoder, "vision_config.fpn_hidden_size", fpn),
            ("prompt_encoder_config.hidden_size", prompt, "mask_decoder_config.hidden_size", decoder),
        ]

    def _validate(self, source: str, image_size: int) -> None:
        """ValueError, naming both fields, when a copy of the input size contradicts S (from `source`) or a
        width the model connects differs from the other one."""
        for field, value, expected in self._size_fields(image_size):
            if value != expected:
                detail = "" if expected == image_size else f" (expected {expected!r})"
                hint = _SIZE_HINT.format(field.split(".")[0])
                raise ValueError(f"{field}={value!r} but {source}={image_size}{detail}; {hint}.")
        for field, value, other, other_value in self._width_pairs():
            if value != other_value:
                raise ValueError(f"{field}={value} but {other}={other_value}: the model needs them equal.")


# Fields of a `sam2_video` config.json that an image model has no part for (see `Sam2Config`).
VIDEO_ONLY_FIELDS = (
    "image_size", "num_maskmem", "sigmoid_scale_for_mem_enc", "sigmoid_bias_for_mem_enc",
    "enable_occlusion_spatial_embedding", "multimask_output_in_sam", "multimask_min_pt_num", "multimask_max_pt_num",
    "multimask_output_for_tracking", "max_object_pointers_in_encoder", "max_cond_frame_num",
    "enable_temporal_pos_encoding_for_object_pointers", "memory_attention_hidden_size", "memory_attention_num_layers",
    "memory_attention_num_attention_heads", "memory_attention_downsample_rate",
    "memory_attention_feed_forward_hidden_size", "memory_attention_feed_forward_hidden_act",
    "memory_attention_dropout", "memory_attention_rope_feat_sizes", "memory_attention_rope_dropout",
    "memory_attention_rope_theta", "rope_parameters", "memory_encoder_hidden_size", "memory_encoder_output_channels",
    "mask_downsampler_embed_dim", "mask_downsampler_kernel_size", "mask_downsampler_stride",
    "mask_downsampler_padding", "mask_downsampler_total_stride", "mask_downsampler_hidden_act",
    "memory_fuser_num_layers", "memory_fuser_embed_dim", "memory_fuser_intermediate_dim", "memory_fuser_kernel_size",
    "memory_fuser_padding", "memory_fuser_layer_scale_init_value", "memory_fuser_hidden_act",
)  # fmt: skip


class Sam2Config(_Sam2SizedConfig):
    """The image model (image encoder, prompt encoder, mask decoder): transformers' `sam2` configuration.

    A `sam2_video` config.json (the official Hub repos) read as this config keeps the image parts and
    drops the memory fields (`VIDEO_ONLY_FIELDS`; its `image_size` is checked, not stored), so an image model
    never saves a memory it lacks. Use `Sam2Config.from_size("tiny", image_size=1024)` to build one.

    Construction checks what the model relies on and raises a ValueError naming the fields otherwise: every
    copy of the input size agrees (`prompt_encoder_config.image_size`, the trunk's `image_size` and
    `backbone_feature_sizes`), it is a multiple of 32, and `mask_decoder_config.hidden_size` equals
    `vision_config.fpn_hidden_size` and `prompt_encoder_config.hidden_size`.

    Args:
        vision_config (`Sam2VisionConfig` or `dict`, *optional*, defaults to `None`):
            The image encoder: Hiera trunk and FPN neck. None: `Sam2VisionConfig()` (the tiny size) at the input
            size. Given, its trunk's `image_size` and its `backbone_feature_sizes` must match the input size.
        prompt_encoder_config (`Sam2PromptEncoderConfig` or `dict`, *optional*, defaults to `None`):
            The prompt encoder for points, boxes and mask prompts; its `image_size` is the model's input size
            (`Sam2Config.image_size`). None: `Sam2PromptEncoderConfig()` at the input size.
        mask_decoder_config (`Sam2MaskDecoderConfig` or `dict`, *optional*, defaults to `None`):
            The two-way-transformer mask decoder. None: `Sam2MaskDecoderConfig()`.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialization of the prompt encoder's and mask decoder's weights
            when the model is built without a checkpoint (the image encoder uses `vision_config`'s).
        image_size (`int`, *optional*, defaults to `None`):
            The model's input size S in pixels, a multiple of 32. Not stored: it sets the sub-configs that are not
            given (`Sam2Config(image_size=512)` is the tiny model at 512 pixels throughout, as
            `with_image_size(512)` makes it) and is checked against those that are (a ValueError names both
            fields when they differ). None: the given prompt encoder's `image_size`, else the given trunk's, else
            1024. `from_pretrained(..., image_size=S)` resizes the loaded configuration with `with_image_size`.
    """

    model_type = "sam2"
    sub_configs = {
        "vision_config": Sam2VisionConfig,
        "prompt_encoder_config": Sam2PromptEncoderConfig,
        "mask_decoder_config": Sam2MaskDecoderConfig,
    }

    def __init__(
        self,
        vision_config=None,
        prompt_encoder_config=None,
        mask_decoder_config=None,
        initializer_range=0.02,
        image_size=None,
        **kwargs,
    ):
        for name in (*VIDEO_ONLY_FIELDS, "model_type"):  # this config is `sam2`, whatever file it was read from
            kwargs.pop(name, None)
        source, size = self._init_parts(vision_config, prompt_encoder_config, mask_decoder_config, image_size)
        self.initializer_range = initializer_range
        super().__init__(**kwargs)
        self._validate(source, size)

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs):
        """transformers' reader, with a `sam2_video` file taken as this config's own type: reading one here is
        intended (see the class docstring), so transformers' "model of type sam2_video" warning is not due."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        if config_dict.get("model_type") == Sam2VideoConfig.model_type:
            config_dict = {**config_dict, "model_type": cls.model_type}
        return config_dict, kwargs

    @property
    def image_size(self) -> int:
        """The model's input size S (pixels of the square the image is resized to)."""
        return self.prompt_encoder_config.image_size

    @classmethod
    def from_size(cls, size: str, version: str = "2.1", image_size: int = 1024, **kwargs) -> Sam2Config:
        """Config of an official size ('tiny', 'small', 'base-plus', 'large'); SAM 2 and 2.1 image models
        have the same architecture, so `version` is only checked. `image_size`: a multiple of 32."""
        normalize_version(version)
        vision, prompt_encoder, mask_decoder = _image_parts(size, image_size)
        return cls(
            vision_config=vision, prompt_encoder_config=prompt_encoder, mask_decoder_config=mask_decoder, **kwargs
        )


class Sam2VideoConfig(_Sam2SizedConfig):
    """The whole SAM 2 / 2.1 model (image encoder, prompt encoder, mask decoder, memory): transformers'
    `sam2_video` configuration, the `config.json` of the official Hub repos.

    Video tracking runs, on each frame and for each object: the image encoder; memory attention (the frame's
    stride-16 features attend to the object's memory bank: the spatial memories of its conditioning frames and
    of recent frames, and object pointers); the prompt encoder and mask decoder; the memory encoder (the
    frame's features fused with the predicted mask into the spatial memory stored in the bank). Conditioning
    ("cond") frames are frames that received prompts; non-conditioning ("non-cond") frames were tracked from
    memory. Sizes are in pixels of the S x S model input or in cells of the h x w = S/16 x S/16 grid of the
    image embedding. Meta's names of the fields are given where they differ.

    SAM 2 and SAM 2.1 differ only in two switches: `enable_occlusion_spatial_embedding`
    and `enable_temporal_pos_encoding_for_object_pointers` (both True for 2.1).
    Use `Sam2VideoConfig.from_size("tiny", version="2.1", image_size=1024)` to build one.

    Args:
        vision_config (`Sam2VisionConfig` or `dict`, *optional*, defaults to `None`):
            The image encoder: Hiera trunk and FPN neck. None: `Sam2VisionConfig()` (the tiny size) at `image_size`.
            Given, its trunk's `image_size` and its `backbone_feature_sizes` must match `image_size`.
        prompt_encoder_config (`Sam2VideoPromptEncoderConfig` or `dict`, *optional*, defaults to `None`):
            The prompt encoder; its `image_size` must equal this config's `image_size`. None: the defaults at
            `image_size`.
        mask_decoder_config (`Sam2VideoMaskDecoderConfig` or `dict`, *optional*, defaults to `None`):
            The mask decoder. None: the defaults.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialization, for a model built without a checkpoint, of the
            prompt encoder's, mask decoder's and memory's weights (memory attention, memory encoder, object
            pointer projection, and the free-standing memory parameters such as the temporal encodings and the
            no-object pointer); the image encoder uses `vision_config`'s.
        num_maskmem (`int`, *optional*, defaults to 7):
            Number of spatial-memory slots, each with its own learned temporal encoding
            (`memory_temporal_positional_encoding`, `num_maskmem` x `memory_encoder_output_channels`): one for
            the conditioning frames and `num_maskmem - 1` for the most recent non-conditioning frames (the
            previous frame, then every `memory_temporal_stride_for_eval`-th frame before it), i.e. by default the
            prompted frames plus 6 previous frames.
        image_size (`int`, *optional*, defaults to `None`):
            The model's input size S in pixels, a multiple of 32: frames are resized to S x S, and predicted masks
            are upscaled to S x S for the memory encoder. The sub-configs not given and a
            `memory_attention_rope_feat_sizes` of None are set for S (`Sam2VideoConfig(image_size=512)` is the
            tiny model at 512 pixels throughout, as `with_image_size(512)` makes it); those given must agree with
            it (`prompt_encoder_config.image_size`, the trunk's `image_size`, `backbone_feature_sizes`, the RoPE
            grid), else a ValueError names both fields. None: the given prompt encoder's `image_size`, else the
            given trunk's, else 1024. `from_pretrained(..., image_size=S)` resizes the loaded configuration with
            `with_image_size`. The official checkpoints use 1024; the weights work at any multiple of 32.
        sigmoid_scale_for_mem_enc (`float`, *optional*, defaults to 20.0):
            Scale applied to the mask before the memory encoder: it reads sigmoid(mask logits) (or the binarized
            mask) times this plus `sigmoid_bias_for_mem_enc`, so probabilities 0 to 1 become -10 to +10.
        sigmoid_bias_for_mem_enc (`float`, *optional*, defaults to -10.0):
            Bias added to the scaled mask before the memory encoder (see `sigmoid_scale_for_mem_enc`).
        enable_occlusion_spatial_embedding (`bool`, *optional*, defaults to `True`):
            SAM 2.1 only (Meta: `no_obj_embed_spatial`): a learned `memory_encoder_output_channels`-wide
            embedding (`occlusion_spatial_embedding_parameter`) is added to every cell of the spatial memory of
            frames where the object is judged absent (object score logit <= 0). False for SAM 2, whose
            checkpoints lack that weight. `version` reads this switch.
        multimask_output_in_sam (`bool`, *optional*, defaults to `True`):
            Whether video tracking may ask the mask decoder for 3 masks, keeping the one with the highest
            predicted IoU (whose output token also makes the object pointer) when the number of prompt points is
            within [`multimask_min_pt_num`, `multimask_max_pt_num`]; False: always a single mask. Only the video
            steps read it (`Sam2VideoModel.use_multimask`); image segmentation takes `multimask_output` per call.
        multimask_min_pt_num (`int`, *optional*, defaults to 0):
            Fewest prompt points (clicks, a box counting as its 2 corners) for which multimask output is used;
            0 includes frames tracked without prompts.
        multimask_max_pt_num (`int`, *optional*, defaults to 1):
            Most prompt points for which multimask output is used: with 1, the first click on an object gives 3
            masks to choose from (an ambiguous click), more clicks or a box give a single mask.
        multimask_output_for_tracking (`bool`, *optional*, defaults to `True`):
            Whether multimask output also applies outside initial conditioning frames (frames prompted before
            the object was tracked there): on frames tracked from memory and to correction clicks on tracked
            frames. False: only initial conditioning frames may use it.
        max_object_pointers_in_encoder (`int`, *optional*, defaults to 16):
            Object pointers (one `fpn_hidden_size` vector per frame, from the mask decoder's chosen output token)
            that memory attention reads (Meta: `max_obj_ptrs_in_encoder`): those of the selected conditioning
            frames at or before the current frame (in the tracking direction), plus those of up to
            `max_object_pointers_in_encoder - 1` immediately preceding frames, capped by the number of frames.
            SAM 2.1's pointer temporal encoding divides frame offsets by `max_object_pointers_in_encoder - 1`.
        max_cond_frame_num (`int`, *optional*, defaults to -1):
            Most conditioning frames memory attention reads (Meta: `max_cond_frames_in_attn`): -1 reads all;
            otherwise (at least 2) the closest one before the current frame, the closest one at or after it,
            then the temporally nearest others. Limits cost and keeps attention local with many prompted frames.
        enable_temporal_pos_encoding_for_object_pointers (`bool`, *optional*, defaults to `True`):
            SAM 2.1 only (Meta: `add_tpos_enc_to_obj_ptrs` with `proj_tpos_enc_in_obj_ptrs` and
            `use_signed_tpos_enc_to_obj_ptrs`): each object pointer's tokens get, as position, a 1-D sine
            encoding of the pointer's signed frame offset (divided by `max_object_pointers_in_encoder - 1`),
            projected to `memory_encoder_output_channels` by `temporal_positional_encoding_projection_layer`.
            False for SAM 2, whose checkpoints lack that layer: the pointers' positions are zero.
        memory_attention_hidden_size (`int`, *optional*, defaults to 256):
            Width of the memory attention (Meta: `d_model`); its queries are the current frame's stride-16
            features, so it must equal `vision_config.fpn_hidden_size` (ValueError otherwise).
        memory_attention_num_layers (`int`, *optional*, defaults to 4):
            Number of memory attention layers, each (pre-norm) a RoPE self-attention over the current frame, a
            RoPE cross-attention to the memory bank and an MLP.
        memory_attention_num_attention_heads (`int`, *optional*, defaults to 1):
            Heads of the memory attention's self- and cross-attentions.
        memory_attention_downsample_rate (`int`, *optional*, defaults to 1):
            The memory attention's self- and cross-attentions project to
            `memory_attention_hidden_size // memory_attention_downsample_rate` channels.
        memory_attention_feed_forward_hidden_size (`int`, *optional*, defaults to 2048):
            Hidden width of each memory attention layer's MLP (Meta: `dim_feedforward`).
        memory_attention_feed_forward_hidden_act (`str`, *optional*, defaults to `"relu"`):
            Activation of that MLP ("relu" or "gelu").
        memory_attention_dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the memory attention layers' residual branches and inside their MLPs (training only).
        memory_attention_rope_feat_sizes (`list[int]`, *optional*, defaults to `None`):
            Grid (width, height), in cells, of the current frame's stride-16 tokens, for which the 2-D axial
            RoPE of the memory attention is computed: S/16 each. None: `[image_size // 16] * 2` ([64, 64] at
            1024); given, it must be that (ValueError otherwise). At run time a number of tokens that does not
            match is taken as a square grid. The spatial memories' keys are rotated with the same positions;
            object-pointer tokens are not rotated.
        memory_attention_rope_dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the attention probabilities of the memory attention's RoPE attentions (training only).
        rope_parameters (`dict`, *optional*, defaults to `{"rope_theta": 10000.0, "rope_type": "axial"}`):
            transformers' RoPE settings of the memory attention; `rope_theta`, the base of the RoPE
            frequencies, is the only entry read. Older configs' flat `memory_attention_rope_theta` is accepted
            in its place.
        memory_encoder_hidden_size (`int`, *optional*, defaults to 256):
            Width in which the memory encoder fuses features and mask: the 1x1 projection of the frame's
            stride-16 features, to which the downsampled mask is added. Must equal `vision_config.fpn_hidden_size`,
            `mask_downsampler_embed_dim` and `memory_fuser_embed_dim` (ValueError otherwise).
        memory_encoder_output_channels (`int`, *optional*, defaults to 64):
            Channels of the stored memory (Meta: the memory encoder's `out_dim`, `mem_dim`): the spatial
            memories, their sine position encoding and temporal encodings, the keys and values of the memory
            cross-attention. Each object pointer is split into `fpn_hidden_size // memory_encoder_output_channels`
            (4) tokens of this width, so it must divide `vision_config.fpn_hidden_size` (ValueError otherwise).
        mask_downsampler_embed_dim (`int`, *optional*, defaults to 256):
            Output channels of the mask downsampler (its final 1x1 convolution), which turns the S x S mask into
            an h x w map added to the projected features: must equal `memory_encoder_hidden_size`.
        mask_downsampler_kernel_size (`int`, *optional*, defaults to 3):
            Kernel size of each mask downsampler convolution (each followed by LayerNorm and the activation,
            and multiplying the channels by `mask_downsampler_stride ** 2`: 1, 4, 16, 64, 256).
        mask_downsampler_stride (`int`, *optional*, defaults to 2):
            Stride of each mask downsampler convolution.
        mask_downsampler_padding (`int`, *optional*, defaults to 1):
            Zero padding of each mask downsampler convolution.
        mask_downsampler_total_stride (`int`, *optional*, defaults to 16):
            Total downsampling, from the S x S mask to the h x w grid: log(total) / log(stride) convolutions (4
            with the defaults). Must equal the image embedding's stride of 16 pixels.
        mask_downsampler_hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the mask downsampler ("gelu" or "relu").
        memory_fuser_num_layers (`int`, *optional*, defaults to 2):
            Number of ConvNeXt blocks (Meta: `CXBlock`) that fuse the features with the mask before the output
            projection to `memory_encoder_output_channels`.
        memory_fuser_embed_dim (`int`, *optional*, defaults to 256):
            Channels of the memory fuser's blocks, which run on the fused features: must equal
            `memory_encoder_hidden_size`.
        memory_fuser_intermediate_dim (`int`, *optional*, defaults to 1024):
            Hidden width of each fuser block's pointwise MLP.
        memory_fuser_kernel_size (`int`, *optional*, defaults to 7):
            Kernel size, in cells, of each fuser block's depthwise convolution.
        memory_fuser_padding (`int`, *optional*, defaults to 3):
            Zero padding of that convolution (3 with kernel 7 keeps the h x w grid).
        memory_fuser_layer_scale_init_value (`float`, *optional*, defaults to 1e-6):
            Initial value of each fuser block's per-channel layer scale (gamma), which multiplies the block's
            residual branch; checkpoints hold the trained values.
        memory_fuser_hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the fuser blocks' MLPs ("gelu" or "relu").
    """

    model_type = "sam2_video"
    sub_configs = {
        "vision_config": Sam2VisionConfig,
        "prompt_encoder_config": Sam2VideoPromptEncoderConfig,
        "mask_decoder_config": Sam2VideoMaskDecoderConfig,
    }

    def __init__(
        self,
        vision_config=None,
        prompt_encoder_config=None,
        mask_decoder_config=None,
        initializer_range=0.02,
        num_maskmem=7,
        image_size=None,
        sigmoid_scale_for_mem_enc=20.0,
        sigmoid_bias_for_mem_enc=-10.0,
        enable_occlusion_spatial_embedding=True,
        multimask_output_in_sam=True,
        multimask_min_pt_num=0,
        multimask_max_pt_num=1,
        multimask_output_for_tracking=True,
        max_object_pointers_in_encoder=16,
        max_cond_frame_num=-1,
        enable_temporal_pos_encoding_for_object_pointers=True,
        memory_attention_hidden_size=256,
        memory_attention_num_layers=4,
        memory_attention_num_attention_heads=1,
        memory_attention_downsample_rate=1,
        memory_attention_feed_forward_hidden_size=2048,
        memory_attention_feed_forward_hidden_act="relu",
        memory_attention_dropout=0.1,
        memory_attention_rope_feat_sizes=None,
        memory_attention_rope_dropout=0.1,
        rope_parameters=None,
        memory_encoder_hidden_size=256,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=256,
        mask_downsampler_kernel_size=3,
        mask_downsampler_stride=2,
        mask_downsampler_padding=1,
        mask_downsampler_total_stride=16,
        mask_downsampler_hidden_act="gelu",
        memory_fuser_num_layers=2,
        memory_fuser_embed_dim=256,
        memory_fuser_intermediate_dim=1024,
        memory_fuser_kernel_size=7,
        memory_fuser_padding=3,
        memory_fuser_layer_scale_init_value=1e-6,
        memory_fuser_hidden_act="gelu",
        **kwargs,
    ):
        # Older Hub configs (transformers 4.56) store the RoPE theta as a flat field.
        legacy_theta = kwargs.pop("memory_attention_rope_theta", None)
        source, size = self._init_parts(vision_config, prompt_encoder_config, mask_decoder_config, image_size)
        self.initializer_range = initializer_range
        self.num_maskmem = num_maskmem
        self.image_size = size
        self.sigmoid_scale_for_mem_enc = sigmoid_scale_for_mem_enc
        self.sigmoid_bias_for_mem_enc = sigmoid_bias_for_mem_enc
        self.enable_occlusion_spatial_embedding = enable_occlusion_spatial_embedding
        self.multimask_output_in_sam = multimask_output_in_sam
        self.multimask_min_pt_num = multimask_min_pt_num
        self.multimask_max_pt_num = multimask_max_pt_num
        self.multimask_output_for_tracking = multimask_output_for_tracking
        self.max_object_pointers_in_encoder = max_object_pointers_in_encoder
        self.max_cond_frame_num = max_cond_frame_num
        self.enable_temporal_pos_encoding_for_object_pointers = enable_temporal_pos_encoding_for_object_pointers
        self.memory_attention_hidden_size = memory_attention_hidden_size
        self.memory_attention_num_layers = memory_attention_num_layers
        self.memory_attention_num_attention_heads = memory_attention_num_attention_heads
        self.memory_attention_downsample_rate = memory_attention_downsample_rate
        self.memory_attention_feed_forward_hidden_size = memory_attention_feed_forward_hidden_size
        self.memory_attention_feed_forward_hidden_act = memory_attention_feed_forward_hidden_act
        self.memory_attention_dropout = memory_attention_dropout
        self.memory_attention_rope_feat_sizes = list(
            memory_attention_rope_feat_sizes if memory_attention_rope_feat_sizes is not None else [size // 16] * 2
        )
        self.memory_attention_rope_dropout = memory_attention_rope_dropout
        if rope_parameters is None:
            rope_parameters = {"rope_theta": float(legacy_theta or 10000.0), "rope_type": "axial"}
        self.rope_parameters = dict(rope_parameters)
        self.memory_encoder_hidden_size = memory_encoder_hidden_size
        self.memory_encoder_output_channels = memory_encoder_output_channels
        self.mask_downsampler_embed_dim = mask_downsampler_embed_dim
        self.mask_downsampler_kernel_size = mask_downsampler_kernel_size
        self.mask_downsampler_stride = mask_downsampler_stride
        self.mask_downsampler_padding = mask_downsampler_padding
        self.mask_downsampler_total_stride = mask_downsampler_total_stride
        self.mask_downsampler_hidden_act = mask_downsampler_hidden_act
        self.memory_fuser_num_layers = memory_fuser_num_layers
        self.memory_fuser_embed_dim = memory_fuser_embed_dim
        self.memory_fuser_intermediate_dim = memory_fuser_intermediate_dim
        self.memory_fuser_kernel_size = memory_fuser_kernel_size
        self.memory_fuser_padding = memory_fuser_padding
        self.memory_fuser_layer_scale_init_value = memory_fuser_layer_scale_init_value
        self.memory_fuser_hidden_act = memory_fuser_hidden_act
        super().__init__(**kwargs)
        self._validate(source, size)

    @property
    def version(self) -> str:
        """'2.1' when the SAM 2.1 additions are on, else '2'."""
        return "2.1" if self.enable_occlusion_spatial_embedding else "2"

    @classmethod
    def from_size(cls, size: str, version: str = "2.1", image_size: int = 1024, **kwargs) -> Sam2VideoConfig:
        """Config of an official size ('tiny', 'small', 'base-plus', 'large') and version ('2' or '2.1').

        `image_size` (a multiple of 32) shrinks every resolution-dependent field consistently;
        the official checkpoints use 1024. Other keywords are fields of this config.
        """
        is_21 = normalize_version(version) == "2.1"
        vision, _, _ = _image_parts(size, image_size)
        return cls(
            vision_config=vision,
            prompt_encoder_config=Sam2VideoPromptEncoderConfig(image_size=image_size),
            mask_decoder_config=Sam2VideoMaskDecoderConfig(),
            image_size=image_size,
            memory_attention_rope_feat_sizes=[image_size // 16, image_size // 16],
            enable_occlusion_spatial_embedding=is_21,
            enable_temporal_pos_encoding_for_object_pointers=is_21,
            **kwargs,
        )

    def with_image_size(self, image_size: int) -> Sam2VideoConfig:
        config = super().with_image_size(image_size)
        config.image_size = image_size
        config.memory_attention_rope_feat_sizes = [image_size // 16, image_size // 16]
        return config

    def _size_fields(self, image_size: int) -> list[tuple[str, object, object]]:
        rope = ("memory_attention_rope_feat_sizes", self.memory_attention_rope_feat_sizes, [image_size // 16] * 2)
        return [*super()._size_fields(image_size), rope]

    def _width_pairs(self) -> list[tuple[str, int, str, int]]:
        """The image model's pairs, and the memory's: memory attention and the memory encoder read the FPN's
        stride-16 maps, and the memory encoder adds the downsampled mask to them and runs the fuser on the sum."""
        fpn, memory = self.vision_config.fpn_hidden_size, self.memory_encoder_hidden_size
        return [
            *super()._width_pairs(),
            ("memory_attention_hidden_size", self.memory_attention_hidden_size, "vision_config.fpn_hidden_size", fpn),
            ("memory_encoder_hidden_size", memory, "vision_config.fpn_hidden_size", fpn),
            ("mask_downsampler_embed_dim", self.mask_downsampler_embed_dim, "memory_encoder_hidden_size", memory),
            ("memory_fuser_embed_dim", self.memory_fuser_embed_dim, "memory_encoder_hidden_size", memory),
        ]

    def _validate(self, source: str, image_size: int) -> None:
        super()._validate(source, image_size)
        fpn, channels = self.vision_config.fpn_hidden_size, self.memory_encoder_output_channels
        if fpn % channels:  # each object pointer (fpn_hidden_size wide) is split into memory-width tokens
            raise ValueError(
                f"vision_config.fpn_hidden_size={fpn} is not a multiple of memory_encoder_output_channels={channels}:"
                " the model splits each object pointer into tokens of the memory's width."
            )

    with_image_size.__doc__ = _Sam2SizedConfig.with_image_size.__doc__

    def image_config(self) -> Sam2Config:
        """The image model's part of this configuration (what `Sam2Model` builds and saves)."""
        return Sam2Config(
            vision_config=self.vision_config.to_dict(),
            prompt_encoder_config=self.prompt_encoder_config.to_dict(),
            mask_decoder_config=self.mask_decoder_config.to_dict(),
            initializer_range=self.initializer_range,
        )
