"""The 5 alignment points (EG3D crop) from the 478-point MediaPipe face mesh, MTCNN-compatible.

The released pipeline aligns faces with the 5 points of facenet-pytorch's MTCNN (PAPER_MODEL.md
2.13): image-left eye centre, image-right eye centre, nose tip, image-left and image-right mouth
corners, as (x, y) pixels. From the mesh they are taken as

* eye centre: the mean of the 16 eye-contour (eyelid margin) points of each eye
  (:data:`RIGHT_EYE_CONTOUR`, :data:`LEFT_EYE_CONTOUR`; "right"/"left" are the subject's, so the
  subject's right eye is the image-left one);
* nose tip: mesh point 1;
* mouth corners: mesh points 61 (subject's right, image left) and 291.

Those anatomical definitions differ slightly from MTCNN's learned ones, so a **fixed per-point
offset** is added, measured by ``scripts/make_canonical_face.py`` on the 698 portraits of
``shared/data/portraits`` where both detectors found the face (MTCNN run exactly as the released
``eg3d_detect_keypoints``: 0.5x ``cv2.resize``, ``factor=0.5``, thresholds 0.95). The offset is the
mean of (MTCNN - mesh) in the face's **normalized frame**: axes along and across the eye line
(x toward the image-right eye, y toward the mouth), in units of the crop's template unit, i.e.
divided by the scale ``s`` (pixels per 3D-template unit) of the crop's least-squares fit of the
3D template to the uncorrected points (:func:`face_scale`; like
:func:`relight_core.track.align.solve_similarity`, but the RMS instead of the mean of the two
fitted rows' norms, which makes it exactly invariant to in-plane rotation). In that frame the offsets are scale- and roll-invariant; they
are stored in ``relight_core/data/canonical_face.npz`` (``five_point_offsets``, with their
per-face standard deviation ``five_point_offsets_std``) and are all below 0.03 template units
(about 2 px on a 512 px astronaut portrait). They were measured on frontal faces; for large yaw
both detectors disagree more and no pose-dependent model is attempted.
"""

from __future__ import annotations

import numpy as np

from .align import LANDMARKS_3D_TEMPLATE

__all__ = [
    "RIGHT_EYE_CONTOUR",
    "LEFT_EYE_CONTOUR",
    "NOSE_TIP",
    "MOUTH_RIGHT",
    "MOUTH_LEFT",
    "RIGHT_IRIS_CENTER",
    "LEFT_IRIS_CENTER",
    "raw_five_points",
    "face_scale",
    "face_frame",
    "apply_offsets",
    "five_points",
]

RIGHT_EYE_CONTOUR = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
"""Mesh points of the subject's right eye contour (image left for a face looking at the camera)."""
LEFT_EYE_CONTOUR = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
"""Mesh points of the subject's left eye contour (image right)."""
NOSE_TIP = 1
MOUTH_RIGHT = 61
"""Subject's right mouth corner (image left)."""
MOUTH_LEFT = 291
"""Subject's left mouth corner (image right)."""
RIGHT_IRIS_CENTER = 468
LEFT_IRIS_CENTER = 473


def _mesh(landmarks) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] < 478 or lm.shape[1] not in (2, 3):
        raise ValueError(f"landmarks: expected a [478, 2 or 3] MediaPipe face mesh, got {list(lm.shape)}")
    if not np.isfinite(lm[:, :2]).all():
        raise ValueError("landmarks: expected finite coordinates")
    return lm


def raw_five_points(landmarks) -> np.ndarray:
    """The 5 points by their anatomical mesh definitions (no MTCNN offset), ``[5, 2]`` float64.

    Works on pixel landmarks ``[478, 2 or 3]`` (uses x, y) and, with ``[478, 3]`` input, the same
    indices give 3D points via :func:`raw_five_points_3d`.
    """
    lm = _mesh(landmarks)[:, :2]
    return np.stack(
        (
            lm[list(RIGHT_EYE_CONTOUR)].mean(0),
            lm[list(LEFT_EYE_CONTOUR)].mean(0),
            lm[NOSE_TIP],
            lm[MOUTH_RIGHT],
            lm[MOUTH_LEFT],
        )
    )


def raw_five_points_3d(points) -> np.ndarray:
    """The same 5 definitions on any ``[478, 3]`` point set (e.g. the canonical face), ``[5, 3]``."""
    p = np.asarray(points, dtype=np.float64)
    if p.shape[0] < 478 or p.shape[1] != 3:
        raise ValueError(f"points: expected [478, 3], got {list(p.shape)}")
    return np.stack(
        (
            p[list(RIGHT_EYE_CONTOUR)].mean(0),
            p[list(LEFT_EYE_CONTOUR)].mean(0),
            p[NOSE_TIP],
            p[MOUTH_RIGHT],
            p[MOUTH_LEFT],
        )
    )


def face_scale(points5) -> float:
    """Pixels per 3D-template unit of 5 points: the crop's affine least-squares fit
    ``x = k0 . X + k3``, ``y = k4 . X + k7`` of the template ``X``, scale ``sqrt((|k0| + |k4|) / 2)``
    with squared norms (rotation-invariant; equals the crop's scale for an upright face)."""
    p = np.asarray(points5, dtype=np.float64)
    A = np.hstack((LANDMARKS_3D_TEMPLATE, np.ones((5, 1))))
    k, *_ = np.linalg.lstsq(A, p, rcond=None)
    s = float(np.sqrt(((k[:3] ** 2).sum(0)).mean()))
    if not s > 0:
        raise ValueError("points5: degenerate points (zero fitted face size)")
    return s


def face_frame(points5) -> tuple[np.ndarray, float]:
    """The normalized frame of a face: ``(R, s)``.

    ``R`` (2x2) has as columns the unit vectors along the eye line (toward the image-right eye)
    and across it (90 degrees clockwise in the image: toward the mouth); ``s`` is
    :func:`face_scale` (pixels per template unit). A normalized offset ``o`` is ``s * R @ o``
    pixels.
    """
    p = np.asarray(points5, dtype=np.float64)
    s = face_scale(p)
    e = p[1] - p[0]
    n = np.hypot(e[0], e[1])
    if not n > 0:
        raise ValueError("points5: the two eye centres coincide")
    c, sn = e / n
    return np.array([[c, -sn], [sn, c]]), float(s)


def apply_offsets(points5, offsets) -> np.ndarray:
    """Add normalized per-point offsets ``[5, 2]`` (see the module docstring) to pixel points."""
    p = np.asarray(points5, dtype=np.float64)
    R, s = face_frame(p)
    return p + s * (np.asarray(offsets, dtype=np.float64) @ R.T)


def five_points(landmarks, *, mtcnn_offsets: bool = True) -> np.ndarray:
    """The 5 EG3D alignment points ``[5, 2]`` (x, y pixels) of a face mesh.

    Args:
        landmarks: ``[478, 2 or 3]`` pixel landmarks (:class:`relight_core.track.landmarks.Face`).
        mtcnn_offsets: add the shipped MTCNN-compatibility offsets (default), so that the
            crop matches the released pipeline's framing.
    """
    p = raw_five_points(landmarks)
    if not mtcnn_offsets:
        return p
    from .canonical import load_canonical_face

    return apply_offsets(p, load_canonical_face().five_point_offsets)
