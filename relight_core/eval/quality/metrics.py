"""Image, geometry, lighting and temporal metrics of the quality report (numpy, no learned parts).

Conventions: images are ``[H, W, 3]`` float arrays of display sRGB in [0, 1] unless said otherwise;
masks are ``[H, W]`` bool (or weights in [0, 1]); SH are DPR coefficients (``c = L / pi``), grey
``[9]`` or coloured ``[9, 3]``, all in the same frame when compared.
"""

from __future__ import annotations

import math

import numpy as np

from ... import sh as SH

MAX_PSNR = 100.0
"""PSNR cap in dB: identical images would give infinity, which strict JSON cannot hold."""

FACE_CONE_DEG = 60.0
"""The lighting error compares shading over normals within this angle of the view direction."""


def _check_pair(prediction: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(prediction, dtype=np.float64)
    b = np.asarray(target, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"expected two [H, W, C] images of the same shape, got {list(a.shape)} and {list(b.shape)}")
    return a, b


def _weights(mask, shape) -> np.ndarray:
    if mask is None:
        return np.ones(shape[:2])
    m = np.asarray(mask, dtype=np.float64)
    if m.shape != tuple(shape[:2]):
        raise ValueError(f"mask: expected shape {list(shape[:2])}, got {list(m.shape)}")
    return m


def psnr(prediction: np.ndarray, target: np.ndarray, mask=None) -> float:
    """Peak signal-to-noise ratio (dB, peak 1) over the pixels of ``mask`` (all when None).

    Capped at :data:`MAX_PSNR`; NaN when the mask is empty.
    """
    a, b = _check_pair(prediction, target)
    w = _weights(mask, a.shape)
    if w.sum() <= 0:
        return math.nan
    mse = float((((a - b) ** 2).mean(-1) * w).sum() / w.sum())
    return MAX_PSNR if mse <= 10 ** (-MAX_PSNR / 10) else -10.0 * math.log10(mse)


def ssim(prediction: np.ndarray, target: np.ndarray, mask=None) -> float:
    """Structural similarity (Gaussian window, sigma 1.5, data range 1), averaged over the pixels
    of ``mask`` and the channels. The local statistics use the whole image, so a masked SSIM
    still sees the edge of the region. NaN when the mask is empty."""
    from skimage.metrics import structural_similarity

    a, b = _check_pair(prediction, target)
    w = _weights(mask, a.shape)
    if w.sum() <= 0:
        return math.nan
    _, full = structural_similarity(a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, full=True)
    return float((full.mean(-1) * w).sum() / w.sum())


def angular_error_deg(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-pixel angle in degrees between two normal maps ``[..., 3]`` (normalized here; a zero
    vector gives 90 degrees, i.e. counts as wrong)."""
    a = np.asarray(prediction, dtype=np.float64)
    b = np.asarray(target, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0)))


def face_cone_normals(count: int = 2000, cone_deg: float = FACE_CONE_DEG) -> np.ndarray:
    """Unit normals ``[K, 3]`` (DPR frame) evenly spread over the cone within ``cone_deg`` of the
    direction toward the viewer (DPR ``-y``): the normals a face shows a camera."""
    i = np.arange(count) + 0.5
    cos_max = math.cos(math.radians(cone_deg))
    t = 1 - i / count * (1 - cos_max)  # cosine to the axis, uniform in solid angle
    r = np.sqrt(1 - t * t)
    phi = i * math.pi * (3 - math.sqrt(5))
    return np.stack((r * np.cos(phi), -t, r * np.sin(phi)), -1)


def _shading3(coeffs, normals: np.ndarray) -> np.ndarray:
    c = np.asarray(coeffs, dtype=np.float64)
    if c.ndim == 1:
        c = np.repeat(c[:, None], 3, 1)
    if c.shape != (9, 3):
        raise ValueError(f"expected SH of shape [9] or [9, 3], got {list(c.shape)}")
    return SH.shading_basis(normals).numpy() @ c  # [K, 3]


def lighting_error(estimate, target, cone_deg: float = FACE_CONE_DEG) -> float:
    """Scale-invariant shading error of an SH light against a target light (the report's
    "lighting error").

    Both lights are rendered as shading ``S(n)`` (``sh.shading``, per channel) on the normals of
    :func:`face_cone_normals`; each channel of the estimate gets its least-squares scale ``s_c``
    (the light's overall level and mean colour are a convention of the estimator: only the
    shading's shape is compared), and the error is

        sqrt( sum_c min_s sum_n (s_c E_c(n) - T_c(n))^2 / sum_c sum_n T_c(n)^2 ).

    0 is a perfect direction and shape; 1 is no information (the best scale of an estimate
    unrelated to the target is 0, which is what a failed, all-zero estimate scores). For scale:
    an ambient-only estimate of the ``key_left``, ``top`` and ``under`` presets scores 0.37, 0.44
    and 0.45, and ``key_right`` against ``key_left`` 0.59.
    """
    normals = face_cone_normals(cone_deg=cone_deg)
    e = _shading3(estimate, normals)
    t = _shading3(target, normals)
    ee = (e * e).sum(0)
    scale = np.where(ee > 0, (e * t).sum(0) / np.maximum(ee, 1e-300), 0.0).clip(min=0.0)
    residual = ((scale * e - t) ** 2).sum()
    return float(math.sqrt(residual / max(float((t * t).sum()), 1e-300)))


def optical_flow(source_gray: np.ndarray, target_gray: np.ndarray) -> np.ndarray:
    """Dense flow ``[H, W, 2]`` (pixels) from ``target`` back to ``source``: the pixel ``p`` of the
    target frame shows what was at ``p + flow(p)`` in the source frame (OpenCV Farneback on
    uint8 greyscale)."""
    import cv2

    return cv2.calcOpticalFlowFarneback(target_gray, source_gray, None, pyr_scale=0.5, levels=4, winsize=15,
                                        iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def warp_image(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp ``image`` ``[H, W, C]`` by ``flow`` ``[H, W, 2]`` (:func:`optical_flow`)."""
    import cv2

    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(np.asarray(image, dtype=np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def consistent_flow(previous_gray: np.ndarray, current_gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flow current -> previous ``[H, W, 2]``, non-occluded mask ``[H, W]`` bool).

    The mask is the usual forward-backward check: following the flow to the previous frame and
    the reverse flow back must return within ``0.01 (|f|^2 + |b|^2) + 0.5`` pixels squared, and
    the flow must land inside the frame.
    """
    back = optical_flow(previous_gray, current_gray)  # current pixel -> previous position
    forward = optical_flow(current_gray, previous_gray)  # previous pixel -> current position
    returned = warp_image(forward, back)
    loop = back + returned
    limit = 0.01 * ((back ** 2).sum(-1) + (returned ** 2).sum(-1)) + 0.5
    h, w = back.shape[:2]
    gx, gy = np.meshgrid(np.arange(w), np.arange(h))
    inside = (gx + back[..., 0] >= 0) & (gx + back[..., 0] <= w - 1) & (gy + back[..., 1] >= 0) & (gy + back[..., 1] <= h - 1)
    return back, ((loop ** 2).sum(-1) < limit) & inside


def warping_error(previous: np.ndarray, current: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    """The warping error of one frame pair (Lai et al. 2018, the paper's WE): the mean over
    ``mask`` of the squared RGB distance ``||O_t - warp(O_{t-1})||^2`` (summed over channels),
    with ``flow`` from the *input* frames (:func:`consistent_flow`). NaN when the mask is empty."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return math.nan
    diff = np.asarray(current, dtype=np.float64) - warp_image(previous, flow)
    return float((diff ** 2).sum(-1)[m].mean())


def summary(values) -> dict:
    """Mean, median, 90th percentile and count of the finite values (NaN when there are none)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": math.nan, "median": math.nan, "p90": math.nan, "count": 0}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p90": float(np.percentile(v, 90)),
            "count": int(v.size)}
