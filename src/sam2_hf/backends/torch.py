"""`TorchBackend`: the compute seam's torch implementation, over a `Sam2Model` / `Sam2VideoModel`.

A plain object, not an `nn.Module` and never a model attribute (that would register the model twice and change
`state_dict` keys). Each part calls the model's methods when it is called, so whatever changes the model in place
(LoRA injection, `.to(...)`, DDP's wrapped forward, a test's patch of a method) is what the backend runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..models.components.mask_decoder import DecoderOutput
from ..models.components.two_way_transformer import ImageProjections
from ..models.modeling import Sam2Model
from ..models.outputs import MemorySelection, Sam2FrameFeatures


class TorchImageEncoder:
    def __init__(self, model: Sam2Model):
        self.model = model

    def encode_frame(self, pixel_values: torch.Tensor) -> Sam2FrameFeatures:
        return self.model.encode_frame(pixel_values)

    def image_only_embedding(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        return self.model.image_only_embedding(image_embeddings)


class TorchMaskDecoder:
    def __init__(self, model: Sam2Model):
        self.model = model

    def decode(self, image_embeddings, high_res_features, points=None, labels=None, boxes=None, mask_inputs=None,
               multimask_output=True, empty_prompt_as_point=True, image_projections=None) -> DecoderOutput:  # fmt: skip
        return self.model.decode(
            image_embeddings, high_res_features, points, labels, boxes, mask_inputs, multimask_output,
            empty_prompt_as_point, image_projections=image_projections,
        )  # fmt: skip

    def project_image(self, image_embeddings: torch.Tensor) -> ImageProjections:
        return self.model.project_image(image_embeddings)

    def downsample_mask(self, mask: torch.Tensor) -> torch.Tensor:
        return self.model.mask_downsample(mask.to(self.model.dtype))

    def project_object_pointer(self, mask_token: torch.Tensor) -> torch.Tensor:
        return self.model.object_pointer_proj(mask_token)

    @property
    def no_object_pointer(self) -> torch.Tensor:
        return self.model.no_object_pointer


class TorchMemoryAttention:
    def __init__(self, model: Sam2Model):
        self.model = model

    def condition_on_memory(self, features: Sam2FrameFeatures, selections: Sequence[MemorySelection]) -> torch.Tensor:
        return self.model.condition_on_memory(features, selections)


class TorchMemoryEncoder:
    def __init__(self, model: Sam2Model):
        self.model = model

    def encode_memory(self, features, high_res_masks, object_score_logits, binarize=False) -> torch.Tensor:
        return self.model.encode_memory(features, high_res_masks, object_score_logits, binarize)


class TorchBackend:
    """The four parts over `model` (see backends/protocol.py for each call's shapes). An image `Sam2Model` has no
    memory parts (None)."""

    def __init__(self, model: Sam2Model):
        self.model = model
        self.image_encoder = TorchImageEncoder(model)
        self.mask_decoder = TorchMaskDecoder(model)
        video = getattr(model, "has_memory", False)
        self.memory_attention = TorchMemoryAttention(model) if video else None
        self.memory_encoder = TorchMemoryEncoder(model) if video else None

    @property
    def config(self):
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype
