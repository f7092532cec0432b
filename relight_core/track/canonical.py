"""The canonical 3D face in EG3D head space (package data made by ``scripts/make_canonical_face.py``).

Head space is EG3D's world (:mod:`relight_core.camera`): the tri-plane box is [-0.5, 0.5]^3, +y
is up, +x is the subject's left (image right for the frontal camera), and the face looks along +z
toward the frontal camera at (0, 0, 2.7). The head pivot, the point every EG3D camera looks at, is
the origin.

How the shipped numbers were made (details in the script's docstring):

* the mean of 704 MediaPipe face meshes of frontal studio portraits (generalized Procrustes),
  made exactly mirror-symmetric about x = 0, so yaw = roll = 0 means a face that looks
  symmetric to the camera;
* **pitch 0 is the portraits' mean orientation**: a frontal photograph has pitch about 0, as
  EG3D's frontal camera and the paper's symmetric training ranges (pitch +-26 deg) assume.
  (Fitting the mean mesh to Deep3D's 5-point 3D template instead would tilt it by about 13 deg,
  but those 5 template points are not a reliable pitch reference: on smiling faces MTCNN's mouth
  corners sit 0.89 interocular distances below the eyes on the astronaut portrait, against 1.08
  for the template, so the template's depth layout is not what detectors see.)
* scale and position: the frontal EG3D camera (radius 2.7, focal 4.2634) sees the face so that
  the EG3D 5-point crop of that view is the view itself (300 * 512 / 700 px per template unit,
  template origin at the crop centre; a residual 3.7 px x shift comes from the MTCNN offsets'
  common shift, kept so the crop matches the released pipeline), and its 5 points lie at the
  mean depth that EG3D's Deep3D-to-EG3D conversion gives them (the BFM origin 0.161 in front of
  the pivot). The result: interpupillary distance 0.155 head units, nose tip at z = 0.30.

The metric size of a head unit follows from an average adult interpupillary distance, 63 mm
(:data:`DEFAULT_INTERPUPILLARY_M`): about 0.41 m per head unit; pass your subject's own value to
:meth:`CanonicalFace.metres_per_unit` when known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import five_points as FP

__all__ = ["CanonicalFace", "load_canonical_face", "DEFAULT_INTERPUPILLARY_M", "DATA_PATH"]

DATA_PATH = Path(__file__).resolve().parents[1] / "data" / "canonical_face.npz"
"""The shipped file."""

DEFAULT_INTERPUPILLARY_M = 0.063
"""Average adult interpupillary distance in metres (the default metric scale)."""


@dataclass(frozen=True)
class CanonicalFace:
    """The canonical face.

    Attributes:
        vertices: ``[478, 3]`` float64 head-space positions of the MediaPipe mesh points.
        rigid_indices: mesh points that move little with expression (used for head pose).
        mirror: ``[478]`` index of each point's left/right partner (midline points map to themselves).
        five_point_offsets: ``[5, 2]`` MTCNN-compatibility offsets (:mod:`.five_points`).
        five_point_offsets_std: ``[5, 2]`` their per-face standard deviation on the portraits.
        spread: ``[478]`` per-point RMS deviation across the portraits (head units).
        info: the derivation's numbers (dict).
    """

    vertices: np.ndarray
    rigid_indices: np.ndarray
    mirror: np.ndarray
    five_point_offsets: np.ndarray
    five_point_offsets_std: np.ndarray
    spread: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def interpupillary(self) -> float:
        """Distance between the two iris centres, in head units."""
        return float(np.linalg.norm(self.vertices[FP.RIGHT_IRIS_CENTER] - self.vertices[FP.LEFT_IRIS_CENTER]))

    @property
    def five_points_3d(self) -> np.ndarray:
        """``[5, 3]`` head-space eye centres, nose tip and mouth corners (mesh definitions)."""
        return FP.raw_five_points_3d(self.vertices)

    def metres_per_unit(self, interpupillary_m: float = DEFAULT_INTERPUPILLARY_M) -> float:
        """Metres per head unit for a subject with the given interpupillary distance (metres)."""
        v = float(interpupillary_m)
        if not 0.03 < v < 0.1:
            raise ValueError(f"interpupillary_m: expected an interpupillary distance in metres (0.03-0.1), got {interpupillary_m!r}")
        return v / self.interpupillary


@lru_cache(maxsize=4)
def load_canonical_face(path: str | Path | None = None) -> CanonicalFace:
    """Load the canonical face (the shipped ``relight_core/data/canonical_face.npz`` by default)."""
    p = Path(path) if path is not None else DATA_PATH
    if not p.is_file():
        raise FileNotFoundError(
            f"canonical face data not found at {p}; regenerate it with scripts/make_canonical_face.py"
        )
    with np.load(p, allow_pickle=False) as d:
        verts = d["vertices"].astype(np.float64)
        if verts.shape != (478, 3):
            raise ValueError(f"{p}: expected vertices of shape [478, 3], got {list(verts.shape)}")
        face = CanonicalFace(
            vertices=verts,
            rigid_indices=d["rigid_indices"].astype(np.int64),
            mirror=d["mirror"].astype(np.int64),
            five_point_offsets=d["five_point_offsets"].astype(np.float64),
            five_point_offsets_std=d["five_point_offsets_std"].astype(np.float64),
            spread=d["spread"].astype(np.float64),
            info=json.loads(str(d["info"])),
        )
    for a in (face.vertices, face.rigid_indices, face.mirror, face.five_point_offsets):
        a.setflags(write=False)
    return face
