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
SIZE_ALIASES = {"t": "tiny", "s": "small", "b+": "base-plus", "base_plus": "base-plus", "l": "large"}
VERSIONS = ("2", "2.1")
DEFAULT_MODEL = "facebook/sam2.1-hiera-tiny"  # what the CLI, the annotator and the Space load unless told otherwise


def canonical_size(size: str) -> str:
    """'b+' / 'base_plus' / 'base-plus' -> 'base-plus'; raises on unknown names."""
    name = SIZE_ALIASES.get(size, size)
    if name not in HIERA_SIZES:
        raise ValueError(f"Unknown SAM 2 size {size!r}; expected one of {sorted(HIERA_SIZES)}.")
    return name


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value, value]


def _as_given(value):
    """A size kept as given (an int, or a list: tuples become lists for JSON), as transformers keeps it."""
    return list(value) if isinstance(value, tuple) else value


class Sam2HieraDetConfig(PreTrainedConfig):
    """Hiera trunk: stage layout, windows and heads."""

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
    """Image encoder: Hiera trunk + FPN neck."""

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
    """Prompt encoder: points, boxes (as corner points) and mask prompts."""

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
    """Two-way-transformer mask decoder with IoU and object-score heads."""

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


class Sam2VideoPromptEncoderConfig(Sam2PromptEncoderConfig):
    """The prompt encoder inside a `Sam2VideoConfig` (the same fields; transformers' video model type)."""

    model_type = "sam2_video_prompt_encoder"

    def __init__(self, **kwargs):  # the parent's fields (a subclass without __init__ would lose them)
        super().__init__(**kwargs)


class Sam2VideoMaskDecoderConfig(Sam2MaskDecoderConfig):
    """The mask decoder inside a `Sam2VideoConfig` (the same fields; transformers' video model type)."""

    model_type = "sam2_video_mask_decoder"

    def __init__(self, **kwargs):  # the parent's fields (a subclass without __init__ would lose them)
        super().__init__(**kwargs)


def _sub_config(cls, value):
    if isinstance(value, dict):
        return cls(**{k: v for k, v in value.items() if k != "model_type"})
    return value if value is not None else cls()


def _check_version(version) -> str:
    if str(version) not in VERSIONS:
        raise ValueError(f"Unknown SAM 2 version {version!r}; expected one of {VERSIONS}.")
    return str(version)


def _image_parts(size: str, image_size: int):
    """(vision, prompt encoder, mask decoder) configs of an official size at `image_size` pixels."""
    hiera = HIERA_SIZES[canonical_size(size)]
    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32, got {image_size}.")
    c = hiera["hidden_size"]
    vision = Sam2VisionConfig(
        backbone_config=Sam2HieraDetConfig(image_size=[image_size, image_size], **hiera),
        backbone_channel_list=[c * 8, c * 4, c * 2, c],
        backbone_feature_sizes=[[image_size // s, image_size // s] for s in (4, 8, 16)],
    )
    return vision, Sam2PromptEncoderConfig(image_size=image_size), Sam2MaskDecoderConfig()


class _Sam2SizedConfig(PreTrainedConfig):
    """What the image and video configurations share: the input size and the embedding grid."""

    @property
    def embedding_size(self) -> int:
        """Side of the stride-16 image embedding (64 at 1024 px)."""
        return self.image_size // 16

    def with_image_size(self, image_size: int):
        """A copy of this configuration for another input size S (a multiple of 32), every resolution-dependent
        field changed as `from_size` sets it; no weight depends on S. Raises ValueError for another S."""
        if image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {image_size}.")
        config = copy.deepcopy(self)
        config.vision_config.backbone_config.image_size = [image_size, image_size]
        config.vision_config.backbone_feature_sizes = [[image_size // s, image_size // s] for s in (4, 8, 16)]
        config.prompt_encoder_config.image_size = image_size
        return config


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

    vision_config (`Sam2VisionConfig`, default tiny at 1024 px): the Hiera image encoder and FPN neck.
    prompt_encoder_config (`Sam2PromptEncoderConfig`): points, boxes and mask prompts; its `image_size`
    is the model's input size. mask_decoder_config (`Sam2MaskDecoderConfig`): the two-way-transformer
    decoder. initializer_range (0.02): std of the random weight initialization.

    A `sam2_video` config.json (the official Hub repos) read as this config keeps the image parts and
    drops the memory fields (`VIDEO_ONLY_FIELDS`), so an image model never saves a memory it lacks.
    Use `Sam2Config.from_size("tiny", image_size=1024)` to build one.
    """

    model_type = "sam2"
    sub_configs = {
        "vision_config": Sam2VisionConfig,
        "prompt_encoder_config": Sam2PromptEncoderConfig,
        "mask_decoder_config": Sam2MaskDecoderConfig,
    }

    def __init__(
        self, vision_config=None, prompt_encoder_config=None, mask_decoder_config=None, initializer_range=0.02, **kwargs
    ):
        for name in (*VIDEO_ONLY_FIELDS, "model_type"):  # this config is `sam2`, whatever file it was read from
            kwargs.pop(name, None)
        self.vision_config = _sub_config(Sam2VisionConfig, vision_config)
        self.prompt_encoder_config = _sub_config(Sam2PromptEncoderConfig, prompt_encoder_config)
        self.mask_decoder_config = _sub_config(Sam2MaskDecoderConfig, mask_decoder_config)
        self.initializer_range = initializer_range
        super().__init__(**kwargs)

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
        _check_version(version)
        vision, prompt_encoder, mask_decoder = _image_parts(size, image_size)
        return cls(
            vision_config=vision, prompt_encoder_config=prompt_encoder, mask_decoder_config=mask_decoder, **kwargs
        )


class Sam2VideoConfig(_Sam2SizedConfig):
    """The whole SAM 2 / 2.1 model (image encoder, prompt encoder, mask decoder, memory): transformers'
    `sam2_video` configuration, the `config.json` of the official Hub repos.

    SAM 2 and SAM 2.1 differ only in two switches: `enable_occlusion_spatial_embedding`
    and `enable_temporal_pos_encoding_for_object_pointers` (both True for 2.1).
    Use `Sam2VideoConfig.from_size("tiny", version="2.1", image_size=1024)` to build one.
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
        image_size=1024,
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
        self.vision_config = _sub_config(Sam2VisionConfig, vision_config)
        self.prompt_encoder_config = _sub_config(Sam2VideoPromptEncoderConfig, prompt_encoder_config)
        self.mask_decoder_config = _sub_config(Sam2VideoMaskDecoderConfig, mask_decoder_config)
        self.initializer_range = initializer_range
        self.num_maskmem = num_maskmem
        self.image_size = image_size
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
            memory_attention_rope_feat_sizes if memory_attention_rope_feat_sizes is not None else [64, 64]
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
        is_21 = _check_version(version) == "2.1"
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

    with_image_size.__doc__ = _Sam2SizedConfig.with_image_size.__doc__

    def image_config(self) -> Sam2Config:
        """The image model's part of this configuration (what `Sam2Model` builds and saves)."""
        return Sam2Config(
            vision_config=self.vision_config.to_dict(),
            prompt_encoder_config=self.prompt_encoder_config.to_dict(),
            mask_decoder_config=self.mask_decoder_config.to_dict(),
            initializer_range=self.initializer_range,
        )
