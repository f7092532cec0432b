"""OpenEXR files through the ``OpenEXR`` Python package (pip ``OpenEXR`` >= 3.3).

EXR pixels are scene-linear by convention and are never colour-converted here.

Reading (:func:`read_exr`) returns the colour channels of the plate as stored
(float16 for HALF, float32 for FLOAT) as ``[H, W, C]``: ``R, G, B[, A]``, else ``Y[, A]``
(grey), else the only channel, else the ``R, G, B[, A]`` of the only layer that has them
(e.g. ``beauty.R`` ...). Images whose data window differs from the display window are placed
into the display window (zeros outside the data window), so the size is the display size.

Writing (:func:`write_exr_channels`) takes ``{channel name: [H, W] array}``; float16 arrays are
stored as HALF, float32 as FLOAT. Extra header attributes carry per-frame metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import PlateError

__all__ = ["read_exr", "probe_exr", "exr_channel_names", "exr_pixel_types", "write_exr_channels"]

_STANDARD_ATTRIBUTES = {
    "channels", "compression", "dataWindow", "displayWindow", "lineOrder",
    "pixelAspectRatio", "screenWindowCenter", "screenWindowWidth", "type", "tiles",
    "name", "view", "chunkCount", "version",
}


def _openexr():
    try:
        import OpenEXR
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PlateError(
            "reading or writing EXR needs the OpenEXR package, which is not installed: "
            "`pip install 'OpenEXR>=3.3'`"
        ) from exc
    return OpenEXR


def _window_size(window) -> tuple[int, int]:
    (x0, y0), (x1, y1) = window
    return int(x1) - int(x0) + 1, int(y1) - int(y0) + 1


def _open(path: Path, **kwargs):
    ex = _openexr()
    if not path.is_file():
        raise PlateError(f"EXR file not found: {path}")
    try:
        return ex.File(str(path), **kwargs)
    except Exception as exc:  # OpenEXR raises RuntimeError for unreadable/truncated files
        raise PlateError(
            f"cannot read EXR {path}: {exc}. The file is truncated or not an EXR; "
            "re-render or re-copy it"
        ) from exc


def probe_exr(path: str | Path) -> tuple[tuple[int, int], list[str], dict]:
    """Read only the header: ((width, height) of the display window, channel names, header)."""
    path = Path(path)
    with _open(path, header_only=True) as f:  # the header dict is emptied on close: copy
        header = dict(f.header())
        names = [ch.name for ch in header["channels"]]
        size = _window_size(header["displayWindow"])
    return size, names, header


def exr_pixel_types(path: str | Path) -> dict[str, str]:
    """``{channel name: "HALF" | "FLOAT" | "UINT"}`` from the header ({} if it cannot be told)."""
    ex = _openexr()
    try:
        f = ex.InputFile(str(path))  # the classic API is the one that reports types header-only
        try:
            return {name: str(ch.type) for name, ch in f.header()["channels"].items()}
        finally:
            f.close()
    except Exception:
        return {}


def exr_channel_names(path: str | Path) -> list[str]:
    """All channel names of a (single-part) EXR file, e.g. ``["beauty.A", "beauty.B", ...]``."""
    return probe_exr(path)[1]


def _pick_channels(names: list[str], path: Path) -> list[str]:
    have = set(names)
    if {"R", "G", "B"} <= have:
        return ["R", "G", "B"] + (["A"] if "A" in have else [])
    if "Y" in have:
        return ["Y"] + (["A"] if "A" in have else [])
    if len(names) == 1:
        return names
    layers = sorted({n.rsplit(".", 1)[0] for n in names if "." in n})
    rgb_layers = [lay for lay in layers if {f"{lay}.R", f"{lay}.G", f"{lay}.B"} <= have]
    if len(rgb_layers) == 1:
        lay = rgb_layers[0]
        return [f"{lay}.R", f"{lay}.G", f"{lay}.B"] + ([f"{lay}.A"] if f"{lay}.A" in have else [])
    raise PlateError(
        f"EXR {path} has no unambiguous colour channels (R,G,B or Y); its channels are "
        f"{', '.join(names)}. Write the plate with R,G,B[,A] channels"
    )


def read_exr(path: str | Path) -> np.ndarray:
    """The plate's colour channels as stored: ``[H, W, C]`` float16/float32, C in 1..4.

    C = 1 is grey, 2 grey + alpha, 3 RGB, 4 RGBA (see the module docstring for the channel
    choice). Raises :class:`PlateError` naming the file when it cannot be read.
    """
    path = Path(path)
    with _open(path, separate_channels=True) as f:
        try:
            header = f.header()
            windows = (header["dataWindow"], header["displayWindow"])
            channels = f.channels()
            wanted = _pick_channels(list(channels), path)
            planes = [np.asarray(channels[name].pixels) for name in wanted]
        except PlateError:
            raise
        except Exception as exc:
            raise PlateError(
                f"cannot read EXR pixels of {path}: {exc}. The file is truncated or corrupt; "
                "re-render or re-copy it"
            ) from exc
    dtypes = {p.dtype for p in planes}
    dtype = planes[0].dtype if len(dtypes) == 1 and planes[0].dtype.kind == "f" else np.float32
    data = np.stack([p.astype(dtype, copy=False) for p in planes], axis=2)
    if all(np.array_equal(a, b) for a, b in zip(*windows)):
        return data
    return _into_display_window(data, *windows)


def _into_display_window(data: np.ndarray, data_window, display_window) -> np.ndarray:
    (dx0, dy0), _ = data_window
    (wx0, wy0), _ = display_window
    w, h = _window_size(display_window)
    out = np.zeros((h, w, data.shape[2]), dtype=data.dtype)
    # offsets of the data window inside the display window
    ox, oy = int(dx0) - int(wx0), int(dy0) - int(wy0)
    src_y0, src_x0 = max(0, -oy), max(0, -ox)
    dst_y0, dst_x0 = max(0, oy), max(0, ox)
    hh = min(data.shape[0] - src_y0, h - dst_y0)
    ww = min(data.shape[1] - src_x0, w - dst_x0)
    if hh > 0 and ww > 0:
        out[dst_y0:dst_y0 + hh, dst_x0:dst_x0 + ww] = data[src_y0:src_y0 + hh, src_x0:src_x0 + ww]
    return out


def _header_value(value):
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    return json.dumps(value)


def write_exr_channels(
    path: str | Path,
    channels: dict[str, np.ndarray],
    *,
    metadata: dict | None = None,
    compression: str = "zip",
) -> None:
    """Write ``{name: [H, W] float16|float32|uint32 array}`` as one scanline EXR (not atomic;
    :mod:`.writers` wraps it). ``metadata`` values become header attributes (str/int/float as
    is, anything else as JSON text). ``compression``: zip, zips, piz, rle, none, dwaa, dwab ..."""
    ex = _openexr()
    if not channels:
        raise ValueError("an EXR needs at least one channel")
    shapes = {np.shape(a) for a in channels.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"EXR channels must all be [H, W] of one size, got {sorted(shapes)}")
    try:
        comp = getattr(ex, f"{compression.upper()}_COMPRESSION")
    except AttributeError:
        raise ValueError(f"unknown EXR compression {compression!r}") from None
    header = {"compression": comp, "type": ex.scanlineimage}
    for key, value in (metadata or {}).items():
        if key in _STANDARD_ATTRIBUTES:
            raise ValueError(f"metadata key {key!r} is a reserved EXR header attribute")
        header[str(key)] = _header_value(value)
    data = {}
    for name, array in channels.items():
        array = np.asarray(array)
        if array.dtype not in (np.float16, np.float32, np.uint32):
            array = array.astype(np.float32)
        data[name] = np.ascontiguousarray(array)
    with ex.File(header, data) as f:
        f.write(str(path))
