"""The classical baseline: relighting by SH shading ratios on the tracked face mesh's normals.

``output = input x shading(target, n) / shading(input, n)`` in scene-linear light, on the face;
everything else is left as it is. It keeps every detail of the input and cannot change the view.
For a Lambertian surface under SH light it is exact when the normals and both lights are
(``rgb = albedo x shading``); in practice its error comes from the face mesh's coarse normals,
the estimated input light, and everything outside the mesh (hair, ears, neck) keeping the old
light. The same idea composites the network's output into a plate (:mod:`relight_core.composite`).
"""

from __future__ import annotations

import numpy as np

from ...track import lighting as L
from ...track.lighting_synth import render_face

RATIO_EPS = 0.02
"""Added to both shadings (white-surface units) so that grazing, nearly unlit normals do not blow up."""
RATIO_RANGE = (0.05, 20.0)


def shading_map(normals_dpr: np.ndarray, coeffs) -> np.ndarray:
    """``[H, W, 3]`` shading (``sh.shading``, E / pi) of per-pixel DPR-frame normals ``[H, W, 3]``."""
    c = np.asarray(coeffs, dtype=np.float64)
    if c.ndim == 1:
        c = np.repeat(c[:, None], 3, 1)
    n = np.asarray(normals_dpr, dtype=np.float64)
    return (L.shading_basis_np(n.reshape(-1, 3)) @ c).reshape(*n.shape[:-1], 3)


def ratio_relight(rgb_linear: np.ndarray, shading_target: np.ndarray, shading_input: np.ndarray, region: np.ndarray,
                  *, eps: float = RATIO_EPS, ratio_range: tuple[float, float] | None = RATIO_RANGE) -> np.ndarray:
    """``rgb x (S_target + eps) / (S_input + eps)`` inside ``region`` ``[H, W]`` bool, unchanged outside.

    Args:
        rgb_linear: ``[H, W, 3]`` scene-linear input.
        shading_target, shading_input: ``[H, W, 3]`` (or ``[H, W, 1]``) shadings of the same normals.
        eps, ratio_range: stabilisers (``eps=0``, ``ratio_range=None`` give the exact ratio).
    """
    rgb = np.asarray(rgb_linear, dtype=np.float64)
    source = np.asarray(shading_input, dtype=np.float64)
    ratio = (np.asarray(shading_target, dtype=np.float64) + eps) / np.maximum(source + eps, 1e-12)
    if ratio_range is not None:
        ratio = np.clip(ratio, *ratio_range)
    out = rgb.copy()
    m = np.asarray(region, dtype=bool)
    out[m] = (rgb * ratio)[m]
    return out


def mesh_normals_camera(landmarks: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Vertex normals ``[478, 3]`` of the tracked face mesh in the image camera's OpenCV axes:
    the landmark mesh's own normals, turned from the ray to the face onto the optical axis as
    :func:`relight_core.track.lighting.face_samples` does (iris rows zero)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    topo = L.load_face_topology()
    normals = np.zeros((478, 3))
    normals[:468] = L.mesh_normals(lm[:468, :3], topo.triangles)
    centre = (lm[:468, :2].min(0) + lm[:468, :2].max(0)) / 2
    return normals @ L.ray_rotation(centre, K).T


def mesh_relight(rgb_linear: np.ndarray, landmarks: np.ndarray, K: np.ndarray, sh_input,
                 sh_target) -> tuple[np.ndarray, np.ndarray]:
    """Relight the face of an image from ``sh_input`` to ``sh_target`` with the face mesh's normals.

    Args:
        rgb_linear: ``[H, W, 3]`` scene-linear image.
        landmarks: ``[478, 3]`` the face's landmarks in this image's pixels (tracker convention).
        K: ``[3, 3]`` this image's pixel intrinsics.
        sh_input, sh_target: ``[9]`` or ``[9, 3]`` in this image's camera DPR frame.

    Returns:
        ``(relit [H, W, 3] linear, face [H, W] bool)``: the mesh's rasterized interpolated normals
        shade both lights; the ratio applies where the mesh covers the image.
    """
    h, w = rgb_linear.shape[:2]
    lm = np.asarray(landmarks, dtype=np.float64)
    face = {"landmarks": lm, "camera": lm, "normals": mesh_normals_camera(lm, K)}  # z-buffer on MediaPipe depth
    white = (1.0, 1.0, 1.0)
    target, covered = render_face(face, h, w, sh_target, white)
    source, _ = render_face(face, h, w, sh_input, white)
    return ratio_relight(rgb_linear, target, source, covered), covered
