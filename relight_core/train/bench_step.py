"""Time whole training steps (data, forward, backward, discriminator) at several batch sizes.

    python -m relight_core.train.bench_step configs/train/small_real.toml --batch 8,16,32

Runs the configuration's stage, data and model with the adversarial term on from the first step
(the most expensive step the run will take) in a throw-away folder, and prints the median seconds
per step, samples per second and peak GPU memory for each batch size: the numbers to choose
`batch_size` by. Portrait and synthetic steps are timed apart when the configuration mixes them.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relight_core.train.bench_step", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--batch", default="8,16,32", help="comma-separated batch sizes")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per batch size, after 4 warm-up steps")
    args = parser.parse_args(argv)

    from .config import TrainConfig
    from .data import make_data, portrait_step
    from .trainer import Trainer

    base = dataclasses.replace(TrainConfig.load(args.config), adversarial_start=0)
    device = "CPU" if not torch.cuda.is_available() else torch.cuda.get_device_name()
    print(f"{args.config} ({base.model}, {base.stage} stage) on {device}")
    for batch_size in (int(b) for b in args.batch.split(",")):
        config = dataclasses.replace(base, batch_size=batch_size)
        with tempfile.TemporaryDirectory() as out:
            trainer = Trainer(config, make_data(config), out)
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            times: dict[bool, list[float]] = {}
            for step in range(4 + args.steps):
                start = time.perf_counter()
                trainer.train_step(step)  # returns floats: the GPU has finished the step
                if step >= 4:
                    portrait = bool(config.portraits) and portrait_step(trainer.data_offset + step,
                                                                          config.portrait_fraction)
                    times.setdefault(portrait, []).append(time.perf_counter() - start)
        memory = f", peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if torch.cuda.is_available() else ""
        for portrait, values in sorted(times.items()):
            median = statistics.median(values)
            kind = "portrait" if portrait else "synthetic"
            print(f"batch {batch_size:3d} {kind:9s}: {median:.3f} s/step, {batch_size / median:6.1f} samples/s "
                  f"({len(values)} steps){memory}")
        del trainer
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
