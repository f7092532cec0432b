"""The whole network on the tiny config: shapes, batches, coloured light, determinism, video state."""

from __future__ import annotations

import pytest
import torch

from relight_core.models.config import PRESETS, RelighterConfig, get_config
from relight_core.models.relighter import Relighter, VideoRelighter


def frontal_cameras(batch: int) -> torch.Tensor:
    """EG3D labels of a camera at (0, 0, 2.7) looking at the origin (OpenCV axes)."""
    cam2world = torch.eye(4)
    cam2world[:3, :3] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    cam2world[2, 3] = 2.7
    intrinsics = torch.tensor([[4.2634, 0, 0.5], [0, 4.2634, 0.5], [0, 0, 1]])
    return torch.cat([cam2world.flatten(), intrinsics.flatten()]).expand(batch, 25).clone()


def grey_light(batch: int) -> torch.Tensor:
    sh = torch.zeros(batch, 9)
    sh[:, 0], sh[:, 2], sh[:, 3] = 0.8, 0.3, -0.2
    return sh


@pytest.fixture(scope="module")
def tiny() -> Relighter:
    torch.manual_seed(0)
    return Relighter(get_config("tiny")).eval()


def images(batch: int, size: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_every_preset_builds_and_derives_its_sizes():
    for name, config in PRESETS.items():
        assert config.name == name
        assert config.output_resolution == 8 * config.neural_resolution
        assert RelighterConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="unknown model config 'huge'"):
        get_config("huge")


def test_image_path_shapes_and_ranges(tiny):
    with torch.no_grad():
        out = tiny(images(2), frontal_cameras(2), grey_light(2))
    n, s = 8, 64
    assert out["image"].shape == (2, 3, s, s)
    assert out["image_raw"].shape == (2, 3, n, n)
    assert out["shading"].shape == (2, 1, n, n) and (out["shading"] >= 0).all()
    assert out["depth"].shape == (2, 1, n, n)
    assert ((out["depth"] >= 2.25) & (out["depth"] <= 3.3)).all()
    assert ((out["opacity"] >= 0) & (out["opacity"] <= 1 + 1e-6)).all()
    assert out["albedo_planes"].shape == (2, 24, 32, 32)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_batch_items_are_independent(tiny):
    image, cams, sh = images(3), frontal_cameras(3), grey_light(3)
    sh[1, 0] = 0.2
    with torch.no_grad():
        batched = tiny(image, cams, sh)["image"]
        single = tiny(image[1:2], cams[1:2], sh[1:2])["image"]
    torch.testing.assert_close(batched[1:2], single, atol=1e-5, rtol=1e-4)


def test_inference_is_deterministic_and_training_is_not(tiny):
    args = images(1), frontal_cameras(1), grey_light(1)
    with torch.no_grad():
        first, second = tiny(*args)["image"], tiny(*args)["image"]
        assert torch.equal(first, second)
        tiny.train()
        try:
            noisy = tiny(*args)["image"]
        finally:
            tiny.eval()
    assert not torch.equal(first, noisy)


def test_coloured_light_shades_each_channel_with_its_own_coefficients(tiny):
    image, cams = images(1), frontal_cameras(1)
    grey = grey_light(1)
    with torch.no_grad():
        one_pass = tiny(image, cams, grey)
        same_colour = tiny(image, cams, grey[..., None].expand(1, 9, 3).contiguous())
        # A different light in the red channel only.
        chromatic = grey[..., None].repeat(1, 1, 3)
        chromatic[:, 0, 0] = 1.6
        chromatic[:, 3, 0] = 0.6
        coloured = tiny(image, cams, chromatic)
        red_only = tiny(image, cams, chromatic[..., 0])
    torch.testing.assert_close(same_colour["image"], one_pass["image"], atol=1e-5, rtol=1e-4)
    assert same_colour["shading"].shape == (1, 3, 8, 8)
    torch.testing.assert_close(coloured["image"][:, 0], red_only["image"][:, 0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(coloured["image"][:, 1:], one_pass["image"][:, 1:], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(coloured["shading"][:, 0], coloured["shading"][:, 1], atol=1e-5, rtol=0)


def test_relight_from_stored_planes_skips_the_encoder(tiny):
    image, cams, sh = images(1), frontal_cameras(1), grey_light(1)
    with torch.no_grad():
        full = tiny(image, cams, sh)
        again = tiny(None, cams, sh, albedo_planes=full["albedo_planes"])
    assert torch.equal(full["image"], again["image"])
    with pytest.raises(ValueError, match="albedo_planes"):
        tiny(None, cams, sh)


def test_bad_inputs_are_named(tiny):
    with pytest.raises(ValueError, match=r"image must be \[B, 3, 64, 64\]"):
        tiny(torch.zeros(1, 3, 32, 32), frontal_cameras(1), grey_light(1))
    with pytest.raises(ValueError, match="camera must be an EG3D label"):
        tiny(images(1), torch.zeros(1, 16), grey_light(1))
    with pytest.raises(ValueError, match="sh must be"):
        tiny(images(1), frontal_cameras(1), torch.zeros(1, 4))


def run_video(model, policy, frames):
    video = VideoRelighter(model, policy)
    cams, sh = frontal_cameras(1), grey_light(1)
    return [video.step(frame[None], cams, sh) for frame in frames], video


def test_video_window_policies(tiny):
    window = tiny.config.temporal_window
    frames = images(window + 3, seed=5)
    sliding, video = run_video(tiny, "sliding", frames)
    frozen, _ = run_video(tiny, "frozen", frames)
    # The first `window` frames render as images; smoothing starts once the window is full.
    for k in range(window):
        assert sliding[k]["residual_albedo"] is None
        with torch.no_grad():
            plain = tiny(frames[k:k + 1], frontal_cameras(1), grey_light(1))["image"]
        torch.testing.assert_close(sliding[k]["image"], plain)
    assert all(out["residual_albedo"] is not None for out in sliding[window:])
    # Frozen: every later frame uses the same first-window residual; sliding moves on.
    torch.testing.assert_close(frozen[window]["residual_albedo"], frozen[window + 2]["residual_albedo"])
    torch.testing.assert_close(frozen[window]["residual_albedo"], sliding[window]["residual_albedo"])
    assert not torch.allclose(sliding[window]["residual_albedo"], sliding[window + 2]["residual_albedo"])
    # A reset (a shot cut) starts filling again.
    video.reset()
    out = video.step(frames[:1], frontal_cameras(1), grey_light(1))
    assert out["residual_albedo"] is None


def test_video_accepts_a_switch_to_coloured_light(tiny):
    video = VideoRelighter(tiny)
    frames, cams = images(tiny.config.temporal_window + 1, seed=7), frontal_cameras(1)
    for frame in frames[:-1]:
        video.step(frame[None], cams, grey_light(1))
    out = video.step(frames[-1:], cams, grey_light(1)[..., None].repeat(1, 1, 3))
    assert out["shading_planes"].shape[0] == 3 and out["image"].shape == (1, 3, 64, 64)


def test_a_silent_temporal_network_is_skipped_with_the_same_result():
    """Zeroed output layers (untrained, as shipped) give zero residuals: the video path skips the
    network and still returns exactly what running it gives, grey and coloured."""
    torch.manual_seed(3)
    model = Relighter(get_config("tiny")).eval()
    for head in (model.temporal.albedo_head, model.temporal.shading_head):
        torch.nn.init.zeros_(head.weigh.weight)
        torch.nn.init.zeros_(head.weigh.bias)
    skipped, computed = VideoRelighter(model), VideoRelighter(model)
    assert skipped.silent
    computed.silent = False
    frames, cams = images(model.config.temporal_window + 2, seed=5), frontal_cameras(1)
    with torch.no_grad():
        for i, frame in enumerate(frames):
            sh = grey_light(1) if i % 2 else grey_light(1)[..., None].repeat(1, 1, 3)
            a, b = skipped.step(frame[None], cams, sh), computed.step(frame[None], cams, sh)
            for key in ("residual_albedo", "residual_shading", "image"):
                assert (a[key] is None) == (b[key] is None)
                if a[key] is not None:
                    assert torch.equal(a[key], b[key]), key
    assert not VideoRelighter(Relighter(get_config("tiny"))).silent


@pytest.mark.cuda
def test_paper_config_on_cuda_matches_cpu():
    """The paper network on the GPU (TF32 off) agrees with the CPU in fp32 (conformance tolerance)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model = Relighter(get_config("paper")).eval()
    image = images(1, 512)
    cams, sh = frontal_cameras(1), grey_light(1)
    with torch.no_grad():
        cpu = model(image, cams, sh)
        gpu = model.cuda()(image.cuda(), cams.cuda(), sh.cuda())
    for key in ("image", "image_raw", "shading", "albedo_planes"):
        a, b = gpu[key].double().cpu(), cpu[key].double()
        assert float((a - b).norm() / b.norm()) < 1e-4, key
    assert float((gpu["depth"].cpu() - cpu["depth"]).abs().max()) < 1e-4
