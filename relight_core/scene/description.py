"""The scene description: validated, JSON-able dataclasses for lights, world, camera and frames.

Units, frames and the file format are described in :mod:`relight_core.scene`; every validation
error names the field, the expectation and the value.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

FORMAT = "relight.scene"
VERSION = 1
LIGHT_TYPES = ("point", "sun", "spot", "area")
AREA_SHAPES = ("square", "rectangle", "disk", "ellipse")
SENSOR_FITS = ("auto", "horizontal", "vertical")
WORLD_KINDS = ("constant", "image", "sh")
_IDENTITY4 = tuple(tuple(float(i == j) for j in range(4)) for i in range(4))
_IDENTITY3 = tuple(tuple(float(i == j) for j in range(3)) for i in range(3))

# ------------------------------------------------------------------------------------------
# validation helpers: every message names the field (``where``), the expectation and the value
# ------------------------------------------------------------------------------------------


def _num(v, where: str, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: expected a number, got {v!r}")
    x = float(v)
    bad = not math.isfinite(x) or (lo is not None and (x < lo or (lo_open and x == lo))) or (hi is not None and x > hi)
    if bad:
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise ValueError(f"{where}: expected a finite number in {'(' if lo_open else '['}{lo_s}, {hi_s}], got {v!r}")
    return x


def _angle(v, where: str, *, lo_open: bool) -> float:
    """An angle in [0, pi] (or (0, pi]); float32 pi from Blender (3.1415927) is accepted as pi."""
    return min(_num(v, where, lo=0.0, hi=math.pi + 1e-5, lo_open=lo_open), math.pi)


def _int(v, where: str, *, lo: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or (lo is not None and v < lo):
        raise ValueError(f"{where}: expected an integer{'' if lo is None else f' >= {lo}'}, got {v!r}")
    return int(v)


def _bool(v, where: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{where}: expected true or false, got {v!r}")
    return bool(v)


def _choice(v, where: str, choices: Sequence[str]) -> str:
    s = v.lower() if isinstance(v, str) else v
    if s not in choices:
        raise ValueError(f"{where}: expected one of {', '.join(choices)}, got {v!r}")
    return s


def _vec(v, where: str, n: int, *, lo: float | None = None) -> tuple[float, ...]:
    if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) != n:
        raise ValueError(f"{where}: expected a list of {n} numbers, got {v!r}")
    return tuple(_num(x, f"{where}[{i}]", lo=lo) for i, x in enumerate(v))


def _mat(v, where: str, rows: int, cols: int) -> tuple[tuple[float, ...], ...]:
    a = np.asarray(v, dtype=object) if not isinstance(v, np.ndarray) else v
    if a.shape != (rows, cols):
        raise ValueError(f"{where}: expected a {rows}x{cols} matrix (nested lists, row-major), got shape {a.shape}")
    return tuple(_vec(list(row), f"{where}[{i}]", cols) for i, row in enumerate(a))


def _affine(v, where: str) -> tuple[tuple[float, ...], ...]:
    m = _mat(v, where, 4, 4)
    if any(abs(a - b) > 1e-6 for a, b in zip(m[3], (0.0, 0.0, 0.0, 1.0))):
        raise ValueError(f"{where}: expected the last row to be (0, 0, 0, 1), got {m[3]}")
    if abs(np.linalg.det(np.asarray(m)[:3, :3])) < 1e-12:
        raise ValueError(f"{where}: expected an invertible 3x3 part (no zero scale)")
    return m


def _check_keys(d: Mapping, where: str, allowed: Sequence[str], required: Sequence[str] = ()) -> None:
    if not isinstance(d, Mapping):
        raise ValueError(f"{where}: expected an object (dict), got {type(d).__name__}")
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed: {', '.join(allowed)}")
    missing = [k for k in required if k not in d]
    if missing:
        raise ValueError(f"{where}: missing required keys {missing}")


def _lists(m) -> list:
    return [list(r) for r in m]


def _rewhere(exc: ValueError, where: str) -> ValueError:
    """Re-root a field error of a dataclass ("light.power: ...") at ``where`` ("frames[2].lights[0].power: ...")."""
    head, sep, rest = str(exc).partition(": ")
    field_name = head.rsplit(".", 1)[1] if "." in head else ""
    return ValueError(f"{where}.{field_name}{sep}{rest}" if field_name and sep else f"{where}: {exc}")


# ------------------------------------------------------------------------------------------
# lights
# ------------------------------------------------------------------------------------------


def _matrix_from_direction(position, direction) -> tuple[tuple[float, ...], ...]:
    """Rigid matrix at ``position`` whose local -Z points along ``direction``."""
    z = -np.asarray(direction, dtype=np.float64)
    z /= np.linalg.norm(z)
    up = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.999 else np.array([0.0, 1.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, position
    return tuple(tuple(float(a) for a in r) for r in m)


@dataclass(frozen=True)
class Light:
    """One Blender light (Cycles semantics, see :mod:`relight_core.scene`).

    Attributes:
        type: ``point``, ``sun``, ``spot`` or ``area``.
        power: W (point, spot, area) or W/m^2 (sun "Strength"), >= 0.
        color: linear Rec.709 RGB (Blender's colour times its blackbody tint), >= 0.
        exposure: stops; the power is multiplied by ``2**exposure`` (Blender 4.5+; 0 before).
        normalize: Blender 4.5's "Normalize" (power independent of the size); True before 4.5.
        matrix: ``[4, 4]`` Blender ``matrix_world`` of the light object (scale included).
        radius: point/spot radius ("Radius", ``shadow_soft_size``), Blender units, >= 0.
        soft_falloff: point/spot "Soft Falloff" (Blender default True).
        angle: sun angular diameter in radians, [0, pi].
        spot_size: spot cone's full angle in radians, (0, pi].
        spot_blend: spot edge softness, [0, 1].
        shape: area shape ``square``, ``rectangle``, ``disk`` or ``ellipse``.
        size, size_y: area extent along local X and Y before object scale (``size_y`` only for
            rectangle and ellipse), > 0.
        spread: area emission spread in radians, (0, pi] (pi = Lambertian).
        name: for messages only.
    """

    type: str
    power: float
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    exposure: float = 0.0
    normalize: bool = True
    matrix: tuple[tuple[float, ...], ...] = _IDENTITY4
    radius: float = 0.0
    soft_falloff: bool = True
    angle: float = 0.0
    spot_size: float = math.pi / 4
    spot_blend: float = 0.15
    shape: str = "square"
    size: float = 1.0
    size_y: float = 1.0
    spread: float = math.pi
    name: str = ""

    def __post_init__(self):
        w = f"light {self.name!r}" if self.name else "light"
        s = object.__setattr__
        s(self, "type", _choice(self.type, f"{w}.type", LIGHT_TYPES))
        s(self, "power", _num(self.power, f"{w}.power", lo=0.0))
        s(self, "color", _vec(self.color, f"{w}.color", 3, lo=0.0))
        s(self, "exposure", _num(self.exposure, f"{w}.exposure", lo=-64.0, hi=64.0))
        s(self, "normalize", _bool(self.normalize, f"{w}.normalize"))
        s(self, "matrix", _affine(self.matrix, f"{w}.matrix"))
        s(self, "radius", _num(self.radius, f"{w}.radius", lo=0.0))
        s(self, "soft_falloff", _bool(self.soft_falloff, f"{w}.soft_falloff"))
        s(self, "angle", _angle(self.angle, f"{w}.angle", lo_open=False))
        s(self, "spot_size", _angle(self.spot_size, f"{w}.spot_size", lo_open=True))
        s(self, "spot_blend", _num(self.spot_blend, f"{w}.spot_blend", lo=0.0, hi=1.0))
        s(self, "shape", _choice(self.shape, f"{w}.shape", AREA_SHAPES))
        s(self, "size", _num(self.size, f"{w}.size", lo=0.0, lo_open=True))
        s(self, "size_y", _num(self.size_y, f"{w}.size_y", lo=0.0, lo_open=True))
        s(self, "spread", _angle(self.spread, f"{w}.spread", lo_open=True))
        if not isinstance(self.name, str):
            raise ValueError(f"light.name: expected a string, got {self.name!r}")

    @property
    def position(self) -> np.ndarray:
        """World position ``[3]``."""
        return np.asarray(self.matrix, dtype=np.float64)[:3, 3]

    @property
    def axis(self) -> np.ndarray:
        """Unit emission axis in world space (the local -Z axis) ``[3]``."""
        z = np.asarray(self.matrix, dtype=np.float64)[:3, 2]
        return -z / np.linalg.norm(z)

    @property
    def effective_power(self) -> float:
        """``power * 2**exposure`` (W or W/m^2), before the ``normalize`` factor."""
        return self.power * 2.0**self.exposure

    def to_dict(self) -> dict:
        d = {"type": self.type, "name": self.name, "power": self.power, "color": list(self.color),
             "exposure": self.exposure, "normalize": self.normalize, "matrix": _lists(self.matrix)}
        if self.type in ("point", "spot"):
            d.update(radius=self.radius, soft_falloff=self.soft_falloff)
        if self.type == "spot":
            d.update(spot_size=self.spot_size, spot_blend=self.spot_blend)
        if self.type == "sun":
            d.update(angle=self.angle)
        if self.type == "area":
            d.update(shape=self.shape, size=self.size, size_y=self.size_y, spread=self.spread)
        return d

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "light") -> "Light":
        """From :meth:`to_dict` output; ``position`` (+ ``direction``) may replace ``matrix``."""
        fields = ("type", "name", "power", "color", "exposure", "normalize", "matrix", "radius", "soft_falloff",
                  "angle", "spot_size", "spot_blend", "shape", "size", "size_y", "spread")
        _check_keys(d, where, fields + ("position", "direction"), ("type", "power"))
        kw = {k: d[k] for k in fields if k in d}
        if "matrix" in d and ("position" in d or "direction" in d):
            raise ValueError(f"{where}: give either matrix or position/direction, not both")
        if "matrix" not in d:
            pos = _vec(d.get("position", (0.0, 0.0, 0.0)), f"{where}.position", 3)
            direc = _vec(d.get("direction", (0.0, 0.0, -1.0)), f"{where}.direction", 3)
            if np.linalg.norm(direc) < 1e-12:
                raise ValueError(f"{where}.direction: expected a non-zero direction")
            kw["matrix"] = _matrix_from_direction(pos, direc)
        if isinstance(d.get("name"), str) and d["name"]:
            where = f"{where} ({d['name']!r})"
        try:
            return cls(**kw)
        except ValueError as exc:
            raise _rewhere(exc, where) from None


# ------------------------------------------------------------------------------------------
# world
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """The world's lighting, one of three kinds.

    Attributes:
        kind: ``constant`` (radiance ``color * strength`` from every direction), ``image`` (an
            equirectangular radiance map, times ``strength``) or ``sh`` (precomputed coefficients,
            times ``strength``).
        color: linear RGB (constant).
        strength: multiplier, >= 0.
        path: the map file (image): ``.npy`` float ``[H, W, 3]`` (what the add-on's bake writes),
            ``.exr`` (needs the ``OpenEXR`` package) or anything ``imageio`` reads; linear values,
            rows from the top, Blender's Environment Texture layout. Relative paths are resolved
            against the scene file's folder by :meth:`Scene.load`.
        rotation: ``[3, 3]`` rotation from the map's frame to the world (image). A Blender
            Mapping node with rotation ``R`` before the Environment Texture corresponds to
            ``R^T`` here.
        sh: ``[9, 3]`` DPR coefficients (``c = L / pi``) with x, y, z = world X, Y, Z (sh).
    """

    kind: str = "constant"
    color: tuple[float, float, float] = (0.0, 0.0, 0.0)
    strength: float = 1.0
    path: str = ""
    rotation: tuple[tuple[float, ...], ...] = _IDENTITY3
    sh: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self):
        s = object.__setattr__
        s(self, "kind", _choice(self.kind, "world.kind", WORLD_KINDS))
        s(self, "color", _vec(self.color, "world.color", 3, lo=0.0))
        s(self, "strength", _num(self.strength, "world.strength", lo=0.0))
        rot = _mat(self.rotation, "world.rotation", 3, 3)
        r = np.asarray(rot)
        if np.abs(r @ r.T - np.eye(3)).max() > 1e-4 or np.linalg.det(r) < 0:
            raise ValueError("world.rotation: expected a rotation matrix (orthonormal, determinant +1)")
        s(self, "rotation", rot)
        if self.kind == "image" and (not isinstance(self.path, str) or not self.path):
            raise ValueError(f"world.path: expected the path of an equirectangular map for kind 'image', got {self.path!r}")
        if self.kind == "sh":
            if self.sh is None:
                raise ValueError("world.sh: expected [9, 3] coefficients for kind 'sh'")
            s(self, "sh", _mat(self.sh, "world.sh", 9, 3))

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"kind": self.kind, "strength": self.strength}
        if self.kind == "constant":
            d["color"] = list(self.color)
        elif self.kind == "image":
            d.update(path=self.path, rotation=_lists(self.rotation))
        else:
            d["sh"] = _lists(self.sh)
        return d

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "world", base_dir: str | os.PathLike | None = None) -> "World":
        _check_keys(d, where, ("kind", "color", "strength", "path", "rotation", "sh"), ("kind",))
        kw = dict(d)
        if base_dir is not None and isinstance(kw.get("path"), str) and kw["path"] and not os.path.isabs(kw["path"]):
            kw["path"] = os.path.join(os.fspath(base_dir), kw["path"])
        try:
            return cls(**kw)
        except ValueError as exc:
            raise _rewhere(exc, where) from None


# ------------------------------------------------------------------------------------------
# camera
# ------------------------------------------------------------------------------------------

_BLENDER_TO_OPENCV_AXES = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class CameraDesc:
    """A Blender perspective camera at one frame.

    Attributes:
        matrix_world: ``[4, 4]`` Blender camera ``matrix_world`` (looks along its local -Z, +Y up).
        resolution: ``(width, height)`` in pixels (after Blender's resolution percentage).
        lens: focal length in mm; sensor_width, sensor_height: mm; sensor_fit: ``auto``,
            ``horizontal`` or ``vertical``; shift_x, shift_y: Blender lens shift (fractions of the
            fitted sensor side); pixel_aspect: Blender's ``(pixel_aspect_x, pixel_aspect_y)``.
        intrinsics: optional ``[3, 3]`` normalized intrinsics (u right, v down, in [0, 1]; the
            add-on writes those of ``Object.calc_matrix_camera``); when given they are used
            instead of the lens model.
        name: for messages only.
    """

    matrix_world: tuple[tuple[float, ...], ...]
    resolution: tuple[int, int]
    lens: float = 50.0
    sensor_width: float = 36.0
    sensor_height: float = 24.0
    sensor_fit: str = "auto"
    shift_x: float = 0.0
    shift_y: float = 0.0
    pixel_aspect: tuple[float, float] = (1.0, 1.0)
    intrinsics: tuple[tuple[float, ...], ...] | None = None
    name: str = ""

    def __post_init__(self):
        w = f"camera {self.name!r}" if self.name else "camera"
        s = object.__setattr__
        s(self, "matrix_world", _affine(self.matrix_world, f"{w}.matrix_world"))
        if isinstance(self.resolution, (str, bytes)) or not hasattr(self.resolution, "__len__") or len(self.resolution) != 2:
            raise ValueError(f"{w}.resolution: expected (width, height), got {self.resolution!r}")
        s(self, "resolution", tuple(_int(v, f"{w}.resolution[{i}]", lo=1) for i, v in enumerate(self.resolution)))
        s(self, "lens", _num(self.lens, f"{w}.lens", lo=0.0, lo_open=True))
        s(self, "sensor_width", _num(self.sensor_width, f"{w}.sensor_width", lo=0.0, lo_open=True))
        s(self, "sensor_height", _num(self.sensor_height, f"{w}.sensor_height", lo=0.0, lo_open=True))
        s(self, "sensor_fit", _choice(self.sensor_fit, f"{w}.sensor_fit", SENSOR_FITS))
        s(self, "shift_x", _num(self.shift_x, f"{w}.shift_x"))
        s(self, "shift_y", _num(self.shift_y, f"{w}.shift_y"))
        pa = _vec(self.pixel_aspect, f"{w}.pixel_aspect", 2)
        if min(pa) <= 0:
            raise ValueError(f"{w}.pixel_aspect: expected positive values, got {self.pixel_aspect!r}")
        s(self, "pixel_aspect", pa)
        if self.intrinsics is not None:
            k = _mat(self.intrinsics, f"{w}.intrinsics", 3, 3)
            if k[0][0] <= 0 or k[1][1] <= 0 or k[1][0] != 0 or k[2] != (0.0, 0.0, 1.0):
                raise ValueError(f"{w}.intrinsics: expected [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0, got {k}")
            s(self, "intrinsics", k)

    def cam2world(self) -> np.ndarray:
        """OpenCV cam2world ``[4, 4]`` (x right, y down, z forward; scale removed), Blender world units."""
        m = np.asarray(self.matrix_world, dtype=np.float64)
        r = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0, keepdims=True)
        out = np.eye(4)
        out[:3, :3] = r @ _BLENDER_TO_OPENCV_AXES
        out[:3, 3] = m[:3, 3]
        return out

    def lens_intrinsics(self) -> np.ndarray:
        """Normalized ``[3, 3]`` intrinsics from lens, sensor, fit, shift and pixel aspect.

        Blender's view plane (``BKE_camera_params_compute_viewplane``): with ``ax, ay`` the pixel
        aspect and ``W, H`` the resolution, the fit is horizontal when ``sensor_fit`` says so, or
        for ``auto`` when ``ax W >= ay H``; the sensor size is ``sensor_height`` only for an
        explicit ``vertical`` fit (``auto`` always uses ``sensor_width``, on the larger side).
        ``viewfac = W`` (horizontal) or ``(ay / ax) H`` (vertical); then ``fx = lens viewfac /
        (sensor W)``, ``fy = lens viewfac / (sensor (ay / ax) H)``, ``cx = 0.5 - shift_x viewfac /
        W``, ``cy = 0.5 + shift_y viewfac / ((ay / ax) H)`` (v points down).
        """
        w, h = self.resolution
        ax, ay = self.pixel_aspect
        fit = self.sensor_fit
        horizontal = fit == "horizontal" or (fit == "auto" and ax * w >= ay * h)
        sensor = self.sensor_height if fit == "vertical" else self.sensor_width
        ycor = ay / ax
        viewfac = w if horizontal else ycor * h
        return np.array([
            [self.lens * viewfac / (sensor * w), 0.0, 0.5 - self.shift_x * viewfac / w],
            [0.0, self.lens * viewfac / (sensor * ycor * h), 0.5 + self.shift_y * viewfac / (ycor * h)],
            [0.0, 0.0, 1.0],
        ])

    def K(self) -> np.ndarray:
        """Normalized intrinsics ``[3, 3]``: :attr:`intrinsics` when given, else :meth:`lens_intrinsics`."""
        return np.asarray(self.intrinsics, dtype=np.float64) if self.intrinsics is not None else self.lens_intrinsics()

    def to_dict(self) -> dict:
        d = {"name": self.name, "matrix_world": _lists(self.matrix_world), "resolution": list(self.resolution),
             "lens": self.lens, "sensor_width": self.sensor_width, "sensor_height": self.sensor_height,
             "sensor_fit": self.sensor_fit, "shift_x": self.shift_x, "shift_y": self.shift_y,
             "pixel_aspect": list(self.pixel_aspect)}
        if self.intrinsics is not None:
            d["intrinsics"] = _lists(self.intrinsics)
        return d

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "camera") -> "CameraDesc":
        allowed = ("name", "matrix_world", "resolution", "lens", "sensor_width", "sensor_height", "sensor_fit",
                   "shift_x", "shift_y", "pixel_aspect", "intrinsics")
        _check_keys(d, where, allowed, ("matrix_world", "resolution"))
        try:
            return cls(**dict(d))
        except ValueError as exc:
            raise _rewhere(exc, where) from None


# ------------------------------------------------------------------------------------------
# scene
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneFrame:
    """Lights, world and camera at one frame."""

    frame: int
    lights: tuple[Light, ...] = ()
    world: World | None = None
    camera: CameraDesc | None = None

    def __post_init__(self):
        object.__setattr__(self, "frame", _int(self.frame, "frame"))
        lights = tuple(self.lights)
        for i, light in enumerate(lights):
            if not isinstance(light, Light):
                raise ValueError(f"lights[{i}]: expected a Light, got {type(light).__name__}")
        object.__setattr__(self, "lights", lights)
        if self.world is not None and not isinstance(self.world, World):
            raise ValueError(f"world: expected a World or None, got {type(self.world).__name__}")
        if self.camera is not None and not isinstance(self.camera, CameraDesc):
            raise ValueError(f"camera: expected a CameraDesc or None, got {type(self.camera).__name__}")

    def to_dict(self) -> dict:
        return {"frame": self.frame, "lights": [x.to_dict() for x in self.lights],
                "world": None if self.world is None else self.world.to_dict(),
                "camera": None if self.camera is None else self.camera.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "frame", base_dir=None) -> "SceneFrame":
        _check_keys(d, where, ("frame", "lights", "world", "camera"), ("frame",))
        lights = d.get("lights", [])
        if not isinstance(lights, (list, tuple)):
            raise ValueError(f"{where}.lights: expected a list, got {type(lights).__name__}")
        return cls(
            frame=_int(d["frame"], f"{where}.frame"),
            lights=tuple(Light.from_dict(x, f"{where}.lights[{i}]") for i, x in enumerate(lights)),
            world=None if d.get("world") is None else World.from_dict(d["world"], f"{where}.world", base_dir),
            camera=None if d.get("camera") is None else CameraDesc.from_dict(d["camera"], f"{where}.camera"),
        )


@dataclass(frozen=True)
class Scene:
    """A scene over a frame range: one :class:`SceneFrame` per frame number."""

    frames: Mapping[int, SceneFrame] = field(default_factory=dict)
    fps: float = 24.0

    def __post_init__(self):
        frames = dict(self.frames) if isinstance(self.frames, Mapping) else {f.frame: f for f in self.frames}
        for k, f in frames.items():
            if not isinstance(f, SceneFrame) or f.frame != k:
                raise ValueError(f"frames[{k}]: expected the SceneFrame of frame {k}")
        object.__setattr__(self, "frames", dict(sorted(frames.items())))
        object.__setattr__(self, "fps", _num(self.fps, "fps", lo=0.0, lo_open=True))

    def frame(self, number: int) -> SceneFrame:
        """The :class:`SceneFrame` of frame ``number`` (ValueError naming the available frames)."""
        if number not in self.frames:
            have = list(self.frames)
            span = "no frames" if not have else f"frames {have[0]}..{have[-1]} ({len(have)} frames)"
            raise ValueError(f"frame: {number!r} is not in this scene; it has {span}")
        return self.frames[number]

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "fps": self.fps,
                "frames": [f.to_dict() for f in self.frames.values()]}

    @classmethod
    def from_dict(cls, d: Mapping, base_dir: str | os.PathLike | None = None) -> "Scene":
        _check_keys(d, "scene", ("format", "version", "fps", "frames"), ("format", "version", "frames"))
        if d["format"] != FORMAT:
            raise ValueError(f"scene.format: expected {FORMAT!r}, got {d['format']!r}")
        if d["version"] != VERSION:
            raise ValueError(f"scene.version: this relight_core reads version {VERSION}, got {d['version']!r}; "
                             "export the scene again with a matching add-on")
        if not isinstance(d["frames"], (list, tuple)):
            raise ValueError("scene.frames: expected a list of frames")
        frames = [SceneFrame.from_dict(f, f"frames[{i}]", base_dir) for i, f in enumerate(d["frames"])]
        numbers = [f.frame for f in frames]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"scene.frames: frame numbers must be unique, got {numbers}")
        return cls(frames={f.frame: f for f in frames}, fps=d.get("fps", 24.0))

    def save(self, path: str | os.PathLike) -> None:
        from ..io import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Scene":
        """Read a scene file; relative world map paths are resolved against its folder."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{p}: cannot read a relight scene file ({exc})") from None
        return cls.from_dict(data, base_dir=p.parent)
