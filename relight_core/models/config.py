"""Network configurations: one dataclass, three named presets.

`paper` is exactly the released architecture (PAPER_MODEL.md section 2); `small` is the same
family, narrower and at lower resolution (quick on a CPU; the shipped default weights); `tiny`
exists for tests. Every size in the network is derived from these fields, so all three presets
share one code path.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class RelighterConfig:
    """Sizes of the relighting network. Every field is a plain value so the config is JSON-able."""

    name: str = "paper"
    """Preset name this config came from (informative only)."""

    output_colour: str = "display"
    """Encoding of the images the network renders, mapped to [-1, 1]: "display" (sRGB, what the
    released weights produce) or "linear" (scene-linear, what this project trains). The input
    crop is display sRGB either way."""

    # --- input and tri-planes -------------------------------------------------------------
    image_size: int = 512
    """Side of the aligned input crop in pixels. The tri-planes are image_size / 2 on a side."""
    plane_channels: int = 32
    """Channels per plane; a tri-plane tensor has 3 * plane_channels channels."""

    # --- albedo encoder: DeepLabV3 (ResNet-34 layout, output stride 8, no BatchNorm) ------
    resnet_widths: tuple[int, ...] = (64, 128, 256, 512)
    """Channels of the four ResNet stages (the stem has resnet_widths[0])."""
    resnet_blocks: tuple[int, ...] = (3, 4, 6, 3)
    """Basic blocks per ResNet stage."""
    aspp_channels: int = 256
    """Channels of the ASPP branches and of the DeepLab output."""
    aspp_rates: tuple[int, ...] = (12, 24, 36)
    """Dilation rates of the three atrous ASPP branches."""

    # --- albedo encoder: low-frequency transformer decoder (f_low) --------------------------
    low_dim: int = 1024
    """Token width of the f_low SegFormer blocks (must be divisible by 4 for PixelShuffle)."""
    low_heads: int = 4
    low_depth: int = 5
    low_mlp_ratio: int = 2
    low_conv_channels: int = 128
    """Width of the convolutions after the f_low transformer."""

    # --- albedo encoder: high-frequency CNN and the hybrid fuser ----------------------------
    high_stem_channels: int = 64
    """Width of the high-frequency CNN's 7x7 stem; its four 3x3 layers have 3*plane_channels."""
    hybrid_conv_channels: tuple[int, int] = (256, 128)
    """Widths of the fuser's convolutions before and after its transformer block."""
    hybrid_dim: int = 1024
    hybrid_heads: int = 2
    hybrid_mlp_ratio: int = 2
    hybrid_sr_ratio: int = 2

    # --- lighting and shading ---------------------------------------------------------------
    sh_dim: int = 9
    """Spherical-harmonics coefficients per light (second order, DPR convention)."""
    w_dim: int = 512
    """Width of the style vectors (lighting mapping output and super-resolution w)."""
    shading_channels: int = 128
    """Width of the shading encoder's feature path (LittleMapping and its two StyleGAN2 blocks)."""
    planes2ws_channels: tuple[int, int] = (128, 256)

    # --- decoders and renderer --------------------------------------------------------------
    decoder_hidden: int = 64
    neural_resolution: int = 64
    """Rays per side of the volume render; the super-resolution output is 8x this."""
    coarse_samples: int = 48
    fine_samples: int = 48
    ray_start: float = 2.25
    ray_end: float = 3.3
    box_warp: float = 1.0

    # --- super-resolution (EG3D SuperresolutionHybrid8XDC) -----------------------------------
    sr_channels: tuple[int, int] = (256, 128)
    """Widths of the two super-resolution blocks (at 4x and 8x the neural resolution)."""
    conv_clamp: float = 256.0

    # --- temporal network ---------------------------------------------------------------------
    temporal_window: int = 5
    """Number of previous frames the temporal network looks at."""
    temporal_ffn: int = 512
    temporal_layers: int = 4
    temporal_heads: int = 8
    """Heads of the released attention; they do not change the per-pixel computation."""

    @property
    def plane_resolution(self) -> int:
        return self.image_size // 2

    @property
    def triplane_channels(self) -> int:
        return 3 * self.plane_channels

    @property
    def output_resolution(self) -> int:
        return 8 * self.neural_resolution

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RelighterConfig":
        raw = json.loads(text)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ValueError(f"unknown RelighterConfig fields {unknown}; the file is from a newer version")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return cls(**values)


PRESETS: dict[str, RelighterConfig] = {
    "paper": RelighterConfig(),
    "small": RelighterConfig(
        name="small",
        output_colour="linear",
        image_size=256,
        resnet_widths=(32, 48, 64, 96),
        resnet_blocks=(2, 2, 2, 2),
        aspp_channels=96,
        low_dim=192,
        low_heads=4,
        low_depth=2,
        low_conv_channels=64,
        high_stem_channels=32,
        hybrid_conv_channels=(64, 48),
        hybrid_dim=192,
        hybrid_heads=2,
        w_dim=256,
        shading_channels=64,
        planes2ws_channels=(64, 128),
        neural_resolution=32,
        coarse_samples=32,
        fine_samples=32,
        sr_channels=(64, 32),
        temporal_ffn=128,
        temporal_layers=2,
    ),
    "tiny": RelighterConfig(
        name="tiny",
        output_colour="linear",
        image_size=64,
        plane_channels=8,
        resnet_widths=(8, 16, 16, 32),
        resnet_blocks=(1, 1, 1, 1),
        aspp_channels=16,
        aspp_rates=(2, 4, 6),
        low_dim=32,
        low_heads=2,
        low_depth=1,
        low_conv_channels=16,
        high_stem_channels=8,
        hybrid_conv_channels=(16, 16),
        hybrid_dim=32,
        hybrid_heads=2,
        w_dim=32,
        shading_channels=16,
        planes2ws_channels=(16, 16),
        decoder_hidden=16,
        neural_resolution=8,
        coarse_samples=8,
        fine_samples=8,
        sr_channels=(16, 8),
        temporal_window=3,
        temporal_ffn=16,
        temporal_layers=1,
        temporal_heads=2,
    ),
}


def get_config(name: str) -> RelighterConfig:
    """Return the preset called `name` ("paper", "small" or "tiny")."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model config {name!r}; choose one of {sorted(PRESETS)}") from None
