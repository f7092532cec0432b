"""The settings of a plate job and the parsing of its user inputs (SH files, presets, cameras).

Everything here runs before any frame is read, so bad settings fail at once with a
:class:`~relight_core.io.PlateError` that names the file or value and says what to do.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import composite as comp
from .. import passes as _passes
from ..io import PlateError

__all__ = ["DEFAULT_LIGHT", "PlateJobConfig", "load_sh_file", "parse_camera", "check_preset", "fixed_input_light",
           "load_scene", "plate_camera_world", "front_camera_world", "file_hash"]

DEFAULT_LIGHT = "key_left"
"""Target light preset when no ``light``, ``sh_file`` or ``scene`` is given."""

# a Blender camera at the world origin looking along +Y with +Z up (Blender's front view)
_FRONT_CAMERA = ((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, -1.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))


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
            ``"paper"`` = seeded random weights of that config (tests, benchmarks).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        window_policy: temporal network window: ``"sliding"`` (the paper), ``"frozen"`` (the
            released code) or ``"off"`` (every frame on its own).
        matte_feather: Gaussian feather sigma of the matte, as a fraction of the face size.
        ratio_range: (low, high) clamp of the shading ratio.
        ratio_eps: added to both shadings of the ratio (white-Lambertian units).
        network_space: ``"auto"``, ``"linear"`` or ``"display"`` (see the package docstring).
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
        threads: torch CPU threads during the job (None: torch's setting; restored afterwards).
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
        if self.threads is not None and self.threads < 1:
            raise PlateError(f"threads {self.threads!r}: expected a positive number of CPU threads")
        if self.plate_camera is not None and self.scene is None:
            raise PlateError("--plate-camera places the plate camera in a scene's world; it needs --scene")
        parse_camera(self.camera)
        self._check_tracker_and_lens()

    def _check_tracker_and_lens(self) -> None:
        from ..track.pose import plate_intrinsics
        from ..track.tracker import TrackerConfig

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
# lights given by the user
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
    stripped = text.strip()
    values = _sh_json(path, stripped) if stripped[:1] in "[{" else _sh_text(path, text)
    if values.size not in (9, 27):
        raise PlateError(f"SH file {path} holds {values.size} numbers; an SH light has 9 (grey) or "
                         "27 (9 rows of R G B) coefficients in DPR order")
    if not np.isfinite(values).all():
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        raise PlateError(f"SH file {path} has non-finite values (NaN or inf) at positions {bad}; "
                         "every coefficient must be a finite number")
    sh = torch.tensor(values, dtype=torch.float32)
    return sh if values.size == 9 else sh.reshape(9, 3)


def _sh_json(path: Path, text: str) -> np.ndarray:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlateError(f"SH file {path} is not valid JSON ({exc}); write a list of 9 or 27 numbers") from None
    if isinstance(data, dict):
        data = data.get("sh", data.get("coefficients"))
        if data is None:
            raise PlateError(f"SH file {path}: a JSON object needs an \"sh\" list of 9 or 27 numbers")
    try:
        return np.asarray(data, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise PlateError(f"SH file {path}: expected numbers only, in a list of 9 or 27") from None


def _sh_text(path: Path, text: str) -> np.ndarray:
    tokens = [t for line in text.splitlines() for t in re.split(r"[\s,;]+", line.split("#")[0]) if t]
    try:
        return np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError as exc:
        raise PlateError(f"SH file {path}: {exc}; write 9 or 27 numbers") from None


def _preset_names() -> list[str]:
    from ..sh import PRESETS

    return sorted(list(PRESETS) + ["rotating"])


def check_preset(name: str, what: str = "light preset") -> None:
    """Raise PlateError (with the closest name and the list) for an unknown preset."""
    if name not in _preset_names():
        import difflib

        close = difflib.get_close_matches(name, _preset_names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PlateError(f"unknown {what} {name!r}{hint}; choose one of {', '.join(_preset_names())}, "
                         "or give an SH file (--sh FILE) or a scene (--scene SCENE.json)")


def fixed_input_light(config: PlateJobConfig) -> torch.Tensor | None:
    """The plate's known light (``input_light``) in the plate camera's DPR frame, or None."""
    name = config.input_light
    if name is None:
        return None
    path = Path(name)
    if path.suffix.lower() in (".json", ".txt", ".sh") or path.is_file():
        return load_sh_file(path)
    check_preset(name, "input light preset")
    if name == "rotating":
        raise PlateError("the input light cannot be 'rotating'; give a fixed preset or an SH file")
    from ..sh import preset

    return preset(name)


def load_scene(path):
    """A :class:`relight_core.scene.Scene` from its JSON file; PlateError naming the file."""
    from .. import scene as _scene

    try:
        return _scene.Scene.load(path)
    except ValueError as exc:
        raise PlateError(f"scene {path}: {exc}") from None


def file_hash(path: Path, limit: int = 1 << 30) -> str:
    """First 16 hex digits of the SHA-256 of a file's first ``limit`` bytes."""
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


def front_camera_world() -> np.ndarray:
    """OpenCV cam2world ``[4, 4]`` of Blender's front view (origin, looking along +Y, +Z up)."""
    from ..scene import CameraDesc

    return CameraDesc(matrix_world=_FRONT_CAMERA, resolution=(1, 1)).cam2world()


def plate_camera_world(config: PlateJobConfig) -> np.ndarray | None:
    """``plate_camera`` file -> OpenCV cam2world ``[4, 4]`` in the scene's world, or None."""
    if config.plate_camera is None:
        return None
    from ..scene import CameraDesc

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
