"""Sample sheets: images people look at to judge training (input, truth, render, albedo, shading, depth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from .losses import srgb_encode

COLUMNS = ("input", "truth", "render", "albedo", "shading", "depth")


def _tile(image: Tensor, size: int) -> np.ndarray:
    """[C, H, W] display values in [0, 1] (C = 1 or 3) -> [size, size, 3] uint8."""
    image = F.interpolate(image[None].float(), size=(size, size), mode="bilinear", align_corners=False)[0]
    image = image.expand(3, -1, -1) if image.shape[0] == 1 else image[:3]
    return (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def sample_sheet(batch: dict[str, Tensor], out: dict[str, Tensor], path: Path, size: int = 128) -> Path:
    """Write a grid (one row per sample, COLUMNS) for the first view of each sample; returns the path."""
    rows = batch["image"].shape[0]
    sheet = Image.new("RGB", (size * len(COLUMNS), size * rows + 14), "black")
    draw = ImageDraw.Draw(sheet)
    for col, name in enumerate(COLUMNS):
        draw.text((col * size + 4, 1), name, fill="white")
    depth = out["depth"]
    near, far = float(depth.amin()), float(depth.amax())
    for row in range(rows):
        tiles = [
            (batch["image"][row] + 1) / 2,
            srgb_encode(batch["rgb"][row, 0]),
            srgb_encode((out["image"][row] + 1) / 2),
            srgb_encode((out["albedo"][row] + 1) / 2),
            srgb_encode(out["shading"][row].mean(0, keepdim=True)),
            1 - (depth[row] - near) / max(far - near, 1e-6),
        ]
        for col, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(_tile(tile, size)), (col * size, 14 + row * size))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    sheet.save(tmp)
    tmp.replace(path)
    return path
