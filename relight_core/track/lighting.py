"""Input-lighting estimation: the frame's SH9 light from the tracked face itself.

``estimate_lighting(rgb_linear, landmarks, rotation)`` fits second-order SH lighting (DPR
convention, :mod:`relight_core.sh`; BLENDER.md 4.2) to the skin of the tracked face: normals
from the 478-point face mesh, linear colour sampled at its vertices, a robust (IRLS, Huber then
Tukey) regularized least-squares fit of ``colour = albedo x shading(normal)``. No learned
weights are involved. Accuracy and its measurement: ``docs/LIGHT_ESTIMATION.md``
(``scripts/eval_light_estimation.py``).

Frame and units of the result
-----------------------------
``LightEstimate.sh`` ``[9, 3]`` are coloured DPR coefficients (``c = L / pi``, so
``sh.shading(n, sh)`` is ``E / pi``, the value of a white Lambertian surface) in the **DPR frame of
the camera that shot the frame**: X = image right, Y = into the screen (the plate camera's optical
axis), Z = image up; ``OPENCV_TO_DPR`` applied to the plate camera's OpenCV axes. The network's
crop camera looks at the head pivot from the plate camera's centre with the plate camera's up
vector (:func:`.pose.crop_camera`), so its DPR frame differs from this one only by the small
rotation between the plate's optical axis and the ray to the head (zero for a centred face, about
the face's angular offset from the image centre otherwise); :func:`light_to_crop_frame` rotates
the coefficients into the crop camera's frame exactly. The estimate is per frame; smooth it over
time in the caller if needed (the coefficients are linear in the image, so averaging them is
averaging lights).

Model and normalisation (the albedo-light ambiguity)
----------------------------------------------------
The face's colour is ``I_c(v) = a_c * shading_c(n_v)`` with one albedo ``a_c`` per channel for all
skin (outliers, i.e. make-up, stubble, freckles, highlights, cast shadows, are rejected by the
robust weights). Only the products ``f_c = a_c * c_c`` are observable: a darker skin under a
brighter light, or a redder skin under a whiter light, give the same image. ``skin_albedo``
fixes the split:

* ``None`` (default): **neutral light on average, reference skin brightness.** The albedo's
  colour is chosen so that the fitted light's mean shading over the observed face is grey, and
  its Rec.709 luminance is :data:`SKIN_LUMINANCE` (0.326, the luminance of the mid-light skin
  (0.45, 0.30, 0.22) of :mod:`relight_core.train.albedo`'s anchors). A white-balanced plate thus
  gives a light of grey mean colour; colour *differences* across directions (a warm key and a
  cool fill) are kept. Relighting by shading ratios then keeps the person's own skin colour; only
  the overall exposure is a convention.
* a number: the same, with that albedo luminance.
* ``[3]``: a known linear albedo (e.g. measured on a chart or the user's choice); the light's
  mean colour is then whatever makes this albedo match the plate.

``LightEstimate.albedo`` returns the albedo used. Whatever the convention, ``albedo * sh`` (per
channel) is the same, and ratios of shadings of the estimated light (which is what the network and
the compositor use) do not depend on the scale.

What one view of a face can and cannot tell
-------------------------------------------
Only normals that face the camera are seen: the face covers roughly the cone of normals within
70-80 degrees of the viewing direction (the half-sphere ``Y < 0`` of DPR's lighting ball, less its
rim), densest around the front. Over those normals the shading is well determined; it is what
relighting by shading ratios needs (the same normals are the visible ones of the network's input).
The nine coefficients themselves are not all well determined: a light from behind the head
(``Y > 0``) adds almost nothing to front-facing normals, and over a cone of normals the DC term,
the front-back band-1 term (``y``) and the band-2 terms trade off against each other. The fit
therefore adds a Gaussian prior (ridge) that pulls the non-DC coefficients toward zero relative to
the DC term (standard deviations :attr:`LightingConfig.prior_band1` and ``prior_band2`` times the
DC, which is the spread of normalized coefficients of natural set-ups: ambient plus a few lights
from any direction), so where the data are silent the estimate falls back to "more ambient", not
to hallucinated back light; and the colour of each coefficient is pulled toward the luminance fit
(``prior_chroma``), because per-channel albedo variation (flushed cheeks) would otherwise show up
as coloured light. Expect light from behind (rim light) to be under-estimated and reported as a
little ambient. Left-right asymmetric albedo (make-up on one side, a one-sided beard) is
indistinguishable from light and is only partly caught by the robust weights.

Geometry
--------
Triangles: ``relight_core/data/face_triangles.npz`` (``scripts/make_face_triangles.py``: the 852
faces of MediaPipe's ``FACEMESH_TESSELATION``, consistently oriented, and the excluded vertex
regions). Vertex normals are area-weighted normals of the landmark mesh itself (``x, y`` pixels
and MediaPipe's ``z``): a weak-perspective reconstruction with the subject's own shape and
expression. MediaPipe reconstructs the face as seen along the ray from the camera to the face,
so these normals are rotated from that ray to the optical axis (:func:`ray_rotation`, with the
plate intrinsics ``K``; default: the tracker's default lens, :func:`.pose.plate_intrinsics`); for
a face in the image centre this is the identity, for a face 15 degrees off-axis it removes a
15-degree tilt of every normal (measured on synthetic heads 11-15 degrees off-axis: mean normal
error 18.2 -> 14.0 deg, face shading error 0.163 -> 0.129; docs/LIGHT_ESTIMATION.md).

``rotation`` is accepted for the pose-based alternatives (``LightingConfig.normals``:
``"affine"``, the landmark shape mapped by the affine transform that best fits it to the canonical
face posed with ``rotation``; ``"canonical"``, the canonical face's own normals posed with it) but
the default does not use it: on synthetic heads tracked by MediaPipe the PnP rotation on the mean
face is off by 5-15 degrees, more than the landmarks' own orientation, and both alternatives
measured worse (docs/LIGHT_ESTIMATION.md). Normal errors are the accuracy limit of the method:
with the renderer's true normals at the same vertices the error drops by a factor of 2-3.

Samples: every mesh vertex except the eyes (with lashes), eyebrows, lips, nostrils and the face
outline, that is visible (not behind another part of the mesh, within the image) and faces the
camera (the cosine between the normal and the viewing direction above ``min_facing``, with a
weight ramping up to 1 at ``full_facing``): typically 150-200 vertices. Colours are bilinear
samples of the frame after a Gaussian blur of ``blur`` x face size (NaN-aware), skipping clipped
pixels (values >= 0.995 when the frame's maximum is <= 1, i.e. a display-referred decode).

Fit
---
Luminance first: ``Y(v) = B(n_v) . f`` with the DPR shading basis ``B`` (``sh.shading_basis``),
by iteratively reweighted least squares: Huber weights (threshold ``huber`` robust standard
deviations) for half the iterations, then Tukey's biweight (``tukey``), which gives gross outliers
(specular highlights, cast shadows, stubble, hair strands) zero weight; the residual scale is the
MAD of the residuals, floored at ``noise_floor`` of the median luminance. The fit is also
restarted from five subsets of the face (without the lower face, where a beard may cover a
third of the samples; without the forehead; the band between; each side) and the candidate with
the least sum of its ``trim`` smallest squared residuals is kept (least trimmed squares), which
rejects contiguous albedo changes a single robust fit cannot. The prior above is added
to the normal equations with the data term scaled by ``1 / (correlation sigma^2)``. Then each
channel with the same robust weights, its prior centred on the luminance solution rescaled to the
channel. ``residual`` is the RMS luminance residual of the inliers (within ``tukey`` robust
deviations) over their mean luminance; ``inliers`` their fraction. ``ok`` is False (and the
coefficients zero) when fewer than ``min_samples`` vertices are usable, the face is too dark,
the mesh does not face the camera, the inlier fraction is below ``min_inliers``, the residual is
above ``max_residual``, or the fitted light is negative on more than 20 % of the face.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import sh as SH

__all__ = [
    "LightEstimate",
    "LightingConfig",
    "estimate_lighting",
    "face_samples",
    "fit_samples",
    "FaceSamples",
    "load_face_topology",
    "FaceTopology",
    "mesh_normals",
    "shading_basis_np",
    "light_to_crop_frame",
    "ray_rotation",
    "DEFAULT_SKIN_ALBEDO",
    "SKIN_LUMINANCE",
    "TRIANGLES_PATH",
]

TRIANGLES_PATH = Path(__file__).resolve().parents[1] / "data" / "face_triangles.npz"
"""The shipped triangles and regions (``scripts/make_face_triangles.py``)."""

LUMA = np.array(SH.LUMA_REC709, dtype=np.float64)
DEFAULT_SKIN_ALBEDO = (0.45, 0.30, 0.22)
"""A mid-light skin's linear diffuse albedo (the Fitzpatrick-III-like anchor quoted in
:mod:`relight_core.train.albedo`); only its luminance is used by default."""
SKIN_LUMINANCE = float(LUMA @ np.array(DEFAULT_SKIN_ALBEDO))
"""Rec.709 luminance of :data:`DEFAULT_SKIN_ALBEDO` (0.326): the default albedo brightness."""

_CONST = np.array(SH.SH_CONSTANTS, dtype=np.float64)
_LAMBERT = np.array(SH.LAMBERT, dtype=np.float64)
_OPENCV_TO_DPR = np.array(SH.OPENCV_TO_DPR, dtype=np.float64)
_DC_SHADING = _CONST[0] * _LAMBERT[0]  # shading of c = (1, 0, ..., 0): sqrt(pi) / 2 = 0.886


@dataclass
class LightingConfig:
    """Settings of :func:`estimate_lighting` (the defaults are the measured ones of
    docs/LIGHT_ESTIMATION.md).

    Attributes:
        normals: "auto" (= "landmarks"), "landmarks" (the landmark mesh's normals, rotated from the
            ray to the face to the optical axis), "optical" (the same without that rotation),
            "affine" (the landmark shape affinely fitted to the canonical face posed with the
            rotation; needs it) or "canonical" (the canonical face posed with the rotation: no
            identity or expression). See the module docstring for the measured comparison.
        blur: Gaussian sigma of the colour sampling, as a fraction of the face size.
        min_facing: samples whose normal makes a cosine below this with the viewing direction are
            dropped (grazing: the colour mixes with the background, the normal is uncertain).
        full_facing: the sample weight ramps linearly from 0 at ``min_facing`` to 1 here.
        prior_band1, prior_band2: prior standard deviations of the band-1 and band-2
            coefficients relative to the DC coefficient (module docstring).
        prior_chroma: prior standard deviation of each channel's non-DC coefficients from the
            luminance fit's (relative to the channel's DC).
        correlation: the data term is divided by this: neighbouring vertices share their albedo
            deviations, so the effective number of independent samples is smaller.
        noise_floor: lower bound of the robust residual scale, relative to the median luminance.
        huber, tukey: IRLS thresholds in robust standard deviations (Huber iterations first,
            then Tukey's biweight, which gives gross outliers zero weight).
        iterations: IRLS iterations (half Huber, half Tukey).
        trim: share of the samples whose squared residuals choose among the robust fit's
            starting points (least trimmed squares, :func:`_robust_fit`).
        min_samples: fewer usable vertices than this fail the estimate.
        min_inliers: a lower inlier fraction fails the estimate.
        max_residual: a larger robust relative RMS residual fails the estimate.
        min_luminance: a median face luminance below this (linear) fails as "too dark".
    """

    normals: str = "auto"
    blur: float = 0.006
    min_facing: float = 0.2
    full_facing: float = 0.45
    prior_band1: float = 0.7
    prior_band2: float = 0.35
    prior_chroma: float = 0.25
    correlation: float = 4.0
    noise_floor: float = 0.01
    huber: float = 1.5
    tukey: float = 3.5
    iterations: int = 16
    trim: float = 0.5
    min_samples: int = 60
    min_inliers: float = 0.5
    max_residual: float = 0.6
    min_luminance: float = 1e-4

    def __post_init__(self):
        if self.normals not in ("auto", "landmarks", "optical", "affine", "canonical"):
            raise ValueError(f"normals: expected 'auto', 'landmarks', 'optical', 'affine' or 'canonical', got {self.normals!r}")
        if not 0.0 <= self.min_facing < self.full_facing <= 1.0:
            raise ValueError("expected 0 <= min_facing < full_facing <= 1")


@dataclass
class LightEstimate:
    """Result of :func:`estimate_lighting` (see the module docstring for frame and normalisation).

    Attributes:
        sh: ``[9, 3]`` float32 coloured DPR coefficients in the plate camera's DPR frame.
        sh_grey: ``[9]`` float32 Rec.709 luminance of ``sh`` (the released network's input).
        albedo: ``[3]`` float32 linear skin albedo that goes with ``sh`` (``albedo * sh`` is the
            observable product).
        residual: robust relative RMS of the fit: RMS luminance residual of the inliers divided
            by their mean luminance (the albedo variation left unexplained plus noise).
        inliers: fraction of the usable vertices within ``tukey`` robust deviations.
        ok: whether the estimate is usable. When False, ``sh``/``sh_grey`` are zeros, ``albedo``
            is the normalisation's albedo when the fit got that far (else NaN) and ``reason``
            says why; nothing raises for bad frames or landmarks.
        reason: "" when ok, else why not (e.g. "landmarks outside the image").
        samples: number of vertices used.
        normals: which normals were used ("landmarks", "optical", "affine" or "canonical").
    """

    sh: np.ndarray
    sh_grey: np.ndarray
    albedo: np.ndarray
    residual: float
    inliers: float
    ok: bool
    reason: str = ""
    samples: int = 0
    normals: str = ""

    def report(self) -> dict:
        """A small JSON-able summary for per-frame metadata."""
        def num(x):
            return None if not math.isfinite(x) else float(x)

        return {
            "sh": self.sh.tolist(), "sh_grey": self.sh_grey.tolist(), "albedo": [num(float(a)) for a in self.albedo],
            "residual": num(self.residual), "inliers": num(self.inliers), "ok": self.ok, "reason": self.reason,
            "samples": self.samples, "normals": self.normals,
        }


# ------------------------------------------------------------------------------------------
# topology
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceTopology:
    """The face mesh's triangles and the vertex regions excluded from the fit.

    Attributes:
        triangles: ``[852, 3]`` int64, oriented so that ``(v1 - v0) x (v2 - v0)`` points out of
            the face (toward the camera, i.e. -z, in pixel landmarks).
        excluded: ``[478]`` bool: eyes, brows, lips, nostrils, face outline and the iris points.
        regions: the individual ``[478]`` masks by name.
        info: the derivation's numbers.
    """

    triangles: np.ndarray
    excluded: np.ndarray
    regions: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


@lru_cache(maxsize=2)
def load_face_topology(path: str | Path | None = None) -> FaceTopology:
    """Load the shipped triangles and regions (``relight_core/data/face_triangles.npz``)."""
    p = Path(path) if path is not None else TRIANGLES_PATH
    if not p.is_file():
        raise FileNotFoundError(f"face triangles not found at {p}; regenerate them with scripts/make_face_triangles.py")
    with np.load(p, allow_pickle=False) as d:
        tri = d["triangles"].astype(np.int64)
        regions = {k: d[k].astype(bool) for k in ("eyes", "brows", "lips", "nostrils", "oval")}
        info = json.loads(str(d["info"]))
    excluded = np.zeros(478, bool)
    for m in regions.values():
        excluded |= m
    excluded[468:] = True
    for a in (tri, excluded, *regions.values()):
        a.setflags(write=False)
    return FaceTopology(tri, excluded, regions, info)


# ------------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------------


def shading_basis_np(normals: np.ndarray) -> np.ndarray:
    """numpy float64 twin of :func:`relight_core.sh.shading_basis`: ``[..., 9]``."""
    n = np.asarray(normals, dtype=np.float64)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    poly = np.stack((np.ones_like(x), y, z, x, x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y), -1)
    return poly * (_CONST * _LAMBERT)


def mesh_normals(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``[V, 3]`` of a mesh (zero for unused vertices)."""
    p = np.asarray(points, dtype=np.float64)
    t = triangles
    fn = np.cross(p[t[:, 1]] - p[t[:, 0]], p[t[:, 2]] - p[t[:, 0]])
    n = np.zeros_like(p)
    for k in range(3):
        np.add.at(n, t[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(norm > 1e-12, n / np.maximum(norm, 1e-300), 0.0)


def _occluded(p: np.ndarray, triangles: np.ndarray, eps: float, which: np.ndarray | None = None) -> np.ndarray:
    """Vertices hidden behind another part of the mesh (weak perspective, ``z`` = depth, smaller
    is closer): ``[V]`` bool; only the vertices in ``which`` (bool ``[V]``) are tested."""
    V = p.shape[0]
    idx = np.arange(V) if which is None else np.nonzero(which)[0]
    out = np.zeros(V, bool)
    if idx.size == 0:
        return out
    q = p[idx]
    a, b, c = (p[triangles[:, k]] for k in range(3))  # [F, 3]
    den = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])  # [F]
    good = np.abs(den) > 1e-9
    den = np.where(good, den, 1.0)
    dx = q[:, None, 0] - c[None, :, 0]
    dy = q[:, None, 1] - c[None, :, 1]
    l0 = ((b[:, 1] - c[:, 1]) / den)[None] * dx + ((c[:, 0] - b[:, 0]) / den)[None] * dy
    l1 = ((c[:, 1] - a[:, 1]) / den)[None] * dx + ((a[:, 0] - c[:, 0]) / den)[None] * dy
    l2 = 1 - l0 - l1
    inside = (l0 > 1e-6) & (l1 > 1e-6) & (l2 > 1e-6) & good[None]
    zt = l0 * a[None, :, 2] + l1 * b[None, :, 2] + l2 * c[None, :, 2]
    own = (triangles[None, :, :] == idx[:, None, None]).any(-1)
    out[idx] = (inside & ~own & (zt < q[:, None, 2] - eps)).any(1)
    return out


def _rotation_ok(R) -> str:
    try:
        r = np.asarray(R, dtype=np.float64)
    except (TypeError, ValueError):
        return "rotation: expected a [3, 3] rotation matrix"
    if r.shape != (3, 3):
        return f"rotation: expected a [3, 3] rotation matrix, got shape {list(r.shape)}"
    if not np.isfinite(r).all():
        return "rotation: not finite"
    if np.abs(r @ r.T - np.eye(3)).max() > 1e-3 or np.linalg.det(r) < 0:
        return "rotation: not a proper rotation matrix"
    return ""


def _aligned_normals(p: np.ndarray, n_raw: np.ndarray, R: np.ndarray, mode: str, topo: FaceTopology) -> np.ndarray:
    """Camera-frame (OpenCV axes) normals of the landmark shape made consistent with the pose."""
    from .canonical import load_canonical_face

    canon = load_canonical_face().vertices[:468]
    q = canon @ R.T  # the canonical face in the camera's orientation (head units)
    if mode == "canonical":
        return mesh_normals(q, topo.triangles)
    # affine fit q ~ A p over the rigid-ish mesh points (all 468: a least-squares fit is robust
    # enough to expression changes, which move few points)
    pc = p - p.mean(0)
    qc = q - q.mean(0)
    At, *_ = np.linalg.lstsq(pc, qc, rcond=None)  # qc ~ pc @ At, A = At.T
    A = At.T
    if not np.isfinite(A).all() or abs(np.linalg.det(A)) < 1e-12:
        return n_raw
    n = n_raw @ np.linalg.inv(A)  # rows: (A^-T n)^T = n^T A^-1
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(norm > 1e-12, n / np.maximum(norm, 1e-300), 0.0)


# ------------------------------------------------------------------------------------------
# sampling
# ------------------------------------------------------------------------------------------


@dataclass
class FaceSamples:
    """Per-vertex data of one frame (all ``[478, ...]``; :func:`face_samples`).

    Attributes:
        normals: ``[478, 3]`` unit normals in the plate camera's DPR frame (zero for the iris).
        colour: ``[478, 3]`` linear RGB samples (NaN where unusable).
        weight: ``[478]`` sample weights in [0, 1] (0 = not used).
        reasons: counts of dropped vertices by cause.
        face_size: pixels (longer side of the landmark box).
        normals_source: "landmarks", "affine" or "canonical".
    """

    normals: np.ndarray
    colour: np.ndarray
    weight: np.ndarray
    reasons: dict
    face_size: float
    normals_source: str


def _blurred_samples(rgb: np.ndarray, xy: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware Gaussian-blurred bilinear samples ``[N, 3]`` and validity ``[N]``."""
    import cv2

    H, W = rgb.shape[:2]
    pad = int(math.ceil(3 * sigma)) + 2
    x0 = int(max(0, math.floor(np.nanmin(xy[:, 0])) - pad))
    y0 = int(max(0, math.floor(np.nanmin(xy[:, 1])) - pad))
    x1 = int(min(W, math.ceil(np.nanmax(xy[:, 0])) + pad + 1))
    y1 = int(min(H, math.ceil(np.nanmax(xy[:, 1])) + pad + 1))
    n = xy.shape[0]
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.full((n, 3), np.nan), np.zeros(n, bool)
    crop = np.asarray(rgb[y0:y1, x0:x1, :3], dtype=np.float32)
    finite = np.isfinite(crop).all(-1)
    img = np.where(finite[..., None], crop, 0.0).astype(np.float32)
    wgt = finite.astype(np.float32)
    if sigma > 0.3:
        k = 2 * int(math.ceil(3 * sigma)) + 1
        img = cv2.GaussianBlur(img, (k, k), sigma, borderType=cv2.BORDER_REPLICATE)
        wgt = cv2.GaussianBlur(wgt, (k, k), sigma, borderType=cv2.BORDER_REPLICATE)
    x = xy[:, 0] - x0
    y = xy[:, 1] - y0
    h, w = img.shape[:2]
    inside = (x >= 0) & (y >= 0) & (x <= w - 1) & (y <= h - 1) & np.isfinite(x) & np.isfinite(y)
    xs = np.clip(np.where(inside, x, 0), 0, w - 1)
    ys = np.clip(np.where(inside, y, 0), 0, h - 1)
    xi = np.minimum(np.floor(xs).astype(int), w - 2)
    yi = np.minimum(np.floor(ys).astype(int), h - 2)
    fx = (xs - xi)[:, None]
    fy = (ys - yi)[:, None]

    def bil(a):
        a = a if a.ndim == 3 else a[..., None]
        return ((a[yi, xi] * (1 - fx) + a[yi, xi + 1] * fx) * (1 - fy)
                + (a[yi + 1, xi] * (1 - fx) + a[yi + 1, xi + 1] * fx) * fy)

    col = bil(img).astype(np.float64)
    wv = bil(wgt)[:, 0].astype(np.float64)
    valid = inside & (wv > 0.98)
    col = np.where(valid[:, None], col / np.maximum(wv, 1e-6)[:, None], np.nan)
    return col, valid


def ray_rotation(point_xy, K) -> np.ndarray:
    """The smallest rotation taking the optical axis (0, 0, 1) to the ray through a pixel
    (OpenCV camera axes): MediaPipe's depth is along that ray, not along the optical axis."""
    Km = np.asarray(K, dtype=np.float64)
    r = np.linalg.solve(Km, np.array([point_xy[0], point_xy[1], 1.0]))
    r /= np.linalg.norm(r)
    z = np.array([0.0, 0.0, 1.0])
    v = np.cross(z, r)
    s, c = np.linalg.norm(v), float(z @ r)
    if s < 1e-12:
        return np.eye(3)
    k = v / s
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * Kx + (1 - c) * Kx @ Kx


def face_samples(rgb_linear: np.ndarray, landmarks: np.ndarray, rotation: np.ndarray | None = None,
                 config: LightingConfig | None = None, K: np.ndarray | None = None) -> FaceSamples:
    """Normals, colours and weights at the face-mesh vertices (inputs already validated).

    ``K``: plate pixel intrinsics (default: :func:`.pose.plate_intrinsics` of the frame size,
    the tracker's default lens), used to turn MediaPipe's ray-aligned depth into camera axes.
    """
    cfg = config or LightingConfig()
    topo = load_face_topology()
    lm = np.asarray(landmarks, dtype=np.float64)
    p = lm[:468, :3]
    n_raw = np.zeros((478, 3))
    n_raw[:468] = mesh_normals(p, topo.triangles)  # pixel frame: x right, y down, z away
    mode = cfg.normals
    if mode == "auto":
        mode = "landmarks"
    if mode in ("affine", "canonical") and rotation is None:
        raise ValueError(f"normals={cfg.normals!r} needs a rotation")
    if mode in ("landmarks", "optical"):
        n_cam = n_raw
        if mode == "landmarks":
            if K is None:
                from .pose import plate_intrinsics

                K = plate_intrinsics(rgb_linear.shape[1], rgb_linear.shape[0])
            centre = (p[:, :2].min(0) + p[:, :2].max(0)) / 2
            n_cam = n_raw @ ray_rotation(centre, K).T
    else:
        n_cam = np.zeros((478, 3))
        n_cam[:468] = _aligned_normals(p, n_raw[:468], np.asarray(rotation, dtype=np.float64), mode, topo)
    normals = n_cam @ _OPENCV_TO_DPR.T

    size = float(max(np.ptp(p[:, 0]), np.ptp(p[:, 1])))
    facing = -n_raw[:, 2]  # cosine with the viewing direction (weak perspective, MediaPipe's frame)
    wf = np.clip((facing - cfg.min_facing) / (cfg.full_facing - cfg.min_facing), 0.0, 1.0)
    hidden = np.zeros(478, bool)
    hidden[:468] = _occluded(p, topo.triangles, 0.01 * size, (~topo.excluded[:468]) & (wf[:468] > 0))
    col = np.full((478, 3), np.nan)
    valid = np.zeros(478, bool)
    col[:468], valid[:468] = _blurred_samples(rgb_linear, p[:, :2], max(cfg.blur * size, 0.0))
    # clipped pixels (display-referred decodes saturate at 1.0)
    finite_vals = col[valid]
    clip = np.zeros(478, bool)
    if finite_vals.size and np.nanmax(finite_vals) <= 1.0 + 1e-4:
        clip = valid & (np.nan_to_num(col, nan=0.0).max(1) >= 0.995)
    H, W = rgb_linear.shape[:2]
    in_img = (p[:, 0] >= -0.5) & (p[:, 1] >= -0.5) & (p[:, 0] <= W - 0.5) & (p[:, 1] <= H - 0.5)
    in_img = np.concatenate((in_img, np.zeros(10, bool)))
    region = ~topo.excluded
    reasons = {
        "region": int((~region).sum()),
        "outside_image": int((region & ~in_img).sum()),
        "not_finite": int((region & in_img & ~valid).sum()),
        "facing_away": int((region & (wf <= 0)).sum()),
        "hidden": int((region & hidden).sum()),
        "clipped": int((region & clip).sum()),
    }
    use = region & valid & ~hidden & ~clip & (wf > 0)
    weight = np.where(use, wf, 0.0)
    col[~use] = np.nan
    return FaceSamples(normals, col, weight, reasons, size, mode)


# ------------------------------------------------------------------------------------------
# fitting
# ------------------------------------------------------------------------------------------


def _prior_precision(dc: float, cfg: LightingConfig) -> np.ndarray:
    s = np.array([np.inf, cfg.prior_band1, cfg.prior_band1, cfg.prior_band1] + [cfg.prior_band2] * 5) * max(dc, 1e-12)
    return 1.0 / s**2  # DC: 0 (flat prior)


def _solve(M: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve the small symmetric positive-definite system ``M x = b`` (Gaussian elimination
    without pivoting, in numpy). LAPACK through a multi-threaded BLAS can take milliseconds per
    9x9 solve when the CPU is busy (thread contention); this takes tens of microseconds."""
    A = np.array(M, dtype=np.float64)
    x = np.array(b, dtype=np.float64)
    n = A.shape[0]
    for k in range(n):
        piv = A[k, k]
        if not abs(piv) > 1e-300:
            raise np.linalg.LinAlgError("singular matrix")
        f = A[k + 1:, k] / piv
        A[k + 1:, k:] -= f[:, None] * A[k, k:]
        x[k + 1:] -= f[:, None] * x[k] if x.ndim == 2 else f * x[k]
    for k in range(n - 1, -1, -1):
        x[k] = (x[k] - A[k, k + 1:] @ x[k + 1:]) / A[k, k]
    return x


@lru_cache(maxsize=1)
def _start_subsets() -> tuple[np.ndarray, ...]:
    """Vertex subsets ``[478]`` bool the robust fit restarts from (canonical face coordinates:
    +y up, +x the subject's left): without the lower face (beards, moustaches: below the base of
    the nose), without the forehead (fringes, hats: above the eyebrows), only the band between,
    and each side with the midline (hair or a cast shadow over one cheek)."""
    from .canonical import load_canonical_face

    v = load_canonical_face().vertices
    x, y = v[:, 0], v[:, 1]
    y_nose_base, y_brows = float(v[2, 1]), float(v[9, 1])
    return (y >= y_nose_base, y <= y_brows, (y >= y_nose_base) & (y <= y_brows), x >= -0.02, x <= 0.02)


def _irls(B, y, w, cfg: LightingConfig, rw, sigma, dc, huber_iters: int, tukey_iters: int):
    """Iteratively reweighted ridge least squares of ``y ~ B f`` from robust weights ``rw``."""
    med = float(np.median(y))
    floor = cfg.noise_floor * max(med, 1e-12)
    f = np.zeros(9)
    f[0] = dc
    for it in range(huber_iters + tukey_iters):
        d = w * rw / (cfg.correlation * sigma**2)
        M = (B * d[:, None]).T @ B + np.diag(_prior_precision(max(f[0], 0.05 * med / _DC_SHADING), cfg))
        f = _solve(M, (B * d[:, None]).T @ y)
        r = y - B @ f
        a = np.abs(r[w > 0])
        sigma = max(1.4826 * float(np.median(a)), floor) if a.size else floor
        u = np.abs(r) / sigma
        if it < huber_iters:
            rw = np.where(u <= cfg.huber, 1.0, cfg.huber / np.maximum(u, 1e-12))
        else:
            t = np.clip(u / cfg.tukey, 0.0, 1.0)
            rw = (1 - t**2) ** 2
    return f, rw, sigma


def _robust_fit(B: np.ndarray, y: np.ndarray, w: np.ndarray, cfg: LightingConfig, starts=()):
    """Robust ridge fit of ``y ~ B f`` (luminance). Returns (f, robust weights, sigma).

    Besides the fit from all samples (Huber, then Tukey iterations), the fit is restarted from
    each subset in ``starts`` (boolean masks: e.g. the face without its lower part, where a beard
    may cover 40 % of the samples, more than a fit from all samples can reject) followed by Tukey
    iterations on all samples; the candidate whose smallest ``trim`` share of squared residuals
    is least wins (a least-trimmed-squares choice of the starting point).
    """
    med = float(np.median(y))
    dc0 = med / _DC_SHADING
    sigma0 = max(0.1 * med, cfg.noise_floor * max(med, 1e-12))
    n_h = cfg.iterations // 2
    cands = [_irls(B, y, w, cfg, np.ones_like(y), sigma0, dc0, n_h, cfg.iterations - n_h)]
    for m in starts:
        if m.sum() < max(cfg.min_samples // 2, 12) or m.all():
            continue
        cands.append(_irls(B, y, w, cfg, m.astype(np.float64), sigma0, dc0, 0, cfg.iterations))
    if len(cands) == 1:
        return cands[0]
    k = max(int(round(cfg.trim * int((w > 0).sum()))), 1)

    def loss(c):
        r2 = np.sort(((y - B @ c[0]) ** 2)[w > 0])
        return float(r2[:k].mean()) if c[0][0] > 0 else np.inf

    return min(cands, key=loss)


def _channel_fit(B: np.ndarray, yc: np.ndarray, d: np.ndarray, mu: np.ndarray, cfg: LightingConfig) -> np.ndarray:
    """Ridge fit of one channel toward the (rescaled) luminance solution ``mu``."""
    lam = np.full(9, 1.0 / (cfg.prior_chroma * max(mu[0], 1e-12)) ** 2)
    lam[0] = 0.0
    M = (B * d[:, None]).T @ B + np.diag(lam)
    return _solve(M, (B * d[:, None]).T @ yc + lam * mu)


def _fail(reason: str, samples: int = 0, normals: str = "") -> LightEstimate:
    return LightEstimate(np.zeros((9, 3), np.float32), np.zeros(9, np.float32), np.full(3, np.nan, np.float32),
                         math.nan, 0.0, False, reason, samples, normals)


def _check_inputs(rgb_linear, landmarks, rotation) -> str:
    if not isinstance(rgb_linear, np.ndarray):
        return f"rgb_linear: expected a numpy array [H, W, 3], got {type(rgb_linear).__name__}"
    if rgb_linear.ndim != 3 or rgb_linear.shape[2] < 3 or rgb_linear.shape[0] < 2 or rgb_linear.shape[1] < 2:
        return f"rgb_linear: expected an image [H, W, 3], got shape {list(rgb_linear.shape)}"
    if rgb_linear.dtype.kind not in "fiu":
        return f"rgb_linear: expected a float image, got dtype {rgb_linear.dtype}"
    try:
        lm = np.asarray(landmarks, dtype=np.float64)
    except (TypeError, ValueError):
        return "landmarks: expected a [478, 3] array"
    if lm.ndim != 2 or lm.shape[0] < 468 or lm.shape[1] < 3:
        return f"landmarks: expected [478, 3] pixel landmarks, got shape {list(lm.shape)}"
    if not np.isfinite(lm[:468, :3]).all():
        return "landmarks: not finite"
    if rotation is not None:
        return _rotation_ok(rotation)
    return ""


def estimate_lighting(
    rgb_linear: np.ndarray,
    landmarks: np.ndarray,
    rotation: np.ndarray | None = None,
    *,
    skin_albedo=None,
    K: np.ndarray | None = None,
    config: LightingConfig | None = None,
) -> LightEstimate:
    """Estimate the frame's SH9 light from the tracked face (module docstring).

    Args:
        rgb_linear: ``[H, W, 3]`` scene-linear Rec.709 frame (:func:`relight_core.io.colour.decode`),
            float (integer arrays are taken as linear values as they are).
        landmarks: ``[478, 3]`` the tracker's pixel landmarks (:mod:`.landmarks` convention).
        rotation: ``[3, 3]`` head -> plate camera rotation (:class:`.tracker.FrameTrack`),
            optional; validated, but only the pose-based ``config.normals`` modes use it (the
            default normals come from the landmarks, which measured more accurate).
        skin_albedo: the albedo-light normalisation: None (neutral mean light, albedo luminance
            :data:`SKIN_LUMINANCE`), a number (that albedo luminance) or ``[3]`` (a fixed albedo).
        K: ``[3, 3]`` plate pixel intrinsics (the tracker's); default
            :func:`.pose.plate_intrinsics` of the frame size (the tracker's default lens). Only
            the small ray correction of off-centre faces depends on it.
        config: :class:`LightingConfig` (defaults if None).

    Returns:
        :class:`LightEstimate`. Never raises for bad frames, landmarks or rotations: they give
        ``ok=False`` with a ``reason`` (only an invalid ``config``/``skin_albedo`` raises).
    """
    cfg = config or LightingConfig()
    _parse_albedo(skin_albedo)
    why = _check_inputs(rgb_linear, landmarks, rotation)
    if not why and K is not None:
        try:
            Km = np.asarray(K, dtype=np.float64)
            if Km.shape != (3, 3) or not np.isfinite(Km).all() or not (Km[0, 0] > 0 and Km[1, 1] > 0):
                why = "K: expected [3, 3] pixel intrinsics with positive focal lengths"
        except (TypeError, ValueError):
            why = "K: expected [3, 3] pixel intrinsics"
    if why:
        return _fail(why)
    mode = cfg.normals
    if mode in ("affine", "canonical") and rotation is None:
        return _fail(f"normals={mode!r} needs a rotation")
    try:
        s = face_samples(rgb_linear, landmarks, rotation, cfg, K)
    except (ValueError, np.linalg.LinAlgError) as exc:  # pragma: no cover - defensive
        return _fail(f"sampling failed ({exc})")
    return fit_samples(s, skin_albedo=skin_albedo, config=cfg)


def _parse_albedo(skin_albedo) -> tuple[np.ndarray | None, float]:
    fixed_albedo = None
    lum_ref = SKIN_LUMINANCE
    if skin_albedo is not None:
        a = np.asarray(skin_albedo, dtype=np.float64)
        if a.shape == ():
            lum_ref = float(a)
            if not (math.isfinite(lum_ref) and lum_ref > 0):
                raise ValueError(f"skin_albedo: expected a positive luminance, got {skin_albedo!r}")
        elif a.shape == (3,) and np.isfinite(a).all() and (a > 0).all():
            fixed_albedo = a
        else:
            raise ValueError(f"skin_albedo: expected None, a positive number or a positive [3] albedo, got {skin_albedo!r}")
    return fixed_albedo, lum_ref


def fit_samples(s: FaceSamples, *, skin_albedo=None, config: LightingConfig | None = None) -> LightEstimate:
    """The fit of :func:`estimate_lighting` on already-sampled vertices (:func:`face_samples`);
    useful to try other normals or colours (e.g. ground truth in evaluations)."""
    cfg = config or LightingConfig()
    fixed_albedo, lum_ref = _parse_albedo(skin_albedo)
    use = s.weight > 0
    n_use = int(use.sum())
    if n_use < cfg.min_samples:
        r = s.reasons
        cand = {"landmarks outside the image": r["outside_image"], "non-finite pixels in the face": r["not_finite"],
                "face turned away": r["facing_away"] + r["hidden"], "clipped pixels in the face": r["clipped"]}
        worst = max(cand, key=cand.get)
        if cand[worst] == 0:
            worst = "too few usable face vertices"
        return _fail(f"{worst} ({n_use} usable vertices < {cfg.min_samples})", n_use, s.normals_source)
    # mean normal must face the camera (a mirrored or garbage mesh does not)
    if np.median(s.normals[use, 1]) > -0.2:
        return _fail("landmark mesh does not face the camera", n_use, s.normals_source)

    I = s.colour[use]
    w = s.weight[use]
    Y = I @ LUMA
    med = float(np.median(Y))
    if not med > cfg.min_luminance:
        return _fail(f"face too dark (median linear luminance {med:.2g})", n_use, s.normals_source)
    B = shading_basis_np(s.normals[use])
    f_y, rw, sigma = _robust_fit(B, Y, w, cfg, [m[use] for m in _start_subsets()])
    if not (np.isfinite(f_y).all() and f_y[0] > 0):
        return _fail("fit failed (non-positive ambient term)", n_use, s.normals_source)
    r = Y - B @ f_y
    inl = np.abs(r) < cfg.tukey * sigma
    inlier_frac = float(inl.mean())
    residual = float(np.sqrt(np.mean(r[inl] ** 2)) / max(np.mean(Y[inl]), 1e-12)) if inl.any() else math.nan

    # per channel: same robust weights, prior toward the luminance solution rescaled to the channel
    d = w * rw / (cfg.correlation * sigma**2)
    f = np.zeros((9, 3))
    yw = float((d * Y).sum())
    for c in range(3):
        k = float((d * I[:, c]).sum()) / max(yw, 1e-300)
        sig_c = max(k, 1e-12)  # residual scale of the channel ~ k sigma
        f[:, c] = _channel_fit(B, I[:, c], d / sig_c**2, f_y * k, cfg)
    pred = B @ f  # [n, 3] albedo x shading
    F = (w[:, None] * rw[:, None] * pred).sum(0) / max(float((w * rw).sum()), 1e-12)
    if fixed_albedo is not None:
        albedo = fixed_albedo
    else:
        lumF = float(F @ LUMA)
        if not (lumF > 0 and (F > 0).all()):
            return _fail("fit failed (non-positive mean shading)", n_use, s.normals_source)
        albedo = lum_ref * F / lumF
    coeffs = f / albedo[None, :]
    grey = coeffs @ LUMA
    if not np.isfinite(coeffs).all():
        return _fail("fit failed (not finite)", n_use, s.normals_source)
    est = LightEstimate(coeffs.astype(np.float32), grey.astype(np.float32), albedo.astype(np.float32), residual,
                        inlier_frac, True, "", n_use, s.normals_source)
    # sanity of the result on the observed normals
    neg = float((B @ f_y < 0).mean())
    if inlier_frac < cfg.min_inliers:
        est.ok, est.reason = False, f"poor fit: {inlier_frac:.0%} inliers < {cfg.min_inliers:.0%}"
    elif not residual <= cfg.max_residual:
        est.ok, est.reason = False, f"poor fit: relative residual {residual:.2f} > {cfg.max_residual:.2f}"
    elif neg > 0.2:
        est.ok, est.reason = False, f"implausible light: negative shading on {neg:.0%} of the face"
    if not est.ok:
        est.sh = np.zeros((9, 3), np.float32)
        est.sh_grey = np.zeros(9, np.float32)
    return est


def light_to_crop_frame(coeffs, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Re-express plate-camera DPR coefficients in the DPR frame of the network's crop camera.

    Args:
        coeffs: ``[9]`` or ``[9, 3]`` in the plate camera's DPR frame (:func:`estimate_lighting`).
        rotation, translation: the head pose (head -> plate camera, :class:`.pose.HeadPose`).

    Returns:
        numpy float32 coefficients of the same shape in the crop camera's DPR frame
        (``sh.world_to_dpr(crop_camera(pose))``): the same light, rotated by the small angle
        between the plate's optical axis and the ray to the head.
    """
    from .pose import HeadPose, crop_camera

    R = np.asarray(rotation, dtype=np.float64)
    pose = HeadPose(R, np.asarray(translation, dtype=np.float64))
    c2w = crop_camera(pose)  # head space
    crop_from_head = np.asarray(SH.world_to_dpr(c2w[:3, :3]), dtype=np.float64)  # head -> crop DPR
    plate_from_head = _OPENCV_TO_DPR @ R  # head -> plate DPR
    M = crop_from_head @ plate_from_head.T  # plate DPR -> crop DPR
    return SH.rotate(np.asarray(coeffs, dtype=np.float64), M).numpy().astype(np.float32)
