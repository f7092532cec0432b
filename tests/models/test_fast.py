"""The converted bf16 inference model of models/fast.py against the fp32 reference, and its pieces.

Tolerance (stated in docs/BENCHMARKS.md): the final image of the bf16 model is within relative L2
BF16_IMAGE_TOLERANCE of the fp32 model on the same weights and inputs. Measured with random
weights: about 7e-3 (image path) and 1e-2 (video frames) on the CPU for `small` and `paper`.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from relight_core.eval import bench
from relight_core.models.config import get_config
from relight_core.models.fast import FastVideoRelighter, compile_temporal, prepare_inference
from relight_core.models.relighter import Relighter, VideoRelighter
from relight_core.models.stylegan import ModulatedConv
from relight_core.models.transformer import EfficientSelfAttention, attention_by_matmul

BF16_IMAGE_TOLERANCE = 2e-2
"""Largest relative L2 error of the bf16 model's image against the fp32 model's."""


def relative_l2(value: torch.Tensor, reference: torch.Tensor) -> float:
    value, reference = value.double().cpu(), reference.double().cpu()
    return float((value - reference).norm() / reference.norm())


def random_frames(config, count: int, device: str) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    size = config.image_size
    return [(torch.rand(1, 3, size, size, generator=generator) * 2 - 1).to(device) for _ in range(count)]


def converted_pair(config, device: str) -> tuple[Relighter, Relighter]:
    """(fp32 reference, the same weights converted by prepare_inference to bf16)."""
    torch.manual_seed(0)
    reference = Relighter(config).eval().to(device)
    saved = torch.backends.cudnn.benchmark
    try:
        return reference, prepare_inference(copy.deepcopy(reference))
    finally:
        torch.backends.cudnn.benchmark = saved


@pytest.fixture
def fp32_reference():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


# ------------------------------------------------------------------------------------------
# CPU: conversion and the pieces it switches on
# ------------------------------------------------------------------------------------------


def test_prepare_inference_converts_weights_once_and_stays_close():
    # A fuser head of 320 (> FlashAttention's 256) so that the GEMM attention is switched on too.
    config = dataclasses.replace(get_config("tiny"), hybrid_dim=640)
    reference, fast = converted_pair(config, "cpu")
    assert fast.albedo_encoder.backbone.stem.weight.dtype == torch.bfloat16
    assert fast.temporal.combine.weight.dtype == torch.bfloat16
    assert fast.renderer.decoders.albedo_hidden.weight.dtype == torch.float32  # fp32 ray maths and decoders
    assert fast.albedo_encoder.backbone.stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.albedo_encoder.fuser.block.attn.matmul_attention
    assert not fast.albedo_encoder.low_decoder.blocks[0].attn.matmul_attention
    assert fast.superres.block0.conv0.subpixel_upsample and not fast.superres.block0.conv1.subpixel_upsample
    frame = random_frames(config, 1, "cpu")[0]
    camera, sh = bench.frontal_camera(1, torch.device("cpu")), bench.grey_sh(1, torch.device("cpu"))
    with torch.inference_mode():
        expected, got = reference(frame, camera, sh), fast(frame, camera, sh)
    assert got["albedo_planes"].dtype == torch.bfloat16 and got["depth"].dtype == torch.float32
    assert got["albedo_planes"].is_contiguous(memory_format=torch.channels_last)
    assert relative_l2(got["image"], expected["image"]) < BF16_IMAGE_TOLERANCE
    assert relative_l2(got["depth"], expected["depth"]) < 1e-3
    with pytest.raises(ValueError, match="eval mode"):
        prepare_inference(Relighter(get_config("tiny")))


def test_video_frames_of_the_converted_model_stay_close():
    config = get_config("tiny")
    reference, fast = converted_pair(config, "cpu")
    camera, sh = bench.frontal_camera(1, torch.device("cpu")), bench.grey_sh(1, torch.device("cpu"))
    expected_video, video = VideoRelighter(reference), VideoRelighter(fast)
    with torch.inference_mode():
        for frame in random_frames(config, config.temporal_window + 2, "cpu"):
            expected, got = expected_video.step(frame, camera, sh), video.step(frame, camera, sh)
    assert got["residual_albedo"] is not None  # steady state reached: the temporal net ran
    assert relative_l2(got["image"], expected["image"]) < BF16_IMAGE_TOLERANCE


def test_attention_by_matmul_is_sdpa():
    generator = torch.Generator().manual_seed(2)
    query, keys, values = (torch.randn(2, 2, n, 320, generator=generator) for n in (48, 12, 12))
    expected = F.scaled_dot_product_attention(query, keys, values)
    assert torch.allclose(attention_by_matmul(query, keys, values), expected, atol=1e-5, rtol=1e-4)
    layer = EfficientSelfAttention(64, 2, reduction=2).eval()
    tokens = torch.randn(1, 64, 64, generator=generator)
    with torch.no_grad():
        sdpa = layer(tokens, (8, 8))
        layer.matmul_attention = True
        assert torch.allclose(layer(tokens, (8, 8)), sdpa, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("batch", [1, 2])
def test_subpixel_upsampling_is_transposed_conv_then_blur(batch):
    torch.manual_seed(batch)
    layer = ModulatedConv(6, 5, w_dim=8, resolution=14, upsample=True, use_noise=False, conv_clamp=256.0).double()
    x, w = torch.randn(batch, 6, 7, 7, dtype=torch.float64), torch.randn(batch, 8, dtype=torch.float64)
    with torch.no_grad():
        expected = layer(x, w, "none")
        layer.subpixel_upsample = True
        got = layer(x, w, "none")
    assert got.shape == expected.shape == (batch, 5, 14, 14)
    assert torch.allclose(got, expected, atol=1e-12, rtol=1e-10)


def test_temporal_token_path_is_the_plane_path():
    config = get_config("tiny")
    torch.manual_seed(4)
    temporal = Relighter(config).temporal.eval()
    window = config.temporal_window * config.triplane_channels
    albedo, shading = torch.randn(2, window, 5, 6), torch.randn(2, window, 5, 6)
    with torch.no_grad():
        planes = temporal(albedo, shading)
        tokens = temporal.forward_tokens(albedo.permute(0, 2, 3, 1).reshape(60, -1),
                                         shading.permute(0, 2, 3, 1).reshape(60, -1))
    for plane, token in zip(planes, tokens):
        assert plane.shape == (2, config.triplane_channels, 5, 6)
        assert torch.equal(plane.permute(0, 2, 3, 1).reshape(60, -1), token)


# ------------------------------------------------------------------------------------------
# GPU: the converted model and the fast video frame against fp32
# ------------------------------------------------------------------------------------------


@pytest.mark.cuda
def test_converted_paper_model_matches_fp32_on_cuda(fp32_reference):
    config = get_config("paper")
    reference, fast = converted_pair(config, "cuda")
    assert fast.albedo_encoder.fuser.block.attn.matmul_attention  # 2 heads of 512
    frame = random_frames(config, 1, "cuda")[0]
    camera, sh = bench.frontal_camera(1, torch.device("cuda")), bench.grey_sh(1, torch.device("cuda"))
    with torch.inference_mode():
        expected, got = reference(frame, camera, sh), fast(frame, camera, sh)
    errors = {key: relative_l2(got[key], expected[key]) for key in ("image", "image_raw", "albedo_planes")}
    assert errors["image"] < BF16_IMAGE_TOLERANCE, errors
    assert errors["image_raw"] < BF16_IMAGE_TOLERANCE, errors


@pytest.mark.cuda
@pytest.mark.parametrize("coloured", [False, True], ids=["grey", "coloured"])
def test_fast_video_frames_of_the_converted_model_match_fp32(fp32_reference, coloured):
    config = get_config("small")
    reference, fast = converted_pair(config, "cuda")
    compile_temporal(fast)  # the compiled token function inside the captured graph
    camera, sh = bench.frontal_camera(1, torch.device("cuda")), bench.grey_sh(1, torch.device("cuda"))
    if coloured:
        sh = torch.stack([sh, sh * 0.5, sh * 1.5], dim=2)
    expected_video, video = VideoRelighter(reference), FastVideoRelighter(fast)
    with torch.inference_mode():
        for index, frame in enumerate(random_frames(config, 10, "cuda")):
            expected, got = expected_video.step(frame, camera, sh), video.step(frame, camera, sh)
            assert got["image"].dtype == torch.float32
            error = relative_l2(got["image"], expected["image"])
            assert error < BF16_IMAGE_TOLERANCE, (index, error)
    assert video._replay is not None, "the steady-state frames must have been captured into a graph"
