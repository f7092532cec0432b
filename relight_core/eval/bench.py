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
"bf16" runs under `torch.autocast(device_type, dtype=torch.bfloat16)`, except in the modes that
convert the weights once (cast, temporal, fast), which run the bf16 model without autocast.

Mode (how the network runs; CUDA only except "eager" and "kernels"):

* "eager": the torch reference everywhere (fused kernels off): the baseline;
* "kernels": eager, with the fused CUDA kernels of cuda_ext/ (fails if the extension does not load);
* "graphs": kernels where available, every stage and whole captured into a CUDA graph; the video
  frame runs `FastVideoRelighter` (static window buffers, one graph per frame);
* "compile": "graphs" after `torch.compile` of the encoders, super-resolution and temporal net;
* "cast": "graphs" on a model converted once by `fast.prepare_inference` (weights in the
  precision's dtype, no autocast; channels-last encoders; cudnn.benchmark; GEMM attention for
  heads too large for FlashAttention);
* "temporal": "cast" plus `torch.compile` of the temporal network (`fast.compile_temporal`);
* "fast": "temporal" plus `torch.compile` of the encoders (`fast.compile_encoders`; the
  super-resolution stays eager). With --batch > 1 this is the throughput mode (frames in flight).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import Tensor
from tqdm import tqdm

from relight_core import camera as cam
from relight_core.io import write_text_atomic
from relight_core.models.config import PRESETS, RelighterConfig, get_config
from relight_core.models import kernels
from relight_core.models.relighter import Relighter, VideoRelighter, split_camera

from .timing import _load_average, device_name, git_commit, precision_context, time_call

PRECISIONS = ("fp32", "bf16")
"""Precisions `run_benchmark` accepts."""

MODES = ("eager", "kernels", "graphs", "compile", "cast", "temporal", "fast")
"""Ways of running the network `run_benchmark` accepts (see the module docstring)."""

CAST_MODES = ("cast", "temporal", "fast")
"""Modes that convert the model once (`fast.prepare_inference`) instead of running under autocast."""

GRAPH_MODES = ("graphs", "compile") + CAST_MODES
"""Modes that capture every stage into a CUDA graph (CUDA only)."""

COMPILING_MODES = ("compile", "temporal", "fast")
"""Modes that use torch.compile (and so --compile-mode)."""

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
# provenance
# ------------------------------------------------------------------------------------------


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


def _graphed_calls(model: Relighter, x: _Inputs, factories: dict) -> dict[str, Callable[[], Callable[[], object]]]:
    """The stage factories of mode "graphs": each call captured into a CUDA graph; the video frame
    is FastVideoRelighter's (its window filled and its graph captured before timing)."""
    from relight_core.models.fast import WARM_FRAMES, FastVideoRelighter, graphed

    def video_frame() -> Callable[[], object]:
        video = FastVideoRelighter(model)
        for _ in range(model.config.temporal_window + WARM_FRAMES + 1):
            video.step(x.image, x.camera, x.sh)
        return lambda: video.step(x.image, x.camera, x.sh)

    graphs = {key: (lambda factory=factory: graphed(factory())) for key, factory in factories.items()}
    return {**graphs, "video_frame": video_frame}


@contextlib.contextmanager
def _mode_context(mode: str, device: torch.device) -> Iterator[None]:
    """Kernels off for "eager"; required for "kernels"; CUDA required for graphs; the cuDNN
    benchmark flag (which the cast modes turn on) restored on exit."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode in GRAPH_MODES and device.type != "cuda":
        raise ValueError(f"mode {mode!r} needs a CUDA device (CUDA graphs)")
    if mode == "kernels" and device.type == "cuda" and kernels.load_extension() is None:
        raise ValueError(f"mode 'kernels' needs the CUDA extension, which is {kernels.extension_status()}")
    saved = torch.backends.cudnn.benchmark
    try:
        with kernels.reference_only() if mode == "eager" else contextlib.nullcontext():
            yield
    finally:
        torch.backends.cudnn.benchmark = saved


def _prepare_model(model: Relighter, mode: str, precision: str, compile_mode: str) -> None:
    """Convert and/or compile `model` in place as `mode` asks (see the module docstring)."""
    from relight_core.models import fast

    if mode in COMPILING_MODES:
        import torch._dynamo as dynamo  # (a plain `import torch._dynamo` would make `torch` local here)

        # A module Inductor cannot compile then runs eagerly (with a warning in the log) instead of
        # losing the whole run on the one-shot device machine.
        dynamo.config.suppress_errors = True
    if mode == "compile":
        fast.compile_dense_modules(model, compile_mode)
    if mode in CAST_MODES:
        fast.prepare_inference(model, torch.bfloat16 if precision == "bf16" else torch.float32)
    if mode in ("temporal", "fast"):
        fast.compile_temporal(model, compile_mode)
    if mode == "fast":
        fast.compile_encoders(model, compile_mode)


def _mode_name(mode: str, compile_mode: str) -> str:
    """The mode as results record it: with the torch.compile mode when one is used."""
    return f"{mode} ({compile_mode})" if mode in COMPILING_MODES else mode


def run_benchmark(config: str, device: str, precision: str = "fp32", iterations: int = 20, warmup: int = 5,
                  batch: int = 1, *, seed: int = 0, progress: bool = False, mode: str = "eager",
                  compile_mode: str = "default") -> dict:
    """Time every stage and whole path of the network at `config`'s sizes.

    Args:
        config: preset name ("paper", "small", "tiny").
        device: torch device string ("cpu", "cuda", "cuda:1").
        precision: "fp32" (TF32 off) or "bf16" (autocast, or converted weights in CAST_MODES).
        iterations: timed calls per stage (>= 1); warmup: untimed calls before them (>= 0).
        batch: images per call (1 = the latency protocol).
        seed: seeds the random weights and the random input image.
        progress: show a tqdm bar over the stages on stderr.
        mode: one of MODES; compile_mode: torch.compile mode of the COMPILING_MODES.
    Returns:
        The provenance (see `_provenance`) plus "mode", "kernels" (what the fused kernels did),
        "batch", "iterations", "warmup", "seed",
        "peak_cuda_mib" (max over stages; None on the CPU) and "rows": one dict per stage,
        {"stage", "median_ms", "min_ms", "max_ms", "peak_mib"}, in STAGES order.
    """
    dev = _check_settings(device, precision, iterations, warmup, batch)
    cfg = get_config(config)
    torch.manual_seed(seed)
    model = Relighter(cfg).eval().to(dev)
    rows = []
    with _mode_context(mode, dev), torch.inference_mode(), \
            precision_context(precision, dev.type, autocast=mode not in CAST_MODES):
        _prepare_model(model, mode, precision, compile_mode)
        result = _provenance(cfg, dev, precision)
        inputs = _make_inputs(model, batch, dev, seed)
        factories = _stage_calls(model, inputs)
        if mode in GRAPH_MODES:
            factories = _graphed_calls(model, inputs, factories)
        bar = tqdm(STAGES, desc=f"bench {cfg.name} {precision} {mode}", unit="stage", file=sys.stderr,
                   disable=not progress, dynamic_ncols=True)
        for key, _label in bar:
            bar.set_postfix_str(key)
            rows.append({"stage": key, **time_call(factories[key](), dev, iterations, warmup)})
    del model, factories
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    peaks = [r["peak_mib"] for r in rows if r["peak_mib"] is not None]
    fused = kernels.fused_report() if dev.type == "cuda" and mode != "eager" else "off"
    return {**result, "mode": _mode_name(mode, compile_mode), "kernels": fused,
            "batch": batch, "iterations": iterations, "warmup": warmup, "seed": seed,
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
    """Column-group names "<config> <precision>[ <mode>][ <compile mode>][ b<batch>]" (the mode when
    any result is not eager, the compile mode when not "default", the batch when any is not 1),
    made unique with the device or an index."""
    modes = [r.get("mode", "eager") for r in results]
    show_mode, show_batch = any(m != "eager" for m in modes), any(r["batch"] != 1 for r in results)
    labels = []
    for r, mode in zip(results, modes):
        name, _, compiled = mode.partition(" ")
        label = f"{r['config']} {r['precision']}" + (f" {name}" if show_mode else "")
        label += f" {compiled.strip('()')}" if compiled and compiled != "(default)" else ""
        labels.append(label + (f" b{r['batch']}" if show_batch else ""))
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
    fps = ", ".join(f"{key.replace('_', ' ')} {1000 * r['batch'] / rows[key]['median_ms']:.1f} fps"
                    for key in ("image_path", "video_frame") if key in rows)
    mode = f"mode {r['mode']}, fused kernels: {r['kernels']}; " if "mode" in r else ""
    return (f"- **{label}**: {r['device_name']}, {mode}{r['precision']} (TF32 matmul {r['tf32']['matmul']}, "
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


def write_results(results: list[dict], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write `bench.json` (the result dicts) and `bench.md` (format_table) into `out_dir`, atomically.

    Returns the two paths (json, md).
    """
    return write_json_and_table(out_dir, "bench", results, format_table(results))


def write_json_and_table(out_dir: str | os.PathLike, stem: str, data, table: str) -> tuple[Path, Path]:
    """`out_dir/stem.json` (data) and `out_dir/stem.md` (table), each written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    write_text_atomic(json_path, json.dumps(data, indent=2) + "\n")
    write_text_atomic(md_path, table)
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


def _mode_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in MODES]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"mode must be a comma list of {', '.join(MODES)}; got {text!r}")
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
    parser.add_argument("--mode", action="append", type=_mode_list, default=None, metavar="M[,M]",
                        help="eager (torch reference), kernels (fused CUDA kernels), graphs (+ CUDA graphs), "
                        "compile (+ torch.compile, autocast model), cast (graphs on weights converted once), "
                        "temporal (cast + compiled temporal net), fast (temporal + compiled encoders); each mode "
                        "runs at each precision (default: eager)")
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode of the modes compile, temporal and fast (default: default; "
                        "max-autotune-no-cudagraphs tunes longer)")
    parser.add_argument("--append", action="store_true",
                        help="add to the results already in --out instead of replacing them")
    parser.add_argument("--profile", action="store_true",
                        help="also write profile.txt: torch.profiler table of steady-state video frames of the "
                        "last mode and precision (stage ranges and top kernels)")
    parser.add_argument("--out", type=Path, default=Path("out/bench"),
                        help="folder for bench.json and bench.md, or plate_bench.{json,md} (default: out/bench)")
    plate = parser.add_argument_group("whole plate pipeline (relight_core.eval.plate_bench)")
    plate.add_argument("--plate", metavar="VIDEO", help="time a real plate job on this clip per stage instead "
                       "(decode, track, light, network, composite, write) with --config's network")
    plate.add_argument("--frames", metavar="START:END", help="with --plate: the frame range (default: all)")
    plate.add_argument("--weights", help="with --plate: a checkpoint (default: the shipped weights for small, "
                       "else seeded random weights of --config)")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark for each precision, print the table, write the files; returns the exit code."""
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.plate:
        return _run_plate_bench(args, device)
    precisions = list(dict.fromkeys(p for group in (args.precision or [["fp32"]]) for p in group))
    modes = list(dict.fromkeys(m for group in (args.mode or [["eager"]]) for m in group))
    results = _earlier_results(args.out) if args.append else []
    try:
        for mode in modes:
            for precision in precisions:
                results.append(run_benchmark(args.config, device, precision, args.iterations, args.warmup,
                                             args.batch, progress=True, mode=mode, compile_mode=args.compile_mode))
                write_results(results, args.out)  # after each run: a later failure or timeout keeps these
        if args.profile:
            from .bench_profile import profile_video_frames

            path = profile_video_frames(args.config, device, precisions[-1], modes[-1], args.out / "profile.txt",
                                        batch=args.batch, compile_mode=args.compile_mode)
            print(f"wrote {path}")
    except ValueError as error:
        print(f"relight bench: {error}", file=sys.stderr)
        return 2
    print(format_table(results))
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")
    return 0


def _earlier_results(out_dir: Path) -> list[dict]:
    """The results of an earlier run in out_dir/bench.json (for --append), or []."""
    path = Path(out_dir) / "bench.json"
    if not path.is_file():
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot append to {path}: {error}; delete it or drop --append") from None


def _run_plate_bench(args: argparse.Namespace, device: str) -> int:
    """`relight bench --plate VIDEO`: the whole pipeline per stage (fp32, batch 1, one job)."""
    from .plate_bench import format_plate_table, run_plate_benchmark, write_plate_results

    try:
        result = run_plate_benchmark(args.plate, frames=args.frames, device=device, config=args.config,
                                     weights=args.weights, progress=True)
    except ValueError as error:  # PlateError included: bad clip, range, device or weights
        print(f"relight bench: {error}", file=sys.stderr)
        return 2
    print(format_plate_table(result))
    json_path, md_path = write_plate_results(result, args.out)
    print(f"wrote {json_path} and {md_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: `python -m relight_core.eval.bench [options]`."""
    parser = argparse.ArgumentParser(prog="relight bench", description="Time the relighting network per stage.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
