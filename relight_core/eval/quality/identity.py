"""Identity: dlib's face descriptors (128-D ResNet embeddings; 0.6 is dlib's same-person threshold).

dlib and its model files (``dlib-bin`` and ``face-recognition-models``) are optional: install them
with ``pip install relight[eval]``. ``face_recognition_models`` cannot be imported on current
Python (it imports ``pkg_resources``), so its files are found through the import system without
running its code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SAME_PERSON = 0.6
"""dlib's threshold: descriptors of the same person are closer than this (Euclidean)."""

_INSTALL = "pip install relight[eval] (dlib-bin and face-recognition-models)"


def model_files() -> dict[str, Path]:
    """Paths of the 5-point shape predictor and the recognition network of face-recognition-models."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the identity metric needs the face-recognition-models package: {_INSTALL}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    files = {"landmarks": folder / "shape_predictor_5_face_landmarks.dat",
             "recognition": folder / "dlib_face_recognition_resnet_model_v1.dat"}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise RuntimeError(f"face-recognition-models is incomplete (missing {', '.join(missing)}); reinstall it: {_INSTALL}")
    return files


class FaceIdentity:
    """Face descriptors of ``[H, W, 3]`` uint8 RGB images.

    :meth:`describe` detects the largest face (dlib's HOG detector, one upsampling). When none is
    found it can use a ``fallback`` box (x0, y0, x1, y1), e.g. the input's box for a render of the
    same crop, and says so in its result.
    """

    def __init__(self):
        try:
            import dlib
        except ImportError:
            raise RuntimeError(f"the identity metric needs dlib: {_INSTALL}") from None
        files = model_files()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(files["landmarks"]))
        self._network = dlib.face_recognition_model_v1(str(files["recognition"]))

    def detect(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """The largest face's box (x0, y0, x1, y1) in pixels, or None."""
        boxes = self._detector(np.ascontiguousarray(image), 1)
        if not boxes:
            return None
        b = max(boxes, key=lambda r: r.width() * r.height())
        return b.left(), b.top(), b.right(), b.bottom()

    def describe(self, image: np.ndarray, fallback: tuple[int, int, int, int] | None = None) -> dict:
        """``{"descriptor": [128] float64 or None, "box": box or None, "detected": bool}``."""
        img = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
        box = self.detect(img)
        detected = box is not None
        if box is None:
            box = fallback
        if box is None:
            return {"descriptor": None, "box": None, "detected": False}
        rect = self._dlib.rectangle(*(int(v) for v in box))
        shape = self._landmarks(img, rect)
        descriptor = np.asarray(self._network.compute_face_descriptor(img, shape), dtype=np.float64)
        return {"descriptor": descriptor, "box": box, "detected": detected}


def distance(a: dict, b: dict) -> float | None:
    """Euclidean distance of two :meth:`FaceIdentity.describe` results (None if either has none)."""
    if a["descriptor"] is None or b["descriptor"] is None:
        return None
    return float(np.linalg.norm(a["descriptor"] - b["descriptor"]))
