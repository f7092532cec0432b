"""Albedo encoder: shapes and batch independence per preset, key mapping, and conformance with the
released network (shared/conformance, README sections 2, 5.4 and 8)."""

from __future__ import annotations

import json
import re

import pytest
import torch

from relight_core.conformance_weights import check_against, official_weights
from relight_core.models.albedo_encoder import AlbedoEncoder, official_key_rules
from relight_core.models.config import get_config

OFFICIAL_PREFIXES = (
    "encoders.deeplabv3.",
    "encoders.decoder_f_low.",
    "encoders.encoder_f_high.",
    "encoders.decoder_f_hybrid.",
)
OURS = "albedo_encoder."


def map_official(keys, rules=None) -> dict[str, str]:
    """official key -> our key (relative to the encoder) for the albedo-encoder keys in `keys`."""
    compiled = [(re.compile(p), r) for p, r in (rules or official_key_rules())]
    mapping = {}
    for key in keys:
        if not key.startswith(OFFICIAL_PREFIXES):
            continue
        for pattern, replacement in compiled:
            if pattern.fullmatch(key):
                new = pattern.sub(replacement, key)
                assert new.startswith(OURS), (key, new)
                mapping[key] = new[len(OURS):]
                break
        else:
            raise AssertionError(f"no rule maps {key}")
    return mapping


def rel_l2(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = ours.double(), ref.double()
    return ((ours - ref).norm() / ref.norm()).item()


def stats(x: torch.Tensor) -> torch.Tensor:
    """[mean, std (N-1), L2 norm, min, max, mean|x|] in float64, as in the conformance files."""
    x = x.double()
    return torch.stack([x.mean(), x.std(), x.norm(), x.min(), x.max(), x.abs().mean()])


def assert_stats_close(ours: torch.Tensor, ref: torch.Tensor, name: str) -> None:
    """README section 8 tolerances for `*.stats`."""
    s = stats(ours)
    mean_tol = 1e-4 * (ref[1].item() + 1e-3)
    range_tol = 1e-3 * (ref[4] - ref[3]).item()
    assert abs(s[0] - ref[0]) < mean_tol, f"{name} mean {s[0]} vs {ref[0]}"
    assert abs(s[1] - ref[1]) < mean_tol, f"{name} std {s[1]} vs {ref[1]}"
    assert abs(s[2] / ref[2] - 1) < 1e-4, f"{name} L2 {s[2]} vs {ref[2]}"
    assert abs(s[3] - ref[3]) < range_tol, f"{name} min {s[3]} vs {ref[3]}"
    assert abs(s[4] - ref[4]) < range_tol, f"{name} max {s[4]} vs {ref[4]}"
    assert abs(s[5] - ref[5]) < mean_tol, f"{name} mean|x| {s[5]} vs {ref[5]}"


def reference_errors(ours: torch.Tensor, refs: dict, name: str) -> dict[str, float]:
    """Check `ours` against `name.stats` and its crops/token slices; return the rel-L2 errors."""
    assert_stats_close(ours, refs[f"{name}.stats"], name)
    if ours.ndim == 4:
        h, w = ours.shape[2:]
        parts = {
            "crop_c": ours[:, :, h // 2 - 16 : h // 2 + 16, w // 2 - 16 : w // 2 + 16],
            "crop_tl": ours[:, :, :16, :16],
        }
    else:
        n = ours.shape[1]
        parts = {"tok_first": ours[:, :32], "tok_mid": ours[:, n // 2 : n // 2 + 32]}
    errors = {}
    for part, value in parts.items():
        errors[f"{name}.{part}"] = err = rel_l2(value, refs[f"{name}.{part}"])
        assert err < 1e-4, f"{name}.{part}: rel-L2 {err:.3g}"
    return errors


# --- per-preset behaviour ------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["tiny", "small", pytest.param("paper", marks=pytest.mark.slow)])
def test_shapes_and_batch_independence(preset):
    cfg = get_config(preset)
    torch.manual_seed(0)
    encoder = AlbedoEncoder(cfg).eval()
    images = torch.rand(2, 3, cfg.image_size, cfg.image_size) * 2 - 1
    with torch.no_grad():
        planes = encoder(images)
        single = encoder(images[:1])
    side = cfg.image_size // 2
    assert planes.shape == (2, 3 * cfg.plane_channels, side, side)
    assert planes.dtype == torch.float32
    assert torch.isfinite(planes).all()
    torch.testing.assert_close(single[0], planes[0], rtol=1e-5, atol=1e-5 * planes.abs().max().item())
    assert not torch.allclose(planes[0], planes[1])


def test_rejects_wrong_size():
    cfg = get_config("tiny")
    with pytest.raises(ValueError):
        AlbedoEncoder(cfg)(torch.zeros(1, 3, cfg.image_size + 16, cfg.image_size + 16))


def test_autocast_output_is_float32():
    cfg = get_config("tiny")
    encoder = AlbedoEncoder(cfg).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        planes = encoder(torch.zeros(1, 3, cfg.image_size, cfg.image_size))
    assert planes.dtype == torch.float32 and torch.isfinite(planes).all()


@pytest.mark.cuda
def test_cuda_matches_cpu():
    cfg = get_config("tiny")
    torch.manual_seed(0)
    encoder = AlbedoEncoder(cfg).eval()
    images = torch.rand(2, 3, cfg.image_size, cfg.image_size) * 2 - 1
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            cpu = encoder(images)
            gpu = encoder.cuda()(images.cuda()).cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    assert rel_l2(gpu, cpu) < 1e-5


# --- official checkpoint layout -------------------------------------------------------------


def test_official_key_rules_cover_the_encoder(conformance_dir):
    entries = json.loads((conformance_dir / "official_state_dict_keys.json").read_text())
    shapes = {e["key"]: tuple(e["shape"]) for e in entries}
    mapping = map_official(shapes)
    ours = {k: tuple(v.shape) for k, v in AlbedoEncoder(get_config("paper")).state_dict().items()}
    assert len(mapping) == 179
    assert sorted(mapping.values()) == sorted(ours), "not a one-to-one mapping onto our parameters"
    for official, mine in mapping.items():
        assert shapes[official] == ours[mine], (official, mine)


@pytest.fixture(scope="module")
def official_state_dict(conformance_dir) -> dict[str, torch.Tensor]:
    """All 610 recipe tensors under the official names (the draw order depends on all of them)."""
    seed = json.loads((conformance_dir / "run_info.json").read_text())["seed"]
    return official_weights(conformance_dir / "weights_recipe.json", seed)


def test_weight_generator_matches_check(conformance_dir, official_state_dict):
    assert check_against(official_state_dict, conformance_dir / "weights_check.json") == 610


@pytest.mark.slow
def test_matches_released_encoder(conformance_dir, official_state_dict):
    from safetensors.torch import load_file

    weights = {mine: official_state_dict[k] for k, mine in map_official(official_state_dict).items()}
    encoder = AlbedoEncoder(get_config("paper"))
    assert set(weights) == set(encoder.state_dict()), "every parameter receives exactly one official tensor"
    encoder.load_state_dict(weights, strict=True)
    encoder.eval()
    image = load_file(str(conformance_dir / "inputs.safetensors"))["input.image"].float()
    with torch.no_grad():
        taps = encoder.forward_debug(image)

    debug = load_file(str(conformance_dir / "encoder_debug.safetensors"))
    errors = {}
    for name in ("img_with_coord", "deeplab_out", "flow_tokens_in", "flow_tokens_out", "f_low", "f_high",
                 "hybrid_tokens"):
        errors.update(reference_errors(taps[name], debug, f"enc.{name}"))

    image_path = load_file(str(conformance_dir / "image_path.safetensors"))
    planes = taps["albedo_planes"]
    assert planes.shape == image_path["img.albedo_planes"].shape and planes.dtype == torch.float32
    errors.update(reference_errors(planes, image_path, "img.albedo_planes"))
    errors["img.albedo_planes (fp16)"] = err = rel_l2(planes.half(), image_path["img.albedo_planes"])
    assert err < 5e-4
    print("\n".join(f"{k}: {v:.3g}" for k, v in errors.items()))
