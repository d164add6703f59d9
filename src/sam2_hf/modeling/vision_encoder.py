"""Image encoder: Hiera trunk + FPN neck.

(B, 3, S, S) -> three 256-channel maps at strides 4, 8 and 16 (the stride-32 level only feeds the
stride-16 level through the top-down path and is then dropped), plus the sine encoding of the stride-16 map.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .hiera import Hiera
from .position_encoding import sine_position_encoding


class FpnNeck(nn.Module):
    """1x1 lateral convs; nearest top-down fusion only into `fpn_top_down_levels`."""

    def __init__(self, config):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(
                dim,
                config.fpn_hidden_size,
                kernel_size=config.fpn_kernel_size,
                stride=config.fpn_stride,
                padding=config.fpn_padding,
            )
            for dim in config.backbone_channel_list
        )
        self.top_down_levels = set(config.fpn_top_down_levels)

    def forward(self, stage_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Stage maps (highest resolution first) -> FPN maps in the same order."""
        n = len(stage_maps) - 1
        out = [None] * len(stage_maps)
        previous = None
        for level in range(n, -1, -1):  # coarse to fine; convs[0] takes the coarsest stage
            lateral = self.convs[n - level](stage_maps[level])
            if level in self.top_down_levels and previous is not None:
                top_down = F.interpolate(previous.to(torch.float32), scale_factor=2.0, mode="nearest")
                top_down = top_down.to(lateral.dtype)  # upsampled in fp32 (the reference's), added in the model's
                previous = lateral + top_down
            else:
                previous = lateral
            out[level] = previous
        return out


@dataclass
class VisionEncoderOutput:
    """fpn_maps [stride 4, 8, 16] each (B, 256, h, w); position_embeddings (1, 256, h, w) the sine encoding of
    the stride-16 map; last_hidden_state (B, S/32, S/32, C) the trunk's last stage, channels-last;
    hidden_states and attentions as `Hiera.forward` returns them (None unless asked for)."""

    fpn_maps: list[torch.Tensor]
    position_embeddings: torch.Tensor
    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class VisionEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.backbone = Hiera(config.backbone_config)
        self.neck = FpnNeck(config)
        self.num_feature_levels = config.num_feature_levels

    def forward(
        self, pixel_values: torch.Tensor, output_hidden_states: bool = False, output_attentions: bool = False
    ) -> VisionEncoderOutput:
        """(B, 3, S, S) -> `VisionEncoderOutput`."""
        stage_maps, hidden_states, attentions = self.backbone(pixel_values, output_hidden_states, output_attentions)
        fpn = self.neck(stage_maps)[: self.num_feature_levels]
        last = stage_maps[-1].permute(0, 2, 3, 1)
        return VisionEncoderOutput(fpn, self.position_encoding(fpn[-1]), last, hidden_states, attentions)

    @staticmethod
    def position_encoding(feature_map: torch.Tensor) -> torch.Tensor:
        """The sine position encoding of a (B, C, h, w) map: (1, C, h, w) in its dtype."""
        c, h, w = feature_map.shape[1:]
        return sine_position_encoding(c, h, w, device=feature_map.device, dtype=feature_map.dtype).unsqueeze(0)
