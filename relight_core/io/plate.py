"""Reading a plate: a video file or an image sequence, streamed one frame at a time.

>>> plate = open_plate("shots/sh010/plate.####.exr", frames=range(1001, 1011))
>>> plate.frame_numbers[:2], plate.size, plate.fps
([1001, 1002], (1920, 1080), 24.0)
>>> for frame in plate:            # one frame in memory at a time
...     frame.number, frame.rgb.shape, frame.rgb.dtype    # 1001, (1080, 1920, 3), float32

Decisions
---------
* **Frame numbers.** Sequences keep the numbers in their file names. Video frames are numbered
  **1..N** in decode order (Blender's MovieClip and Nuke's Read start movies at frame 1);
  ``video_start`` changes the first number (e.g. 1001 to line a movie up with a sequence).
* **Gaps.** A sequence with missing frames is an error that lists them, unless
  ``allow_gaps=True``: then ``frame_numbers`` skips them and ``missing_frames`` lists them.
* **Colour.** ``colourspace=None`` (default) decodes 8/16-bit files and video as sRGB and float
  files (EXR, float TIFF) as linear; a name given explicitly applies to every frame (see
  :mod:`.colour`; OCIO names need OpenColorIO).
* **Checks at open.** Every file's header is read when the plate is opened (cheap: no pixels),
  so missing, unreadable and wrong-sized frames are reported before any work starts; a video
  is probed and its frames counted (without decoding).
* **Alpha** is carried through as stored (straight in PNG/TIFF, premultiplied by convention in
  EXR: see ``Frame.premultiplied``). ``has_alpha`` is from the first frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from . import colour as _colour
from .errors import PlateError
from .images import IMAGE_EXTENSIONS, ImageInfo, probe_image, read_image
from .sequence import Sequence, find_sequence, format_ranges, is_pattern, scan_folder
from .video import VIDEO_EXTENSIONS, VideoInfo, probe_video, stream_video

__all__ = ["Frame", "PlateReader", "open_plate", "parse_frame_range", "DEFAULT_FPS"]

DEFAULT_FPS = 24.0


@dataclass
class Frame:
    """One decoded plate frame.

    number: source frame number (file name number; 1-based for video).
    rgb: float32 ``[H, W, 3]`` scene-linear (grey sources repeated to 3 channels).
    alpha: float32 ``[H, W]`` 0..1 as stored, or None.
    source_pixels: the stored pixels, untouched (uint8/uint16/float16/float32, ``[H, W]`` or
        ``[H, W, C]``); keep it to write unchanged pixels back bit-identically
        (:func:`relight_core.io.writers.write_like_source`). May be read-only.
    path: the file it came from (the video file for video frames).
    colourspace: the colour space ``rgb`` was decoded from (canonical name).
    premultiplied: True when colour is stored premultiplied by alpha (EXR convention).
    """

    number: int
    rgb: np.ndarray
    alpha: np.ndarray | None
    source_pixels: np.ndarray
    path: Path
    colourspace: str
    premultiplied: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]


def parse_frame_range(text: str) -> range:
    """``"1001:1100"`` (inclusive, as artists write it) -> ``range(1001, 1101)``; ``"1001"`` ->
    one frame. Raises PlateError for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[:-]\s*(\d+)\s*)?", str(text))
    if not m:
        raise PlateError(f"bad frame range {text!r}: write START:END, e.g. 1001:1100")
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) is not None else start
    if end < start:
        raise PlateError(f"bad frame range {text!r}: END ({end}) is before START ({start})")
    return range(start, end + 1)


class PlateReader:
    """A plate opened by :func:`open_plate`: metadata plus a fresh frame stream per iteration.

    Attributes: ``path`` (as given), ``kind`` ("video" | "sequence"), ``frame_numbers`` (the
    frames this reader yields, in order), ``missing_frames`` (gaps inside the selected range),
    ``size`` (width, height), ``fps``, ``has_alpha``, ``colourspace`` (None = per file: sRGB for
    integer pixels, linear for float), ``pattern`` (sequence pattern or the video path),
    ``files`` (frame -> path, sequences only), ``video`` (:class:`VideoInfo`, video only).
    """

    def __init__(self, path, kind, frame_numbers, size, fps, has_alpha, colourspace, *,
                 pattern, files=None, video=None, missing_frames=(), video_start=1):
        self.path = Path(path)
        self.kind = kind
        self.frame_numbers = list(frame_numbers)
        self.size = size
        self.fps = fps
        self.has_alpha = has_alpha
        self.colourspace = colourspace
        self.pattern = pattern
        self.files = files
        self.video = video
        self.missing_frames = list(missing_frames)
        self._video_start = video_start

    def __len__(self) -> int:
        return len(self.frame_numbers)

    def __repr__(self) -> str:
        span = f"{self.frame_numbers[0]}-{self.frame_numbers[-1]}" if self.frame_numbers else "none"
        return (f"PlateReader({self.pattern!r}, {self.kind}, frames {span} ({len(self)}), "
                f"{self.size[0]}x{self.size[1]}, {self.fps:g} fps, alpha={self.has_alpha})")

    def __iter__(self) -> Iterator[Frame]:
        if self.kind == "video":
            yield from self._iter_video(self.frame_numbers)
        else:
            for number in self.frame_numbers:
                yield self._read_file_frame(number)

    def is_source(self, path: str | Path) -> bool:
        """True when ``path`` is one of this plate's own files (never write over those)."""
        target = Path(path).resolve()
        sources = [self.path] if self.kind == "video" else list(self.files.values())
        return any(target == Path(p).resolve() for p in sources)

    def read_frame(self, number: int) -> Frame:
        """One frame by source number (video: decodes from the start of the clip up to it)."""
        if number not in self.frame_numbers:
            raise PlateError(
                f"frame {number} is not in plate {self.pattern} "
                f"(frames {format_ranges(self.frame_numbers)})"
            )
        if self.kind == "video":
            return next(iter(self._iter_video([number])))
        return self._read_file_frame(number)

    # -- internals --

    def _decode(self, number: int, pixels: np.ndarray, path: Path, premultiplied: bool) -> Frame:
        space = self.colourspace or (_colour.LINEAR if pixels.dtype.kind == "f" else _colour.SRGB)
        space = _colour.canonical_colourspace(space)
        try:
            rgb, alpha = _colour.decode(pixels, space)
        except (ValueError, TypeError) as exc:
            raise PlateError(f"frame {number} ({path}): cannot decode from {space}: {exc}") from exc
        return Frame(number, rgb, alpha, pixels, path, space, premultiplied)

    def _read_file_frame(self, number: int) -> Frame:
        path = self.files[number]
        try:
            pixels = read_image(path)
        except PlateError as exc:
            raise PlateError(f"frame {number}: {exc}") from exc
        h, w = pixels.shape[:2]
        if (w, h) != self.size:
            raise PlateError(
                f"frame {number} ({path}) is {w}x{h} but the plate is "
                f"{self.size[0]}x{self.size[1]}; all frames of a sequence must have one size"
            )
        return self._decode(number, pixels, path, premultiplied=path.suffix.lower() == ".exr")

    def _iter_video(self, numbers: list[int]) -> Iterator[Frame]:
        if not numbers:
            return
        first = numbers[0] - self._video_start
        count = numbers[-1] - numbers[0] + 1
        wanted = set(numbers)
        for offset, pixels in enumerate(stream_video(self.path, self.video, first, count)):
            number = numbers[0] + offset
            if number in wanted:
                yield self._decode(number, pixels, self.path, premultiplied=False)


def _select(numbers: list[int], frames: range | None, pattern: str) -> list[int]:
    if frames is None:
        return numbers
    if not numbers:
        return []
    frames = range(frames.start, frames.stop, frames.step or 1)
    if len(frames) == 0:
        raise PlateError(f"empty frame range {frames} for plate {pattern}")
    outside = [n for n in (frames[0], frames[-1]) if n < numbers[0] or n > numbers[-1]]
    if outside:
        raise PlateError(
            f"frames {frames[0]}-{frames[-1]} are outside plate {pattern}, which has frames "
            f"{numbers[0]}-{numbers[-1]}; choose a range inside it"
        )
    have = set(numbers)
    return [n for n in frames if n in have]


def _open_video(path: Path, colourspace, frames, fps, video_start) -> PlateReader:
    info = probe_video(path)
    numbers = list(range(video_start, video_start + info.frame_count))
    return PlateReader(
        path, "video", _select(numbers, frames, str(path)), info.size,
        float(fps or info.fps or DEFAULT_FPS), info.has_alpha, colourspace,
        pattern=str(path), video=info, video_start=video_start,
    )


def _open_sequence(path: Path, colourspace, frames, fps, allow_gaps) -> PlateReader:
    if is_pattern(path):
        seq = find_sequence(path)
    elif path.is_dir():
        seq = scan_folder(path)
    else:
        m = re.match(r"^(.*?)(\d+)(\D*)$", path.stem)
        seq = Sequence(str(path), {int(m.group(2)) if m else 1: path})
    numbers = _select(seq.numbers, frames, seq.pattern)
    missing = seq.missing if frames is None else [n for n in seq.missing if n in frames]
    if missing and not allow_gaps:
        raise PlateError(
            f"sequence {seq.pattern} has gaps: frames {format_ranges(missing)} are missing "
            f"({len(missing)} frames). Render or copy them, choose a range without gaps "
            "(--frames START:END), or allow gaps (allow_gaps=True / --allow-gaps) to skip them"
        )
    # headers of every selected frame: size and readability, before any work starts
    first_info: ImageInfo | None = None
    for number in numbers:
        file = seq.files[number]
        try:
            info = probe_image(file)
        except PlateError as exc:
            raise PlateError(f"frame {number}: {exc}") from exc
        if first_info is None:
            first_info = info
        elif info.size != first_info.size:
            raise PlateError(
                f"mixed resolutions in {seq.pattern}: frame {number} ({file.name}) is "
                f"{info.size[0]}x{info.size[1]} but frame {numbers[0]} is "
                f"{first_info.size[0]}x{first_info.size[1]}. Re-render or reformat the "
                "odd frames so the whole sequence has one size"
            )
    if first_info is None:
        raise PlateError(f"no frames selected from {seq.pattern}")
    return PlateReader(
        path, "sequence", numbers, first_info.size, float(fps or DEFAULT_FPS),
        first_info.channels in (2, 4), colourspace, pattern=seq.pattern,
        files={n: seq.files[n] for n in numbers}, missing_frames=missing,
    )


def open_plate(
    path: str | Path,
    colourspace: str | None = None,
    frames: range | None = None,
    *,
    allow_gaps: bool = False,
    fps: float | None = None,
    video_start: int = 1,
) -> PlateReader:
    """Open a plate for streaming: a video file, a ``####``/``%04d`` pattern, a folder holding
    one numbered image sequence, or a single image file.

    colourspace: the plates' colour space; None = sRGB for 8/16-bit and video, linear for float
        (EXR). Checked here, so a bad name fails before any frame is read.
    frames: the source frame numbers to read (``range(1001, 1101)``; see
        :func:`parse_frame_range`); None = all. Must lie inside the plate.
    allow_gaps: skip missing sequence frames instead of failing.
    fps: frame rate; default: the video's own, or 24 for sequences.
    video_start: number of the first video frame (default 1).

    Raises :class:`PlateError` (a ValueError) whose message names the file or frame and says
    what to do.
    """
    if colourspace is not None:
        _check_colourspace(colourspace)
    path = Path(path)
    ext = path.suffix.lower()
    if ext in VIDEO_EXTENSIONS and not is_pattern(path):
        return _open_video(path, colourspace, frames, fps, video_start)
    if is_pattern(path) or path.is_dir():
        return _open_sequence(path, colourspace, frames, fps, allow_gaps)
    if not path.exists():
        raise PlateError(f"plate not found: {path} does not exist; check the path")
    if ext in IMAGE_EXTENSIONS:
        return _open_sequence(path, colourspace, frames, fps, allow_gaps)
    raise PlateError(
        f"unsupported plate {path}: {path.suffix or 'no extension'} is neither a video "
        f"({', '.join(VIDEO_EXTENSIONS)}) nor an image ({', '.join(IMAGE_EXTENSIONS)}); "
        "convert it or pass an image sequence pattern like shot.####.exr"
    )


def _check_colourspace(name: str) -> None:
    try:
        _colour.decode(np.zeros((1, 1, 3), np.float32), name)
    except ValueError as exc:
        raise PlateError(f"colour space {name!r}: {exc}") from exc

