"""Temporal consistency network, written as the per-pixel computation it really is (PAPER_MODEL.md 2.11).

The release calls `nn.MultiheadAttention` on a [1, H*W, C] tensor in sequence-first layout, so
every pixel attends only to itself: softmax over one key is 1 and attention reduces to
out_proj(W_v x + b_v). The query and key projections never matter. Here that is one linear "mix"
per attention block (W_o W_v folded at conversion), and the whole network is an MLP applied to
each tri-plane texel's stack of the previous frames.

Tokens are [P, C] with P = B*H*W texels; the window is frame-major: channel = C*frame + c,
oldest frame first.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import RelighterConfig


class MixBlock(nn.Module):
    """Post-norm block: x = LN(x + mix(source)); x = LN(x + FFN(x)). source is x (self) or the other stream (cross)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.mix = nn.Linear(channels, channels)
        self.norm1 = nn.LayerNorm(channels)
        self.ffn = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        self.norm2 = nn.LayerNorm(channels)

    def forward(self, x: Tensor, source: Tensor) -> Tensor:
        x = self.norm1(x + self.mix(source))
        return self.norm2(x + self.ffn(x))


class TemporalLayer(nn.Module):
    """Self blocks for each stream, then one cross block used in both directions."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.albedo_self = MixBlock(channels, hidden)
        self.shading_self = MixBlock(channels, hidden)
        self.cross = MixBlock(channels, hidden)

    def forward(self, albedo: Tensor, shading: Tensor) -> tuple[Tensor, Tensor]:
        albedo = self.albedo_self(albedo, albedo)
        shading = self.shading_self(shading, shading)
        shading = self.cross(shading, albedo)
        albedo = self.cross(albedo, shading)
        return albedo, shading


class StreamHead(nn.Module):
    """Per-frame weights from the stream's tokens; residual = sum over frames of weight x buffered plane."""

    def __init__(self, channels: int, window: int):
        super().__init__()
        self.expand = nn.Linear(channels, channels * window)
        self.weigh = nn.Linear(channels, channels)
        self.window = window

    def forward(self, tokens: Tensor, frames: Tensor) -> Tensor:
        """tokens [P, C], frames [P, window*C] -> residual [P, C]."""
        per_frame = torch.relu(self.expand(tokens).unflatten(-1, (self.window, -1)))
        return (self.weigh(per_frame) * frames.unflatten(-1, (self.window, -1))).sum(dim=1)


class TemporalNet(nn.Module):
    """Windows of previous albedo and shading tri-planes -> residuals for the current frame."""

    def __init__(self, config: RelighterConfig):
        super().__init__()
        channels, window = config.triplane_channels, config.temporal_window
        self.window = window
        self.combine = nn.Linear(window * channels, channels)  # shared by both streams
        self.albedo_in = nn.Linear(channels, channels)
        self.shading_in = nn.Linear(channels, channels)
        self.layers = nn.ModuleList(TemporalLayer(channels, config.temporal_ffn) for _ in range(config.temporal_layers))
        self.albedo_head = StreamHead(channels, window)
        self.shading_head = StreamHead(channels, window)

    def is_silent(self) -> bool:
        """Whether both output layers are exactly zero (an untrained network as shipped): every
        residual is then 0 and running the network can be skipped."""
        heads = (self.albedo_head.weigh, self.shading_head.weigh)
        return not any(p.any() for head in heads for p in head.parameters())

    def forward(self, albedo_window: Tensor, shading_window: Tensor) -> tuple[Tensor, Tensor]:
        """albedo_window, shading_window [B, window*3C, R, R] -> residuals [B, 3C, R, R] each."""
        batch, _, height, width = albedo_window.shape
        residuals = self.forward_tokens(planes_to_tokens(albedo_window), planes_to_tokens(shading_window))
        return tuple(tokens_to_planes(r, batch, height, width) for r in residuals)

    def forward_tokens(self, albedo_frames: Tensor, shading_frames: Tensor) -> tuple[Tensor, Tensor]:
        """The network on texel tokens: albedo_frames, shading_frames [P, window*C] -> residuals [P, C] each.

        `fast.FastVideoRelighter` keeps its windows in this layout (and may torch.compile this method).
        """
        albedo = self.albedo_in(torch.relu(self.combine(albedo_frames)))
        shading = self.shading_in(torch.relu(self.combine(shading_frames)))
        for layer in self.layers:
            albedo, shading = layer(albedo, shading)
        return self.albedo_head(albedo, albedo_frames), self.shading_head(shading, shading_frames)


def planes_to_tokens(planes: Tensor) -> Tensor:
    """[B, K, H, W] -> [B*H*W, K] texel tokens (a view when the planes are channels-last)."""
    return planes.permute(0, 2, 3, 1).reshape(-1, planes.shape[1])


def tokens_to_planes(tokens: Tensor, batch: int, height: int, width: int) -> Tensor:
    """[B*H*W, K] -> [B, K, H, W] (a channels-last view of the tokens)."""
    return tokens.reshape(batch, height, width, -1).permute(0, 3, 1, 2)
