"""Super-resolution from the 8x smaller volume render (EG3D SuperresolutionHybrid8XDC).

PAPER_MODEL.md 2.3 and 2.10. The style vector is w_avg + Planes2WS(albedo planes): a learned
constant plus a small CNN summary of the subject, so the super-resolution adapts to each person.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import sampling
from .config import RelighterConfig
from .stylegan import SynthesisBlock


class PlanesToStyle(nn.Module):
    """Albedo tri-plane -> the super-resolution style vector w [B, w_dim] ("Planes2WS" + w_avg)."""

    def __init__(self, config: RelighterConfig):
        super().__init__()
        first, second = config.planes2ws_channels
        self.convs = nn.Sequential(
            nn.Conv2d(config.triplane_channels, first, 3, padding=1),
            nn.LeakyReLU(0.01),
            nn.Conv2d(first, second, 3, padding=1),
            nn.LeakyReLU(0.01),
        )
        self.linear = nn.Linear(second, config.w_dim)
        self.register_buffer("w_avg", torch.zeros(config.w_dim))

    def forward(self, albedo_planes: Tensor) -> Tensor:
        """albedo_planes [B, 3C, R, R] -> w [B, w_dim]."""
        pooled = self.convs(albedo_planes).mean(dim=(2, 3))
        return self.w_avg + self.linear(pooled)


class SuperResolution(nn.Module):
    """Feature image [B, C, N, N] (N = neural resolution) -> RGB image [B, 3, 8N, 8N] in about [-1, 1]."""

    def __init__(self, config: RelighterConfig):
        super().__init__()
        first, second = config.sr_channels
        n = config.neural_resolution
        block = dict(image_channels=3, w_dim=config.w_dim, upsample=True, use_noise=False, conv_clamp=config.conv_clamp)
        self.block0 = SynthesisBlock(config.plane_channels, first, resolution=4 * n, **block)
        self.block1 = SynthesisBlock(first, second, resolution=8 * n, **block)
        self.input_resolution = 2 * n

    def forward(self, features: Tensor, w: Tensor) -> Tensor:
        """features [B, C, N, N] (first 3 channels are the raw RGB), w [B, w_dim]."""
        x = sampling.resize_bilinear_antialias(features, self.input_resolution)
        x = x.to(self.block0.conv0.weight.dtype)  # the renderer's features are fp32; the weights may be bf16
        rgb = x[:, :3]
        ws = w[:, None].expand(-1, 3, -1)
        x, rgb = self.block0(x, rgb, ws, noise_mode="none")
        _, rgb = self.block1(x, rgb, ws, noise_mode="none")
        return rgb
