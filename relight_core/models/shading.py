"""Lighting side of the network: SH -> style vectors, and albedo tri-plane + light -> shading tri-plane.

PAPER_MODEL.md 2.4 (lighting mapping) and 2.5 (shading encoder). The shading tri-plane is the
albedo tri-plane plus the ToRGB outputs of two modulated StyleGAN2 blocks, so it starts from the
albedo geometry and only learns what the light changes.
"""

from __future__ import annotations

from torch import Tensor, nn

from .config import RelighterConfig
from .stylegan import EqualizedLinear, SynthesisBlock, normalize_2nd_moment

NUM_LIGHT_WS = 5
"""Style vectors the shading encoder consumes (two blocks of three, sharing the middle one)."""


class LightingMapping(nn.Module):
    """StyleGAN2 mapping network from 9 SH coefficients to 5 identical style vectors.

    embed (linear) -> RMS normalization -> one lrelu layer with lr_mul 0.01 -> broadcast.
    """

    def __init__(self, config: RelighterConfig):
        super().__init__()
        self.embed = EqualizedLinear(config.sh_dim, config.w_dim)
        self.fc = EqualizedLinear(config.w_dim, config.w_dim, lr_mul=0.01, activation="lrelu")

    def forward(self, sh: Tensor) -> Tensor:
        """sh [B, 9] (DPR convention, grey) -> ws_lit [B, 5, w_dim]."""
        w = self.fc(normalize_2nd_moment(self.embed(sh.to(self.embed.weight.dtype))))
        return w[:, None].expand(-1, NUM_LIGHT_WS, -1)


class ShadingEncoder(nn.Module):
    """Albedo tri-plane + lighting styles -> shading tri-plane (same layout as the albedo one)."""

    def __init__(self, config: RelighterConfig):
        super().__init__()
        planes, width = config.triplane_channels, config.shading_channels
        # "LittleMapping": lifts the tri-plane into the feature space the StyleGAN blocks expect.
        self.lift = nn.Sequential(
            nn.Conv2d(planes, width, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 1),
        )
        block = dict(
            image_channels=planes,
            w_dim=config.w_dim,
            resolution=config.plane_resolution,
            upsample=False,
            use_noise=True,
            conv_clamp=config.conv_clamp,
        )
        self.block0 = SynthesisBlock(width, width, **block)
        self.block1 = SynthesisBlock(width, width, **block)

    def forward(self, albedo_planes: Tensor, ws_lit: Tensor, noise_mode: str = "const") -> Tensor:
        """albedo_planes [B, 3C, R, R], ws_lit [B, 5, w_dim] -> shading planes [B, 3C, R, R]."""
        x = self.lift(albedo_planes)
        x, planes = self.block0(x, albedo_planes, ws_lit[:, 0:3], noise_mode)
        _, planes = self.block1(x, planes, ws_lit[:, 2:5], noise_mode)
        return planes
