"""Second-order spherical-harmonics (SH9) lighting in DPR's convention.

Frame (the "DPR frame" of a camera; ARCHITECTURE.md 2, BLENDER.md 4.2)
----------------------------------------------------------------------
    X = image right,  Y = into the screen (away from the viewer, the viewing direction),  Z = image up.

It is right-handed (a proper rotation of the camera axes). A surface facing the camera has the
normal (0, -1, 0); DPR's half-sphere visualisation shows the hemisphere Y < 0. In matrices that
act on column vectors (``d_dpr = M @ d``):

* from OpenCV camera axes (x right, y down, z forward): ``X = x, Y = z, Z = -y``
  (:data:`OPENCV_TO_DPR`);
* from Blender camera axes (x right, y up, z toward the viewer): ``X = x, Y = -z, Z = y``
  (:data:`BLENDER_CAMERA_TO_DPR`);
* from EG3D head space seen by the frontal camera (pitch = yaw = 0): ``X = x, Y = -z, Z = y``;
  for any camera use :func:`world_to_dpr` (``OPENCV_TO_DPR @ R_cam2world^T``).

Basis and order
---------------
``Y_i`` are the orthonormal real SH without the Condon-Shortley phase, in ACN order
(index = l^2 + l + m), written in DPR's term order::

    i      0      1    2    3    4     5     6         7     8
    term   1      y    z    x    xy    yz    3z^2-1    xz    x^2-y^2
    const  1/(2 sqrt(pi)), sqrt(3)/(2 sqrt(pi)) (x3), sqrt(15)/(2 sqrt(pi)) (x2),
           sqrt(5)/(4 sqrt(pi)), sqrt(15)/(2 sqrt(pi)), sqrt(15)/(4 sqrt(pi))

Normalization of the coefficients
---------------------------------
For incident radiance ``L(w)`` (w = unit direction from the surface toward the light) the
radiance SH are ``L_i = integral L(w) Y_i(w) dw``. The coefficients used everywhere here (and by
the network) are **c_i = L_i / pi**. The *shading* of a normal ``n`` is DPR's
``sum_i A_l(i) c_i Y_i(n)`` with the clamped-cosine factors ``A_0 = pi, A_1 = 2 pi / 3,
A_2 = pi / 4``; it equals ``E(n) / pi``, the value a white Lambertian surface renders to under
irradiance ``E``. Examples: a uniform white world of radiance 1 gives ``c_0 = 2 / sqrt(pi)``
(1.128) and shading 1 everywhere; a directional light of irradiance ``E`` (W/m^2 at normal
incidence, e.g. a Blender sun of strength E) gives ``c_i = E Y_i(l) / pi`` and shading
~= ``E max(0, n.l) / pi`` with the order-2 ringing error bounded by :data:`DIRECTIONAL_MAX_ERROR`.

Grey lights are ``[..., 9]``; coloured lights are ``[..., 9, 3]`` (one 9-vector per linear RGB
channel). The released network takes grey coefficients (:func:`to_gray` converts).

All functions accept torch tensors, numpy arrays or nested lists and return torch tensors
(float32 for non-tensor input unless ``dtype`` says otherwise; float32/float64 tensors keep
their dtype; non-tensor arguments go to the device of the tensor ones). Internally constants
are float64.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Mapping

import numpy as np
import torch

from .checks import as_float_tensor, check_last

__all__ = [
    "SH_CONSTANTS",
    "SH_BANDS",
    "DPR_TERMS",
    "LAMBERT_BANDS",
    "LAMBERT",
    "DIRECTIONAL_MAX_ERROR",
    "LUMA_REC709",
    "OPENCV_TO_DPR",
    "BLENDER_CAMERA_TO_DPR",
    "sh_basis",
    "shading_basis",
    "shading",
    "irradiance",
    "world_to_dpr",
    "sh_rotation",
    "rotate",
    "project_envmap",
    "envmap_directions",
    "sh_to_envmap",
    "directional",
    "ambient",
    "to_gray",
    "ball_normals",
    "lighting_ball",
    "PRESETS",
    "preset",
    "rotating",
]

_SQPI = math.sqrt(math.pi)

SH_CONSTANTS: tuple[float, ...] = (
    0.5 / _SQPI,
    math.sqrt(3.0) / 2.0 / _SQPI,
    math.sqrt(3.0) / 2.0 / _SQPI,
    math.sqrt(3.0) / 2.0 / _SQPI,
    math.sqrt(15.0) / 2.0 / _SQPI,
    math.sqrt(15.0) / 2.0 / _SQPI,
    math.sqrt(5.0) / 4.0 / _SQPI,
    math.sqrt(15.0) / 2.0 / _SQPI,
    math.sqrt(15.0) / 4.0 / _SQPI,
)
"""Constant factor of each DPR basis polynomial (0.282095, 0.488603 x3, 1.092548 x2, 0.315392,
1.092548, 0.546274)."""

SH_BANDS: tuple[int, ...] = (0, 1, 1, 1, 2, 2, 2, 2, 2)
"""SH band ``l`` of each coefficient."""

DPR_TERMS: tuple[str, ...] = ("1", "y", "z", "x", "xy", "yz", "3z^2-1", "xz", "x^2-y^2")
"""The polynomial of each coefficient, in order."""

LAMBERT_BANDS: tuple[float, ...] = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0)
"""Clamped-cosine convolution factors A_l for l = 0, 1, 2 (Ramamoorthi & Hanrahan)."""

LAMBERT: tuple[float, ...] = tuple(LAMBERT_BANDS[b] for b in SH_BANDS)
"""A_l(i) per coefficient."""

DIRECTIONAL_MAX_ERROR = 3.0 / 32.0
"""Largest |shading - E max(0, n.l)/pi| of one directional light, in units of E/pi.

The order-2 reconstruction of max(cos t, 0) is ``1/4 + cos(t)/2 + 5/16 P_2(cos t)``; its error is
+1/16 at t = 0 and t = pi, -0.0396 at cos t = +-8/15, and largest, **+3/32 = 0.09375**, at the
terminator (t = 90 degrees). This ringing is inherent to SH9 lighting (DPR was trained with it).
"""

LUMA_REC709: tuple[float, float, float] = (0.2126, 0.7152, 0.0722)
"""Linear Rec.709 luminance weights used by :func:`to_gray`."""

OPENCV_TO_DPR = ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0))
"""Rotation from OpenCV camera axes (x right, y down, z forward) to the DPR frame (rows)."""

BLENDER_CAMERA_TO_DPR = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0))
"""Rotation from Blender camera axes (x right, y up, z toward the viewer) to the DPR frame."""


# ------------------------------------------------------------------------------------------
# input handling
# ------------------------------------------------------------------------------------------


def _coeffs(coeffs, name: str = "coeffs", dtype=None, device=None) -> tuple[torch.Tensor, bool]:
    """Validate SH coefficients; returns (tensor, coloured)."""
    c = as_float_tensor(coeffs, name, dtype, device)
    if c.dim() >= 2 and c.shape[-2] == 9 and c.shape[-1] == 3:
        return c, True
    if c.dim() >= 1 and c.shape[-1] == 9:
        return c, False
    raise ValueError(f"{name}: expected grey coefficients [..., 9] or coloured [..., 9, 3], got {list(c.shape)}")


def _const(values, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


# ------------------------------------------------------------------------------------------
# basis and shading
# ------------------------------------------------------------------------------------------


def _basis(d: torch.Tensor) -> torch.Tensor:
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    one = torch.ones_like(x)
    poly = torch.stack((one, y, z, x, x * y, y * z, 3.0 * z * z - 1.0, x * z, x * x - y * y), dim=-1)
    return poly * _const(SH_CONSTANTS, d)


def sh_basis(directions) -> torch.Tensor:
    """Orthonormal real SH ``Y_i`` (DPR order) at unit directions.

    Args:
        directions: ``[..., 3]`` unit vectors in the DPR frame (not renormalized: the polynomials
            are evaluated as given).

    Returns:
        ``[..., 9]``.
    """
    d = as_float_tensor(directions, "directions")
    check_last(d, "directions", (3,))
    return _basis(d)


def shading_basis(normals) -> torch.Tensor:
    """DPR's rendering basis ``A_l(i) Y_i(n)`` (``SH_basis`` of DPR's utils_SH), ``[..., 9]``."""
    n = as_float_tensor(normals, "normals")
    check_last(n, "normals", (3,))
    return _basis(n) * _const(LAMBERT, n)


def shading(normals, coeffs) -> torch.Tensor:
    """Shading ``E(n) / pi`` of unit normals under SH coefficients (the white-Lambertian pixel value).

    Args:
        normals: ``[..., 3]`` unit normals in the DPR frame (zero vectors give the DC term only).
        coeffs: grey ``[..., 9]`` or coloured ``[..., 9, 3]``; their batch dims broadcast against
            the normals' batch dims, right-aligned (for B lights over B images of H x W normals
            pass normals ``[B, H, W, 3]`` and coefficients ``[B, 1, 1, 9]``).

    Returns:
        ``[...]`` for grey, ``[..., 3]`` for coloured coefficients; dtype float64 if either input
        is float64, else float32.
    """
    n = as_float_tensor(normals, "normals")
    check_last(n, "normals", (3,))
    c, coloured = _coeffs(coeffs, device=n.device if not isinstance(coeffs, torch.Tensor) else None)
    dt = torch.float64 if torch.float64 in (n.dtype, c.dtype) else torch.float32
    b = _basis(n.to(dt)) * _const(LAMBERT, n.to(dt))
    c = c.to(dt)
    if coloured:
        return (b.unsqueeze(-1) * c).sum(-2)
    return (b * c).sum(-1)


def irradiance(normals, coeffs) -> torch.Tensor:
    """Irradiance ``E(n) = pi * shading(n)`` (W/m^2 for lights given in Blender units)."""
    return math.pi * shading(normals, coeffs)


def world_to_dpr(cam2world) -> torch.Tensor:
    """Rotation taking world (head-space) directions into the DPR frame of an OpenCV camera.

    Args:
        cam2world: ``[..., 4, 4]`` or ``[..., 3, 3]`` OpenCV cam2world (columns = camera axes in
            world coordinates). Column scale is removed.

    Returns:
        ``[..., 3, 3]`` matrix ``M`` with ``d_dpr = M @ d_world`` (``OPENCV_TO_DPR @ R^T``).
    """
    m = as_float_tensor(cam2world, "cam2world")
    if m.dim() >= 2 and tuple(m.shape[-2:]) == (4, 4):
        m = m[..., :3, :3]
    check_last(m, "cam2world", (3, 3))
    norms = torch.linalg.norm(m, dim=-2, keepdim=True)
    if (norms <= 1e-12).any():
        raise ValueError("cam2world: expected non-degenerate rotation columns")
    r = m / norms
    return _const(OPENCV_TO_DPR, r) @ r.transpose(-1, -2)


# ------------------------------------------------------------------------------------------
# rotation
# ------------------------------------------------------------------------------------------


def _fibonacci_sphere(n: int) -> np.ndarray:
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    r = np.sqrt(1.0 - z * z)
    return np.stack((r * np.cos(phi), r * np.sin(phi), z), axis=-1)


_FIT_DIRS = torch.from_numpy(_fibonacci_sphere(64))
_FIT_PINV = torch.linalg.pinv(_basis(_FIT_DIRS))  # [9, 64], float64


def sh_rotation(R) -> torch.Tensor:
    """9x9 matrix that rotates SH coefficients by a 3x3 rotation.

    If a light arrives from direction ``w`` before, it arrives from ``R @ w`` after:
    ``L'(w) = L(R^T w)``. The matrix is block-diagonal per band. It is found by an exact
    least-squares fit of the rotated basis at 64 well-spread directions (exact because rotations
    keep each band; residual ~1e-15 in float64). Orthogonal matrices with determinant -1
    (mirrors) are accepted too.

    Args:
        R: ``[..., 3, 3]`` orthogonal matrices (tolerance 1e-4 on ``R R^T = I``).

    Returns:
        ``[..., 9, 9]`` with ``rotate(c, R) = M @ c``; same dtype as ``R``.
    """
    r = as_float_tensor(R, "R")
    check_last(r, "R", (3, 3))
    r64 = r.to(torch.float64)
    eye = torch.eye(3, dtype=torch.float64, device=r.device)
    dev = (r64 @ r64.transpose(-1, -2) - eye).abs().amax(dim=(-1, -2))
    if (dev > 1e-4).any():
        raise ValueError(f"R: expected orthogonal 3x3 matrices, R R^T deviates from I by {dev.max().item():.3g}")
    # rows of dirs @ R are (R^T w)^T
    rotated = _basis(_FIT_DIRS.to(r.device) @ r64)  # [..., 64, 9]
    m = _FIT_PINV.to(r.device) @ rotated
    band = torch.tensor(SH_BANDS, device=r.device)
    m = m * (band[:, None] == band[None, :]).to(m.dtype)
    return m.to(r.dtype)


def rotate(coeffs, R) -> torch.Tensor:
    """Rotate grey ``[..., 9]`` or coloured ``[..., 9, 3]`` coefficients by ``R`` (see :func:`sh_rotation`).

    ``shading(R @ n, rotate(c, R)) == shading(n, c)`` for every normal ``n``.
    """
    dev = next((a.device for a in (coeffs, R) if isinstance(a, torch.Tensor)), None)
    c, coloured = _coeffs(coeffs, device=dev)
    m = sh_rotation(as_float_tensor(R, "R", device=dev))
    dt = torch.float64 if torch.float64 in (c.dtype, m.dtype) else torch.float32
    m, c = m.to(dt), c.to(dt)
    if coloured:
        return m @ c
    return (m @ c.unsqueeze(-1)).squeeze(-1)


HEAD_TO_DPR = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0))
"""World (head space, EG3D: +y up, face toward +z) to the **head DPR frame**: the DPR frame of the
frontal EG3D camera (x = head +x, y = into the screen = head -z, z = head +y). The network's SH
input is expressed in this frame, so a light stays fixed to the head when the view changes."""


def camera_to_head(coeffs, cam2world) -> torch.Tensor:
    """Coefficients in the DPR frame of an OpenCV camera (cam2world ``[..., 4, 4]`` in head space)
    -> the same light in the head DPR frame (:data:`HEAD_TO_DPR`), the frame the network takes."""
    camera_dpr = world_to_dpr(cam2world)
    rotation = _const(HEAD_TO_DPR, camera_dpr) @ camera_dpr.transpose(-1, -2)
    return rotate(coeffs, rotation)


def head_to_camera(coeffs, cam2world) -> torch.Tensor:
    """Inverse of :func:`camera_to_head`."""
    camera_dpr = world_to_dpr(cam2world)
    rotation = camera_dpr @ _const(HEAD_TO_DPR, camera_dpr).transpose(-1, -2)
    return rotate(coeffs, rotation)


# ------------------------------------------------------------------------------------------
# environment maps
# ------------------------------------------------------------------------------------------


def envmap_directions(height: int, width: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Unit direction of each texel centre of an equirectangular map, ``[height, width, 3]``.

    Layout (Blender's Environment Texture / Cycles ``direction_to_equirectangular``): rows from
    the top, ``theta = pi (r + 1/2) / H`` from +Z; columns ``phi = 2 pi (1/2 - (c + 1/2) / W)``;
    ``d = (sin theta cos phi, sin theta sin phi, cos theta)``. The image centre is +X, the column
    at u = 0.25 is +Y, the top row is +Z.
    """
    for v, n in ((height, "height"), (width, "width")):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{n}: expected a positive int, got {v!r}")
    theta = math.pi * (torch.arange(height, dtype=torch.float64) + 0.5) / height
    phi = 2.0 * math.pi * (0.5 - (torch.arange(width, dtype=torch.float64) + 0.5) / width)
    st, ct = torch.sin(theta)[:, None], torch.cos(theta)[:, None]
    d = torch.stack((st * torch.cos(phi), st * torch.sin(phi), ct.expand(height, width)), dim=-1)
    return d.to(dtype)


def project_envmap(env, rotation=None, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Project an equirectangular radiance map onto the DPR coefficients (``c = L / pi``).

    Every texel is treated as constant radiance over its exact solid angle, and the SH integrals
    over each texel are evaluated in closed form (the basis is separable in theta and phi), so a
    constant map gives exactly ``c_0 = 2 L / sqrt(pi)`` and zeros, at any resolution.

    Args:
        env: ``[H, W]`` or ``[H, W, C]`` linear radiance (layout: :func:`envmap_directions`).
        rotation: optional ``[3, 3]`` rotation taking env-frame directions to the DPR frame. None
            means the env frame *is* the DPR frame: +Z (top row) is image-up and +Y (u = 0.25)
            points into the screen; that is a Blender world seen by a camera in front view
            (looking along world +Y, Z up). For another camera pass
            ``BLENDER_CAMERA_TO_DPR @ R_cam^T`` (world-to-camera in Blender axes).
        dtype: output dtype (default: the env's if it is a float32/float64 tensor, else float32).

    Returns:
        ``[9]`` for a ``[H, W]`` map, ``[9, C]`` for ``[H, W, C]`` (C = 3 gives coloured light).
    """
    e = as_float_tensor(env, "env")
    if e.dim() not in (2, 3) or e.shape[0] < 1 or e.shape[1] < 1:
        raise ValueError(f"env: expected an equirectangular map [H, W] or [H, W, C], got {list(e.shape)}")
    out_dtype = dtype or e.dtype
    squeeze = e.dim() == 2
    e64 = e.to(torch.float64)
    if squeeze:
        e64 = e64[..., None]
    h, w = e64.shape[:2]

    dev = e.device
    th = math.pi * torch.arange(h + 1, dtype=torch.float64, device=dev) / h
    ph = 2.0 * math.pi * (0.5 - torch.arange(w + 1, dtype=torch.float64, device=dev) / w)  # decreasing
    s, c = torch.sin(th), torch.cos(th)
    # antiderivatives in theta (integrand includes the sin(theta) Jacobian)
    f_s = -c
    f_ss = 0.5 * (th - s * c)
    f_sc = 0.5 * s * s
    f_sss = -c + c**3 / 3.0
    f_ssc = s**3 / 3.0
    f_scc = -(c**3) / 3.0
    d = lambda f: f[1:] - f[:-1]  # noqa: E731  (row integrals)
    i_s, i_ss, i_sc, i_sss, i_ssc, i_scc = map(d, (f_s, f_ss, f_sc, f_sss, f_ssc, f_scc))
    theta_tab = torch.stack(
        (i_s, i_ss, i_sc, i_ss, i_sss, i_ssc, 3.0 * i_scc - i_s, i_ssc, i_sss), dim=-1
    )  # [H, 9]
    # antiderivatives in phi; column c spans [ph[c+1], ph[c]]
    g = torch.stack((ph, torch.sin(ph), -torch.cos(ph), 0.5 * torch.sin(ph) ** 2, 0.5 * torch.sin(2.0 * ph)), dim=-1)
    phi_tab = g[:-1] - g[1:]  # [W, 5]: 1, cos, sin, sin cos, cos 2phi
    phi_of = torch.tensor([0, 2, 0, 1, 3, 2, 0, 1, 4], device=dev)
    a = torch.einsum("hwc,wk->hkc", e64, phi_tab)  # [H, 5, C]
    L = torch.einsum("hi,hic->ic", theta_tab, a[:, phi_of, :]) * torch.tensor(SH_CONSTANTS, dtype=torch.float64, device=dev)[:, None]
    coeffs = L / math.pi
    if rotation is not None:
        rot = as_float_tensor(rotation, "rotation", torch.float64, dev)
        if tuple(rot.shape) != (3, 3):
            raise ValueError(f"rotation: expected a [3, 3] rotation matrix, got {list(rot.shape)}")
        coeffs = sh_rotation(rot) @ coeffs
    if squeeze:
        coeffs = coeffs[:, 0]
    return coeffs.to(out_dtype)


# ------------------------------------------------------------------------------------------
# simple lights
# ------------------------------------------------------------------------------------------


def _color(color, name, dt, device) -> torch.Tensor | None:
    if color is None:
        return None
    col = as_float_tensor(color, name, dt, device)
    check_last(col, name, (3,))
    return col


def directional(direction, irradiance=1.0, color=None, angle: float = 0.0, *, dtype=None) -> torch.Tensor:
    """Coefficients of a distant light (a Blender sun), ``c_i = E g_l Y_i(l) / pi``.

    A white Lambertian surface facing the light then shades to ~``E / pi`` (exactly
    ``1.0625 E / pi`` for a point light: order-2 ringing, see :data:`DIRECTIONAL_MAX_ERROR`).

    Args:
        direction: ``[..., 3]`` direction from the subject **toward** the light, DPR frame
            (normalized here; must be non-zero).
        irradiance: ``E`` at normal incidence (W/m^2; Blender sun strength x 2^exposure),
            number or ``[...]`` tensor. With ``angle > 0`` it is the disk's radiance integrated
            over its solid angle (``g_0 = 1``), which equals the normal-incidence irradiance
            only as the disk shrinks (Blender's sun strength behaves so: a 90-degree sun is checked
            against Cycles in tests/addon/test_addon_sh_cycles.py).
        color: optional linear RGB ``[..., 3]``; gives coloured ``[..., 9, 3]`` coefficients.
        angle: angular diameter of the sun disk in radians, [0, pi] (0 = point light). A uniform
            cap of half-angle a blurs band l by g_0 = 1, g_1 = (1 + cos a)/2,
            g_2 = cos a (1 + cos a)/2 (BLENDER.md 4.4).
        dtype: output dtype (default float32 unless a float64 tensor is given).

    Returns:
        ``[..., 9]`` or ``[..., 9, 3]``.
    """
    dev = next((a.device for a in (direction, irradiance, color) if isinstance(a, torch.Tensor)), None)
    d = as_float_tensor(direction, "direction", dtype, dev)
    check_last(d, "direction", (3,))
    e = as_float_tensor(irradiance, "irradiance", dtype, dev)
    dt = dtype or (torch.float64 if torch.float64 in (d.dtype, e.dtype) else torch.float32)
    d64 = d.to(torch.float64)
    nrm = torch.linalg.norm(d64, dim=-1, keepdim=True)
    if (nrm <= 1e-12).any():
        raise ValueError("direction: expected a non-zero direction toward the light")
    a = float(angle)
    if not (math.isfinite(a) and 0.0 <= a <= math.pi):
        raise ValueError(f"angle: expected an angular diameter in [0, pi] radians, got {angle}")
    ca = math.cos(a / 2.0)
    g = torch.tensor([1.0, (1 + ca) / 2, ca * (1 + ca) / 2], dtype=torch.float64, device=d.device)[list(SH_BANDS)]
    c = _basis(d64 / nrm) * g * e.to(torch.float64).unsqueeze(-1) / math.pi
    col = _color(color, "color", torch.float64, d.device)
    if col is not None:
        c = c.unsqueeze(-1) * col.unsqueeze(-2)
    return c.to(dt)


def ambient(radiance=1.0, color=None, *, dtype=None) -> torch.Tensor:
    """Coefficients of a uniform world of ``radiance`` (Blender world colour x strength).

    ``c_0 = 2 sqrt(pi) L / pi = 2 L / sqrt(pi)``, all others 0; the shading is ``L`` everywhere.

    Args:
        radiance: number or ``[...]`` tensor (W/m^2/sr).
        color: optional linear RGB ``[..., 3]`` -> ``[..., 9, 3]``.
        dtype: output dtype (default float32 unless a float64 tensor is given).

    Returns:
        ``[..., 9]`` or ``[..., 9, 3]``.
    """
    dev = next((a.device for a in (radiance, color) if isinstance(a, torch.Tensor)), None)
    r = as_float_tensor(radiance, "radiance", dtype, dev)
    dt = dtype or r.dtype
    c = torch.zeros(*r.shape, 9, dtype=torch.float64, device=r.device)
    c[..., 0] = 2.0 * r.to(torch.float64) / _SQPI
    col = _color(color, "color", torch.float64, r.device)
    if col is not None:
        c = c.unsqueeze(-1) * col.unsqueeze(-2)
    return c.to(dt)


def to_gray(coeffs, weights=LUMA_REC709) -> torch.Tensor:
    """Grey ``[..., 9]`` coefficients from coloured ``[..., 9, 3]`` ones (linear luminance).

    Grey input is returned unchanged (as a tensor).
    """
    c, coloured = _coeffs(coeffs)
    if not coloured:
        return c
    w = as_float_tensor(weights, "weights", c.dtype, c.device)
    if tuple(w.shape) != (3,):
        raise ValueError(f"weights: expected 3 channel weights, got shape {list(w.shape)}")
    return (c * w).sum(-1)


# ------------------------------------------------------------------------------------------
# visualisation
# ------------------------------------------------------------------------------------------


def ball_normals(size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Normals of DPR's half-sphere visualisation.

    ``x = linspace(-1, 1, size)`` (left to right), ``z = linspace(1, -1, size)`` (top to bottom),
    ``y = -sqrt(1 - x^2 - z^2)`` (facing the viewer); outside the unit disk the normal is 0.

    Returns:
        (normals ``[size, size, 3]`` float64 in the DPR frame, mask ``[size, size]`` bool).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size: expected an int >= 2, got {size!r}")
    x = torch.linspace(-1.0, 1.0, size, dtype=torch.float64)
    z = torch.linspace(1.0, -1.0, size, dtype=torch.float64)
    zz, xx = torch.meshgrid(z, x, indexing="ij")
    mask = xx * xx + zz * zz <= 1.0
    xx = xx * mask
    zz = zz * mask
    yy = -torch.sqrt((1.0 - xx * xx - zz * zz).clamp_min(0.0)) * mask
    return torch.stack((xx, yy, zz), dim=-1), mask


def lighting_ball(
    coeffs,
    size: int = 256,
    *,
    background: float = 0.0,
    exposure: float = 1.0,
    normalize: bool = False,
    to_uint8: bool = False,
    srgb: bool = True,
):
    """Render SH lighting as DPR's half-sphere "lighting ball".

    Args:
        coeffs: one light, grey ``[9]`` or coloured ``[9, 3]``.
        size: image side in pixels.
        background: value outside the disk.
        exposure: multiplier on the linear shading (ignored when ``normalize``).
        normalize: DPR demo display mapping: clip at the 95th percentile of the disk, then
            min-max to [0, 1] (jointly over channels).
        to_uint8: return a display image (numpy uint8 ``[size, size, 3]``, clipped to [0, 1],
            sRGB-encoded when ``srgb``) instead of linear values.
        srgb: apply the sRGB transfer function before quantizing (only with ``to_uint8``).

    Returns:
        torch float32 ``[size, size, 3]`` linear shading (E/pi; white Lambertian pixel values), or
        numpy uint8 ``[size, size, 3]`` when ``to_uint8``.
    """
    c, coloured = _coeffs(coeffs)
    if c.dim() != (2 if coloured else 1):
        raise ValueError(f"coeffs: expected a single light [9] or [9, 3], got {list(c.shape)}")
    n, mask = ball_normals(size)
    img = shading(n, c.to(torch.float64))
    if not coloured:
        img = img.unsqueeze(-1).expand(size, size, 3)
    img = img.clone()
    if normalize:
        vals = img[mask]
        hi = torch.quantile(vals.flatten(), 0.95)
        img = torch.minimum(img, hi)
        lo, top = img[mask].min(), img[mask].max()
        img = (img - lo) / (top - lo) if top > lo else torch.zeros_like(img)
    else:
        img = img * float(exposure)
    img[~mask] = float(background)
    if not to_uint8:
        return img.to(torch.float32)
    v = img.clamp(0.0, 1.0)
    if srgb:
        v = torch.where(v <= 0.0031308, 12.92 * v, 1.055 * v.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)
    return (v * 255.0 + 0.5).floor().to(torch.uint8).numpy()


# ------------------------------------------------------------------------------------------
# presets
# ------------------------------------------------------------------------------------------


def _unit(*v: float) -> tuple[float, float, float]:
    n = math.sqrt(sum(a * a for a in v))
    return tuple(a / n for a in v)  # type: ignore[return-value]


def _build_presets() -> dict[str, torch.Tensor]:
    f64 = torch.float64
    p: dict[str, torch.Tensor] = {}
    # "left"/"right" are image left/right (camera's view); -Y is toward the viewer.
    p["key_left"] = ambient(0.3, dtype=f64) + directional(_unit(-1.0, -1.0, 0.6), 3.0, dtype=f64)
    p["key_right"] = ambient(0.3, dtype=f64) + directional(_unit(1.0, -1.0, 0.6), 3.0, dtype=f64)
    p["top"] = ambient(0.3, dtype=f64) + directional(_unit(0.0, -0.35, 1.0), 3.0, dtype=f64)
    p["rim"] = (
        ambient(0.2, dtype=f64)
        + directional(_unit(-0.8, 0.55, 0.25), 2.5, dtype=f64)
        + directional(_unit(0.8, 0.55, 0.25), 2.5, dtype=f64)
    )
    p["under"] = ambient(0.25, dtype=f64) + directional(_unit(0.0, -0.5, -1.0), 3.0, dtype=f64)
    p["flat"] = ambient(0.8, dtype=f64)
    p["gel_blue_orange"] = (
        ambient(0.15, (1.0, 1.0, 1.0), dtype=f64)
        + directional(_unit(-1.0, -0.8, 0.4), 3.0, (1.0, 0.5, 0.15), dtype=f64)
        + directional(_unit(1.0, -0.8, 0.2), 2.0, (0.15, 0.35, 1.0), dtype=f64)
    )
    return {k: v.to(torch.float32) for k, v in p.items()}


PRESETS: Mapping[str, torch.Tensor] = MappingProxyType(_build_presets())
"""Named example lights (float32, DPR frame, c = L/pi; treat as read-only, :func:`preset` copies).

* ``key_left`` / ``key_right``: key light from image-left / image-right, in front and above
  (E = 3) plus ambient 0.3.
* ``top``: from above, slightly in front (E = 3) plus ambient 0.3.
* ``rim``: two lights from behind the subject, left and right (E = 2.5 each), ambient 0.2.
* ``under``: from below and in front (E = 3), ambient 0.25.
* ``flat``: uniform ambient 0.8 (shading 0.8 everywhere).
* ``gel_blue_orange`` (coloured ``[9, 3]``): orange key from the left, blue fill from the right,
  grey ambient 0.15.

DC terms are 0.37-0.90 per channel, like DPR's example lights (0.35-1.1).
"""


def preset(name: str) -> torch.Tensor:
    """A copy of ``PRESETS[name]`` (``[9]`` or ``[9, 3]``, float32)."""
    if name not in PRESETS:
        raise ValueError(f"name: expected one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name].clone()


def rotating(t, *, elevation: float = 0.5, irradiance: float = 3.0, ambient_radiance: float = 0.3) -> torch.Tensor:
    """A key light orbiting the head once as ``t`` goes from 0 to 1 (periodic in ``t``).

    The light direction is ``(cos e sin 2 pi t, -cos e cos 2 pi t, sin e)`` in the DPR frame:
    ``t = 0`` frontal (from the camera), 0.25 from image-right, 0.5 from behind, 0.75 from
    image-left; ``e`` = ``elevation`` (radians above the horizon).

    Args:
        t: number or ``[...]`` tensor.
        elevation, irradiance, ambient_radiance: see above (irradiance ``E``, ambient radiance).

    Returns:
        ``[..., 9]`` grey coefficients (float32 unless ``t`` is a float64 tensor).
    """
    tt = as_float_tensor(t, "t")
    a = 2.0 * math.pi * tt.to(torch.float64)
    e = float(elevation)
    d = torch.stack((math.cos(e) * torch.sin(a), -math.cos(e) * torch.cos(a), torch.full_like(a, math.sin(e))), dim=-1)
    c = directional(d, irradiance, dtype=torch.float64) + ambient(ambient_radiance, dtype=torch.float64)
    return c.to(tt.dtype)


def sh_to_envmap(coeffs, height: int, width: int, *, clamp: bool = False) -> torch.Tensor:
    """The radiance an SH light describes, as an equirectangular map (inverse of :func:`project_envmap`).

    ``L(w) = pi * sum_i c_i Y_i(w)`` at every texel centre (:func:`envmap_directions` layout:
    Blender's Environment Texture, image centre +X, top row +Z), with the directions read in
    the frame the coefficients are given in (rotate them first, :func:`rotate`, to place the
    light in a Blender world). ``project_envmap(sh_to_envmap(c, H, W))`` gives back ``c`` up to
    the texel discretisation (<1e-3 relative at 32 x 64).

    Args:
        coeffs: grey ``[9]`` or coloured ``[9, 3]`` coefficients (``c = L / pi``).
        height, width: map size in texels (an equirectangular map has ``width = 2 * height``).
        clamp: set negative radiance (SH ringing behind strong lights) to 0, as a renderer's
            world needs; the map then no longer projects exactly back onto ``coeffs``.

    Returns:
        ``[height, width]`` (grey) or ``[height, width, 3]`` (coloured) linear radiance; float64
        for float64 coefficients, else float32.
    """
    c, coloured = _coeffs(coeffs)
    if c.dim() != (2 if coloured else 1):
        raise ValueError(f"coeffs: expected one light, [9] or [9, 3], got {list(c.shape)}")
    basis = _basis(envmap_directions(height, width).to(c.device))  # [H, W, 9] float64
    c64 = c.to(torch.float64)
    radiance = math.pi * (basis @ c64)  # [H, W] or [H, W, 3]
    if clamp:
        radiance = radiance.clamp_min(0.0)
    return radiance.to(c.dtype if c.dtype == torch.float64 else torch.float32)
