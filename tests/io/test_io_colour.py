"""Colour transforms: exact sRGB, exact integer round trips, channel layouts, OCIO."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from relight_core.io import colour
from relight_core.io.colour import decode, encode, linear_to_srgb, srgb_to_linear

BUILTIN = ["sRGB", "linear", "Rec.709", "Rec.1886"]


def test_srgb_matches_iec_61966_2_1():
    # the break points meet and the known mid grey values hold
    assert srgb_to_linear(np.float64(0.04045)) == pytest.approx(0.04045 / 12.92)
    assert linear_to_srgb(np.float64(0.0031308)) == pytest.approx(0.0031308 * 12.92)
    assert srgb_to_linear(np.float64(0.5)) == pytest.approx(0.214041140, abs=1e-9)
    assert linear_to_srgb(np.float64(0.18)) == pytest.approx(0.461356129, abs=1e-9)
    assert srgb_to_linear(np.float64(1.0)) == pytest.approx(1.0)
    x = np.linspace(-0.5, 2.0, 2001)
    np.testing.assert_allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-12)
    # exact piecewise: 8-bit code 10 is on the linear segment
    assert decode(np.array([[[10, 10, 10]]], np.uint8))[0][0, 0, 0] == np.float32(10 / 255 / 12.92)


@pytest.mark.parametrize("space", BUILTIN)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_round_trip_is_exact_for_every_code(space, dtype):
    top = np.iinfo(dtype).max
    codes = np.arange(top + 1, dtype=np.int64).astype(dtype).reshape(1, -1, 1).repeat(3, axis=2)
    rgb, alpha = decode(codes, space)
    assert rgb.dtype == np.float32 and alpha is None
    assert np.all(np.diff(rgb[0, :, 0]) > 0)  # strictly increasing
    np.testing.assert_array_equal(encode(rgb, None, space, dtype), codes)


def test_float_inputs_pass_through_linear_and_keep_out_of_range_values():
    px = np.array([[[-0.25, 0.5, 7.0]]], np.float16)
    rgb, _ = decode(px, "Linear Rec.709")
    np.testing.assert_array_equal(rgb, px.astype(np.float32))
    np.testing.assert_array_equal(encode(rgb, None, "linear", np.float16), px)


def test_grey_becomes_three_channels_and_alpha_is_only_normalised():
    grey = np.array([[0, 128, 255]], np.uint8)
    rgb, alpha = decode(grey)
    assert rgb.shape == (1, 3, 3) and alpha is None
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])

    grey_alpha = np.array([[[128, 128]]], np.uint8)  # LA
    rgb, alpha = decode(grey_alpha)
    assert rgb.shape == (1, 1, 3)
    assert alpha[0, 0] == np.float32(128) / np.float32(255)  # not sRGB-decoded
    assert rgb[0, 0, 0] != alpha[0, 0]

    rgba = np.array([[[128, 64, 32, 200]]], np.uint16)
    rgb, alpha = decode(rgba, "sRGB")
    assert alpha[0, 0] == np.float32(200) / np.float32(65535)
    out = encode(rgb, alpha, "sRGB", np.uint16)
    np.testing.assert_array_equal(out, rgba)


def test_encode_clips_rounds_and_zeroes_nan():
    rgb = np.array([[[-1.0, np.nan, 5.0]]], np.float32)
    np.testing.assert_array_equal(encode(rgb, None, "sRGB", np.uint8), [[[0, 0, 255]]])


def test_bad_shapes_and_dtypes_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        decode(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        decode(np.zeros((2, 2, 3), np.int32))


def test_unknown_space_without_opencolorio_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "PyOpenColorIO", None)  # import fails
    colour._ocio_config.cache_clear()
    colour._ocio_cpu.cache_clear()
    try:
        with pytest.raises(ValueError, match="pip install opencolorio"):
            decode(np.zeros((1, 1, 3), np.uint8), "ACEScg")
    finally:
        colour._ocio_config.cache_clear()
        colour._ocio_cpu.cache_clear()


def test_ocio_colourspace_when_installed():
    pytest.importorskip("PyOpenColorIO")
    px = np.arange(256, dtype=np.uint8).reshape(1, -1, 1).repeat(3, axis=2)
    ocio_rgb, _ = decode(px, "sRGB Encoded Rec.709 (sRGB)")
    np.testing.assert_allclose(ocio_rgb, decode(px, "sRGB")[0], atol=2e-4)
    back = encode(ocio_rgb, None, "sRGB Encoded Rec.709 (sRGB)", np.uint8)
    assert np.abs(back.astype(int) - px).max() <= 1
    with pytest.raises(ValueError, match="unknown colour space 'no such space'"):
        decode(px, "no such space")
