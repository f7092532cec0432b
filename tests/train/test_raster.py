"""The pure-torch rasterizer against analytic cases (CPU, small images)."""

from __future__ import annotations

import math

import pytest
import torch

from relight_core import camera, sh
from relight_core.train import raster


def icosphere(subdivisions: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit icosphere, counter-clockwise (outward) triangles."""
    t = (1 + 5**0.5) / 2
    v = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
         [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]
    f = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6],
         [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7],
         [9, 8, 1]]
    v = [list(map(float, p)) for p in v]
    for _ in range(subdivisions):
        cache: dict = {}

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in cache:
                v.append([(v[a][i] + v[b][i]) / 2 for i in range(3)])
                cache[key] = len(v) - 1
            return cache[key]

        nf = []
        for a, b, c in f:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            nf += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        f = nf
    V = torch.tensor(v, dtype=torch.float64)
    V = V / V.norm(dim=1, keepdim=True)
    return V.float(), torch.tensor(f)


@pytest.fixture(scope="module")
def sphere():
    return icosphere(4)


def frontal(n: int = 1) -> torch.Tensor:
    return camera.orbit_camera(0.0, 0.0)[None].expand(n, 25).clone()


def test_sphere_mask_depth_normals(sphere):
    V, F = sphere
    r, size = 0.3, 96
    out = raster.render_head(V[None] * r, F, frontal(), size, size)
    d = camera.RADIUS_EG3D
    # silhouette: a disk of radius f r / sqrt(d^2 - r^2) pixels (tessellation makes it slightly smaller)
    rad = camera.FOCAL_EG3D * size * r / math.sqrt(d * d - r * r)
    area = out["mask"].sum().item()
    assert area == pytest.approx(math.pi * rad * rad, rel=0.02)
    # depth at the centre = distance from the camera to the surface
    c = size // 2
    centre_depth = out["depth"][0, c - 1 : c + 1, c - 1 : c + 1, 0]
    assert torch.allclose(centre_depth, torch.full_like(centre_depth, d - r), atol=2e-3)
    # normals are radial: parallel to the surface point (the sphere is centred at the origin)
    m = out["mask"][0, ..., 0] > 0
    pos = out["position"][0][m]
    nrm = out["normal"][0][m]
    cos = (pos / pos.norm(dim=-1, keepdim=True) * nrm).sum(-1)
    assert cos.min() > 0.99
    assert torch.allclose(nrm.norm(dim=-1), torch.ones_like(cos), atol=1e-5)
    # the depth is the distance along the ray to the interpolated surface point
    cam = camera.split_label(frontal())[0][0, :3, 3]
    assert torch.allclose(out["depth"][0][m][:, 0], (pos - cam).norm(dim=-1), atol=1e-5)


def test_rgb_is_albedo_times_shading_and_matches_sh(sphere):
    V, F = sphere
    B = 2
    verts = V[None].repeat(B, 1, 1) * 0.3
    cams = torch.stack((camera.orbit_camera(0.0, 0.0), camera.orbit_camera(0.2, 0.5)))
    albedo = torch.rand(B, V.shape[0], 3, generator=torch.Generator().manual_seed(0))
    for light in (torch.stack((sh.preset("key_left"), sh.preset("rim"))), sh.preset("gel_blue_orange")[None].repeat(B, 1, 1)):
        out = raster.render_head(verts, F, cams, 48, 48, albedo=albedo, light=light)
        assert torch.equal(out["rgb"], out["albedo"] * out["shading"])
        m = out["mask"][..., 0] > 0
        frame = sh.world_to_dpr(camera.split_label(cams)[0])
        n_dpr = torch.einsum("bij,bhwj->bhwi", frame, out["normal"])
        for b in range(B):
            ref = sh.shading(n_dpr[b][m[b]], light[b])
            got = out["shading"][b][m[b]]
            ref = ref[:, None].expand_as(got) if ref.dim() == 1 else ref
            assert torch.allclose(got, ref, atol=1e-5)


def test_light_frame_fixes_light_to_the_world(sphere):
    """With the reference camera's frame, a point's shading does not depend on the viewing camera."""
    V, F = sphere
    cams = torch.stack((camera.orbit_camera(0.0, 0.0), camera.orbit_camera(0.0, 0.6)))
    frame = sh.world_to_dpr(camera.split_label(cams[:1])[0]).expand(2, 3, 3)
    light = sh.preset("key_right")[None].repeat(2, 1)
    out = raster.render_head(V[None].repeat(2, 1, 1) * 0.3, F, cams, 64, 64, light=light, light_frame=frame)
    # the same world normal shades the same in both views
    n0 = torch.tensor([0.0, 0.0, 1.0])
    ref = sh.shading(frame[0] @ n0, light[0])
    for b in range(2):
        m = out["mask"][b, ..., 0] > 0
        nrm = out["normal"][b][m]
        k = (nrm @ n0).argmax()
        assert out["shading"][b][m][k, 0].item() == pytest.approx(ref.item(), abs=0.02)


def test_projection_matches_camera_module(sphere):
    V, F = sphere
    cams = torch.stack((camera.orbit_camera(0.1, -0.3, radius=2.5), camera.orbit_camera(-0.2, 0.4, roll=0.1)))
    verts = V[None].repeat(2, 1, 1) * 0.3
    H, W = 40, 56
    _, xy = raster.project(verts, cams, H, W)
    c2w, K = camera.split_label(cams)
    Kp = camera.normalized_to_pixel(K, W, H)
    ref = camera.project_points(verts, c2w[:, None], Kp[:, None])
    assert torch.allclose(xy, ref, atol=1e-4)


def test_vertex_lands_on_its_pixel(sphere):
    """A visible vertex projected with camera.project_points is where the rasterizer draws it."""
    V, F = sphere
    verts = V[None] * 0.3
    cam = camera.orbit_camera(0.15, 0.3)[None]
    size = 128
    out = raster.render_head(verts, F, cam, size, size)
    c2w, K = camera.split_label(cam)
    xy = camera.project_points(verts[0], c2w, camera.normalized_to_pixel(K, size, size))
    view = c2w[0, :3, 3] - verts[0]
    facing = (verts[0] / 0.3 * view / view.norm(dim=-1, keepdim=True)).sum(-1) > 0.7
    pix = xy.round().long()
    inside = facing & (pix >= 0).all(-1) & (pix < size).all(-1)
    idx = torch.nonzero(inside)[:, 0][:50]
    got = out["position"][0, pix[idx, 1], pix[idx, 0]]
    # within a pixel's footprint on the surface (about 2.7 * 0.3 / (4.26 * 128) ~ 2e-3 per pixel)
    assert (got - verts[0, idx]).norm(dim=-1).max() < 4e-3


def test_nearest_triangle_wins_and_is_deterministic():
    # two parallel squares facing the frontal camera; the nearer one (z = 0.2) hides the other
    sq = torch.tensor([[-0.2, -0.2, 0.0], [0.2, -0.2, 0.0], [0.2, 0.2, 0.0], [-0.2, 0.2, 0.0]])
    far, near = sq.clone(), sq.clone() * 0.5
    near[:, 2] = 0.2
    V = torch.cat((far, near))[None]
    F = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    fr1 = raster.rasterize(V, F, frontal(), 32, 32)
    fr2 = raster.rasterize(V, F, frontal(), 32, 32)
    assert torch.equal(fr1.face_index, fr2.face_index) and torch.equal(fr1.bary, fr2.bary)
    c = fr1.face_index[0, 16, 16].item()
    assert c in (2, 3)
    assert fr1.z[0, 16, 16].item() == pytest.approx(camera.RADIUS_EG3D - 0.2, abs=1e-5)
    # back faces are culled: reversing the winding hides both squares
    empty = raster.rasterize(V, F[:, [0, 2, 1]], frontal(), 32, 32)
    assert not empty.mask.any()
    both = raster.rasterize(V, F[:, [0, 2, 1]], frontal(), 32, 32, cull_backfaces=False)
    assert both.mask.any()


def test_perspective_correct_plane():
    """Depth across a slanted plane equals the exact ray-plane intersection."""
    V = torch.tensor([[-0.3, -0.3, -0.3], [0.3, -0.3, 0.3], [0.3, 0.3, 0.3], [-0.3, 0.3, -0.3]])[None]
    F = torch.tensor([[0, 1, 2], [0, 2, 3]])
    cam = frontal()
    size = 64
    out = raster.render_head(V, F, cam, size, size)
    m = out["mask"][0, ..., 0] > 0
    # rays through pixel centres
    c2w, K = camera.split_label(cam)
    j, i = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    u, v = (i + 0.5) / size, (j + 0.5) / size
    d = torch.stack(((u - 0.5) / K[0, 0, 0], (v - 0.5) / K[0, 1, 1], torch.ones_like(u)), -1) @ c2w[0, :3, :3].T
    d = d / d.norm(dim=-1, keepdim=True)
    o = c2w[0, :3, 3]
    n = torch.tensor([-1.0, 0.0, 1.0]) / math.sqrt(2)  # plane z = x
    t = -(o @ n) / (d @ n)
    assert torch.allclose(out["depth"][0, ..., 0][m], t[m], atol=1e-4)


def test_behind_camera_and_errors(sphere):
    V, F = sphere
    out = raster.rasterize(V[None] * 0.1 + torch.tensor([0.0, 0.0, 5.0]), F, frontal(), 16, 16)
    assert not out.mask.any()
    with pytest.raises(ValueError, match="cameras"):
        raster.rasterize(V[None], F, frontal(2), 16, 16)
    with pytest.raises(ValueError, match="vertices"):
        raster.rasterize(V, F, frontal(), 16, 16)
    with pytest.raises(ValueError, match="light"):
        raster.render_head(V[None] * 0.3, F, frontal(), 16, 16, light=torch.zeros(1, 4))


def test_background_shading_floor(sphere):
    V, F = sphere
    light = sh.preset("rim")[None]  # from behind: a backdrop facing the camera is barely lit
    out = raster.render_head(V[None] * 0.3, F, frontal(), 32, 32, light=light)
    bg = out["shading"][0, 0, 0]
    dc = raster.ambient_shading(light)[0]
    assert (bg >= 0.25 * dc - 1e-6).all()
    assert torch.equal(out["rgb"], out["albedo"] * out["shading"])
