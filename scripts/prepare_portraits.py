#!/usr/bin/env python3
"""Build a portrait pack for training from a folder of images or videos.

    scripts/prepare_portraits.py SRC_DIR OUT_FILE [--model small] [--every 12]

Tracks every training file of SRC_DIR (the held-out eighth of the split rule in
relight_core/train/split.py is never read), crops it as the network sees faces, estimates its
light and person matte, and writes one safetensors pack (relight_core/train/portraits.py).
Videos are sampled every --every frames. Files or frames without a usable face are skipped and
listed. Use the pack with `portraits = "OUT_FILE"` in a training configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("source", type=Path, help="folder of portrait images and/or videos (searched recursively)")
    parser.add_argument("out", type=Path, help="the pack to write (.safetensors)")
    parser.add_argument("--model", default="small", help="network preset whose input size the crops get (default small)")
    parser.add_argument("--every", type=int, default=12, help="sample every N-th frame of videos (default 12)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from relight_core.models.config import get_config
    from relight_core.train.portraits import track_folder, write_pack

    size = get_config(args.model).image_size
    portraits, skipped = [], {}
    try:
        for name, result in track_folder(args.source, size, args.every):
            if isinstance(result, str):
                skipped[name] = result
            else:
                portraits.append(result)
    except ValueError as error:  # bad folder, unreadable file: the message names it
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    if not portraits:
        print(f"error: no usable portraits in {args.source} ({len(skipped)} skipped)", file=sys.stderr)
        return 1
    info = {"source": str(args.source), "model": args.model, "every": args.every, "skipped": skipped,
            "split": "training part of relight_core.train.split.split_held_out (every 8th file by name held out)"}
    path = write_pack(args.out, portraits, info=info)
    print(f"{path}: {len(portraits)} portraits at {size} px, {path.stat().st_size / 2**20:.1f} MiB")
    for reason, count in Counter(skipped.values()).most_common():
        print(f"  skipped {count}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
