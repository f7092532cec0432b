"""Training losses that need no pretrained network (none can be downloaded here).

Images are NCHW; colour targets are scene-linear in [0, 1] unless said otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import sampling


def srgb_encode(linear: Tensor) -> Tensor:
    """Differentiable sRGB transfer function of linear values (clamped to [0, 1])."""
    x = linear.clamp(0, 1)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(1e-8) ** (1 / 2.4) - 0.055)


def masked_l1(prediction: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean absolute error, over the pixels where mask > 0 when a mask [B, 1, H, W] is given."""
    error = (prediction - target).abs()
    if mask is None:
        return error.mean()
    weight = mask.expand_as(error)
    return (error * weight).sum() / weight.sum().clamp_min(1.0)


def ssim(x: Tensor, y: Tensor, window: int = 7) -> Tensor:
    """Mean structural similarity of two images in [0, 1] with a box window."""
    c1, c2 = 0.01**2, 0.03**2
    pool = lambda t: F.avg_pool2d(t, window, 1, window // 2, count_include_pad=False)  # noqa: E731
    mx, my = pool(x), pool(y)
    vx, vy, cov = pool(x * x) - mx**2, pool(y * y) - my**2, pool(x * y) - mx * my
    return (((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))).mean()


def structure_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """1 - SSIM plus the L1 of image gradients, on sRGB-encoded colour (the perceptual substitute)."""
    x, y = srgb_encode(prediction), srgb_encode(target)
    gradients = sum(masked_l1(torch.diff(x, dim=d), torch.diff(y, dim=d)) for d in (2, 3))
    return (1 - ssim(x, y)) + gradients


class PatchDiscriminator(nn.Module):
    """A small PatchGAN on sRGB colour in [-1, 1]; returns logits and its intermediate features."""

    def __init__(self, channels: int = 32, layers: int = 4):
        super().__init__()
        blocks, width = [], 3
        for i in range(layers):
            out = channels * 2 ** min(i, 3)
            blocks.append(nn.Sequential(nn.utils.parametrizations.spectral_norm(nn.Conv2d(width, out, 4, 2, 1)), nn.LeakyReLU(0.2)))
            width = out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.utils.parametrizations.spectral_norm(nn.Conv2d(width, 1, 3, 1, 1))

    def forward(self, image: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        x = image
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return self.head(x), features


def generator_adversarial(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss."""
    return F.softplus(-fake_logits).mean()


def discriminator_adversarial(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Non-saturating discriminator loss."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def feature_matching(fake: list[Tensor], real: list[Tensor]) -> Tensor:
    """L1 between discriminator features of the output and of the ground truth."""
    return sum((f - r.detach()).abs().mean() for f, r in zip(fake, real)) / len(fake)


def temporal_l1(current: Tensor, previous_warped: Tensor, valid: Tensor) -> Tensor:
    """Warping error: L1 between a frame and the previous output warped onto it, where valid."""
    return masked_l1(current, previous_warped, valid)


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp image [B, C, H, W] by flow [B, 2, H, W] (pixels; target -> source offsets)."""
    _, _, height, width = image.shape
    ys, xs = torch.meshgrid(torch.arange(height, device=image.device), torch.arange(width, device=image.device), indexing="ij")
    x = (xs[None] + flow[:, 0]) * (2 / width) - 1 + 1 / width
    y = (ys[None] + flow[:, 1]) * (2 / height) - 1 + 1 / height
    return sampling.grid_sample(image, torch.stack([x, y], -1), padding_mode="border")
