"""Shipping a trained checkpoint as default weights (fp16), and the temporal-network decision.

    python -m relight_core.train.export runs/small_temporal/step_00004000/model.safetensors \\
        relight_core/data/relight_small.safetensors --status "..."

Decision (recorded here, tested in tests/train/test_export.py): an *untrained* temporal network
(its checkpoint's ``temporal_steps`` metadata is 0 or absent) has its two output layers
(``temporal.albedo_head.weigh`` and ``temporal.shading_head.weigh``) zeroed, so its residuals are
exactly 0 and video frames render like images: random residuals made frames garbage once the
window filled (the step-6889 weights needed this). A temporal network trained by the temporal
stage (``temporal_steps`` > 0, written by the trainer) is shipped as trained.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

UNTRAINED_TEMPORAL_OUTPUTS = ("temporal.albedo_head.weigh.", "temporal.shading_head.weigh.")


def zero_untrained_temporal_outputs(model: torch.nn.Module) -> None:
    """Zero the temporal network's output layers in place: its residuals become 0."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(UNTRAINED_TEMPORAL_OUTPUTS):
                parameter.zero_()


def export_weights(checkpoint: str | Path, out: str | Path, *, status: str = "", half: bool = True) -> dict[str, str]:
    """Write `checkpoint` as shippable weights at `out`; returns the metadata written."""
    from ..checkpoints import read_checkpoint, save_checkpoint

    tensors, config, metadata = read_checkpoint(checkpoint)
    temporal_steps = int(metadata.get("temporal_steps", "0"))
    if temporal_steps == 0:
        tensors = {k: torch.zeros_like(v) if k.startswith(UNTRAINED_TEMPORAL_OUTPUTS) else v for k, v in tensors.items()}
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    temporal = (f"trained ({temporal_steps} temporal-stage steps)" if temporal_steps
                else "untrained: output layers zeroed, video frames render like images")
    provenance = {k: v for k, v in metadata.items() if k not in ("format", "format_version", "config")}
    provenance.update(temporal=temporal, temporal_steps=str(temporal_steps))
    if status:
        provenance["status"] = status
    save_checkpoint(out, tensors, config, **provenance)
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relight_core.train.export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a training checkpoint's model.safetensors")
    parser.add_argument("out", type=Path, help="where to write the shippable weights")
    parser.add_argument("--status", default="", help='one sentence for the "status" metadata (commands print it)')
    parser.add_argument("--fp32", action="store_true", help="keep float32 (default: float16, half the size)")
    args = parser.parse_args(argv)
    try:
        written = export_weights(args.checkpoint, args.out, status=args.status, half=not args.fp32)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.out}: {args.out.stat().st_size / 2**20:.1f} MiB; temporal network {written['temporal']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
