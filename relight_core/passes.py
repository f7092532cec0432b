"""Writing a plate job's passes: image sequences, a multilayer EXR, thumbnails, a contact sheet
and an MP4 preview. Every file is written atomically (:func:`relight_core.io.atomic_path`).

Files of a job folder ``DIR``
-----------------------------
=====================================  ==========================================================
``beauty/beauty.####.png|exr``         the composite, **in the source's encoding** (8/16-bit PNG
                                       for integer sources, HALF/FLOAT EXR for float sources):
                                       bit-identical to the plate outside the matte
``<fmt>/<pass>/<pass>.####.<ext>``     every pass in each sequence format ``fmt``:
                                       ``png8``, ``png16``, ``exr16`` (HALF), ``exr32`` (FLOAT)
``multilayer/multilayer.####.exr``     all passes as layers of one EXR (``R,G,B,A`` = beauty,
                                       ``relit.R``, ``normal.X``, ``depth.Z``, ``alpha.A``...);
                                       HALF except depth (FLOAT)
``thumbs/thumb.####.png``              a strip of crop-space tiles (input, relit, albedo, shading,
                                       normal) of each frame with a face, for the contact sheet
``contact_sheet.png``                  a few frames' strips in a grid with labels
``preview.mp4``                        H.264 preview of the beauty
``frames/frame.####.json``             the frame's record (:func:`write_json`); written **last**,
                                       so it marks the frame done (:func:`read_record`)
=====================================  ==========================================================

Passes (all at the output image's full resolution)
-------------------------------------------------
=========  ========  ======================================  ===================================
pass       channels  EXR (scene-linear floats)               PNG
=========  ========  ======================================  ===================================
beauty     RGB(A)    composite, source alpha as stored       sRGB, straight alpha
relit      RGBA      network image over the head, colour     sRGB, straight alpha
                     **premultiplied** by the head opacity
albedo     RGB       network albedo (0 outside the head)     sRGB
shading    RGB       target shading ``E / pi`` (white        sRGB
                     Lambertian pixel value), grey repeated
ratio      RGB       shading ratio as applied:               linear ``0.5 + log2(ratio) / 8``
                     ``1 + matte (ratio - 1)`` (1 = as is)   (mid grey = 1, +-4 stops)
normal     XYZ       camera-space unit normal, Blender       linear ``(n + 1) / 2``
                     camera axes (+X right, +Y up, +Z to
                     the viewer); 0 outside the head
depth      Z         camera-space Z in metres where the      not written (data: use EXR)
                     head opacity >= 0.5, else 0
alpha      A         the compositing matte (0 = pixel        linear
                     copied from the plate)
=========  ========  ======================================  ===================================

(For networks that work on display images, ``network_space="display"`` in the plate job, the
shading and ratio passes are multipliers of display-encoded values.)

Single-layer EXR channel names: ``R,G,B[,A]`` for colour passes and ``normal`` (X, Y, Z in R, G,
B), ``Z`` for depth, ``A`` for alpha.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .composite import Roi
from .io import colour as _colour
from .io import atomic_path, output_path, write_exr, write_multilayer_exr, write_png

__all__ = [
    "PASS_NAMES",
    "SEQUENCE_FORMATS",
    "THUMB_TILES",
    "FramePasses",
    "beauty_path",
    "frame_files",
    "write_frame",
    "write_thumb",
    "write_contact_sheet",
    "write_preview",
    "thumb_path",
    "record_path",
    "read_record",
    "write_json",
    "json_safe",
]

PASS_NAMES = ("beauty", "relit", "albedo", "shading", "ratio", "normal", "depth", "alpha")
"""Every pass a job can write, in output order."""

SEQUENCE_FORMATS = {"png8": ("png", 8), "png16": ("png", 16), "exr16": ("exr", 16), "exr32": ("exr", 32)}
"""Sequence formats: name -> (extension, bits)."""

THUMB_TILES = ("input", "relit", "albedo", "shading", "normal")
"""Tiles of a thumbnail strip (crop space), left to right."""

_CHANNELS = {"beauty": 3, "relit": 4, "albedo": 3, "shading": 3, "ratio": 3, "normal": 3, "depth": 1, "alpha": 1}
_NEUTRAL = {"relit": 0.0, "albedo": 0.0, "shading": 0.0, "ratio": 1.0, "normal": 0.0, "depth": 0.0, "alpha": 0.0}
_PNG_SKIP = {"depth"}


@dataclass
class FramePasses:
    """The passes of one frame, held compactly: full-size only for the beauty, ROI-sized otherwise.

    Attributes:
        number: frame number.
        size: output ``(width, height)``.
        beauty: stored pixels ``[H, W, 3|4]`` in the source dtype and colour space.
        colourspace: the colour space of ``beauty``.
        roi: where the ROI arrays below sit in the image (None: no face, every pass neutral).
        layers: ROI arrays, float32 scene-linear: ``relit`` ``[h, w, 4]`` (straight colour + head
            opacity), ``albedo``/``shading``/``ratio``/``normal`` ``[h, w, 3]``, ``depth`` and
            ``alpha`` ``[h, w]``. Outside the ROI each pass is neutral (ratio 1, others 0).
        premultiplied_beauty: the beauty's colour is premultiplied by its alpha (EXR sources).
    """

    number: int
    size: tuple[int, int]
    beauty: np.ndarray
    colourspace: str
    roi: Roi | None = None
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    premultiplied_beauty: bool = False

    def full(self, name: str) -> np.ndarray:
        """A pass at full size, float32 ``[H, W, C]`` (beauty decoded to linear, alpha appended)."""
        w, h = self.size
        if name == "beauty":
            rgb, alpha = _colour.decode(self.beauty, self.colourspace)
            return rgb if alpha is None else np.concatenate([rgb, alpha[:, :, None]], axis=2)
        c = _CHANNELS[name]
        out = np.full((h, w, c), _NEUTRAL[name], np.float32)
        if self.roi is not None and name in self.layers:
            arr = self.layers[name]
            out[self.roi.slices] = arr if arr.ndim == 3 else arr[:, :, None]
        return out


def beauty_path(out_dir: Path, number: int, stored_dtype) -> Path:
    """``DIR/beauty/beauty.####.png`` (integer sources) or ``.exr`` (float sources)."""
    ext = "exr" if np.dtype(stored_dtype).kind == "f" else "png"
    return output_path(out_dir, "beauty", number, ext)


def frame_files(out_dir: Path, number: int, stored_dtype, passes, formats, multilayer: bool,
                thumb: bool) -> list[Path]:
    """Every file :func:`write_frame` writes for a frame (the thumbnail only when ``thumb``)."""
    files = [beauty_path(out_dir, number, stored_dtype)]
    for fmt in formats:
        ext, _ = SEQUENCE_FORMATS[fmt]
        for name in passes:
            if ext == "png" and name in _PNG_SKIP:
                continue
            files.append(output_path(Path(out_dir) / fmt, name, number, ext))
    if multilayer:
        files.append(output_path(out_dir, "multilayer", number, "exr"))
    if thumb:
        files.append(output_path(out_dir, "thumbs", number, "png").with_name(f"thumb.{number:04d}.png"))
    return files


def thumb_path(out_dir: Path, number: int) -> Path:
    return output_path(out_dir, "thumbs", number, "png").with_name(f"thumb.{number:04d}.png")


def _png_pixels(name: str, image: np.ndarray) -> tuple[np.ndarray, str]:
    """(float pixels, colour space) of a pass for PNG."""
    if name in ("beauty", "relit", "albedo", "shading"):
        return image, _colour.SRGB
    if name == "ratio":
        return np.clip(0.5 + np.log2(np.maximum(image, 1e-6)) / 8.0, 0.0, 1.0), _colour.LINEAR
    if name == "normal":
        return (image + 1.0) * 0.5, _colour.LINEAR
    return image, _colour.LINEAR  # alpha


def _exr_pixels(name: str, image: np.ndarray) -> tuple[np.ndarray, tuple[str, ...] | None]:
    if name == "relit":
        out = image.copy()
        out[:, :, :3] *= out[:, :, 3:4]  # EXR convention: premultiplied
        return out, None
    if name == "depth":
        return image, ("Z",)
    if name == "alpha":
        return image, ("A",)
    return image, None


def write_frame(out_dir: Path, passes: FramePasses, *, names=PASS_NAMES, formats=("png8", "exr16"),
                multilayer: bool = True, metadata: dict | None = None) -> list[Path]:
    """Write one frame's beauty (source encoding), pass sequences and multilayer EXR.

    Returns the paths written. ``names`` selects passes (the source-encoded beauty is always
    written); ``metadata`` goes into EXR headers and PNG text chunks.
    """
    out_dir = Path(out_dir)
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    written = []
    stored = passes.beauty
    path = beauty_path(out_dir, passes.number, stored.dtype)
    if stored.dtype.kind == "f":
        written.append(write_exr(path, stored, half=stored.dtype == np.float16, metadata=meta))
    else:
        written.append(write_png(path, stored, bits=8 if stored.dtype == np.uint8 else 16, metadata=meta))
    full_cache: dict[str, np.ndarray] = {}

    def full(name: str) -> np.ndarray:
        if name not in full_cache:
            full_cache[name] = passes.full(name)
        return full_cache[name]

    for name in names:
        for fmt in formats:
            ext, bits = SEQUENCE_FORMATS[fmt]
            if ext == "png" and name in _PNG_SKIP:
                continue
            target = output_path(out_dir / fmt, name, passes.number, ext)
            image = full(name)
            if ext == "png":
                pixels, space = _png_pixels(name, image)
                written.append(write_png(target, pixels, bits=bits, colourspace=space, metadata=meta))
            else:
                pixels, channels = _exr_pixels(name, image)
                written.append(write_exr(target, pixels, half=bits == 16, channels=channels, metadata=meta))
        full_cache.pop(name, None)  # one full-size pass in memory at a time
    if multilayer:
        layers = {}
        for name in names:
            image = passes.full(name)
            if name == "relit":
                image = _exr_pixels("relit", image)[0]
            layers[name] = image if name == "depth" else image.astype(np.float16)
        if "beauty" not in layers:
            layers["beauty"] = passes.full("beauty").astype(np.float16)
        target = output_path(out_dir, "multilayer", passes.number, "exr")
        names_map = {"alpha": ("A",), "depth": ("Z",)}
        written.append(write_multilayer_exr(target, layers, half=True, default_layer="beauty",
                                            channel_names=names_map, metadata=meta))
    return written


# ------------------------------------------------------------------------------------------
# thumbnails and the contact sheet
# ------------------------------------------------------------------------------------------


def write_thumb(out_dir: Path, number: int, tiles: dict[str, np.ndarray], size: int = 128) -> Path:
    """A strip of ``THUMB_TILES`` (uint8 ``[h, w, 3]`` display images, resized to ``size``)."""
    from PIL import Image

    strip = Image.new("RGB", (size * len(THUMB_TILES), size), "black")
    for i, name in enumerate(THUMB_TILES):
        tile = tiles.get(name)
        if tile is None:
            continue
        strip.paste(Image.fromarray(np.ascontiguousarray(tile[..., :3])).resize((size, size), Image.BILINEAR), (i * size, 0))
    path = thumb_path(out_dir, number)
    return write_png(path, np.asarray(strip), bits=8)


def write_contact_sheet(out_dir: Path, numbers: list[int], path: Path, *, title: str = "",
                        count: int = 6, fallback: dict[int, np.ndarray] | None = None) -> Path:
    """Grid of up to ``count`` thumbnail strips, evenly spread over ``numbers`` (frames with a
    thumbnail), with column and frame labels. With no thumbnails, ``fallback`` (frame -> uint8
    display image) is shown with a note that no face was relit."""
    from PIL import Image, ImageDraw

    out_dir = Path(out_dir)
    have = [n for n in numbers if thumb_path(out_dir, n).is_file()]
    if len(have) > count:
        idx = np.linspace(0, len(have) - 1, count).round().astype(int)
        have = [have[i] for i in idx]
    strips = []
    for n in have:
        with Image.open(thumb_path(out_dir, n)) as im:
            strips.append((n, im.convert("RGB")))
    label_w, header_h, footer_h = 64, 20, 18
    if strips:
        tile_w, tile_h = strips[0][1].size
        sheet = Image.new("RGB", (label_w + tile_w, header_h + tile_h * len(strips) + footer_h), (24, 24, 24))
        draw = ImageDraw.Draw(sheet)
        step = tile_w // len(THUMB_TILES)
        for i, name in enumerate(THUMB_TILES):
            draw.text((label_w + i * step + 4, 4), name, fill="white")
        for row, (n, strip) in enumerate(strips):
            sheet.paste(strip, (label_w, header_h + row * tile_h))
            draw.text((4, header_h + row * tile_h + 4), f"frame {n}", fill="white")
    else:
        images = list((fallback or {}).items())[:count]
        side = 160
        sheet = Image.new("RGB", (label_w + side * max(1, len(images)), header_h + side + footer_h), (24, 24, 24))
        draw = ImageDraw.Draw(sheet)
        draw.text((label_w + 4, 4), "no face was relit in these frames (input shown)", fill="white")
        for i, (n, img) in enumerate(images):
            im = Image.fromarray(np.ascontiguousarray(img[..., :3]))
            im.thumbnail((side, side))
            sheet.paste(im, (label_w + i * side, header_h))
            draw.text((label_w + i * side + 4, header_h + 4), f"frame {n}", fill="white")
    if title:
        draw.text((4, sheet.size[1] - footer_h + 3), title, fill=(200, 200, 200))
    return write_png(path, np.asarray(sheet), bits=8)


# ------------------------------------------------------------------------------------------
# preview movie
# ------------------------------------------------------------------------------------------


def write_preview(path: Path, files: list[Path], colourspace: str, fps: float, *, over_black: bool = False) -> Path:
    """An H.264 preview from beauty files (in order), decoded from ``colourspace``.

    8-bit sRGB files go in unchanged; others are decoded to linear and encoded to sRGB. With
    ``over_black`` straight alpha is composited over black (novel-view head renders).
    """
    from .io import MovieWriter
    from .io.images import read_image

    with MovieWriter(path, fps=fps if fps and math.isfinite(fps) else 24.0) as movie:
        for file in files:
            stored = read_image(file)
            if stored.dtype == np.uint8 and _colour.canonical_colourspace(colourspace) == _colour.SRGB and not over_black:
                colour, _ = _colour.split_channels(stored)
                movie.write(np.ascontiguousarray(colour))
                continue
            rgb, alpha = _colour.decode(stored, colourspace)
            if over_black and alpha is not None:
                rgb = rgb * alpha[:, :, None]
            movie.write(rgb)
    return Path(path)


# ------------------------------------------------------------------------------------------
# per-frame records (JSON)
# ------------------------------------------------------------------------------------------

_NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][-+0-9.eE]*(?:,\s*-?[0-9][-+0-9.eE]*)*)\s*\]")


def record_path(out_dir: Path, number: int) -> Path:
    """``DIR/frames/frame.####.json``."""
    return output_path(out_dir, "frames", number, "json").with_name(f"frame.{number:04d}.json")


def json_safe(x):
    """numpy/torch values -> plain JSON values, non-finite floats -> None, recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.generic):
        return json_safe(x.item())
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "tolist"):  # numpy arrays, torch tensors
        return json_safe(x.tolist())
    return x


def write_json(path: Path, data) -> Path:
    """Write JSON atomically, readable (lists of numbers on one line); NaN/inf become null."""
    text = json.dumps(json_safe(data), indent=1, allow_nan=False)
    text = _NUMBER_LIST.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)


def read_record(out_dir: Path, number: int, job_id: str) -> dict | None:
    """A frame's record when the frame is done for job ``job_id`` (same id, every listed file
    present), else None."""
    out_dir = Path(out_dir)
    try:
        rec = json.loads(record_path(out_dir, number).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("job_id") != job_id or rec.get("frame") != number:
        return None
    if not all((out_dir / f).is_file() for f in rec.get("files", [])):
        return None
    return rec
