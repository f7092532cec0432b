"""Colour transforms between stored pixels and scene-linear (ARCHITECTURE.md 2, Colour).

All relighting and compositing happens in **scene-linear Rec.709** float32. This module turns
stored pixels into that space (:func:`decode`) and back (:func:`encode`).

Built-in colour spaces (names are matched case-insensitively, ignoring spaces, ``-``, ``_``
and ``.``):

============================  =======================================================
name (aliases)                transfer function (encoded value ``V`` <-> linear ``L``)
============================  =======================================================
``sRGB`` (``sRGB - Texture``) IEC 61966-2-1 piecewise: ``V = 12.92 L`` for
                              ``L <= 0.0031308``, else ``1.055 L^(1/2.4) - 0.055``
``linear`` (``Linear Rec.709``, ``lin_rec709``, ``scene_linear``, ``raw``, ``Non-Color``,
                              ``data``): identity (pass-through)
``Rec.709`` (``bt709``)       ITU-R BT.709 camera OETF: ``V = 4.5 L`` for ``L < 0.018``,
                              else ``1.099 L^0.45 - 0.099`` (precise BT.2020 constants)
``Rec.1886`` (``gamma2.4``)   pure power 2.4 (the BT.1886 display EOTF with a zero black)
============================  =======================================================

Any other name is looked up in OpenColorIO (``PyOpenColorIO``, pip ``opencolorio``) when it is
installed: the config named by ``$OCIO``, else OCIO's built-in CG config (``cg-config-latest``);
it converts between the named space and the config's linear Rec.709 space (``Linear Rec.709
(sRGB)`` / ``lin_rec709``; the ``scene_linear`` role only when the config has none), so the
working space is the same as for the built-in names. Without OpenColorIO an unknown name is
an error that names the package to install.

Array conventions
-----------------
* Stored pixels: ``[H, W]`` (grey), ``[H, W, 1]`` (grey), ``[H, W, 2]`` (grey + alpha),
  ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA); dtype uint8 (0..255), uint16 (0..65535),
  float16 or float32 (0..1 nominal, any value allowed).
* Integers are normalised by 255 or 65535 before the transfer function; floats are used as is.
* Decoded colour: float32 ``[H, W, 3]`` scene-linear; grey is repeated into three channels.
* Alpha is never colour-converted: it is only normalised (float32 ``[H, W]``, 0..1 nominal).
* No (un)premultiplication happens here: colour is converted as stored.

Exactness: for the built-in spaces ``encode(decode(x)) == x`` for every uint8 and every uint16
code value (integer decodes go through a float64-computed lookup table).
"""

from __future__ import annotations

import functools
import os

import numpy as np

__all__ = [
    "SRGB",
    "LINEAR",
    "REC709",
    "REC1886",
    "canonical_colourspace",
    "srgb_to_linear",
    "linear_to_srgb",
    "decode",
    "encode",
    "split_channels",
]

SRGB = "sRGB"
LINEAR = "linear"
REC709 = "Rec.709"
REC1886 = "Rec.1886"

_ALIASES = {
    "srgb": SRGB,
    "srgbtexture": SRGB,
    "linear": LINEAR,
    "lin": LINEAR,
    "linearrec709": LINEAR,
    "linrec709": LINEAR,
    "linrec709srgb": LINEAR,
    "linearrec709srgb": LINEAR,
    "scenelinear": LINEAR,
    "raw": LINEAR,
    "noncolor": LINEAR,
    "noncolour": LINEAR,
    "data": LINEAR,
    "rec709": REC709,
    "bt709": REC709,
    "rec1886": REC1886,
    "gamma24": REC1886,
}

_INT_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in " -_.")


def canonical_colourspace(name: str) -> str:
    """The built-in name for ``name`` (``"sRGB"``, ``"linear"``, ``"Rec.709"``, ``"Rec.1886"``),
    or ``name`` unchanged when it is not built in (it is then an OpenColorIO colour space)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"colour space must be a non-empty string, got {name!r}")
    return _ALIASES.get(_key(name), name)


# --- transfer functions (float64 or float32 in, same dtype out) -------------------------------


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB decode (encoded -> linear), elementwise; negative values are mirrored."""
    v = np.asarray(v)
    a = np.abs(v)
    out = np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)
    return (np.sign(v) * out).astype(v.dtype if v.dtype.kind == "f" else np.float64, copy=False)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB encode (linear -> encoded), elementwise; negative values are mirrored."""
    x = np.asarray(x)
    a = np.abs(x)
    out = np.where(a <= 0.0031308, a * 12.92, 1.055 * a ** (1 / 2.4) - 0.055)
    return (np.sign(x) * out).astype(x.dtype if x.dtype.kind == "f" else np.float64, copy=False)


# BT.709 with the precise constants of BT.2020 (continuous at the break point, so integer
# codes round-trip exactly); the rounded 1.099 / 0.018 differ by < 1e-4.
_A709 = 1.09929682680944
_B709 = 0.018053968510807


def _bt709_to_linear(v):
    a = np.abs(v)
    out = np.where(a < 4.5 * _B709, a / 4.5, ((a + (_A709 - 1)) / _A709) ** (1 / 0.45))
    return np.sign(v) * out


def _linear_to_bt709(x):
    a = np.abs(x)
    out = np.where(a < _B709, a * 4.5, _A709 * a**0.45 - (_A709 - 1))
    return np.sign(x) * out


def _gamma24_to_linear(v):
    return np.sign(v) * np.abs(v) ** 2.4


def _linear_to_gamma24(x):
    return np.sign(x) * np.abs(x) ** (1 / 2.4)


_TO_LINEAR = {
    SRGB: srgb_to_linear,
    LINEAR: lambda v: v,
    REC709: _bt709_to_linear,
    REC1886: _gamma24_to_linear,
}
_FROM_LINEAR = {
    SRGB: linear_to_srgb,
    LINEAR: lambda x: x,
    REC709: _linear_to_bt709,
    REC1886: _linear_to_gamma24,
}


@functools.lru_cache(maxsize=16)
def _decode_lut(space: str, dtype_str: str) -> np.ndarray:
    """float32 table: integer code -> linear value, computed in float64."""
    dtype = np.dtype(dtype_str)
    codes = np.arange(int(_INT_MAX[dtype]) + 1, dtype=np.float64) / _INT_MAX[dtype]
    return np.asarray(_TO_LINEAR[space](codes), dtype=np.float32)


# --- OpenColorIO ------------------------------------------------------------------------------


def _ocio_module():
    try:
        import PyOpenColorIO  # noqa: N813
    except ImportError as exc:
        raise ValueError(
            "colour space needs OpenColorIO, which is not installed: `pip install opencolorio` "
            "(the PyOpenColorIO module), or use a built-in space: sRGB, linear, Rec.709, Rec.1886"
        ) from exc
    return PyOpenColorIO


@functools.lru_cache(maxsize=1)
def _ocio_config():
    ocio = _ocio_module()
    if os.environ.get("OCIO"):
        return ocio.GetCurrentConfig()
    try:
        return ocio.Config.CreateFromBuiltinConfig("cg-config-latest")
    except Exception:  # older OCIO without built-in configs
        return ocio.GetCurrentConfig()


@functools.lru_cache(maxsize=32)
def _ocio_cpu(src: str, dst: str):
    config = _ocio_config()
    for name in (src, dst):
        if config.getColorSpace(name) is None:
            known = ", ".join(sorted(cs.getName() for cs in config.getColorSpaces()))
            raise ValueError(
                f"unknown colour space {name!r}: not built in (sRGB, linear, Rec.709, Rec.1886) "
                f"and not in the OpenColorIO config ({known})"
            )
    return config.getProcessor(src, dst).getDefaultCPUProcessor()


def _ocio_apply(rgb: np.ndarray, src: str, dst: str) -> np.ndarray:
    cpu = _ocio_cpu(src, dst)
    out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
    cpu.applyRGB(out)
    return out


_WORKING_SPACE_NAMES = ("Linear Rec.709 (sRGB)", "lin_rec709_srgb", "Linear Rec.709", "lin_rec709", "Linear")


def _ocio_working_space() -> str:
    """The config's linear Rec.709 space (our working space), else its ``scene_linear`` role."""
    config = _ocio_config()
    for name in _WORKING_SPACE_NAMES:
        if config.getColorSpace(name) is not None:
            return name
    return "scene_linear"


# --- channel layout ---------------------------------------------------------------------------


def split_channels(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Split stored pixels into colour ``[H, W, 3]`` (grey repeated) and alpha ``[H, W]`` or None.

    Dtypes are kept (no normalisation). Raises ValueError for other shapes.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected pixels [H,W], [H,W,1|2|3|4], got shape {pixels.shape}")
    c = pixels.shape[2]
    colour = pixels[:, :, :3] if c >= 3 else np.repeat(pixels[:, :, :1], 3, axis=2)
    alpha = pixels[:, :, c - 1] if c in (2, 4) else None
    return colour, alpha


def _normalise(a: np.ndarray) -> np.ndarray:
    if a.dtype in _INT_MAX:
        return a.astype(np.float32) / np.float32(_INT_MAX[a.dtype])
    if a.dtype.kind == "f":
        return a.astype(np.float32, copy=False)
    raise ValueError(f"unsupported pixel dtype {a.dtype} (use uint8, uint16, float16 or float32)")


def decode(pixels: np.ndarray, colourspace: str = SRGB) -> tuple[np.ndarray, np.ndarray | None]:
    """Stored pixels -> (rgb float32 ``[H, W, 3]`` scene-linear, alpha float32 ``[H, W]`` or None).

    ``pixels``: uint8/uint16/float16/float32, ``[H, W]`` or ``[H, W, C]`` with C in 1..4
    (C = 2 is grey + alpha, C = 4 is RGBA). ``colourspace`` is the space the pixels are stored in.
    """
    pixels = np.asarray(pixels)
    if not pixels.dtype.isnative:  # e.g. big-endian 16-bit from a file
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    colour, alpha = split_channels(pixels)
    space = canonical_colourspace(colourspace)
    if space in _TO_LINEAR:
        if colour.dtype in _INT_MAX:
            rgb = _decode_lut(space, colour.dtype.str)[colour]
        else:
            rgb = np.asarray(_TO_LINEAR[space](_normalise(colour)), dtype=np.float32)
            rgb = rgb.copy() if np.shares_memory(rgb, pixels) else rgb
    else:
        rgb = _ocio_apply(_normalise(colour), space, _ocio_working_space())
    alpha = None if alpha is None else _normalise(alpha).copy()
    return np.ascontiguousarray(rgb, dtype=np.float32), alpha


def encode(
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    colourspace: str = SRGB,
    dtype=np.uint8,
) -> np.ndarray:
    """Scene-linear rgb (+ alpha) -> stored pixels ``[H, W, 3]`` or ``[H, W, 4]`` of ``dtype``.

    ``rgb``: float ``[H, W, 3]`` scene-linear (``[H, W]``/``[H, W, 1]`` grey is repeated);
    ``alpha``: float ``[H, W]`` (0..1) or None. ``dtype``: uint8 or uint16 (values are clipped to
    0..1, scaled and rounded to nearest; NaN becomes 0), or float16/float32 (no clipping).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = rgb[:, :, None]
    if rgb.ndim != 3 or rgb.shape[2] not in (1, 3):
        raise ValueError(f"expected rgb [H,W,3] (or grey [H,W]), got shape {rgb.shape}")
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    rgb = rgb.astype(np.float32, copy=False)
    dtype = np.dtype(dtype)
    space = canonical_colourspace(colourspace)
    if space in _FROM_LINEAR:
        enc = np.asarray(_FROM_LINEAR[space](rgb), dtype=np.float32)
    else:
        enc = _ocio_apply(rgb, _ocio_working_space(), space)
    planes = [enc]
    if alpha is not None:
        alpha = np.asarray(alpha, dtype=np.float32)
        if alpha.ndim == 3 and alpha.shape[2] == 1:
            alpha = alpha[:, :, 0]
        if alpha.shape != rgb.shape[:2]:
            raise ValueError(f"alpha shape {alpha.shape} does not match rgb {rgb.shape[:2]}")
        planes.append(alpha[:, :, None])
    out = np.concatenate(planes, axis=2) if len(planes) > 1 else enc
    return _quantise(out, dtype)


def _quantise(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype in _INT_MAX:
        scaled = np.nan_to_num(values, nan=0.0) * np.float32(_INT_MAX[dtype])
        return np.rint(np.clip(scaled, 0, _INT_MAX[dtype])).astype(dtype)
    if dtype.kind == "f":
        return values.astype(dtype)
    raise ValueError(f"unsupported output dtype {dtype} (use uint8, uint16, float16 or float32)")
