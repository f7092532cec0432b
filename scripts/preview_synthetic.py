#!/usr/bin/env python
"""Contact sheet of synthetic training samples, to look at.

One row per sample: input image (as the network sees it), albedo, normal (world, mapped to
colours), shading under the input light, RGB under the target light, novel view under the target
light, novel-view depth. With ``--sequence N`` a last row shows N frames of a talking sequence.

Usage::

    python scripts/preview_synthetic.py --out out/synthetic.png [--rows 6] [--size 192] [--seed 0]
        [--coloured 0.3] [--sequence 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relight_core.train.albedo import to_srgb  # noqa: E402
from relight_core.train.synthetic import SyntheticHeads  # noqa: E402


def _u8(img: torch.Tensor) -> np.ndarray:
    """[3, H, W] display values in [0, 1] -> uint8 HWC."""
    return (img.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def _depth(d: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    v = d[m > 0.5]
    if v.numel() == 0:
        return torch.zeros(3, *d.shape[1:])
    lo, hi = v.min(), v.max()
    x = ((hi - d) / (hi - lo + 1e-6)).clamp(0, 1) * (m > 0.5)
    return x.expand(3, -1, -1)


def contact_sheet(data: dict, rows: int) -> np.ndarray:
    tiles = []
    for b in range(rows):
        row = [
            (data["image"][b] + 1) / 2,
            to_srgb(data["albedo"][b].permute(1, 2, 0)).permute(2, 0, 1),
            (data["normal"][b] * 0.5 + 0.5) * (data["mask"][b] > 0.5),
            to_srgb(data["shading"][b].permute(1, 2, 0)).permute(2, 0, 1),
            to_srgb(data["target_rgb"][b].permute(1, 2, 0)).permute(2, 0, 1),
            to_srgb(data["mv_target_rgb"][b].permute(1, 2, 0)).permute(2, 0, 1),
            _depth(data["mv_depth"][b], data["mv_mask"][b]),
        ]
        tiles.append(np.concatenate([_u8(t) for t in row], 1))
    return np.concatenate(tiles, 0)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(device: str, batch: int = 8, size: int = 256) -> None:
    """Print the time of one rasterization + shading and of one full training sample batch."""
    from relight_core import camera, sh
    from relight_core.train import raster

    gen = SyntheticHeads(size, device=device)
    m = gen.model
    g = torch.Generator(device=device).manual_seed(0)
    v = m.mesh(m.sample_identity(batch, g), m.sample_expression(batch, g))
    cams = camera.orbit_camera(torch.zeros(batch), torch.linspace(-0.6, 0.6, batch)).to(device)
    light = sh.preset("key_left")[None].repeat(batch, 1).to(device)
    for name, fn in (
        (f"render_head {batch} x {size}^2", lambda: raster.render_head(v, m.faces, cams, size, size, light=light)),
        (f"SyntheticHeads.sample({batch}) at {size}^2 (2 views, supersample {gen.supersample})", lambda: gen.sample(batch, g)),
    ):
        fn()
        _sync(device)
        times = []
        for _ in range(3):
            t = time.time()
            fn()
            _sync(device)
            times.append(time.time() - t)
        print(f"{name}: {min(times) * 1000:.0f} ms on {device}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="out/synthetic.png")
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--coloured", type=float, default=0.3)
    ap.add_argument("--sequence", type=int, default=7, help="frames of a talking sequence in a last row (0: none)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bench", action="store_true", help="also time the rasterizer and the sampler (batch 8 at 256^2)")
    args = ap.parse_args(argv)
    from PIL import Image

    if args.bench:
        bench(args.device)

    gen = SyntheticHeads(args.size, device=args.device, coloured=args.coloured)
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    t = time.time()
    data = gen.sample(args.rows, g)
    print(f"sampled {args.rows} at {args.size}^2 in {time.time() - t:.2f} s")
    sheet = contact_sheet(data, args.rows)
    if args.sequence > 0:
        t = time.time()
        seq = gen.sequence(args.sequence * 6, g)
        print(f"sequence of {args.sequence * 6} frames in {time.time() - t:.2f} s")
        frames = [_u8((seq["image"][k] + 1) / 2) for k in range(0, args.sequence * 6, 6)]
        row = np.concatenate(frames, 1)
        pad = np.zeros((row.shape[0], sheet.shape[1] - row.shape[1], 3), np.uint8) if row.shape[1] < sheet.shape[1] else None
        row = np.concatenate([row, pad], 1) if pad is not None else row[:, : sheet.shape[1]]
        sheet = np.concatenate([sheet, row], 0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out)
    print(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
