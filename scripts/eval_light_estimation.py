#!/usr/bin/env python3
"""Measure :func:`relight_core.track.lighting.estimate_lighting` on renders with known light.

Usage::

    PYTHONPATH=. python scripts/eval_light_estimation.py [--heads 24] [--resolution 512]
        [--portraits 120] [--device cpu] [--cache /tmp/light_eval] [--images docs/images]
        [--json results.json] [--skip mesh heads offaxis portraits]

About 20 minutes on 2 CPU cores with the defaults (rendering the synthetic heads is most of it;
``--device cuda`` renders them on a GPU). docs/LIGHT_ESTIMATION.md reports its output.

Suites
------
1. **mesh**: the canonical face (MediaPipe topology) posed at (yaw, pitch) = (0, 0), (30, 0),
   (-30, 10), (0, 15) deg in a 720x540 pinhole camera (face about 300 px wide), rendered by
   :func:`relight_core.track.lighting_synth.render_face` under every test light with a textured
   skin albedo (+-8 %, smooth), 1 % sensor noise and landmark jitter (0.3 % of the face size in x,
   y; 2 % in z), once clean and once with 20 % of the vertices' neighbourhoods replaced by
   specular spots or shadows. The albedo is known to the estimator (``skin_albedo``).
2. **heads**: the project's synthetic people (:mod:`relight_core.train.synthetic`: MakeHuman
   heads with skin texture, flush, freckles, stubble and beards, hair, make-up, eyes, backgrounds;
   per-pixel normals) under the same lights, seen at random yaw (+-35 deg), pitch (+-15 deg) and
   roll (+-6 deg) with a 24 deg field of view, 512x512, stored as 8-bit sRGB (clipping included).
   MediaPipe finds the landmarks on the 8-bit image, :func:`relight_core.track.pose.solve_pose`
   the rotation (with the render's intrinsics); the frame is decoded back to linear and the light
   estimated. The true light is in the render camera's DPR frame (the plate frame here). Variants:
   normals from the landmarks (the default), ``optical`` (no ray correction), ``affine`` and
   ``canonical`` (pose-based), an oracle with the renderer's true normals at the same vertices,
   and the default albedo normalisation (all others get the true mean skin albedo at the used
   vertices).
3. **offaxis**: 6 synthetic heads 11-15 deg off the optical axis (50 deg field of view): normal
   error and face shading error with the ray rotation (default) and without (``optical``).
4. **portraits**: real photographs (``../shared/data/portraits``), no ground truth: success rate,
   residuals, and mirror consistency (the estimate of the mirrored image must be the mirrored
   estimate: the x-odd coefficients x, xy, xz flip sign).

Test lights (DPR frame, c = L / pi): ambient radiance 0.3 plus a directional light of irradiance
3 from 16 directions (front; front-right, right, back-right, back, left at elevation 0; the 8
compass directions at elevation 45 deg; top; bottom), the named presets of :mod:`relight_core.sh`
(key_left, key_right, top, rim, under, flat, gel_blue_orange) and 6 coloured random lights of the
training distribution (:func:`relight_core.train.synthetic.sample_lights`, seed 7): 29 lights.

Metrics (against the true coefficients):

* ``shade_face``: RMS error of the shading over normals within 60 deg of the viewing direction
  (where a face's normals are; uniform over DPR's lighting-ball image), relative to the RMS true
  shading, all channels; this is what relighting by shading ratios depends on;
* ``shade``: the same over the whole visible half-sphere (normals with y < 0, to the silhouette);
* ``shade_si``: ``shade`` after the best per-channel scale (exposure and albedo independent);
* ``coef_rel``: ``||c_est - c_true|| / ||c_true||`` over the 9 coefficients, mean over channels;
* ``coef_rmse``: RMS of ``c_est - c_true`` over the 9 coefficients and channels (DPR-style
  absolute error; the test lights have DC 0.37-1.1 like DPR's labels);
* ``dir_err``: angle (deg) between the band-1 vectors (x, y, z) = (c3, c1, c2) of the grey light
  (lights whose band-1 part is under 10 % of the DC, e.g. "flat", are left out);
* ``ambient_baseline``: ``shade_face`` of the true light's DC term alone (a perfect brightness
  estimate that knows nothing about direction), for scale.
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
KEYS = ("shade_face", "shade", "shade_si", "coef_rel", "coef_rmse", "dir_err", "ambient_baseline")


# ------------------------------------------------------------------------------------------
# lights and metrics
# ------------------------------------------------------------------------------------------


def test_lights() -> list[tuple[str, np.ndarray]]:
    """The 29 test lights ``(name, [9, 3] float64)``."""
    import torch

    from relight_core import sh
    from relight_core.train.synthetic import sample_lights

    dirs = [("front", 0, 0), ("front-right", 45, 0), ("right", 90, 0), ("back-right", 135, 0), ("back", 180, 0),
            ("left", -90, 0)]
    for az, nm in ((0, "front"), (45, "front-right"), (90, "right"), (135, "back-right"), (180, "back"),
                   (-135, "back-left"), (-90, "left"), (-45, "front-left")):
        dirs.append((f"{nm}-up", az, 45))
    dirs += [("top", 0, 90), ("bottom", 0, -90)]
    out = []
    for name, az, el in dirs:
        a, e = math.radians(az), math.radians(el)
        d = (math.cos(e) * math.sin(a), -math.cos(e) * math.cos(a), math.sin(e))
        c = sh.ambient(0.3, dtype=torch.float64) + sh.directional(d, 3.0, dtype=torch.float64)
        out.append((f"dir:{name}", np.repeat(c.numpy()[:, None], 3, 1)))
    for name in ("key_left", "key_right", "top", "rim", "under", "flat", "gel_blue_orange"):
        c = sh.preset(name).double().numpy()
        out.append((f"preset:{name}", c if c.ndim == 2 else np.repeat(c[:, None], 3, 1)))
    rnd = sample_lights(6, torch.Generator().manual_seed(7), coloured=1.0).double().numpy()
    out += [(f"random:{i}", rnd[i]) for i in range(6)]
    return out


def light_group(name: str) -> str:
    n = name.split(":")[1]
    if name.startswith("dir:"):
        return "directional from behind/below" if n.startswith("back") or n == "bottom" else "directional from the front half/above"
    if n == "rim":
        return "directional from behind/below"
    return {"preset": "presets", "random": "random coloured (training distribution)"}[name.split(":")[0]]


_BASES = None


def _bases():
    global _BASES
    if _BASES is None:
        from relight_core import sh
        from relight_core.track.lighting import shading_basis_np

        n, m = sh.ball_normals(64)
        v = n[m].double().numpy()
        v = v[v[:, 1] < 0]
        face = v[-v[:, 1] > math.cos(math.radians(60))]
        _BASES = shading_basis_np(v), shading_basis_np(face)
    return _BASES


def metrics(est: np.ndarray, true: np.ndarray) -> dict:
    """The metrics of one estimate (module docstring)."""
    Bv, Bf = _bases()
    est = np.asarray(est, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)

    def rel(B, e, t):
        se, st = B @ e, B @ t
        return float(np.sqrt(((se - st) ** 2).mean()) / np.sqrt((st**2).mean()))

    se, st = Bv @ est, Bv @ true
    k = (se * st).sum(0) / np.maximum((se * se).sum(0), 1e-12)
    ge, gt = est @ LUMA, true @ LUMA
    de, dt = ge[[3, 1, 2]], gt[[3, 1, 2]]
    ang = None
    if np.linalg.norm(dt) > 0.1 * abs(gt[0]):
        ang = math.degrees(math.acos(np.clip(de @ dt / max(np.linalg.norm(de) * np.linalg.norm(dt), 1e-12), -1, 1)))
    dc = np.zeros_like(true)
    dc[0] = true[0]
    return {
        "shade_face": rel(Bf, est, true),
        "shade": rel(Bv, est, true),
        "shade_si": rel(Bv, est * k, true),
        "coef_rel": float(np.mean(np.linalg.norm(est - true, axis=0) / np.linalg.norm(true, axis=0))),
        "coef_rmse": float(np.sqrt(((est - true) ** 2).mean())),
        "dir_err": ang,
        "ambient_baseline": rel(Bf, dc, true),
    }


def summarize(rows: list[dict], keys=KEYS) -> dict:
    out = {"n": len(rows)}
    for k in keys:
        v = np.array([r[k] for r in rows if r.get(k) is not None and np.isfinite(r[k])])
        if v.size:
            out[k] = {"median": float(np.median(v)), "p90": float(np.percentile(v, 90)), "mean": float(v.mean())}
    return out


def table(title: str, groups: dict[str, list[dict]]) -> str:
    """A markdown table of median (90th percentile) per group."""
    cols = ("shade_face", "shade", "shade_si", "coef_rel", "coef_rmse", "dir_err", "ambient_baseline")
    lines = [f"**{title}** (median / 90th percentile)", "",
             "| lights | n | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for g, rows in groups.items():
        s = summarize(rows)
        cells = []
        for c in cols:
            if c in s:
                fmt = "{:.1f}" if c == "dir_err" else "{:.3f}"
                cells.append(f"{fmt.format(s[c]['median'])} / {fmt.format(s[c]['p90'])}")
            else:
                cells.append("-")
        lines.append(f"| {g} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def by_group(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    return dict(sorted(groups.items())) | {"all": rows}


# ------------------------------------------------------------------------------------------
# suite 1: canonical mesh renders
# ------------------------------------------------------------------------------------------


def _smooth_noise(points: np.ndarray, rng) -> np.ndarray:
    """Smooth random field in about [-1, 1] over 3D points (a few random plane waves)."""
    p = points - points.mean(0)
    s = np.ptp(points[:, 0]) + 1e-9
    return np.mean([np.sin(p @ (rng.standard_normal(3) * 20.0 / s) + rng.uniform(0, 2 * np.pi)) for _ in range(4)], 0)


def _spots(img: np.ndarray, lm: np.ndarray, frac: float, size: float, rng) -> np.ndarray:
    """Turn the neighbourhoods of ``frac`` of the usable vertices into highlights or shadows."""
    from relight_core.track.lighting import load_face_topology

    out = img.copy()
    H, W = img.shape[:2]
    usable = np.nonzero(~load_face_topology().excluded[:468])[0]
    idx = rng.choice(usable, int(frac * len(usable)), replace=False)
    r = max(1, int(round(0.012 * size)))
    bright = np.float32(1.5 * np.median(img[img > 0]))
    for k, i in enumerate(idx):
        x, y = int(round(lm[i, 0])), int(round(lm[i, 1]))
        sl = (slice(max(0, y - r), min(H, y + r + 1)), slice(max(0, x - r), min(W, x + r + 1)))
        out[sl] = out[sl] * 0.25 if k % 2 else out[sl] + bright
    return out


def mesh_suite(lights) -> list[dict]:
    from relight_core.track.lighting import DEFAULT_SKIN_ALBEDO, estimate_lighting
    from relight_core.track.lighting_synth import head_rotation, posed_face, render_face
    from relight_core.track.pose import plate_intrinsics

    rng = np.random.default_rng(0)
    H, W = 540, 720
    K = plate_intrinsics(W, H, focal_px=1400)
    albedo = np.array(DEFAULT_SKIN_ALBEDO)
    rows = []
    for yaw, pitch in ((0, 0), (30, 0), (-30, 10), (0, 15)):
        R = head_rotation(yaw, pitch, 0.0)
        face = posed_face(R, np.array([0.05, -0.03, 1.9]), K)
        size = float(np.ptp(face["landmarks"][:468, 0]))
        for outliers in (0.0, 0.2):
            for name, c in lights:
                tex = 1 + 0.08 * _smooth_noise(face["camera"], rng)
                img, mask = render_face(face, H, W, c, albedo[None, :] * tex[:, None], background=0.05)
                if outliers > 0:
                    img = _spots(img, face["landmarks"], outliers, size, rng)
                img = img + (0.01 * np.median(img[mask]) * rng.standard_normal(img.shape)).astype(np.float32)
                lm = face["landmarks"].copy()
                lm[:, :2] += 0.003 * size * rng.standard_normal((478, 2))
                lm[:, 2] += 0.02 * size * rng.standard_normal(478)
                e = estimate_lighting(img, lm, R, skin_albedo=albedo, K=K)
                row = {"suite": "mesh", "light": name, "group": light_group(name), "yaw": yaw, "pitch": pitch,
                       "outliers": outliers, "ok": e.ok, "reason": e.reason, "residual": e.residual,
                       "inliers": e.inliers}
                if e.ok:
                    row.update(metrics(e.sh, c))
                rows.append(row)
        print(f"mesh: pose yaw {yaw} pitch {pitch} done", flush=True)
    return rows


# ------------------------------------------------------------------------------------------
# suite 2: synthetic heads + MediaPipe
# ------------------------------------------------------------------------------------------


def render_heads(n: int, lights, resolution: int, device: str, seed: int = 1, cache: Path | None = None):
    """Yield ``n`` synthetic people rendered under all lights (dicts of numpy arrays).

    Uses :class:`relight_core.train.synthetic.SyntheticHeads` internals (``_person``, ``dress``,
    ``render``) to render one camera under many lights with a single rasterization.
    """
    import torch

    from relight_core import camera, sh
    from relight_core.train import albedo as alb
    from relight_core.train.heads import euler_to_matrix
    from relight_core.train.synthetic import SyntheticHeads, orbit_labels

    S = None
    g = torch.Generator(device=device).manual_seed(seed)
    coeffs = torch.tensor(np.stack([c for _, c in lights]), dtype=torch.float32, device=device)  # [L, 9, 3]
    for i in range(n):
        path = cache / f"head_{seed}_{resolution}_{i:03d}.npz" if cache is not None else None
        if path is not None and path.is_file():
            with np.load(path) as d:
                yield {k: d[k] for k in d.files}
            continue
        if S is None:
            S = SyntheticHeads(resolution=resolution, device=device, supersample=2)
        g.manual_seed(seed * 100003 + i)
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
        with torch.no_grad():
            res = S.render(verts, faces, fields, *extra, app, cam, bg, {f"l{j}": coeffs[j:j + 1] for j in range(L)}, frame)
        rgb = torch.cat([res[f"rgb_l{j}"] for j in range(L)], 0)
        K = camera.split_label(cam)[1]
        head = {
            # the 8-bit sRGB frame a camera would store (MediaPipe's input; decoded again for the fit)
            "srgb8": (alb.to_srgb(rgb.clamp(0, 1)).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8),
            "albedo": res["albedo"][0].permute(1, 2, 0).cpu().numpy(),
            "normal": res["normal"][0].permute(1, 2, 0).cpu().numpy(),  # world (head) space
            "frame": frame[0].cpu().numpy(),  # world -> render-camera DPR frame
            "K": K[0].cpu().numpy(),
            "angles": np.array([math.degrees(float(yaw)), math.degrees(float(pitch)), math.degrees(float(roll))]),
        }
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, **head)
        print(f"heads: rendered {i + 1}/{n}", flush=True)
        yield head


VARIANTS = (("landmarks", "known"), ("landmarks", "default"), ("optical", "known"), ("affine", "known"),
            ("canonical", "known"), ("oracle", "known"))
"""(normals, albedo) variants of the heads suite; "oracle" = the renderer's normals at the vertices."""


def heads_suite(heads, lights) -> tuple[list[dict], dict]:
    import copy

    from relight_core.io.colour import srgb_to_linear
    from relight_core.track.landmarks import FaceLandmarker
    from relight_core.track.lighting import LightingConfig, estimate_lighting, face_samples, fit_samples
    from relight_core.track.pose import solve_pose

    rows = []
    normal_err: dict[str, list[float]] = {"landmarks": [], "optical": [], "affine": [], "canonical": []}
    with FaceLandmarker(1, static=True) as fl:
        for hi, h in enumerate(heads):
            Hh, Ww = h["srgb8"].shape[1:3]
            Kpx = np.array([[h["K"][0, 0] * Ww, 0, (Ww - 1) / 2], [0, h["K"][1, 1] * Hh, (Hh - 1) / 2], [0, 0, 1]])
            for li, (name, c) in enumerate(lights):
                u8 = h["srgb8"][li]
                row = {"suite": "heads", "head": hi, "light": name, "group": light_group(name)}
                faces = fl(u8)
                if not faces or faces[0].landmarks is None:
                    rows += [{**row, "normals": v, "albedo_mode": a, "ok": False, "reason": "no face found"} for v, a in VARIANTS]
                    continue
                lm = faces[0].landmarks
                pose = solve_pose(lm, Kpx)
                lin = srgb_to_linear(u8.astype(np.float32) / 255.0).astype(np.float32)
                smp = face_samples(lin, lm, pose.rotation, K=Kpx)
                use = smp.weight[:468] > 0
                xy = np.clip(np.round(lm[:468, :2]).astype(int), 0, [Ww - 1, Hh - 1])
                a_true = np.median(h["albedo"][xy[:, 1], xy[:, 0]][use], axis=0)  # true mean skin albedo
                gt = h["normal"][xy[:, 1], xy[:, 0]] @ h["frame"].T  # true normals, DPR frame
                gt_ok = np.linalg.norm(gt, axis=1) > 0.5
                gt = gt / np.maximum(np.linalg.norm(gt, axis=1, keepdims=True), 1e-9)
                if li == 0:
                    for mode in normal_err:
                        s = face_samples(lin, lm, pose.rotation, LightingConfig(normals=mode), K=Kpx)
                        u = (s.weight[:468] > 0) & gt_ok
                        cosang = np.clip((s.normals[:468][u] * gt[u]).sum(1), -1, 1)
                        normal_err[mode].append(float(np.degrees(np.arccos(cosang)).mean()))
                for mode, norm in VARIANTS:
                    alb_arg = a_true if norm == "known" else None
                    if mode == "oracle":
                        t = copy.deepcopy(smp)
                        u = use & gt_ok
                        t.weight[:468][~u] = 0.0
                        t.normals[:468][u] = gt[u]
                        e = fit_samples(t, skin_albedo=alb_arg)
                    else:
                        e = estimate_lighting(lin, lm, pose.rotation, K=Kpx, config=LightingConfig(normals=mode), skin_albedo=alb_arg)
                    r = {**row, "normals": mode, "albedo_mode": norm, "ok": e.ok, "reason": e.reason,
                         "residual": e.residual, "inliers": e.inliers, "samples": e.samples,
                         "albedo_true": a_true.tolist(), "albedo_est": e.albedo.tolist()}
                    if e.ok:
                        r.update(metrics(e.sh, c))
                        r["sh"] = e.sh.tolist()
                    rows.append(r)
            ok = [r for r in rows if r["head"] == hi and r["normals"] == "landmarks" and r["albedo_mode"] == "known" and r["ok"]]
            med = np.median([r["shade_face"] for r in ok]) if ok else float("nan")
            print(f"heads: {hi + 1} estimated, median face shading error {med:.3f}", flush=True)
    return rows, {k: summarize([{"e": v} for v in vals], ("e",)).get("e", {}) for k, vals in normal_err.items()}


def offaxis_suite(n: int, device: str, seed: int = 5) -> dict:
    """Heads placed 11-15 deg off the optical axis (the camera looks beside them; 50 deg field
    of view, 640 px): mean normal error at the used vertices with and without the ray rotation,
    and the face shading error of one light."""
    import torch

    from relight_core import camera, sh
    from relight_core.io.colour import srgb_to_linear
    from relight_core.train import albedo as alb
    from relight_core.train.synthetic import SyntheticHeads, orbit_labels
    from relight_core.track.landmarks import FaceLandmarker
    from relight_core.track.lighting import LightingConfig, estimate_lighting, face_samples
    from relight_core.track.pose import solve_pose

    S = SyntheticHeads(resolution=640, supersample=1, device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    light_np = dict(test_lights())["dir:front-right-up"]
    light = torch.tensor(light_np, dtype=torch.float32, device=device)[None]
    out: dict[str, list] = {"off_axis_deg": [], "normal_err_optical": [], "normal_err_landmarks": [],
                            "shade_face_optical": [], "shade_face_landmarks": []}
    with FaceLandmarker(1, static=True) as fl:
        for i in range(n):
            ident, app, expr = S._person(1, g)
            verts = S.model.mesh(ident, expr * 0)
            dressed = S.dress(verts, alb.vertex_fields(S.model, app), app)
            verts, faces, fields, extra = dressed[0], dressed[1], dressed[2], tuple(dressed[3:])
            off = torch.tensor([[0.55 * (1 if i % 2 else -1), 0.35 * (1 if i % 3 == 0 else -1), 0.0]], device=device)
            cam = orbit_labels(torch.zeros(1, device=device), torch.tensor([math.radians(10 * (i - 3))], device=device),
                               torch.full((1,), 2.7, device=device), off, torch.full((1,), 50.0, device=device), torch.zeros(1, device=device))
            frame = sh.world_to_dpr(camera.split_label(cam)[0])
            bg = alb.sample_background(1, 640, 640, g, device)
            with torch.no_grad():
                res = S.render(verts, faces, fields, *extra, app, cam, bg, {"in": light}, frame)
            u8 = (alb.to_srgb(res["rgb_in"][0].permute(1, 2, 0)).cpu().numpy() * 255 + 0.5).astype(np.uint8)
            normal = res["normal"][0].permute(1, 2, 0).cpu().numpy()
            albedo = res["albedo"][0].permute(1, 2, 0).cpu().numpy()
            Kn = camera.split_label(cam)[1][0].cpu().numpy()
            Kpx = np.array([[Kn[0, 0] * 640, 0, 319.5], [0, Kn[1, 1] * 640, 319.5], [0, 0, 1]])
            fs = fl(u8)
            if not fs or fs[0].landmarks is None:
                continue
            lm = fs[0].landmarks
            centre = (lm[:, :2].min(0) + lm[:, :2].max(0)) / 2
            out["off_axis_deg"].append(math.degrees(math.atan(np.linalg.norm(centre - 319.5) / Kpx[0, 0])))
            lin = srgb_to_linear(u8.astype(np.float32) / 255).astype(np.float32)
            pose = solve_pose(lm, Kpx)
            xy = np.clip(np.round(lm[:468, :2]).astype(int), 0, 639)
            gt = normal[xy[:, 1], xy[:, 0]] @ frame[0].cpu().numpy().T
            ok = np.linalg.norm(gt, axis=1) > 0.5
            gt = gt / np.maximum(np.linalg.norm(gt, axis=1, keepdims=True), 1e-9)
            for mode in ("optical", "landmarks"):
                cfg = LightingConfig(normals=mode)
                s = face_samples(lin, lm, pose.rotation, cfg, K=Kpx)
                u = (s.weight[:468] > 0) & ok
                out[f"normal_err_{mode}"].append(float(np.degrees(np.arccos(np.clip((s.normals[:468][u] * gt[u]).sum(1), -1, 1))).mean()))
                a_true = np.median(albedo[xy[:, 1], xy[:, 0]][u], 0)
                e = estimate_lighting(lin, lm, pose.rotation, K=Kpx, config=cfg, skin_albedo=a_true)
                out[f"shade_face_{mode}"].append(metrics(e.sh, light_np)["shade_face"] if e.ok else float("nan"))
            print(f"off-axis: head {i + 1}/{n} done", flush=True)
    return {k: [round(float(x), 3) for x in v] for k, v in out.items()} | {
        k + "_mean": float(np.nanmean(v)) for k, v in out.items() if v}


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
                img = np.ascontiguousarray(u8[:, ::-1]) if flip else u8
                faces = fl(img)
                if not faces or faces[0].landmarks is None:
                    res.append(None)
                    continue
                lm = faces[0].landmarks
                pose = solve_pose(lm, plate_intrinsics(img.shape[1], img.shape[0]))
                li = np.ascontiguousarray(lin[:, ::-1]) if flip else lin
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

    def pct(key, q):
        return float(np.percentile([r[key] for r in okr], q)) if okr else None

    g = np.array([r["sh_grey"] for r in okr]) if okr else np.zeros((0, 9))
    summ = {
        "files": len(rows), "found": sum(r["found"] for r in rows), "ok": len(okr),
        "reasons": sorted({r["reason"] for r in rows if r.get("found") and not r.get("ok")}),
        "residual_median": pct("residual", 50), "residual_p90": pct("residual", 90),
        "inliers_median": pct("inliers", 50), "inliers_p10": pct("inliers", 10),
        "band1_over_dc_median": float(np.median(np.linalg.norm(g[:, 1:4], axis=1) / g[:, 0])) if len(g) else None,
        "light_from_above_share": float(np.mean(g[:, 2] > 0)) if len(g) else None,
        "light_from_front_share": float(np.mean(g[:, 1] < 0)) if len(g) else None,
        "mirror": summarize([r["mirror"] for r in okr if "mirror" in r], ("shade_face", "shade", "dir_err")),
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
    fig, axes = plt.subplots(2, n, figsize=(1.55 * n, 3.7))
    for j, (title, true, est) in enumerate(examples):
        peak = max(float(sh.lighting_ball(true, 64).max()), 1e-6)
        for i, c in enumerate((true, est)):
            ax = axes[i, j]
            ax.imshow(sh.lighting_ball(c.astype(np.float32), 128, exposure=0.9 / peak, to_uint8=True))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=7)
    axes[0, 0].set_ylabel("true", fontsize=8)
    axes[1, 0].set_ylabel("estimated", fontsize=8)
    fig.suptitle("DPR lighting balls (camera view, same exposure per column): true vs estimated, "
                 "synthetic heads + MediaPipe (median-error head per light)", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_errors(rows: list[dict], lights, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, _ in lights]
    series = {
        "mesh renders": [r for r in rows if r["suite"] == "mesh" and r["outliers"] == 0],
        "mesh renders, 20 % outlier spots": [r for r in rows if r["suite"] == "mesh" and r["outliers"] > 0],
        "synthetic heads + MediaPipe": [r for r in rows if r["suite"] == "heads" and r["normals"] == "landmarks" and r["albedo_mode"] == "known"],
        "synthetic heads, true normals (oracle)": [r for r in rows if r["suite"] == "heads" and r["normals"] == "oracle"],
        "ambient-only baseline (heads)": [dict(r, shade_face=r["ambient_baseline"]) for r in rows
                                          if r["suite"] == "heads" and r["normals"] == "landmarks" and r["albedo_mode"] == "known" and r["ok"]],
    }
    fig, ax = plt.subplots(figsize=(12, 4.8))
    x = np.arange(len(names))
    markers = ("o", "s", "D", "^", "x")
    for k, (label, rs) in enumerate(series.items()):
        if not rs:
            continue
        med = [np.median([r["shade_face"] for r in rs if r["light"] == n and r.get("ok", True) and "shade_face" in r] or [np.nan]) for n in names]
        ax.plot(x + (k - 2) * 0.1, med, markers[k], ms=4, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels([n.split(":")[1] if n.startswith("dir:") else n.replace(":", " ") for n in names], rotation=70, fontsize=7)
    ax.set_ylim(0, 0.9)
    ax.set_ylabel("RMS shading error / RMS true shading")
    ax.set_title("Median shading error over face-like normals (within 60 deg of the view) per test light", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
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
    ap.add_argument("--cache", type=Path, default=None, help="keep the head renders here between runs")
    ap.add_argument("--images", type=Path, default=REPO / "docs" / "images", help="where the plots go")
    ap.add_argument("--skip", nargs="*", default=[], choices=["mesh", "heads", "offaxis", "portraits"])
    ap.add_argument("--json", type=Path, default=None, help="also write every summary number to this JSON file")
    args = ap.parse_args()

    t0 = time.time()
    lights = test_lights()
    rows: list[dict] = []
    result: dict = {"lights": [n for n, _ in lights]}
    report = []
    args.images.mkdir(parents=True, exist_ok=True)
    if "mesh" not in args.skip:
        mr = mesh_suite(lights)
        rows += mr
        for o in (0.0, 0.2):
            sel = [r for r in mr if r["outliers"] == o]
            okr = [r for r in sel if r["ok"]]
            key = f"mesh, {'20 % outlier spots' if o else 'clean'}"
            result[key] = {g: summarize(v) for g, v in by_group(okr).items()} | {"ok_rate": float(np.mean([r["ok"] for r in sel]))}
            report.append(table(f"{key} (ok {len(okr)}/{len(sel)})", by_group(okr)))
        print(f"mesh suite: {time.time() - t0:.0f} s", flush=True)
    if "heads" not in args.skip:
        hr, nerr = heads_suite(render_heads(args.heads, lights, args.resolution, args.device, cache=args.cache), lights)
        rows += hr
        result["heads normal error (deg, mean per head)"] = nerr
        report.append("**heads: mean angle between the fitted normals and the renderer's at the used vertices (deg)**: "
                      + ", ".join(f"{k} {v.get('median', float('nan')):.1f} (p90 {v.get('p90', float('nan')):.1f})" for k, v in nerr.items()) + "\n")
        for mode, norm in VARIANTS:
            sel = [r for r in hr if r["normals"] == mode and r["albedo_mode"] == norm]
            okr = [r for r in sel if r["ok"]]
            key = f"heads, normals={mode}, albedo={norm}"
            result[key] = {g: summarize(v) for g, v in by_group(okr).items()} | {
                "ok_rate": float(np.mean([r["ok"] for r in sel])) if sel else None,
                "reasons": sorted({r["reason"] for r in sel if not r["ok"]})}
            groups = by_group(okr) if (mode, norm) == ("landmarks", "known") else {"all": okr}
            report.append(table(f"{key} (ok {len(okr)}/{len(sel)})", groups))
            res = [r["residual"] for r in okr]
            inl = [r["inliers"] for r in okr]
            if res:
                result[key]["residual_median"], result[key]["inliers_median"] = float(np.median(res)), float(np.median(inl))
        sel = [r for r in hr if r["normals"] == "landmarks" and r["albedo_mode"] == "default" and r["ok"]]
        if sel:
            at, ae = np.array([r["albedo_true"] for r in sel]), np.array([r["albedo_est"] for r in sel])
            chroma = lambda a: a / (a @ LUMA)[:, None]  # noqa: E731
            result["heads default albedo"] = {
                "true_albedo_luminance_range": [float((at @ LUMA).min()), float((at @ LUMA).max())],
                "albedo_chroma_error_median": float(np.median(np.abs(chroma(ae) - chroma(at)).max(1))),
                "albedo_chroma_error_p90": float(np.percentile(np.abs(chroma(ae) - chroma(at)).max(1), 90)),
            }
            report.append(f"**heads, default albedo normalisation**: {json.dumps(result['heads default albedo'])}\n")
        ex = []
        for name in ("dir:front-right-up", "dir:left", "dir:top", "dir:back-up", "preset:rim", "preset:gel_blue_orange",
                     "random:0", "random:3"):
            cand = sorted((r for r in hr if r["light"] == name and r["normals"] == "landmarks" and r["albedo_mode"] == "known" and r["ok"]),
                          key=lambda r: r["shade_face"])
            if cand:
                r = cand[len(cand) // 2]
                ex.append((f"{name.split(':')[1]}\nerr {r['shade_face']:.2f}", dict(lights)[name], np.array(r["sh"])))
        if ex:
            plot_balls(ex, args.images / "light_balls.png")
        print(f"heads suite: {time.time() - t0:.0f} s", flush=True)
    if "offaxis" not in args.skip:
        oa = offaxis_suite(6, args.device)
        result["off-axis heads"] = oa
        report.append(f"**off-axis heads**: {json.dumps(oa)}\n")
        print(f"off-axis suite: {time.time() - t0:.0f} s", flush=True)
    if "portraits" not in args.skip and args.portraits_dir.is_dir():
        _, ps = portraits_suite(args.portraits_dir, args.portraits)
        result["portraits"] = ps
        report.append(f"**portraits**: {json.dumps(ps)}\n")
        print(f"portraits suite: {time.time() - t0:.0f} s", flush=True)
    if any(r["suite"] in ("mesh", "heads") for r in rows):
        plot_errors(rows, lights, args.images / "light_errors.png")
    print("\n".join(report))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
