"""Shipping trained checkpoints as default weights (fp16), and the temporal-network decision.

    python -m relight_core.train.export runs/small_temporal/step_00004000/model.safetensors \\
        relight_core/data/relight_small.safetensors --status "..."

Given several checkpoints of one network (checkpoints along one training lineage), it ships their
average, weight by weight: a coarse moving average over the lineage, steadier than any one of them
(docs/QUALITY.md measures it). The temporal network is averaged over the checkpoints whose
temporal network was trained; a checkpoint that never had the temporal stage carries its random
initialisation there, which is left out.

Decision (recorded here, tested in tests/train/test_temporal_stage.py): an *untrained* temporal network
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

from ..models.config import RelighterConfig

UNTRAINED_TEMPORAL_OUTPUTS = ("temporal.albedo_head.weigh.", "temporal.shading_head.weigh.")


def zero_untrained_temporal_outputs(model: torch.nn.Module) -> None:
    """Zero the temporal network's output layers in place: its residuals become 0."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(UNTRAINED_TEMPORAL_OUTPUTS):
                parameter.zero_()


def average_checkpoints(paths: list[str | Path]) -> tuple[dict[str, torch.Tensor], RelighterConfig, dict[str, str]]:
    """The weight-by-weight mean of checkpoints of one network -> (tensors, config, metadata)."""
    from ..checkpoints import read_checkpoint

    read = [read_checkpoint(path) for path in paths]
    if len(read) == 1:
        return read[0]
    config = read[0][1]
    if any(other != config for _, other, _ in read):
        raise ValueError(f"the checkpoints hold different networks: {', '.join(str(p) for p in paths)}")
    trained_temporal = [tensors for tensors, _, metadata in read if int(metadata.get("temporal_steps", "0"))]
    averaged = {}
    for name, value in read[0][0].items():
        group = trained_temporal if name.startswith("temporal.") and trained_temporal else [t for t, _, _ in read]
        averaged[name] = (torch.stack([t[name].double() for t in group]).mean(0).to(value.dtype)
                          if value.is_floating_point() else value)
    steps = {key: str(max(int(m.get(key, "0")) for _, _, m in read)) for key in ("temporal_steps", "data_steps")}
    sources = "; ".join(f"{Path(p).parent.name}/{Path(p).name}: {m.get('source', '?')}" for p, (_, _, m) in zip(paths, read))
    return averaged, config, {**steps, "source": f"average of {len(read)} checkpoints ({sources})"}


def export_weights(checkpoints: list[str | Path], out: str | Path, *, status: str = "", half: bool = True) -> dict[str, str]:
    """Write the checkpoint (or the average of several) as shippable weights at `out`; returns the
    metadata written."""
    from ..checkpoints import save_checkpoint

    tensors, config, metadata = average_checkpoints(checkpoints)
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
    parser.add_argument("checkpoints", type=Path, nargs="+",
                        help="a training checkpoint's model.safetensors (several: their average)")
    parser.add_argument("out", type=Path, help="where to write the shippable weights")
    parser.add_argument("--status", default="", help='one sentence for the "status" metadata (commands print it)')
    parser.add_argument("--fp32", action="store_true", help="keep float32 (default: float16, half the size)")
    args = parser.parse_args(argv)
    try:
        written = export_weights(args.checkpoints, args.out, status=args.status, half=not args.fp32)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.out}: {args.out.stat().st_size / 2**20:.1f} MiB; temporal network {written['temporal']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
