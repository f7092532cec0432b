"""Speed benchmark of the relighting network: per-stage and whole-path latency.

Protocol (design/PERFORMANCE.md section 4): model inference only, warm, batch 1 unless asked
otherwise, no I/O, random weights (seeded) and random inputs at the config's sizes, under
`torch.inference_mode()` in eval mode (deterministic rendering, constant noise).

Every stage is timed on its own, fed the tensors it sees in the pipeline (computed once, at the
same precision); then the three wholes are timed end to end:

* stages: albedo encoder (`model.encode`), lighting + shading encoder (`model.shade`),
  `model.planes_to_style`, volume render (`model.renderer`), super-resolution (`model.superres`),
  temporal network on full windows (`model.temporal`);
* wholes: image path (`model(image, cam, sh)`), relight from stored planes
  (`model(None, cam, sh, albedo_planes=...)`), video frame in steady state
  (`VideoRelighter.step` with a full window).

Timing: each timed call is one `time.perf_counter()` interval; on CUDA it is bracketed by
`torch.cuda.synchronize()`, so it is the host wall time of one call, launch overhead included
(the batch-1 latency a user sees). Reported: median, min and max in milliseconds over
`iterations` calls after `warmup` untimed calls, plus the peak CUDA memory (MiB) of each stage.

Precision: "fp32" runs with TF32 off (honest fp32; the global flags are restored afterwards);
"bf16" runs under `torch.autocast(device_type, dtype=torch.bfloat16)`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import Tensor
from tqdm import tqdm

from relight_core import camera as cam
from relight_core.models.config import PRESETS, RelighterConfig, get_config
from relight_core.models.relighter import Relighter, VideoRelighter, split_camera

PRECISIONS = ("fp32", "bf16")
"""Precisions `run_benchmark` accepts."""

STAGES: tuple[tuple[str, str], ...] = (
    ("encode", "albedo encoder, `model.encode`"),
    ("shade", "lighting + shading encoder, `model.shade`"),
    ("planes_to_style", "super-resolution style, `model.planes_to_style`"),
    ("render", "volume render, `model.renderer`"),
    ("superres", "super-resolution, `model.superres`"),
    ("temporal", "temporal net on full windows, `model.temporal`"),
    ("image_path", "whole: image path, `model(image, cam, sh)`"),
    ("relight_from_planes", "whole: relight stored planes, `model(None, cam, sh, albedo_planes=...)`"),
    ("video_frame", "whole: video frame in steady state, `VideoRelighter.step`"),
)
"""(stage key, what is timed) in the order they are timed and printed."""

WHOLES = ("image_path", "relight_from_planes", "video_frame")
"""Stage keys that time a whole path rather than one module."""

SH_DC = 0.8
"""DC coefficient of the grey spherical-harmonics light used as input (other coefficients 0)."""


# ------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------


@dataclass
class _Inputs:
    """The tensors each stage is fed (R = plane resolution, N = neural resolution, W = window)."""

    image: Tensor  # [B, 3, S, S] in [-1, 1]
    camera: Tensor  # [B, 25] EG3D labels
    sh: Tensor  # [B, 9] grey SH
    cam2world: Tensor  # [B, 4, 4]
    intrinsics: Tensor  # [B, 3, 3] normalized
    albedo: Tensor  # [B, 3C, R, R]
    shading: Tensor  # [1, B, 3C, R, R]
    style: Tensor  # [B, w_dim]
    features: Tensor  # [B, C, N, N] super-resolution input
    albedo_window: Tensor  # [B, W*3C, R, R]: the current planes repeated W times (values do not matter)
    shading_window: Tensor  # [B, W*3C, R, R]


def frontal_camera(batch: int, device: torch.device) -> Tensor:
    """EG3D labels [batch, 25]: frontal camera at radius 2.7 looking at the origin (OpenCV axes),
    normalized intrinsics [[4.2634, 0, 0.5], [0, 4.2634, 0.5], [0, 0, 1]]."""
    cam2world = cam.look_at((0.0, 0.0, cam.RADIUS_EG3D))
    label = cam.camera_label(cam2world, cam.intrinsics(cam.FOCAL_EG3D))
    return label.expand(batch, 25).contiguous().to(device)


def grey_sh(batch: int, device: torch.device) -> Tensor:
    """Grey second-order SH [batch, 9]: DC = SH_DC, the rest 0."""
    sh = torch.zeros(batch, 9, device=device)
    sh[:, 0] = SH_DC
    return sh


def _make_inputs(model: Relighter, batch: int, device: torch.device, seed: int) -> _Inputs:
    """Random image (seeded) and the downstream tensors, computed once by the model itself."""
    cfg = model.config
    generator = torch.Generator().manual_seed(seed)
    image = (torch.rand(batch, 3, cfg.image_size, cfg.image_size, generator=generator) * 2 - 1).to(device)
    camera, sh = frontal_camera(batch, device), grey_sh(batch, device)
    cam2world, intrinsics = split_camera(camera)
    albedo = model.encode(image)
    shading = model.shade(albedo, sh)
    style = model.planes_to_style(albedo)
    features = model.renderer(albedo, shading, cam2world, intrinsics)["features"].flatten(0, 1)
    window = cfg.temporal_window
    return _Inputs(
        image=image, camera=camera, sh=sh, cam2world=cam2world, intrinsics=intrinsics,
        albedo=albedo, shading=shading, style=style, features=features,
        albedo_window=torch.cat([albedo] * window, dim=1),
        shading_window=torch.cat([shading[0]] * window, dim=1),
    )


def _full_video(model: Relighter, x: _Inputs) -> VideoRelighter:
    """A VideoRelighter whose window is already full, so every further step is steady state."""
    video = VideoRelighter(model)
    for _ in range(video.window):
        video.step(x.image, x.camera, x.sh)
    return video


def _stage_calls(model: Relighter, x: _Inputs) -> dict[str, Callable[[], Callable[[], object]]]:
    """Per stage key of STAGES, a factory that prepares the stage (untimed) and returns its call."""

    def video_frame() -> Callable[[], object]:
        video = _full_video(model, x)
        return lambda: video.step(x.image, x.camera, x.sh)

    calls: dict[str, Callable[[], object]] = {
        "encode": lambda: model.encode(x.image),
        "shade": lambda: model.shade(x.albedo, x.sh),
        "planes_to_style": lambda: model.planes_to_style(x.albedo),
        "render": lambda: model.renderer(x.albedo, x.shading, x.cam2world, x.intrinsics),
        "superres": lambda: model.superres(x.features, x.style),
        "temporal": lambda: model.temporal(x.albedo_window, x.shading_window),
        "image_path": lambda: model(x.image, x.camera, x.sh),
        "relight_from_planes": lambda: model(None, x.camera, x.sh, albedo_planes=x.albedo),
    }
    factories = {key: (lambda call=call: call) for key, call in calls.items()}
    return {**factories, "video_frame": video_frame}


# ------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def precision_context(precision: str, device_type: str) -> Iterator[None]:
    """"fp32": TF32 off for matmul and cuDNN (flags restored on exit); "bf16": bf16 autocast."""
    if precision == "bf16":
        with torch.autocast(device_type, dtype=torch.bfloat16):
            yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, iterations: int, warmup: int) -> dict:
    """Time `fn()`: `warmup` untimed calls, then `iterations` timed ones.

    Returns {"median_ms", "min_ms", "max_ms"} (milliseconds, host wall time, synchronized on CUDA)
    and "peak_mib": peak CUDA memory allocated during the timed calls (MiB; None on the CPU).
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(iterations):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "peak_mib": peak}


# ------------------------------------------------------------------------------------------
# provenance
# ------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def device_name(device: torch.device) -> str:
    """GPU name, or "<CPU model> (<n> threads)" with torch's intra-op thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_model()} ({torch.get_num_threads()} threads)"


def _load_average() -> float | None:
    """1-minute system load average when the run starts (None where unknown). On a CPU, load from
    other processes makes the timings meaningless (idle threads spin at every parallel region)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def git_commit() -> str:
    """`git rev-parse --short HEAD` of this source tree; else $RELIGHT_GIT_COMMIT; else "unknown"."""
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10, check=True)
        if done.stdout.strip():
            return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("RELIGHT_GIT_COMMIT", "unknown")


def _provenance(cfg: RelighterConfig, device: torch.device, precision: str) -> dict:
    """Settings and environment that identify a run (everything but the timings)."""
    return {
        "config": cfg.name,
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "python": platform.python_version(),
        "load_average": _load_average(),
        "precision": precision,
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
        "sizes": {
            "input": cfg.image_size, "planes": cfg.plane_resolution, "neural": cfg.neural_resolution,
            "output": cfg.output_resolution, "samples": f"{cfg.coarse_samples}+{cfg.fine_samples}",
            "window": cfg.temporal_window,
        },
        "git_commit": git_commit(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------------------------------
# the benchmark
# ------------------------------------------------------------------------------------------


def _check_settings(device: str, precision: str, iterations: int, warmup: int, batch: int) -> torch.device:
    """Validate the arguments of run_benchmark; returns the torch device."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if iterations < 1 or warmup < 0 or batch < 1:
        raise ValueError(f"need iterations >= 1, warmup >= 0, batch >= 1; got {iterations}, {warmup}, {batch}")
    try:
        dev = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device: {error}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device is cuda but no CUDA GPU is available here; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    return dev


def run_benchmark(config: str, device: str, precision: str = "fp32", iterations: int = 20, warmup: int = 5,
                  batch: int = 1, *, seed: int = 0, progress: bool = False) -> dict:
    """Time every stage and whole path of the network at `config`'s sizes.

    Args:
        config: preset name ("paper", "small", "tiny").
        device: torch device string ("cpu", "cuda", "cuda:1").
        precision: "fp32" (TF32 off) or "bf16" (autocast).
        iterations: timed calls per stage (>= 1); warmup: untimed calls before them (>= 0).
        batch: images per call (1 = the latency protocol).
        seed: seeds the random weights and the random input image.
        progress: show a tqdm bar over the stages on stderr.
    Returns:
        The provenance (see `_provenance`) plus "batch", "iterations", "warmup", "seed",
        "peak_cuda_mib" (max over stages; None on the CPU) and "rows": one dict per stage,
        {"stage", "median_ms", "min_ms", "max_ms", "peak_mib"}, in STAGES order.
    """
    dev = _check_settings(device, precision, iterations, warmup, batch)
    cfg = get_config(config)
    torch.manual_seed(seed)
    model = Relighter(cfg).eval().to(dev)
    rows = []
    with torch.inference_mode(), precision_context(precision, dev.type):
        result = _provenance(cfg, dev, precision)
        factories = _stage_calls(model, _make_inputs(model, batch, dev, seed))
        bar = tqdm(STAGES, desc=f"bench {cfg.name} {precision}", unit="stage", file=sys.stderr,
                   disable=not progress, dynamic_ncols=True)
        for key, _label in bar:
            bar.set_postfix_str(key)
            rows.append({"stage": key, **time_call(factories[key](), dev, iterations, warmup)})
    del model, factories
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    peaks = [r["peak_mib"] for r in rows if r["peak_mib"] is not None]
    return {**result, "batch": batch, "iterations": iterations, "warmup": warmup, "seed": seed,
            "peak_cuda_mib": max(peaks) if peaks else None, "rows": rows}


# ------------------------------------------------------------------------------------------
# reporting
# ------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    """Milliseconds with about three significant digits."""
    if value is None:
        return "–"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _labels(results: list[dict]) -> list[str]:
    """Column-group names "<config> <precision>", made unique with the device or an index."""
    labels = [f"{r['config']} {r['precision']}" for r in results]
    if len(set(labels)) < len(labels):
        labels = [f"{label} {r['device']}" for label, r in zip(labels, results)]
    if len(set(labels)) < len(labels):
        labels = [f"{label} #{i + 1}" for i, label in enumerate(labels)]
    return labels


def _legend(label: str, r: dict) -> str:
    """One line of provenance for the result shown under `label`."""
    s = r.get("sizes", {})
    peak = f"{r['peak_cuda_mib']:.0f} MiB" if r.get("peak_cuda_mib") is not None else "n/a"
    rows = {row["stage"]: row for row in r["rows"]}
    fps = ", ".join(f"{key.replace('_', ' ')} {1000 / rows[key]['median_ms']:.1f} fps"
                    for key in ("image_path", "video_frame") if key in rows)
    return (f"- **{label}**: {r['device_name']}, {r['precision']} (TF32 matmul {r['tf32']['matmul']}, "
            f"cuDNN {r['tf32']['cudnn']}), batch {r['batch']}, median of {r['iterations']} after "
            f"{r['warmup']} warm-up; input {s.get('input')}², neural {s.get('neural')}², output "
            f"{s.get('output')}², {s.get('samples')} samples, window {s.get('window')}; torch {r['torch']}, "
            f"CUDA {r['cuda']}; commit {r['git_commit']}; {r['date_utc']}; load average {r.get('load_average')}; "
            f"peak CUDA memory {peak}; {fps}.")


def format_table(results: list[dict]) -> str:
    """Markdown: a provenance legend, then one table with a column group (median, min–max ms) per result."""
    if not results:
        raise ValueError("format_table needs at least one result")
    labels = _labels(results)
    lines = [_legend(label, r) for label, r in zip(labels, results)] + [""]
    lines.append("| stage | what is timed | "
                 + " | ".join(f"{label} median ms | {label} min–max ms" for label in labels) + " |")
    lines.append("|---|---|" + "---:|---:|" * len(results))
    by_stage = [{row["stage"]: row for row in r["rows"]} for r in results]
    known = [key for key, _ in STAGES]
    extra = [row["stage"] for r in results for row in r["rows"] if row["stage"] not in known]
    names = dict(STAGES)
    for key in known + list(dict.fromkeys(extra)):
        if not any(key in rows for rows in by_stage):
            continue
        cells = []
        for rows in by_stage:
            row = rows.get(key)
            cells += [_ms(row["median_ms"]), f"{_ms(row['min_ms'])}–{_ms(row['max_ms'])}"] if row else ["–", "–"]
        stage = f"**`{key}`**" if key in WHOLES else f"`{key}`"
        lines.append(f"| {stage} | {names.get(key, '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and os.replace."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_results(results: list[dict], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write `bench.json` (the result dicts) and `bench.md` (format_table) into `out_dir`, atomically.

    Returns the two paths (json, md).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "bench.json", out / "bench.md"
    _atomic_write(json_path, json.dumps(results, indent=2) + "\n")
    _atomic_write(md_path, format_table(results))
    return json_path, md_path


# ------------------------------------------------------------------------------------------
# command line (`relight bench`)
# ------------------------------------------------------------------------------------------


def _precision_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in PRECISIONS]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"precision must be a comma list of {', '.join(PRECISIONS)}; got {text!r}")
    return values


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `relight bench` to `parser`."""
    parser.add_argument("--config", default="small", choices=sorted(PRESETS), help="model preset (default: small)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--precision", action="append", type=_precision_list, default=None, metavar="P[,P]",
                        help="fp32 (TF32 off) and/or bf16 (autocast); repeat or comma-separate (default: fp32)")
    parser.add_argument("--iterations", type=_int_at_least(1), default=20, help="timed calls per stage (default: 20)")
    parser.add_argument("--warmup", type=_int_at_least(0), default=5, help="untimed calls before timing (default: 5)")
    parser.add_argument("--batch", type=_int_at_least(1), default=1, help="images per call (default: 1)")
    parser.add_argument("--out", type=Path, default=Path("out/bench"),
                        help="folder for bench.json and bench.md (default: out/bench)")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark for each precision, print the table, write the files; returns the exit code."""
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    precisions = list(dict.fromkeys(p for group in (args.precision or [["fp32"]]) for p in group))
    try:
        results = [run_benchmark(args.config, device, p, args.iterations, args.warmup, args.batch, progress=True)
                   for p in precisions]
    except ValueError as error:
        print(f"relight bench: {error}", file=sys.stderr)
        return 2
    print(format_table(results))
    json_path, md_path = write_results(results, args.out)
    print(f"wrote {json_path} and {md_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: `python -m relight_core.eval.bench [options]`."""
    parser = argparse.ArgumentParser(prog="relight bench", description="Time the relighting network per stage.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
