"""Head pose relative to the plate camera, and the EG3D camera label of the face crop.

Conventions
-----------
* **Head pose** ``(R, t)`` maps head space (:mod:`.canonical`: EG3D world, +y up, face toward +z,
  pivot at the origin) to the plate camera's OpenCV frame (+x right, +y down, +z forward):
  ``X_cam = R X_head + t``. ``t`` is the head pivot in camera coordinates, in head units
  (multiply by :meth:`CanonicalFace.metres_per_unit` for metres). A face looking straight into
  the camera has ``R = diag(1, -1, -1)``.
* **Crop camera** (the camera label): the plate camera's centre seen from the head, moved along
  the ray to EG3D's radius 2.7, looking at the pivot, with EG3D's focal 4.2634 and principal point
  (0.5, 0.5); its "up" is the plate camera's up, so a rolled head stays rolled in the label as it
  is in the (axis-aligned) crop. ``label = camera.camera_label(look_at(2.7 * d, 0, up), K)``.
* **Angles** (:func:`head_angles`, degrees) describe that camera as EG3D's orbit does
  (:func:`relight_core.camera.orbit_camera`), with ``d`` the unit direction from the pivot to the
  camera in head space:

  - ``yaw = atan2(d_x, d_z)``: positive when the camera is on the subject's left (+x), i.e. the
    head has turned to **its own right**; a head turning to its own left gives negative yaw;
  - ``pitch = asin(-d_y)``: positive when the camera is below the head (-y), i.e. the head is
    tilted **chin up**; chin down gives negative pitch;
  - ``roll``: rotation of the camera about its viewing axis relative to an upright orbit camera,
    with the sign of ``orbit_camera(..., roll=...)`` at the frontal pose: positive when the top of
    the head leans to image-right.

  yaw is exactly ``orbit_camera``'s yaw. Its ``pitch`` argument is *not* the geometric elevation
  (EG3D's sampler maps it through ``arccos``): :func:`orbit_parameters` gives the arguments that
  reproduce a camera position, ``pitch_orbit = -(pi / 2) * d_y``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..camera import FOCAL_EG3D, RADIUS_EG3D, camera_label, intrinsics, look_at
from .canonical import CanonicalFace, load_canonical_face

__all__ = [
    "HeadPose",
    "plate_intrinsics",
    "solve_pose",
    "crop_camera",
    "crop_camera_label",
    "head_angles",
    "orbit_parameters",
    "project_head_points",
    "DEFAULT_FOCAL_MM",
    "DEFAULT_SENSOR_WIDTH_MM",
]

DEFAULT_FOCAL_MM = 50.0
"""Default plate lens (full-frame equivalent): 39.6 deg horizontal field of view."""
DEFAULT_SENSOR_WIDTH_MM = 36.0


@dataclass
class HeadPose:
    """Rigid head pose in the plate camera.

    Attributes:
        rotation: ``[3, 3]`` float64, head -> camera.
        translation: ``[3]`` float64, the head pivot in camera coordinates (head units).
        error_px: RMS reprojection error of the fitted points (pixels).
    """

    rotation: np.ndarray
    translation: np.ndarray
    error_px: float = 0.0

    @property
    def camera_center(self) -> np.ndarray:
        """The plate camera's optical centre in head space, ``-R^T t``."""
        return -self.rotation.T @ self.translation

    @property
    def rvec(self) -> np.ndarray:
        """Rotation vector (axis * angle, radians) of :attr:`rotation`."""
        import cv2

        return cv2.Rodrigues(self.rotation)[0].ravel()


def plate_intrinsics(
    width: int,
    height: int,
    *,
    focal_px: float | None = None,
    fov_deg: float | None = None,
    focal_mm: float | None = None,
    sensor_width_mm: float = DEFAULT_SENSOR_WIDTH_MM,
) -> np.ndarray:
    """Pixel intrinsics ``[3, 3]`` of the plate camera (pixel centres at integers, centred).

    Give one of ``focal_px``, ``fov_deg`` (horizontal) or ``focal_mm`` (with the sensor width);
    the default is a 50 mm lens on a 36 mm-wide sensor.
    """
    w, h = int(width), int(height)
    if w < 1 or h < 1:
        raise ValueError(f"width, height: expected a positive image size, got {width}x{height}")
    if sum(v is not None for v in (focal_px, fov_deg, focal_mm)) > 1:
        raise ValueError("give only one of focal_px, fov_deg, focal_mm")
    if focal_px is not None:
        f = float(focal_px)
    elif fov_deg is not None:
        if not 1.0 < float(fov_deg) < 179.0:
            raise ValueError(f"fov_deg: expected a horizontal field of view in (1, 179) degrees, got {fov_deg!r}")
        f = 0.5 * w / math.tan(math.radians(float(fov_deg)) / 2)
    else:
        mm = DEFAULT_FOCAL_MM if focal_mm is None else float(focal_mm)
        if not (mm > 0 and float(sensor_width_mm) > 0):
            raise ValueError("focal_mm, sensor_width_mm: expected positive lengths")
        f = mm / float(sensor_width_mm) * w
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"focal length: expected a positive finite value, got {f}")
    return np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]])


def project_head_points(points, pose: HeadPose, K) -> np.ndarray:
    """Project head-space points ``[N, 3]`` into the plate image: ``[N, 2]`` pixels."""
    p = np.asarray(points, dtype=np.float64) @ pose.rotation.T + pose.translation
    q = p @ np.asarray(K, dtype=np.float64).T
    return q[:, :2] / q[:, 2:3]


def solve_pose(
    landmarks,
    K,
    *,
    canonical: CanonicalFace | None = None,
    initial: HeadPose | None = None,
) -> HeadPose:
    """Head pose from 2D face-mesh landmarks by perspective-n-point on the canonical face.

    Args:
        landmarks: ``[478, 2 or 3]`` pixel landmarks (only x, y are used).
        K: ``[3, 3]`` plate pixel intrinsics (:func:`plate_intrinsics`).
        canonical: the canonical face (default: the shipped one); its rigid points are fitted.
        initial: a previous pose to start from (video); otherwise SQPnP finds the global optimum.

    Returns:
        :class:`HeadPose` (Levenberg-Marquardt refined).
    """
    import cv2

    face = canonical or load_canonical_face()
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] < 478 or lm.shape[1] < 2 or not np.isfinite(lm[:, :2]).all():
        raise ValueError(f"landmarks: expected finite [478, 2 or 3] pixel landmarks, got shape {list(lm.shape)}")
    idx = face.rigid_indices
    obj = np.ascontiguousarray(face.vertices[idx])
    img = np.ascontiguousarray(lm[idx, :2])
    Km = np.asarray(K, dtype=np.float64)
    if initial is not None:
        rvec = cv2.Rodrigues(np.asarray(initial.rotation, dtype=np.float64))[0]
        tvec = np.asarray(initial.translation, dtype=np.float64).reshape(3, 1).copy()
        ok, rvec, tvec = cv2.solvePnP(obj, img, Km, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    else:
        ok, rvec, tvec = cv2.solvePnP(obj, img, Km, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise RuntimeError("solve_pose: cv2.solvePnP failed")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, Km, None, rvec, tvec)
    R = cv2.Rodrigues(rvec)[0]
    pose = HeadPose(R, tvec.ravel().copy())
    if pose.translation[2] <= 0:
        raise RuntimeError("solve_pose: the fitted head lies behind the camera")
    err = project_head_points(obj, pose, Km) - img
    pose.error_px = float(np.sqrt((err**2).sum(1).mean()))
    return pose


def crop_camera(pose: HeadPose, *, radius: float = RADIUS_EG3D) -> np.ndarray:
    """cam2world ``[4, 4]`` (float64, head space) of the EG3D crop camera of a head pose."""
    c = pose.camera_center
    n = float(np.linalg.norm(c))
    if not n > 0:
        raise ValueError("pose: the camera centre coincides with the head pivot")
    pos = radius * c / n
    up = -pose.rotation[1]  # the plate camera's up direction, in head space
    c2w = look_at(torch.as_tensor(pos, dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                  torch.as_tensor(up, dtype=torch.float64))
    return c2w.numpy()


def crop_camera_label(pose: HeadPose, *, radius: float = RADIUS_EG3D, focal: float = FOCAL_EG3D) -> np.ndarray:
    """The EG3D camera label ``[25]`` float32 of the crop (cam2world row-major + normalized K)."""
    c2w = torch.as_tensor(crop_camera(pose, radius=radius))
    K = intrinsics(torch.tensor(float(focal), dtype=torch.float64), dtype=torch.float64)
    return camera_label(c2w, K).to(torch.float32).numpy()


def _cam2world(x) -> np.ndarray:
    if isinstance(x, HeadPose):
        return crop_camera(x)
    a = np.asarray(x, dtype=np.float64)
    if a.shape == (25,):
        return a[:16].reshape(4, 4)
    if a.shape == (4, 4):
        return a
    raise ValueError(f"expected a HeadPose, a [25] camera label or a [4, 4] cam2world, got shape {list(a.shape)}")


def head_angles(x) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` in degrees of a :class:`HeadPose`, a ``[25]`` label or a cam2world
    (see the module docstring for the signs)."""
    c2w = _cam2world(x)
    pos = c2w[:3, 3]
    d = pos / np.linalg.norm(pos)
    yaw = math.degrees(math.atan2(d[0], d[2]))
    pitch = math.degrees(math.asin(float(np.clip(-d[1], -1.0, 1.0))))
    x_axis = c2w[:3, 0]
    forward = -d
    if abs(d[1]) > 1 - 1e-9:  # looking straight down/up: roll is undefined
        return yaw, pitch, 0.0
    right0 = -np.cross([0.0, 1.0, 0.0], forward)
    right0 /= np.linalg.norm(right0)
    down0 = np.cross(forward, right0)
    roll = math.degrees(math.atan2(-float(x_axis @ down0), float(x_axis @ right0)))
    return yaw, pitch, roll


def orbit_parameters(x) -> tuple[float, float]:
    """``(pitch, yaw)`` in radians such that ``camera.orbit_camera(pitch, yaw)`` puts the camera
    at the same position (EG3D's sampler parameterization, ``pitch = -(pi / 2) * d_y``)."""
    c2w = _cam2world(x)
    d = c2w[:3, 3] / np.linalg.norm(c2w[:3, 3])
    return float(-math.pi / 2 * d[1]), float(math.atan2(d[0], d[2]))
