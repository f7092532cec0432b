#!/usr/bin/env python3
"""How much identity survives the network's neural resolution: on the inputs, and in the network.

    scripts/identity_resolution_bound.py ../shared/data/portraits --sizes 32,64,128

Each held-out portrait is tracked and cropped as `relight eval` crops it (256 px for `small`),
shrunk to N x N pixels (area average), enlarged back with bicubic interpolation, and compared with
the crop by dlib's face descriptor (the eval's identity metric; 0.6 is the same-person threshold).
The network renders its image at its neural resolution (32 px for `small`, 128 for the paper's
network) and its super-resolution must add the rest, so the printed share is what a plain
enlargement of a perfect neural-resolution image would keep: a reference for what the
super-resolution has to recover, not a bound on it.

The same is measured for the network (`--weights`, default the shipped ones) at the input view
under the estimated input light, as `relight eval` renders its reconstruction: its own
super-resolved render, and its raw neural-resolution image enlarged the same way. Where the raw
image keeps identity and the render does not, the super-resolution loses it; where neither does,
the volume does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("portraits", type=Path, help="a folder of portraits (its held-out part is used)")
    parser.add_argument("--sizes", default="32,64,128", help="comma-separated neural resolutions to try")
    parser.add_argument("--limit", type=int, help="use at most this many portraits")
    parser.add_argument("--weights", help="a Relight checkpoint (default: the shipped weights)")
    args = parser.parse_args(argv)

    import torch

    from relight_core.checkpoints import load_default_model, load_model
    from relight_core.eval.quality import TrackerPool, portrait_files
    from relight_core.eval.quality.common import crop_tensor, head_light, label_cam2world, to_uint8
    from relight_core.eval.quality.identity import SAME_PERSON, FaceIdentity, distance
    from relight_core.eval.quality.real import read_rgb, track_portrait
    from relight_core.models.relighter import to_display

    sizes = [int(s) for s in args.sizes.split(",")]
    identity, pool = FaceIdentity(), TrackerPool()
    model = load_model(args.weights) if args.weights else load_default_model()[0]
    side = model.config.image_size  # the crop, as relight eval makes it
    rows = [f"{size} px input, enlarged" for size in sizes]
    rows += [f"network, raw {model.config.neural_resolution} px, enlarged", "network, super-resolved"]
    distances: dict[str, list[float]] = {row: [] for row in rows}
    try:
        for path in portrait_files(args.portraits, "held-out", args.limit):
            tracked = track_portrait(read_rgb(path), pool, side)  # as relight eval's real suite
            if isinstance(tracked, str):
                continue
            face, light = tracked
            reference = identity.describe(face.crop)
            if reference["descriptor"] is None:
                continue
            images = [cv2.resize(face.crop, (size, size), interpolation=cv2.INTER_AREA) for size in sizes]
            # the network's reconstruction: input view, estimated input light
            camera = torch.as_tensor(np.asarray(face.label, dtype=np.float32))[None]
            sh = head_light(face.to_crop_frame(light.sh), label_cam2world(face.label))
            with torch.no_grad():
                out = model(crop_tensor(face.crop, "cpu"), camera, sh)
            images += [to_uint8(to_display(out[key], model.config.output_colour)[0].permute(1, 2, 0).numpy())
                       for key in ("image_raw", "image")]
            for row, image in zip(rows, images):
                enlarged = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)
                distances[row].append(distance(identity.describe(np.ascontiguousarray(enlarged), reference["box"]), reference))
    finally:
        pool.close()
    print(f"held-out portraits of {args.portraits}, {side}-px crops, network {model.config.name}")
    for row, values in distances.items():
        kept = sum(d < SAME_PERSON for d in values)
        print(f"{row:34s}: identity kept {kept} of {len(values)} ({100 * kept / max(len(values), 1):.0f} %), "
              f"median dlib distance {statistics.median(values):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
