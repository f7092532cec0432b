"""Helpers shared by the io tests: deterministic pixels and small real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def gradient(h: int = 24, w: int = 32, channels: int = 3, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    """Deterministic test pixels ``[H, W, C]`` covering the dtype's range."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.uniform(-0.1, 4.0, size=(h, w, channels)).astype(dtype)
    top = np.iinfo(dtype).max
    return rng.integers(0, top + 1, size=(h, w, channels), dtype=np.int64).astype(dtype)


def save_png8(path: Path, pixels: np.ndarray) -> Path:
    """8-bit PNG through Pillow (L, LA, RGB or RGBA by channel count)."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    Image.fromarray(pixels).save(path)
    return path


def make_sequence(folder: Path, name: str, numbers, size=(32, 24), ext="png", seed=0) -> list[Path]:
    """Write ``name.<NNNN>.<ext>`` frames (8-bit RGB PNG or JPEG) with distinct content."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, n in enumerate(numbers):
        w, h = size if not callable(size) else size(n)
        pixels = gradient(h, w, 3, np.uint8, seed=seed + i)
        path = folder / f"{name}.{n:04d}.{ext}"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths
