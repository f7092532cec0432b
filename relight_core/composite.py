"""Compositing a relit head back into an image: matte, shading ratio, warps, normals, depth.

The plate job (:mod:`relight_core.plate`) renders the network in the face crop's camera; this
module carries those crop-space renders into an output image and applies them.

Same view as the plate (the default)
------------------------------------
The plate is multiplied by the **shading ratio** ``target / input`` (per channel) inside a soft
**matte**, so the plate's own detail (pores, hair, specular glints, grain) is kept:

1. :func:`shading_ratio`: ``(S_target + eps) / (S_input + eps)`` from two renders of the
   network's shading (same planes, same camera, the target light and the estimated input light)
   at the neural resolution, clamped to ``ratio_range``. ``eps`` keeps the ratio near 1 where the
   render is empty (no head: both shadings are about 0).
2. The ratio is upsampled **in log space** (bicubic, so it is smooth and stays positive) to the
   crop and warped into the plate by the crop's exact affine (:func:`crop_mapping_from_affine`,
   from :func:`relight_core.track.align.crop_affine`), then clamped again.
3. :func:`build_matte`: ``max(face hull, person segmentation x head opacity)``, feathered with a
   Gaussian whose sigma is a fraction of the face size, limited to the crop's footprint (with a
   feathered border), and **set to exactly 0 below 1/1024**.
4. :func:`apply_ratio`: ``rgb' = rgb * (1 + matte * (ratio - 1))`` in scene-linear (or on the
   display-encoded values for networks that work on display images, ``space="display"``), encoded
   back with the source's colour space and dtype. Only pixels with ``matte > 0`` are replaced; every
   other pixel is copied from ``frame.source_pixels``, so it is **bit-identical by construction**.

Other views
-----------
A novel camera gets an RGBA head render in its own image: the render's crop camera shares the
target camera's optical centre, so :func:`homography_grid` warps it exactly (ARCHITECTURE.md 2).

Conventions
-----------
* Output pixels have their centres at integer coordinates (OpenCV), as in :mod:`.track.align`.
* A "crop" is the network's square input; crop-normalized coordinates ``(u, v)`` are in [0, 1]
  across it (u right, v down; EG3D's convention for rays and intrinsics). Renders at any
  resolution cover the whole crop.
* Mappings from output pixels to the crop are 3x3 matrices acting on ``(x, y, 1)`` and giving
  homogeneous ``(u, v, w)``.
* **Normals** (:func:`normals_from_depth`, the ``normal`` pass) are unit vectors in the output
  camera's space with **Blender's camera axes: +X image right, +Y image up, +Z toward the viewer**
  (a surface facing the camera is (0, 0, 1)); derived from the rendered depth by finite
  differences of the back-projected points.
* **Depth** (the ``depth`` pass) is camera-space Z of the output camera (distance along its
  viewing axis) in metres; 0 where the head render's opacity is below 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .io import colour as _colour

__all__ = [
    "MATTE_FLOOR",
    "Roi",
    "crop_grid",
    "homography_grid",
    "footprint_roi",
    "warp",
    "inside_crop",
    "shading_ratio",
    "face_hull_mask",
    "PersonSegmenter",
    "feather",
    "build_matte",
    "apply_ratio",
    "normals_from_depth",
    "camera_depth",
    "crop_mapping_from_affine",
    "source_rgb_layout",
    "render_over_transparent",
    "View",
    "orbit_view",
    "world_camera_view",
    "check_view",
    "crop_camera_for",
    "view_to_crop_mapping",
    "head_to_camera_metric",
    "MAX_ORBIT_YAW_DEG",
    "MAX_ORBIT_PITCH_DEG",
]

MATTE_FLOOR = 1.0 / 1024.0
"""Matte values below this are set to exactly 0 (pixels there are copied from the source)."""


# ------------------------------------------------------------------------------------------
# regions and warps
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roi:
    """A rectangle of an output image: rows ``y0:y1``, columns ``x0:x1`` (end exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0


def crop_mapping_from_affine(source_to_crop, crop_size: int) -> np.ndarray:
    """Output pixel -> crop-normalized ``(u, v, 1)`` mapping ``[3, 3]`` from the crop's affine.

    Args:
        source_to_crop: ``[2, 3]`` affine, output (plate) pixel -> crop pixel
            (:func:`relight_core.track.align.crop_affine`'s second matrix).
        crop_size: side of the crop in pixels (the ``output_size`` the affine was made for).
    """
    a = np.asarray(source_to_crop, dtype=np.float64)
    if a.shape != (2, 3):
        raise ValueError(f"source_to_crop: expected a [2, 3] affine, got shape {list(a.shape)}")
    to_norm = np.array([[1.0 / crop_size, 0.0, 0.5 / crop_size], [0.0, 1.0 / crop_size, 0.5 / crop_size], [0, 0, 1.0]])
    return to_norm @ np.vstack([a, [0.0, 0.0, 1.0]])


def footprint_roi(output_to_crop, width: int, height: int, pad: int = 2) -> Roi:
    """Bounding box (clipped to the image) of the crop square ``[0, 1]^2`` seen in the output.

    Args:
        output_to_crop: ``[3, 3]`` output pixel -> crop-normalized mapping.
        width, height: output image size.
    """
    m = np.linalg.inv(np.asarray(output_to_crop, dtype=np.float64))
    corners = np.array([[0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1], [0.5, 0.5, 1]], dtype=np.float64) @ m.T
    if (corners[:, 2] <= 1e-9).any():  # part of the crop maps behind the camera: use the whole image
        return Roi(0, 0, width, height)
    xy = corners[:, :2] / corners[:, 2:]
    x0 = max(0, int(math.floor(xy[:, 0].min())) - pad)
    y0 = max(0, int(math.floor(xy[:, 1].min())) - pad)
    x1 = min(width, int(math.ceil(xy[:, 0].max())) + pad + 1)
    y1 = min(height, int(math.ceil(xy[:, 1].max())) + pad + 1)
    return Roi(x0, y0, max(x0, x1), max(y0, y1))


def _grid(output_to_crop, roi: Roi) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(output_to_crop, dtype=np.float64))
    ys, xs = torch.meshgrid(torch.arange(roi.y0, roi.y1, dtype=torch.float64),
                            torch.arange(roi.x0, roi.x1, dtype=torch.float64), indexing="ij")
    p = torch.stack([xs, ys, torch.ones_like(xs)], -1) @ m.T
    w = p[..., 2:]
    uv = torch.where(w > 1e-12, p[..., :2] / w.clamp_min(1e-12), torch.full_like(p[..., :2], 10.0))
    return (uv * 2 - 1).to(torch.float32)[None]  # [1, h, w, 2], align_corners=False convention


def crop_grid(source_to_crop, crop_size: int, roi: Roi) -> torch.Tensor:
    """``grid_sample`` grid ``[1, h, w, 2]`` sampling a crop render at the ROI's output pixels."""
    return _grid(crop_mapping_from_affine(source_to_crop, crop_size), roi)


def homography_grid(output_to_crop, roi: Roi) -> torch.Tensor:
    """``grid_sample`` grid ``[1, h, w, 2]`` for a projective ``output pixel -> crop (u, v)`` map."""
    return _grid(output_to_crop, roi)


def warp(images: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample crop images ``[C, R, R]`` (any R: they cover the crop) at ``grid`` -> ``[C, h, w]``.

    Outside the crop the result is 0.
    """
    if images.ndim != 3:
        raise ValueError(f"images: expected [C, R, R], got {list(images.shape)}")
    out = F.grid_sample(images[None].float(), grid.to(images.device), mode=mode, padding_mode="zeros",
                        align_corners=False)
    return out[0]


def inside_crop(grid: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """``[h, w]`` bool: grid points inside the crop (shrunk by ``margin`` in normalized units)."""
    g = grid[0]
    lim = 1.0 - margin
    return (g.abs() <= lim).all(-1)


# ------------------------------------------------------------------------------------------
# shading ratio
# ------------------------------------------------------------------------------------------


def shading_ratio(target: torch.Tensor, source: torch.Tensor, *, eps: float = 0.02,
                  ratio_range: tuple[float, float] = (0.05, 8.0)) -> torch.Tensor:
    """Per-channel shading ratio ``(target + eps) / (source + eps)``, clamped.

    Args:
        target: ``[Lt, N, N]`` shading under the target light (Lt = 1 grey or 3 coloured), >= 0,
            linear (white-Lambertian pixel values, ``E / pi``).
        source: ``[Ls, N, N]`` shading under the input light (Ls = 1 or 3).
        eps: added to both (same units); where the render is empty both are ~0 and the ratio ~1.
        ratio_range: (low, high) clamp.

    Returns:
        ``[3, N, N]`` float32 ratio.
    """
    lo, hi = ratio_range
    if not (0 < lo <= 1 <= hi and math.isfinite(hi)):
        raise ValueError(f"ratio_range: expected 0 < low <= 1 <= high < inf, got {ratio_range}")
    t = target.float().clamp_min(0).expand(3, *target.shape[1:]) if target.shape[0] == 1 else target.float().clamp_min(0)
    s = source.float().clamp_min(0).expand(3, *source.shape[1:]) if source.shape[0] == 1 else source.float().clamp_min(0)
    ratio = (t + eps) / (s + eps)
    return torch.nan_to_num(ratio, nan=1.0).clamp(lo, hi)


# ------------------------------------------------------------------------------------------
# matte
# ------------------------------------------------------------------------------------------


def face_hull_mask(landmarks, roi: Roi) -> np.ndarray:
    """Filled convex hull of the face-mesh landmarks (``[N, 2+]`` pixels) in the ROI: float32 0/1."""
    import cv2

    h, w = roi.shape
    mask = np.zeros((h, w), np.uint8)
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2] - [roi.x0, roi.y0]
    if len(pts) >= 3 and np.isfinite(pts).all():
        hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32)


class PersonSegmenter:
    """MediaPipe selfie segmentation (``mediapipe.solutions.selfie_segmentation``, shipped with
    mediapipe 0.10.21): a soft person mask of a whole frame.

    ``segmenter(rgb_uint8 [H, W, 3]) -> float32 [H, W]`` in [0, 1]. Close with :meth:`close`.
    """

    def __init__(self, model_selection: int = 0):
        import mediapipe as mp

        self._impl = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=model_selection)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        image = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
        result = self._impl.process(image)
        mask = result.segmentation_mask
        if mask is None:
            return np.zeros(image.shape[:2], np.float32)
        return np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)

    def close(self) -> None:
        if self._impl is not None:
            self._impl.close()
            self._impl = None

    def __enter__(self) -> "PersonSegmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian feather of a float mask (``sigma`` in pixels; 0 = unchanged)."""
    import cv2

    if sigma <= 0:
        return mask.astype(np.float32, copy=True)
    k = int(2 * math.ceil(3 * sigma) + 1)
    return cv2.GaussianBlur(mask.astype(np.float32), (k, k), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_CONSTANT)


def build_matte(hull: np.ndarray, person: np.ndarray | None, opacity: np.ndarray, footprint: np.ndarray,
                sigma: float) -> np.ndarray:
    """The soft compositing matte of one ROI, float32 ``[h, w]`` in [0, 1].

    ``max(hull, person * opacity)``, feathered by ``sigma`` px, times the feathered crop footprint
    (so the matte reaches 0 inside the crop), with values below :data:`MATTE_FLOOR` set to 0.

    Args:
        hull: face-mesh hull (:func:`face_hull_mask`).
        person: person segmentation of the ROI (None: hull and opacity only).
        opacity: head render opacity warped into the ROI, [0, 1].
        footprint: 1 inside the crop's footprint, 0 outside.
        sigma: feather in pixels.
    """
    core = hull if person is None else np.maximum(hull, person * np.clip(opacity, 0.0, 1.0))
    matte = feather(core, sigma)
    # shrink the footprint by ~2 sigma before feathering it, so the product is 0 at its edge
    import cv2

    shrink = int(math.ceil(2 * sigma)) + 1
    inner = cv2.erode(footprint.astype(np.uint8), np.ones((2 * shrink + 1, 2 * shrink + 1), np.uint8))
    matte *= feather(inner.astype(np.float32), sigma / 2)
    matte = np.clip(matte, 0.0, 1.0)
    matte[matte < MATTE_FLOOR] = 0.0
    return matte.astype(np.float32)


# ------------------------------------------------------------------------------------------
# applying the ratio
# ------------------------------------------------------------------------------------------


def source_rgb_layout(frame) -> np.ndarray:
    """The frame's stored pixels as ``[H, W, 3|4]`` (grey repeated), a writable copy."""
    src = np.asarray(frame.source_pixels)
    colour, alpha = _colour.split_channels(src)
    out = colour if alpha is None else np.concatenate([colour, alpha[:, :, None]], axis=2)
    return np.array(out, copy=True)


def apply_ratio(frame, ratio: np.ndarray, matte: np.ndarray, roi: Roi, *, space: str = "linear") -> np.ndarray:
    """Multiply the frame by ``ratio`` inside ``matte``; returns stored pixels like the source.

    Args:
        frame: a :class:`relight_core.io.Frame` (``rgb`` scene-linear, ``source_pixels``,
            ``colourspace``, ``alpha``).
        ratio: ``[h, w, 3]`` float32 shading ratio of the ROI.
        matte: ``[h, w]`` float32 matte of the ROI (0 = untouched).
        roi: where the two lie in the frame.
        space: ``"linear"`` multiplies scene-linear values (networks trained on linear targets,
            this project's); ``"display"`` multiplies the sRGB-encoded values (networks whose
            shading acts on display images, such as the released one).

    Returns:
        ``[H, W, 3|4]`` array of the source dtype in the source colour space (grey sources come
        back as RGB), equal to the source pixels wherever ``matte == 0``.
    """
    if space not in ("linear", "display"):
        raise ValueError(f"space: expected 'linear' or 'display', got {space!r}")
    out = source_rgb_layout(frame)
    if roi.empty:
        return out
    ys, xs = roi.slices
    changed = matte > 0
    if not changed.any():
        return out
    rgb = frame.rgb[ys, xs]
    gain = 1.0 + matte[:, :, None] * (ratio - 1.0)
    if space == "linear":
        new = rgb * gain
    else:
        disp = _colour.linear_to_srgb(rgb)
        new = _colour.srgb_to_linear(disp * gain).astype(np.float32)
    alpha = None if frame.alpha is None else frame.alpha[ys, xs]
    enc = _colour.encode(new.astype(np.float32), alpha, frame.colourspace, out.dtype)
    region = out[ys, xs]
    region[changed] = enc[changed]
    return out


# ------------------------------------------------------------------------------------------
# geometry passes
# ------------------------------------------------------------------------------------------


def _ray_directions(K: np.ndarray, n: int) -> np.ndarray:
    """Unit camera-space (OpenCV) ray directions ``[n, n, 3]`` through pixel centres of a render."""
    c = (np.arange(n, dtype=np.float64) + 0.5) / n
    u, v = np.meshgrid(c, c, indexing="xy")
    pts = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(np.asarray(K, dtype=np.float64)).T
    return pts / np.linalg.norm(pts, axis=-1, keepdims=True)


def normals_from_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-space normals ``[N, N, 3]`` (OpenCV axes, facing the camera) of a depth render.

    Args:
        depth: ``[N, N]`` distance along each ray (the renderer's ``depth``).
        K: ``[3, 3]`` normalized intrinsics of the render camera.

    Back-projects every pixel (``P = depth * ray``), takes central differences along the image
    axes and crosses them; the normal is flipped to face the camera. Pixels on depth
    discontinuities get the average of one-sided differences; mask them with the opacity.
    """
    n = depth.shape[0]
    pts = _ray_directions(K, n) * depth[..., None].astype(np.float64)
    dx = np.gradient(pts, axis=1)
    dy = np.gradient(pts, axis=0)
    nrm = np.cross(dy, dx)
    length = np.linalg.norm(nrm, axis=-1, keepdims=True)
    nrm = np.where(length > 1e-12, nrm / np.maximum(length, 1e-12), 0.0)
    facing = (nrm * _ray_directions(K, n)).sum(-1, keepdims=True) > 0
    nrm = np.where(facing, -nrm, nrm)
    return nrm.astype(np.float32)


def camera_depth(depth: np.ndarray, render_cam2world: np.ndarray, K: np.ndarray, rotation: np.ndarray,
                 translation: np.ndarray, scale: float) -> np.ndarray:
    """Z of the rendered surface in another camera: ``[N, N]``, ``scale`` units per head unit.

    Args:
        depth: ``[N, N]`` distance along the render's rays (head units).
        render_cam2world: ``[4, 4]`` render camera in head space.
        K: its normalized intrinsics.
        rotation, translation: head -> output camera (``X_cam = R X_head + t``, head units).
        scale: output units per head unit (metres per head unit for metres).
    """
    n = depth.shape[0]
    c2w = np.asarray(render_cam2world, dtype=np.float64)
    pts_cam = _ray_directions(K, n) * depth[..., None].astype(np.float64)
    head = pts_cam @ c2w[:3, :3].T + c2w[:3, 3]
    out = head @ np.asarray(rotation, dtype=np.float64).T + np.asarray(translation, dtype=np.float64)
    return (out[..., 2] * scale).astype(np.float32)


OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0])
"""Camera axes: OpenCV (x right, y down, z forward) -> Blender (x right, y up, z toward the viewer)."""


def render_over_transparent(relit: np.ndarray | None, alpha: np.ndarray | None, roi: Roi | None,
                            size: tuple[int, int], colourspace: str, dtype) -> np.ndarray:
    """A head render ``[h, w, 3]`` (straight colour) with ``alpha`` ``[h, w]`` placed at ``roi`` of a
    transparent ``size`` image, stored like a source: ``dtype`` in ``colourspace``, RGBA; colour is
    premultiplied for float (EXR) dtypes, straight for integer (PNG) ones. None: all transparent."""
    w, h = size
    rgb = np.zeros((h, w, 3), np.float32)
    a = np.zeros((h, w), np.float32)
    if relit is not None and roi is not None and not roi.empty:
        rgb[roi.slices] = relit[..., :3]
        a[roi.slices] = alpha
    if np.dtype(dtype).kind == "f":
        rgb *= a[..., None]
    return _colour.encode(rgb, a, colourspace, dtype)


# ------------------------------------------------------------------------------------------
# cameras other than the plate's (ARCHITECTURE.md 2: homography from the crop camera)
# ------------------------------------------------------------------------------------------

MAX_ORBIT_YAW_DEG = 90.0
"""Largest orbit away from the plate view (the network was trained on +-49 deg yaw)."""
MAX_ORBIT_PITCH_DEG = 60.0
"""Largest pitch away from the plate view (trained on +-26 deg)."""


@dataclass
class View:
    """An output camera relative to the head: ``X_cam = rotation @ X_head + translation`` (head
    units, OpenCV axes), pixel intrinsics ``K`` ``[3, 3]`` and image ``size`` (width, height)."""

    rotation: np.ndarray
    translation: np.ndarray
    K: np.ndarray
    size: tuple[int, int]

    @property
    def centre(self) -> np.ndarray:
        """Optical centre in head space."""
        return -self.rotation.T @ self.translation


def orbit_view(rotation, translation, K, size, yaw_deg: float, pitch_deg: float, distance: float = 1.0) -> View:
    """The plate camera orbited about the head pivot.

    ``yaw_deg`` turns it about its own vertical axis through the pivot (positive: the camera moves
    to its right), ``pitch_deg`` about its horizontal axis (positive: the camera moves up), and it
    ends ``distance`` times as far from the pivot. Intrinsics and size are the plate's, and the
    pivot stays at the same image position.

    Args:
        rotation, translation: head -> plate camera (``X_cam = R X_head + t``, head units).
        K: ``[3, 3]`` plate pixel intrinsics; size: (width, height).
    """
    def rx(a):
        c, s = math.cos(a), math.sin(a)
        return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])

    def ry(a):
        c, s = math.cos(a), math.sin(a)
        return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])

    q = ry(-math.radians(yaw_deg)) @ rx(-math.radians(pitch_deg))  # new camera axes in old camera axes
    p = np.asarray(translation, dtype=np.float64)
    centre = p - distance * (q @ p)
    return View(q.T @ np.asarray(rotation, dtype=np.float64), q.T @ (p - centre), np.asarray(K, dtype=np.float64),
                (int(size[0]), int(size[1])))


def head_to_camera_metric(rotation, translation, metres_per_unit: float) -> np.ndarray:
    """``[4, 4]`` head space -> camera space in metres (``s [R | t]``; scale in the rotation block)."""
    s = float(metres_per_unit)
    m = np.eye(4)
    m[:3, :3] = s * np.asarray(rotation, dtype=np.float64)
    m[:3, 3] = s * np.asarray(translation, dtype=np.float64)
    return m


def world_camera_view(camera, plate_cam2world, rotation, translation, metres_per_unit: float) -> View:
    """A scene camera (:class:`relight_core.scene.CameraDesc`) as a :class:`View` of the head.

    Args:
        camera: the target camera in the scene's world.
        plate_cam2world: ``[4, 4]`` OpenCV cam2world of the plate camera in the same world (metres).
        rotation, translation: head -> plate camera (head units); metres_per_unit: head scale.
    """
    from .camera import normalized_to_pixel

    s = float(metres_per_unit)
    c = np.asarray(plate_cam2world, dtype=np.float64)
    r_head_world = c[:3, :3] @ np.asarray(rotation, dtype=np.float64)
    head_world = c[:3, :3] @ (s * np.asarray(translation, dtype=np.float64)) + c[:3, 3]
    t = camera.cam2world()
    w, h = camera.resolution
    K = normalized_to_pixel(torch.as_tensor(camera.K()), w, h).double().numpy()
    return View(t[:3, :3].T @ r_head_world, t[:3, :3].T @ (head_world - t[:3, 3]) / s, K, (int(w), int(h)))


def check_view(view: View):
    """The view, or a sentence saying why it cannot see the head (for the frame's report)."""
    d = float(np.linalg.norm(view.centre))
    if not math.isfinite(d) or d < 1.0:
        return f"the target camera is inside the head ({d:.2f} head units from its centre)"
    if view.translation[2] <= 0.5:
        return "the target camera cannot see the head (the head is behind it)"
    return view


def crop_camera_for(view: View) -> tuple[np.ndarray, np.ndarray, float]:
    """The EG3D crop camera of a view: ``(label [25] float32, cam2world [4, 4], distance)``.

    It sits on the ray from the head pivot to the view's optical centre at EG3D's radius 2.7,
    looks at the pivot with the view's "up", and has EG3D's intrinsics; ``distance`` is the view
    centre's true distance (head units).
    """
    from .camera import FOCAL_EG3D, RADIUS_EG3D, camera_label, intrinsics, look_at

    centre = view.centre
    d = float(np.linalg.norm(centre))
    up = -np.asarray(view.rotation, dtype=np.float64)[1]
    c2w = look_at(torch.as_tensor(RADIUS_EG3D * centre / d), torch.zeros(3, dtype=torch.float64),
                  torch.as_tensor(up)).double()
    K = intrinsics(torch.tensor(FOCAL_EG3D, dtype=torch.float64), dtype=torch.float64)
    return camera_label(c2w, K).float().numpy(), c2w.numpy(), d


def view_to_crop_mapping(view: View, crop_cam2world: np.ndarray, distance: float) -> np.ndarray:
    """Output pixel -> crop-normalized ``[3, 3]`` mapping of a render from ``crop_cam2world``.

    The crop camera (radius 2.7) and the view share the ray through the pivot; the render is
    treated as seen from the view's true centre with the focal scaled by ``distance / 2.7`` (the
    same weak-perspective step the tracker's crop label makes), so the map is the homography
    ``K_view R_view R_crop^T K_eff^-1`` inverted.
    """
    from .camera import FOCAL_EG3D, RADIUS_EG3D

    f = FOCAL_EG3D * distance / RADIUS_EG3D
    k_eff = np.array([[f, 0, 0.5], [0, f, 0.5], [0, 0, 1.0]])
    h = view.K @ view.rotation @ np.asarray(crop_cam2world, dtype=np.float64)[:3, :3] @ np.linalg.inv(k_eff)
    return np.linalg.inv(h)
