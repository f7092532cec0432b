"""`relight eval`: the quality report (issue 6) - synthetic held-out heads with ground truth, real
held-out portraits, temporal stability on a real clip, each against an untrained network and a
classical shading-ratio relighting. Writes ``report.json``, ``report.md`` and contact sheets.

Modules: :mod:`.metrics` (PSNR, SSIM, angles, lighting and warping error), :mod:`.identity`
(dlib), :mod:`.classical` (the baseline), :mod:`.common` (renders, crops, frames of light),
:mod:`.synthetic`, :mod:`.real`, :mod:`.clip` (the suites), :mod:`.report` (summaries, files).
docs/QUALITY.md explains every number.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ...io import write_text_atomic

DEFAULT_LIGHTS = ("key_left", "key_right", "top", "under")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class QualityConfig:
    """Settings of one evaluation run.

    Attributes:
        out: folder for report.json, report.md and the contact sheets.
        weights: a Relight checkpoint (None: the shipped default weights).
        device: "cpu" or "cuda".
        synthetic: held-out synthetic heads (0 skips the suite).
        portraits: a folder of portrait images (None skips the real suite).
        real: at most this many portraits (None: all selected).
        split: "held-out" (the training split's held-out eighth, relight_core.train.split) or "all".
        clip: a video or image sequence (None skips the temporal suite).
        clip_frames: tracked frames of the clip to use.
        lights: target light presets (relight_core.sh.PRESETS) for the real suites.
        identity: measure identity with dlib (needs `pip install relight[eval]`).
        examples: rows per contact sheet.
    """

    out: Path = Path("out/eval")
    weights: Path | None = None
    device: str = "cpu"
    synthetic: int = 24
    portraits: Path | None = None
    real: int | None = None
    split: str = "held-out"
    clip: Path | None = None
    clip_frames: int = 48
    lights: tuple[str, ...] = DEFAULT_LIGHTS
    identity: bool = True
    examples: int = 4

    def command_line(self) -> str:
        """The `relight eval` command that runs this configuration (for the report)."""
        parts = ["relight eval", f"--out {self.out}", f"--device {self.device}", f"--synthetic {self.synthetic}"]
        if self.weights is not None:
            parts.append(f"--weights {self.weights}")
        if self.portraits is not None:
            parts += [f"--portraits {self.portraits}", f"--split {self.split}"]
            parts += [f"--real {self.real}"] if self.real is not None else []
            parts.append(f"--lights {','.join(self.lights)}")
        if self.clip is not None:
            parts += [f"--clip {self.clip}", f"--clip-frames {self.clip_frames}"]
        if not self.identity:
            parts.append("--no-identity")
        return " ".join(parts)

    def check(self) -> None:
        from ... import sh

        if self.split not in ("held-out", "all"):
            raise ValueError(f"split: expected 'held-out' or 'all', got {self.split!r}")
        for name in self.lights:
            if name not in sh.PRESETS:
                raise ValueError(f"light {name!r} is not a preset; choose from {', '.join(sorted(sh.PRESETS))}")
        if self.portraits is not None and not Path(self.portraits).is_dir():
            raise FileNotFoundError(f"portrait folder {self.portraits} does not exist")
        if self.clip is not None and not Path(self.clip).exists():
            raise FileNotFoundError(f"clip {self.clip} does not exist")
        if self.synthetic < 0 or self.clip_frames < 0 or (self.real is not None and self.real < 0):
            raise ValueError("counts must be >= 0")


def portrait_files(folder: Path, split: str, limit: int | None) -> list[Path]:
    """The images of a folder selected by the held-out rule (or all), at most ``limit``."""
    from ...train.split import split_held_out

    files = [p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not files:
        raise FileNotFoundError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    chosen = split_held_out(files)[1] if split == "held-out" else sorted(files, key=lambda p: p.name)
    return chosen if limit is None else chosen[:limit]


class TrackerPool:
    """Static-image trackers, one per focal length, reused (MediaPipe graphs are slow to build)."""

    def __init__(self):
        self._trackers: dict = {}

    @contextmanager
    def __call__(self, focal_px: float | None):
        from ...track.tracker import Tracker, TrackerConfig

        key = None if focal_px is None else round(float(focal_px), 3)
        if key not in self._trackers:
            self._trackers[key] = Tracker(TrackerConfig(static=True, smoothing=False, focal_px=key))
        tracker = self._trackers[key]
        tracker.reset()
        yield tracker

    def close(self) -> None:
        for tracker in self._trackers.values():
            tracker.close()
        self._trackers.clear()


def _load(config: QualityConfig):
    from ...checkpoints import default_weights_status, load_default_model, load_model, read_checkpoint

    if config.weights is not None:
        model = load_model(config.weights, config.device)
        status = read_checkpoint(config.weights)[2].get("status", "trained")
        return model, {"name": str(config.weights), "status": status}
    model, trained = load_default_model(config.device)
    return model, {"name": "shipped default (relight_core/data/relight_small.safetensors)" if trained else "none shipped",
                   "status": default_weights_status()}


def run_quality(config: QualityConfig, progress: bool = True) -> dict:
    """Run every suite the config enables and write the report files; returns the report."""
    import torch
    from tqdm import tqdm

    from ... import sh
    from . import report as R
    from .common import untrained_like

    config.check()
    out = Path(config.out)
    files = portrait_files(config.portraits, config.split, config.real) if config.portraits else []
    identity = None
    if files and config.identity:
        from .identity import FaceIdentity

        identity = FaceIdentity()
    model, weights = _load(config)
    models = {"trained": model, "untrained": untrained_like(model)}
    lights = {name: sh.preset(name).double().numpy() for name in config.lights}
    report: dict = {"weights": weights, "device": config.device, "command": config.command_line(),
                    "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
                    "config": model.config.name}
    pool = TrackerPool()
    total = config.synthetic + len(files) + (config.clip_frames if config.clip else 0)
    started = time.perf_counter()
    try:
        with torch.no_grad(), tqdm(total=total, desc="relight eval", unit="item", disable=not progress) as bar:
            if config.synthetic:
                report["synthetic"] = _synthetic(models, config, pool, bar, out)
            if files:
                report["real"] = _real(models, config, pool, bar, out, files, lights, identity)
            if config.clip and config.clip_frames:
                report["clip"] = _clip(model, config, bar, out, lights)
    finally:
        pool.close()
    report["seconds"] = time.perf_counter() - started
    report["targets"] = R.targets(report)
    R.write_json(out / "report.json", report)
    write_text_atomic(out / "report.md", R.markdown(report))
    return report


def _synthetic(models, config: QualityConfig, pool, bar, out: Path) -> dict:
    from . import report as R
    from .synthetic import HELD_OUT_SEED, SyntheticSuite

    suite = SyntheticSuite(models, config.device, pool)
    rows, sheet = [], []
    for i in range(config.synthetic):
        row, images = suite.run_head(i)
        rows.append(row)
        if len(sheet) < config.examples:
            sheet.append(images)
        bar.update()
    R.contact_sheet(sheet, R.SYNTHETIC_COLUMNS, out / "quality_synthetic.jpg")
    return {"heads": len(rows), "seeds": [HELD_OUT_SEED + i for i in range(len(rows))],
            "summary": R.summarize_synthetic(rows, list(models)), "rows": rows}


def _real(models, config: QualityConfig, pool, bar, out: Path, files, lights, identity) -> dict:
    from . import report as R
    from .real import RealSuite

    suite = RealSuite(models, config.device, lights, identity, pool)
    rows, sheet = [], []
    for path in files:
        row, images = suite.run_portrait(path)
        rows.append(row)
        if images is not None and len(sheet) < config.examples:
            sheet.append(images)
        bar.update()
    R.contact_sheet(sheet, R.REAL_COLUMNS, out / "quality_real.jpg", note=f"relit: {next(iter(lights))}")
    return {"folder": str(config.portraits), "split": config.split, "methods": list(models), "lights": list(lights),
            "summary": R.summarize_real(rows, list(models), list(lights)), "rows": rows}


def _clip(model, config: QualityConfig, bar, out: Path, lights) -> dict:
    from . import report as R
    from .clip import clip_suite

    light_name = next(iter(lights))
    summary, sheet = clip_suite(model, config.device, Path(config.clip), config.clip_frames, lights[light_name], bar.update)
    note = f"target light: {light_name}; frames of {Path(config.clip).name}"
    R.contact_sheet(sheet, R.CLIP_COLUMNS, out / "quality_clip.jpg", note=note)
    return {**summary, "light": light_name}


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = QualityConfig()
    parser.add_argument("--out", type=Path, default=d.out, help="folder for report.json, report.md and contact sheets")
    parser.add_argument("--weights", type=Path, help="a Relight checkpoint (default: the shipped small weights)")
    parser.add_argument("--device", default=d.device, help="cpu or cuda")
    parser.add_argument("--synthetic", type=int, default=d.synthetic, help="held-out synthetic heads (0: skip)")
    parser.add_argument("--portraits", type=Path,
                        help="a folder of portraits (e.g. ../shared/data/portraits); without it the real suite is skipped")
    parser.add_argument("--real", type=int, help="use at most this many portraits (default: all selected)")
    parser.add_argument("--split", choices=("held-out", "all"), default=d.split,
                        help="held-out: every eighth image by name, the training split's held-out part; all: every image")
    parser.add_argument("--clip", type=Path,
                        help="a video or image sequence for temporal stability; without it the suite is skipped")
    parser.add_argument("--clip-frames", type=int, default=d.clip_frames, help="tracked frames of the clip to use")
    parser.add_argument("--lights", default=",".join(d.lights), help="comma-separated target light presets")
    parser.add_argument("--no-identity", action="store_true", help="skip the dlib identity metric")
    parser.add_argument("--quick", action="store_true", help="tiny counts (2 heads, 2 portraits, 1 light, 6 clip frames), for tests")


def config_from_args(args: argparse.Namespace) -> QualityConfig:
    config = QualityConfig(out=args.out, weights=args.weights, device=args.device, synthetic=args.synthetic,
                           portraits=args.portraits, real=args.real, split=args.split, clip=args.clip,
                           clip_frames=args.clip_frames, lights=tuple(x.strip() for x in args.lights.split(",") if x.strip()),
                           identity=not args.no_identity)
    if args.quick:
        config.synthetic = min(config.synthetic, 2)
        config.real = min(config.real or 2, 2)
        config.clip_frames = min(config.clip_frames, 6)
        config.lights = config.lights[:1]
        config.examples = 2
    return config


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        report = run_quality(config)
    except RuntimeError as error:  # a missing optional dependency (dlib) says what to install
        print(f"relight eval: {error}", file=sys.stderr)
        return 2
    print(f"report: {(Path(config.out) / 'report.md').resolve()}")
    for t in report["targets"]:
        print(f"[{'pass' if t['passed'] else 'FAIL'}] {t['check']}")
    return 0
