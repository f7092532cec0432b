"""Face detection and the 478-point MediaPipe face mesh, in pixel coordinates.

MediaPipe 0.10.21 (``pip install mediapipe==0.10.21``) ships its face models inside the wheel
(``mediapipe/modules/face_landmark/face_landmark_with_attention.tflite``,
``mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite``, ...), so nothing is
downloaded at run time. Two legacy "solutions" graphs are used:

* ``mediapipe.solutions.face_mesh.FaceMesh`` with ``refine_landmarks=True``: 468 mesh points plus
  10 iris points (478). In video mode (``static=False``) it tracks faces from frame to frame
  (each frame's region of interest comes from the previous landmarks); in static mode every image
  is searched from scratch. Its internal detector is the *short-range* one (faces within about 2 m
  of a phone camera: a face must fill a fair part of the frame).
* ``mediapipe.solutions.face_detection.FaceDetection(model_selection=1)``: the *full-range*
  detector. It gives a confidence score for the mesh faces, and finds small or distant faces that
  the mesh graph misses; for those the mesh is run again on an enlarged crop around the box. A face
  that is still too small for the mesh is returned with ``landmarks=None`` so that callers can
  report it ("face too small") rather than silently ignore it.

Coordinates
-----------
Pixels with pixel centres at integers (OpenCV's convention, as in :mod:`relight_core.track.align`):
``x = u * W - 0.5``, ``y = v * H - 0.5`` for MediaPipe's normalized ``(u, v)``, whose [0, 1] range
spans the image edges. ``z`` is MediaPipe's relative depth times the image width (the same scale
as x): smaller is closer to the camera, roughly zero at the face's centre.

Landmark indices are MediaPipe's face mesh topology; "right"/"left" in MediaPipe's names are the
subject's, so the subject's right eye is on the image left for a face looking at the camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Face", "FaceLandmarker", "NUM_LANDMARKS", "box_iou"]

NUM_LANDMARKS = 478
"""Points per face: the 468-point mesh and 2 x 5 iris points (MediaPipe ``refine_landmarks``)."""

_CROP_MESH_SIDE = 256
"""Side (px) to which a small face's enlarged box is resampled before running the mesh on it."""


@dataclass
class Face:
    """One face found in a frame.

    Attributes:
        landmarks: ``[478, 3]`` float64 (x, y, z) pixels (see the module docstring), or None when
            only the detector found the face (too small or too blurred for the mesh).
        box: ``[4]`` float64 ``(x0, y0, x1, y1)`` pixels: the landmarks' bounding box, or the
            detector's box when there are no landmarks.
        score: detector confidence in [0, 1], or NaN when the mesh tracked a face that the
            detector did not report in this frame.
    """

    landmarks: np.ndarray | None
    box: np.ndarray
    score: float

    @property
    def size(self) -> float:
        """Face size in pixels: the longer side of :attr:`box`."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def center(self) -> np.ndarray:
        """``[2]`` centre of :attr:`box`."""
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


def box_iou(a, b) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _check_frame(frame) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame: expected a numpy array [H, W, 3] uint8 RGB, got {type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame: expected a uint8 RGB image of shape [H, W, 3], got {frame.dtype} {list(frame.shape)}")
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise ValueError(f"frame: expected at least 8x8 pixels, got {list(frame.shape[:2])}")
    return np.ascontiguousarray(frame)


def _import_mediapipe():
    try:
        import mediapipe as mp
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "face tracking needs MediaPipe: pip install mediapipe==0.10.21 (the last release whose wheel "
            f"ships the face mesh models) ({exc})"
        ) from None
    return mp


class FaceLandmarker:
    """All faces of an RGB frame with their 478 landmarks, boxes and scores.

    Args:
        max_faces: the most faces returned (the mesh graph's ``max_num_faces``).
        static: True for unrelated images (every image searched from scratch); False for the
            frames of a clip, in order (faces are tracked from the previous frame).
        min_detection_confidence: detector threshold in [0, 1].
        min_tracking_confidence: the mesh's face-presence threshold when tracking (video mode).
        full_range: also run the full-range detector (scores, small and distant faces).
        min_mesh_size: detector boxes smaller than this (pixels, longer side) are not given to the
            mesh; they come back with ``landmarks=None``.

    Use as a context manager, or call :meth:`close`. Call :meth:`reset` at a shot cut so that the
    video-mode mesh forgets the previous shot's faces.
    """

    def __init__(
        self,
        max_faces: int = 4,
        static: bool = False,
        *,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        full_range: bool = True,
        min_mesh_size: float = 24.0,
    ):
        if isinstance(max_faces, bool) or not isinstance(max_faces, int) or max_faces < 1:
            raise ValueError(f"max_faces: expected a positive int, got {max_faces!r}")
        for name, v in (("min_detection_confidence", min_detection_confidence), ("min_tracking_confidence", min_tracking_confidence)):
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{name}: expected a value in [0, 1], got {v!r}")
        self.max_faces = max_faces
        self.static = bool(static)
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self.full_range = bool(full_range)
        self.min_mesh_size = float(min_mesh_size)
        self._mp = _import_mediapipe()
        self._mesh = None
        self._crop_mesh = None
        self._detector = None
        self._open()

    # -- life cycle -------------------------------------------------------------------------

    def _open(self) -> None:
        fm = self._mp.solutions.face_mesh
        self._mesh = fm.FaceMesh(
            static_image_mode=self.static,
            max_num_faces=self.max_faces,
            refine_landmarks=True,
            min_detection_confidence=self.min_detection_confidence,
            min_tracking_confidence=self.min_tracking_confidence,
        )
        if self.full_range:
            self._detector = self._mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.min_detection_confidence
            )

    def reset(self) -> None:
        """Forget tracked faces (video mode): the next frame is searched from scratch."""
        if self._mesh is not None and not self.static:
            self._mesh.close()
            self._mesh = self._mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False,
                max_num_faces=self.max_faces,
                refine_landmarks=True,
                min_detection_confidence=self.min_detection_confidence,
                min_tracking_confidence=self.min_tracking_confidence,
            )

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        for g in (self._mesh, self._crop_mesh, self._detector):
            if g is not None:
                g.close()
        self._mesh = self._crop_mesh = self._detector = None

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # -- detection --------------------------------------------------------------------------

    def __call__(self, frame) -> list[Face]:
        """Faces of one ``[H, W, 3]`` uint8 RGB frame, largest first (at most ``max_faces``)."""
        if self._mesh is None:
            raise RuntimeError("FaceLandmarker: already closed")
        img = _check_frame(frame)
        h, w = img.shape[:2]
        faces = [self._face(lm, w, h) for lm in self._run_mesh(self._mesh, img)]
        if self._detector is not None:
            for box, score in self._detect(img):
                match = [i for i, f in enumerate(faces) if box_iou(f.box, box) > 0.3]
                if match:
                    best = max(match, key=lambda i: box_iou(faces[i].box, box))
                    if not score <= faces[best].score:  # NaN or lower: take this detection's score
                        faces[best].score = score
                    continue
                if any(_inside(box, f.box) for f in faces):
                    continue
                faces.append(self._small_face(img, box, score))
        faces.sort(key=lambda f: -f.size)
        return faces[: self.max_faces]

    @staticmethod
    def _run_mesh(mesh, img: np.ndarray) -> list[np.ndarray]:
        res = mesh.process(img)
        out = []
        for fl in res.multi_face_landmarks or []:
            out.append(np.array([(p.x, p.y, p.z) for p in fl.landmark], dtype=np.float64))
        return out

    @staticmethod
    def _face(norm: np.ndarray, w: int, h: int, score: float = math.nan) -> Face:
        lm = np.empty_like(norm)
        lm[:, 0] = norm[:, 0] * w - 0.5
        lm[:, 1] = norm[:, 1] * h - 0.5
        lm[:, 2] = norm[:, 2] * w
        box = np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()])
        return Face(lm, box, score)

    def _detect(self, img: np.ndarray) -> list[tuple[np.ndarray, float]]:
        h, w = img.shape[:2]
        res = self._detector.process(img)
        out = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            x0, y0 = b.xmin * w - 0.5, b.ymin * h - 0.5
            box = np.array([x0, y0, x0 + b.width * w, y0 + b.height * h])
            out.append((box, float(d.score[0])))
        return out

    def _small_face(self, img: np.ndarray, box: np.ndarray, score: float) -> Face:
        """A detector-only face: try the mesh on an enlarged, resampled crop around the box."""
        side = max(box[2] - box[0], box[3] - box[1])
        if side < self.min_mesh_size:
            return Face(None, box.copy(), score)
        import cv2

        if self._crop_mesh is None:
            self._crop_mesh = self._mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                min_detection_confidence=self.min_detection_confidence,
            )
        # A square of twice the box side around the box centre, resampled to a fixed size:
        # crop pixel (i, j) <- source (x0 + (j + 0.5) k - 0.5, y0 + (i + 0.5) k - 0.5).
        c = (box[:2] + box[2:]) / 2
        half = side
        x0, y0 = c[0] - half, c[1] - half
        k = 2 * half / _CROP_MESH_SIDE
        A = np.array([[k, 0.0, x0 + 0.5 * k - 0.5], [0.0, k, y0 + 0.5 * k - 0.5]])
        crop = cv2.warpAffine(
            img, A, (_CROP_MESH_SIDE, _CROP_MESH_SIDE),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
        )
        found = self._run_mesh(self._crop_mesh, crop)
        if not found:
            return Face(None, box.copy(), score)
        f = self._face(found[0], _CROP_MESH_SIDE, _CROP_MESH_SIDE)
        lm = f.landmarks
        lm[:, 0] = A[0, 0] * lm[:, 0] + A[0, 2]
        lm[:, 1] = A[1, 1] * lm[:, 1] + A[1, 2]
        lm[:, 2] = lm[:, 2] * k
        out = Face(lm, np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()]), score)
        if box_iou(out.box, box) < 0.2:  # the mesh found something else in the crop
            return Face(None, box.copy(), score)
        return out


def _inside(a, b, frac: float = 0.6) -> bool:
    """Whether most of box ``a`` lies inside box ``b``."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return area > 0 and ix * iy / area > frac
