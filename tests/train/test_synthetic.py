"""Synthetic training samples: shapes, ranges, identities between outputs, cameras, lights, sequences."""

from __future__ import annotations

import math

import pytest
import torch

from relight_core import camera, sh
from relight_core.train import albedo as alb
from relight_core.train.synthetic import MV_CAMERAS, REF_CAMERAS, SyntheticHeads, orbit_labels, sample_cameras, sample_lights

RES = 48


@pytest.fixture(scope="module")
def gen() -> SyntheticHeads:
    return SyntheticHeads(RES, supersample=1)


@pytest.fixture(scope="module")
def batch(gen):
    return gen.sample(3, torch.Generator().manual_seed(0))


def test_sample_shapes_and_ranges(gen, batch):
    B = 3
    for key in ("image", "albedo", "normal", "shading", "rgb", "target_shading", "target_rgb",
                "mv_albedo", "mv_normal", "mv_shading", "mv_rgb", "mv_target_rgb"):
        assert batch[key].shape == (B, 3, RES, RES), key
    for key in ("depth", "mask", "mv_depth", "mv_mask"):
        assert batch[key].shape == (B, 1, RES, RES), key
    assert batch["camera"].shape == (B, 25) and batch["mv_camera"].shape == (B, 25)
    assert batch["sh"].shape == (B, 9) and batch["sh_gray"].shape == (B, 9)
    assert batch["light_frame"].shape == (B, 3, 3)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    for key in ("albedo", "mv_albedo"):
        assert batch[key].min() >= 0 and batch[key].max() <= 1
    m = batch["mask"]
    assert 0.15 < m.mean() < 0.95  # a head and shoulders, not an empty frame
    # depth: distance from the camera, around 2.7 on the face
    d = batch["depth"][m > 0.99]
    assert d.min() > 1.8 and d.max() < 3.6
    n = batch["normal"].norm(dim=1, keepdim=True)[m > 0.99]
    assert torch.allclose(n, torch.ones_like(n), atol=1e-4)
    for t in batch.values():
        assert torch.isfinite(t).all()


def test_rgb_is_albedo_times_shading(batch):
    for p in ("", "mv_"):
        assert torch.equal(batch[p + "rgb"], batch[p + "albedo"] * batch[p + "shading"])
        assert torch.equal(batch[p + "target_rgb"], batch[p + "albedo"] * batch[p + "target_shading"])
    assert torch.allclose(batch["image"], alb.to_srgb(batch["rgb"]) * 2 - 1)


def test_shading_follows_the_light_in_the_input_camera_frame(gen, batch):
    """Foreground shading = sh.shading(light_frame @ normal, sh) at fully covered pixels."""
    m = batch["mask"][:, 0] > 0.999
    n = batch["normal"].permute(0, 2, 3, 1)
    nd = torch.einsum("bij,bhwj->bhwi", batch["light_frame"], n)
    for b in range(3):
        ref = sh.shading(nd[b][m[b]], batch["sh"][b])
        got = batch["shading"][b].permute(1, 2, 0)[m[b]][:, 0]
        assert torch.allclose(got, ref, atol=1e-4)
    frame = sh.world_to_dpr(camera.split_label(batch["camera"])[0])
    assert torch.allclose(batch["light_frame"], frame)


def test_deterministic(gen, batch):
    again = gen.sample(3, torch.Generator().manual_seed(0))
    for k in batch:
        assert torch.equal(batch[k], again[k]), k
    other = gen.sample(3, torch.Generator().manual_seed(1))
    assert not torch.equal(batch["image"], other["image"])


def test_orbit_labels_match_camera_module():
    pitch, yaw, roll = torch.tensor([0.1, -0.3]), torch.tensor([0.4, -0.8]), torch.tensor([0.0, 0.05])
    pivot = torch.tensor([[0.0, 0.0, 0.0], [0.02, -0.01, 0.03]])
    lab = orbit_labels(pitch, yaw, torch.tensor([2.7, 2.6]), pivot, torch.tensor([18.837, 19.5]), roll)
    for b in range(2):
        ref = camera.orbit_camera(pitch[b], yaw[b], radius=[2.7, 2.6][b], pivot=pivot[b],
                                  focal=camera.fov_to_focal([18.837, 19.5][b]), roll=roll[b])
        assert torch.allclose(lab[b], ref, atol=2e-6)


def _angles(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = camera.split_label(labels)[0][:, :3, 3]
    yaw = torch.atan2(c[:, 0], c[:, 2])
    pitch = torch.atan2(-c[:, 1], c[:, [0, 2]].norm(dim=-1))
    return pitch, yaw


def test_camera_ranges():
    g = torch.Generator().manual_seed(0)
    ref = sample_cameras(2000, REF_CAMERAS, g)
    mv = sample_cameras(2000, MV_CAMERAS, g)
    p, y = _angles(mv)
    assert p.abs().max() <= math.radians(26) + 1e-3 and y.abs().max() <= math.radians(36) + 1e-3
    assert y.abs().max() > math.radians(33)
    c = camera.split_label(mv)[0][:, :3, 3]
    assert torch.allclose(c.norm(dim=-1), torch.full((2000,), 2.7), atol=1e-4)
    assert torch.allclose(mv[:, 16], torch.full((2000,), camera.FOCAL_EG3D), atol=1e-5)
    p, y = _angles(ref)
    assert y.abs().max() > math.radians(44) and y.abs().max() < math.radians(52)
    r = camera.split_label(ref)[0][:, :3, 3].norm(dim=-1)
    assert abs(r.std().item() - 0.1) < 0.01 and abs(r.mean().item() - 2.7) < 0.01
    f = ref[:, 16]
    assert f.std() > 0.1  # fov jitter


def test_lights():
    g = torch.Generator().manual_seed(0)
    grey = sample_lights(500, g)
    assert grey.shape == (500, 9)
    assert grey[:, 0].min() >= 0.35 - 1e-4 and grey[:, 0].max() <= 1.1 + 1e-4
    dirs = torch.randn(400, 3, generator=g)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    shade = grey @ sh.shading_basis(dirs).T  # [500, 400]
    assert shade.min() > -0.1 * grey[:, 0].max()  # physically plausible (SH ringing aside)
    col = sample_lights(200, g, coloured=0.5)
    assert col.shape == (200, 9, 3)
    spread = (col[:, 0, :] / col[:, 0, :].mean(-1, keepdim=True) - 1).abs().amax(-1)
    assert (spread > 0.05).float().mean() > 0.2  # some lights are coloured
    assert (spread < 1e-5).float().mean() > 0.2  # some are white


def test_sequence_is_smooth(gen):
    T = 12
    seq = gen.sequence(T, torch.Generator().manual_seed(0))
    assert seq["image"].shape == (T, 3, RES, RES) and seq["camera"].shape == (T, 25)
    c = camera.split_label(seq["camera"])[0][:, :3, 3]
    assert (c[1:] - c[:-1]).norm(dim=-1).max() < 0.05  # the camera moves a little per frame
    assert (seq["sh"][1:] - seq["sh"][:-1]).abs().max() < 0.05
    step = (seq["image"][1:] - seq["image"][:-1]).abs().mean(dim=(1, 2, 3))
    other = gen.sample(2, torch.Generator().manual_seed(5))["image"]
    between = (other[0] - other[1]).abs().mean()
    assert step.max() < 0.3 * between  # consecutive frames are much closer than two people
    assert torch.equal(seq["identity"][0], seq["identity"][-1])
    assert torch.equal(seq["rgb"], seq["albedo"] * seq["shading"])


def test_skin_tones_are_realistic():
    tone = torch.linspace(0, 1, 5)
    rgb = alb.skin_rgb(alb.melanin_from_tone(tone), torch.full((5,), 0.012), torch.full((5,), 0.8))
    assert rgb[0, 0] > 0.45 and rgb[-1, 0] < 0.12  # fair .. very dark (red channel)
    assert (rgb[:, 0] > rgb[:, 1]).all() and (rgb[:, 1] > rgb[:, 2]).all()  # skin is red > green > blue
    assert (rgb[1:, 0] < rgb[:-1, 0]).all()
    assert rgb.min() > 0.02 and rgb.max() < 0.65


def test_background_kinds():
    bg = alb.sample_background(6, 16, 20, torch.Generator().manual_seed(0))
    assert bg.shape == (6, 16, 20, 3) and bg.min() >= 0 and bg.max() <= 1


def test_setup_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    a = torch.rand(3)
    torch.manual_seed(5)
    gen = SyntheticHeads(16, supersample=1)
    gen.sample(1, torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(3), a)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    from relight_core.train import raster
    from relight_core.train.heads import HeadModel

    m = HeadModel.load()
    v = m.mesh(m.sample_identity(4, torch.Generator().manual_seed(0)))
    cams = camera.orbit_camera(torch.zeros(4), torch.linspace(-0.6, 0.6, 4))
    a = raster.rasterize(v, m.faces, cams, 96, 96)
    b = raster.rasterize(v.cuda(), m.faces.cuda(), cams.cuda(), 96, 96)
    same = (a.face_index == b.face_index.cpu()).float().mean()
    assert same > 0.999
    gen = SyntheticHeads(64, "cuda")
    s1 = gen.sample(2, torch.Generator(device="cuda").manual_seed(0))
    s2 = gen.sample(2, torch.Generator(device="cuda").manual_seed(0))
    for k in s1:
        assert s1[k].is_cuda and torch.equal(s1[k], s2[k]), k
    assert torch.equal(s1["rgb"], s1["albedo"] * s1["shading"])
