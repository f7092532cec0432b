"""The quality report (`relight eval`): its metrics on known cases, the classical baseline's
exactness, dlib identity on real portraits, the held-out seed stream, and a tiny end-to-end run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from relight_core import sh
from relight_core.eval.quality import metrics as M
from relight_core.eval.quality.classical import ratio_relight, shading_map


def _texture(size: int = 96) -> np.ndarray:
    from skimage import data

    return data.astronaut()[100:100 + size, 180:180 + size].astype(np.float64) / 255.0


# -- image metrics ------------------------------------------------------------------------------


def test_psnr_and_ssim_of_identical_and_known_images():
    image = _texture()
    assert M.psnr(image, image) == M.MAX_PSNR
    assert M.ssim(image, image) == pytest.approx(1.0, abs=1e-9)
    assert M.psnr(np.clip(image + 0.1, 0, 1) * 0 + 0.6, np.full_like(image, 0.5)) == pytest.approx(20.0, abs=1e-9)
    noisy = np.clip(image + np.random.default_rng(0).normal(0, 0.05, image.shape), 0, 1)
    assert 0.0 < M.ssim(noisy, image) < 0.95
    mask = np.zeros(image.shape[:2], bool)
    mask[:40] = True
    damaged = image.copy()
    damaged[60:] = 0  # outside the mask: the masked scores do not see it
    assert M.psnr(damaged, image, mask) == M.MAX_PSNR
    assert M.psnr(damaged, image) < 20
    assert math.isnan(M.psnr(image, image, np.zeros_like(mask)))
    with pytest.raises(ValueError, match="same shape"):
        M.psnr(image, image[:10])


def test_angular_error_of_known_normals():
    up = np.array([0.0, 0.0, 1.0])
    a = math.radians(30)
    tilted = np.array([math.sin(a), 0.0, math.cos(a)]) * 3  # length does not matter
    errors = M.angular_error_deg(np.stack([up, up, up]), np.stack([up, tilted, [0.0, 1.0, 0.0]]))
    np.testing.assert_allclose(errors, [0.0, 30.0, 90.0], atol=1e-6)


def test_lighting_error_is_scale_invariant_and_bounded():
    key = sh.preset("key_left").double().numpy()
    assert M.lighting_error(key, key) == pytest.approx(0.0, abs=1e-12)
    coloured = np.repeat(key[:, None], 3, 1) * np.array([0.5, 1.0, 2.0])  # per-channel scale: same shape
    assert M.lighting_error(coloured, key) == pytest.approx(0.0, abs=1e-9)
    assert M.lighting_error(np.zeros(9), key) == pytest.approx(1.0)
    ambient = key.copy()
    ambient[1:] = 0
    wrong_side = M.lighting_error(sh.preset("key_right").double().numpy(), key)
    assert 0.2 < M.lighting_error(ambient, key) < wrong_side < 1.0
    normals = M.face_cone_normals(500)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1)
    assert (-normals[:, 1] >= math.cos(math.radians(M.FACE_CONE_DEG)) - 1e-9).all()  # toward the viewer


def test_warping_error_follows_the_motion():
    """A textured frame moved by (3, 2) px: the flow recovers the motion and warping the previous
    frame with it explains the current one far better than not warping."""
    big = _texture(140)
    previous, current = big[10:106, 10:106], big[8:104, 7:103]  # content moves right 3, down 2
    grey = lambda x: (x.mean(-1) * 255).astype(np.uint8)  # noqa: E731
    flow, valid = M.consistent_flow(grey(previous), grey(current))
    inner = np.zeros(valid.shape, bool)
    inner[16:-16, 16:-16] = True
    region = valid & inner
    assert region.mean() > 0.3
    np.testing.assert_allclose(np.median(flow[region], axis=0), [-3.0, -2.0], atol=0.3)
    warped = M.warping_error(previous, current, flow, region)
    unwarped = M.warping_error(previous, current, np.zeros_like(flow), region)
    assert warped < 0.1 * unwarped
    assert M.warping_error(current, current, np.zeros_like(flow), region) == pytest.approx(0.0, abs=1e-12)


# -- classical baseline -----------------------------------------------------------------------


def test_classical_ratio_reproduces_ground_truth_with_true_normals_and_lights():
    """rgb = albedo x shading, so the shading ratio of the true normals under the true lights turns
    the input render into the target render exactly (Lambertian SH shading)."""
    from relight_core.train.synthetic import SyntheticHeads

    heads = SyntheticHeads(64, "cpu", supersample=1, coloured=1.0)
    s = heads.sample(1, torch.Generator().manual_seed(3))
    hwc = lambda t: t[0].permute(1, 2, 0).double().numpy()  # noqa: E731
    normals_dpr = hwc(s["normal"]) @ s["light_frame"][0].double().numpy().T
    shading_in = shading_map(normals_dpr, s["sh"][0].double().numpy())
    shading_out = shading_map(normals_dpr, s["target_sh"][0].double().numpy())
    subject = hwc(s["mask"])[..., 0] >= 1.0
    np.testing.assert_allclose(shading_in[subject], hwc(s["shading"])[subject], atol=1e-4)  # the renderer's shading
    region = subject & (shading_in.min(-1) > 0.05)
    assert region.sum() > 300
    rgb, target = hwc(s["rgb"]), hwc(s["target_rgb"])
    assert np.abs(rgb - target)[region].mean() > 0.02  # the lights really differ
    relit = ratio_relight(rgb, shading_out, shading_in, region, eps=0.0, ratio_range=None)
    np.testing.assert_allclose(relit[region], target[region], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(relit[~region], rgb[~region])  # untouched outside the face


# -- identity ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity():
    from relight_core.eval.quality.identity import FaceIdentity

    return FaceIdentity()


def test_dlib_distance_same_photo_and_two_people(identity, shared_data):
    from relight_core.eval.quality.identity import SAME_PERSON, distance
    from relight_core.eval.quality.real import read_rgb

    files = sorted((shared_data / "portraits").glob("*.jpg"))[:2]
    a, b = (identity.describe(read_rgb(f)) for f in files)
    assert a["detected"] and b["detected"]
    again = identity.describe(read_rgb(files[0]))
    assert distance(a, again) < 0.05
    assert distance(a, b) > SAME_PERSON
    blank = identity.describe(np.full((120, 120, 3), 128, np.uint8))
    assert blank["descriptor"] is None and distance(a, blank) is None


def test_missing_face_models_say_what_to_install(monkeypatch):
    import importlib.util

    from relight_core.eval.quality import identity as I

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models" else real_find_spec(name, *a))
    with pytest.raises(RuntimeError, match=r"pip install relight\[eval\]"):
        I.model_files()


# -- selection rules ---------------------------------------------------------------------------


def test_held_out_heads_never_seed_training():
    from relight_core.eval.quality.synthetic import HELD_OUT_RANGE, HELD_OUT_SEED, training_seed_collides

    assert HELD_OUT_SEED + HELD_OUT_RANGE < 2**63
    assert not training_seed_collides(config_seeds=range(3), steps=20000, ranks=8)
    # the check can fail: a seed stream that does hit the range is detected
    import relight_core.eval.quality.synthetic as S

    hit = hash((0, 5, 1)) % 2**63
    old = S.HELD_OUT_SEED
    try:
        S.HELD_OUT_SEED = hit
        assert training_seed_collides(config_seeds=[0], steps=10, ranks=2)
    finally:
        S.HELD_OUT_SEED = old


def test_portrait_selection_uses_the_training_split(shared_data):
    from relight_core.eval.quality import portrait_files
    from relight_core.train.split import split_held_out

    folder = shared_data / "portraits"
    chosen = portrait_files(folder, "held-out", None)
    assert chosen == split_held_out(list(folder.glob("*.jpg")))[1] and len(chosen) == 88
    assert len(portrait_files(folder, "all", 5)) == 5


def test_unreadable_portrait_is_reported_not_fatal(tmp_path):
    from relight_core.checkpoints import load_default_model
    from relight_core.eval.quality import TrackerPool
    from relight_core.eval.quality.real import RealSuite

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    model, _ = load_default_model("cpu")
    pool = TrackerPool()
    try:
        row, images = RealSuite({"trained": model}, "cpu", {"top": sh.preset("top").numpy()}, None, pool).run_portrait(bad)
    finally:
        pool.close()
    assert not row["ok"] and images is None
    assert "broken.jpg" in row["reason"] and "convert it" in row["reason"]


# -- end to end ---------------------------------------------------------------------------------


def test_relight_eval_quick_writes_the_report(tmp_path, shared_data):
    from relight_core.cli import main

    out = tmp_path / "eval"
    code = main(["eval", "--quick", "--synthetic", "1", "--real", "1", "--clip-frames", "3", "--out", str(out),
                 "--portraits", str(shared_data / "portraits"), "--clip", str(shared_data / "video" / "tears_of_steel_clip.mp4")])
    assert code == 0
    report = json.loads((out / "report.json").read_text())  # strict JSON (no NaN)
    syn = report["synthetic"]["summary"]
    for method in ("trained", "untrained"):
        for view in ("input_view", "novel_view"):
            cell = syn[method][view]
            assert 0 < cell["psnr_mask"]["mean"] <= M.MAX_PSNR and -1 <= cell["ssim_mask"]["mean"] <= 1
            assert 0 <= cell["normal_deg"]["mean"] <= 180
    assert "psnr_mask" in syn["classical"]["input_view"] and "novel_view" not in syn["classical"]
    real = report["real"]["summary"]
    assert real["portraits"] == 1
    if real["usable"]:
        assert 0 <= real["trained"]["lighting_error"]["all"]["median"] <= 1
    clip = report["clip"]
    assert clip["frames_tracked"] == 3 and clip["pairs"] >= 1
    assert set(clip["warping_error"]) == {"per_frame", "video", "classical", "input"}
    assert report["targets"] and all("passed" in t for t in report["targets"])
    text = (out / "report.md").read_text()
    assert "Synthetic held-out heads" in text and "Targets" in text
    for name in ("synthetic", "real", "clip"):
        assert (out / f"quality_{name}.jpg").stat().st_size > 1000


def test_bad_light_name_is_rejected(tmp_path):
    from relight_core.cli import main

    assert main(["eval", "--synthetic", "0", "--lights", "sunset", "--out", str(tmp_path)]) == 2
