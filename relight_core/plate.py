"""A plate job: read -> track -> estimate the input light -> relight -> composite -> write passes.

``relight plate INPUT --out DIR [--light PRESET | --sh FILE | --scene SCENE.json] [--camera ...]``
and the same from Python::

    from relight_core.plate import PlateJobConfig, run_plate
    report = run_plate(PlateJobConfig(input="shot.####.exr", out="out/sh010", light="key_left"))
    print(report.summary())

Per frame (ARCHITECTURE.md 4): the frame is decoded to scene-linear and display sRGB
(:mod:`relight_core.io`), the subject is tracked (:class:`relight_core.track.tracker.Tracker`),
the network's input is the EG3D crop of the display pixels at the model's ``image_size``, the
input light is estimated from the face (:func:`relight_core.track.lighting.estimate_lighting`) and
smoothed within the shot, the temporal network (:class:`VideoRelighter` semantics: a window of
earlier frames, reset at cuts) relights the crop under the target light, and the result is
composited (:mod:`relight_core.composite`) and written (:mod:`relight_core.passes`).

Decisions
---------
* **Lights and frames.** Presets and SH files are given in the **plate camera's DPR frame**
  (x image right, y into the screen, z image up): a light fixed to the camera rig, so ``key_left``
  stays on the image-left while the head moves. The estimator's input light is in the same frame.
  Both are rotated into the DPR frame of the face crop's camera, which the network expects.
  A scene (``--scene``) is converted per frame at the tracked head position in the scene's world
  (:func:`relight_core.scene.scene_to_sh`), so a light fixed in the scene stays fixed while the
  head turns. ``rotating`` orbits a key light once over the plate's frames.
* **Shading ratio** (same view): the network shades the same planes under the target light and
  under the input light; one render of both (geometry shared, super-resolution only for the
  target) gives the ratio ``(S_t + eps) / (S_in + eps)`` per channel, clamped to
  ``ratio_range``. The temporal network sees both lights as one multi-light window.
* **Resume.** ``DIR/job.json`` stores the settings; a frame is done when its record
  ``DIR/frames/frame.####.json`` (written last, atomically) names the same job id and every file
  it lists exists. A re-run skips done frames without starting the tracker or the network. A
  different setting is an error unless ``force``. Unfinished frames are computed with up to
  ``resume_warmup`` earlier frames run again (not written) so tracking smoothing and the temporal
  window are warm; results then match an uninterrupted run closely (not bit for bit).
* **Frames without a usable face** (none, too small, extreme pose, subject not visible, input
  light not estimated, camera cannot see the head) are passed through bit-identical (same view)
  or written transparent (novel view), with neutral passes, and listed in the report.
* **Several faces**: the tracker's subject (the largest, then the same person) is relit; such
  frames are listed.
* **Network colour**: this project's networks are trained on linear targets (image, albedo and
  shading are linear); the released network (``paper`` config) works on display images, so its
  outputs are decoded from sRGB and its ratio multiplies display-encoded values
  (``network_space="auto"`` picks by config name).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import composite as comp
from . import passes as _passes
from .io import PlateError, open_plate, parse_frame_range
from .io import colour as _colour

__all__ = ["PlateJobConfig", "PlateReport", "PlateInterrupted", "run_plate", "load_sh_file", "parse_camera",
           "add_arguments", "run"]

JOB_FORMAT = "relight.plate-job"
JOB_VERSION = 1
_DEFAULT_LIGHT = "key_left"
# a Blender camera at the world origin looking along +Y with +Z up (Blender's front view)
_FRONT_CAMERA = ((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, -1.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))


# ------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------


@dataclass
class PlateJobConfig:
    """Settings of one plate job (each field is a ``relight plate`` option).

    Attributes:
        input: the plate: a video file, a ``####``/``%04d`` pattern, a folder with one numbered
            sequence, or an image file.
        out: the job folder (created); must not hold the plate's own files.
        light: target light preset (``relight_core.sh.PRESETS`` or ``rotating``). Default
            ``key_left`` when no ``sh_file`` or ``scene`` is given.
        sh_file: target light file: 9 (grey) or 27 (9 x RGB) numbers, JSON (a list, nested
            ``[9][3]`` list, or ``{"sh": [...]}``) or text (whitespace/comma separated, ``#``
            comments), DPR order, ``c = L / pi``, in the plate camera's DPR frame.
        scene: a ``relight.scene`` JSON file (:mod:`relight_core.scene`): lights and world per
            frame; a frame camera there is the target camera (see ``plate_camera``).
        camera: ``"plate"`` (default: the plate's own view, composited into the plate) or
            ``"orbit:YAW,PITCH[,DISTANCE]"``: the plate camera orbited about the head by YAW
            degrees (positive: camera to the right) and PITCH degrees (positive: camera up),
            DISTANCE times as far (default 1); an RGBA head render in a plate-sized image.
        plate_camera: with ``scene``: a JSON file with the plate camera's Blender
            ``matrix_world`` (``{"matrix_world": 4x4}`` or a scene camera dict); default: the
            scene frame's camera (so the scene camera is the plate's view), else a camera at the
            world origin looking along +Y.
        input_light: None (default): estimate the plate's light per frame from the face;
            a preset name or SH file: the plate's light is known and fixed (plate camera frame).
        input_light_smoothing: weight of the previous estimate in the per-shot exponential
            smoothing of the estimated input light (0 = none, < 1).
        passes: passes to write (``relight_core.passes.PASS_NAMES``); the source-encoded beauty
            is always written.
        formats: sequence formats: ``png8``, ``png16``, ``exr16`` (HALF), ``exr32`` (FLOAT).
        multilayer: also write one multilayer EXR per frame.
        preview: write ``preview.mp4`` of the beauty at the end.
        contact_sheet: write ``contact_sheet.png`` at the end.
        frames: ``"START:END"`` (inclusive) or a ``range`` of source frame numbers; None = all.
        weights: a Relight checkpoint path; None = the shipped default weights (untrained random
            ``small`` weights when none are shipped, reported as such); ``"small"``, ``"tiny"``,
            ``"paper"`` = seeded random weights of that config (tests).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        window_policy: temporal network window: ``"sliding"`` (the paper), ``"frozen"`` (the
            released code) or ``"off"`` (every frame on its own).
        matte_feather: Gaussian feather sigma of the matte, as a fraction of the face size.
        ratio_range: (low, high) clamp of the shading ratio.
        ratio_eps: added to both shadings of the ratio (white-Lambertian units).
        network_space: ``"auto"``, ``"linear"`` or ``"display"`` (see the module docstring).
        person_segmentation: add MediaPipe's person segmentation (times the head opacity) to the
            face-mesh hull in the matte (hair, ears, neck).
        colourspace: the plate's colour space (None: sRGB for 8/16-bit and video, linear for EXR).
        allow_gaps: skip missing sequence frames instead of failing.
        video_start: number of a video's first frame.
        fps: frame rate (default: the video's, or 24).
        focal_mm, sensor_width_mm, fov_deg: plate camera lens (default 50 mm on 36 mm).
        tracker: extra :class:`relight_core.track.tracker.TrackerConfig` fields (a dict).
        force: redo frames done with other settings (overwrites them).
        resume_warmup: earlier frames run again (not written) before a resumed frame.
        threads: torch CPU threads (None: torch's default).
    """

    input: str | Path
    out: str | Path
    light: str | None = None
    sh_file: str | Path | None = None
    scene: str | Path | None = None
    camera: str = "plate"
    plate_camera: str | Path | None = None
    input_light: str | None = None
    input_light_smoothing: float = 0.5
    passes: tuple[str, ...] = _passes.PASS_NAMES
    formats: tuple[str, ...] = ("png8", "exr16")
    multilayer: bool = True
    preview: bool = True
    contact_sheet: bool = True
    frames: str | range | None = None
    weights: str | Path | None = None
    device: str = "auto"
    window_policy: str = "sliding"
    matte_feather: float = 0.05
    ratio_range: tuple[float, float] = (0.05, 8.0)
    ratio_eps: float = 0.02
    network_space: str = "auto"
    person_segmentation: bool = True
    colourspace: str | None = None
    allow_gaps: bool = False
    video_start: int = 1
    fps: float | None = None
    focal_mm: float | None = None
    sensor_width_mm: float = 36.0
    fov_deg: float | None = None
    tracker: dict = field(default_factory=dict)
    force: bool = False
    resume_warmup: int = 8
    threads: int | None = None

    def check(self) -> None:
        """Raise PlateError for settings that cannot work (before any frame is read)."""
        given = [k for k in ("light", "sh_file", "scene") if getattr(self, k) is not None]
        if len(given) > 1:
            raise PlateError(f"give one target light, not {' and '.join(given)} "
                             "(--light PRESET, --sh FILE or --scene SCENE.json)")
        unknown = [p for p in self.passes if p not in _passes.PASS_NAMES]
        if unknown:
            raise PlateError(f"unknown pass(es) {unknown}; choose from {', '.join(_passes.PASS_NAMES)}")
        bad = [f for f in self.formats if f not in _passes.SEQUENCE_FORMATS]
        if bad:
            raise PlateError(f"unknown format(s) {bad}; choose from {', '.join(_passes.SEQUENCE_FORMATS)}")
        if self.window_policy not in ("sliding", "frozen", "off"):
            raise PlateError(f"window policy {self.window_policy!r}: choose sliding, frozen or off")
        if self.network_space not in ("auto", "linear", "display"):
            raise PlateError(f"network space {self.network_space!r}: choose auto, linear or display")
        lo, hi = self.ratio_range
        if not (0 < lo <= 1 <= hi and math.isfinite(hi)):
            raise PlateError(f"ratio range {self.ratio_range}: expected 0 < low <= 1 <= high (finite)")
        if not (math.isfinite(self.matte_feather) and self.matte_feather >= 0):
            raise PlateError(f"matte feather {self.matte_feather!r}: expected a fraction of the face size >= 0")
        if not (0 <= self.input_light_smoothing < 1):
            raise PlateError(f"input light smoothing {self.input_light_smoothing!r}: expected 0 <= value < 1")
        if not (self.ratio_eps > 0 and math.isfinite(self.ratio_eps)):
            raise PlateError(f"ratio eps {self.ratio_eps!r}: expected a small positive number")
        if self.resume_warmup < 0:
            raise PlateError("resume warm-up must be >= 0 frames")
        if self.plate_camera is not None and self.scene is None:
            raise PlateError("--plate-camera places the plate camera in a scene's world; it needs --scene")
        parse_camera(self.camera)
        from .track.pose import plate_intrinsics
        from .track.tracker import TrackerConfig

        try:
            TrackerConfig(**self.tracker)
        except (TypeError, ValueError) as exc:
            raise PlateError(f"tracker settings {self.tracker}: {exc}") from None

        try:
            plate_intrinsics(100, 100, focal_mm=self.focal_mm, fov_deg=self.fov_deg,
                             sensor_width_mm=self.sensor_width_mm)
        except ValueError as exc:
            raise PlateError(f"impossible plate camera: {exc}") from None


# ------------------------------------------------------------------------------------------
# lights
# ------------------------------------------------------------------------------------------


def load_sh_file(path: str | Path) -> torch.Tensor:
    """Read an SH light file -> float32 ``[9]`` (grey) or ``[9, 3]`` (coloured).

    JSON: a list of 9 or 27 numbers, a nested ``[9][3]`` list, or an object with ``"sh"`` (or
    ``"coefficients"``). Text: 9 or 27 numbers separated by spaces, commas or new lines (``#``
    starts a comment). 27 numbers are 9 rows of (R, G, B). Raises PlateError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise PlateError(f"SH file not found: {path}; check the path")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise PlateError(f"cannot read SH file {path}: {exc}. Write 9 or 27 numbers as text or JSON") from None
    values = None
    stripped = text.strip()
    if stripped[:1] in "[{":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise PlateError(f"SH file {path} is not valid JSON ({exc}); write a list of 9 or 27 numbers") from None
        if isinstance(data, dict):
            data = data.get("sh", data.get("coefficients"))
            if data is None:
                raise PlateError(f"SH file {path}: a JSON object needs an \"sh\" list of 9 or 27 numbers")
        try:
            values = np.asarray(data, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise PlateError(f"SH file {path}: expected numbers only, in a list of 9 or 27") from None
    else:
        tokens = [t for line in text.splitlines() for t in re.split(r"[\s,;]+", line.split("#")[0]) if t]
        try:
            values = np.array([float(t) for t in tokens], dtype=np.float64)
        except ValueError as exc:
            raise PlateError(f"SH file {path}: {exc}; write 9 or 27 numbers") from None
    if values.size not in (9, 27):
        raise PlateError(f"SH file {path} holds {values.size} numbers; an SH light has 9 (grey) or "
                         "27 (9 rows of R G B) coefficients in DPR order")
    if not np.isfinite(values).all():
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        raise PlateError(f"SH file {path} has non-finite values (NaN or inf) at positions {bad}; "
                         "every coefficient must be a finite number")
    sh = torch.tensor(values, dtype=torch.float32)
    return sh if values.size == 9 else sh.reshape(9, 3)


def _preset_names() -> list[str]:
    from .sh import PRESETS

    return sorted(list(PRESETS) + ["rotating"])


def _check_preset(name: str, what: str = "light preset") -> None:
    if name not in _preset_names():
        import difflib

        close = difflib.get_close_matches(name, _preset_names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PlateError(f"unknown {what} {name!r}{hint}; choose one of {', '.join(_preset_names())}, "
                         "or give an SH file (--sh FILE) or a scene (--scene SCENE.json)")


class _Light:
    """The target light of a job: a preset, ``rotating``, an SH file or a scene."""

    def __init__(self, config: PlateJobConfig):
        self.scene = None
        if config.scene is not None:
            self.kind, self.name = "scene", str(config.scene)
            self.scene = _load_scene(config.scene)
        elif config.sh_file is not None:
            self.kind, self.name = "sh", str(config.sh_file)
            self.fixed = load_sh_file(config.sh_file)
        else:
            name = config.light or _DEFAULT_LIGHT
            _check_preset(name)
            self.kind, self.name = ("rotating" if name == "rotating" else "preset"), name
            if name != "rotating":
                from .sh import preset

                self.fixed = preset(name)

    def describe(self) -> dict:
        d = {"kind": self.kind, "name": self.name}
        if self.kind == "sh":
            d["sh"] = self.fixed.tolist()
        if self.kind == "scene":
            d["sha256"] = _file_hash(Path(self.name))
        return d

    def colour_count(self) -> int:
        if self.kind == "scene":
            return 3
        if self.kind == "rotating":
            return 1
        return 3 if self.fixed.ndim == 2 else 1

    def plate_frame_sh(self, number: int, first: int, count: int) -> torch.Tensor:
        """Target SH in the plate camera's DPR frame (not for scenes)."""
        if self.kind == "rotating":
            from .sh import rotating

            return rotating((number - first) / max(count, 1)).float()
        return self.fixed.clone()


def _load_scene(path):
    from . import scene as _scene

    try:
        return _scene.Scene.load(path)
    except ValueError as exc:
        raise PlateError(f"scene {path}: {exc}") from None


def _file_hash(path: Path, limit: int = 1 << 30) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        read = 0
        while read < limit:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            read += len(chunk)
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------
# cameras
# ------------------------------------------------------------------------------------------


def parse_camera(text: str) -> tuple:
    """``"plate"`` -> ``("plate",)``; ``"orbit:YAW,PITCH[,DISTANCE]"`` -> ``("orbit", yaw, pitch,
    distance)`` (degrees, degrees, factor). Raises PlateError for anything impossible."""
    t = str(text).strip().lower()
    if t in ("", "plate"):
        return ("plate",)
    m = re.fullmatch(r"orbit:\s*([^,]+),\s*([^,]+)(?:,\s*([^,]+))?", t)
    if not m:
        raise PlateError(f"camera {text!r}: write 'plate' or 'orbit:YAW,PITCH[,DISTANCE]' (degrees), e.g. orbit:30,10")
    try:
        yaw, pitch = float(m.group(1)), float(m.group(2))
        dist = float(m.group(3)) if m.group(3) else 1.0
    except ValueError:
        raise PlateError(f"camera {text!r}: YAW, PITCH and DISTANCE must be numbers") from None
    if not all(math.isfinite(v) for v in (yaw, pitch, dist)):
        raise PlateError(f"camera {text!r}: values must be finite numbers")
    if abs(yaw) > comp.MAX_ORBIT_YAW_DEG or abs(pitch) > comp.MAX_ORBIT_PITCH_DEG:
        raise PlateError(f"camera {text!r} is impossible for the network: yaw must be within "
                         f"+-{comp.MAX_ORBIT_YAW_DEG:g} and pitch within +-{comp.MAX_ORBIT_PITCH_DEG:g} degrees of the plate "
                         "view (it was trained on +-49 / +-26 degrees); choose a smaller orbit")
    if not 0.25 <= dist <= 10.0:
        raise PlateError(f"camera {text!r}: DISTANCE {dist:g} must be a factor in [0.25, 10] of the plate's "
                         "camera distance (the camera would sit inside the head or see it as a dot)")
    return ("orbit", yaw, pitch, dist)


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------


@dataclass
class PlateReport:
    """What a job did. ``frames`` covers the whole range (earlier runs included, from the records).

    Attributes:
        out: the job folder. input: the plate.
        frames: frame numbers of the range. processed: frames computed in this run.
        skipped: frames already done (not recomputed). relit: frames with a relit face.
        passed_through: frame -> reason, for frames without a usable face.
        several_faces: frames where more than one face was visible.
        cuts: frames where the tracker reset (shot cuts, new subject).
        interrupted: the run was stopped before the end (re-run to resume).
        error: the error that stopped the run, if any.
        trained_weights: False when the network's weights are untrained (random).
        timings: seconds per stage in this run (``decode``, ``track``, ``light``, ``network``,
            ``composite``, ``write``, ``finish``, ``total``), and ``frames_per_second``.
        warnings: sentences for the user.
        files: the job's summary files.
    """

    out: Path
    input: str
    frames: list[int] = field(default_factory=list)
    processed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    relit: list[int] = field(default_factory=list)
    passed_through: dict[int, str] = field(default_factory=dict)
    several_faces: list[int] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None
    trained_weights: bool | None = None
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        d["passed_through"] = {str(k): v for k, v in self.passed_through.items()}
        return d

    def summary(self) -> str:
        from .io.sequence import format_ranges

        lines = [f"relight plate {self.input} -> {self.out}"]
        n = len(self.frames)
        lines.append(f"  frames: {n} in range; {len(self.processed)} computed now, {len(self.skipped)} already done")
        lines.append(f"  relit: {len(self.relit)} frames" + (f" ({format_ranges(self.relit)})" if self.relit else ""))
        if self.passed_through:
            lines.append(f"  passed through unchanged: {len(self.passed_through)} frames")
            by_reason: dict[str, list[int]] = {}
            for k, v in sorted(self.passed_through.items()):
                by_reason.setdefault(re.sub(r"\d+(\.\d+)? px < ", "N px < ", v), []).append(k)
            for reason, numbers in by_reason.items():
                lines.append(f"    {reason}: {format_ranges(numbers)}")
        if self.several_faces:
            lines.append(f"  several faces visible (the tracked subject was relit): {format_ranges(self.several_faces)}")
        if self.cuts:
            lines.append(f"  tracking resets (cuts, new subject): {', '.join(map(str, self.cuts))}")
        t = self.timings
        if t.get("frames", 0):
            per = ", ".join(f"{k} {1000 * t[k] / t['frames']:.0f} ms" for k in ("decode", "track", "write") if k in t)
            lines.append(f"  per computed frame ({t['frames']:.0f}): {per}; {t.get('frames_per_second', 0):.2f} "
                         f"frames/s overall, {t.get('total', 0):.0f} s in all")
            relit = t.get("relit_frames", 0)
            if relit:
                def ms(k):
                    return f"{1000 * t.get(k, 0.0) / relit:.0f}"

                inner = ", ".join(f"{k.split('.', 1)[1]} {ms(k)}" for k in t if k.startswith("network."))
                per = f"light {ms('light')} ms, network {ms('network')} ms ({inner}), composite {ms('composite')} ms"
                lines.append(f"  per relit frame ({relit:.0f}, warm-up included): {per}")
        for w in self.warnings:
            lines.append(f"  NOTE: {w}")
        if self.interrupted:
            lines.append("  STOPPED before the end: re-run the same command to resume")
        if self.error:
            lines.append(f"  ERROR: {self.error}")
        return "\n".join(lines)


class PlateInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a job cleanly; ``report`` says what was done (re-run to resume)."""

    def __init__(self, report: PlateReport):
        super().__init__("plate job interrupted")
        self.report = report


# ------------------------------------------------------------------------------------------
# job state: settings, job.json, per-frame records
# ------------------------------------------------------------------------------------------


def _settings(config: PlateJobConfig, light: _Light, model_id: dict, plate) -> dict:
    c = config
    return _passes.json_safe({
        "input": str(Path(c.input).resolve()),
        "plate": {"kind": plate.kind, "size": list(plate.size), "fps": plate.fps},
        "light": light.describe(),
        "camera": c.camera,
        "plate_camera": None if c.plate_camera is None else str(Path(c.plate_camera).resolve()),
        "input_light": c.input_light,
        "input_light_smoothing": c.input_light_smoothing,
        "passes": list(c.passes),
        "formats": list(c.formats),
        "multilayer": c.multilayer,
        "model": model_id,
        "window_policy": c.window_policy,
        "matte_feather": c.matte_feather,
        "ratio_range": list(c.ratio_range),
        "ratio_eps": c.ratio_eps,
        "network_space": c.network_space,
        "person_segmentation": c.person_segmentation,
        "colourspace": c.colourspace,
        "video_start": c.video_start,
        "lens": {"focal_mm": c.focal_mm, "sensor_width_mm": c.sensor_width_mm, "fov_deg": c.fov_deg},
        "tracker": dict(sorted(c.tracker.items())),
    })


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


def _model_identity(weights) -> dict:
    """What the job's results depend on: the weights' content (not their path)."""
    from .checkpoints import DEFAULT_WEIGHTS

    if weights is None:
        if DEFAULT_WEIGHTS.is_file():
            return {"sha256": _file_hash(DEFAULT_WEIGHTS)}
        return {"untrained": "small, seed 0"}
    if str(weights) in ("small", "tiny", "paper"):
        return {"untrained": f"{weights}, seed 0"}
    path = Path(weights)
    if not path.is_file():
        raise PlateError(f"weights file not found: {path}; pass a Relight checkpoint (.safetensors) or leave "
                         "--weights out for the shipped weights")
    return {"sha256": _file_hash(path)}


def _load_model(weights, device):
    from .checkpoints import CheckpointError, load_default_model, load_model

    if weights is None:
        return load_default_model(device)
    if str(weights) in ("small", "tiny", "paper"):
        from .models.config import get_config
        from .models.relighter import Relighter

        state = torch.random.get_rng_state()
        torch.manual_seed(0)
        model = Relighter(get_config(str(weights)))
        torch.random.set_rng_state(state)
        return model.to(device).eval(), False
    try:
        return load_model(weights, device), True
    except CheckpointError as exc:
        raise PlateError(str(exc)) from None


_TOP_LEVEL = _passes.PASS_NAMES + tuple(_passes.SEQUENCE_FORMATS) + (
    "frames", "multilayer", "thumbs", "job.json", "report.json", "contact_sheet.png", "preview.mp4")
"""Names a job writes directly inside its folder."""


def _check_out(config: PlateJobConfig, plate) -> Path:
    """Create the job folder; refuse one that would write over or among the plate's files."""
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise PlateError(f"--out {out} is a file; give a folder for the job's outputs")
    res = out.resolve()
    sources = [Path(plate.path)] if plate.kind == "video" else list(plate.files.values())
    if plate.kind != "video" and res in {Path(p).resolve().parent for p in sources}:
        raise PlateError(f"--out {out} is the plate's own folder; the job would write among the plate's frames. "
                         "Choose another folder (e.g. a sibling 'relit' folder)")
    for p in sources:
        rp = Path(p).resolve()
        if rp == res or (res in rp.parents and rp.relative_to(res).parts[0] in _TOP_LEVEL):
            raise PlateError(f"--out {out} would write over the plate's file {p}; choose another folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlateError(f"cannot create the output folder {out}: {exc}") from None
    if not os.access(out, os.W_OK):
        raise PlateError(f"the output folder {out} is not writable; choose another --out")
    return out


# ------------------------------------------------------------------------------------------
# per-frame work
# ------------------------------------------------------------------------------------------


def _display_uint8(frame) -> np.ndarray:
    """``[H, W, 3]`` uint8 display sRGB of a frame (the tracker's and network's input)."""
    src = np.asarray(frame.source_pixels)
    if src.dtype == np.uint8 and frame.colourspace == _colour.SRGB:
        colour, _ = _colour.split_channels(src)
        return np.ascontiguousarray(colour)
    return _colour.encode(frame.rgb, None, _colour.SRGB, np.uint8)


class _LightSmoother:
    """Exponential smoothing of per-frame input-light estimates within a shot."""

    def __init__(self, weight: float):
        self.weight = weight
        self.value: np.ndarray | None = None

    def reset(self) -> None:
        self.value = None

    def __call__(self, sh: np.ndarray | None) -> np.ndarray | None:
        if sh is None:
            return self.value
        sh = np.asarray(sh, dtype=np.float64)
        self.value = sh if self.value is None else self.weight * self.value + (1 - self.weight) * sh
        return self.value


@dataclass
class _Outcome:
    passes: _passes.FramePasses
    record: dict
    thumb: dict | None = None


def _fixed_input_light(config: PlateJobConfig) -> torch.Tensor | None:
    """The plate's known light (``input_light``) in the plate camera's DPR frame, or None."""
    name = config.input_light
    if name is None:
        return None
    path = Path(name)
    if path.suffix.lower() in (".json", ".txt", ".sh") or path.is_file():
        return load_sh_file(path)
    _check_preset(name, "input light preset")
    if name == "rotating":
        raise PlateError("the input light cannot be 'rotating'; give a fixed preset or an SH file")
    from .sh import preset

    return preset(name)


class _FrameWorker:
    """Everything that runs per frame once the job is set up (tracker, network, matte)."""

    def __init__(self, config: PlateJobConfig, plate, light: _Light, model, device):
        from .models.relighter import VideoRelighter
        from .track.tracker import Tracker, TrackerConfig

        self.config, self.plate, self.light, self.model, self.device = config, plate, light, model, device
        tc = dict(fps=plate.fps, focal_mm=config.focal_mm, fov_deg=config.fov_deg,
                  sensor_width_mm=config.sensor_width_mm)
        tc.update(config.tracker)
        try:
            tracker_config = TrackerConfig(**tc)
        except (TypeError, ValueError) as exc:
            raise PlateError(f"tracker settings: {exc}") from None
        self.tracker = Tracker(tracker_config)
        self.video = None if config.window_policy == "off" else VideoRelighter(model, config.window_policy)
        self.segmenter = comp.PersonSegmenter() if config.person_segmentation else None
        self.smoother = _LightSmoother(config.input_light_smoothing)
        space = config.network_space
        self.space = ("display" if model.config.name == "paper" else "linear") if space == "auto" else space
        self.camera = parse_camera(config.camera)
        self.fixed_input = _fixed_input_light(config)
        self.estimate = None
        self.estimate_kw = False
        self.plate_first = plate.frame_numbers[0]
        self.plate_count = len(plate.frame_numbers)
        self.plate_camera_world = _plate_camera_world(config) if light.kind == "scene" else None
        self.timer: dict[str, float] = {}

    def close(self) -> None:
        self.tracker.close()
        if self.segmenter is not None:
            self.segmenter.close()

    def reset(self) -> None:
        """A new clip (a gap in the frames fed): forget tracking, temporal window, light."""
        self.tracker.reset()
        self._reset_shot()

    def _reset_shot(self) -> None:
        if self.video is not None:
            self.video.reset()
        self.smoother.reset()

    def _tick(self, stage: str, t0: float) -> float:
        t = time.perf_counter()
        self.timer[stage] = self.timer.get(stage, 0.0) + (t - t0)
        return t

    # -- views ------------------------------------------------------------------------------

    def _scene_frame(self, n: int):
        scene = self.light.scene
        return next(iter(scene.frames.values())) if len(scene.frames) == 1 else scene.frame(n)

    def _plate_c2w(self, n: int) -> np.ndarray:
        """The plate camera in the scene's world (OpenCV cam2world, metres)."""
        if self.plate_camera_world is not None:
            return self.plate_camera_world
        camera = self._scene_frame(n).camera
        return camera.cam2world() if camera is not None else _front_camera_world()

    def novel(self, n: int) -> bool:
        """Whether frame ``n`` is rendered for a camera other than the plate's."""
        if self.camera[0] != "plate":
            return True
        return (self.light.kind == "scene" and self.plate_camera_world is not None
                and self._scene_frame(n).camera is not None)

    def _view(self, frame, track):
        """None for the plate's own view, else a :class:`composite.View` or a reason string."""
        n = frame.number
        if not self.novel(n):
            return None
        if self.camera[0] == "orbit":
            from .track.pose import plate_intrinsics

            c = self.config
            K = plate_intrinsics(*frame.size, focal_mm=c.focal_mm, fov_deg=c.fov_deg, sensor_width_mm=c.sensor_width_mm)
            _, yaw, pitch, dist = self.camera
            return comp.check_view(comp.orbit_view(track.rotation, track.translation, K, frame.size, yaw, pitch, dist))
        return comp.check_view(comp.world_camera_view(self._scene_frame(n).camera, self._plate_c2w(n),
                                                      track.rotation, track.translation, track.metres_per_unit))

    # -- lights -----------------------------------------------------------------------------

    def _input_light(self, frame, track) -> tuple[np.ndarray | None, dict]:
        """Smoothed input light ``[9, 3]`` (plate camera DPR frame) or None, and its record."""
        if self.fixed_input is not None:
            sh = self.fixed_input.numpy().astype(np.float64)
            return (sh if sh.ndim == 2 else np.repeat(sh[:, None], 3, 1)), {"ok": True, "source": "given"}
        if self.estimate is None:
            try:
                from .track.lighting import estimate_lighting
            except ImportError:
                raise PlateError("input light estimation (relight_core.track.lighting) is not available in this "
                                 "installation; give the plate's light with --input-light PRESET|FILE") from None
            import inspect

            self.estimate = estimate_lighting
            self.estimate_kw = "K" in inspect.signature(estimate_lighting).parameters
        kw = {}
        if self.estimate_kw:  # the plate's intrinsics make off-centre faces' normals exact
            from .track.pose import plate_intrinsics

            c = self.config
            kw["K"] = plate_intrinsics(*frame.size, focal_mm=c.focal_mm, fov_deg=c.fov_deg,
                                       sensor_width_mm=c.sensor_width_mm)
        est = self.estimate(frame.rgb, track.landmarks, track.rotation, **kw)
        info = {"ok": bool(est.ok), "reason": str(getattr(est, "reason", "")), "source": "estimated",
                "residual": _as_number(getattr(est, "residual", None)),
                "inliers": _as_number(getattr(est, "inliers", None)),
                "albedo": getattr(est, "albedo", None), "samples": _as_number(getattr(est, "samples", None))}
        sh = None
        if est.ok:
            sh = np.asarray(est.sh, dtype=np.float64)
            if sh.shape == (9,):
                sh = np.repeat(sh[:, None], 3, 1)
            if sh.shape != (9, 3) or not np.isfinite(sh).all():
                info.update(ok=False, reason=f"the estimate has shape {list(sh.shape)} or non-finite values")
                sh = None
        smoothed = self.smoother(sh)
        if sh is None and smoothed is not None:
            info["used"] = "the shot's previous estimate"
        return smoothed, info

    def _target_light(self, n: int, track) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(target SH as given, for the record; or None for scenes) and the network's SH (crop frame)."""
        if self.light.kind == "scene":
            from .scene import scene_to_sh

            plate_c2w = self._plate_c2w(n)
            head = plate_c2w @ comp.head_to_camera_metric(track.rotation, track.translation, track.metres_per_unit)
            try:
                return None, scene_to_sh(self._scene_frame(n), head, plate_c2w).float()
            except ValueError as exc:
                raise PlateError(f"scene {self.light.name}, frame {n}: {exc}") from None
        given = self.light.plate_frame_sh(n, self.plate_first, self.plate_count)
        return given, None

    # -- one frame ----------------------------------------------------------------------------

    def process(self, frame, write: bool = True) -> _Outcome | None:
        """Track, light, relight and (when ``write``) composite one frame."""
        t = time.perf_counter()
        n = frame.number
        display = _display_uint8(frame)
        t = self._tick("decode", t)
        track = self.tracker.track(display, n)
        t = self._tick("track", t)
        record = {"frame": n, "face_found": bool(track.found), "relit": False, "reason": track.reason,
                  "faces": int(track.faces), "subject": int(track.subject), "cut": bool(track.cut),
                  "cut_reason": track.cut_reason, "box": track.box}
        if track.cut:
            self._reset_shot()
        if track.found:
            record["pose"] = {"rotation": track.rotation, "translation_head_units": track.translation,
                              "metres_per_unit": track.metres_per_unit, "yaw_deg": track.yaw,
                              "pitch_deg": track.pitch, "roll_deg": track.roll, "error_px": track.error_px}
            record["camera_label"] = track.camera_label
        elif math.isfinite(track.yaw):
            record["pose"] = {"yaw_deg": track.yaw, "pitch_deg": track.pitch, "roll_deg": track.roll}
        if not track.found:
            return self._passthrough(frame, record, track.reason) if write else None

        view = self._view(frame, track)
        if isinstance(view, str):
            return self._passthrough(frame, record, view) if write else None
        sh_in_plate, light_info = self._input_light(frame, track) if view is None else (None, {})
        t = self._tick("light", t)
        if view is None:
            record["input_light"] = light_info
            if sh_in_plate is None:
                reason = f"input light not estimated ({light_info.get('reason') or 'no estimate'})"
                return self._passthrough(frame, record, reason) if write else None

        from .sh import rotate

        label = np.asarray(track.camera_label, dtype=np.float64)
        crop_c2w = label[:16].reshape(4, 4)
        to_crop = torch.as_tensor(comp.plate_to_crop_dpr(track.rotation, crop_c2w))
        given, sh_t = self._target_light(n, track)
        if sh_t is None:
            sh_t = rotate(given.double(), to_crop).float()
        sh_in = None if sh_in_plate is None else rotate(torch.as_tensor(sh_in_plate), to_crop).float()
        record.update(target_sh=given, input_sh=sh_in_plate, target_sh_network=sh_t, input_sh_network=sh_in)

        from .track.align import align_crop, crop_affine

        size = self.model.config.image_size
        crop = align_crop(display, track.five_points, output_size=size)
        render_label, render_c2w, distance = label.astype(np.float32), crop_c2w, None
        if view is not None:
            render_label, render_c2w, distance = comp.crop_camera_for(view)
        net = self._network(crop, render_label, sh_t, sh_in)
        t = self._tick("network", t)
        if not write:
            return None
        h, w = display.shape[:2]
        src_to_crop = crop_affine(track.five_points, w, h, output_size=size)[1]
        outcome = self._composite(frame, display, track, crop, src_to_crop, net, view, render_c2w, distance, record)
        self._tick("composite", t)
        record["relit"], record["reason"] = True, ""
        return outcome

    def _network(self, crop, render_label, sh_t, sh_in) -> dict:
        """Encode, shade (target and input light), temporal window, render; crop-space results.

        Sub-stage times go to ``timer`` as ``network.encode``, ``.shade``, ``.temporal``,
        ``.render`` and ``.superres`` (synchronised on CUDA, so they add up).
        """
        from .models.relighter import split_camera

        model, dev = self.model, self.device
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

        def lap(stage: str, t0: float) -> float:
            sync()
            return self._tick(f"network.{stage}", t0)

        with torch.no_grad():
            t = time.perf_counter()
            image = torch.from_numpy(np.ascontiguousarray(crop)).to(dev).permute(2, 0, 1)[None].float() / 127.5 - 1
            albedo = model.encode(image)
            t = lap("encode", t)
            shading_t = model.shade(albedo, sh_t[None].to(dev))
            lights = [shading_t] if sh_in is None else [shading_t, model.shade(albedo, sh_in[None].to(dev))]
            shading = torch.cat(lights, 0)
            style = model.planes_to_style(albedo)
            t = lap("shade", t)
            if self.video is not None:
                smoothed = self.video.smooth(albedo, shading)
                albedo_p, shading_p = smoothed["albedo_planes"], smoothed["shading_planes"]
            else:
                albedo_p, shading_p = albedo, shading
            t = lap("temporal", t)
            c2w, K = split_camera(torch.from_numpy(np.asarray(render_label, dtype=np.float32))[None].to(dev))
            out = model.renderer(albedo_p, shading_p, c2w, K)  # geometry once, every light
            t = lap("render", t)
            lt = shading_t.shape[0]
            images = model.superres(out["features"][:lt].flatten(0, 1), style.repeat(lt, 1)).unflatten(0, (lt, 1))
            rgb = images[0] if lt == 1 else torch.stack([images[c, :, c] for c in range(3)], dim=1)
            shade = out["shading"][:, 0, 0]
            lap("superres", t)
        if self.space == "display":
            def to_lin(x):
                return torch.as_tensor(_colour.srgb_to_linear(x.clamp(0, 1).cpu().numpy()))
        else:
            def to_lin(x):
                return x.cpu()
        return {
            "image": to_lin((rgb[0] + 1) / 2).float(),                    # [3, S, S] linear
            "albedo": to_lin((out["albedo"][0, :3] + 1) / 2).float(),    # [3, N, N]
            "shading_target": shade[:lt].cpu().float(),                   # [Lt, N, N]
            "shading_input": None if sh_in is None else shade[lt:].cpu().float(),
            "depth": out["depth"][0, 0].cpu().double().numpy(),           # [N, N] along rays
            "opacity": out["opacity"][0, 0].cpu().float(),                # [N, N]
            "K": K[0].cpu().double().numpy(),
        }

    def _composite(self, frame, display, track, crop, src_to_crop, net, view, render_c2w, distance, record) -> _Outcome:
        import torch.nn.functional as F

        cfg = self.config
        size = self.model.config.image_size
        if view is None:
            w, h = frame.size
            mapping = comp.crop_mapping_from_affine(src_to_crop, size)
            rot, trans = track.rotation, track.translation
        else:
            w, h = view.size
            mapping = comp.view_to_crop_mapping(view, render_c2w, distance)
            rot, trans = view.rotation, view.translation
        roi = comp.footprint_roi(mapping, w, h)
        grid = comp.homography_grid(mapping, roi)
        n_res = net["depth"].shape[0]

        normals_cv = comp.normals_from_depth(net["depth"], net["K"])  # render camera, OpenCV axes
        to_out = comp.OPENCV_TO_BLENDER_CAMERA @ rot @ render_c2w[:3, :3]
        normals = (normals_cv.reshape(-1, 3) @ to_out.T).reshape(n_res, n_res, 3).astype(np.float32)
        depth = comp.camera_depth(net["depth"], render_c2w, net["K"], rot, trans, float(track.metres_per_unit))
        lowres = [net["albedo"], _expand3(net["shading_target"]), torch.from_numpy(normals).permute(2, 0, 1),
                  torch.from_numpy(depth)[None], net["opacity"][None]]
        if view is None:
            ratio = comp.shading_ratio(net["shading_target"], net["shading_input"], eps=cfg.ratio_eps,
                                       ratio_range=cfg.ratio_range)
            lowres.append(torch.log(ratio))
        up = F.interpolate(torch.cat(lowres, 0)[None].float(), size=(size, size), mode="bicubic", align_corners=False)[0]
        warped = comp.warp(torch.cat([net["image"], up], 0), grid).numpy().transpose(1, 2, 0)  # [h, w, C]
        inside = comp.inside_crop(grid).numpy()
        opacity = np.clip(warped[..., 13], 0, 1)
        solid = opacity >= 0.5
        normal = warped[..., 9:12]
        normal = np.where(solid[..., None], normal / np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-6), 0)
        layers = {"relit": np.concatenate([np.clip(warped[..., 0:3], 0, None), opacity[..., None]], -1),
                  "albedo": np.clip(warped[..., 3:6], 0, None), "shading": np.clip(warped[..., 6:9], 0, None),
                  "normal": normal, "depth": np.where(solid, warped[..., 12], 0.0)}
        if view is None:
            ratio = np.exp(warped[..., 14:17]).clip(*cfg.ratio_range)
            person = None if self.segmenter is None else self.segmenter(display)[roi.slices]
            box = track.box
            sigma = cfg.matte_feather * max(box[2] - box[0], box[3] - box[1])
            matte = comp.build_matte(comp.face_hull_mask(track.landmarks, roi), person, opacity,
                                     inside.astype(np.float32), sigma)
            beauty = comp.apply_ratio(frame, ratio, matte, roi, space=self.space)
            layers["ratio"] = 1.0 + matte[..., None] * (ratio - 1.0)
            layers["alpha"] = matte
            record["matte_pixels"] = int((matte > 0).sum())
        else:
            layers["alpha"] = opacity * inside
            beauty = comp.render_over_transparent(layers["relit"], layers["alpha"], roi, view.size,
                                                  frame.colourspace, np.asarray(frame.source_pixels).dtype)
        record["roi"] = [roi.x0, roi.y0, roi.x1, roi.y1]
        passes = _passes.FramePasses(frame.number, (w, h), beauty, frame.colourspace, roi,
                                     {k: np.asarray(v, dtype=np.float32) for k, v in layers.items()},
                                     frame.premultiplied)
        head = (net["opacity"].numpy() >= 0.5)[..., None]
        thumb = {"input": crop, "relit": _to_display(net["image"]), "albedo": _to_display(net["albedo"]),
                 "shading": _to_display(_expand3(net["shading_target"])),
                 "normal": np.clip((normals + 1) * 127.5 * head, 0, 255).astype(np.uint8)}
        return _Outcome(passes, record, thumb)

    def _passthrough(self, frame, record, reason: str) -> _Outcome:
        """A frame without a usable face: the plate unchanged (or a transparent novel view)."""
        record["relit"], record["reason"] = False, reason
        n = frame.number
        if not self.novel(n):
            beauty, size = comp.source_rgb_layout(frame), frame.size
        else:
            camera = self._scene_frame(n).camera if self.camera[0] == "plate" else None
            size = tuple(camera.resolution) if camera is not None else frame.size
            beauty = comp.render_over_transparent(None, None, None, size, frame.colourspace,
                                                  np.asarray(frame.source_pixels).dtype)
        return _Outcome(_passes.FramePasses(n, size, beauty, frame.colourspace, None, {}, frame.premultiplied), record)


def _front_camera_world() -> np.ndarray:
    from .scene import CameraDesc

    return CameraDesc(matrix_world=_FRONT_CAMERA, resolution=(1, 1)).cam2world()


def _plate_camera_world(config: PlateJobConfig) -> np.ndarray | None:
    """``plate_camera`` file -> OpenCV cam2world in the scene's world, or None."""
    if config.plate_camera is None:
        return None
    from .scene import CameraDesc

    path = Path(config.plate_camera)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        data = {"resolution": [1, 1], **data}
        return CameraDesc.from_dict(data, where=str(path)).cam2world()
    except (OSError, ValueError) as exc:
        raise PlateError(f"plate camera file {path}: {exc}. Write {{\"matrix_world\": [[4 numbers] x 4]}} "
                         "(Blender's camera matrix_world)") from None


def _expand3(x: torch.Tensor) -> torch.Tensor:
    return x.expand(3, *x.shape[1:]) if x.shape[0] == 1 else x


def _to_display(x: torch.Tensor) -> np.ndarray:
    """[3, h, w] linear -> [h, w, 3] uint8 sRGB."""
    return _colour.encode(x.permute(1, 2, 0).numpy().astype(np.float32), None, _colour.SRGB, np.uint8)


def _as_number(x):
    if x is None:
        return None
    a = np.asarray(x)
    if a.dtype == bool:
        return int(a.sum())
    try:
        return float(a.sum()) if a.size > 1 else float(a)
    except (TypeError, ValueError):
        return None



# ------------------------------------------------------------------------------------------
# the job
# ------------------------------------------------------------------------------------------


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise PlateError(f"device {name!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PlateError(f"device {name!r}: this torch has no CUDA GPU; use --device cpu")
    return dev


def _feed_plan(numbers: list[int], todo: set[int], warmup: int) -> list[tuple[int, bool]]:
    """Frames to read, in order, each with whether it is written (warm-up frames are not)."""
    index = {n: i for i, n in enumerate(numbers)}
    wanted: set[int] = set()
    for n in todo:
        i = index[n]
        wanted.update(numbers[max(0, i - warmup):i + 1])
    return [(n, n in todo) for n in numbers if n in wanted]


def _open(config: PlateJobConfig):
    """(reader over the whole plate, frame numbers of the job's range). Bad input -> PlateError."""
    frames = parse_frame_range(config.frames) if isinstance(config.frames, str) else config.frames
    kw = dict(colourspace=config.colourspace, fps=config.fps, video_start=config.video_start)
    ranged = open_plate(config.input, frames=frames, allow_gaps=config.allow_gaps, **kw)
    numbers = list(ranged.frame_numbers)
    if not numbers:
        raise PlateError(f"no frames of {ranged.pattern} in the range {config.frames}")
    if frames is None:
        return ranged, numbers
    # warm-up frames of a resumed range may lie before its start: read from the whole plate
    # (unless frames outside the range are unreadable: then warm up inside the range only)
    try:
        return open_plate(config.input, allow_gaps=True, **kw), numbers
    except PlateError:
        return ranged, numbers


def run_plate(config: PlateJobConfig, progress: bool | Callable | None = True,
              should_stop: Callable[[], bool] | None = None) -> PlateReport:
    """Run a plate job (resumable); see the module docstring.

    Args:
        config: the job's settings.
        progress: True: a tqdm bar on stderr (frames/s, ETA); a callable
            ``progress(done, total, record)`` called after every written frame; None/False: silent.
        should_stop: polled between frames; True stops the job cleanly (like Ctrl-C, but
            returns the report with ``interrupted=True``).

    Returns:
        :class:`PlateReport` (also written to ``DIR/report.json``).

    Raises:
        PlateError: bad input or settings (the message names the file or frame and what to do);
            frames finished before it stay valid.
        PlateInterrupted: Ctrl-C; finished frames are kept and the report is written first.
    """
    t_start = time.perf_counter()
    config.check()
    light = _Light(config)
    _fixed_input_light(config)
    plate, numbers = _open(config)
    out = _check_out(config, plate)
    settings = _settings(config, light, _model_identity(config.weights), plate)
    job_id = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    _check_job(out, settings, job_id, config.force)
    if light.kind == "scene":
        _check_scene_frames(light, numbers)
        _plate_camera_world(config)
    _passes.write_json(out / "job.json", {"format": JOB_FORMAT, "version": JOB_VERSION, "job_id": job_id,
                                   "settings": settings})

    done = set() if config.force else {n for n in numbers if _passes.read_record(out, n, job_id) is not None}
    todo = [n for n in numbers if n not in done]
    report = PlateReport(out=out, input=str(config.input), frames=list(numbers), skipped=sorted(done))
    timer: dict[str, float] = {}
    bar = worker = None
    failure: BaseException | None = None
    try:
        if todo:
            if config.threads:
                torch.set_num_threads(int(config.threads))
            device = _resolve_device(config.device)
            t0 = time.perf_counter()
            model, report.trained_weights = _load_model(config.weights, device)
            worker = _FrameWorker(config, plate, light, model, device)
            timer["setup"] = time.perf_counter() - t0
            plan = _feed_plan(plate.frame_numbers, set(todo), config.resume_warmup)
            writes = dict(plan)
            plate.frame_numbers = [n for n, _ in plan]
            bar = _progress_bar(progress, len(numbers), len(done))
            previous = None
            frames = iter(plate)
            while True:
                before = dict(worker.timer)
                t0 = time.perf_counter()
                frame = next(frames, None)
                worker.timer["decode"] = worker.timer.get("decode", 0.0) + time.perf_counter() - t0
                if frame is None:
                    break
                n = frame.number
                if previous is not None and n != previous + 1:
                    worker.reset()
                previous = n
                outcome = worker.process(frame, write=writes[n])
                if outcome is None:
                    continue
                t1 = time.perf_counter()
                stages = {k: worker.timer[k] - before.get(k, 0.0) for k in worker.timer}
                _write_outcome(out, config, outcome, job_id, stages)
                worker.timer["write"] = worker.timer.get("write", 0.0) + time.perf_counter() - t1
                report.processed.append(n)
                _advance(bar, progress, len(done) + len(report.processed), len(numbers), outcome.record)
                if should_stop is not None and should_stop():
                    report.interrupted = True
                    break
        if not report.interrupted:
            t0 = time.perf_counter()
            _finish(out, config, plate, numbers, job_id, report, light)
            timer["finish"] = time.perf_counter() - t0
    except KeyboardInterrupt:
        report.interrupted = True
        failure = PlateInterrupted(report)
    except Exception as exc:  # reported, then raised again
        report.error = str(exc)
        failure = exc
    finally:
        if worker is not None:
            timer.update(worker.timer)
        _close(bar, worker)
    _summarise(out, numbers, job_id, report, timer, t_start)
    if isinstance(failure, PlateInterrupted):
        raise failure from None
    if failure is not None:
        raise failure
    return report


def _close(bar, worker) -> None:
    if bar is not None:
        bar.close()
    if worker is not None:
        try:
            worker.close()
        except Exception:
            pass


def _check_job(out: Path, settings: dict, job_id: str, force: bool) -> None:
    path = out / "job.json"
    if not path.is_file() or force:
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        raise PlateError(f"{path} is unreadable; re-run with --force to start this job folder afresh, "
                         "or choose another --out") from None
    if old.get("job_id") == job_id:
        return
    diffs = _diff(old.get("settings", {}), settings)
    shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
    raise PlateError(f"{out} holds a job with other settings ({shown or 'another version'}). Re-run with --force "
                     "to redo the frames with the new settings (finished frames are overwritten), or choose "
                     "another --out")


def _check_scene_frames(light: _Light, numbers: list[int]) -> None:
    frames = light.scene.frames
    if len(frames) == 1:
        return
    from .io.sequence import format_ranges

    missing = [n for n in numbers if n not in frames]
    if missing:
        raise PlateError(f"scene {light.name} has no entry for plate frames {format_ranges(missing)}; export the "
                         "scene over the plate's frame range, or give a scene with a single frame for all frames")


def _write_outcome(out: Path, config: PlateJobConfig, outcome: _Outcome, job_id: str, stages: dict) -> None:
    """Write a frame's files, then its record (last: the record marks the frame done)."""
    rec = outcome.record
    n = rec["frame"]
    meta = {"relight:frame": n, "relight:job": job_id}
    t0 = time.perf_counter()
    files = _passes.write_frame(out, outcome.passes, names=config.passes, formats=config.formats,
                                multilayer=config.multilayer, metadata=meta)
    if outcome.thumb is not None:
        files.append(_passes.write_thumb(out, n, outcome.thumb))
    else:
        _passes.thumb_path(out, n).unlink(missing_ok=True)
    rec["files"] = sorted(str(Path(f).relative_to(out)) for f in files)
    rec["job_id"] = job_id
    rec["timings"] = {**{k: round(v, 4) for k, v in stages.items()}, "write": round(time.perf_counter() - t0, 4)}
    _passes.write_json(_passes.record_path(out, n), _passes.json_safe(rec))


def _progress_bar(progress, total: int, initial: int):
    if progress is True:
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit="frame", desc="relight plate", dynamic_ncols=True,
                    smoothing=0.1, file=sys.stderr)
    return None


def _advance(bar, progress, done: int, total: int, record: dict) -> None:
    if bar is not None:
        bar.update(1)
        bar.set_postfix_str(f"frame {record['frame']}: {'relit' if record['relit'] else record['reason'][:30]}")
    elif callable(progress):
        progress(done, total, record)


def _finish(out: Path, config: PlateJobConfig, plate, numbers, job_id, report: PlateReport, light) -> None:
    """Contact sheet and preview (rebuilt only when frames were computed now or they are missing)."""
    records = {n: _passes.read_record(out, n, job_id) for n in numbers}
    done = [n for n in numbers if records[n] is not None]
    fresh = bool(report.processed)
    sheet = out / "contact_sheet.png"
    if config.contact_sheet and done and (fresh or not sheet.is_file()):
        relit = [n for n in done if records[n].get("relit")]
        fallback = {}
        if not relit:
            for n in done[:: max(1, len(done) // 4)][:4]:
                files = [f for f in records[n]["files"] if f.startswith("beauty/")]
                if files:
                    from .io.images import read_image

                    stored = read_image(out / files[0])
                    rgb, _ = _colour.decode(stored, plate.colourspace or ("linear" if stored.dtype.kind == "f" else "sRGB"))
                    fallback[n] = _colour.encode(rgb, None, _colour.SRGB, np.uint8)
        title = f"{Path(str(config.input)).name}  light: {light.name}"
        _passes.write_contact_sheet(out, relit, sheet, title=title, fallback=fallback)
    preview = out / "preview.mp4"
    if config.preview and done and (fresh or not preview.is_file()):
        files = [out / f for n in done for f in records[n]["files"] if f.startswith("beauty/")]
        space = plate.colourspace or ("linear" if files and files[0].suffix == ".exr" else "sRGB")
        novel = parse_camera(config.camera)[0] != "plate" or (config.scene is not None and config.plate_camera is not None)
        _passes.write_preview(preview, files, space, plate.fps, over_black=novel)


def _summarise(out: Path, numbers, job_id, report: PlateReport, timer, t_start) -> None:
    """Fill the report from the records of the range (earlier runs too) and write report.json."""
    for n in numbers:
        rec = _passes.read_record(out, n, job_id)
        if rec is None:
            continue
        if rec.get("relit"):
            report.relit.append(n)
        else:
            report.passed_through[n] = rec.get("reason") or "not relit"
        if rec.get("faces", 0) > 1:
            report.several_faces.append(n)
        if rec.get("cut"):
            report.cuts.append(n)
    t = dict(timer)
    t["frames"] = len(report.processed)
    t["relit_frames"] = len(set(report.processed) & set(report.relit))
    t["total"] = time.perf_counter() - t_start
    t["frames_per_second"] = len(report.processed) / t["total"] if t["total"] > 0 else 0.0
    report.timings = {k: round(v, 4) for k, v in t.items()}
    if report.trained_weights is False:
        report.warnings.append("the network's weights are UNTRAINED (random): the relighting is not meaningful "
                               "until trained weights are shipped or given with --weights")
    if numbers and not report.relit and len(report.passed_through) == len(numbers):
        report.warnings.append(f"no usable face in any of the {len(numbers)} frames: the output is the plate "
                               "unchanged (see the reasons above; a smaller --tracker min size or a closer shot may help)")
    report.files = {"report": str(out / "report.json"), "job": str(out / "job.json"),
                    "contact_sheet": str(out / "contact_sheet.png"), "preview": str(out / "preview.mp4"),
                    "records": str(out / "frames")}
    try:
        _passes.write_json(out / "report.json", _passes.json_safe(report.to_json()))
    except OSError:
        pass


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``relight plate``."""
    p = parser
    p.add_argument("input", help="video file, image sequence (shot.####.exr, frame_%%04d.png), folder, or image")
    p.add_argument("--out", required=True, type=Path, help="job folder (created; re-running resumes)")
    light = p.add_mutually_exclusive_group()
    light.add_argument("--light", help=f"target light preset (default {_DEFAULT_LIGHT}); see relight_core.sh.PRESETS, or 'rotating'")
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
    split = (lambda s: tuple(x.strip() for x in s.split(",") if x.strip()))
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
    import signal

    def terminate(signum, frame):  # a scheduler's SIGTERM stops as cleanly as Ctrl-C
        raise KeyboardInterrupt

    torch.set_grad_enabled(False)
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
