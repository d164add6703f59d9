"""Memory encoder: a frame's stride-16 features fused with its (downsampled) predicted mask,
projected to the 64-channel memory stored in the bank.

features (B, 256, h, w) + mask logits (B, 1, 16h, 16w) -> memory (B, 64, h, w). The memory's position
encoding is a fixed sine map of the grid; `Sam2VideoModel.memory_position_encoding` gives it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import Activation, LayerNorm2d


class MaskDownSamplerLayer(nn.Module):
    def __init__(self, in_channels, out_channels, config):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size=config.mask_downsampler_kernel_size,
            stride=config.mask_downsampler_stride,
            padding=config.mask_downsampler_padding,
        )
        self.layer_norm = LayerNorm2d(out_channels)
        self.act = Activation(config.mask_downsampler_hidden_act)

    def forward(self, x):
        return self.act(self.layer_norm(self.conv(x)))


class MaskDownSampler(nn.Module):
    """Strided convs (channels x stride^2 each step) down to stride `total_stride`, then a 1x1 conv."""

    def __init__(self, config):
        super().__init__()
        stride = config.mask_downsampler_stride
        num_layers = round(math.log(config.mask_downsampler_total_stride, stride))
        channels = [stride ** (2 * i) for i in range(num_layers + 1)]  # 1, 4, 16, 64, 256
        self.layers = nn.ModuleList(MaskDownSamplerLayer(a, b, config) for a, b in zip(channels, channels[1:]))
        self.final_conv = nn.Conv2d(channels[-1], config.mask_downsampler_embed_dim, kernel_size=1)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.final_conv(x)


class FuserBlock(nn.Module):
    """ConvNeXt block: depthwise conv -> LayerNorm -> MLP (as 1x1 convs) -> layer scale, residual."""

    def __init__(self, config):
        super().__init__()
        c = config.memory_fuser_embed_dim
        k, p = config.memory_fuser_kernel_size, config.memory_fuser_padding
        self.depthwise_conv = nn.Conv2d(c, c, kernel_size=k, padding=p, groups=c)
        self.layer_norm = LayerNorm2d(c, eps=1e-6)
        self.pointwise_conv1 = nn.Linear(c, config.memory_fuser_intermediate_dim)
        self.act = Activation(config.memory_fuser_hidden_act)
        self.pointwise_conv2 = nn.Linear(config.memory_fuser_intermediate_dim, c)
        self.scale = nn.Parameter(config.memory_fuser_layer_scale_init_value * torch.ones(c))

    def forward(self, x):
        y = self.layer_norm(self.depthwise_conv(x)).permute(0, 2, 3, 1)
        y = self.scale * self.pointwise_conv2(self.act(self.pointwise_conv1(y), overwrite=True))
        return x + y.permute(0, 3, 1, 2)


class MemoryFuser(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layers = nn.ModuleList(FuserBlock(config) for _ in range(config.memory_fuser_num_layers))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = config.memory_encoder_hidden_size
        self.mask_downsampler = MaskDownSampler(config)
        self.feature_projection = nn.Conv2d(c, c, kernel_size=1)
        self.memory_fuser = MemoryFuser(config)
        self.projection = nn.Conv2d(c, config.memory_encoder_output_channels, kernel_size=1)

    def forward(self, features: torch.Tensor, mask_for_memory: torch.Tensor) -> torch.Tensor:
        """features (1 or N, C, h, w), mask (N, 1, S, S) -> memory (N, 64, h, w).

        `mask_for_memory` is already scaled (sigmoid or binary, x20 - 10). On CPU without gradients the
        N objects go one at a time: a batch's intermediates outgrow glibc's mmap threshold, so each one
        would be freshly allocated and page-faulted (2x slower at 8 objects and 1024 px, measured).
        """
        projected = self.feature_projection(features)
        mask_for_memory = mask_for_memory.to(projected.dtype)  # the (fp32) mask joins the model's dtype
        if mask_for_memory.device.type == "cpu" and not torch.is_grad_enabled():
            projected = projected.expand(len(mask_for_memory), -1, -1, -1)
            memory = torch.cat([self.fuse(p[None], m[None]) for p, m in zip(projected, mask_for_memory)])
        else:
            memory = self.fuse(projected, mask_for_memory)
        return memory

    def fuse(self, projected_features: torch.Tensor, mask_for_memory: torch.Tensor) -> torch.Tensor:
        """(1 or N, C, h, w) projected features + downsampled masks -> (N, 64, h, w) memory."""
        x = projected_features + self.mask_downsampler(mask_for_memory)
        return self.projection(self.memory_fuser(x))
