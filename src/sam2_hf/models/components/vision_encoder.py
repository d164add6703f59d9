"""Image encoder parts: the FPN neck over the Hiera trunk's stages, and the encoder's output record
(`Sam2VisionModel` in models/modeling.py puts them together).

(B, 3, S, S) -> three 256-channel maps at strides 4, 8 and 16 (the stride-32 level only feeds the
stride-16 level through the top-down path and is then dropped), plus the sine encoding of the stride-16 map.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


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
    hidden_states and attentions as `HieraTrunk.run_trunk` returns them (None unless asked for)."""

    fpn_maps: list[torch.Tensor]
    position_embeddings: torch.Tensor
    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
