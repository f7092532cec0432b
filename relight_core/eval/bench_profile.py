"""`relight bench --profile`: a torch.profiler table of steady-state video frames."""

from __future__ import annotations

from pathlib import Path

import torch

from relight_core.models import kernels
from relight_core.models.config import get_config
from relight_core.models.relighter import Relighter, VideoRelighter

from ..io import write_text_atomic
from .bench import CAST_MODES, _check_settings, _make_inputs, _mode_context, _prepare_model
from .timing import _sync, device_name, precision_context


def profile_video_frames(config: str, device: str, precision: str, mode: str, path: Path, *, batch: int = 1,
                         frames: int = 10, compile_mode: str = "default") -> Path:
    """torch.profiler over `frames` steady-state video frames, written to `path` as a table.

    The frames run `FastVideoRelighter` without a graph (so the stage ranges "stage:*" appear;
    the graph changes launch gaps, not kernels) in `mode`'s kernel setting.
    """
    from torch.profiler import ProfilerActivity, profile

    from relight_core.models.fast import FastVideoRelighter

    dev = _check_settings(device, precision, 1, 0, batch)
    torch.manual_seed(0)
    model = Relighter(get_config(config)).eval().to(dev)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with _mode_context(mode, dev), torch.inference_mode(), \
            precision_context(precision, dev.type, autocast=mode not in CAST_MODES):
        _prepare_model(model, mode, precision, compile_mode)
        x = _make_inputs(model, batch, dev, 0)
        video = FastVideoRelighter(model, use_graph=False) if dev.type == "cuda" else VideoRelighter(model)
        for _ in range(model.config.temporal_window + 3):
            video.step(x.image, x.camera, x.sh)
        _sync(dev)
        with profile(activities=activities) as prof:
            for _ in range(frames):
                video.step(x.image, x.camera, x.sh)
            _sync(dev)
    averages = prof.key_averages()
    sort_key = "device_time_total" if dev.type == "cuda" else "cpu_time_total"
    try:
        table = averages.table(sort_by=sort_key, row_limit=40, max_name_column_width=70)
    except (AttributeError, KeyError, ValueError):  # older torch names it cuda_time_total
        table = averages.table(sort_by="cuda_time_total", row_limit=40, max_name_column_width=70)
    header = (f"# {frames} steady-state video frames: {config}, {precision}, mode {mode} (no graph), batch {batch}, "
              f"{device_name(dev)}, fused kernels: {kernels.fused_report() if mode != 'eager' else 'off'}\n"
              f"# totals are over all {frames} frames; rows 'stage:*' are the stages of one frame\n\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, header + table + "\n")
    return path
