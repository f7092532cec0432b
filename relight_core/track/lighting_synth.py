"""Synthetic faces under known light, for testing and measuring :mod:`.lighting`.

A small numpy z-buffer rasterizer of the 478-point face mesh (the canonical face, posed with a
head pose in a pinhole camera, or any mesh with that topology): per-pixel normals are the
interpolated vertex normals, and the image is ``albedo * sh.shading(n, coeffs)`` in scene-linear,
exactly the model :func:`.lighting.estimate_lighting` fits. The landmarks it returns follow the
tracker's convention (:mod:`.landmarks`): ``x, y`` pixels (centres at integers) and ``z`` the depth
relative to the head pivot in the same pixel scale (MediaPipe's weak-perspective depth).
"""

from __future__ import annotations

import numpy as np

from .lighting import _OPENCV_TO_DPR, load_face_topology, mesh_normals, shading_basis_np

__all__ = ["frontal_rotation", "head_rotation", "posed_face", "render_face"]


def frontal_rotation() -> np.ndarray:
    """Head -> camera rotation of a face looking straight into the camera."""
    return np.diag([1.0, -1.0, -1.0])


def head_rotation(yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """Head -> camera rotation of a head turned by yaw (about head +y), pitched (about head +x)
    and rolled (about head +z), applied in that order to the frontal pose."""
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    Ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    Rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    Rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return frontal_rotation() @ Ry @ Rx @ Rz


def posed_face(rotation: np.ndarray, translation, K: np.ndarray, vertices: np.ndarray | None = None) -> dict:
    """Pose a face mesh (default: the canonical face) in a camera.

    Returns a dict: ``landmarks`` ``[478, 3]`` (tracker convention), ``camera`` ``[478, 3]``
    OpenCV camera points, ``normals`` ``[478, 3]`` camera-frame (OpenCV) unit vertex normals of the
    468 mesh points (iris rows zero).
    """
    if vertices is None:
        from .canonical import load_canonical_face

        vertices = load_canonical_face().vertices
    R = np.asarray(rotation, dtype=np.float64)
    t = np.asarray(translation, dtype=np.float64)
    X = vertices @ R.T + t
    q = X @ np.asarray(K, dtype=np.float64).T
    xy = q[:, :2] / q[:, 2:3]
    f = float(K[0, 0])
    z = (X[:, 2] - t[2]) * f / t[2]
    topo = load_face_topology()
    n = np.zeros_like(X)
    n[:468] = mesh_normals(X[:468], topo.triangles)
    return {"landmarks": np.concatenate((xy, z[:, None]), 1), "camera": X, "normals": n}


def render_face(
    face: dict,
    height: int,
    width: int,
    coeffs,
    albedo=(0.45, 0.30, 0.22),
    *,
    background=0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Render a posed face (:func:`posed_face`) under SH light.

    Args:
        face: dict with ``landmarks`` (``x, y`` used), ``camera`` (depth) and ``normals``
            (camera-frame OpenCV vertex normals).
        height, width: image size.
        coeffs: ``[9]`` or ``[9, 3]`` DPR coefficients in the camera's DPR frame.
        albedo: ``[3]`` constant, or ``[478, 3]`` per-vertex linear albedo.
        background: background value (number or ``[3]``).

    Returns:
        ``(rgb [H, W, 3] float32 linear, mask [H, W] bool)``.
    """
    topo = load_face_topology()
    T = topo.triangles
    xy = np.asarray(face["landmarks"], dtype=np.float64)[:, :2]
    depth = np.asarray(face["camera"], dtype=np.float64)[:, 2]
    nrm = np.asarray(face["normals"], dtype=np.float64)
    c = np.asarray(coeffs, dtype=np.float64)
    if c.ndim == 1:
        c = np.repeat(c[:, None], 3, 1)
    alb = np.asarray(albedo, dtype=np.float64)
    per_vertex = alb.ndim == 2
    zbuf = np.full((height, width), np.inf)
    nbuf = np.zeros((height, width, 3))
    abuf = np.zeros((height, width, 3))
    for tri in T:
        p = xy[tri]
        area = (p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[1, 1] - p[0, 1]) * (p[2, 0] - p[0, 0])
        # outward normals face the camera when the image-space winding is clockwise (y down)
        if area >= -1e-9:
            continue
        x0 = max(int(np.ceil(p[:, 0].min())), 0)
        x1 = min(int(np.floor(p[:, 0].max())), width - 1)
        y0 = max(int(np.ceil(p[:, 1].min())), 0)
        y1 = min(int(np.floor(p[:, 1].max())), height - 1)
        if x1 < x0 or y1 < y0:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))

        def edge(a, b):
            return (b[0] - a[0]) * (gy - a[1]) - (b[1] - a[1]) * (gx - a[0])

        b0 = edge(p[1], p[2]) / area
        b1 = edge(p[2], p[0]) / area
        b2 = 1 - b0 - b1
        ins = (b0 >= -1e-9) & (b1 >= -1e-9) & (b2 >= -1e-9)
        if not ins.any():
            continue
        z = b0 * depth[tri[0]] + b1 * depth[tri[1]] + b2 * depth[tri[2]]
        sub = zbuf[y0:y1 + 1, x0:x1 + 1]
        win = ins & (z < sub)
        if not win.any():
            continue
        sub[win] = z[win]
        bw = np.stack((b0, b1, b2), -1)[win]
        nbuf[y0:y1 + 1, x0:x1 + 1][win] = bw @ nrm[tri]
        abuf[y0:y1 + 1, x0:x1 + 1][win] = bw @ alb[tri] if per_vertex else alb
    mask = np.isfinite(zbuf)
    n = nbuf[mask]
    n /= np.linalg.norm(n, axis=1, keepdims=True).clip(1e-12)
    shading = shading_basis_np(n @ _OPENCV_TO_DPR.T) @ c
    out = np.empty((height, width, 3))
    out[:] = np.asarray(background, dtype=np.float64)
    out[mask] = abuf[mask] * shading
    return out.astype(np.float32), mask
