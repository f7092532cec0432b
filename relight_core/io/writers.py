"""Writing passes: atomic single-frame PNG/EXR files, multilayer EXR, an MP4 preview.

Every writer goes through :func:`atomic_path`: the file is written to a hidden temporary file
in the target folder, flushed to disk, then renamed over the target in one step. A crash or an
exception leaves either the old file or the complete new one, never a partial file, and the
temporary file is removed. Hidden files are ignored by the sequence readers.

Pixel conventions
-----------------
* Float input is **scene-linear** and is encoded for integer formats with ``colourspace``
  (default sRGB; use ``"linear"`` for data passes such as depth or normals).
* Integer input (uint8 for 8-bit PNG, uint16 for 16-bit PNG) is written as is.
* EXR stores float as given (linear): HALF (float16) by default, FLOAT with ``half=False``.
* Alpha is straight in PNG and, by EXR convention, premultiplied in EXR: writers do not
  (un)premultiply, so pass colour in the convention of the target format.

Names: :func:`output_path` gives ``DIR/pass/pass.1001.exr`` (4-digit zero padding, wider
numbers as they are).
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from . import colour as _colour
from .errors import PlateError
from .exr import write_exr_channels
from .images import encode_png

__all__ = [
    "atomic_path",
    "write_text_atomic",
    "output_path",
    "sequence_pattern",
    "write_png",
    "write_exr",
    "write_multilayer_exr",
    "layer_channel_names",
    "encode_like_source",
    "write_like_source",
    "MovieWriter",
]


# --- atomic files -----------------------------------------------------------------------------


def _temp_name(path: Path) -> Path:
    # same folder (so the rename is atomic), hidden, keeps the extension for libraries that
    # choose a format by it
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _publish(tmp: Path, path: Path) -> None:
    if not tmp.is_file() or tmp.stat().st_size == 0:
        raise PlateError(f"writing {path} produced no data; the target was left untouched")
    _fsync_file(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Context manager yielding a temporary path to write ``path`` through.

    On normal exit the temporary file is fsynced and renamed over ``path`` (``os.replace``);
    if the body raises, the temporary file is deleted and ``path`` is untouched. The folder is
    created when missing. The temporary file is created empty with the usual permissions
    (0o666 minus the umask), so writers may open it or replace it by name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        _publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a (non-empty) text file through :func:`atomic_path`, UTF-8."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def output_path(folder: str | Path, pass_name: str, frame_number: int, ext: str,
                padding: int = 4) -> Path:
    """``folder/pass_name/pass_name.<frame>.<ext>``, frame zero-padded to ``padding`` digits
    (``beauty/beauty.1001.exr``; ``10000`` stays 5 digits; negative frames get a sign)."""
    if not pass_name or "/" in pass_name or "\\" in pass_name:
        raise ValueError(f"bad pass name {pass_name!r}")
    number = ("-" if frame_number < 0 else "") + str(abs(int(frame_number))).zfill(padding)
    return Path(folder) / pass_name / f"{pass_name}.{number}.{ext.lstrip('.')}"


def sequence_pattern(folder: str | Path, pass_name: str, ext: str, padding: int = 4) -> Path:
    """The ``####`` pattern of the files :func:`output_path` names (readable by open_plate)."""
    return Path(folder) / pass_name / f"{pass_name}.{'#' * padding}.{ext.lstrip('.')}"


# --- pixel preparation ------------------------------------------------------------------------


def _as_hwc(pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected pixels [H,W] or [H,W,1..4], got shape {pixels.shape}")
    return pixels


def _with_alpha(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    if alpha is None:
        return pixels
    alpha = np.asarray(alpha)
    if alpha.ndim == 2:
        alpha = alpha[:, :, None]
    if alpha.shape[:2] != pixels.shape[:2] or pixels.shape[2] not in (1, 3):
        raise ValueError(f"alpha {alpha.shape} does not fit pixels {pixels.shape}")
    if (alpha.dtype.kind == "f") != (pixels.dtype.kind == "f"):
        raise ValueError(f"alpha ({alpha.dtype}) and pixels ({pixels.dtype}) must both be float "
                         "or both be integer")
    return np.concatenate([pixels, alpha.astype(pixels.dtype, copy=False)], axis=2)


def _stored(pixels: np.ndarray, alpha, colourspace: str, dtype) -> np.ndarray:
    """Pixels (+ alpha) -> integer ``[H, W, C]`` of ``dtype``, encoding float input."""
    dtype = np.dtype(dtype)
    pixels = _with_alpha(_as_hwc(pixels), alpha)
    if pixels.dtype.kind in "ui":
        if pixels.dtype != dtype:
            raise ValueError(f"integer pixels must be {dtype} here, got {pixels.dtype}")
        return pixels
    c = pixels.shape[2]
    if c in (3, 4):
        return _colour.encode(pixels[:, :, :3], pixels[:, :, 3] if c == 4 else None,
                              colourspace, dtype)
    grey = _colour.encode(pixels[:, :, :1], pixels[:, :, 1] if c == 2 else None, colourspace, dtype)
    return grey[:, :, [0, 3]] if c == 2 else grey[:, :, :1]


# --- single-frame writers ---------------------------------------------------------------------


def write_png(
    path: str | Path,
    pixels: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    bits: int = 8,
    colourspace: str = _colour.SRGB,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write an 8-bit (``bits=8``) or 16-bit (``bits=16``) PNG atomically; returns ``path``.

    pixels: float ``[H, W, 1..4]`` scene-linear (encoded with ``colourspace``; alpha channels are
    only scaled), or uint8/uint16 matching ``bits`` (written as is). ``alpha``: optional
    ``[H, W]`` appended as the last channel. ``metadata``: PNG text chunks.
    """
    if bits not in (8, 16):
        raise ValueError(f"PNG bits must be 8 or 16, got {bits}")
    stored = _stored(pixels, alpha, colourspace, np.uint8 if bits == 8 else np.uint16)
    data = encode_png(stored, metadata={k: str(v) for k, v in (metadata or {}).items()})
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _default_channel_names(n: int) -> tuple[str, ...]:
    return {1: ("Y",), 2: ("Y", "A"), 3: ("R", "G", "B"), 4: ("R", "G", "B", "A")}[n]


def write_exr(
    path: str | Path,
    pixels: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    half: bool = True,
    channels: tuple[str, ...] | None = None,
    metadata: dict | None = None,
    compression: str = "zip",
) -> Path:
    """Write a float image as a single-layer EXR atomically (HALF, or FLOAT with ``half=False``).

    pixels: float ``[H, W]`` or ``[H, W, C]`` scene-linear (stored as is). Channel names
    default to Y / Y,A / R,G,B / R,G,B,A by C; pass ``channels=("Z",)`` for a depth image.
    ``alpha``: optional ``[H, W]`` appended as ``A``. ``metadata``: header attributes.
    """
    pixels = _with_alpha(_as_hwc(pixels), alpha)
    if pixels.dtype.kind != "f":
        raise ValueError("EXR stores scene-linear float pixels; decode integer pixels first "
                         "(relight_core.io.colour.decode)")
    names = tuple(channels) if channels is not None else _default_channel_names(pixels.shape[2])
    if len(names) != pixels.shape[2]:
        raise ValueError(f"{len(names)} channel names for {pixels.shape[2]} channels")
    dtype = np.float16 if half else np.float32
    data = {name: pixels[:, :, i].astype(dtype) for i, name in enumerate(names)}
    with atomic_path(path) as tmp:
        write_exr_channels(tmp, data, metadata=metadata, compression=compression)
    return Path(path)


_VECTOR_LAYERS = {"normal", "normals", "n", "position", "p", "vector", "velocity", "motion"}
_DEPTH_LAYERS = {"depth", "z", "mist"}
_ALPHA_LAYERS = {"alpha", "matte", "mask"}


def layer_channel_names(layer: str, n: int) -> tuple[str, ...]:
    """Default channel suffixes of a multilayer EXR layer with ``n`` channels.

    Colour: R,G,B[,A]; vectors (normal, position, ...): X,Y,Z[,W]; depth/z/mist (1 channel): Z
    (Nuke's ``depth.Z``; Blender's Depth pass is ``<ViewLayer>.Depth.Z``); alpha/matte/mask:
    A; other single channels: Y; two channels: X,Y.
    """
    key = layer.rsplit(".", 1)[-1].lower()
    if n == 1:
        return ("Z",) if key in _DEPTH_LAYERS else ("A",) if key in _ALPHA_LAYERS else ("Y",)
    if n == 2:
        return ("X", "Y")
    if key in _VECTOR_LAYERS:
        return ("X", "Y", "Z", "W")[:n]
    return ("R", "G", "B", "A")[:n]


def write_multilayer_exr(
    path: str | Path,
    layers: dict[str, np.ndarray],
    *,
    half: bool = True,
    float_layers: tuple[str, ...] = ("depth", "z", "position", "p"),
    channel_names: dict[str, tuple[str, ...]] | None = None,
    default_layer: str | None = None,
    prefix: str | None = None,
    metadata: dict | None = None,
    compression: str = "zip",
) -> Path:
    """Write named float layers into one EXR atomically, as compositors read them.

    layers: ``{"beauty": [H,W,4], "normal": [H,W,3], "depth": [H,W,1] or [H,W], ...}``, all the
    same H, W. Channel names are ``<layer>.<suffix>`` (``beauty.R``, ``normal.X``,
    ``depth.Z``; suffixes from :func:`layer_channel_names` unless ``channel_names`` gives
    them); with ``prefix="ViewLayer"`` they are ``ViewLayer.beauty.R``, Blender's
    ``<ViewLayer>.<Pass>.<channel>``. ``default_layer`` is written without a prefix
    (``R,G,B,A``), the layer Nuke shows as ``rgba``. Layers are HALF (``half=True``) except
    ``float_layers`` (case-insensitive), which are FLOAT since HALF loses depth precision.
    """
    if not layers:
        raise ValueError("write_multilayer_exr needs at least one layer")
    floats = {name.lower() for name in float_layers}
    data: dict[str, np.ndarray] = {}
    size = None
    for layer, array in layers.items():
        array = _as_hwc(array)
        if array.dtype.kind != "f":
            raise ValueError(f"layer {layer!r}: EXR layers must be float, got {array.dtype}")
        if size is None:
            size = array.shape[:2]
        elif array.shape[:2] != size:
            raise ValueError(f"layer {layer!r} is {array.shape[:2]}, other layers are {size}")
        names = (channel_names or {}).get(layer) or layer_channel_names(layer, array.shape[2])
        if len(names) != array.shape[2]:
            raise ValueError(f"layer {layer!r}: {len(names)} channel names for {array.shape[2]} channels")
        dtype = np.float32 if (not half or layer.lower() in floats) else np.float16
        for i, suffix in enumerate(names):
            parts = [p for p in (prefix, None if layer == default_layer else layer, suffix) if p]
            full = ".".join(parts)
            if full in data:
                raise ValueError(f"channel {full!r} would be written twice")
            data[full] = array[:, :, i].astype(dtype)
    with atomic_path(path) as tmp:
        write_exr_channels(tmp, data, metadata=metadata, compression=compression)
    return Path(path)


# --- bit-identical pass-through ---------------------------------------------------------------


def encode_like_source(frame, rgb: np.ndarray | None = None, alpha: np.ndarray | None = None) -> np.ndarray:
    """Encode scene-linear ``rgb`` (+ alpha) the way ``frame``'s source stores pixels.

    Same dtype (uint8/uint16/float16/float32) and colour space as the source, so wherever
    ``rgb``/``alpha`` equal the frame's decoded values the output equals ``frame.source_pixels``
    bit for bit (exact for the built-in colour spaces). Grey sources come back as RGB(A) with
    equal channels. ``alpha=None`` keeps the source's own alpha. ``rgb=None`` returns the source
    pixels unchanged.
    """
    source = np.asarray(frame.source_pixels)
    if rgb is None and alpha is None:
        return source
    rgb = frame.rgb if rgb is None else rgb
    if alpha is None:
        alpha = frame.alpha
    return _colour.encode(rgb, alpha, frame.colourspace, source.dtype)


def write_like_source(path: str | Path, frame, rgb: np.ndarray | None = None,
                      alpha: np.ndarray | None = None, *, metadata: dict | None = None) -> Path:
    """Write a frame atomically in its source's encoding (see :func:`encode_like_source`).

    ``.png`` for 8/16-bit sources, ``.exr`` for float sources (HALF for float16 sources, FLOAT
    for float32). ``rgb=None`` writes the source pixels unchanged.
    """
    path = Path(path)
    stored = encode_like_source(frame, rgb, alpha)
    ext = path.suffix.lower()
    if ext == ".png" and stored.dtype in (np.uint8, np.uint16):
        return write_png(path, stored, bits=8 if stored.dtype == np.uint8 else 16, metadata=metadata)
    if ext == ".exr" and stored.dtype.kind == "f":
        return write_exr(path, stored, half=stored.dtype == np.float16, metadata=metadata)
    kind = "8/16-bit" if stored.dtype.kind == "u" else "float"
    raise PlateError(
        f"cannot write {path} bit-identical to its {kind} source {frame.path}: use "
        f"{'.png' if kind != 'float' else '.exr'} for this source"
    )


# --- movie preview ----------------------------------------------------------------------------


class MovieWriter:
    """An H.264 MP4 preview, written to a hidden temporary file and renamed on :meth:`close`.

    >>> with MovieWriter("out/preview.mp4", fps=24) as movie:
    ...     for frame in frames:
    ...         movie.write(frame.rgb)          # float32 [H, W, 3] scene-linear

    ``write`` takes float ``[H, W, 3|4]`` scene-linear (encoded with ``colourspace``, default
    sRGB) or uint8 ``[H, W, 3|4]`` (as is); alpha is dropped. Odd sizes are padded by one
    edge-replicated row/column to the even size H.264 (yuv420p) needs. BT.709 YUV, tagged. An
    exception inside the ``with`` block (or :meth:`abort`) removes the temporary file and leaves
    any existing target untouched.
    """

    def __init__(self, path: str | Path, fps: float = 24.0, *, colourspace: str = _colour.SRGB,
                 crf: int = 18, preset: str = "medium", codec: str = "libx264"):
        self.path = Path(path)
        self.fps = float(fps)
        self.colourspace = colourspace
        self.crf, self.preset, self.codec = int(crf), preset, codec
        self.frames_written = 0
        self._size: tuple[int, int] | None = None  # (w, h) of the input frames
        self._gen = None
        self._tmp: Path | None = None

    def __enter__(self) -> "MovieWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _start(self, w: int, h: int) -> None:
        import imageio_ffmpeg

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _temp_name(self.path)
        trc = {"sRGB": "iec61966-2-1", "linear": "linear"}.get(
            _colour.canonical_colourspace(self.colourspace), "bt709")
        self._gen = imageio_ffmpeg.write_frames(
            str(self._tmp), (w + w % 2, h + h % 2), fps=self.fps, codec=self.codec,
            pix_fmt_in="rgb24", pix_fmt_out="yuv420p", quality=None, macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=["-crf", str(self.crf), "-preset", self.preset,
                           "-vf", "scale=out_color_matrix=bt709:out_range=tv",
                           "-colorspace", "bt709", "-color_primaries", "bt709",
                           "-color_trc", trc, "-movflags", "+faststart", "-f", "mp4"],
        )
        self._gen.send(None)
        self._size = (w, h)

    def write(self, image: np.ndarray) -> None:
        """Append one frame (see the class docstring for what ``image`` may be)."""
        image = _as_hwc(image)
        if image.shape[2] not in (3, 4):
            raise ValueError(f"movie frames must be [H,W,3|4], got {image.shape}")
        h, w = image.shape[:2]
        if self._gen is None:
            self._start(w, h)
        elif (w, h) != self._size:
            raise ValueError(f"frame {self.frames_written} is {w}x{h}, the movie is "
                             f"{self._size[0]}x{self._size[1]}")
        rgb = image[:, :, :3]
        if rgb.dtype != np.uint8:
            if rgb.dtype.kind != "f":
                raise ValueError(f"movie frames must be float (linear) or uint8, got {rgb.dtype}")
            rgb = _colour.encode(rgb, None, self.colourspace, np.uint8)
        if w % 2 or h % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        try:
            self._gen.send(np.ascontiguousarray(rgb).tobytes())
        except Exception as exc:
            self.abort()
            raise PlateError(f"writing movie {self.path} failed at frame {self.frames_written}: "
                             f"{exc}") from exc
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the file and move it into place; returns the path."""
        if self._gen is None:
            raise PlateError(f"movie {self.path}: no frames were written; nothing to save")
        gen, self._gen = self._gen, None
        try:
            gen.close()
            _publish(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return self.path

    def abort(self) -> None:
        """Stop without saving: the temporary file is removed, the target untouched."""
        gen, self._gen = self._gen, None
        if gen is not None:
            try:
                gen.close()
            except Exception:
                pass
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
