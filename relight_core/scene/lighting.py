"""Lights and worlds -> coloured SH at the head: the light models behind :func:`scene_to_sh`.

Each light type follows Cycles as described in :mod:`relight_core.scene`; the result is rotated
into the DPR frame of the crop camera that looks at the head.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np
import torch

from .. import camera as _camera
from .. import sh as _sh
from .description import Light, Scene, SceneFrame, World, _vec

# ------------------------------------------------------------------------------------------
# environment maps
# ------------------------------------------------------------------------------------------


def load_envmap(path: str | os.PathLike) -> np.ndarray:
    """Read an equirectangular radiance map as float64 ``[H, W, 3]`` (linear, rows from the top)."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise ValueError(f"world.path: environment map {p!r} does not exist")
    ext = os.path.splitext(p)[1].lower()
    try:
        if ext == ".npy":
            a = np.load(p, allow_pickle=False)
        elif ext == ".exr":
            a = _read_exr(p)
        else:
            import imageio.v3 as iio

            a = iio.imread(p)
            if a.dtype.kind in "ui":
                raise ValueError("expected a float (linear HDR) image; 8/16-bit images are display-encoded")
    except ValueError as exc:
        raise ValueError(f"world.path: cannot read {p!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  (reader libraries raise many types)
        raise ValueError(f"world.path: cannot read {p!r} ({type(exc).__name__}: {exc}); "
                         "save the map as .npy float [H, W, 3] or .exr") from None
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"world.path: expected an [H, W, 3] map in {p!r}, got shape {a.shape}")
    a = a[..., :3]
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"world.path: {p!r} holds negative, NaN or inf radiance")
    return a


def _read_exr(path: str) -> np.ndarray:
    try:
        import OpenEXR
    except ImportError:
        raise ValueError("reading .exr needs the OpenEXR package (pip install OpenEXR), or save the map as .npy")
    with OpenEXR.File(path) as f:
        ch = f.channels()
        for key in ("RGBA", "RGB"):
            if key in ch:
                return ch[key].pixels
        if all(k in ch for k in "RGB"):
            return np.stack([ch[k].pixels for k in "RGB"], axis=-1)
        raise ValueError(f"expected R, G, B channels, found {sorted(ch)}")


@functools.lru_cache(maxsize=16)
def _envmap_sh_cached(path: str, mtime_ns: int, size: int) -> torch.Tensor:
    return _sh.project_envmap(load_envmap(path), dtype=torch.float64)


def _envmap_sh(path: str) -> torch.Tensor:
    st = os.stat(path) if os.path.isfile(path) else None
    if st is None:
        raise ValueError(f"world.path: environment map {path!r} does not exist")
    return _envmap_sh_cached(os.path.abspath(path), st.st_mtime_ns, st.st_size)


# ------------------------------------------------------------------------------------------
# lights -> SH (world axes)
# ------------------------------------------------------------------------------------------

_CAP_SAMPLES = 32


def _directional(dirs: np.ndarray, flux: np.ndarray, color, angle: float = 0.0) -> torch.Tensor:
    """Sum of uniform caps along ``dirs`` [N, 3] with radiance x solid angle ``flux`` [N] -> [9, 3]."""
    c = _sh.directional(torch.from_numpy(dirs), torch.from_numpy(flux), color=torch.tensor(color, dtype=torch.float64),
                        angle=angle, dtype=torch.float64)
    return c.sum(0)


def _sun(light: Light) -> torch.Tensor:
    # Cycles keeps the normal-incidence irradiance at `power`; sh.directional's `irradiance` is the
    # cap's radiance x solid angle, i.e. the normal-incidence irradiance / g_1 with g_1 = (1 + cos a) / 2.
    half = light.angle / 2.0
    flux = light.effective_power * 2.0 / (1.0 + math.cos(half))
    return _directional(-light.axis[None], np.array([flux]), light.color, light.angle)


def _spot_mask(light: Light, rays: np.ndarray) -> np.ndarray:
    """Cycles' spot cone mask for unit rays [N, 3] leaving the light (world space)."""
    m = np.asarray(light.matrix, dtype=np.float64)[:3, :3]
    local = np.linalg.solve(m, rays.T).T
    cos_t = -local[:, 2] / np.linalg.norm(local, axis=1)
    cos_half = math.cos(light.spot_size / 2.0)
    if light.spot_blend <= 0.0:
        return (cos_t > cos_half).astype(np.float64)
    x = np.clip((cos_t - cos_half) / ((1.0 - cos_half) * light.spot_blend), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _cap_directions(axis: np.ndarray, one_minus_cos: float, n: int) -> np.ndarray:
    """``n`` directions spread evenly (in solid angle) over the cap around unit ``axis``."""
    k = np.arange(n) + 0.5
    cos_t = 1.0 - one_minus_cos * k / n
    sin_t = np.sqrt(np.clip(1.0 - cos_t * cos_t, 0.0, 1.0))
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    return cos_t[:, None] * axis + sin_t[:, None] * (np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v)


def _point_or_spot(light: Light, head: np.ndarray) -> torch.Tensor:
    to_light = light.position - head
    d = float(np.linalg.norm(to_light))
    if d < 1e-9:
        raise ValueError(f"light {light.name!r}: the head is at the light's position; move the light")
    omega = to_light / d
    r = light.radius
    p = light.effective_power
    if not light.normalize:
        p *= 4.0 * (math.pi * r * r if r > 0 else 1.0)
    # Uniform cap of radiance p / (4 pi^2 r^2): radiance x solid angle = p sin^2(a) / (2 pi r^2 (1 + cos a)).
    inv_sq = 1.0 / (d * d + r * r) if light.soft_falloff else 1.0 / max(d * d, r * r)
    sin2 = min(r * r * inv_sq, 1.0)
    cos_a = math.sqrt(1.0 - sin2)
    flux = p * inv_sq / (2.0 * math.pi * (1.0 + cos_a))
    if light.type == "spot":
        rays = -(_cap_directions(omega, 1.0 - cos_a, _CAP_SAMPLES) if r > 0 else omega[None])
        flux *= float(_spot_mask(light, rays).mean())
    return _directional(omega[None], np.array([flux]), light.color, 2.0 * math.asin(math.sqrt(sin2)))


def _area_patches(light: Light, head: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Local patch centres [N, 2], their local areas [N] and the local area of the shape."""
    sx = light.size
    sy = light.size if light.shape in ("square", "disk") else light.size_y
    m = np.asarray(light.matrix, dtype=np.float64)
    extent = max(sx * np.linalg.norm(m[:3, 0]), sy * np.linalg.norm(m[:3, 1]))
    dist = max(float(np.linalg.norm(light.position - head)), 1e-6)
    n = int(min(64, max(8, math.ceil(24.0 * extent / dist))))
    if light.shape in ("square", "rectangle"):
        t = (np.arange(n) + 0.5) / n - 0.5
        xx, yy = np.meshgrid(t * sx, t * sy, indexing="ij")
        pts = np.stack((xx.ravel(), yy.ravel()), axis=-1)
        return pts, np.full(n * n, sx * sy / (n * n)), sx * sy
    # disk/ellipse: polar grid with exact ring areas, points at the ring's area-centroid radius
    rings, sectors = n, 2 * n
    r0, r1 = np.arange(rings) / rings, (np.arange(rings) + 1) / rings
    rc = np.sqrt((r0 * r0 + r1 * r1) / 2.0)
    phi = 2.0 * math.pi * (np.arange(sectors) + 0.5) / sectors
    rr, pp = np.meshgrid(rc, phi, indexing="ij")
    pts = np.stack((0.5 * sx * rr * np.cos(pp), 0.5 * sy * rr * np.sin(pp)), axis=-1).reshape(-1, 2)
    ring_area = math.pi * (r1 * r1 - r0 * r0) / sectors * (0.25 * sx * sy)
    return pts, np.repeat(ring_area, sectors), math.pi * 0.25 * sx * sy


def _area(light: Light, head: np.ndarray) -> torch.Tensor:
    m = np.asarray(light.matrix, dtype=np.float64)
    pts, dA_local, a_local = _area_patches(light, head)
    scale = float(np.linalg.norm(np.cross(m[:3, 0], m[:3, 1])))
    world_pts = light.position + pts[:, :1] * m[:3, 0] + pts[:, 1:] * m[:3, 1]
    area = a_local * scale
    p = light.effective_power * (1.0 if light.normalize else area)
    radiance = p / (math.pi * area)
    vec = world_pts - head
    r = np.linalg.norm(vec, axis=1)
    if (r < 1e-9).any():
        raise ValueError(f"light {light.name!r}: the head touches the area light; move the light")
    omega = vec / r[:, None]
    cos_l = -(omega @ light.axis)  # emission cosine: the light emits along its axis toward the head
    weight = np.clip(cos_l, 0.0, None)
    if light.spread < math.pi - 1e-6:
        half = light.spread / 2.0
        norm = 1.0 / (math.tan(half) - half) if half > 0.05 else 3.0 / half**3
        tan_a = np.sqrt(np.clip(1.0 - cos_l * cos_l, 0.0, None)) / np.maximum(cos_l, 1e-12)
        weight = weight * np.clip((math.tan(half) - tan_a) * norm, 0.0, None)
    flux = radiance * weight * dA_local * scale / (r * r)
    keep = flux > 0
    if not keep.any():
        return torch.zeros(9, 3, dtype=torch.float64)
    return _directional(omega[keep], flux[keep], light.color)


def _world(world: World) -> torch.Tensor:
    if world.kind == "constant":
        return _sh.ambient(world.strength, torch.tensor(world.color, dtype=torch.float64), dtype=torch.float64)
    if world.kind == "sh":
        return torch.tensor(world.sh, dtype=torch.float64) * world.strength
    c = _envmap_sh(world.path) * world.strength
    return _sh.rotate(c, torch.tensor(world.rotation, dtype=torch.float64))


def lighting_at(frame: SceneFrame, position) -> torch.Tensor:
    """Coloured SH of a frame's lights and world at a world-space point, in **world axes**.

    Args:
        frame: the scene at one frame.
        position: ``[3]`` point in Blender world space (the head centre).

    Returns:
        float64 ``[9, 3]`` DPR coefficients (``c = L / pi``) whose x, y, z are world X, Y, Z.
    """
    head = np.asarray(_vec(position, "position", 3), dtype=np.float64)
    total = torch.zeros(9, 3, dtype=torch.float64)
    for i, light in enumerate(frame.lights):
        if light.power == 0.0:
            continue
        if light.type == "sun":
            total += _sun(light)
        elif light.type == "area":
            total += _area(light, head)
        else:
            total += _point_or_spot(light, head)
    if frame.world is not None:
        total += _world(frame.world)
    return total


def _as_matrix(m, name: str) -> np.ndarray:
    a = m.detach().cpu().double().numpy() if isinstance(m, torch.Tensor) else np.asarray(m, dtype=np.float64)
    if a.shape != (4, 4) or not np.isfinite(a).all():
        raise ValueError(f"{name}: expected a finite [4, 4] matrix, got shape {a.shape}")
    return a


def dpr_rotation(head_position, camera_to_world) -> np.ndarray:
    """Rotation ``[3, 3]`` from world axes to the DPR frame of the crop camera looking at the head.

    Args:
        head_position: ``[3]`` world point.
        camera_to_world: ``[4, 4]`` OpenCV cam2world of the view camera (or of a crop camera
            already looking at the head) in Blender world coordinates; :meth:`CameraDesc.cam2world`
            converts a Blender camera. The crop camera keeps its optical centre and roll
            (:func:`relight_core.camera.centred_camera`).
    """
    c2w = _as_matrix(camera_to_world, "camera_to_world")
    head = np.asarray(_vec(head_position, "head_position", 3), dtype=np.float64)
    if np.linalg.norm(head - c2w[:3, 3]) < 1e-9:
        raise ValueError("camera_to_world: the camera is at the head position; it cannot look at the head")
    label = _camera.centred_camera(torch.from_numpy(c2w), torch.from_numpy(head))
    crop, _ = _camera.split_label(label)
    return _sh.world_to_dpr(crop).numpy()


def scene_to_sh(scene: Scene | SceneFrame, head_to_world, camera_to_world=None, *, frame: int | None = None,
                pivot=(0.0, 0.0, 0.0), dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Coloured SH of the head under a scene's lights and world, in the crop camera's DPR frame.

    The lights are evaluated at the head position (inverse-square falloff, spot cones and area
    patches seen from there) and rotated into the DPR frame of the camera that shares the view
    camera's centre and looks at the head (ARCHITECTURE.md 2). ``shading(n, result)`` is then the
    value a white Lambertian surface with DPR-frame normal ``n`` renders to in Cycles, up to SH9
    truncation (at most ``sh.DIRECTIONAL_MAX_ERROR`` times the DC irradiance) and shadows.

    Args:
        scene: a :class:`Scene` (then ``frame`` picks the frame; optional when it has one frame)
            or a :class:`SceneFrame`.
        head_to_world: ``[4, 4]`` head space -> Blender world; the head centre is
            ``head_to_world @ (pivot, 1)``; only that point is used.
        camera_to_world: ``[4, 4]`` OpenCV cam2world of the view (or crop) camera in world
            coordinates; default: the frame's own camera (:meth:`CameraDesc.cam2world`).
        frame: frame number when ``scene`` is a :class:`Scene`.
        pivot: head-space point the lights are evaluated at, ``[3]``.
        dtype: float32 (default) or float64.

    Returns:
        ``[9, 3]`` DPR coefficients (``c = L / pi``), linear Rec.709 channels.
    """
    if isinstance(scene, Scene):
        if frame is None:
            if len(scene.frames) != 1:
                raise ValueError(f"frame: the scene has {len(scene.frames)} frames; say which one")
            frame = next(iter(scene.frames))
        sf = scene.frame(frame)
    elif isinstance(scene, SceneFrame):
        sf = scene
    else:
        raise ValueError(f"scene: expected a Scene or SceneFrame, got {type(scene).__name__}")
    h2w = _as_matrix(head_to_world, "head_to_world")
    head = (h2w @ np.append(np.asarray(_vec(pivot, "pivot", 3)), 1.0))[:3]
    if camera_to_world is None:
        if sf.camera is None:
            raise ValueError(f"camera_to_world: frame {sf.frame} has no camera; pass the view camera's cam2world")
        camera_to_world = sf.camera.cam2world()
    rot = dpr_rotation(head, camera_to_world)
    c = _sh.rotate(lighting_at(sf, head), torch.from_numpy(rot))
    return c.to(dtype)
