"""Finding the files of an image sequence: patterns, folders, frame numbers, gaps.

Patterns (in the file name, not in folder names):

* ``shot.####.exr``: ``#`` x N means N-digit zero padding (``shot.1001.exr``); numbers wider
  than the padding are allowed without leading zeros (``shot.10000.exr``). A single ``#`` means
  no padding.
* ``frame_%04d.png`` (printf), ``frame_%d.png`` (no padding).

A folder is scanned for image files (``IMAGE_EXTENSIONS``; hidden files such as our own
temporary files are skipped) whose names end in a frame number (the last run of digits before
the extension: ``shot_v002.1001.exr`` is frame 1001). It must hold exactly one such sequence.
Frame numbers are non-negative and are the numbers in the file names (plates often start at
1001).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PlateError
from .images import IMAGE_EXTENSIONS

__all__ = ["Sequence", "is_pattern", "find_sequence", "scan_folder", "format_ranges"]

_TOKEN = re.compile(r"#+|%0?(\d*)d")
_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


@dataclass
class Sequence:
    """The files of one image sequence: ``files`` maps frame number -> path, in order."""

    pattern: str
    files: dict[int, Path]
    missing: list[int] = field(default_factory=list)

    @property
    def numbers(self) -> list[int]:
        return list(self.files)


def is_pattern(path: str | Path) -> bool:
    """True when the file name holds a ``####`` or ``%04d`` frame token."""
    return _TOKEN.search(Path(path).name) is not None


def format_ranges(numbers, limit: int = 12) -> str:
    """``[1004, 1005, 1006, 1010]`` -> ``"1004-1006, 1010"`` (at most ``limit`` ranges shown)."""
    numbers = sorted(numbers)
    ranges: list[tuple[int, int]] = []
    for n in numbers:
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], n)
        else:
            ranges.append((n, n))
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        parts.append(f"... ({len(numbers)} frames in all)")
    return ", ".join(parts)


def _finish(pattern: str, found: dict[int, Path]) -> Sequence:
    files = dict(sorted(found.items()))
    numbers = list(files)
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers)) if numbers else []
    return Sequence(pattern, files, missing)


def find_sequence(path: str | Path) -> Sequence:
    """The files matching a ``####`` / ``%04d`` pattern. Raises PlateError when none match."""
    path = Path(path)
    folder, name = path.parent, path.name
    tokens = list(_TOKEN.finditer(name))
    if len(tokens) != 1:
        raise PlateError(f"pattern {path} must hold exactly one frame token (#### or %04d)")
    token = tokens[0]
    text = token.group(0)
    pad = len(text) if text.startswith("#") else int(token.group(1) or 0)
    pad = 0 if pad == 1 and text == "#" else pad
    if Path(name[: token.start()] + "0" + name[token.end():]).suffix.lower() not in IMAGE_EXTENSIONS:
        raise PlateError(
            f"unsupported image type in pattern {path}; supported: {', '.join(IMAGE_EXTENSIONS)}"
        )
    if not folder.is_dir():
        raise PlateError(f"folder not found for pattern {path}: {folder} does not exist")
    regex = re.compile(
        re.escape(name[: token.start()]) + r"(\d+)" + re.escape(name[token.end():]) + r"$"
    )
    found: dict[int, Path] = {}
    for entry in folder.iterdir():
        m = regex.match(entry.name)
        if not m or entry.name.startswith(".") or not entry.is_file():
            continue
        digits = m.group(1)
        if len(digits) < pad or (len(digits) > pad and digits.startswith("0") and pad > 0):
            continue  # another padding: not this sequence
        number = int(digits)
        if number in found:
            raise PlateError(
                f"frame {number} matches two files, {found[number].name} and {entry.name}; "
                "remove one or use a padded pattern"
            )
        found[number] = entry
    if not found:
        raise PlateError(
            f"no files match {path}; check the folder and the padding (#### = 4 digits, "
            "e.g. shot.1001.exr)"
        )
    return _finish(str(path), found)


def scan_folder(folder: str | Path) -> Sequence:
    """The one numbered image sequence in ``folder``. Raises PlateError when the folder is
    missing, holds no numbered images, or holds several sequences."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PlateError(f"folder not found: {folder}")
    groups: dict[tuple[str, str], dict[int, Path]] = {}
    widths: dict[tuple[str, str], int] = {}
    unnumbered: list[str] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if not entry.is_file():
            continue
        m = _NUMBERED.match(entry.stem)
        if not m:
            unnumbered.append(entry.name)
            continue
        key = (m.group(1), m.group(3) + entry.suffix)
        number = int(m.group(2))
        group = groups.setdefault(key, {})
        if number in group:
            raise PlateError(
                f"frame {number} appears twice in {folder}: {group[number].name} and {entry.name}; "
                "remove one"
            )
        group[number] = entry
        widths[key] = min(widths.get(key, 99), len(m.group(2)))
    if not groups:
        extra = f" (found unnumbered images: {', '.join(unnumbered[:5])})" if unnumbered else ""
        raise PlateError(
            f"folder {folder} holds no numbered image sequence{extra}. Put frames named like "
            f"shot.1001.exr in it (supported: {', '.join(IMAGE_EXTENSIONS)})"
        )
    patterns = {key: f"{key[0]}{'#' * widths[key]}{key[1]}" for key in groups}
    if len(groups) > 1:
        listing = "; ".join(f"{patterns[k]} ({len(v)} frames)" for k, v in groups.items())
        raise PlateError(
            f"folder {folder} holds several image sequences: {listing}. Pass one as a pattern, "
            f"e.g. {folder / next(iter(patterns.values()))}"
        )
    key = next(iter(groups))
    return _finish(str(folder / patterns[key]), groups[key])
