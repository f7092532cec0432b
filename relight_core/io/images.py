"""Single image files: header probes, decoding to stored pixels, and a PNG encoder.

Readers return the pixels *as stored* (no colour conversion; :mod:`.colour` does that):
``[H, W]`` grey or ``[H, W, C]`` with C = 2 (grey + alpha), 3 (RGB) or 4 (RGBA), dtype uint8,
uint16, float16 or float32.

* PNG, JPEG: Pillow (8-bit, 16-bit grey). 16-bit colour PNGs (RGB, RGBA, grey + alpha), which
  Pillow would cut to 8 bits, are decoded by the ffmpeg binary that ships with imageio-ffmpeg.
* TIFF: tifffile (any bit depth, float); Pillow when tifffile lacks a codec (LZW needs
  ``imagecodecs``) and the file is 8-bit.
* EXR: :mod:`.exr` (OpenEXR).

:func:`encode_png` writes 8- and 16-bit PNGs of 1-4 channels (Pillow cannot write 16-bit
colour) with optional text metadata.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import PlateError

__all__ = ["IMAGE_EXTENSIONS", "ImageInfo", "probe_image", "read_image", "encode_png"]

IMAGE_EXTENSIONS = (".exr", ".png", ".tif", ".tiff", ".jpg", ".jpeg")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> (channels, ffmpeg pix_fmt for 16-bit)
_PNG_COLOUR_TYPES = {0: (1, "gray16le"), 2: (3, "rgb48le"), 4: (2, "ya16le"), 6: (4, "rgba64le")}


@dataclass(frozen=True)
class ImageInfo:
    """What a header says: ``size`` (width, height), stored ``channels`` (1-4), ``dtype``."""

    size: tuple[int, int]
    channels: int
    dtype: np.dtype


def _unreadable(path: Path, exc: Exception | str) -> PlateError:
    return PlateError(
        f"cannot read image {path}: {exc}. The file is truncated, corrupt or not an image; "
        "re-render or re-copy it"
    )


def _check_extension(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise PlateError(
            f"unsupported image type {path.suffix!r} for {path}; supported: "
            f"{', '.join(IMAGE_EXTENSIONS)}"
        )
    if not path.is_file():
        raise PlateError(f"image file not found: {path}")
    return ext


def _png_ihdr(path: Path) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG header, or None if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, depth, ctype = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, ctype


# --- probes -----------------------------------------------------------------------------------

_PIL_MODE_INFO = {
    "1": (1, np.uint8), "L": (1, np.uint8), "LA": (2, np.uint8), "La": (2, np.uint8),
    "RGB": (3, np.uint8), "RGBX": (3, np.uint8), "CMYK": (3, np.uint8), "YCbCr": (3, np.uint8),
    "LAB": (3, np.uint8), "HSV": (3, np.uint8), "RGBA": (4, np.uint8), "RGBa": (4, np.uint8),
    "PA": (4, np.uint8), "I;16": (1, np.uint16), "I;16B": (1, np.uint16),
    "I;16L": (1, np.uint16), "I;16N": (1, np.uint16), "I": (1, np.uint16), "F": (1, np.float32),
}


def probe_image(path: str | Path) -> ImageInfo:
    """Size, channels and dtype from the file header, without decoding pixels."""
    path = Path(path)
    ext = _check_extension(path)
    try:
        if ext == ".exr":
            from .exr import _pick_channels, exr_pixel_types, probe_exr

            size, names, _ = probe_exr(path)
            chosen = _pick_channels(names, path)
            types = {exr_pixel_types(path).get(name) for name in chosen}
            return ImageInfo(size, len(chosen), np.dtype(np.float16 if types == {"HALF"} else np.float32))
        if ext in (".tif", ".tiff"):
            info = _probe_tiff(path)
            if info is not None:
                return info
        if ext == ".png":
            ihdr = _png_ihdr(path)
            if ihdr is None:
                raise _unreadable(path, "not a PNG file")
            w, h, depth, ctype = ihdr
            if depth == 16 and ctype in _PNG_COLOUR_TYPES:
                return ImageInfo((w, h), _PNG_COLOUR_TYPES[ctype][0], np.dtype(np.uint16))
        from PIL import Image

        with Image.open(path) as im:
            mode, size = im.mode, im.size
            transparent = "transparency" in im.info
        if mode == "P":
            return ImageInfo(size, 4 if transparent else 3, np.dtype(np.uint8))
        if mode not in _PIL_MODE_INFO:
            raise _unreadable(path, f"unsupported pixel mode {mode}")
        channels, dtype = _PIL_MODE_INFO[mode]
        return ImageInfo(size, channels, np.dtype(dtype))
    except PlateError:
        raise
    except Exception as exc:
        raise _unreadable(path, exc) from exc


def _probe_tiff(path: Path) -> ImageInfo | None:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        shape, dtype = page.shape, page.dtype
        planar = page.planarconfig == 2 and len(shape) == 3
    if planar:
        shape = (shape[1], shape[2], shape[0])
    h, w = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    if channels > 4 or dtype not in (np.uint8, np.uint16, np.float16, np.float32):
        return None  # let Pillow try (and fail with its own message)
    return ImageInfo((w, h), channels, np.dtype(dtype))


# --- decoding ---------------------------------------------------------------------------------


def read_image(path: str | Path) -> np.ndarray:
    """Decode one image file to its stored pixels (see the module docstring for layout/dtypes).

    Raises :class:`PlateError` naming the file for missing, unsupported or unreadable files.
    """
    path = Path(path)
    ext = _check_extension(path)
    if ext == ".exr":
        from .exr import read_exr

        return read_exr(path)
    try:
        if ext in (".tif", ".tiff"):
            pixels = _read_tiff(path)
            if pixels is not None:
                return pixels
        if ext == ".png":
            ihdr = _png_ihdr(path)
            if ihdr is None:
                raise _unreadable(path, "not a PNG file")
            if ihdr[2] == 16 and ihdr[3] in (2, 4, 6):
                return _read_png16_ffmpeg(path, *ihdr)
        return _read_pillow(path)
    except PlateError:
        raise
    except Exception as exc:
        raise _unreadable(path, exc) from exc


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        mode = im.mode
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif mode in ("1", "La", "RGBa", "PA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert({"1": "L", "La": "LA", "RGBa": "RGBA", "PA": "RGBA"}.get(mode, "RGB"))
        elif mode not in _PIL_MODE_INFO:
            raise _unreadable(path, f"unsupported pixel mode {mode}")
        pixels = np.array(im)
    if mode.startswith("I"):
        if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 65535:
            raise _unreadable(path, "32-bit integer pixels are not supported (use 16-bit or float)")
        pixels = pixels.astype(np.uint16)
    return pixels


def _read_tiff(path: Path) -> np.ndarray | None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            planar = page.planarconfig == 2 and len(page.shape) == 3
            pixels = page.asarray()
    except ValueError as exc:
        if "imagecodecs" in str(exc):
            _tiff_needs_codec(path, exc)  # raises for files deeper than 8 bits
            return None  # Pillow decodes it
        raise
    if planar:
        pixels = np.moveaxis(pixels, 0, 2)
    if pixels.dtype not in (np.uint8, np.uint16, np.float16, np.float32):
        raise _unreadable(path, f"unsupported TIFF sample type {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    return np.ascontiguousarray(pixels)


def _tiff_needs_codec(path: Path, exc: Exception) -> None:
    """tifffile lacks the codec: fine for 8-bit files (Pillow decodes them); else raise."""
    from PIL import Image

    with Image.open(path) as im:
        bits = im.tag_v2.get(258, (8,))
    if all(b == 8 for b in (bits if isinstance(bits, tuple) else (bits,))):
        return
    raise PlateError(
        f"cannot read TIFF {path}: {exc}. `pip install imagecodecs`, or re-save the plate "
        "uncompressed or with ZIP compression"
    )


def _read_png16_ffmpeg(path: Path, width: int, height: int, depth: int, ctype: int) -> np.ndarray:
    import imageio_ffmpeg

    channels, pix_fmt = _PNG_COLOUR_TYPES[ctype]
    gen = imageio_ffmpeg.read_frames(
        str(path),
        pix_fmt=pix_fmt,
        bits_per_pixel=16 * channels,
        input_params=["-f", "image2", "-pattern_type", "none"],
    )
    try:
        meta = next(gen)
        if tuple(meta["size"]) != (width, height):
            raise _unreadable(path, f"decoder size {meta['size']} differs from header")
        data = next(gen)
    except StopIteration:
        raise _unreadable(path, "no image data") from None
    finally:
        gen.close()
    return np.frombuffer(data, dtype="<u2").reshape(height, width, channels).astype(np.uint16)


# --- encoding ---------------------------------------------------------------------------------


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_png(pixels: np.ndarray, metadata: dict[str, str] | None = None, level: int = 6) -> bytes:
    """PNG file bytes for uint8 or uint16 pixels ``[H, W]`` or ``[H, W, C]`` (C = 1..4).

    C = 2 is grey + alpha, 4 is RGBA (straight alpha, as PNG defines). ``metadata`` becomes tEXt
    chunks (keys 1-79 Latin-1 characters). Rows use the PNG "Up" filter, zlib ``level``.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4) or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG needs uint8/uint16 [H,W,1..4] pixels, got {pixels.dtype} {pixels.shape}")
    h, w, c = pixels.shape
    if h == 0 or w == 0:
        raise ValueError("cannot write an empty image")
    depth = 8 if pixels.dtype == np.uint8 else 16
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = np.ascontiguousarray(pixels.astype(">u2") if depth == 16 else pixels).view(np.uint8)
    rows = rows.reshape(h, -1)
    filtered = rows.copy()
    filtered[1:] -= rows[:-1]  # "Up" filter, modulo 256
    raw = np.concatenate([np.full((h, 1), 2, np.uint8), filtered], axis=1)
    out = [_PNG_SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))]
    for key, value in (metadata or {}).items():
        text = key.encode("latin-1") + b"\0" + str(value).encode("latin-1", errors="replace")
        out.append(_chunk(b"tEXt", text))
    out.append(_chunk(b"IDAT", zlib.compress(raw.tobytes(), level)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)
