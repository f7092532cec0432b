"""``relight plate``: the command line of the plate job."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .. import passes as _passes
from .config import DEFAULT_LIGHT, PlateJobConfig
from .job import run_plate
from .report import PlateInterrupted

__all__ = ["add_arguments", "config_from_args", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``relight plate``."""
    p = parser
    p.add_argument("input", help="video file, image sequence (shot.####.exr, frame_%%04d.png), folder, or image")
    p.add_argument("--out", required=True, type=Path, help="job folder (created; re-running resumes)")
    light = p.add_mutually_exclusive_group()
    light.add_argument("--light", help=f"target light preset (default {DEFAULT_LIGHT}); see relight_core.sh.PRESETS, "
                                       "or 'rotating'")
    light.add_argument("--sh", dest="sh_file", type=Path, help="target light: a file of 9 or 27 SH numbers (JSON or text)")
    light.add_argument("--scene", type=Path, help="target light (and camera) from a relight.scene JSON file")
    p.add_argument("--camera", default="plate", help="'plate' (default) or 'orbit:YAW,PITCH[,DISTANCE]' in degrees")
    p.add_argument("--plate-camera", type=Path, help="with --scene: JSON with the plate camera's Blender matrix_world")
    p.add_argument("--input-light", help="the plate's light, when known: a preset or SH file (default: estimated per frame)")
    p.add_argument("--frames", help="frame range START:END (inclusive, source numbers)")
    p.add_argument("--passes", help=f"comma-separated passes (default all: {','.join(_passes.PASS_NAMES)})")
    p.add_argument("--formats", default="png8,exr16", help="comma-separated: png8, png16, exr16, exr32 (default png8,exr16)")
    p.add_argument("--no-multilayer", action="store_true", help="do not write the multilayer EXR")
    p.add_argument("--no-preview", action="store_true", help="do not write preview.mp4")
    p.add_argument("--weights", help="a Relight checkpoint (default: the shipped weights)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--window", dest="window_policy", default="sliding", choices=("sliding", "frozen", "off"),
                   help="temporal window policy")
    p.add_argument("--feather", type=float, default=0.05, help="matte feather, fraction of the face size")
    p.add_argument("--colourspace", help="the plate's colour space (default sRGB; EXR linear)")
    p.add_argument("--allow-gaps", action="store_true", help="skip missing frames of a sequence")
    p.add_argument("--video-start", type=int, default=1, help="number of a video's first frame")
    p.add_argument("--focal-mm", type=float, help="plate lens focal length (mm, on --sensor-width)")
    p.add_argument("--sensor-width", type=float, default=36.0, help="plate sensor width in mm")
    p.add_argument("--fov", type=float, help="plate horizontal field of view in degrees (instead of --focal-mm)")
    p.add_argument("--force", action="store_true", help="redo frames finished with other settings")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> PlateJobConfig:
    """The job's settings from parsed ``relight plate`` arguments."""
    def split(s):
        return tuple(x.strip() for x in s.split(",") if x.strip())

    return PlateJobConfig(
        input=args.input, out=args.out, light=args.light, sh_file=args.sh_file, scene=args.scene,
        camera=args.camera, plate_camera=args.plate_camera, input_light=args.input_light, frames=args.frames,
        passes=split(args.passes) if args.passes else _passes.PASS_NAMES, formats=split(args.formats),
        multilayer=not args.no_multilayer, preview=not args.no_preview, weights=args.weights, device=args.device,
        window_policy=args.window_policy, matte_feather=args.feather, colourspace=args.colourspace,
        allow_gaps=args.allow_gaps, video_start=args.video_start, focal_mm=args.focal_mm,
        sensor_width_mm=args.sensor_width, fov_deg=args.fov, force=args.force, threads=args.threads,
    )


def run(args: argparse.Namespace) -> int:
    """``relight plate``: run the job, print the summary; exit 0, 2 (bad input) or 130 (Ctrl-C)."""
    def terminate(signum, frame):  # a scheduler's SIGTERM stops as cleanly as Ctrl-C
        raise KeyboardInterrupt

    config = config_from_args(args)
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        report = run_plate(config, progress=not args.quiet)
    except PlateInterrupted as stop:
        print(stop.report.summary(), file=sys.stderr)
        print(f"relight plate: stopped cleanly after {len(stop.report.processed)} new frames; every finished frame "
              "is kept. Re-run the same command to resume.", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(report.summary())
    print(f"  report: {report.files['report']}")
    return 0

