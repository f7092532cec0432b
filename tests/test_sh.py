"""SH9 lighting in DPR's convention (relight_core.sh)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from relight_core import sh

F64 = torch.float64


def _sphere_quadrature(n_theta: int = 24, n_phi: int = 48):
    """Gauss-Legendre in cos(theta) x uniform phi: exact for polynomials of degree < 2 n_theta."""
    z, wz = np.polynomial.legendre.leggauss(n_theta)
    phi = (np.arange(n_phi) + 0.5) * 2 * np.pi / n_phi
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    r = np.sqrt(1 - zz**2)
    dirs = np.stack((r * np.cos(pp), r * np.sin(pp), zz), -1).reshape(-1, 3)
    w = (wz[:, None] * np.full(n_phi, 2 * np.pi / n_phi)[None, :]).reshape(-1)
    return torch.from_numpy(dirs), torch.from_numpy(w)


def _hemisphere_quadrature(normal: np.ndarray, n_theta: int = 8, n_phi: int = 16):
    """Quadrature of the hemisphere around `normal` (exact for low-degree polynomials there)."""
    t, wt = np.polynomial.legendre.leggauss(n_theta)
    z = 0.5 * (t + 1)  # cos of the angle to the normal, in (0, 1)
    wz = 0.5 * wt
    phi = (np.arange(n_phi) + 0.5) * 2 * np.pi / n_phi
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    r = np.sqrt(1 - zz**2)
    local = np.stack((r * np.cos(pp), r * np.sin(pp), zz), -1).reshape(-1, 3)
    w = (wz[:, None] * np.full(n_phi, 2 * np.pi / n_phi)[None, :]).reshape(-1)
    n = normal / np.linalg.norm(normal)
    a = np.array([1.0, 0, 0]) if abs(n[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = np.cross(n, a)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    frame = np.stack((e1, e2, n), axis=1)
    return torch.from_numpy(local @ frame.T), torch.from_numpy(w), torch.from_numpy(local[:, 2])


def _real_sh_reference(dirs: torch.Tensor) -> torch.Tensor:
    """Independent real SH (no Condon-Shortley phase) from associated Legendre polynomials, ACN order."""
    x, y, z = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    theta = torch.arccos(z.clamp(-1, 1))
    phi = torch.atan2(y, x)
    ct, st = torch.cos(theta), torch.sin(theta)
    P = {(0, 0): torch.ones_like(ct), (1, 0): ct, (1, 1): st, (2, 0): 0.5 * (3 * ct**2 - 1), (2, 1): 3 * st * ct, (2, 2): 3 * st**2}
    out = []
    for l in range(3):
        for m in range(-l, l + 1):
            am = abs(m)
            N = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - am) / math.factorial(l + am))
            if m == 0:
                out.append(N * P[(l, 0)])
            elif m > 0:
                out.append(math.sqrt(2) * N * P[(l, am)] * torch.cos(am * phi))
            else:
                out.append(math.sqrt(2) * N * P[(l, am)] * torch.sin(am * phi))
    return torch.stack(out, -1)


def _random_dirs(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=g, dtype=F64)
    return d / d.norm(dim=-1, keepdim=True)


def _random_rotation(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=F64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


# ------------------------------------------------------------------------------------------
# basis and constants
# ------------------------------------------------------------------------------------------


def test_dpr_constants_table():
    expected = [0.282095, 0.488603, 0.488603, 0.488603, 1.092548, 1.092548, 0.315392, 1.092548, 0.546274]
    assert np.allclose(sh.SH_CONSTANTS, expected, atol=1e-6)
    assert np.allclose(sh.LAMBERT, [math.pi] + [2 * math.pi / 3] * 3 + [math.pi / 4] * 5)


def test_basis_is_real_sh_without_cs_phase():
    d = _random_dirs(200)
    assert torch.allclose(sh.sh_basis(d), _real_sh_reference(d), atol=1e-12)


def test_basis_orthonormal_by_quadrature():
    dirs, w = _sphere_quadrature()
    Y = sh.sh_basis(dirs)
    gram = (Y * w[:, None]).T @ Y
    assert torch.allclose(gram, torch.eye(9, dtype=F64), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lambertian_factors_by_quadrature(seed):
    """Funk-Hecke: integral of max(0, n.w) Y_i(w) dw = A_l Y_i(n), i.e. DPR's shading basis."""
    for n in _random_dirs(4, seed):
        dirs, w, cos = _hemisphere_quadrature(n.numpy())
        integral = ((cos * w)[:, None] * sh.sh_basis(dirs)).sum(0)
        assert torch.allclose(integral, sh.shading_basis(n), atol=1e-12)


def test_white_world_shades_to_one():
    c = sh.ambient(1.0)
    assert abs(c[0].item() - 2 / math.sqrt(math.pi)) < 1e-6
    assert torch.allclose(sh.shading(_random_dirs(50), c), torch.ones(50, dtype=F64), atol=1e-6)
    assert torch.allclose(sh.irradiance(_random_dirs(5), sh.ambient(2.0, dtype=F64)), torch.full((5,), 2 * math.pi, dtype=F64))


# ------------------------------------------------------------------------------------------
# directional lights
# ------------------------------------------------------------------------------------------


def test_directional_light_error_bound():
    E = 2.5
    l = torch.tensor([0.3, -0.8, 0.5], dtype=F64)
    l = l / l.norm()
    c = sh.directional(l, E, dtype=F64)
    n = _random_dirs(20000, 3)
    exact = E * (n @ l).clamp_min(0) / math.pi
    err = sh.shading(n, c) - exact
    bound = sh.DIRECTIONAL_MAX_ERROR * E / math.pi
    assert err.abs().max().item() <= bound * (1 + 1e-9)
    # the bound is attained at the terminator, and the peak is 17/16
    ortho = torch.linalg.cross(l, torch.tensor([0.0, 0.0, 1.0], dtype=F64))
    ortho = ortho / ortho.norm()
    assert abs((sh.shading(ortho, c) - bound).item()) < 1e-12
    assert abs(sh.shading(l, c).item() - 17 / 16 * E / math.pi) < 1e-12
    assert abs(sh.shading(-l, c).item() - 1 / 16 * E / math.pi) < 1e-12


def test_directional_cap_window_matches_integrated_cap():
    """A sun of angular diameter `angle` equals the average of point lights over its cap."""
    angle = 0.6
    axis = torch.tensor([0.0, -1.0, 0.0], dtype=F64)
    dirs, w, cos = _hemisphere_quadrature(axis.numpy(), n_theta=48, n_phi=96)
    inside = cos >= math.cos(angle / 2)
    avg = (sh.sh_basis(dirs[inside]) * w[inside, None]).sum(0) / w[inside].sum()
    c = sh.directional(axis, 1.0, angle=angle, dtype=F64)
    assert torch.allclose(c, avg / math.pi, atol=2e-3)


def test_coloured_light_shades_per_channel():
    d = torch.tensor([-0.5, -0.7, 0.3], dtype=F64)
    col = torch.tensor([1.0, 0.5, 0.2], dtype=F64)
    cc = sh.directional(d, 3.0, col, dtype=F64) + sh.ambient(0.2, (0.1, 0.2, 0.3), dtype=F64)
    assert cc.shape == (9, 3)
    n = _random_dirs(100, 5).reshape(10, 10, 3)
    s = sh.shading(n, cc)
    assert s.shape == (10, 10, 3)
    for k in range(3):
        assert torch.allclose(s[..., k], sh.shading(n, cc[:, k]))
    gray = sh.to_gray(cc)
    assert torch.allclose(sh.shading(n, gray), (s * torch.tensor(sh.LUMA_REC709, dtype=F64)).sum(-1))


def test_shading_broadcast_batch_of_lights():
    n = _random_dirs(12).reshape(1, 3, 4, 3).expand(2, 3, 4, 3)
    c = torch.stack((sh.preset("key_left"), sh.preset("rim"))).reshape(2, 1, 1, 9)
    s = sh.shading(n, c)
    assert s.shape == (2, 3, 4)
    assert torch.allclose(s[1], sh.shading(n[1], sh.preset("rim")))


# ------------------------------------------------------------------------------------------
# rotation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_rotating_light_equals_rotating_normals(seed):
    R = _random_rotation(seed)
    g = torch.Generator().manual_seed(100 + seed)
    c = torch.randn(9, generator=g, dtype=F64)
    n = _random_dirs(500, seed)
    rotated = sh.rotate(c, R)
    assert torch.allclose(sh.shading(n @ R.T, rotated), sh.shading(n, c), atol=1e-12)
    cc = torch.randn(9, 3, generator=g, dtype=F64)
    assert torch.allclose(sh.shading(n @ R.T, sh.rotate(cc, R)), sh.shading(n, cc), atol=1e-12)
    # float32 precision as documented
    r32 = sh.rotate(c.float(), R.float())
    assert (r32.double() - rotated).abs().max() < 1e-6


def test_rotation_properties():
    R1, R2 = _random_rotation(7), _random_rotation(8)
    M1, M2 = sh.sh_rotation(R1), sh.sh_rotation(R2)
    assert torch.allclose(sh.sh_rotation(R1 @ R2), M1 @ M2, atol=1e-12)
    assert torch.allclose(M1 @ M1.T, torch.eye(9, dtype=F64), atol=1e-12)  # orthonormal basis -> orthogonal
    batch = sh.sh_rotation(torch.stack((R1, R2)))
    assert torch.allclose(batch[1], M2)
    # a directional light rotated is the light from the rotated direction
    l = torch.tensor([0.2, -0.9, 0.4], dtype=F64)
    assert torch.allclose(sh.rotate(sh.directional(l, 2.0, dtype=F64), R1), sh.directional(R1 @ l, 2.0, dtype=F64), atol=1e-12)
    # mirror x: key_left <-> key_right
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=F64))
    assert torch.allclose(sh.rotate(sh.preset("key_left").double(), mirror), sh.preset("key_right").double(), atol=1e-6)
    with pytest.raises(ValueError, match="R"):
        sh.sh_rotation(torch.eye(3) * 2)


def test_world_to_dpr_frontal_camera():
    from relight_core import camera

    c2w, _ = camera.split_label(camera.orbit_camera(0.0, 0.0, dtype=F64))
    M = sh.world_to_dpr(c2w)
    # head space seen frontally: X = x, Y = -z, Z = y
    assert torch.allclose(M, torch.tensor([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]], dtype=F64), atol=1e-12)
    # a normal facing the camera is (0, -1, 0) in DPR
    assert torch.allclose(M @ torch.tensor([0.0, 0.0, 1.0], dtype=F64), torch.tensor([0.0, -1.0, 0.0], dtype=F64), atol=1e-12)
    assert torch.allclose(torch.tensor(sh.OPENCV_TO_DPR, dtype=F64) @ torch.tensor([0.0, -1.0, 0.0], dtype=F64), torch.tensor([0.0, 0.0, 1.0], dtype=F64))
    for m in (sh.OPENCV_TO_DPR, sh.BLENDER_CAMERA_TO_DPR):
        assert abs(np.linalg.det(np.array(m)) - 1.0) < 1e-12


# ------------------------------------------------------------------------------------------
# environment maps
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 8), (33, 70)])
def test_envmap_constant(shape):
    L = 0.7
    c = sh.project_envmap(torch.full(shape, L, dtype=F64))
    expected = torch.zeros(9, dtype=F64)
    expected[0] = 2 * L / math.sqrt(math.pi)
    assert torch.allclose(c, expected, atol=1e-13)
    cc = sh.project_envmap(np.full(shape + (3,), L, dtype=np.float32))
    assert cc.shape == (9, 3) and cc.dtype == torch.float32
    assert torch.allclose(cc[:, 1], expected.float(), atol=1e-6)


def test_envmap_directions_layout():
    d = sh.envmap_directions(64, 128)
    assert torch.allclose(d[32, 64], torch.tensor([1.0, 0.0, 0.0], dtype=F64), atol=0.05)  # centre = +X
    assert torch.allclose(d[32, 32], torch.tensor([0.0, 1.0, 0.0], dtype=F64), atol=0.05)  # u = 0.25 = +Y
    assert d[0, :, 2].min() > 0.99  # top row = +Z


def test_envmap_single_texel():
    H, W, r, col, L = 16, 32, 5, 9, 40.0
    env = torch.zeros(H, W, dtype=F64)
    env[r, col] = L
    c = sh.project_envmap(env)
    # independent reference: fine midpoint quadrature over the texel's solid angle
    k = 200
    th = math.pi * (r + (torch.arange(k, dtype=F64) + 0.5) / k) / H
    ph = 2 * math.pi * (0.5 - (col + (torch.arange(k, dtype=F64) + 0.5) / k) / W)
    tt, pp = torch.meshgrid(th, ph, indexing="ij")
    dirs = torch.stack((torch.sin(tt) * torch.cos(pp), torch.sin(tt) * torch.sin(pp), torch.cos(tt)), -1).reshape(-1, 3)
    dw = (torch.sin(tt) * (math.pi / H / k) * (2 * math.pi / W / k)).reshape(-1)
    ref = L * (sh.sh_basis(dirs) * dw[:, None]).sum(0) / math.pi
    assert torch.allclose(c, ref, rtol=1e-5, atol=1e-9)
    # and it is (to the texel's small size) a directional light through the texel centre
    omega = (2 * math.pi / W) * (math.cos(math.pi * r / H) - math.cos(math.pi * (r + 1) / H))
    centre = sh.envmap_directions(H, W)[r, col]
    approx = sh.directional(centre, L * omega, dtype=F64)
    assert torch.allclose(c, approx, atol=0.02 * approx.abs().max().item())


def test_envmap_rotation_argument():
    g = torch.Generator().manual_seed(3)
    env = torch.rand(12, 24, generator=g, dtype=F64)
    R = _random_rotation(4)
    assert torch.allclose(sh.project_envmap(env, R), sh.rotate(sh.project_envmap(env), R), atol=1e-12)


def test_envmap_linear_sky_matches_analytic():
    # radiance 1 + z: c_0 = 2 sqrt(pi)/pi, c_z = (4 pi / 3) * Y1const / pi
    H, W = 128, 256
    d = sh.envmap_directions(H, W)
    c = sh.project_envmap(1.0 + d[..., 2])
    assert abs(c[0].item() - 2 * math.sqrt(math.pi) / math.pi) < 1e-4
    assert abs(c[2].item() - 4 * math.pi / 3 * sh.SH_CONSTANTS[1] / math.pi) < 1e-4
    assert c[[1, 3, 4, 5, 6, 7, 8]].abs().max() < 1e-4


# ------------------------------------------------------------------------------------------
# presets, ball, validation
# ------------------------------------------------------------------------------------------


def test_presets():
    names = {"key_left", "key_right", "top", "rim", "under", "flat", "gel_blue_orange"}
    assert names <= set(sh.PRESETS)
    n, mask = sh.ball_normals(64)
    for name in names:
        c = sh.preset(name)
        assert c.dtype == torch.float32
        assert c.shape == ((9, 3) if name == "gel_blue_orange" else (9,))
        dc = c[0]
        assert bool(((dc >= 0.35) & (dc <= 1.1)).all()), name
        s = sh.shading(n[mask], c)
        assert s.min() > 0.0, name  # no negative light on the visible hemisphere
    # key_left is brighter on the image left
    s = sh.shading(torch.tensor([[-1.0, 0, 0], [1.0, 0, 0]]), sh.preset("key_left"))
    assert s[0] > s[1]
    s = sh.shading(torch.tensor([[0, 0, 1.0], [0, 0, -1.0]]), sh.preset("top"))
    assert s[0] > s[1]
    s = sh.shading(torch.tensor([[0, 0, 1.0], [0, 0, -1.0]]), sh.preset("under"))
    assert s[1] > s[0]
    assert torch.allclose(sh.shading(n, sh.preset("flat")), torch.full(n.shape[:2], 0.8, dtype=F64), atol=1e-6)


def test_rotating_light():
    t = torch.linspace(0, 1, 5, dtype=F64)
    c = sh.rotating(t)
    assert c.shape == (5, 9) and c.dtype == F64
    assert torch.allclose(c[0], c[-1], atol=1e-12)
    right = sh.shading(torch.tensor([1.0, 0, 0], dtype=F64), c[1]) - sh.shading(torch.tensor([-1.0, 0, 0], dtype=F64), c[1])
    assert right > 0  # t = 0.25 lights from image-right
    front = sh.shading(torch.tensor([0.0, -1.0, 0], dtype=F64), c[0]) - sh.shading(torch.tensor([0.0, 1.0, 0], dtype=F64), c[0])
    assert front > 0
    assert 0.35 <= sh.rotating(0.3)[0].item() <= 1.1


def test_lighting_ball():
    img = sh.lighting_ball(sh.preset("key_left"), 65)
    assert img.shape == (65, 65, 3) and img.dtype == torch.float32
    assert img[0, 0].abs().max() == 0  # outside the disk
    # the centre pixel faces the viewer: normal (0, -1, 0)
    assert abs(img[32, 32, 0].item() - sh.shading(torch.tensor([0.0, -1.0, 0.0]), sh.preset("key_left")).item()) < 1e-5
    assert img[32, 5, 0] > img[32, 59, 0]  # lit from the left
    u8 = sh.lighting_ball(sh.preset("gel_blue_orange"), 32, normalize=True, to_uint8=True)
    assert u8.dtype == np.uint8 and u8.shape == (32, 32, 3)
    norm = sh.lighting_ball(sh.preset("rim"), 32, normalize=True)
    _, mask = sh.ball_normals(32)
    assert abs(norm[mask].min().item()) < 1e-6 and abs(norm[mask].max().item() - 1) < 1e-6


def test_validation_messages():
    with pytest.raises(ValueError, match="coeffs"):
        sh.shading(torch.zeros(3), torch.zeros(8))
    with pytest.raises(ValueError, match="normals"):
        sh.shading(torch.zeros(4), torch.zeros(9))
    with pytest.raises(ValueError, match="direction"):
        sh.directional((0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="env"):
        sh.project_envmap(torch.zeros(3, 4, 5, 6))
    with pytest.raises(ValueError, match="name"):
        sh.preset("nope")
    with pytest.raises(ValueError, match="irradiance"):
        sh.directional((0.0, -1.0, 0.0), float("inf"))
    with pytest.raises(TypeError, match="normals"):
        sh.shading(torch.zeros(3, dtype=torch.float16), torch.zeros(9))


def test_camera_and_head_frames_describe_the_same_light():
    """A light given in a camera's DPR frame shades head-space normals identically after
    conversion to the head DPR frame, and the frontal EG3D camera's frame is the head frame."""
    from relight_core.camera import orbit_camera, split_label
    from relight_core.sh import HEAD_TO_DPR, camera_to_head, head_to_camera, preset, shading, world_to_dpr

    cam2world = split_label(orbit_camera(torch.tensor(0.2), torch.tensor(-0.6)))[0].double()
    light = preset("key_left").double()
    normals = torch.nn.functional.normalize(torch.randn(200, 3, dtype=torch.float64), dim=-1)
    in_camera = shading(normals @ world_to_dpr(cam2world).T, light)
    in_head = shading(normals @ torch.tensor(HEAD_TO_DPR, dtype=torch.float64).T, camera_to_head(light, cam2world))
    torch.testing.assert_close(in_head, in_camera)
    torch.testing.assert_close(head_to_camera(camera_to_head(light, cam2world), cam2world), light)
    frontal = split_label(orbit_camera(torch.tensor(0.0), torch.tensor(0.0)))[0].double()
    torch.testing.assert_close(camera_to_head(light, frontal), light, atol=1e-6, rtol=0)


class TestShToEnvmap:
    def test_projects_back_onto_the_coefficients(self):
        light = sh.preset("gel_blue_orange").double()  # coloured [9, 3]
        env = sh.sh_to_envmap(light, 32, 64)
        assert env.shape == (32, 64, 3) and env.dtype == F64
        torch.testing.assert_close(sh.project_envmap(env), light, atol=2e-3 * light.abs().max().item(), rtol=0)
        grey = sh.to_gray(light)
        assert sh.sh_to_envmap(grey, 16, 32).shape == (16, 32)

    def test_known_values_and_layout(self):
        # uniform white world of radiance 2: c_0 = 2 * 2 / sqrt(pi), everything else 0
        env = sh.sh_to_envmap(sh.ambient(2.0, dtype=F64), 8, 16)
        torch.testing.assert_close(env, torch.full((8, 16), 2.0, dtype=F64))
        # a light from +Z (the top rows) is brightest at the top row, darkest at the bottom
        top = sh.sh_to_envmap(sh.directional((0.0, 0.0, 1.0), 1.0, dtype=F64), 16, 32)
        assert top[0].mean() > 0.3 > top[-1].mean()
        # from +X: brightest in the image centre column (Blender's Environment Texture layout)
        side = sh.sh_to_envmap(sh.directional((1.0, 0.0, 0.0), 1.0, dtype=F64), 16, 32)
        assert int(side[8].argmax()) in (15, 16)

    def test_clamp_removes_negative_ringing(self):
        light = sh.directional((0.0, 0.0, 1.0), 5.0, dtype=F64)
        raw = sh.sh_to_envmap(light, 16, 32)
        assert raw.min() < 0  # the order-2 reconstruction rings below zero
        clamped = sh.sh_to_envmap(light, 16, 32, clamp=True)
        assert clamped.min() == 0 and torch.equal(clamped[raw > 0], raw[raw > 0])

    def test_bad_input(self):
        with pytest.raises(ValueError, match="coeffs"):
            sh.sh_to_envmap(torch.zeros(4), 8, 16)
        with pytest.raises(ValueError, match="one light"):
            sh.sh_to_envmap(torch.zeros(2, 9), 8, 16)
        with pytest.raises(ValueError, match="height"):
            sh.sh_to_envmap(torch.zeros(9), 0, 16)
