"""SegFormer / Mix-Transformer (MiT) building blocks on a token grid.

Tokens are [B, N, C] with N = H * W in row-major grid order. The grid size (H, W) travels
alongside, because the Mix-FFN and the spatial-reduction conv work on the 2-D layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FLASH_MAX_HEAD_DIM = 256
"""Largest head size PyTorch's FlashAttention kernels take; larger heads fall back to the slower
memory-efficient kernel (the fuser's 2 heads of 512)."""


def tokens_to_grid(tokens: Tensor, hw: tuple[int, int]) -> Tensor:
    """[B, H*W, C] -> [B, C, H, W] (a proper transpose)."""
    b, _, c = tokens.shape
    return tokens.transpose(1, 2).reshape(b, c, hw[0], hw[1])


def grid_to_tokens(grid: Tensor) -> Tensor:
    """[B, C, H, W] -> [B, H*W, C]."""
    return grid.flatten(2).transpose(1, 2)


class OverlapPatchEmbed(nn.Module):
    """Strided conv + LayerNorm: [B, c_in, H, W] -> tokens [B, H'*W', dim] and (H', W')."""

    def __init__(self, in_channels: int, dim: int, kernel_size: int = 3, stride: int = 2):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        x = self.proj(x)
        return self.norm(grid_to_tokens(x)), (x.shape[2], x.shape[3])


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys/values may come from a spatially reduced grid.

    With reduction r > 1 the keys and values are computed from an r x r / r conv of the grid
    followed by LayerNorm, so N queries attend to N / r^2 tokens. [B, N, C] -> [B, N, C].
    """

    def __init__(self, dim: int, heads: int, reduction: int = 1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)  # output features: [keys | values], each head-major
        self.proj = nn.Linear(dim, dim)
        if reduction > 1:
            self.reduce = nn.Conv2d(dim, dim, reduction, stride=reduction)
            self.reduce_norm = nn.LayerNorm(dim)
        else:
            self.reduce = None
        self.matmul_attention = False
        """Attention as two bf16 GEMMs and a softmax instead of SDPA (set by fast.prepare_inference
        where the head is too large for FlashAttention: faster there, same maths)."""

    def _split_heads(self, x: Tensor) -> Tensor:
        """[B, N, C] -> [B, heads, N, C / heads]."""
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        b, n, c = x.shape
        source = x
        if self.reduce is not None:
            source = self.reduce_norm(grid_to_tokens(self.reduce(tokens_to_grid(x, hw))))
        keys, values = self.kv(source).chunk(2, dim=-1)
        attention = attention_by_matmul if self.matmul_attention else F.scaled_dot_product_attention
        out = attention(self._split_heads(self.q(x)), self._split_heads(keys), self._split_heads(values))
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


@torch.compiler.disable  # else Inductor pattern-matches it back into SDPA's memory-efficient kernel
def attention_by_matmul(query: Tensor, keys: Tensor, values: Tensor) -> Tensor:
    """softmax(Q K^T / sqrt(d)) V with the full score matrix: [B, h, N, d], [B, h, M, d] x2 -> [B, h, N, d].

    Same result as `F.scaled_dot_product_attention` (its default scale). For heads larger than
    FLASH_MAX_HEAD_DIM the two GEMMs run near tensor-core peak, while SDPA's fallback kernel does not.
    """
    scores = torch.matmul(query * query.shape[-1] ** -0.5, keys.transpose(-2, -1))
    return torch.matmul(scores.softmax(dim=-1), values)


class MixFFN(nn.Module):
    """fc1 -> depthwise 3x3 conv on the token grid -> GELU (erf) -> fc2. [B, N, C] -> [B, N, C]."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        x = self.dwconv(tokens_to_grid(self.fc1(x), hw))
        return self.fc2(F.gelu(grid_to_tokens(x)))


class MiTBlock(nn.Module):
    """Pre-norm SegFormer block: x + attn(LN(x)), then x + MixFFN(LN(x)). [B, N, C] -> [B, N, C]."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, reduction: int = 1):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EfficientSelfAttention(dim, heads, reduction)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = MixFFN(dim, dim * mlp_ratio)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        x = x + self.attn(self.norm1(x), hw)
        return x + self.ffn(self.norm2(x), hw)
