#!/usr/bin/env python3
"""Derive the canonical 3D face in EG3D head space and write ``relight_core/data/canonical_face.npz``.

Usage::

    PYTHONPATH=. python scripts/make_canonical_face.py [--portraits ../shared/data/portraits]
        [--mtcnn-path DIR] [--out relight_core/data/canonical_face.npz]

Steps (every number shipped comes from here):

1. **Meshes.** MediaPipe's 478-point face mesh (static mode) on every frontal portrait; each
   mesh is turned into a right-handed, y-up, z-toward-camera point set ``(x, -y, -z)`` (pixels).
2. **Mean shape.** Generalized Procrustes analysis (similarity: rotation, scale, translation)
   of all meshes, iterated to convergence; the per-point spread of the aligned meshes is kept.
3. **Symmetry (yaw, roll).** The mean is first expressed in the portraits' average orientation
   (chordal mean of the per-face rotations). Its symmetry plane starts as the plane of the
   mesh's midline points and is refined by aligning the shape with its mirror image; the
   left/right point pairing is the optimal one-to-one assignment of the reflected points
   (checked to be an involution). The plane becomes x = 0 and the shape is made exactly
   symmetric, so a face that is mirror-symmetric to the camera has yaw = roll = 0.
4. **EG3D frame (pitch, scale, position).**

   - *Pitch*: the portraits' average orientation is kept, so a frontal photograph has pitch
     about 0, as EG3D's frontal camera and the paper's symmetric training ranges assume. For the
     record the script also fits the mesh's 5 points to Deep3D's 5-point 3D template ``T``
     (``template_fit_rotation_about_x_deg``, about -13 deg); that fit is not used, because the
     template's 5-point depth layout does not match what detectors see (on smiling faces
     MTCNN's mouth corners sit 0.89 interocular distances below the eyes on the astronaut
     against 1.08 for the template, and the fit leaves 0.012 head units RMS residual).
   - *Scale and height*: the EG3D crop (:mod:`relight_core.track.align`) puts ``300 * 512 / 700``
     pixels per template unit in the 512 crop with the template origin at the crop centre. The
     mesh's scale ``c`` and height ``ty`` are solved so that the frontal EG3D camera (radius
     2.7, focal 4.2634) sees the mesh's MTCNN-equivalent 5 points (mesh definitions of
     :mod:`relight_core.track.five_points` plus the offsets of step 5) such that the crop of
     that view is the view itself (a fixed point of the crop).
   - *Depth*: the mean depth of those 5 points is put where EG3D's Deep3D-to-EG3D conversion
     puts the template's: ``Q = k T + (0, y0, 0.161)`` (PAPER_MODEL.md 2.12: the BFM origin lies
     0.161 head units in front of the pivot, ``c[2] += 0.161``), with ``k``, ``y0`` solved by the
     same fixed-point condition on ``Q``.
5. **MTCNN offsets.** Where ``facenet_pytorch`` is importable (``--mtcnn-path`` may point at an
   unpacked facenet-pytorch 2.6.0 wheel; torchvision, if absent, is replaced by a tiny exact
   stand-in for the two functions MTCNN calls), the released pipeline's MTCNN is run on every
   portrait exactly as ``eg3d_detect_keypoints`` does (0.5x ``cv2.resize``, ``factor=0.5``,
   ``margin=14``, thresholds 0.95) and the mean offset MTCNN - mesh is measured in the face's
   normalized frame (:func:`relight_core.track.five_points.face_frame`). Without it, ``--no-mtcnn``
   ships zero offsets.
6. **Rigid points.** The mesh points whose aligned spread is smallest (forehead, nose, cheek
   bones, eye corners; never lips, jaw, eyelids or irises) are listed for head-pose fitting.

The result is small (a few kB): vertices [478, 3] float32 in head units, the rigid index list,
the left/right pairing, the offsets and the derivation's numbers (``info`` JSON).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
import time
import types
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from relight_core.camera import FOCAL_EG3D, RADIUS_EG3D  # noqa: E402
from relight_core.track import five_points as FP  # noqa: E402
from relight_core.track.align import CENTER_CROP, LANDMARKS_3D_TEMPLATE, OUTPUT_SIZE, RESCALE_CROP, solve_similarity  # noqa: E402
from relight_core.track.landmarks import FaceLandmarker  # noqa: E402

Z0_BFM_ORIGIN = 0.161
"""EG3D's Deep3D-to-EG3D camera offset along z (head units): the BFM origin lies this far in
front of the head pivot."""
IRIS = list(range(468, 478))
EYELIDS = sorted(set(FP.RIGHT_EYE_CONTOUR) | set(FP.LEFT_EYE_CONTOUR))
LIPS = [0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269,
        270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415]


# ------------------------------------------------------------------------------------------
# geometry helpers
# ------------------------------------------------------------------------------------------


def umeyama(src: np.ndarray, dst: np.ndarray, scale: bool = True, w: np.ndarray | None = None):
    """Similarity (c, R, t) minimizing sum w |c R src + t - dst|^2 (rows are points)."""
    w = np.ones(len(src)) if w is None else w
    w = w / w.sum()
    ms, md = w @ src, w @ dst
    a, b = src - ms, dst - md
    cov = (b * w[:, None]).T @ a
    U, S, Vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        d[-1] = -1
    R = U @ np.diag(d) @ Vt
    var = (w * (a**2).sum(1)).sum()
    c = float((S * d).sum() / var) if scale else 1.0
    return c, R, md - c * R @ ms


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def gpa(shapes: np.ndarray, iters: int = 10):
    """Generalized Procrustes analysis. Returns (mean [P, 3] centred with unit RMS, aligned [N, P, 3])."""
    mean = shapes[0] - shapes[0].mean(0)
    mean /= np.sqrt((mean**2).sum(1).mean())
    for _ in range(iters):
        aligned = np.empty_like(shapes)
        for i, s in enumerate(shapes):
            c, R, t = umeyama(s[:468], mean[:468])
            aligned[i] = c * s @ R.T + t
        new = aligned.mean(0)
        new -= new[:468].mean(0)
        new /= np.sqrt((new[:468] ** 2).sum(1).mean())
        c, R, t = umeyama(new[:468], mean[:468])
        new = c * new @ R.T + t
        change = np.sqrt(((new - mean) ** 2).sum(1).mean())
        mean = new
        if change < 1e-7:
            break
    return mean, aligned


MIDLINE = [10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 164, 0, 11, 12, 13, 14, 15, 16, 17, 18, 200,
           199, 175, 152]
"""Mesh points on the face's midline (forehead, nose ridge, lips, chin)."""


def _rotate_onto_x(n: np.ndarray) -> np.ndarray:
    """Smallest rotation taking the unit vector ``n`` (with n[0] > 0) onto +x."""
    v = np.cross(n, [1.0, 0.0, 0.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + n[0])


def mirror_pairs(shape: np.ndarray) -> np.ndarray:
    """Each point's mirror partner across the plane x = 0 (optimal one-to-one assignment)."""
    from scipy.optimize import linear_sum_assignment

    m = shape * np.array([-1.0, 1.0, 1.0])
    d = ((m[:, None, :] - shape[None, :, :]) ** 2).sum(-1)
    _, perm = linear_sum_assignment(d)
    if not np.array_equal(perm[perm], np.arange(len(shape))):
        raise RuntimeError("mirror pairing of the face mesh is not an involution")
    return perm


def symmetrize(shape: np.ndarray):
    """Rotate/translate so the symmetry plane is x = 0; return (exactly symmetric shape, pairing).

    The plane starts as the best plane through the midline points and is refined by aligning the
    shape with its mirror image (the rigid map is a reflection about the symmetry plane).
    """
    c = shape[MIDLINE].mean(0)
    n = np.linalg.svd(shape[MIDLINE] - c)[2][2]
    s = (shape - c) @ _rotate_onto_x(n * np.sign(n[0])).T
    for _ in range(4):
        perm = mirror_pairs(s)
        _, R, _ = umeyama((s * np.array([-1.0, 1.0, 1.0]))[perm], s, scale=False)
        vals, vecs = np.linalg.eig(R @ np.diag([-1.0, 1.0, 1.0]))
        n = np.real(vecs[:, np.argmin(np.real(vals))])
        s = s @ _rotate_onto_x(n * np.sign(n[0])).T
        s[:, 0] -= 0.5 * (s[:, 0] + s[perm, 0]).mean()
    perm = mirror_pairs(s)
    sym = 0.5 * (s + (s * np.array([-1.0, 1.0, 1.0]))[perm])
    return sym, perm


# ------------------------------------------------------------------------------------------
# EG3D frame
# ------------------------------------------------------------------------------------------


def crop_scale_px() -> float:
    """Pixels per template unit in the 512 crop (300 px per unit in the 700 px centre crop)."""
    return RESCALE_CROP * OUTPUT_SIZE / CENTER_CROP


def project_frontal(points: np.ndarray, size: int = OUTPUT_SIZE) -> np.ndarray:
    """Pixel positions (centres at integers) of head-space points in the frontal EG3D camera."""
    depth = RADIUS_EG3D - points[:, 2]
    u = 0.5 + FOCAL_EG3D * points[:, 0] / depth
    v = 0.5 - FOCAL_EG3D * points[:, 1] / depth
    return np.stack((u * size - 0.5, v * size - 0.5), axis=1)


def template_placement(z0: float = Z0_BFM_ORIGIN):
    """Solve k (head units per template unit) and y0 so that cropping the frontal EG3D view of
    ``Q = k T + (0, y0, z0)`` gives back the view: crop scale 300*512/700 px per template unit and
    template origin at the crop centre."""
    from scipy.optimize import fsolve

    T = LANDMARKS_3D_TEMPLATE
    want_s = crop_scale_px()
    c = (OUTPUT_SIZE - 1) / 2.0

    def residual(p):
        k, y0 = p
        q = k * T + np.array([0.0, y0, z0])
        t, s = solve_similarity(project_frontal(q), OUTPUT_SIZE)
        return [s / want_s - 1.0, (t[1] - c) / want_s]

    k, y0 = fsolve(residual, [0.25, 0.0], xtol=1e-13)
    q = k * T + np.array([0.0, y0, z0])
    t, s = solve_similarity(project_frontal(q), OUTPUT_SIZE)
    return float(k), float(y0), q, {"crop_scale_px": s, "crop_origin_px": t.tolist()}


def template_pitch(p5: np.ndarray, q: np.ndarray):
    """Rotation about x, scale, translation (x fixed at 0) putting the 5 points ``p5`` on ``q``
    in 3D: the pitch the 5-point template alone would imply (reported, not used; see the notes)."""
    from scipy.optimize import least_squares

    def res(p):
        a, logc, ty, tz = p
        return (math.exp(logc) * p5 @ rot_x(a).T + np.array([0.0, ty, tz]) - q).ravel()

    c0 = np.linalg.norm(q[1] - q[0]) / np.linalg.norm(p5[1] - p5[0])
    sol = least_squares(res, [0.0, math.log(c0), 0.0, 0.0])
    return float(sol.x[0]), float(np.sqrt((sol.fun**2).reshape(5, 3).sum(1).mean()))


def place_fixed_point(p5: np.ndarray, z_mean: float):
    """Scale ``c`` and offset ``(0, ty, tz)`` for the mesh so that its 5 (MTCNN-equivalent) points,
    seen by the frontal EG3D camera and cropped by the EG3D crop, come back unchanged (crop scale
    300*512/700 px per template unit, template origin at the crop centre); ``tz`` puts the mean
    depth of the 5 points at ``z_mean``."""
    from scipy.optimize import fsolve

    want_s = crop_scale_px()
    centre = (OUTPUT_SIZE - 1) / 2.0

    def placed(c, ty):
        q = c * p5
        return q + np.array([0.0, ty, z_mean - q[:, 2].mean()])

    def residual(p):
        t, s = solve_similarity(project_frontal(placed(*p)), OUTPUT_SIZE)
        return [s / want_s - 1.0, (t[1] - centre) / want_s]

    c0 = 0.155 / np.linalg.norm(p5[1] - p5[0])
    c, ty = fsolve(residual, [c0, 0.0], xtol=1e-13)
    offset = placed(c, ty)[0] - c * p5[0]
    t, s = solve_similarity(project_frontal(placed(c, ty)), OUTPUT_SIZE)
    return float(c), offset, {"crop_scale_px": s, "crop_origin_px": t.tolist()}


# ------------------------------------------------------------------------------------------
# MTCNN (released pipeline) for the offsets
# ------------------------------------------------------------------------------------------


def _torchvision_stand_in() -> None:
    """Register a minimal ``torchvision`` with the two functions facenet-pytorch's MTCNN uses."""
    import torch

    def batched_nms(boxes, scores, idxs, thr):
        # Greedy NMS per class (torchvision semantics: strict IoU > thr suppresses).
        if boxes.numel() == 0:
            return torch.empty((0,), dtype=torch.int64)
        b = boxes + (idxs.to(boxes) * (boxes.max() + 1))[:, None]
        x1, y1, x2, y2 = b.unbind(1)
        area = (x2 - x1) * (y2 - y1)
        keep, sup = [], torch.zeros(len(b), dtype=torch.bool)
        for i in torch.argsort(scores, descending=True, stable=True).tolist():
            if sup[i]:
                continue
            keep.append(i)
            iw = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
            ih = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
            inter = iw * ih
            sup |= inter / (area[i] + area - inter) > thr
        return torch.tensor(keep, dtype=torch.int64)

    tv, ops, boxes = (types.ModuleType(n) for n in ("torchvision", "torchvision.ops", "torchvision.ops.boxes"))
    tr, fn = types.ModuleType("torchvision.transforms"), types.ModuleType("torchvision.transforms.functional")
    boxes.batched_nms = batched_nms
    fn.to_tensor = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32)).permute(2, 0, 1) / 255.0
    tv.ops, ops.boxes, tv.transforms, tr.functional = ops, boxes, tr, fn
    sys.modules.update({"torchvision": tv, "torchvision.ops": ops, "torchvision.ops.boxes": boxes,
                        "torchvision.transforms": tr, "torchvision.transforms.functional": fn})


def released_mtcnn(path: str | None):
    """The released pipeline's detector: ``image -> [5, 2]`` points or None."""
    if path:
        sys.path.insert(0, path)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        _torchvision_stand_in()
    import cv2
    from facenet_pytorch.models.mtcnn import MTCNN

    m = MTCNN(margin=14, factor=0.5, keep_all=False, device="cpu", thresholds=[0.95, 0.95, 0.95])

    def detect(img: np.ndarray):
        small = cv2.resize(img, (int(img.shape[1] * 0.5), int(img.shape[0] * 0.5)))
        _, _, pts = m.detect(small, landmarks=True)
        if pts is None or pts[0] is None:
            return None
        return np.asarray(pts[0], dtype=np.float64) / 0.5

    return detect


# ------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--portraits", type=Path, default=REPO.parent / "shared" / "data" / "portraits")
    ap.add_argument("--out", type=Path, default=REPO / "relight_core" / "data" / "canonical_face.npz")
    ap.add_argument("--mtcnn-path", help="folder containing facenet_pytorch (if not installed)")
    ap.add_argument("--no-mtcnn", action="store_true", help="ship zero MTCNN offsets")
    ap.add_argument("--cache", type=Path, help="reuse/save the detections (npz) between runs")
    ap.add_argument("--rigid-fraction", type=float, default=0.35, help="share of mesh points used for pose")
    args = ap.parse_args(argv)

    files = sorted(glob.glob(str(args.portraits / "*.jpg")))
    if not files:
        print(f"no portraits found in {args.portraits}", file=sys.stderr)
        return 1
    detect = None if args.no_mtcnn else released_mtcnn(args.mtcnn_path)

    t0 = time.time()
    n_files = len(files)
    meshes, raw5, mt5, heights = [], [], [], []
    if args.cache and args.cache.is_file():
        d = np.load(args.cache)
        meshes, raw5, heights = list(d["meshes"]), list(d["raw5"]), list(d["heights"])
        mt5 = [None if not np.isfinite(m).all() else m for m in d["mt5"]]
        files = []
    with FaceLandmarker(1, static=True) as lmk:
        for f in files:
            img = np.asarray(Image.open(f).convert("RGB"))
            faces = [x for x in lmk(img) if x.landmarks is not None]
            if not faces:
                continue
            lm = faces[0].landmarks
            meshes.append(lm * np.array([1.0, -1.0, -1.0]))
            raw5.append(FP.raw_five_points(lm))
            heights.append(img.shape[0])
            mt5.append(detect(img) if detect else None)
    n = len(meshes)
    if args.cache and files:
        nan5 = np.full((5, 2), np.nan)
        np.savez(args.cache, meshes=np.array(meshes), raw5=np.array(raw5), heights=np.array(heights),
                 mt5=np.array([nan5 if m is None else m for m in mt5]))
    print(f"meshes: {n} of {n_files} portraits ({time.time() - t0:.1f} s)")
    meshes = np.array(meshes)

    # 5. offsets (normalized frame), needed before placing the mesh on the template
    offsets, offsets_std, n_mtcnn = np.zeros((5, 2)), np.zeros((5, 2)), 0
    if detect:
        o = []
        for p, m, h in zip(raw5, mt5, heights):
            if m is None:
                continue
            R, s = FP.face_frame(p)
            o.append(((m - p) @ R) / s)
        o = np.array(o)
        offsets, offsets_std, n_mtcnn = o.mean(0), o.std(0), len(o)
        print(f"MTCNN offsets from {n_mtcnn} faces (template units):\n{np.round(offsets, 4)}\n std\n{np.round(offsets_std, 4)}")

    # 2-3. mean shape, symmetric
    mean, aligned = gpa(meshes)
    # express the mean in the portraits' average orientation (chordal mean of the rotations)
    M = np.zeros((3, 3))
    for m in meshes:
        M += umeyama(mean[:468], m[:468])[1]
    U, _, Vt = np.linalg.svd(M)
    R_avg = U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt
    mean = mean @ R_avg.T
    aligned = aligned @ R_avg.T
    spread = np.sqrt(((aligned - mean) ** 2).sum(-1).mean(0))
    sym, perm = symmetrize(mean)

    # 4. EG3D frame: orientation = the portraits' mean (pitch 0 for a frontal photograph),
    # symmetry plane x = 0 (yaw, roll), scale and position from the crop's fixed point.
    k, y0, q, _ = template_placement()
    p5 = FP.raw_five_points_3d(sym)
    # MTCNN-equivalent points: offsets are (along, across) the eye line in template units,
    # "across" pointing to the mouth (image down = head -y); convert with this shape's scale.
    s_sym = FP.face_scale(p5[:, :2] * np.array([1.0, -1.0]))
    p5m = p5 + np.column_stack((offsets[:, 0], -offsets[:, 1], np.zeros(5))) * s_sym
    c, t, fix = place_fixed_point(p5m, float(q[:, 2].mean()))
    verts = c * sym + t
    a_tpl, rms_tpl = template_pitch(c * p5m + t, q)

    # 6. rigid points: smallest spread, excluding lips, eyelids and irises
    cand = np.array([i for i in range(468) if i not in set(LIPS) | set(EYELIDS)])
    order = cand[np.argsort(spread[cand])]
    rigid = np.sort(order[: int(round(args.rigid_fraction * 468))])
    # keep the rigid set symmetric
    rigid = np.array(sorted(set(rigid.tolist()) | set(perm[rigid].tolist())))

    iod_pupil = float(np.linalg.norm(verts[FP.RIGHT_IRIS_CENTER] - verts[FP.LEFT_IRIS_CENTER]))
    e5 = FP.raw_five_points_3d(verts)
    iod_eye = float(np.linalg.norm(e5[1] - e5[0]))
    info = {
        "portraits": n,
        "portraits_with_mtcnn": n_mtcnn,
        "template_scale_head_units": k,
        "template_origin_head": [0.0, y0, Z0_BFM_ORIGIN],
        "mesh_scale_head_units_per_unit": c,
        "mesh_offset_head": t.tolist(),
        "fixed_point_check": fix,
        "template_fit_rotation_about_x_deg": math.degrees(a_tpl),
        "template_fit_rms_head_units": rms_tpl,
        "interpupillary_head_units": iod_pupil,
        "eye_centre_distance_head_units": iod_eye,
        "nose_tip_head": verts[FP.NOSE_TIP].tolist(),
        "rigid_points": int(len(rigid)),
        "mediapipe": __import__("mediapipe").__version__,
        "script": "scripts/make_canonical_face.py",
    }
    print(json.dumps(info, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        vertices=verts.astype(np.float32),
        rigid_indices=rigid.astype(np.int16),
        mirror=perm.astype(np.int16),
        spread=(spread * c).astype(np.float32),
        five_point_offsets=offsets.astype(np.float64),
        five_point_offsets_std=offsets_std.astype(np.float64),
        template_points=q.astype(np.float64),
        info=np.array(json.dumps(info)),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
