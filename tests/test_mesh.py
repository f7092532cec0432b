"""relight_core.mesh: density grid, marching cubes to a clean coloured mesh, files, `relight mesh`."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import trimesh

from relight_core import cli
from relight_core import mesh as M
from relight_core.models.config import get_config
from relight_core.models.relighter import Relighter
from relight_core.models.renderer import sample_triplane

SPHERE_RADIUS = 0.3
SHARPNESS = 300.0  # hidden unit 0 = softplus(SHARPNESS * (R0^2 - r^2) / 3)


def _random_model(box_warp: float = 1.0) -> Relighter:
    torch.manual_seed(0)
    return Relighter(dataclasses.replace(get_config("tiny"), box_warp=box_warp)).eval()


def _set_affine(layer, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Give an EqualizedLinear the effective weight [out, in] and bias [out]."""
    with torch.no_grad():
        layer.weight.copy_(weight / layer.weight_gain)
        layer.bias.copy_(bias / layer.bias_gain)


def _sphere_model_and_planes(resolution: int = 64) -> tuple[Relighter, torch.Tensor]:
    """Real weights and tri-planes whose raw density is a ball of radius SPHERE_RADIUS at level 10,
    with red rising along +x, green 0.5 and blue 0.25 (linear albedo, tiny config).

    Planes (texel centres t): plane 0 (x, y) holds x^2 + y^2 in channel 0 and x in channel 1; plane
    1 (x, z) holds z^2; so the mean feature is (r^2 / 3, x / 3, 0...).
    """
    model = _random_model()
    cfg = model.config
    channels, hidden = cfg.plane_channels, cfg.decoder_hidden
    centres = ((torch.arange(resolution) * 2 + 1) / resolution - 1) * cfg.box_warp / 2
    u, v = centres[None, :], centres[:, None]  # plane [row = v, column = u]
    planes = torch.zeros(1, 3 * channels, resolution, resolution)
    planes[0, 0] = u**2 + v**2
    planes[0, 1] = u.expand(resolution, resolution)
    planes[0, channels] = v.expand(resolution, resolution) ** 2
    # level 10 where softplus(h0) = 10, i.e. h0 = log(e^10 - 1): r^2 = R0^2 - 3 h0 / SHARPNESS
    r0_squared = SPHERE_RADIUS**2 + 3 * math.log(math.expm1(10.0)) / SHARPNESS
    w1, b1 = torch.zeros(hidden, channels), torch.zeros(hidden)
    w1[0, 0], b1[0] = -SHARPNESS, SHARPNESS * r0_squared / 3
    w1[1, 1] = 3 * 30.0  # h1 = softplus(30 x)
    w2, b2 = torch.zeros(1 + channels, hidden), torch.zeros(1 + channels)
    w2[0, 0] = 1.0  # sigma = h0
    w2[1, 1], b2[1] = 1.0, -3.0  # red = sigmoid(softplus(30 x) - 3)
    b2[3] = math.log(0.25 / 0.75)  # blue: sigmoid -> 0.25; green: sigmoid(0) = 0.5
    decoders = model.renderer.decoders
    _set_affine(decoders.albedo_hidden, w1, b1)
    _set_affine(decoders.albedo_out, w2, b2)
    return model, planes


def _srgb_bytes(linear: float) -> int:
    """The sRGB encoding of a linear value, as an 8-bit code (IEC 61966-2-1)."""
    encoded = 12.92 * linear if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055
    return round(encoded * 255)


@pytest.fixture(scope="module")
def sphere():
    model, planes = _sphere_model_and_planes()
    return model, planes, M.mesh_from_planes(model, planes, resolution=64)


# -- density grid ----------------------------------------------------------------------------


@pytest.mark.parametrize("box_warp", [1.0, 0.8])
def test_grid_matches_the_decoder_at_every_point(box_warp):
    model = _random_model(box_warp)
    torch.manual_seed(1)
    planes = torch.randn(1, model.config.triplane_channels, 16, 16)
    resolution = 11
    calls = []
    grid = M.density_grid(model, planes, resolution, chunk=50, progress=lambda done, total: calls.append((done, total)))

    axis = torch.linspace(-box_warp / 2, box_warp / 2, resolution)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(1, -1, 3)
    with torch.no_grad():
        sigma, _ = model.renderer.decoders.albedo(sample_triplane(planes, points, box_warp))
    assert grid.shape == (resolution,) * 3 and grid.dtype == torch.float32
    torch.testing.assert_close(grid.reshape(-1), sigma.reshape(-1), rtol=1e-5, atol=1e-4)
    assert len(calls) > 1 and calls[-1] == (resolution**3, resolution**3)


def test_grid_progress_can_cancel():
    model = _random_model()
    planes = torch.randn(1, model.config.triplane_channels, 8, 8)

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        raise Cancelled

    with pytest.raises(Cancelled):
        M.density_grid(model, planes, 16, chunk=16, progress=cancel)


def test_grid_rejects_planes_of_another_config():
    model = _random_model()
    with pytest.raises(ValueError, match=r"albedo_planes must be \[1, 24, P, P\]"):
        M.density_grid(model, torch.zeros(1, 96, 8, 8), 8)


# -- surface ---------------------------------------------------------------------------------


def test_sphere_density_gives_one_closed_outward_sphere(sphere):
    _, _, mesh = sphere
    voxel = 1.0 / 63
    assert mesh.body_count == 1 and mesh.is_watertight and mesh.is_winding_consistent
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(radii - SPHERE_RADIUS).max() < voxel / 2
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * SPHERE_RADIUS**3, rel=0.02)  # positive: outward
    outward = (mesh.vertex_normals * mesh.vertices).sum(1) / radii
    assert outward.min() > 0.9


def test_sphere_colours_follow_the_albedo_decoder(sphere):
    _, _, mesh = sphere
    colours = mesh.visual.vertex_colors[:, :3].astype(int)
    x = mesh.vertices[:, 0]
    # green 0.5 and blue 0.25 (the decoder's 1.002 x - 0.001 range) are linear: stored as sRGB codes
    assert np.abs(colours[:, 1] - _srgb_bytes(0.5 * 1.002 - 0.001)).max() <= 1
    assert np.abs(colours[:, 2] - _srgb_bytes(0.25 * 1.002 - 0.001)).max() <= 1
    # red rises along +x: sigmoid(softplus(30 x) - 3) is below 0.05 for x < -0.2 and above 0.95
    # for x > 0.2 (the colour rays reach 0.1 inside, so the vertices need x beyond +-0.25)
    assert colours[x < -0.25, 0].max() < _srgb_bytes(0.05)
    assert colours[x > 0.25, 0].min() > _srgb_bytes(0.95)


def test_nothing_above_the_threshold_is_a_clear_error():
    model, planes = _sphere_model_and_planes(32)
    with pytest.raises(ValueError, match="no surface"):
        M.mesh_from_planes(model, planes, resolution=32, threshold=1e4)


def test_decimation_keeps_a_closed_outward_mesh(sphere):
    pytest.importorskip("fast_simplification")
    model, planes, _ = sphere
    mesh = M.mesh_from_planes(model, planes, resolution=64, decimate_to=600)
    assert 500 <= len(mesh.faces) <= 600
    assert mesh.body_count == 1 and mesh.volume > 0
    assert len(mesh.visual.vertex_colors) == len(mesh.vertices)


def test_wrong_crop_size_is_rejected():
    model = _random_model()
    with pytest.raises(ValueError, match=r"\[64, 64, 3\] uint8"):
        M.extract_head_mesh(model, np.zeros((32, 32, 3), np.uint8), resolution=16)


# -- files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".ply", ".obj", ".glb"])
def test_each_format_reloads_with_the_same_vertices(sphere, tmp_path, ext):
    _, _, mesh = sphere
    path = M.write_mesh(mesh, tmp_path / f"head{ext}")
    loaded = trimesh.load(path, force="mesh", process=False)
    assert len(loaded.vertices) == len(mesh.vertices) and len(loaded.faces) == len(mesh.faces)
    np.testing.assert_allclose(loaded.vertices, mesh.vertices, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == [f"head{ext}"]  # no temporary file left
    if ext == ".ply":
        np.testing.assert_array_equal(loaded.visual.vertex_colors, mesh.visual.vertex_colors)
    if ext == ".glb":  # glTF colours are linear
        green = loaded.visual.vertex_colors[:, 1].astype(int)
        assert np.abs(green - round((0.5 * 1.002 - 0.001) * 255)).max() <= 1


def test_unknown_extension_is_refused(sphere, tmp_path):
    with pytest.raises(ValueError, match=r"use one of \.ply, \.obj, \.glb"):
        M.write_mesh(sphere[2], tmp_path / "head.stl")
    assert not list(tmp_path.iterdir())


def test_benchmark_reports_every_stage(sphere):
    model, planes, _ = sphere
    (row,) = M.mesh_benchmark(model, planes, resolutions=(32,), repeats=1)
    assert row["resolution"] == 32 and row["faces"] > 100
    assert all(row[key] > 0 for key in ("grid_s", "marching_cubes_s", "finish_s"))


@pytest.mark.cuda
def test_grid_on_the_gpu_matches_the_cpu():
    model = _random_model()
    planes = torch.randn(1, model.config.triplane_channels, 32, 32)
    cpu = M.density_grid(model, planes, 40)
    gpu = M.density_grid(model.cuda(), planes.cuda(), 40)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-3)


@pytest.mark.cuda
def test_sphere_on_the_gpu_matches_the_cpu(sphere):
    model, planes, cpu_mesh = sphere
    gpu_model, _ = _sphere_model_and_planes()
    mesh = M.mesh_from_planes(gpu_model.cuda(), planes.cuda(), resolution=64)
    assert len(mesh.faces) == len(cpu_mesh.faces)
    np.testing.assert_allclose(mesh.vertices, cpu_mesh.vertices, atol=1e-4)
    assert np.abs(mesh.visual.vertex_colors.astype(int) - cpu_mesh.visual.vertex_colors).max() <= 1


# -- `relight mesh` --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory):
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("portrait") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def test_relight_mesh_on_the_astronaut(astronaut_png, tmp_path, capsys):
    out = tmp_path / "head.ply"
    assert cli.main(["mesh", str(astronaut_png), "--out", str(out), "--resolution", "64", "--device", "cpu"]) == 0
    assert "wrote" in capsys.readouterr().out
    mesh = trimesh.load(out, force="mesh", process=False)
    assert mesh.body_count == 1 and mesh.is_watertight and mesh.volume > 0
    low, high = mesh.bounds
    assert (low >= -0.5).all() and (high <= 0.5).all()  # head units: inside the tri-plane box
    assert high[1] - low[1] > 0.4  # a head (with neck), not a speck
    assert abs(mesh.vertices[:, 0].mean()) < 0.05  # the frontal astronaut sits on the midline
    assert len(np.unique(mesh.visual.vertex_colors[:, :3], axis=0)) > 100

    metres = tmp_path / "head_m.glb"
    assert cli.main(["mesh", str(astronaut_png), "--out", str(metres), "--resolution", "64", "--metres"]) == 0
    scaled = trimesh.load(metres, force="mesh", process=False)
    scale = np.ptp(scaled.vertices, axis=0) / np.ptp(mesh.vertices, axis=0)
    assert scale == pytest.approx(np.full(3, scale[0]), rel=1e-4) and 0.3 < scale[0] < 0.5  # ~0.41 m per unit


def test_relight_mesh_names_an_image_without_a_face(tmp_path, capsys):
    from PIL import Image

    grey = tmp_path / "wall.png"
    Image.fromarray(np.full((160, 160, 3), 128, np.uint8)).save(grey)
    assert cli.main(["mesh", str(grey), "--out", str(tmp_path / "head.ply"), "--resolution", "32"]) == 2
    err = capsys.readouterr().err
    assert str(grey) in err and "no usable face" in err
    assert not (tmp_path / "head.ply").exists()


@pytest.mark.parametrize("args, message", [
    (["missing.png", "--out", "head.ply"], "missing.png: no such image file"),
    (["{png}", "--out", "head.stl"], "use one of .ply, .obj, .glb"),
    (["{png}"], "give a portrait and --out FILE"),
])
def test_relight_mesh_bad_arguments(astronaut_png, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    argv = ["mesh", *(a.format(png=astronaut_png) for a in args)]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
