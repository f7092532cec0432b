"""Plate input/output: read video and image sequences to scene-linear, write passes atomically.

Modules: :mod:`.colour` (transfer functions, OCIO), :mod:`.plate` (``open_plate`` and the
streaming reader), :mod:`.sequence` (patterns, folders, gaps), :mod:`.video` (ffmpeg streaming),
:mod:`.images` (single image files), :mod:`.exr` (OpenEXR), :mod:`.writers` (atomic writers,
multilayer EXR, MP4 preview). Errors are :class:`PlateError` (a ValueError) with a message that
names the file or frame and says what to do.
"""

from .colour import decode, encode, linear_to_srgb, srgb_to_linear
from .errors import PlateError
from .plate import Frame, PlateReader, open_plate, parse_frame_range
from .writers import (
    MovieWriter,
    atomic_path,
    encode_like_source,
    layer_channel_names,
    output_path,
    sequence_pattern,
    write_exr,
    write_like_source,
    write_multilayer_exr,
    write_png,
    write_text_atomic,
)

__all__ = [
    "PlateError",
    "Frame",
    "PlateReader",
    "open_plate",
    "parse_frame_range",
    "decode",
    "encode",
    "srgb_to_linear",
    "linear_to_srgb",
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
