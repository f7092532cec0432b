"""Albedo encoder: portrait image -> albedo tri-plane (the "dual encoder" of the paper, after LP3D).

Sizes for the `paper` preset (S = image_size = 512, P = 3 * plane_channels = 96):

* input        cat(image, X, Y)                                      [B, 5, S, S]
* low branch   DeepLabV3 (dilated ResNet + ASPP)                     [B, 256, S/8, S/8]
               -> LowFrequencyDecoder (MiT blocks + convs) = f_low   [B, P, S/2, S/2]
* high branch  HighFrequencyEncoder (plain CNN)          = f_high    [B, P, S/2, S/2]
* fuser        HybridFuser(f_low, f_high)                = planes    [B, P, S/2, S/2]

Both transformer decoders reproduce a quirk of the release: their [B, N, C] tokens are
reinterpreted as a [B, C, H, W] map by a raw reshape of the memory, without transposing tokens
and channels. Weights trained with the release depend on it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import RelighterConfig
from .deeplab import ASPP, DilatedResNet
from .transformer import MiTBlock, OverlapPatchEmbed

Taps = dict[str, Tensor]
"""Named intermediates collected by `forward_debug` (None in the plain forward)."""


def tokens_as_channels(tokens: Tensor, hw: tuple[int, int]) -> Tensor:
    """The release's raw `.view(B, C, H, W)` of [B, H*W, C] tokens (no transpose)."""
    return tokens.reshape(tokens.shape[0], tokens.shape[2], hw[0], hw[1])


def coordinate_channels(image: Tensor) -> Tensor:
    """[B, 3, H, W] -> [B, 5, H, W]: the image followed by X (along width) and Y (along height)."""
    b, _, h, w = image.shape
    x = torch.linspace(-1.0, 1.0, w, device=image.device, dtype=image.dtype).expand(h, w)
    y = torch.linspace(-1.0, 1.0, h, device=image.device, dtype=image.dtype)[:, None].expand(h, w)
    return torch.cat([image, torch.stack([x, y]).expand(b, 2, h, w)], dim=1)


def _conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class LowFrequencyDecoder(nn.Module):
    """MiT blocks on the DeepLab features, then upsampling convs (the release's `Decoder_f_low`).

    [B, aspp_channels, S/8, S/8] -> f_low [B, P, S/2, S/2]
    """

    def __init__(self, cfg: RelighterConfig):
        super().__init__()
        dim, width = cfg.low_dim, cfg.low_conv_channels
        self.patch_embed = OverlapPatchEmbed(cfg.aspp_channels, dim)
        self.blocks = nn.ModuleList(MiTBlock(dim, cfg.low_heads, cfg.low_mlp_ratio) for _ in range(cfg.low_depth))
        self.conv1 = _conv3x3(dim // 4, width)
        self.conv2 = _conv3x3(width, width)
        self.conv3 = _conv3x3(width, cfg.triplane_channels)

    def forward(self, features: Tensor, taps: Taps | None = None) -> Tensor:
        tokens, hw = self.patch_embed(features)
        if taps is not None:
            taps["flow_tokens_in"] = tokens
        for block in self.blocks:
            tokens = block(tokens, hw)
        if taps is not None:
            taps["flow_tokens_out"] = tokens
        x = F.pixel_shuffle(tokens_as_channels(tokens, hw), 2)
        # `UpsamplingBilinear2d` in the release, hence align_corners=True.
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        x = F.relu(self.conv1(x))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.conv3(F.relu(self.conv2(x)))


class HighFrequencyEncoder(nn.Module):
    """7x7/2 conv then four 3x3 convs, each followed by LeakyReLU(0.01) (`Encoder_f_high`).

    [B, 5, S, S] -> f_high [B, P, S/2, S/2]
    """

    def __init__(self, cfg: RelighterConfig):
        super().__init__()
        planes = cfg.triplane_channels
        self.stem = nn.Conv2d(5, cfg.high_stem_channels, 7, stride=2, padding=3)
        widths = [cfg.high_stem_channels] + [planes] * 4
        self.convs = nn.ModuleList(_conv3x3(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: Tensor) -> Tensor:
        x = F.leaky_relu(self.stem(x), 0.01)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.01)
        return x


class HybridFuser(nn.Module):
    """Fuses f_low and f_high through convs, one spatially-reduced MiT block and more convs
    (the release's `Decoder_f_hybrid`).

    f_low, f_high [B, P, S/2, S/2] -> albedo tri-plane [B, P, S/2, S/2]
    """

    def __init__(self, cfg: RelighterConfig):
        super().__init__()
        planes, dim = cfg.triplane_channels, cfg.hybrid_dim
        wide, narrow = cfg.hybrid_conv_channels
        self.pre_convs = nn.ModuleList([_conv3x3(2 * planes, wide), _conv3x3(wide, narrow)])
        self.patch_embed = OverlapPatchEmbed(narrow, dim)
        self.block = MiTBlock(dim, cfg.hybrid_heads, cfg.hybrid_mlp_ratio, cfg.hybrid_sr_ratio)
        widths = [planes + dim // 4, wide, narrow, narrow, planes]
        self.post_convs = nn.ModuleList(_conv3x3(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, f_low: Tensor, f_high: Tensor, taps: Taps | None = None) -> Tensor:
        x = torch.cat([f_low, f_high], dim=1)
        for conv in self.pre_convs:
            x = F.leaky_relu(conv(x), 0.01)
        tokens, hw = self.patch_embed(x)
        tokens = self.block(tokens, hw)
        if taps is not None:
            taps["hybrid_tokens"] = tokens
        x = torch.cat([f_low, F.pixel_shuffle(tokens_as_channels(tokens, hw), 2)], dim=1)
        last = len(self.post_convs) - 1
        for index, conv in enumerate(self.post_convs):
            x = conv(x)
            if index < last:  # no activation on the tri-plane output
                x = F.leaky_relu(x, 0.01)
        return x


class AlbedoEncoder(nn.Module):
    """Image in [-1, 1] -> albedo tri-plane.

    [B, 3, S, S] -> [B, 3 * plane_channels, S/2, S/2] in the weights' dtype (plane k = channels
    plane_channels*k ... plane_channels*(k+1)-1). S must be divisible by 16.
    """

    def __init__(self, cfg: RelighterConfig):
        super().__init__()
        if cfg.image_size % 16:
            raise ValueError(f"image_size {cfg.image_size} must be divisible by 16")
        self.cfg = cfg
        self.backbone = DilatedResNet(5, cfg.resnet_widths, cfg.resnet_blocks)
        self.aspp = ASPP(cfg.resnet_widths[-1], cfg.aspp_channels, cfg.aspp_rates)
        self.low_decoder = LowFrequencyDecoder(cfg)
        self.high_encoder = HighFrequencyEncoder(cfg)
        self.fuser = HybridFuser(cfg)

    def forward(self, image: Tensor) -> Tensor:
        return self._encode(image, None)

    def forward_debug(self, image: Tensor) -> Taps:
        """Like `forward`, but returns the named intermediates as well: img_with_coord,
        deeplab_out, flow_tokens_in, flow_tokens_out, f_low, f_high, hybrid_tokens, albedo_planes."""
        taps: Taps = {}
        taps["albedo_planes"] = self._encode(image, taps)
        return taps

    def _encode(self, image: Tensor, taps: Taps | None) -> Tensor:
        size = self.cfg.image_size
        if image.ndim != 4 or image.shape[1:] != (3, size, size):
            raise ValueError(f"expected an image batch [B, 3, {size}, {size}], got {tuple(image.shape)}")
        # The weights' dtype: float32 normally, bfloat16 after fast.prepare_inference.
        dtype = self.backbone.stem.weight.dtype
        x = coordinate_channels(image.to(dtype))
        # The release runs the low-frequency branch in fp32 even under autocast (in the weights'
        # dtype here, which is fp32 unless the whole model was converted).
        with torch.autocast(device_type=image.device.type, enabled=False):
            features = self.aspp(self.backbone(x))
            f_low = self.low_decoder(features, taps)
        f_high = self.high_encoder(x)
        planes = self.fuser(f_low, f_high, taps)
        if taps is not None:
            taps.update(img_with_coord=x, deeplab_out=features, f_low=f_low, f_high=f_high)
        return planes.to(dtype)


_OFFICIAL_MIT_BLOCK = {  # official MiT-block sub-key -> ours
    r"norm1": "norm1",
    r"attn\.q": "attn.q",
    r"attn\.kv": "attn.kv",
    r"attn\.proj": "attn.proj",
    r"attn\.sr": "attn.reduce",
    r"attn\.norm": "attn.reduce_norm",
    r"norm2": "norm2",
    r"mlp\.fc1": "ffn.fc1",
    r"mlp\.dwconv\.dwconv": "ffn.dwconv",
    r"mlp\.fc2": "ffn.fc2",
}

_MAX_OFFICIAL_VIT_BLOCKS = 16  # the release has vit1..vit5; extra rules are harmless


def official_key_rules() -> list[tuple[str, str]]:
    """Regex (pattern, replacement) pairs: official albedo-encoder state-dict keys -> ours.

    Apply the first pattern that `re.fullmatch`es a key with `re.sub` on the whole key. The
    results are full keys of the top-level model, where this encoder is `albedo_encoder`.
    """
    src, dst = r"encoders\.", "albedo_encoder."
    rules = [
        # DeepLabV3 backbone: encoder.layerN.i.* -> backbone.stages.(N-1).i.*
        (src + r"deeplabv3\.model\.encoder\.conv1\.weight", dst + "backbone.stem.weight"),
        *[
            (src + rf"deeplabv3\.model\.encoder\.layer{n}\.(\d+)\.{old}\.weight",
             dst + rf"backbone.stages.{n - 1}.\1.{new}.weight")
            for n in range(1, 5)
            for old, new in (("conv1", "conv1"), ("conv2", "conv2"), (r"downsample\.0", "shortcut"))
        ],
        # ASPP: convs.0..3 are the 1x1 and atrous branches, convs.4 the pooling branch.
        (src + r"deeplabv3\.model\.decoder\.0\.convs\.([0-3])\.0\.weight", dst + r"aspp.branches.\1.weight"),
        (src + r"deeplabv3\.model\.decoder\.0\.convs\.4\.1\.weight", dst + "aspp.pool_conv.weight"),
        (src + r"deeplabv3\.model\.decoder\.0\.project\.0\.weight", dst + "aspp.project.weight"),
        (src + r"deeplabv3\.model\.decoder\.1\.weight", dst + "aspp.refine.weight"),
        # Low-frequency decoder.
        (src + r"decoder_f_low\.input_layer\.(proj|norm)\.(weight|bias)", dst + r"low_decoder.patch_embed.\1.\2"),
        *[
            (src + rf"decoder_f_low\.convs\.{old}\.(weight|bias)", dst + rf"low_decoder.{new}.\1")
            for old, new in ((2, "conv1"), (5, "conv2"), (7, "conv3"))
        ],
        # High-frequency CNN: Sequential indices 0, 2, 4, 6, 8 (activations in between).
        (src + r"encoder_f_high\.layers\.0\.(weight|bias)", dst + r"high_encoder.stem.\1"),
        *[
            (src + rf"encoder_f_high\.layers\.{2 * i + 2}\.(weight|bias)", dst + rf"high_encoder.convs.{i}.\1")
            for i in range(4)
        ],
        # Hybrid fuser.
        *[
            (src + rf"decoder_f_hybrid\.layers1\.{2 * i}\.(weight|bias)", dst + rf"fuser.pre_convs.{i}.\1")
            for i in range(2)
        ],
        *[
            (src + rf"decoder_f_hybrid\.layers2\.{2 * i}\.(weight|bias)", dst + rf"fuser.post_convs.{i}.\1")
            for i in range(4)
        ],
        (src + r"decoder_f_hybrid\.embed\.(proj|norm)\.(weight|bias)", dst + r"fuser.patch_embed.\1.\2"),
    ]
    for old, new in _OFFICIAL_MIT_BLOCK.items():
        rules += [
            (src + rf"decoder_f_low\.vit{n}\.{old}\.(weight|bias)", dst + rf"low_decoder.blocks.{n - 1}.{new}.\1")
            for n in range(1, _MAX_OFFICIAL_VIT_BLOCKS + 1)
        ]
        rules.append((src + rf"decoder_f_hybrid\.vit\.{old}\.(weight|bias)", dst + rf"fuser.block.{new}.\1"))
    return rules
