"""EG3D camera labels, intrinsics and homographies (relight_core.camera)."""

from __future__ import annotations

import math

import pytest
import torch

from relight_core import camera as C


# ------------------------------------------------------------------------------------------
# conformance: the released args2cam
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(conformance_dir):
    from safetensors.torch import load_file

    return load_file(str(conformance_dir / "inputs.safetensors"))


def test_focal_matches_conformance(inputs):
    K = inputs["input.cam"][0, 16:].reshape(3, 3)
    assert abs(C.FOCAL_EG3D - 4.2634) < 1e-4
    assert abs(K[0, 0].item() - C.FOCAL_EG3D) < 1e-6
    assert torch.equal(C.intrinsics().reshape(9), K.reshape(9))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_orbit_cams_reproduced(inputs, dtype):
    py = inputs["cams.orbit_pitch_yaw"]
    ref = inputs["cams.orbit"].double()
    got = C.orbit_camera(py[:, 0], py[:, 1], dtype=dtype)
    assert got.dtype == dtype and got.shape == (5, 25)
    err = (got.double() - ref).abs().max().item()
    print(f"cams.orbit max abs error ({dtype}): {err:.3g}")
    assert err < 1e-6


def test_input_and_novel_cams(inputs):
    for name, (p, y) in (("input.cam", (0.0, 0.0)), ("novel.cam", (0.15, 0.3))):
        got = C.orbit_camera(p, y)
        assert got.shape == (25,)
        assert (got - inputs[name][0]).abs().max().item() < 1e-6, name


def test_conditioning_cam(inputs):
    # pivot (0, 0, 0.2): EG3D keeps the camera on the origin sphere and only aims at the pivot
    got = C.orbit_camera(0.0, 0.0, pivot=(0.0, 0.0, 0.2))
    assert (got - inputs["cams.conditioning"][0]).abs().max().item() < 1e-6


def test_video_cams(conformance_dir):
    from safetensors.torch import load_file

    v = load_file(str(conformance_dir / "video.safetensors"))
    py = v["video.pitch_yaw"]
    got = C.orbit_camera(py[:, 0], py[:, 1], dtype=torch.float32)
    err = (got - v["video.cams"]).abs().max().item()
    print(f"video.cams max abs error: {err:.3g}")
    assert err < 1e-6
    # the documented formula for the frames
    k = torch.arange(7, dtype=torch.float64)
    assert torch.allclose(py[:, 0], 0.02 * (k - 3)) and torch.allclose(py[:, 1], -0.1 + 0.03 * k)


# ------------------------------------------------------------------------------------------
# conventions (no shared data needed)
# ------------------------------------------------------------------------------------------


def test_frontal_camera_convention():
    c2w, K = C.split_label(C.orbit_camera(0.0, 0.0, dtype=torch.float64))
    assert torch.allclose(c2w[:3, 3], torch.tensor([0.0, 0.0, 2.7], dtype=torch.float64), atol=1e-12)
    R = c2w[:3, :3]
    assert torch.allclose(R[:, 2], torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64), atol=1e-12)  # looks at -z
    assert torch.allclose(R[:, 1], torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64), atol=1e-12)  # +y down
    assert torch.allclose(R[:, 0], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-12)  # +x right
    assert torch.allclose(K, C.intrinsics(dtype=torch.float64))
    assert abs(torch.linalg.det(R).item() - 1.0) < 1e-12
    # the origin projects to the image centre; world +y (up) projects above it
    uv = C.project_points(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]], dtype=torch.float64), c2w, K)
    assert torch.allclose(uv[0], torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert uv[1, 1] < 0.5 and uv[2, 0] > 0.5


def test_orbit_signs_and_radius():
    c2w, _ = C.split_label(C.orbit_camera(torch.tensor([0.2, 0.0]), torch.tensor([0.0, 0.3]), dtype=torch.float64))
    assert c2w[0, 1, 3] < 0  # positive pitch -> camera below
    assert c2w[1, 0, 3] > 0  # positive yaw -> camera at +x
    assert torch.allclose(torch.linalg.norm(c2w[:, :3, 3], dim=-1), torch.full((2,), 2.7, dtype=torch.float64))
    # the camera looks at the pivot
    for i in range(2):
        fwd = c2w[i, :3, 2]
        assert torch.allclose(fwd, -c2w[i, :3, 3] / 2.7, atol=1e-12)


def test_orbit_broadcast_and_roll():
    lab = C.orbit_camera(torch.zeros(2, 3), torch.linspace(-0.3, 0.3, 3))
    assert lab.shape == (2, 3, 25) and lab.dtype == torch.float32
    rolled, _ = C.split_label(C.orbit_camera(0.0, 0.0, roll=0.1, dtype=torch.float64))
    plain, _ = C.split_label(C.orbit_camera(0.0, 0.0, dtype=torch.float64))
    rz = torch.tensor(
        [[math.cos(0.1), -math.sin(0.1), 0, 0], [math.sin(0.1), math.cos(0.1), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        dtype=torch.float64,
    )
    assert torch.allclose(rolled, rz @ plain, atol=1e-12)


def test_look_at_matches_orbit():
    c2w, _ = C.split_label(C.orbit_camera(0.1, -0.2, dtype=torch.float64))
    la = C.look_at(c2w[:3, 3], (0.0, 0.0, 0.0), dtype=torch.float64)
    assert torch.allclose(la, c2w, atol=1e-12)


def test_orbit_demo():
    labs = C.orbit(8)
    assert labs.shape == (8, 25)
    pitch, yaw = C.orbit_angles(8)
    assert pitch[0] == 0 and yaw[0] == 0
    assert yaw.abs().max() <= 0.35 + 1e-6 and pitch.abs().max() <= 0.075 + 1e-6
    assert torch.allclose(labs, C.orbit_camera(pitch, yaw))


def test_label_roundtrip():
    lab = C.orbit_camera(torch.randn(4, dtype=torch.float64) * 0.2, torch.randn(4, dtype=torch.float64) * 0.3)
    c2w, K = C.split_label(lab)
    assert c2w.shape == (4, 4, 4) and K.shape == (4, 3, 3)
    assert torch.equal(C.camera_label(c2w, K), lab)


def test_intrinsics_pixel_conversion():
    K = C.intrinsics(torch.tensor([4.0, 2.0], dtype=torch.float64), torch.tensor([[0.5, 0.5], [0.4, 0.6]], dtype=torch.float64))
    Kp = C.normalized_to_pixel(K, 640, 480)
    assert torch.allclose(Kp[0], torch.tensor([[2560.0, 0, 319.5], [0, 1920.0, 239.5], [0, 0, 1]], dtype=torch.float64))
    assert torch.allclose(C.pixel_to_normalized(Kp, 640, 480), K)
    Kc = C.normalized_to_pixel(K, 640, 480, half_pixel=False)
    assert torch.allclose(Kc[0, :2, 2], torch.tensor([320.0, 240.0], dtype=torch.float64))
    # EG3D ray of pixel (j, i) goes through u = (j + 0.5) / W: pixel intrinsics must project it to (j, i)
    c2w, Kn = C.split_label(C.orbit_camera(0.0, 0.0, dtype=torch.float64))
    j, i, W, H = 10.0, 20.0, 64, 64
    d_cam = torch.tensor([((j + 0.5) / W - 0.5) / Kn[0, 0], ((i + 0.5) / H - 0.5) / Kn[1, 1], 1.0], dtype=torch.float64)
    p = c2w[:3, 3] + 2.0 * (c2w[:3, :3] @ d_cam)
    uv = C.project_points(p, c2w, C.normalized_to_pixel(Kn, W, H))
    assert torch.allclose(uv, torch.tensor([j, i], dtype=torch.float64), atol=1e-9)


def test_fov_helpers():
    assert C.fov_to_focal(C.FOV_EG3D_DEG) == C.FOCAL_EG3D
    f = 1.0 / (2.0 * math.tan(math.radians(30.0) / 2))
    assert abs(C.focal_to_fov(f) - 30.0) < 1e-9


def _random_rotation(g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def test_homography_shared_centre():
    g = torch.Generator().manual_seed(0)
    centre = torch.tensor([0.3, -0.2, 2.5], dtype=torch.float64)
    for _ in range(5):
        c2w_a = torch.eye(4, dtype=torch.float64)
        c2w_b = torch.eye(4, dtype=torch.float64)
        c2w_a[:3, :3] = _random_rotation(g)
        c2w_b[:3, :3] = c2w_a[:3, :3] @ C.look_at(torch.tensor([0.0, 0, 0], dtype=torch.float64), torch.tensor([0.2, -0.1, 1.0], dtype=torch.float64), torch.tensor([0.1, -1.0, 0.0], dtype=torch.float64))[:3, :3]
        c2w_a[:3, 3] = centre
        c2w_b[:3, 3] = centre
        Ka = C.normalized_to_pixel(C.intrinsics(3.0, (0.45, 0.55), dtype=torch.float64), 320, 240)
        Kb = C.normalized_to_pixel(C.intrinsics(5.0, (0.5, 0.5), dtype=torch.float64), 512, 512)
        # points in front of camera a, at various depths
        d = torch.randn(20, 3, generator=g, dtype=torch.float64) * 0.05
        d[:, 2] = 1.0
        pts = centre + (torch.rand(20, 1, generator=g, dtype=torch.float64) * 5 + 0.5) * (d @ c2w_a[:3, :3].T)
        ua = C.project_points(pts, c2w_a, Ka)
        ub = C.project_points(pts, c2w_b, Kb)
        H = C.homography(Ka, c2w_a[:3, :3].T, Kb, c2w_b[:3, :3].T)
        assert torch.allclose(C.apply_homography(H, ua), ub, atol=1e-8)
        H2 = C.homography_from_cam2world(c2w_a, Ka, c2w_b, Kb)
        assert torch.allclose(H2, H)


def test_homography_rejects_different_centres():
    a = C.split_label(C.orbit_camera(0.0, 0.0))[0]
    b = C.split_label(C.orbit_camera(0.0, 0.2))[0]
    K = C.intrinsics()
    with pytest.raises(ValueError, match="cam2world_src, cam2world_dst"):
        C.homography_from_cam2world(a, K, b, K)


def test_centred_camera_warps_exactly():
    # a "Blender" camera off to the side looking past the head; the crop camera shares its centre
    target = C.look_at(torch.tensor([1.0, 0.4, 3.0], dtype=torch.float64), torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64))
    crop_lab = C.centred_camera(target)
    c2w_c, K_c = C.split_label(crop_lab)
    assert torch.allclose(c2w_c[:3, 3], target[:3, 3])
    # head pivot projects to the crop centre
    uv = C.project_points(torch.zeros(3, dtype=torch.float64), c2w_c, K_c)
    assert torch.allclose(uv, torch.tensor([0.5, 0.5], dtype=torch.float64), atol=1e-12)
    Kt = C.normalized_to_pixel(C.intrinsics(2.0, dtype=torch.float64), 1920, 1080)
    Kc = C.normalized_to_pixel(K_c, 512, 512)
    H = C.homography_from_cam2world(c2w_c, Kc, target, Kt)
    pts = torch.tensor([[0.1, 0.2, -0.1], [-0.3, 0.1, 0.2], [0.0, -0.4, 0.4]], dtype=torch.float64)
    assert torch.allclose(C.apply_homography(H, C.project_points(pts, c2w_c, Kc)), C.project_points(pts, target, Kt), atol=1e-8)


def test_validation_messages():
    with pytest.raises(ValueError, match="label"):
        C.split_label(torch.zeros(24))
    with pytest.raises(ValueError, match="radius"):
        C.orbit_camera(0.0, 0.0, radius=-1.0)
    with pytest.raises(ValueError, match="pitch"):
        C.orbit_camera(float("nan"), 0.0)
    with pytest.raises(TypeError, match="points"):
        C.project_points(torch.zeros(3, dtype=torch.float16), torch.eye(4), torch.eye(3))
    with pytest.raises(ValueError, match="up"):
        C.look_at((0.0, 1.0, 0.0), (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="position, pivot"):
        C.look_at((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="cam2world"):
        C.camera_label(torch.zeros(4, 4), torch.eye(3))
    with pytest.raises(ValueError, match="n"):
        C.orbit(0)
