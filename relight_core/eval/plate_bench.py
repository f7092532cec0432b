"""Throughput of the whole plate pipeline, per stage: ``relight bench --plate VIDEO``.

Unlike :mod:`relight_core.eval.bench` (the network alone on random inputs), this runs a real
plate job (:func:`relight_core.plate.run_plate`) on a real clip with the job's default outputs
(every pass as PNG and half EXR, the multilayer EXR; preview and contact sheet at the end), into
a temporary folder, and reads back the per-frame timings every frame record keeps.

Stages (seconds per frame, from each record's ``timings``):

* ``decode``: reading and decoding the frame, and its display-sRGB copy;
* ``track``: face mesh, subject choice, head pose, smoothing;
* ``light``: input-light estimate from the face and the lights' frame conversion;
* ``network``: the whole network step (``network.*`` are its parts, synchronised on CUDA);
* ``composite``: geometry passes, warps, matte, shading ratio applied to the plate;
* ``write``: every pass file and the frame's record (atomic writes).

Reported: the median (and min-max) of each stage over the frames where it runs (``light``,
``network``, ``composite`` only on relit frames), the per-relit-frame total of the medians, and
two whole-pipeline rates: **loop** = frames / the sum of every stage of every frame (the
steady-state throughput), and **wall** = frames / the job's wall time including setup (model
load, tracker start) and finish (preview, contact sheet).
"""

from __future__ import annotations

import datetime
import json
import platform
import statistics
import tempfile
from pathlib import Path

import torch

__all__ = ["PLATE_STAGES", "run_plate_benchmark", "format_plate_table", "write_plate_results"]

PLATE_STAGES: tuple[tuple[str, str], ...] = (
    ("decode", "read + decode the frame, display-sRGB copy"),
    ("track", "face mesh, subject, head pose, smoothing"),
    ("light", "input-light estimate, light frames"),
    ("network", "network step (the rows below are its parts)"),
    ("network.encode", "albedo encoder"),
    ("network.shade", "lighting + shading encoder, target and input light"),
    ("network.temporal", "temporal network"),
    ("network.render", "volume render, every light"),
    ("network.superres", "super-resolution, target light"),
    ("composite", "normals, depth, warps, matte, shading ratio"),
    ("write", "every pass file + the frame record"),
)
"""(stage key, what it covers), in pipeline order."""

_PER_FRAME = ("decode", "track", "light", "network", "composite", "write")
"""The stages whose sum is a frame's time (the ``network.*`` rows are parts of ``network``)."""
_RELIT_ONLY = ("light", "network", "composite")


def _default_weights(config: str):
    """The shipped weights for ``small`` (when present), else seeded random weights of ``config``
    (same architecture, hence the same speed)."""
    from ..checkpoints import DEFAULT_WEIGHTS

    return None if config == "small" and DEFAULT_WEIGHTS.is_file() else config


def _preview_possible() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401  (preview.mp4 is encoded through it)
    except ImportError:
        return False
    return True


def run_plate_benchmark(plate: str | Path, *, frames: str | None = None, device: str = "cpu", config: str = "small",
                        weights: str | Path | None = None, progress: bool = False) -> dict:
    """Run a plate job on ``plate`` and return its per-stage timings and provenance.

    Args:
        plate: a video or image sequence with a face (any ``relight plate`` input).
        frames: ``"START:END"`` (inclusive source numbers); None: every frame.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        config: model preset; ``small`` uses the shipped weights when present.
        weights: a checkpoint instead (overrides ``config``'s weights).
        progress: a tqdm bar on stderr.

    Returns:
        A dict: provenance (device name, threads, torch, CUDA, commit, date, load average, plate,
        frames, weights), ``rows`` (stage, frames timed, median/min/max ms), ``relit_ms`` (sum of
        the stage medians of a relit frame), ``loop_fps``, ``wall_fps``, ``setup_s``, ``finish_s``.
    """
    from ..plate import PlateJobConfig, run_plate
    from .timing import _load_average, device_name, git_commit

    chosen = weights if weights is not None else _default_weights(config)
    preview = _preview_possible()
    with tempfile.TemporaryDirectory(prefix="relight-plate-bench-") as tmp:
        # no warm-up frames before the range: every frame run is a frame timed and written
        job = PlateJobConfig(input=plate, out=Path(tmp) / "job", frames=frames, weights=chosen, device=device,
                             preview=preview, force=True, resume_warmup=0)
        load = _load_average()
        report = run_plate(job, progress=progress)
        records = [json.loads(p.read_text()) for p in sorted((Path(tmp) / "job" / "frames").glob("frame.*.json"))]
        model_config = _model_config_name(chosen)
    dev = torch.device(device)
    rows = _stage_rows(records)
    medians = {r["stage"]: r["median_ms"] for r in rows}
    loop_s = sum(sum(r["timings"].get(k, 0.0) for k in _PER_FRAME) for r in records)
    t = report.timings
    plate_info = _plate_info(plate)
    return {
        "plate": str(plate), "plate_kind": plate_info[0], "plate_size": plate_info[1], "fps": plate_info[2],
        "frames": frames or "all", "frame_count": len(records), "relit_count": len(report.relit),
        "config": model_config, "weights": "shipped" if chosen is None else str(chosen),
        "trained_weights": report.trained_weights, "device": str(dev), "device_name": device_name(dev),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "cuda": torch.version.cuda or "none",
        "python": platform.python_version(), "mediapipe": _version("mediapipe"), "opencv": _version("cv2"),
        "git_commit": git_commit(), "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average": load, "fused_kernels": _fused_kernels(dev), "outputs": {"formats": list(job.formats), "multilayer": job.multilayer,
                                          "passes": list(job.passes), "preview": preview},
        "rows": rows, "relit_ms": sum(medians.get(k, 0.0) for k in _PER_FRAME),
        "loop_fps": len(records) / loop_s if loop_s > 0 else 0.0, "wall_fps": t.get("frames_per_second", 0.0),
        "setup_s": t.get("setup", 0.0), "finish_s": t.get("finish", 0.0), "total_s": t.get("total", 0.0),
    }


def _stage_rows(records: list[dict]) -> list[dict]:
    rows = []
    for key, _ in PLATE_STAGES:
        relit_only = key in _RELIT_ONLY or key.startswith("network.")
        values = [1000 * r["timings"][key] for r in records
                  if key in r.get("timings", {}) and (r.get("relit") or not relit_only)]
        if values:
            rows.append({"stage": key, "frames": len(values), "median_ms": statistics.median(values),
                         "min_ms": min(values), "max_ms": max(values)})
    return rows


def _model_config_name(weights) -> str:
    """The config of the weights the job ran (a preset name, or the checkpoint's own)."""
    from ..checkpoints import DEFAULT_WEIGHTS, read_checkpoint
    from ..plate.network import RANDOM_WEIGHTS

    if weights is not None and str(weights) in RANDOM_WEIGHTS:
        return str(weights)
    return read_checkpoint(DEFAULT_WEIGHTS if weights is None else weights)[1].name


def _plate_info(plate) -> tuple[str, list[int], float]:
    from ..io import open_plate

    reader = open_plate(plate)
    return reader.kind, list(reader.size), reader.fps


def _fused_kernels(device: torch.device) -> str:
    """What the fused CUDA renderer did during the job (cuda_ext/; the torch renderer otherwise)."""
    if device.type != "cuda":
        return "off (CPU)"
    from ..models import kernels

    return kernels.fused_report()


def _version(module: str) -> str:
    try:
        return getattr(__import__(module), "__version__", "unknown")
    except ImportError:
        return "not installed"


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def format_plate_table(r: dict) -> str:
    """Markdown: one provenance line, then the per-stage table and the whole-pipeline rates."""
    w, h = r["plate_size"]
    out = r["outputs"]
    if r["weights"] == "shipped":
        weights = f"{r['config']} config, shipped trained weights"
    elif r["trained_weights"] is False:
        weights = f"{r['config']} config, seeded random weights (same speed as trained ones)"
    else:
        weights = f"{r['config']} config, weights {Path(r['weights']).name}"
    outputs = (f"{', '.join(out['formats'])}{', multilayer EXR' if out['multilayer'] else ''}, {len(out['passes'])} passes; "
               f"preview {'on' if out['preview'] else 'off (imageio-ffmpeg not installed)'}")
    lines = [
        f"- **{r['device_name']}**, {r['device']}, {r['threads']} torch CPU threads; torch {r['torch']}, CUDA {r['cuda']}, "
        f"Python {r['python']}, mediapipe {r['mediapipe']}, OpenCV {r['opencv']}; commit {r['git_commit']}; "
        f"{r['date_utc']}; load average {r['load_average']}; fused CUDA kernels: {r['fused_kernels']}.",
        f"- Plate `{Path(r['plate']).name}` ({r['plate_kind']}, {w}x{h}, {r['fps']:g} fps), frames {r['frames']}: "
        f"{r['frame_count']} frames, {r['relit_count']} relit; {weights}; outputs {outputs}.",
        "",
        "| stage | what is timed | frames | median ms | min–max ms |",
        "|---|---|---:|---:|---:|",
    ]
    names = dict(PLATE_STAGES)
    for row in r["rows"]:
        key = row["stage"]
        label = f"&nbsp;&nbsp;`{key}`" if key.startswith("network.") else f"`{key}`"
        lines.append(f"| {label} | {names[key]} | {row['frames']} | {_ms(row['median_ms'])} | "
                     f"{_ms(row['min_ms'])}–{_ms(row['max_ms'])} |")
    relit_fps = 1000 / r["relit_ms"] if r["relit_ms"] > 0 else 0.0
    lines += [
        f"| **relit frame** | sum of the stage medians | | {_ms(r['relit_ms'])} | {relit_fps:.2f} frames/s |",
        f"| **whole pipeline, loop** | frames / sum of every stage of every frame | {r['frame_count']} | | "
        f"**{r['loop_fps']:.2f} frames/s** |",
        f"| **whole pipeline, wall** | frames / job wall time incl. setup {r['setup_s']:.1f} s and finish "
        f"{r['finish_s']:.1f} s (preview, contact sheet) | {r['frame_count']} | | {r['wall_fps']:.2f} frames/s |",
    ]
    return "\n".join(lines) + "\n"


def write_plate_results(result: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``plate_bench.json`` and ``plate_bench.md`` into ``out_dir`` atomically; returns both paths."""
    from .bench import write_json_and_table

    return write_json_and_table(out_dir, "plate_bench", result, format_plate_table(result))
