"""StyleGAN2 building blocks as the released network uses them (PAPER_MODEL.md 2.4, 2.5, 2.10).

Layers keep their weights *raw* and apply the equalized-learning-rate gains at run time, exactly
like StyleGAN2: a fully connected layer multiplies its weight by lr_mul / sqrt(fan_in) and its bias
by lr_mul. Keeping raw weights means a released checkpoint converts by renaming alone, and our own
training keeps StyleGAN's well-behaved learning dynamics.

All functions take and return NCHW float tensors; style vectors are [B, w_dim].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_GAIN = math.sqrt(2.0)
"""Gain StyleGAN applies after leaky ReLU (slope 0.2) so activations keep unit variance."""


def fir_filter(device: torch.device | None = None) -> Tensor:
    """The [1,3,3,1] binomial FIR used for 2x upsampling, as a normalized [4, 4] kernel."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device)
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


def blur(x: Tensor, kernel: Tensor, pad: tuple[int, int, int, int], gain: float) -> Tensor:
    """Depthwise FIR filter of x [B, C, H, W] after zero padding (left, right, top, bottom)."""
    channels = x.shape[1]
    weight = (kernel * gain).to(x.dtype).flip([0, 1])[None, None].repeat(channels, 1, 1, 1)
    return F.conv2d(F.pad(x, pad), weight, groups=channels)


def upsample2x(x: Tensor, kernel: Tensor) -> Tensor:
    """Zero-insertion 2x upsampling followed by the FIR (StyleGAN's `upsample2d`). [B,C,H,W] -> 2H."""
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, h, 2, w, 2)
    up[:, :, :, 0, :, 0] = x
    return blur(up.reshape(b, c, 2 * h, 2 * w), kernel, (2, 1, 2, 1), gain=4.0)


def upsample_conv_subpixel(x: Tensor, weight: Tensor, kernel: Tensor, groups: int) -> Tensor:
    """`blur(conv_transpose2d(x, w, stride=2), kernel, (1, 1, 1, 1), gain=4)` as one plain conv + pixel shuffle.

    x [1, G*Cin, H, W]; weight [G, Cout, Cin, 3, 3] (one group per batch item) -> [1, G*Cout, 2H, 2W].
    Both steps are linear, so the 3x3 stride-2 transposed conv followed by the 4x4 FIR is one
    transposed conv with the 6x6 kernel K = W (*) 4*FIR; output pixel 2q+r only meets taps
    4+r, 2+r, r of K from inputs q-1, q, q+1. So each of the four output phases is a 3x3 conv at the
    input resolution: one conv with 4*Cout outputs, then pixel_shuffle. This drops the blur pass
    over the upsampled activations (a slow depthwise conv) and the zero-inserted intermediate.
    """
    g, c_out, c_in = weight.shape[:3]
    folded = F.conv2d(F.pad(weight.reshape(-1, 1, 3, 3), (3, 3, 3, 3)), (kernel * 4.0).to(weight.dtype)[None, None])
    # Taps 4+r, 2+r, r of K are taps 1-r, 3-r, 5-r of K flipped (slicing has no negative steps;
    # no index tensors either: creating one would copy from the host inside a CUDA graph capture).
    flipped = folded.reshape(g, c_out, c_in, 6, 6).flip([-2, -1])
    phases = torch.stack([torch.stack([flipped[..., 1 - ry::2, 1 - rx::2] for rx in (0, 1)], dim=3)
                          for ry in (0, 1)], dim=3)
    # [G, Cout, Cin, ry, rx, 3, 3] -> [G*Cout*4, Cin, 3, 3], channel (g, cout, ry, rx) as pixel_shuffle reads it
    phases = phases.permute(0, 1, 3, 4, 2, 5, 6).reshape(g * c_out * 4, c_in, 3, 3)
    return F.pixel_shuffle(F.conv2d(x, phases, padding=1, groups=groups), 2)


def leaky_relu_clamped(x: Tensor, clamp: float | None) -> Tensor:
    """StyleGAN's activation: leaky ReLU 0.2 with gain sqrt(2), then an optional clamp."""
    x = F.leaky_relu(x, 0.2) * LRELU_GAIN
    return x.clamp(-clamp, clamp) if clamp is not None else x


class EqualizedLinear(nn.Module):
    """Fully connected layer with run-time weight gain (StyleGAN's FullyConnectedLayer).

    Args:
        in_features, out_features: sizes.
        lr_mul: learning-rate multiplier; the weight gain is lr_mul / sqrt(in_features).
        bias_init: initial bias value (1 for modulation affines, so styles start near 1).
        activation: "linear" or "lrelu" (leaky ReLU 0.2 with gain sqrt(2)).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        lr_mul: float = 1.0,
        bias_init: float = 0.0,
        activation: str = "linear",
    ):
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"activation must be 'linear' or 'lrelu', got {activation!r}")
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return leaky_relu_clamped(x, None) if self.activation == "lrelu" else x


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale each row of x [B, C] to unit root-mean-square."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class ModulatedConv(nn.Module):
    """Style-modulated 3x3 convolution with demodulation, noise, bias, lrelu and clamp.

    StyleGAN2's SynthesisLayer. With `upsample=True` it is the transposed stride-2 convolution
    followed by the [1,3,3,1] FIR (gain 4), which doubles the resolution.

    Args:
        in_channels, out_channels: sizes.
        w_dim: style vector width.
        resolution: output resolution (sets the size of the constant noise image).
        upsample: double the resolution.
        use_noise: own a constant noise image and a learned noise strength.
        conv_clamp: clamp of the activations (None: no clamp).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        upsample: bool = False,
        use_noise: bool = True,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.upsample = upsample
        self.conv_clamp = conv_clamp
        self.use_noise = use_noise
        if use_noise:
            self.noise_strength = nn.Parameter(torch.zeros([]))
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
        if upsample:
            self.register_buffer("fir", fir_filter(), persistent=False)
        self.subpixel_upsample = False
        """Upsample by `upsample_conv_subpixel` (set by fast.prepare_inference; same maths, faster)."""

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "const") -> Tensor:
        """x [B, Cin, H, W], w [B, w_dim]; noise_mode "const", "random" or "none"."""
        batch, in_channels, height, width = x.shape
        styles = self.affine(w)  # [B, Cin]
        weight = self.weight[None] * styles[:, None, :, None, None]  # [B, Cout, Cin, 3, 3]
        weight = weight * (weight.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
        # Grouped convolution: one group per batch item carries its own modulated weights.
        x = x.reshape(1, batch * in_channels, height, width)
        if self.upsample and self.subpixel_upsample:
            x = upsample_conv_subpixel(x, weight, self.fir, batch)
        elif self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * in_channels, -1, 3, 3)
            x = F.conv_transpose2d(x, weight, stride=2, groups=batch)
            x = blur(x, self.fir, (1, 1, 1, 1), gain=4.0)
        else:
            x = F.conv2d(x, weight.reshape(-1, in_channels, 3, 3), padding=1, groups=batch)
        x = x.reshape(batch, -1, *x.shape[2:])
        x = x + self._noise(x, noise_mode)
        return leaky_relu_clamped(x + self.bias[None, :, None, None], self.conv_clamp)

    def _noise(self, x: Tensor, noise_mode: str) -> Tensor | float:
        if not self.use_noise or noise_mode == "none":
            return 0.0
        if noise_mode == "const":
            return self.noise_const * self.noise_strength
        if noise_mode == "random":
            return torch.randn_like(x[:, :1]) * self.noise_strength
        raise ValueError(f"noise_mode must be 'const', 'random' or 'none', got {noise_mode!r}")


class ToRGB(nn.Module):
    """Style-modulated 1x1 convolution without demodulation (StyleGAN2's ToRGBLayer)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)
        self.conv_clamp = conv_clamp

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """x [B, Cin, H, W], w [B, w_dim] -> [B, Cout, H, W]."""
        styles = self.affine(w) * self.weight_gain  # [B, Cin]
        weight = self.weight[None, :, :, 0, 0] * styles[:, None, :]  # [B, Cout, Cin]
        x = torch.einsum("boi,bihw->bohw", weight, x) + self.bias[None, :, None, None]
        return x.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else x


class SynthesisBlock(nn.Module):
    """Two modulated convolutions and a skip ToRGB added onto a running image ("skip" architecture).

    Uses three style vectors: conv0, conv1 and the ToRGB. With `upsample`, conv0 doubles the
    resolution and the running image is FIR-upsampled before the ToRGB output is added.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_channels: int,
        w_dim: int,
        resolution: int,
        upsample: bool,
        use_noise: bool,
        conv_clamp: float | None,
    ):
        super().__init__()
        conv = dict(w_dim=w_dim, resolution=resolution, use_noise=use_noise, conv_clamp=conv_clamp)
        self.conv0 = ModulatedConv(in_channels, out_channels, upsample=upsample, **conv)
        self.conv1 = ModulatedConv(out_channels, out_channels, **conv)
        self.torgb = ToRGB(out_channels, image_channels, w_dim, conv_clamp=conv_clamp)
        self.upsample = upsample
        if upsample:
            self.register_buffer("fir", fir_filter(), persistent=False)

    def forward(self, x: Tensor, image: Tensor, ws: Tensor, noise_mode: str) -> tuple[Tensor, Tensor]:
        """x [B, Cin, H, W], image [B, Cimg, H, W], ws [B, 3, w_dim] -> (features, image)."""
        x = self.conv0(x, ws[:, 0], noise_mode)
        x = self.conv1(x, ws[:, 1], noise_mode)
        if self.upsample:
            image = upsample2x(image, self.fir)
        return x, image + self.torgb(x, ws[:, 2])
