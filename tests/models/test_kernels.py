"""Fused CUDA kernels (cuda_ext/) against their torch twins, the dispatch in models/kernels.py and
the CUDA-graph frame of models/fast.py.

GPU tests force the kernel (`kernels.fused_render`), so a missing or broken extension fails them
loudly; TF32 is off for the reference. CPU tests check that nothing but the reference runs there.
"""

from __future__ import annotations

import pytest
import torch

from relight_core import camera as cam
from relight_core.eval import bench
from relight_core.models import kernels
from relight_core.models.config import get_config
from relight_core.models.fast import FastVideoRelighter
from relight_core.models.relighter import Relighter, VideoRelighter
from relight_core.models.renderer import VolumeRenderer

TOLERANCE = {"rel_l2": 1e-4, "depth_abs": 1e-4}
"""Kernel vs fp32 twin on the same plane values (bf16 planes are upcast exactly by both)."""

OUTPUTS = ("features", "albedo", "shading", "depth", "opacity")


def orbit_cameras(batch: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(cam2world [B, 4, 4], intrinsics [B, 3, 3]): EG3D-radius cameras from the front and the sides."""
    positions = [(0.0, 0.0, cam.RADIUS_EG3D), (1.2, -0.4, 2.4), (-1.5, 0.3, 2.2), (0.4, 0.9, 2.5)]
    cam2world = torch.stack([cam.look_at(positions[i % len(positions)]) for i in range(batch)]).float()
    intrinsics = cam.intrinsics(cam.FOCAL_EG3D).float().expand(batch, 3, 3)
    return cam2world.to(device), intrinsics.contiguous().to(device)


def random_planes(config, batch: int, lights: int, seed: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    c3, res = config.triplane_channels, config.plane_resolution
    albedo = torch.randn(batch, c3, res, res, generator=generator) * 0.5
    shading = albedo + torch.randn(lights, batch, c3, res, res, generator=generator) * 0.3
    return albedo.to(device), shading.to(device)


def relative_l2(value: torch.Tensor, reference: torch.Tensor) -> float:
    value, reference = value.double().cpu(), reference.double().cpu()
    return float((value - reference).norm() / reference.norm())


def assert_matches_reference(fused: dict, reference: dict) -> None:
    for key in OUTPUTS:
        assert fused[key].shape == reference[key].shape, key
        assert torch.isfinite(fused[key]).all(), key
        error = relative_l2(fused[key], reference[key])
        assert error < TOLERANCE["rel_l2"], (key, error)
    assert float((fused["depth"] - reference["depth"]).abs().max()) < TOLERANCE["depth_abs"]


@pytest.fixture
def fp32_reference():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# ------------------------------------------------------------------------------------------
# GPU: kernel vs twin
# ------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("config_name", ["paper", "tiny"])
@pytest.mark.parametrize("lights", [1, 3], ids=["grey", "coloured"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_fused_render_matches_torch_renderer(fp32_reference, config_name, lights, dtype):
    config = get_config(config_name)
    torch.manual_seed(3)
    renderer = VolumeRenderer(config).eval().cuda()
    albedo, shading = random_planes(config, 2, lights, seed=4, device="cuda")
    albedo, shading = albedo.to(dtype), shading.to(dtype)
    cam2world, intrinsics = orbit_cameras(2, "cuda")
    with torch.no_grad():
        fused = kernels.fused_render(renderer, albedo, shading, cam2world, intrinsics)
        with kernels.reference_only():
            reference = renderer(albedo.float(), shading.float(), cam2world, intrinsics)
    assert all(v.dtype == torch.float32 for v in fused.values())
    assert_matches_reference(fused, reference)
    assert float(reference["opacity"].amax()) > 0.1  # the test renders something, not empty space


@pytest.mark.cuda
def test_fused_render_with_empty_space_clamps_depth_like_the_twin(fp32_reference):
    """Zero planes and a strongly negative density bias: no density anywhere, depth at the far end."""
    config = get_config("tiny")
    renderer = VolumeRenderer(config).eval().cuda()
    with torch.no_grad():
        renderer.decoders.albedo_out.bias[0] = -1e4
    res = config.plane_resolution
    albedo = torch.zeros(1, config.triplane_channels, res, res, device="cuda")
    shading = torch.zeros(1, 1, config.triplane_channels, res, res, device="cuda")
    cam2world, intrinsics = orbit_cameras(1, "cuda")
    with torch.no_grad():
        fused = kernels.fused_render(renderer, albedo, shading, cam2world, intrinsics)
        with kernels.reference_only():
            reference = renderer(albedo, shading, cam2world, intrinsics)
    assert torch.equal(fused["opacity"], torch.zeros_like(fused["opacity"]))
    assert torch.allclose(fused["depth"], reference["depth"]) and float(fused["depth"].min()) == pytest.approx(3.3)


@pytest.mark.cuda
def test_dispatch_uses_the_kernel_only_for_eval_inference(monkeypatch):
    config = get_config("tiny")
    renderer = VolumeRenderer(config).eval().cuda()
    albedo, shading = random_planes(config, 1, 1, seed=5, device="cuda")
    cam2world, intrinsics = orbit_cameras(1, "cuda")
    calls = []
    real = kernels.fused_render
    monkeypatch.setattr(kernels, "fused_render", lambda *a: calls.append(1) or real(*a))
    args = (renderer, albedo, shading, cam2world, intrinsics)
    with torch.no_grad():
        assert kernels.use_fused_renderer(*args), kernels.fused_report()
        before = len(calls)  # the first call's self-check may have rendered already
        renderer(*args[1:])
        assert len(calls) == before + 1, "eval + no_grad on CUDA must render with the kernel"
        with kernels.reference_only():
            assert not kernels.use_fused_renderer(*args)
        monkeypatch.setenv(kernels.ENV_SWITCH, "0")
        assert not kernels.use_fused_renderer(*args)
        monkeypatch.delenv(kernels.ENV_SWITCH)
        renderer.train()
        assert not kernels.use_fused_renderer(*args)
        renderer.eval()
    assert not kernels.use_fused_renderer(*args)  # autograd on: the kernel has no backward
    assert kernels.fused_report() == "renderer (self-check passed)"


# ------------------------------------------------------------------------------------------
# GPU: the CUDA-graph frame
# ------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("coloured", [False, True], ids=["grey", "coloured"])
def test_graphed_video_frames_match_eager_video_relighter(fp32_reference, coloured):
    torch.manual_seed(0)
    model = Relighter(get_config("small")).eval().cuda()
    size = model.config.image_size
    generator = torch.Generator().manual_seed(7)
    frames = [(torch.rand(1, 3, size, size, generator=generator) * 2 - 1).cuda() for _ in range(10)]
    camera = bench.frontal_camera(1, torch.device("cuda"))
    sh = bench.grey_sh(1, torch.device("cuda"))
    if coloured:
        sh = torch.stack([sh, sh * 0.5, sh * 1.5], dim=2)
    eager, fast = VideoRelighter(model), FastVideoRelighter(model)
    with torch.inference_mode():
        for index, frame in enumerate(frames):
            expected = eager.step(frame, camera, sh)
            got = fast.step(frame, camera, sh)
            for key in ("image", "depth", "shading"):
                assert relative_l2(got[key], expected[key]) < 1e-4, (index, key)
    assert fast._replay is not None, "the steady-state frames must have been captured into a graph"


# ------------------------------------------------------------------------------------------
# CPU: only the reference runs
# ------------------------------------------------------------------------------------------


def test_dispatch_runs_the_reference_on_cpu():
    config = get_config("tiny")
    torch.manual_seed(1)
    renderer = VolumeRenderer(config).eval()
    albedo, shading = random_planes(config, 1, 3, seed=2, device="cpu")
    cam2world, intrinsics = orbit_cameras(1)
    with torch.no_grad():
        assert not kernels.use_fused_renderer(renderer, albedo, shading, cam2world, intrinsics)
        auto = renderer(albedo, shading, cam2world, intrinsics)
        with kernels.reference_only():
            reference = renderer(albedo, shading, cam2world, intrinsics)
    for key in OUTPUTS:
        assert torch.equal(auto[key], reference[key]), key


@pytest.mark.skipif(torch.version.cuda is not None, reason="a CUDA build of torch may have the extension")
def test_without_cuda_the_extension_is_absent_and_says_how_to_build_it():
    assert kernels.load_extension() is None
    assert "relight build-ext" in kernels.extension_status()
    with pytest.raises(RuntimeError, match="not available"):
        kernels.require_extension()


def test_fast_relighter_refuses_a_cpu_model():
    model = Relighter(get_config("tiny")).eval()
    with pytest.raises(ValueError, match="CUDA"):
        FastVideoRelighter(model)


def test_bench_modes_on_cpu(tmp_path):
    for mode in bench.GRAPH_MODES:
        with pytest.raises(ValueError, match="needs a CUDA device"):
            bench.run_benchmark("tiny", "cpu", mode=mode, iterations=1, warmup=0)
    result = bench.run_benchmark("tiny", "cpu", mode="eager", iterations=1, warmup=0)
    assert result["mode"] == "eager" and result["kernels"] == "off"
    assert [row["stage"] for row in result["rows"]] == [key for key, _ in bench.STAGES]
    assert "tiny fp32 eager" not in bench.format_table([result])  # one mode: no mode in the labels
    batched = bench.run_benchmark("tiny", "cpu", mode="eager", iterations=1, warmup=0, batch=2)
    table = bench.format_table([result, batched])
    assert "**tiny fp32 b1**" in table and "**tiny fp32 b2**" in table  # batches tell the columns apart
