#!/usr/bin/env python3
"""Measure :func:`relight_core.track.lighting.estimate_lighting` on renders with known light.

Usage::

    PYTHONPATH=. python scripts/eval_light_estimation.py [--heads 24] [--resolution 512]
        [--portraits 120] [--device cpu] [--cache /tmp/light_eval] [--out docs]

Three suites (docs/LIGHT_ESTIMATION.md reports their numbers; a JSON with every number is
written with ``--json PATH``):

1. **mesh**: the canonical face (MediaPipe topology) posed at yaw 0/+-30 and pitch 0/15 deg in a
   pinhole camera, rendered by :func:`relight_core.track.lighting_synth.render_face` under every
   test light with a skin albedo that varies over the face (+-8 % smooth multiplicative texture),
   1 % sensor noise, landmark jitter (0.3 % of the face size in x, y; 2 % in z) and, in a second
   pass, 20 % of the vertices' neighbourhoods replaced by specular spots or shadows.
2. **heads**: the project's synthetic people (:mod:`relight_core.train.synthetic`: MakeHuman
   heads with skin, hair, beards, make-up, eyes, backgrounds; rasterized with per-pixel normals)
   under the same test lights, at random yaw (+-35 deg), pitch (+-15 deg) and roll; MediaPipe
   finds the landmarks on the 8-bit sRGB render, :func:`relight_core.track.pose.solve_pose` the
   rotation (with the render's intrinsics), and the light is estimated with and without the
   rotation. The true light is in the render camera's DPR frame (the plate frame here).
3. **portraits**: real photographs (``../shared/data/portraits``), no ground truth: success rate,
   residuals, and mirror consistency (the estimate of the mirrored image must be the mirrored
   estimate: the x-odd coefficients x, xy, xz flip sign).

Test lights (DPR frame, c = L / pi): an ambient of radiance 0.3 plus a directional light of
irradiance 3 from 14 directions (front, the 8 compass directions at elevation 0 and 45 deg around
the head, top, bottom, behind-above), the named presets of :mod:`relight_core.sh` (key_left,
key_right, top, rim, under, flat, gel_blue_orange) and 6 coloured random lights of the training
distribution (:func:`relight_core.train.synthetic.sample_lights`, fixed seed).

Metrics (each against the true coefficients; ``--albedo known`` passes the true mean skin albedo so
that absolute values are comparable, the default normalisation is reported separately):

* ``shade``: RMS error of the shading over the visible half of DPR's lighting ball (normals with
  y < 0, as drawn by ``sh.lighting_ball``), relative to the RMS true shading, all channels;
* ``shade_si``: the same after the best per-channel scale (exposure and albedo-independent);
* ``shade_face``: the same over normals within 60 deg of the viewing direction (where faces are);
* ``coef_rel``: ``||c_est - c_true|| / ||c_true||`` over the 9 coefficients, mean over channels;
* ``coef_rmse``: RMS of ``c_est - c_true`` over the 9 coefficients and channels (DPR-style
  absolute error; the test lights have DC 0.4-1.1 like DPR's labels);
* ``dir_err``: angle (deg) between the band-1 vectors (x, y, z) = (c3, c1, c2) of the grey light.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LUMA = np.array([0.2126, 0.7152, 0.0722])


# ------------------------------------------------------------------------------------------
# lights and metrics
# ------------------------------------------------------------------------------------------


def test_lights() -> list[tuple[str, np.ndarray]]:
    import torch

    from relight_core import sh

    out = []
    dirs = [("front", 0, 0)]
    for el in (0, 45):
        for az, nm in ((0, "front"), (45, "front-right"), (90, "right"), (135, "back-right"), (180, "back"),
                       (-135, "back-left"), (-90, "left"), (-45, "front-left")):
            if el == 0 and az == 0:
                continue
            dirs.append((f"{nm}{'' if el == 0 else '-up'}", az, el))
    dirs += [("top", 0, 90), ("bottom", 0, -90)]
    # keep 14: drop back-left/back-right at elevation 0 (mirrors of the up ones are enough)
    dirs = [d for d in dirs if d[0] not in ("back-left", "front-left")]
    for name, az, el in dirs:
        a, e = math.radians(az), math.radians(el)
        d = (math.cos(e) * math.sin(a), -math.cos(e) * math.cos(a), math.sin(e))
        c = sh.ambient(0.3, dtype=torch.float64) + sh.directional(d, 3.0, dtype=torch.float64)
        out.append((f"dir:{name}", np.repeat(c.numpy()[:, None], 3, 1)))
    for name in ("key_left", "key_right", "top", "rim", "under", "flat", "gel_blue_orange"):
        c = sh.preset(name).double().numpy()
        out.append((f"preset:{name}", c if c.ndim == 2 else np.repeat(c[:, None], 3, 1)))
    from relight_core.train.synthetic import sample_lights

    g = torch.Generator().manual_seed(7)
    rnd = sample_lights(6, g, coloured=1.0).double().numpy()
    for i in range(6):
        out.append((f"random:{i}", rnd[i]))
    return out


def _hemisphere(size: int = 64):
    from relight_core import sh
    from relight_core.track.lighting import shading_basis_np

    n, m = sh.ball_normals(size)
    v = n[m].double().numpy()
    v = v[v[:, 1] < 0]
    face = v[-v[:, 1] > math.cos(math.radians(60))]
    return shading_basis_np(v), shading_basis_np(face)


_BASES = None


def metrics(est: np.ndarray, true: np.ndarray) -> dict:
    global _BASES
    if _BASES is None:
        _BASES = _hemisphere()
    Bv, Bf = _BASES
    est = np.asarray(est, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)

    def rel(B, e, t):
        se, st = B @ e, B @ t
        return float(np.sqrt(((se - st) ** 2).mean()) / np.sqrt((st**2).mean()))

    se, st = Bv @ est, Bv @ true
    k = (se * st).sum(0) / np.maximum((se * se).sum(0), 1e-12)
    ge, gt = est @ LUMA, true @ LUMA
    de, dt = ge[[3, 1, 2]], gt[[3, 1, 2]]
    ang = math.degrees(math.acos(np.clip(de @ dt / max(np.linalg.norm(de) * np.linalg.norm(dt), 1e-12), -1, 1)))
    return {
        "shade": rel(Bv, est, true),
        "shade_si": rel(Bv, est * k, true),
        "shade_face": rel(Bf, est, true),
        "coef_rel": float(np.mean(np.linalg.norm(est - true, axis=0) / np.linalg.norm(true, axis=0))),
        "coef_rmse": float(np.sqrt(((est - true) ** 2).mean())),
        "dir_err": ang,
    }


def summarize(rows: list[dict], keys=("shade", "shade_si", "shade_face", "coef_rel", "coef_rmse", "dir_err")) -> dict:
    out = {"n": len(rows)}
    for k in keys:
        v = np.array([r[k] for r in rows if r.get(k) is not None and np.isfinite(r[k])])
        if v.size:
            out[k] = {"median": float(np.median(v)), "p90": float(np.percentile(v, 90)), "mean": float(v.mean())}
    return out


def light_group(name: str) -> str:
    if name.startswith("dir:"):
        n = name[4:]
        if n.startswith("back") or n == "bottom":
            return "directional, from behind / below"
        return "directional, front half / above"
    if name.startswith("preset:rim"):
        return "directional, from behind / below"
    return name.split(":")[0]


# ------------------------------------------------------------------------------------------
# suite 1: canonical mesh renders
# ------------------------------------------------------------------------------------------


def mesh_suite(lights, verbose=True) -> list[dict]:
    from relight_core.track.lighting import DEFAULT_SKIN_ALBEDO, estimate_lighting
    from relight_core.track.lighting_synth import head_rotation, posed_face, render_face
    from relight_core.track.pose import plate_intrinsics

    rng = np.random.default_rng(0)
    H, W = 540, 720
    K = plate_intrinsics(W, H, focal_px=1400)
    albedo = np.array(DEFAULT_SKIN_ALBEDO)
    rows = []
    poses = [(0, 0), (30, 0), (-30, 10), (0, 15)]
    for yaw, pitch in poses:
        R = head_rotation(yaw, pitch, 0.0)
        t = np.array([0.05, -0.03, 1.9])
        face = posed_face(R, t, K)
        size = float(np.ptp(face["landmarks"][:468, 0]))
        for outliers in (0.0, 0.2):
            for name, c in lights:
                tex = 1 + 0.08 * _smooth_noise(face["camera"], rng)
                alb = albedo[None, :] * tex[:, None]
                img, mask = render_face(face, H, W, c, alb, background=0.05)
                if outliers > 0:
                    img = _spots(img, face["landmarks"], outliers, size, rng)
                img = img + 0.01 * np.median(img[mask]) * rng.standard_normal(img.shape).astype(np.float32)
                lm = face["landmarks"].copy()
                lm[:, :2] += 0.003 * size * rng.standard_normal((478, 2))
                lm[:, 2] += 0.02 * size * rng.standard_normal(478)
                for with_rot in (True, False):
                    e = estimate_lighting(img, lm, R if with_rot else None, skin_albedo=albedo)
                    row = {"suite": "mesh", "light": name, "group": light_group(name), "yaw": yaw, "pitch": pitch,
                           "outliers": outliers, "rotation": with_rot, "ok": e.ok, "reason": e.reason,
                           "residual": e.residual, "inliers": e.inliers}
                    if e.ok:
                        row.update(metrics(e.sh, c))
                    rows.append(row)
        if verbose:
            print(f"mesh: pose yaw {yaw} pitch {pitch} done")
    return rows


def _smooth_noise(points: np.ndarray, rng) -> np.ndarray:
    """Smooth random field in [-1, 1] over 3D points (a few random plane waves)."""
    p = points - points.mean(0)
    s = np.ptp(points[:, 0]) + 1e-9
    v = np.zeros(points.shape[0])
    for _ in range(4):
        k = rng.standard_normal(3) * 6.0 / s
        v += np.sin(p @ k + rng.uniform(0, 2 * np.pi))
    return v / 4


def _spots(img: np.ndarray, lm: np.ndarray, frac: float, size: float, rng) -> np.ndarray:
    """Replace the neighbourhood of ``frac`` of the mesh vertices by highlights or shadows."""
    out = img.copy()
    H, W = img.shape[:2]
    idx = rng.choice(468, int(frac * 468), replace=False)
    r = max(1, int(round(0.012 * size)))
    for i in idx:
        x, y = int(round(lm[i, 0])), int(round(lm[i, 1]))
        ys, xs = slice(max(0, y - r), min(H, y + r + 1)), slice(max(0, x - r), min(W, x + r + 1))
        if rng.random() < 0.5:
            out[ys, xs] = out[ys, xs] * 0.25 + 0.0  # shadow
        else:
            out[ys, xs] = out[ys, xs] + np.float32(1.5 * np.median(img[img > 0]))  # specular
    return out


# ------------------------------------------------------------------------------------------
# suite 2: synthetic heads + MediaPipe
# ------------------------------------------------------------------------------------------


def render_heads(n: int, lights, resolution: int, device: str, seed: int = 1):
    """Render ``n`` synthetic people under all lights. Returns a list of dicts (numpy)."""
    import torch

    from relight_core import camera, sh
    from relight_core.train import albedo as alb
    from relight_core.train.heads import euler_to_matrix
    from relight_core.train.synthetic import SyntheticHeads, orbit_labels

    S = SyntheticHeads(resolution=resolution, device=device, supersample=2)
    g = torch.Generator(device=device).manual_seed(seed)
    coeffs = torch.tensor(np.stack([c for _, c in lights]), dtype=torch.float32, device=device)  # [L, 9, 3]
    out = []
    for i in range(n):
        ident, app, expr = S._person(1, g)
        m = S.model
        body = euler_to_matrix(0.1 * torch.randn(1, generator=g, device=device), 0.2 * torch.randn(1, generator=g, device=device),
                               torch.zeros(1, device=device)).to(device)
        verts = m.mesh(ident, expr, body_rotation=body)
        fields = alb.vertex_fields(m, app)
        dressed = S.dress(verts, fields, app)  # (vertices, faces, fields[, normals])
        verts, faces, fields, extra = dressed[0], dressed[1], dressed[2], tuple(dressed[3:])
        u = lambda a: (2 * torch.rand(1, generator=g, device=device) - 1) * a  # noqa: E731
        yaw, pitch, roll = u(math.radians(35)), u(math.radians(15)), u(math.radians(6))
        cam = orbit_labels(pitch, yaw, torch.full((1,), camera.RADIUS_EG3D, device=device),
                           torch.zeros(1, 3, device=device), torch.full((1,), 24.0, device=device), roll)
        frame = sh.world_to_dpr(camera.split_label(cam)[0])
        bg = alb.sample_background(1, resolution, resolution, g, device)
        L = coeffs.shape[0]
        res = S.render(verts, faces, fields, *extra, app, cam, bg, {f"l{j}": coeffs[j:j + 1] for j in range(L)}, frame)
        c2w, K = camera.split_label(cam)
        rgb = torch.cat([res[f"rgb_l{j}"] for j in range(L)], 0)
        out.append({
            # the 8-bit sRGB frame a camera would store (MediaPipe's input; decoded again for the fit)
            "srgb8": (alb.to_srgb(rgb.clamp(0, 1)).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8),
            "albedo": res["albedo"][0].permute(1, 2, 0).cpu().numpy(),
            "normal": res["normal"][0].permute(1, 2, 0).cpu().numpy(),  # world
            "mask": res["mask"][0, 0].cpu().numpy(),
            "frame": frame[0].cpu().numpy(),
            "K": K[0].cpu().numpy(),
            "angles": [math.degrees(float(yaw)), math.degrees(float(pitch)), math.degrees(float(roll))],
            "beard": float(app.beard[0]), "melanin": float(app.melanin[0]),
        })
        print(f"heads: rendered {i + 1}/{n}", flush=True)
    return out


def heads_suite(heads, lights, verbose=True) -> tuple[list[dict], dict]:
    from relight_core.track.landmarks import FaceLandmarker
    from relight_core.track.lighting import LightingConfig, estimate_lighting, face_samples
    from relight_core.track.pose import solve_pose

    rows = []
    normal_err = {"landmarks": [], "optical": [], "affine": [], "canonical": []}
    with FaceLandmarker(1, static=True) as fl:
        for hi, h in enumerate(heads):
            Hh, Ww = h["mask"].shape
            Kpx = np.array([[h["K"][0, 0] * Ww, 0, (Ww - 1) / 2], [0, h["K"][1, 1] * Hh, (Hh - 1) / 2], [0, 0, 1]])
            for li, (name, c) in enumerate(lights):
                u8 = h["srgb8"][li]
                faces = fl(u8)
                row = {"suite": "heads", "head": hi, "light": name, "group": light_group(name), "angles": h["angles"]}
                if not faces or faces[0].landmarks is None:
                    rows.append({**row, "ok": False, "reason": "no face found"})
                    continue
                lm = faces[0].landmarks
                pose = solve_pose(lm, Kpx)
                # the linear frame as a plate pipeline would see it: decoded from the 8-bit sRGB
                from relight_core.io.colour import srgb_to_linear

                lin = srgb_to_linear(u8.astype(np.float32) / 255.0).astype(np.float32)
                # true mean skin albedo at the vertices the estimator uses
                smp = face_samples(lin, lm, pose.rotation, K=Kpx)
                use = smp.weight > 0
                xy = np.clip(np.round(lm[:468, :2]).astype(int), 0, [Ww - 1, Hh - 1])
                a_true = np.median(h["albedo"][xy[:, 1], xy[:, 0]][use[:468]], axis=0)
                if li == 0:
                    gt = h["normal"][xy[:, 1], xy[:, 0]] @ h["frame"].T
                    for mode in normal_err:
                        s = face_samples(lin, lm, pose.rotation, LightingConfig(normals=mode), K=Kpx)
                        u = (s.weight[:468] > 0) & (np.linalg.norm(gt, axis=1) > 0.5)
                        cosang = np.clip((s.normals[:468][u] * gt[u]).sum(1) / np.linalg.norm(gt[u], axis=1), -1, 1)
                        normal_err[mode].append(float(np.degrees(np.arccos(cosang)).mean()))
                for mode, norm in (("landmarks", "known"), ("landmarks", "default"), ("affine", "known"), ("canonical", "known")):
                    e = estimate_lighting(lin, lm, pose.rotation, K=Kpx, config=LightingConfig(normals=mode),
                                          skin_albedo=a_true if norm == "known" else None)
                    r = {**row, "normals": mode, "albedo_mode": norm, "ok": e.ok, "reason": e.reason,
                         "residual": e.residual, "inliers": e.inliers, "samples": e.samples,
                         "albedo_true": a_true.tolist(), "albedo_est": e.albedo.tolist()}
                    if e.ok:
                        r.update(metrics(e.sh, c))
                        r["sh"] = e.sh.tolist()
                    rows.append(r)
            if verbose:
                ok = [r for r in rows if r.get("head") == hi and r.get("normals") == "landmarks" and r.get("albedo_mode") == "known" and r["ok"]]
                med = np.median([r["shade"] for r in ok]) if ok else float("nan")
                print(f"heads: {hi + 1}/{len(heads)} estimated, median shading error {med:.3f}", flush=True)
    return rows, {k: summarize([{"e": v} for v in vals], ("e",)).get("e", {}) for k, vals in normal_err.items()}


# ------------------------------------------------------------------------------------------
# suite 3: real portraits
# ------------------------------------------------------------------------------------------

MIRROR_SIGN = np.array([1, 1, 1, -1, -1, 1, 1, -1, 1], dtype=np.float64)  # x -> -x flips x, xy, xz


def portraits_suite(folder: Path, count: int) -> tuple[list[dict], dict]:
    import cv2

    from relight_core.io.colour import decode
    from relight_core.track.landmarks import FaceLandmarker
    from relight_core.track.lighting import estimate_lighting
    from relight_core.track.pose import plate_intrinsics, solve_pose

    files = sorted(folder.glob("*.jpg"))
    files = files[:: max(1, len(files) // count)][:count]
    rows = []
    with FaceLandmarker(1, static=True) as fl:
        for f in files:
            u8 = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
            lin, _ = decode(u8, "sRGB")
            res = []
            for flip in (False, True):
                img = u8[:, ::-1].copy() if flip else u8
                faces = fl(img)
                if not faces or faces[0].landmarks is None:
                    res.append(None)
                    continue
                lm = faces[0].landmarks
                K = plate_intrinsics(img.shape[1], img.shape[0])
                pose = solve_pose(lm, K)
                li = lin[:, ::-1].copy() if flip else lin
                res.append(estimate_lighting(li, lm, pose.rotation))
            row = {"file": f.name, "found": res[0] is not None}
            if res[0] is not None:
                e = res[0]
                row.update(ok=e.ok, reason=e.reason, residual=e.residual, inliers=e.inliers, samples=e.samples,
                           sh_grey=e.sh_grey.tolist(), albedo=e.albedo.tolist())
                if e.ok and res[1] is not None and res[1].ok:
                    a = e.sh_grey.astype(np.float64)
                    b = res[1].sh_grey.astype(np.float64) * MIRROR_SIGN
                    row["mirror"] = metrics(np.repeat(b[:, None], 3, 1), np.repeat(a[:, None], 3, 1))
            rows.append(row)
    okr = [r for r in rows if r.get("ok")]
    summ = {
        "files": len(rows), "found": sum(r["found"] for r in rows), "ok": len(okr),
        "reasons": sorted({r["reason"] for r in rows if r.get("found") and not r.get("ok")}),
        "residual": {"median": float(np.median([r["residual"] for r in okr])), "p90": float(np.percentile([r["residual"] for r in okr], 90))} if okr else {},
        "inliers": {"median": float(np.median([r["inliers"] for r in okr])), "p10": float(np.percentile([r["inliers"] for r in okr], 10))} if okr else {},
        "mirror": summarize([r["mirror"] for r in okr if "mirror" in r], ("shade", "dir_err")),
    }
    return rows, summ


# ------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------


def plot_balls(examples: list[tuple[str, np.ndarray, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from relight_core import sh

    n = len(examples)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6))
    for j, (title, true, est) in enumerate(examples):
        peak = max(float(sh.lighting_ball(true, 64).max()), 1e-6)
        for i, c in enumerate((true, est)):
            img = sh.lighting_ball(c, 128, exposure=0.9 / peak, to_uint8=True)
            ax = axes[i, j]
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=7)
        axes[0, 0].set_ylabel("true", fontsize=8)
        axes[1, 0].set_ylabel("estimated", fontsize=8)
    fig.suptitle("Lighting balls (DPR half-sphere, camera view): true vs estimated on synthetic heads", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_errors(rows: list[dict], lights, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, _ in lights]
    series = {
        "mesh renders, rotation": [r for r in rows if r["suite"] == "mesh" and r["rotation"] and r["outliers"] == 0],
        "mesh renders, 20% outliers": [r for r in rows if r["suite"] == "mesh" and r["rotation"] and r["outliers"] > 0],
        "synthetic heads + MediaPipe, rotation": [r for r in rows if r["suite"] == "heads" and r.get("rotation") and r.get("albedo_mode") == "known"],
        "synthetic heads + MediaPipe, no rotation": [r for r in rows if r["suite"] == "heads" and r.get("rotation") is False and r.get("albedo_mode") == "known"],
    }
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=False)
    x = np.arange(len(names))
    for k, (label, rs) in enumerate(series.items()):
        for ax, key in zip(axes, ("shade_face", "shade")):
            med = [np.median([r[key] for r in rs if r["light"] == n and r.get("ok") and key in r] or [np.nan]) for n in names]
            ax.plot(x + (k - 1.5) * 0.08, med, "o", ms=4, label=label)
    for ax, title in zip(axes, ("shading error, normals within 60 deg of the view (median)",
                                "shading error, visible half-sphere (median)")):
        ax.set_xticks(x)
        ax.set_xticklabels([n.split(":")[1] for n in names], rotation=70, fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_ylabel("RMS error / RMS true shading")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heads", type=int, default=24)
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--portraits", type=int, default=120)
    ap.add_argument("--portraits-dir", type=Path, default=REPO.parent / "shared" / "data" / "portraits")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", type=Path, default=None, help="keep the head renders here (npz) between runs")
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--skip", nargs="*", default=[], choices=["mesh", "heads", "portraits"])
    ap.add_argument("--json", type=Path, default=None, help="also write every summary number to this JSON file")
    args = ap.parse_args()

    t0 = time.time()
    lights = test_lights()
    rows: list[dict] = []
    result: dict = {"lights": [n for n, _ in lights]}
    if "mesh" not in args.skip:
        mr = mesh_suite(lights)
        rows += mr
        result["mesh"] = {
            f"rotation={rot} outliers={o}": {g: summarize([r for r in mr if r["rotation"] == rot and r["outliers"] == o and r["group"] == g and r["ok"]])
                                             for g in sorted({r["group"] for r in mr})}
            | {"all": summarize([r for r in mr if r["rotation"] == rot and r["outliers"] == o and r["ok"]]),
               "ok_rate": float(np.mean([r["ok"] for r in mr if r["rotation"] == rot and r["outliers"] == o]))}
            for rot in (True, False) for o in (0.0, 0.2)
        }
        print(f"mesh suite: {time.time() - t0:.0f} s")
    if "heads" not in args.skip:
        heads = None
        cache = args.cache / f"heads_{args.heads}_{args.resolution}.npz" if args.cache else None
        if cache is not None and cache.is_file():
            with np.load(cache, allow_pickle=True) as d:
                heads = list(d["heads"])
        if heads is None:
            heads = render_heads(args.heads, lights, args.resolution, args.device)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cache, heads=np.array(heads, dtype=object))
        hr, nerr = heads_suite(heads, lights)
        rows += hr
        result["heads"] = {"normal_error_deg": nerr}
        for mode, norm in (("landmarks", "known"), ("landmarks", "default"), ("affine", "known"), ("canonical", "known")):
            sel = [r for r in hr if r.get("normals") == mode and r.get("albedo_mode") == norm]
            okr = [r for r in sel if r["ok"]]
            result["heads"][f"normals={mode} albedo={norm}"] = (
                {g: summarize([r for r in okr if r["group"] == g]) for g in sorted({r["group"] for r in okr})}
                | {"all": summarize(okr), "ok_rate": float(np.mean([r["ok"] for r in sel])) if sel else None,
                   "found": len(sel), "reasons": sorted({r["reason"] for r in sel if not r["ok"]})})
        sel = [r for r in hr if r.get("normals") == "landmarks" and r.get("albedo_mode") == "default" and r["ok"]]
        if sel:
            at = np.array([r["albedo_true"] for r in sel])
            ae = np.array([r["albedo_est"] for r in sel])
            chroma = lambda a: a / (a @ LUMA)[:, None]  # noqa: E731
            result["heads"]["default_albedo"] = {
                "true_luminance_range": [float((at @ LUMA).min()), float((at @ LUMA).max())],
                "chroma_error_median": float(np.median(np.abs(chroma(ae) - chroma(at)).max(1))),
            }
        # lighting balls of one head
        ex = []
        pick = ["dir:front-right-up", "dir:left", "dir:top", "preset:rim", "preset:gel_blue_orange", "random:0", "random:3"]
        for name in pick:
            cand = [r for r in hr if r["light"] == name and r.get("normals") == "landmarks" and r.get("albedo_mode") == "known" and r["ok"]]
            if cand:
                r = sorted(cand, key=lambda r: r["shade"])[len(cand) // 2]
                true = dict(lights)[name]
                ex.append((f"{name.split(':')[1]}\nerr {r['shade']:.2f}", true, np.array(r["sh"])))
        img_dir = args.out / "images"
        img_dir.mkdir(parents=True, exist_ok=True)
        if ex:
            plot_balls(ex, img_dir / "light_balls.png")
        print(f"heads suite: {time.time() - t0:.0f} s")
    if "portraits" not in args.skip and args.portraits_dir.is_dir():
        pr, ps = portraits_suite(args.portraits_dir, args.portraits)
        result["portraits"] = ps
        print(f"portraits suite: {time.time() - t0:.0f} s")
    if any(r["suite"] == "mesh" for r in rows) or any(r["suite"] == "heads" for r in rows):
        (args.out / "images").mkdir(parents=True, exist_ok=True)
        plot_errors(rows, lights, args.out / "images" / "light_errors.png")
    text = json.dumps(result, indent=1)
    print(text)
    if args.json is not None:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
