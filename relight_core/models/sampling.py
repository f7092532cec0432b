"""Bilinear sampling and resizing whose CUDA backward passes are deterministic.

`F.grid_sample` and antialiased `F.interpolate` accumulate their gradients with atomic adds on
CUDA, so two identical training runs drift apart in the last bits, and PyTorch refuses them under
`torch.use_deterministic_algorithms(True)`. While that mode is on (training with
`deterministic = true`), the functions here switch to formulations PyTorch runs deterministically
(gathers, whose gradient is a deterministic scatter in that mode, and matrix products). Otherwise
they are the plain PyTorch calls: inference and CPU training are unchanged.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor


def _deterministic_cuda(x: Tensor) -> bool:
    return x.is_cuda and torch.are_deterministic_algorithms_enabled()


def grid_sample(image: Tensor, grid: Tensor, padding_mode: str = "zeros") -> Tensor:
    """`F.grid_sample(image, grid, mode="bilinear", padding_mode, align_corners=False)`.

    image [N, C, H, W], grid [N, Ho, Wo, 2] in [-1, 1] (x, y) -> [N, C, Ho, Wo].
    padding_mode "zeros" or "border".
    """
    if not _deterministic_cuda(image):
        return F.grid_sample(image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return grid_sample_by_gathers(image, grid, padding_mode)


def grid_sample_by_gathers(image: Tensor, grid: Tensor, padding_mode: str = "zeros") -> Tensor:
    """The same bilinear lookup as four gathers of the corner pixels (any device)."""
    batch, channels, height, width = image.shape
    x = ((grid[..., 0] + 1) * width - 1) / 2  # pixel coordinates, align_corners=False
    y = ((grid[..., 1] + 1) * height - 1) / 2
    if padding_mode == "border":
        x, y = x.clamp(0, width - 1), y.clamp(0, height - 1)
    elif padding_mode != "zeros":
        raise ValueError(f"padding_mode {padding_mode!r}: only 'zeros' and 'border'")
    x0, y0 = x.floor(), y.floor()
    flat = image.reshape(batch, channels, height * width)
    out = image.new_zeros(batch, channels, x.shape[1] * x.shape[2])
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        xi, yi = x0 + dx, y0 + dy
        weight = (1 - (x - xi).abs()) * (1 - (y - yi).abs())
        inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
        index = (yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)).long().reshape(batch, 1, -1)
        taps = flat.gather(2, index.expand(-1, channels, -1))
        out = out + taps * (weight * inside).reshape(batch, 1, -1)
    return out.reshape(batch, channels, *x.shape[1:])


def resize_bilinear_antialias(image: Tensor, size: int) -> Tensor:
    """`F.interpolate(image, (size, size), mode="bilinear", align_corners=False, antialias=True)`
    for a square image [N, C, S, S]."""
    if not _deterministic_cuda(image):
        return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resize_by_matrix(image, size)


def resize_by_matrix(image: Tensor, size: int) -> Tensor:
    """The same resize as two matrix products, rows then columns (any device)."""
    matrix = _resize_matrix(image.shape[-1], size, str(image.device)).to(image.dtype)
    return matrix @ image @ matrix.T


@functools.cache
def _resize_matrix(source: int, size: int, device: str) -> Tensor:
    """The [size, source] matrix of the separable antialiased bilinear resize, built by resizing the
    identity (the filter is linear, so its columns are the resized unit impulses)."""
    eye = torch.eye(source, dtype=torch.float64)[None, None]
    columns = F.interpolate(eye, size=(size, source), mode="bilinear", align_corners=False, antialias=True)
    return columns[0, 0].float().to(device)
