"""Training entry point, for one process or many:

    python -m relight_core.train configs/train/small.toml --out runs/small
    torchrun --nproc_per_node 2 -m relight_core.train configs/train/small.toml --out runs/small

A run resumes from `OUT/latest` when it exists (pass --fresh to start over).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="a training configuration (TOML)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, log.jsonl, samples/")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")
    parser.add_argument("--steps", type=int, help="override the configuration's step count")
    parser.add_argument("--max-minutes", type=float, help="stop with a checkpoint after this much wall time")
    parser.add_argument("--init", help="override the configuration's init weights (e.g. the previous stage's "
                                       "model.safetensors when starting the next stage)")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from .config import TrainConfig
    from .data import make_data
    from .trainer import Trainer

    config = TrainConfig.load(args.config)
    overrides = {"steps": args.steps, "max_minutes": args.max_minutes, "init": args.init}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    trainer = Trainer(config, make_data(config), args.out)
    last = trainer.run(resume=not args.fresh)
    if trainer.rank == 0:
        print(f"checkpoint: {last} (step {trainer.step} of {config.steps})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relight_core.train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
