"""Time the synthetic data of one training step (and count its GPU synchronisations).

    python -m relight_core.train.bench_data --resolution 256 --batch 8      # the small config's step
    python -m relight_core.train.bench_data --sequence 9 --batch 2          # a temporal-stage step

Runs on the GPU when there is one. Prints the median seconds per batch and, on CUDA, how many
times one batch made the CPU wait for the GPU (torch's sync debug mode), the usual hidden cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relight_core.train.bench_data", description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sequence", type=int, default=0, help="time clips of this many frames (with flow) instead")
    args = parser.parse_args(argv)

    from .synthetic import SyntheticHeads

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    heads = SyntheticHeads(args.resolution, device, coloured=0.3)

    def once(seed: int) -> None:
        generator = torch.Generator(device=device).manual_seed(seed)
        if args.sequence:
            for _ in range(args.batch):
                heads.sequence(args.sequence, generator, flow_reference=max(args.sequence - 4, 0))
        else:
            heads.sample(args.batch, generator)
        if device.type == "cuda":
            torch.cuda.synchronize()

    once(0)  # warm-up
    times = []
    for seed in range(1, args.repeats + 1):
        start = time.perf_counter()
        once(seed)
        times.append(time.perf_counter() - start)
    what = f"{args.batch} clips of {args.sequence} frames" if args.sequence else f"batch {args.batch}"
    print(f"{device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), {args.resolution} px, "
          f"{what}: median {statistics.median(times):.4f} s (min {min(times):.4f})")
    if device.type == "cuda":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            once(args.repeats + 1)
            torch.cuda.set_sync_debug_mode("default")
        print(f"GPU synchronisations per batch: {len(caught)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
