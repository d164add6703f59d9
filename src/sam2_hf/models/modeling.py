"""SAM 2 / 2.1 as transformers `PreTrainedModel`s.

`Sam2Model` segments images from prompts (transformers' `Sam2Model` API). `Sam2VideoModel` adds
the memory components. Both expose their compute as the methods the compute seam's torch implementation
(backends/torch.py) calls: `encode_frame`, `image_only_embedding`, `decode` (+ `mask_downsample`,
`object_pointer_proj`, `no_object_pointer`), `condition_on_memory`, `encode_memory`; what joins them into
tracking (mask choice, gating, memory storage and selection) lives in tracking/.

Parameter names are those of the Hub checkpoints (`facebook/sam2.1-hiera-*`), so their
`model.safetensors` loads directly, and Meta's `.pt` checkpoints are converted on load.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import can_return_tuple
from transformers.utils.output_capturing import selected_hidden_states

from ..processing.validation import check_image_prompts, check_pixel_values
from .components.hiera import HieraTrunk
from .components.layers import FeedForward, LayerNorm2d
from .components.mask_decoder import MaskDecoder
from .components.memory_attention import MemoryAttention
from .components.memory_encoder import FuserBlock, MemoryEncoder
from .components.position_encoding import RandomFourierEmbedding, sine_1d, sine_position_encoding
from .components.prompt_encoder import PromptEncoder, mask_input_at, not_a_point_prompt
from .components.two_way_transformer import ImageProjections
from .components.vision_encoder import FpnNeck, VisionEncoderOutput
from .configuration import (
    Sam2Config,
    Sam2HieraDetConfig,
    Sam2VideoConfig,
    Sam2VisionConfig,
    check_model_names,
    check_requested_model,
)
from .outputs import (
    MemorySelection,
    Sam2FrameFeatures,
    Sam2HieraDetModelOutput,
    Sam2ImageSegmentationOutput,
    Sam2VisionEncoderOutput,
)


def share_attention_implementation(config) -> None:
    """Sub-configs without an attention implementation of their own take their parent's.

    transformers resolves `_attn_implementation` ("eager" / "sdpa") on the model's config only, but the image
    encoder and the mask decoder read it from their sub-configs (which `set_attn_implementation` updates too).
    """
    for key in config.sub_configs:
        sub_config = getattr(config, key)
        if sub_config is not None:
            if sub_config._attn_implementation is None:
                sub_config._attn_implementation_internal = config._attn_implementation
            share_attention_implementation(sub_config)


class Sam2PreTrainedModel(PreTrainedModel):
    config_class = Sam2Config
    config: Sam2Config
    base_model_prefix = ""
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, (nn.LayerNorm, LayerNorm2d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, FuserBlock):
            init.constant_(module.scale, self.config.memory_fuser_layer_scale_init_value)
        elif isinstance(module, RandomFourierEmbedding):
            init.normal_(module.positional_embedding, std=module.scale)
        elif isinstance(module, Sam2HieraDetModel):
            init.zeros_(module.pos_embed)
            init.zeros_(module.pos_embed_window)
        elif isinstance(module, Sam2Model):  # after its submodules
            init.zeros_(module.no_memory_embedding)
            # The image grid and the prompts share one random-Fourier encoding, as in the reference.
            shared = module.prompt_encoder.shared_embedding.positional_embedding
            init.copy_(module.shared_image_embedding.positional_embedding, shared)
            if isinstance(module, Sam2VideoModel):
                for p in module.memory_parameters():
                    init.normal_(p, std=std)

    def output_flags(
        self, output_hidden_states: bool | int | Sequence[int] | None, output_attentions: bool | None
    ) -> tuple[bool | tuple[int, ...], bool]:
        """Explicit flags win; None takes the config's `output_hidden_states` / `output_attentions`. Hidden states
        may be selected by index, as transformers' `capture_outputs` reads `output_hidden_states`: an int or a
        list of ints comes back as a tuple of indices (empty: none), which `HieraTrunk.run_trunk` applies."""
        hidden = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        attentions = self.config.output_attentions if output_attentions is None else output_attentions
        selected = selected_hidden_states(hidden)  # None for a flag
        return (bool(hidden) if selected is None else tuple(selected)), bool(attentions)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load a Hub repo id, a saved folder, or one of Meta's original `.pt` checkpoints.

        A release file name that is not here ("sam2_b.pt", "sam2.1_t.pt", Meta's "sam2.1_hiera_tiny.pt") loads
        its official Hub repo instead (`checkpoint.fetch_release`: fetched once, cached; offline, a
        FileNotFoundError says what to download and where to put it).

        `size="tiny"` / `version="2.1"` state the model expected (any source): a ValueError names a mismatch (for a
        `.pt` / `.pth` file, whose size and version are inferred from its weights, before the model is built), or a
        `version` asked of an image model's folder, whose configuration does not record it. A local path with
        nothing there raises FileNotFoundError naming it. Other keywords for a `.pt` are `Sam2Config` fields.
        `image_size` (any source) builds the model for another input resolution than the checkpoint's (1024 for
        Meta's files); the weights do not depend on it.

        Loading is strict: weights that are missing, unexpected or of another shape than the
        config says (e.g. a config.json edited to another size), and unreadable weight files,
        raise a `ValueError` instead of transformers' default of warning and re-initializing them
        randomly. Pass `strict=False` (or `ignore_mismatched_sizes=True`) for transformers'
        lenient behaviour, which is also what no name gives (`from_pretrained(None, config=c,
        state_dict=weights)`: weights not given are initialised and reported as transformers does).
        The memory weights of a video checkpoint are ignored by `Sam2Model`.
        """
        from .checkpoint import (
            check_local_path,
            check_not_an_export,
            fetch_release,
            from_pretrained_checked,
            is_meta_checkpoint_path,
            load_meta_checkpoint,
        )

        check_local_path(pretrained_model_name_or_path)  # a path with nothing there: say so (not a repo-id error)
        check_not_an_export(pretrained_model_name_or_path, cls)
        release_folder = fetch_release(pretrained_model_name_or_path)  # "sam2_b.pt" not here: its Hub repo
        if release_folder is not None:
            pretrained_model_name_or_path = release_folder
        elif is_meta_checkpoint_path(pretrained_model_name_or_path):
            if args:
                raise TypeError("Loading a Meta .pt checkpoint takes keyword arguments only.")
            kwargs.pop("strict", None)
            return load_meta_checkpoint(cls, os.fspath(pretrained_model_name_or_path), **kwargs)
        image_size = kwargs.pop("image_size", None)
        size, version = kwargs.pop("size", None), kwargs.pop("version", None)
        check_model_names(size, version)
        loaded = from_pretrained_checked(super().from_pretrained, pretrained_model_name_or_path, *args, **kwargs)
        model, info = loaded if kwargs.get("output_loading_info") else (loaded, None)
        check_requested_model(repr(str(pretrained_model_name_or_path)), model.config, size, version)  # name may be None
        if image_size is not None and image_size != model.config.image_size:
            model = model.at_image_size(image_size)
        return model if info is None else (model, info)

    def at_image_size(self, image_size: int):
        """This model's weights in a model of the same class built for input size `image_size` (a multiple of
        32; see `with_image_size`), on the same device and dtype, in the same train/eval mode."""
        model = type(self)(self.config.with_image_size(image_size))
        model.load_state_dict(self.state_dict())
        return model.to(self.device, self.dtype).train(self.training)


class Sam2HieraDetModel(Sam2PreTrainedModel, HieraTrunk):
    """transformers' `Sam2HieraDetModel`: the Hiera trunk alone (`Sam2VisionModel.backbone` is one)."""

    config_class = Sam2HieraDetConfig
    config: Sam2HieraDetConfig

    def __init__(self, config: Sam2HieraDetConfig):
        super().__init__(config)
        self.build_trunk(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.patch_embed

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> Sam2HieraDetModelOutput:
        """pixel_values (B, 3, S, S) normalized -> `Sam2HieraDetModelOutput` (flags default to the config's;
        `return_dict=False` gives its `to_tuple()`)."""
        output_hidden_states, output_attentions = self.output_flags(output_hidden_states, output_attentions)
        stage_maps, hidden_states, attentions = self.run_trunk(pixel_values, output_hidden_states, output_attentions)
        stages = tuple(m.permute(0, 2, 3, 1) for m in stage_maps)
        return Sam2HieraDetModelOutput(
            last_hidden_state=stages[-1],
            intermediate_hidden_states=stages,
            hidden_states=hidden_states,
            attentions=attentions,
        )


class Sam2VisionModel(Sam2PreTrainedModel):
    """transformers' `Sam2VisionModel`: the image encoder (Hiera trunk + FPN neck); `Sam2Model.vision_encoder`
    is one. (B, 3, S, S) -> three FPN maps at strides 4, 8, 16 (the stride-32 level only feeds the stride-16
    level through the top-down path), with the sine encoding of each."""

    config_class = Sam2VisionConfig
    config: Sam2VisionConfig

    def __init__(self, config: Sam2VisionConfig):
        super().__init__(config)
        share_attention_implementation(config)
        self.backbone = Sam2HieraDetModel(config.backbone_config)
        self.neck = FpnNeck(config)
        self.num_feature_levels = config.num_feature_levels
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.patch_embed

    def encode(
        self, pixel_values: torch.Tensor, output_hidden_states: bool = False, output_attentions: bool = False
    ) -> VisionEncoderOutput:
        """(B, 3, S, S) -> `VisionEncoderOutput` (fpn maps channels-first, the stride-16 map's position encoding)."""
        trunk = self.backbone.run_trunk(pixel_values, output_hidden_states, output_attentions)
        stage_maps, hidden_states, attentions = trunk
        fpn = self.neck(stage_maps)[: self.num_feature_levels]
        last = stage_maps[-1].permute(0, 2, 3, 1)
        return VisionEncoderOutput(fpn, self.position_encoding(fpn[-1]), last, hidden_states, attentions)

    @staticmethod
    def position_encoding(feature_map: torch.Tensor) -> torch.Tensor:
        """The sine position encoding of a (B, C, h, w) map: (1, C, h, w) in its dtype."""
        c, h, w = feature_map.shape[1:]
        return sine_position_encoding(c, h, w, device=feature_map.device, dtype=feature_map.dtype).unsqueeze(0)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> Sam2VisionEncoderOutput:
        """pixel_values (B, 3, S, S) normalized -> `Sam2VisionEncoderOutput` as transformers': last_hidden_state
        (B, S/32, S/32, 8C), fpn_hidden_states / fpn_position_encoding three (B, C_fpn, h_i, w_i) maps from high
        to low resolution, hidden_states / attentions when asked (flags default to the config's)."""
        output_hidden_states, output_attentions = self.output_flags(output_hidden_states, output_attentions)
        vision = self.encode(pixel_values, output_hidden_states, output_attentions)
        batch = pixel_values.shape[0]
        return Sam2VisionEncoderOutput(
            last_hidden_state=vision.last_hidden_state,
            fpn_hidden_states=vision.fpn_maps,
            fpn_position_encoding=[self.position_encoding(m).expand(batch, -1, -1, -1) for m in vision.fpn_maps],
            hidden_states=vision.hidden_states,
            attentions=vision.attentions,
        )


class Sam2Model(Sam2PreTrainedModel):
    """Promptable image segmentation: image encoder + prompt encoder + mask decoder."""

    has_memory = False
    # A `sam2_video` checkpoint also holds the memory weights, which image mode does not use.
    _keys_to_ignore_on_load_unexpected = [
        r"^memory_.*",
        r"^mask_downsample.*",
        r"^object_pointer_proj.*",
        r"^temporal_positional_encoding_projection_layer.*",
        r"^no_memory_positional_encoding",
        r"^no_object_pointer",
        r"^occlusion_spatial_embedding_parameter",
    ]

    def __init__(self, config: Sam2Config):
        config = self.own_config(config)
        super().__init__(config)
        share_attention_implementation(config)
        pe = config.prompt_encoder_config
        self.vision_encoder = Sam2VisionModel(config.vision_config)
        self.prompt_encoder = PromptEncoder(pe)
        self.mask_decoder = MaskDecoder(config.mask_decoder_config)
        # Dense positional encoding of the image embedding; `_init_weights` gives it the prompt encoder's frequencies.
        self.shared_image_embedding = RandomFourierEmbedding(pe.hidden_size // 2, pe.scale)
        self.no_memory_embedding = nn.Parameter(torch.zeros(1, 1, config.vision_config.fpn_hidden_size))
        if self.has_memory:
            self._build_memory_modules(config)
        self.post_init()

    @staticmethod
    def own_config(config: Sam2Config | Sam2VideoConfig) -> Sam2Config:
        """The configuration this model is built from and saves: the image part of a `Sam2VideoConfig`, so a
        saved image model is transformers' `sam2` type and never claims memory weights it does not have."""
        return config.image_config() if isinstance(config, Sam2VideoConfig) else config

    # ----------------------------------------------------------------------------------- images
    def get_input_embeddings(self) -> nn.Module:
        """The image encoder's patch embedding (as transformers' `Sam2Model`)."""
        return self.vision_encoder.backbone.patch_embed

    def encode_image(
        self, pixel_values: torch.Tensor, output_hidden_states: bool = False, output_attentions: bool = False
    ) -> VisionEncoderOutput:
        """(B, 3, S, S) normalized images, checked -> the image encoder's `VisionEncoderOutput`."""
        check_pixel_values(pixel_values, self.config.image_size)
        return self.vision_encoder.encode(pixel_values, output_hidden_states, output_attentions)

    def frame_features(self, vision: VisionEncoderOutput) -> Sam2FrameFeatures:
        """The image encoder's output -> the features every later step reuses."""
        fpn = vision.fpn_maps
        return Sam2FrameFeatures(
            image_embeddings=fpn[-1],
            high_res_features=self.mask_decoder.project_high_res_features(fpn[0], fpn[1]),
            position_embeddings=vision.position_embeddings,
        )

    def encode_frame(self, pixel_values: torch.Tensor) -> Sam2FrameFeatures:
        """(B, 3, S, S) normalized images -> the features every later step reuses."""
        return self.frame_features(self.encode_image(pixel_values))

    def image_embeddings_of(self, vision: VisionEncoderOutput) -> list[torch.Tensor]:
        """The image encoder's output -> `image_embeddings` (see `get_image_embeddings`)."""
        features = self.frame_features(vision)
        return [*features.high_res_features, self.image_only_embedding(features.image_embeddings)]

    def get_image_embeddings(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, S, S) -> embeddings to pass back as `image_embeddings=`: [stride-4 skip (B, 32, 4h, 4w),
        stride-8 skip (B, 64, 2h, 2w), stride-16 features + `no_memory_embedding` (B, 256, h, w)]."""
        return self.image_embeddings_of(self.encode_image(pixel_values))

    @can_return_tuple
    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> Sam2VisionEncoderOutput:
        """transformers' `get_image_features`: pixel_values (B, 3, S, S) -> `Sam2VisionEncoderOutput` (its layout:
        token-major (hw, B, C) maps), hidden states / attentions as `forward` takes them; `return_dict=False`
        (keyword; default `config.return_dict`) gives its `to_tuple()`."""
        output_hidden_states, output_attentions = self.output_flags(output_hidden_states, output_attentions)
        vision = self.encode_image(pixel_values, output_hidden_states, output_attentions)
        fpn = vision.fpn_maps
        maps = [*self.mask_decoder.project_high_res_features(fpn[0], fpn[1]), fpn[2]]
        positions = [self.vision_encoder.position_encoding(m).expand(len(pixel_values), -1, -1, -1) for m in fpn]
        tokens = lambda x: x.flatten(2).permute(2, 0, 1)
        return Sam2VisionEncoderOutput(
            last_hidden_state=vision.last_hidden_state,
            hidden_states=vision.hidden_states,
            attentions=vision.attentions,
            fpn_hidden_states=[tokens(m) for m in maps],
            fpn_position_encoding=[tokens(pos) for pos in positions],
        )

    def image_only_embedding(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """A frame with no memory gets the learned `no_memory_embedding` added: (B, C, h, w)."""
        return image_embeddings + self.no_memory_embedding.reshape(1, -1, 1, 1)

    def dense_positional_embedding(self) -> torch.Tensor:
        """(1, 256, h, w) random-Fourier encoding of the image-embedding grid."""
        return self.shared_image_embedding.dense(*([self.config.embedding_size] * 2))

    def decode(
        self,
        image_embeddings: torch.Tensor,
        high_res_features: list[torch.Tensor],
        points: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        mask_inputs: torch.Tensor | None = None,
        multimask_output: bool = True,
        empty_prompt_as_point: bool = True,
        attention_similarity: torch.Tensor | None = None,
        target_embedding: torch.Tensor | None = None,
        output_attentions: bool = False,
        image_projections: ImageProjections | None = None,
    ):
        """Prompt encoder + mask decoder for N prompt sets on N (possibly repeated) images -> `DecoderOutput`.

        image_embeddings (N, C, h, w), points (N, K, 2) in input pixels, labels (N, K) (-10: batch padding,
        left out of the decoder's attention, so it changes no result), boxes (N, 4),
        mask_inputs (N, 1, H, W) logits (resized to 4h x 4w). Without points or boxes a "not a point"
        click is used (as the reference's tracker does) unless `empty_prompt_as_point=False`, which
        leaves no sparse tokens (as the reference's image predictor does). attention_similarity,
        target_embedding (N-batched) and output_attentions: see `TwoWayTransformer.forward`.
        image_projections: `project_image` of these embeddings (batch N, or 1 when the N are one image's embedding
        repeated), computed once per image and reused by every call; only without mask_inputs (ValueError: a mask
        input changes the image tokens they are computed from).
        """
        if image_projections is not None and mask_inputs is not None:
            raise ValueError("image_projections are computed without a mask input; pass one or the other.")
        n = image_embeddings.shape[0]
        if points is None and boxes is None and empty_prompt_as_point:
            points, labels = not_a_point_prompt(n, image_embeddings)
        if mask_inputs is not None:
            mask_inputs = mask_input_at(mask_inputs, self.prompt_encoder.mask_input_size)
        sparse, dense, sparse_padding = self.prompt_encoder(points, labels, boxes, mask_inputs, batch_shape=(n,))
        return self.mask_decoder(
            image_embeddings,
            self.dense_positional_embedding(),
            sparse,
            dense,
            high_res_features,
            multimask_output,
            attention_similarity,
            target_embedding,
            output_attentions,
            sparse_padding,
            image_projections,
        )

    def project_image(self, image_embeddings: torch.Tensor) -> ImageProjections:
        """(B, C, h, w) embeddings (as `decode` takes them) -> the mask decoder's projections of them that no prompt
        changes (`ImageProjections`, each (B, hw, C / attention_downsample_rate)), for `decode(...,
        image_projections=)` on any prompts without a mask input."""
        _, dense, _ = self.prompt_encoder(batch_shape=(image_embeddings.shape[0],))
        return self.mask_decoder.project_image(image_embeddings, self.dense_positional_embedding(), dense)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_points: torch.Tensor | None = None,
        input_labels: torch.Tensor | None = None,
        input_boxes: torch.Tensor | None = None,
        input_masks: torch.Tensor | None = None,
        image_embeddings: list[torch.Tensor] | None = None,
        multimask_output: bool = True,
        attention_similarity: torch.Tensor | None = None,
        target_embedding: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        original_sizes: torch.Tensor | None = None,
    ) -> Sam2ImageSegmentationOutput:
        """Masks for P prompt sets (objects) on each of B images -> `Sam2ImageSegmentationOutput`.

        pixel_values (B, 3, S, S) or image_embeddings (from `get_image_embeddings` / a previous output);
        input_points (B, P, K, 2) in input pixels (the processor rescales), input_labels (B, P, K)
        (1 positive, 0 negative, -1 not a point, -10 padding), input_boxes (B, P, 4) as x0, y0, x1, y1,
        input_masks (B, 1 or P, H, W) low-resolution logits from a previous prediction.
        PerSAM options (as transformers): attention_similarity, an additive bias on the mask decoder's
        token-to-image attention scores, broadcastable to (B * P, heads, tokens, h * w); target_embedding,
        broadcastable to (B, P, tokens, 256), added to the decoder's tokens (tokens: 6 output tokens, then the
        prompt's). output_attentions / output_hidden_states (default: the config's) add the fields described in
        `Sam2ImageSegmentationOutput`. `return_dict=False` (keyword; default `config.return_dict`) returns the
        output's `to_tuple()` (its fields that are not None, in order), as transformers does.
        original_sizes (B, 2): accepted so that `model(**processor(...))` works as in transformers; the masks are
        brought to these sizes by `Sam2Processor.post_process_masks`, not here.
        """
        del original_sizes  # used by post-processing only
        if (pixel_values is None) == (image_embeddings is None):
            raise ValueError("Pass exactly one of `pixel_values` or `image_embeddings`.")
        output_hidden_states, output_attentions = self.output_flags(output_hidden_states, output_attentions)
        vision = None
        if image_embeddings is None:
            vision = self.encode_image(pixel_values, output_hidden_states, output_attentions)
            image_embeddings = self.image_embeddings_of(vision)
        *high_res, embedding = image_embeddings
        b = embedding.shape[0]
        if input_points is not None and input_labels is None:
            input_labels = torch.ones(input_points.shape[:-1], dtype=torch.int64, device=input_points.device)
        p = check_image_prompts(b, input_points, input_labels, input_boxes, input_masks, self.config.image_size)

        flat = lambda x: None if x is None else x.flatten(0, 1)
        masks = input_masks
        if masks is not None:
            masks = masks.unsqueeze(2).expand(-1, p, -1, -1, -1) if masks.shape[1] == 1 else masks.unsqueeze(2)
        if target_embedding is not None:  # (..., tokens, C) broadcast over (B, P) -> (B * P, tokens, C)
            target_embedding = target_embedding.reshape((1,) * (4 - target_embedding.ndim) + target_embedding.shape)
            target_embedding = flat(target_embedding.expand(b, p, -1, -1))
        out = self.decode(
            embedding.repeat_interleave(p, dim=0),
            [f.repeat_interleave(p, dim=0) for f in high_res],
            flat(input_points),
            flat(input_labels),
            flat(input_boxes),
            flat(masks),
            multimask_output,
            attention_similarity=attention_similarity,
            target_embedding=target_embedding,
            output_attentions=output_attentions,
        )
        return Sam2ImageSegmentationOutput(
            iou_scores=out.iou_scores.unflatten(0, (b, p)),
            pred_masks=out.masks.unflatten(0, (b, p)),
            object_score_logits=out.object_score_logits.unflatten(0, (b, p)),
            image_embeddings=image_embeddings,
            vision_hidden_states=None if vision is None else vision.hidden_states,
            vision_attentions=None if vision is None else vision.attentions,
            mask_decoder_attentions=None if out.attentions is None else tuple(a.unsqueeze(1) for a in out.attentions),
        )


class Sam2VideoPreTrainedModel(Sam2PreTrainedModel):
    """transformers' base class of the video model (a `Sam2VideoConfig`); `Sam2VideoModel` is one."""

    config_class = Sam2VideoConfig


class Sam2VideoModel(Sam2Model, Sam2VideoPreTrainedModel):
    """SAM 2 with its memory: the per-frame steps of video tracking (the tracking loop uses them)."""

    config_class = Sam2VideoConfig
    config: Sam2VideoConfig
    has_memory = True
    _keys_to_ignore_on_load_unexpected = None

    @staticmethod
    def own_config(config: Sam2VideoConfig) -> Sam2VideoConfig:
        """A video model needs the memory fields: a `Sam2VideoConfig`; TypeError for an image `Sam2Config`."""
        if not isinstance(config, Sam2VideoConfig):
            raise TypeError(
                f"Sam2VideoModel needs a Sam2VideoConfig (with the memory settings); got {type(config).__name__}. "
                "Use Sam2VideoConfig.from_size(...) or Sam2Model for images."
            )
        return config

    def _build_memory_modules(self, config: Sam2VideoConfig):
        hidden, mem_dim = config.vision_config.fpn_hidden_size, config.memory_encoder_output_channels
        self.memory_attention = MemoryAttention(config)
        self.memory_encoder = MemoryEncoder(config)
        self.memory_temporal_positional_encoding = nn.Parameter(torch.zeros(config.num_maskmem, 1, 1, mem_dim))
        self.no_memory_positional_encoding = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_object_pointer = nn.Parameter(torch.zeros(1, hidden))
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.object_pointer_proj = FeedForward(hidden, hidden, hidden, num_layers=3)
        if config.enable_temporal_pos_encoding_for_object_pointers:
            self.temporal_positional_encoding_projection_layer = nn.Linear(hidden, mem_dim)
        if config.enable_occlusion_spatial_embedding:
            self.occlusion_spatial_embedding_parameter = nn.Parameter(torch.zeros(1, mem_dim))

    def forward(
        self,
        inference_session=None,
        frame_idx: int | None = None,
        frame: torch.Tensor | None = None,
        reverse: bool = False,
        run_mem_encoder: bool = True,
        **image_inputs,
    ):
        """transformers' `Sam2VideoModel.forward`: segment every object of `inference_session` on one frame.

        inference_session: a `Sam2VideoInferenceSession` (from `Sam2VideoProcessor.init_video_session`);
        frame_idx: the frame to segment (a frame of the session's video); frame: (3, S, S) or (1, 3, S, S)
        pixel values pushed when streaming (appended to the session; `frame_idx` then defaults to its index);
        reverse: tracking backwards in time; run_mem_encoder: store the frame's memory.
        Returns `Sam2VideoSegmentationOutput` (object_ids, pred_masks (num_objects, 1, 4h, 4w) logits,
        object_score_logits (num_objects,), frame_idx). The session runs the one tracking implementation
        (`Sam2VideoPredictor`) with this model.

        Without `inference_session`, this is `Sam2Model.forward` (image segmentation with the same weights).
        """
        if inference_session is None:
            return super().forward(**image_inputs)
        if image_inputs:
            raise TypeError(f"Image inputs {sorted(image_inputs)} cannot be combined with inference_session.")
        with torch.inference_mode():
            return inference_session.segment_frame(self, frame_idx, frame, reverse, run_mem_encoder)

    def propagate_in_video_iterator(
        self,
        inference_session,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
        show_progress_bar: bool = False,
    ):
        """transformers' `propagate_in_video_iterator`: yields a `Sam2VideoSegmentationOutput` per frame
        from `start_frame_idx` (default: the earliest prompted frame) for `max_frame_num_to_track` frames
        after it (inclusive, so 2 gives 3 frames), forwards or in `reverse`."""
        yield from inference_session.propagate(
            self, start_frame_idx, max_frame_num_to_track, reverse, show_progress_bar
        )

    def memory_parameters(self):
        """The free-standing (non-module) parameters of the memory."""
        names = ["memory_temporal_positional_encoding", "no_memory_positional_encoding", "no_object_pointer"]
        if self.config.enable_occlusion_spatial_embedding:
            names.append("occlusion_spatial_embedding_parameter")
        return [getattr(self, n) for n in names]

    def condition_on_memory(self, features: Sam2FrameFeatures, selections: Sequence[MemorySelection]) -> torch.Tensor:
        """Stride-16 features of one frame attended to each object's memories: -> (N, C, h, w).

        features: the frame's `encode_frame` output, batch 1 (one frame shared by the N objects: its first
        self-attention runs once) or N. selections: one `MemorySelection` per object (what
        the session's memory selection policy picked: spatial memories with their temporal index, object pointers with
        their temporal offset), all with the same `layout` so their tokens stack into one batch.
        """
        return self.attend_memory_bank(
            features.image_embeddings,
            features.position_embeddings,
            *stack_selections(selections, self.dtype, self.config.vision_config.fpn_hidden_size),
        )

    def attend_memory_bank(
        self,
        image_embeddings: torch.Tensor,
        position_embeddings: torch.Tensor,
        memories: torch.Tensor,
        temporal_index: torch.Tensor,
        pointers: torch.Tensor,
        pointer_offsets: torch.Tensor,
        max_pointers: int,
    ) -> torch.Tensor:
        """Memory attention on tensors (what an exported runtime runs as one graph) -> (N, C, h, w).

        image_embeddings (1 or N, C, h, w) a frame's stride-16 features, position_embeddings (1, C, h, w);
        memories (N, F, 64, h, w) the spatial memories read, temporal_index (N, F) int64 (0: a conditioning
        frame, num_maskmem - k: k frames back); pointers (N, P, 256) object pointers at temporal offsets
        pointer_offsets (N, P) float32 (frames), normalised by `max_pointers - 1` (SAM 2.1).
        Follows the reference's `SAM2Base._prepare_memory_conditioned_features` (memory frames first,
        then object pointers; SAM 2.1 adds the pointers' temporal encoding).
        """
        _, c, h, w = image_embeddings.shape
        spatial, spatial_pos = self.spatial_memory(memories, self.memory_position_encoding(h, w), temporal_index)
        pointer_tokens, pointer_pos = self.object_pointer_memory(pointers, pointer_offsets, max_pointers)
        curr = image_embeddings.flatten(2).transpose(1, 2)
        curr_pos = position_embeddings.flatten(2).transpose(1, 2)
        out = self.memory_attention(
            curr,
            curr_pos,
            torch.cat([spatial, pointer_tokens], dim=1),
            torch.cat([spatial_pos, pointer_pos], dim=1),
            pointer_tokens.shape[1],
        )
        return out.transpose(1, 2).reshape(-1, c, h, w)

    @property
    def tokens_per_object_pointer(self) -> int:
        """A 256-d object pointer is split into 256 / 64 memory tokens."""
        return self.config.vision_config.fpn_hidden_size // self.config.memory_encoder_output_channels

    def memory_position_encoding(self, height: int, width: int) -> torch.Tensor:
        """The spatial memories' sine position encoding, the same for every memory: (1, 64, h, w) in the
        model's dtype (computed in fp32, as the reference)."""
        channels = self.config.memory_encoder_output_channels
        return sine_position_encoding(channels, height, width, device=self.device, dtype=self.dtype).unsqueeze(0)

    def spatial_memory(self, memories: torch.Tensor, memory_pos: torch.Tensor, temporal_index: torch.Tensor):
        """Past frames' memories as tokens: (N, F, 64, h, w) -> tokens and positions (N, F * hw, 64).

        memory_pos (1, 64, h, w) the grid's encoding; temporal_index (N, F) int64: 0 for a conditioning (prompted)
        frame, else num_maskmem - k for the frame k steps back; it picks the learned temporal encoding added.
        """
        tokens = memories.flatten(3).transpose(2, 3).flatten(1, 2)
        temporal = self.memory_temporal_positional_encoding.reshape(self.config.num_maskmem, -1)
        tpos = temporal[self.config.num_maskmem - temporal_index - 1]  # (N, F, 64)
        pos = memory_pos.flatten(2).transpose(1, 2).unsqueeze(1) + tpos.unsqueeze(2)
        return tokens, pos.flatten(1, 2)

    def object_pointer_memory(self, pointers: torch.Tensor, offsets: torch.Tensor, max_pointers: int):
        """Object pointers (N, P, 256) at temporal offsets (N, P) float32 -> tokens and position (N, 4P, 64).

        Each 256-d pointer becomes `tokens_per_object_pointer` 64-d tokens; SAM 2.1 encodes the offset
        (scaled by `max_pointers - 1`) with a projected 1-D sine encoding, SAM 2 uses zeros.
        """
        n, p, c = pointers.shape
        mem_dim = self.config.memory_encoder_output_channels
        if self.config.enable_temporal_pos_encoding_for_object_pointers:
            projection = self.temporal_positional_encoding_projection_layer
            pos = projection(sine_1d(offsets / (max_pointers - 1), c).to(projection.weight.dtype)).to(pointers.dtype)
        else:
            pos = pointers.new_zeros(n, p, mem_dim)
        split = self.tokens_per_object_pointer
        return pointers.reshape(n, p * split, mem_dim), pos.repeat_interleave(split, dim=1)

    def encode_memory(
        self,
        features: Sam2FrameFeatures,
        high_res_masks: torch.Tensor,
        object_score_logits: torch.Tensor,
        binarize: bool = False,
    ) -> torch.Tensor:
        """A frame's prediction -> its memory: (N, 64, h, w) features (their position encoding is
        `memory_position_encoding`).

        binarize (bool, or a 0-d bool tensor in an exported graph): threshold the mask instead of taking its sigmoid
        (the reference does this on clicked frames).
        SAM 2.1 adds a learned embedding to the memory of frames where the object is absent.
        """
        mask = torch.where(torch.as_tensor(binarize), (high_res_masks > 0).float(), torch.sigmoid(high_res_masks))
        mask = mask * self.config.sigmoid_scale_for_mem_enc + self.config.sigmoid_bias_for_mem_enc
        memory = self.memory_encoder(features.image_embeddings, mask)
        if self.config.enable_occlusion_spatial_embedding:
            absent = (object_score_logits <= 0).float()[..., None, None]  # (N, 1, 1, 1)
            memory = memory + absent * self.occlusion_spatial_embedding_parameter.reshape(1, -1, 1, 1)
        return memory


def stack_selections(selections: Sequence[MemorySelection], dtype: torch.dtype, pointer_dim: int):
    """One `MemorySelection` per object (same `layout`; each output holds B rows: 1 at inference, the objects
    tracked together in training) -> the tensors of `Sam2VideoModel.attend_memory_bank`: memories
    (N, F, 64, h, w) in `dtype`, temporal_index (N, F) int64, pointers (N, P, 256), pointer_offsets (N, P) float32,
    max_pointers; N = the selections' rows together. pointer_dim: the pointers' width (256), for a selection without
    pointers."""
    rows = [sel.spatial[0][1].memory.shape[0] for sel in selections]
    device = selections[0].spatial[0][1].memory.device
    per_row = lambda values: torch.tensor(values, device=device).repeat_interleave(torch.tensor(rows, device=device), 0)
    memories = torch.cat([torch.stack([out.memory for _, out in sel.spatial], dim=1) for sel in selections])
    temporal_index = per_row([[t for t, _ in sel.spatial] for sel in selections])
    if selections[0].pointers:
        pointers = torch.cat([torch.stack([out.object_pointer for _, out in sel.pointers], 1) for sel in selections])
    else:
        pointers = memories.new_zeros(sum(rows), 0, pointer_dim, dtype=dtype)
    offsets = per_row([[float(t) for t, _ in sel.pointers] for sel in selections]).float().reshape(sum(rows), -1)
    return memories.to(dtype), temporal_index, pointers, offsets, selections[0].max_pointers
