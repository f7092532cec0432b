"""EG3D camera labels, orbit cameras, intrinsics and homographies.

Conventions (ARCHITECTURE.md section 2, PAPER_MODEL.md section 2.12)
-------------------------------------------------------------------
* **Head space** (EG3D world, "head units"): the tri-plane box is [-0.5, 0.5]^3, +y is up, the
  frontal camera sits on +z at (0, 0, 2.7) and looks at the origin; +x is image-right for it.
* **Camera axes** are OpenCV's: +x right, +y down, +z forward (the viewing direction).
* **cam2world** is a 4x4 matrix ``[[R, c], [0, 0, 0, 1]]``: the columns of ``R`` are the camera's
  x, y, z axes expressed in world coordinates and ``c`` is the optical centre. The world-to-camera
  rotation used by :func:`homography` is ``R.T``.
* **Normalized intrinsics** ``K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` map a camera-space point to
  image coordinates in [0, 1] (u right, v down), where the centre of pixel column ``j`` of a
  ``W``-wide image is at ``u = (j + 0.5) / W`` (EG3D's ray generator uses exactly this). The EG3D
  default is ``fx = fy = FOCAL_EG3D``, ``cx = cy = 0.5``.
* **Pixel intrinsics** (OpenCV convention): pixel centres are at integer coordinates, so
  ``x_pix = u * W - 0.5``. :func:`normalized_to_pixel` and :func:`pixel_to_normalized` convert.
* **Camera label**: 25 floats, the row-major cam2world (16) then the row-major normalized
  intrinsics (9).

Every function takes torch tensors (or anything ``torch.as_tensor`` accepts) and returns torch
tensors. Tensors keep their dtype (float32 or float64); Python numbers, lists and numpy arrays
become float32 unless ``dtype`` is given, on the device of the tensor arguments. Batched inputs
broadcast over leading dimensions.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .checks import as_float_tensor, check_last

__all__ = [
    "FOV_EG3D_DEG",
    "FOCAL_EG3D",
    "RADIUS_EG3D",
    "fov_to_focal",
    "focal_to_fov",
    "intrinsics",
    "normalized_to_pixel",
    "pixel_to_normalized",
    "look_at",
    "orbit_camera",
    "orbit_angles",
    "orbit",
    "camera_label",
    "split_label",
    "project_points",
    "homography",
    "homography_from_cam2world",
    "apply_homography",
    "centred_camera",
]

# ------------------------------------------------------------------------------------------
# input handling
# ------------------------------------------------------------------------------------------


def _real_number(x, name: str) -> float:
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise ValueError(f"{name}: expected a single number, got a tensor of shape {tuple(x.shape)}")
        x = x.item()
    if isinstance(x, bool) or not hasattr(x, "__float__"):
        raise TypeError(f"{name}: expected a real number, got {type(x).__name__}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    return v


def _device_of(*args) -> torch.device | None:
    """Device of the first tensor among `args` (non-tensor arguments are put there)."""
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device
    return None


def _common_dtype(*ts: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in ts) else torch.float32


def _normalize(v: torch.Tensor) -> torch.Tensor:
    # EG3D's math_utils.normalize_vecs: plain division by the norm (no epsilon).
    return v / torch.norm(v, dim=-1, keepdim=True)


FOV_EG3D_DEG = 18.837
"""EG3D's field of view in degrees. It is the *diagonal* FOV of the square image (see
:func:`fov_to_focal`); the horizontal FOV is ``focal_to_fov(FOCAL_EG3D)`` = 13.38 degrees."""

RADIUS_EG3D = 2.7
"""Distance of the EG3D orbit cameras from the world origin, in head units."""


def fov_to_focal(fov_deg: float) -> float:
    """Normalized focal length from an EG3D field of view, exactly as the released code computes it.

    ``f = 1 / (tan(fov_deg * 3.14159 / 360) * 1.414)`` (the code's rounded pi and sqrt(2)). The
    ``sqrt(2)`` makes ``fov_deg`` the diagonal field of view of a square image.

    Args:
        fov_deg: field of view in degrees, in (0, 180).

    Returns:
        The normalized focal length (Python float; 4.26339... for 18.837 degrees).
    """
    fov = _real_number(fov_deg, "fov_deg")
    if not 0.0 < fov < 180.0:
        raise ValueError(f"fov_deg: expected a field of view in (0, 180) degrees, got {fov}")
    return float(1.0 / (math.tan(fov * 3.14159 / 360.0) * 1.414))


def focal_to_fov(focal: float) -> float:
    """Horizontal (= vertical) field of view in degrees of a normalized focal length.

    This is the true per-axis FOV, ``2 * atan(1 / (2 f))``; it is *not* the inverse of
    :func:`fov_to_focal` (which uses EG3D's diagonal convention).
    """
    f = _real_number(focal, "focal")
    if f <= 0:
        raise ValueError(f"focal: expected a positive normalized focal length, got {f}")
    return math.degrees(2.0 * math.atan(0.5 / f))


FOCAL_EG3D = fov_to_focal(FOV_EG3D_DEG)
"""Normalized focal length of every EG3D camera: 4.2633913... (float32: 4.263391)."""


# ------------------------------------------------------------------------------------------
# intrinsics
# ------------------------------------------------------------------------------------------


def intrinsics(
    focal: float | torch.Tensor = FOCAL_EG3D,
    principal: Sequence[float] | torch.Tensor = (0.5, 0.5),
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Normalized pinhole intrinsics ``[[f, 0, cx], [0, f, cy], [0, 0, 1]]``.

    Args:
        focal: normalized focal length(s), a number or a tensor of shape ``[...]`` (> 0).
        principal: principal point ``(cx, cy)`` in normalized image units, shape ``[..., 2]``.
        dtype: float32 (default for non-tensor input) or float64.

    Returns:
        ``[..., 3, 3]`` tensor (batch shape = broadcast of the inputs' batch shapes).
    """
    dev = _device_of(focal, principal)
    f = as_float_tensor(focal, "focal", dtype, dev)
    p = as_float_tensor(principal, "principal", dtype, dev)
    check_last(p, "principal", (2,))
    if (f <= 0).any():
        raise ValueError("focal: expected positive normalized focal lengths")
    dt = dtype or _common_dtype(f, p)
    f, p = f.to(dt), p.to(dt)
    batch = torch.broadcast_shapes(f.shape, p.shape[:-1])
    f = f.expand(batch)
    p = p.expand(*batch, 2)
    K = torch.zeros(*batch, 3, 3, dtype=dt, device=f.device)
    K[..., 0, 0] = f
    K[..., 1, 1] = f
    K[..., 0, 2] = p[..., 0]
    K[..., 1, 2] = p[..., 1]
    K[..., 2, 2] = 1.0
    return K


def _image_scale(width, height, half_pixel: bool, like: torch.Tensor) -> torch.Tensor:
    w = _real_number(width, "width")
    h = _real_number(height, "height")
    if w <= 0 or h <= 0:
        raise ValueError(f"width, height: expected positive image size, got ({w}, {h})")
    off = -0.5 if half_pixel else 0.0
    return torch.tensor([[w, 0.0, off], [0.0, h, off], [0.0, 0.0, 1.0]], dtype=like.dtype, device=like.device)


def normalized_to_pixel(K, width: float, height: float, *, half_pixel: bool = True) -> torch.Tensor:
    """Convert normalized intrinsics to pixel intrinsics for a ``width x height`` image.

    Args:
        K: ``[..., 3, 3]`` normalized intrinsics (u, v in [0, 1]).
        width, height: image size in pixels.
        half_pixel: True (default): OpenCV convention, pixel centres at integer coordinates
            (``x = u * W - 0.5``). False: continuous convention, pixel centres at ``j + 0.5``.

    Returns:
        ``[..., 3, 3]`` pixel intrinsics ``S @ K`` with ``S = [[W, 0, -0.5], [0, H, -0.5], [0, 0, 1]]``.
    """
    K = as_float_tensor(K, "K")
    check_last(K, "K", (3, 3))
    return _image_scale(width, height, half_pixel, K) @ K


def pixel_to_normalized(K, width: float, height: float, *, half_pixel: bool = True) -> torch.Tensor:
    """Inverse of :func:`normalized_to_pixel` (same arguments, ``K`` in pixels)."""
    K = as_float_tensor(K, "K")
    check_last(K, "K", (3, 3))
    return torch.linalg.inv(_image_scale(width, height, half_pixel, K)) @ K


# ------------------------------------------------------------------------------------------
# extrinsics
# ------------------------------------------------------------------------------------------


def look_at(position, pivot=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """OpenCV cam2world of a camera at ``position`` looking at ``pivot``, EG3D's construction.

    ``forward = normalize(pivot - position)``, ``right = -normalize(up x forward)``,
    ``down = normalize(forward x right)``; the rotation's columns are (right, down, forward). With
    the default world up ``(0, 1, 0)`` the camera's +y axis points to world-down, as OpenCV wants.

    Args:
        position: camera centre(s) in world coordinates, ``[..., 3]``.
        pivot: point(s) to look at, ``[..., 3]``.
        up: world "up" direction(s), ``[..., 3]``; must not be parallel to the viewing direction.
        dtype: float32 (default for non-tensor input) or float64.

    Returns:
        ``[..., 4, 4]`` cam2world matrices.
    """
    dev = _device_of(position, pivot, up)
    pos = as_float_tensor(position, "position", dtype, dev)
    piv = as_float_tensor(pivot, "pivot", dtype, dev)
    upv = as_float_tensor(up, "up", dtype, dev)
    for t, n in ((pos, "position"), (piv, "pivot"), (upv, "up")):
        check_last(t, n, (3,))
    dt = dtype or _common_dtype(pos, piv, upv)
    pos, piv, upv = pos.to(dt), piv.to(dt), upv.to(dt)
    batch = torch.broadcast_shapes(pos.shape[:-1], piv.shape[:-1], upv.shape[:-1])
    pos = pos.expand(*batch, 3)
    return _cam2world(piv - pos, pos, upv)


def _cam2world(delta: torch.Tensor, origin: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """EG3D's create_cam2world_matrix for forward direction `delta` (unnormalized) at `origin`."""
    if (torch.norm(delta, dim=-1) <= 1e-12).any():
        raise ValueError("position, pivot: expected the camera position to differ from the pivot")
    forward = _normalize(delta)
    up = up.expand_as(forward)
    side = torch.cross(up, forward, dim=-1)
    if (torch.norm(side, dim=-1) <= 1e-9 * torch.norm(up, dim=-1).clamp_min(1e-30)).any():
        raise ValueError("up: expected a direction not parallel to the viewing direction (pivot - position)")
    right = -_normalize(side)
    down = _normalize(torch.cross(forward, right, dim=-1))
    c2w = torch.zeros(*forward.shape[:-1], 4, 4, dtype=forward.dtype, device=forward.device)
    c2w[..., :3, :3] = torch.stack((right, down, forward), dim=-1)
    c2w[..., :3, 3] = origin
    c2w[..., 3, 3] = 1.0
    return c2w


def _roll_matrix(roll: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(roll), torch.sin(roll)
    m = torch.zeros(*roll.shape, 4, 4, dtype=roll.dtype, device=roll.device)
    m[..., 0, 0] = c
    m[..., 0, 1] = -s
    m[..., 1, 0] = s
    m[..., 1, 1] = c
    m[..., 2, 2] = 1.0
    m[..., 3, 3] = 1.0
    return m


def orbit_camera(
    pitch,
    yaw,
    radius: float = RADIUS_EG3D,
    pivot=(0.0, 0.0, 0.0),
    focal: float = FOCAL_EG3D,
    *,
    roll=0.0,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """EG3D camera label of an orbit camera: the released ``args2cam(pitch, yaw)``.

    The camera centre is ``r * (sin(phi) cos(pi - h), cos(phi), sin(phi) sin(pi - h))`` with
    horizontal angle ``h = pi/2 + yaw``, vertical angle ``v = pi/2 + pitch`` clamped to
    [1e-5, pi - 1e-5] and ``phi = arccos(1 - 2 v / pi)`` (EG3D's ``LookAtPoseSampler``). Quirk kept
    from EG3D: that sphere is centred on the world origin, *not* on ``pivot``; the camera then looks
    at ``pivot`` with world up +y (:func:`look_at`). ``roll`` pre-multiplies a rotation about the
    *world* z axis, as the released modified sampler does. Positive yaw moves the camera to +x (the
    subject's left when it faces +z); positive pitch moves it down (-y). At ``pitch = yaw = 0`` (and
    pivot 0) the camera is at (0, 0, r) looking along -z with its +y axis pointing to world -y.

    In float32 (the default for non-tensor input) the computation follows the released code
    operation by operation (angles formed in double precision, then float32 trigonometry); it
    matches the conformance labels to within 1 float32 ulp (the stored vectors came from another
    torch build; the residual is in the last bit of a few rotation entries, <= 1.2e-7). float64
    gives the same camera more accurately (<= 3.2e-7 from the stored float32 labels).

    Args:
        pitch, yaw: angles in radians: numbers or tensors of broadcastable shapes ``[...]``.
        radius: distance from the pivot (head units, > 0).
        pivot: look-at point ``[3]`` (or ``[..., 3]``) in head space.
        focal: normalized focal length of the intrinsics (principal point 0.5, 0.5).
        roll: rotation about world z in radians (number or ``[...]`` tensor).
        dtype: float32 (default for non-tensor input) or float64.

    Returns:
        ``[..., 25]`` camera labels (``[25]`` for scalar angles).
    """
    # Angles are parsed in float64 so that h = pi/2 + yaw is formed in double precision and then
    # rounded, like the released code (Python float arithmetic, then a float32 tensor).
    dev = _device_of(pitch, yaw, roll, pivot)
    p64 = as_float_tensor(pitch, "pitch", torch.float64, dev)
    y64 = as_float_tensor(yaw, "yaw", torch.float64, dev)
    rl = as_float_tensor(roll, "roll", dtype, dev)
    piv = as_float_tensor(pivot, "pivot", dtype, dev)
    check_last(piv, "pivot", (3,))
    r = _real_number(radius, "radius")
    if r <= 0:
        raise ValueError(f"radius: expected a positive distance, got {r}")
    f = _real_number(focal, "focal")
    if f <= 0:
        raise ValueError(f"focal: expected a positive normalized focal length, got {f}")
    if dtype is None:
        given = [a for a in (pitch, yaw, roll, pivot) if isinstance(a, torch.Tensor)]
        dtype = torch.float64 if any(a.dtype == torch.float64 for a in given) else torch.float32
    dt = dtype
    rl, piv = rl.to(dt), piv.to(dt)
    batch = torch.broadcast_shapes(p64.shape, y64.shape, rl.shape, piv.shape[:-1])

    # Same operations in the same order as EG3D's LookAtPoseSampler.sample (zero spread).
    h = (y64 + math.pi / 2).to(dt)
    v = (p64 + math.pi / 2).to(dt)
    v = torch.clamp(v, 1e-5, math.pi - 1e-5)
    theta = h
    v = v / math.pi
    phi = torch.arccos(1 - 2 * v)
    ox = r * torch.sin(phi) * torch.cos(math.pi - theta)
    oz = r * torch.sin(phi) * torch.sin(math.pi - theta)
    oy = r * torch.cos(phi)
    ox, oy, oz = torch.broadcast_tensors(ox, oy, oz)
    origin = torch.stack((ox, oy, oz), dim=-1).expand(*batch, 3)
    # The offset is NOT added to the pivot: forward = normalize(pivot - offset), centre = offset.
    up = torch.tensor([0.0, 1.0, 0.0], dtype=dt, device=origin.device)
    c2w = _cam2world(piv - origin, origin, up)
    if (rl != 0).any():
        c2w = _roll_matrix(rl.expand(batch)) @ c2w
    K = intrinsics(torch.tensor(f, dtype=dt, device=origin.device), dtype=dt).expand(*batch, 3, 3)
    return camera_label(c2w, K)


def orbit_angles(n: int, yaw_range: float = 0.35, pitch_range: float = 0.15, *, dtype=torch.float32):
    """Pitch and yaw of an ``n``-frame demo orbit (an ellipse, EG3D's video style).

    Frame ``k`` (``t = k / n``): ``yaw = yaw_range * sin(2 pi t)``, ``pitch = pitch_range * sin(4 pi t) / 2``
    (a gentle figure-eight: frame 0 is frontal; the loop closes smoothly).

    Returns:
        ``(pitch [n], yaw [n])`` in radians.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int number of cameras, got {n!r}")
    yr = _real_number(yaw_range, "yaw_range")
    pr = _real_number(pitch_range, "pitch_range")
    t = torch.arange(n, dtype=torch.float64) / n
    yaw = yr * torch.sin(2 * math.pi * t)
    pitch = 0.5 * pr * torch.sin(4 * math.pi * t)
    return pitch.to(dtype), yaw.to(dtype)


def orbit(
    n: int,
    yaw_range: float = 0.35,
    pitch_range: float = 0.15,
    radius: float = RADIUS_EG3D,
    pivot=(0.0, 0.0, 0.0),
    focal: float = FOCAL_EG3D,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` camera labels orbiting the head for demos (see :func:`orbit_angles`); ``[n, 25]``."""
    pitch, yaw = orbit_angles(n, yaw_range, pitch_range, dtype=dtype)
    return orbit_camera(pitch, yaw, radius, pivot, focal, dtype=dtype)


# ------------------------------------------------------------------------------------------
# labels
# ------------------------------------------------------------------------------------------


def camera_label(cam2world, K) -> torch.Tensor:
    """Pack cam2world ``[..., 4, 4]`` and normalized intrinsics ``[..., 3, 3]`` into ``[..., 25]``.

    Batch shapes broadcast. The last row of cam2world must be (0, 0, 0, 1).
    """
    c2w = as_float_tensor(cam2world, "cam2world")
    k = as_float_tensor(K, "K")
    check_last(c2w, "cam2world", (4, 4))
    check_last(k, "K", (3, 3))
    bottom = c2w[..., 3, :]
    expect = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=c2w.dtype, device=c2w.device)
    if not torch.allclose(bottom, expect.expand_as(bottom), atol=1e-6):
        raise ValueError("cam2world: expected the last row to be (0, 0, 0, 1)")
    dt = _common_dtype(c2w, k)
    batch = torch.broadcast_shapes(c2w.shape[:-2], k.shape[:-2])
    a = c2w.to(dt).expand(*batch, 4, 4).reshape(*batch, 16)
    b = k.to(dt).expand(*batch, 3, 3).reshape(*batch, 9)
    return torch.cat((a, b), dim=-1)


def split_label(label) -> tuple[torch.Tensor, torch.Tensor]:
    """Unpack ``[..., 25]`` labels into (cam2world ``[..., 4, 4]``, normalized K ``[..., 3, 3]``)."""
    lab = as_float_tensor(label, "label")
    check_last(lab, "label", (25,))
    return lab[..., :16].reshape(*lab.shape[:-1], 4, 4), lab[..., 16:].reshape(*lab.shape[:-1], 3, 3)


# ------------------------------------------------------------------------------------------
# projection and homographies
# ------------------------------------------------------------------------------------------


def project_points(points, cam2world, K) -> torch.Tensor:
    """Project world points into a camera.

    Args:
        points: ``[..., 3]`` world points (in front of the camera).
        cam2world: ``[..., 4, 4]`` (batch dims broadcast with those of ``points``; for ``B``
            cameras and ``N`` points each pass points ``[B, N, 3]`` and cameras ``[B, 1, 4, 4]``).
        K: ``[..., 3, 3]`` intrinsics, normalized or in pixels; the result is in the same units.

    Returns:
        ``[..., 2]`` image coordinates (u right, v down).
    """
    p = as_float_tensor(points, "points")
    c2w = as_float_tensor(cam2world, "cam2world")
    k = as_float_tensor(K, "K")
    check_last(p, "points", (3,))
    check_last(c2w, "cam2world", (4, 4))
    check_last(k, "K", (3, 3))
    dt = _common_dtype(p, c2w, k)
    p, c2w, k = p.to(dt), c2w.to(dt), k.to(dt)
    R = c2w[..., :3, :3]
    c = c2w[..., :3, 3]
    x_cam = (R.transpose(-1, -2) @ (p - c).unsqueeze(-1))
    x_img = (k @ x_cam).squeeze(-1)
    return x_img[..., :2] / x_img[..., 2:3]


def homography(K_src, R_src, K_dst, R_dst) -> torch.Tensor:
    """Homography between two cameras that share an optical centre: ``K_dst R_dst R_src^T K_src^-1``.

    It maps homogeneous image points of the source camera to those of the destination camera
    exactly (any depth), because both cameras see the same rays.

    Args:
        K_src, K_dst: ``[..., 3, 3]`` intrinsics (normalized or pixel; the homography works in
            the same units as each).
        R_src, R_dst: ``[..., 3, 3]`` **world-to-camera** rotations (the transpose of
            ``cam2world[:3, :3]``).

    Returns:
        ``[..., 3, 3]`` homography (not rescaled; apply with :func:`apply_homography`).
    """
    ks, rs, kd, rd = (as_float_tensor(a, n) for a, n in ((K_src, "K_src"), (R_src, "R_src"), (K_dst, "K_dst"), (R_dst, "R_dst")))
    for t, n in ((ks, "K_src"), (rs, "R_src"), (kd, "K_dst"), (rd, "R_dst")):
        check_last(t, n, (3, 3))
    dt = _common_dtype(ks, rs, kd, rd)
    ks, rs, kd, rd = ks.to(dt), rs.to(dt), kd.to(dt), rd.to(dt)
    return kd @ rd @ rs.transpose(-1, -2) @ torch.linalg.inv(ks)


def homography_from_cam2world(cam2world_src, K_src, cam2world_dst, K_dst, *, atol: float = 1e-5) -> torch.Tensor:
    """:func:`homography` from two cam2world matrices; checks that the optical centres agree.

    ``atol`` is the largest allowed distance between the centres (head units).
    """
    a = as_float_tensor(cam2world_src, "cam2world_src")
    b = as_float_tensor(cam2world_dst, "cam2world_dst")
    check_last(a, "cam2world_src", (4, 4))
    check_last(b, "cam2world_dst", (4, 4))
    gap = torch.norm(a[..., :3, 3] - b[..., :3, 3].to(a.dtype), dim=-1)
    if (gap > atol).any():
        raise ValueError(
            f"cam2world_src, cam2world_dst: expected cameras sharing an optical centre, "
            f"centres differ by up to {gap.max().item():.3g} (> atol={atol})"
        )
    return homography(K_src, a[..., :3, :3].transpose(-1, -2), K_dst, b[..., :3, :3].transpose(-1, -2))


def apply_homography(H, points) -> torch.Tensor:
    """Apply ``[..., 3, 3]`` homographies to ``[..., 2]`` points (batch dims broadcast)."""
    h = as_float_tensor(H, "H")
    p = as_float_tensor(points, "points")
    check_last(h, "H", (3, 3))
    check_last(p, "points", (2,))
    dt = _common_dtype(h, p)
    h, p = h.to(dt), p.to(dt)
    ph = torch.cat((p, torch.ones_like(p[..., :1])), dim=-1).unsqueeze(-1)
    q = (h @ ph).squeeze(-1)
    return q[..., :2] / q[..., 2:3]


def centred_camera(cam2world, pivot=(0.0, 0.0, 0.0), focal: float = FOCAL_EG3D) -> torch.Tensor:
    """EG3D label of a head-centred camera that shares ``cam2world``'s optical centre.

    It looks at ``pivot`` with the target camera's own "up" (``-cam2world[:3, 1]``), so it keeps the
    target's roll, and has the EG3D intrinsics with ``focal``. Render the head with it, then warp
    into the target image with :func:`homography_from_cam2world` (ARCHITECTURE.md section 2).

    Args:
        cam2world: ``[..., 4, 4]`` target camera(s).
        pivot: ``[3]`` or ``[..., 3]`` head centre in the same world frame.
        focal: normalized focal length of the crop camera.

    Returns:
        ``[..., 25]`` labels.
    """
    c2w = as_float_tensor(cam2world, "cam2world")
    check_last(c2w, "cam2world", (4, 4))
    f = _real_number(focal, "focal")
    new = look_at(c2w[..., :3, 3], as_float_tensor(pivot, "pivot", c2w.dtype, c2w.device), -c2w[..., :3, 1])
    return camera_label(new, intrinsics(torch.tensor(f, dtype=c2w.dtype, device=c2w.device), dtype=c2w.dtype))
