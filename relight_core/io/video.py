"""Video files through the ffmpeg binary that ships with imageio-ffmpeg (no system ffmpeg).

Frames are streamed from an ffmpeg subprocess through a pipe, one at a time, so memory does not
grow with the length of the clip. The first video stream is used; every decoded frame is
delivered once (``-fps_mode passthrough``: no frames are duplicated or dropped for a constant
output rate). Stored pixels are uint8 ``rgb24`` / ``rgba`` or, for sources deeper than 8 bits
(10-bit ProRes, 16-bit PNG movies ...), uint16 ``rgb48`` / ``rgba64``; ``[H, W, 3|4]``.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import PlateError

__all__ = ["VIDEO_EXTENSIONS", "VideoInfo", "probe_video", "stream_video"]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mxf", ".mpg", ".mpeg")

# ffmpeg log lines that mean the file is damaged (seen on truncated or corrupt containers)
_DAMAGE = ("partial file", "corrupt", "invalid data", "truncat", "moov atom not found",
           "error while decoding", "invalid nal")
_ALPHA_FORMAT = re.compile(r"yuva|gbrap|rgba|bgra|argb|abgr|^ya\d|^pal8")
_DEPTH = re.compile(r"(\d+)(le|be)$")


@dataclass(frozen=True)
class VideoInfo:
    """What a probe found: ``size`` (width, height) of the decoded frames, ``fps`` (0 when the
    file does not say), ``frame_count`` (counted from the packets), ``pix_fmt``, ``codec``,
    ``has_alpha``, ``deep`` (more than 8 bits per channel: decoded to uint16)."""

    size: tuple[int, int]
    fps: float
    frame_count: int
    pix_fmt: str
    codec: str
    has_alpha: bool
    deep: bool

    @property
    def channels(self) -> int:
        return 4 if self.has_alpha else 3

    @property
    def output_format(self) -> tuple[str, int]:
        """(ffmpeg pix_fmt, bits per pixel) of the decoded frames."""
        c = self.channels
        if self.deep:
            return ("rgba64le" if c == 4 else "rgb48le"), 16 * c
        return ("rgba" if c == 4 else "rgb24"), 8 * c


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _damage_lines(log: str) -> list[str]:
    return [line.strip() for line in log.splitlines() if any(m in line.lower() for m in _DAMAGE)]


def probe_video(path: str | Path) -> VideoInfo:
    """Check that a video can be read and count its frames. Raises PlateError naming the file
    when it is missing, has no video stream, or is truncated/corrupt."""
    path = Path(path)
    if not path.is_file():
        raise PlateError(f"video file not found: {path}")
    # 1. count the packets of the first video stream without decoding (fast), and let the
    #    demuxer report damage (a cut-off file, a missing index)
    cmd = [_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0",
           "-c", "copy", "-f", "null", "-"]
    run = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    log = run.stderr.decode(errors="replace").replace(str(path), path.name)
    damage = _damage_lines(log.replace(path.name, "<file>"))  # the name may hold a marker word
    if run.returncode != 0 or damage:
        if "matches no streams" in log:
            raise PlateError(f"{path} has no video stream; pass a video file or an image sequence")
        detail = "; ".join(damage[-2:]) or (log.strip().splitlines() or ["no output"])[-1]
        raise PlateError(
            f"cannot read video {path}: it is truncated or corrupt (ffmpeg: {detail}). "
            "Re-export or re-copy the file, or convert it to an image sequence"
        )
    counts = re.findall(r"frame=\s*(\d+)", log)
    frame_count = int(counts[-1]) if counts else 0
    if frame_count == 0:
        raise PlateError(f"video {path} holds no frames; re-export it")
    # 2. the decoder's view: size after rotation, fps, pixel format
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(gen)
    except Exception as exc:
        raise PlateError(f"cannot read video {path}: {exc}. Re-export or re-copy the file") from exc
    finally:
        gen.close()
    pix_fmt = str(meta.get("pix_fmt", "")).split("(")[0].strip()
    depth = _DEPTH.search(pix_fmt)
    bits = int(depth.group(1)) if depth else 8
    return VideoInfo(
        size=tuple(int(v) for v in meta["size"]),
        fps=float(meta.get("fps") or 0.0),
        frame_count=frame_count,
        pix_fmt=pix_fmt,
        codec=str(meta.get("codec", "")),
        has_alpha=bool(_ALPHA_FORMAT.search(pix_fmt)),
        deep=bits > 8 and bits not in (24, 32),
    )


def stream_video(
    path: str | Path, info: VideoInfo, start: int = 0, count: int | None = None
) -> Iterator[np.ndarray]:
    """Yield stored pixels ``[H, W, 3|4]`` (uint8, or uint16 when ``info.deep``) of frames
    ``start, start+1, ...`` (0-based decode order), at most ``count`` of them.

    Frames before ``start`` are decoded and dropped inside ffmpeg (exact, no timestamp maths).
    The arrays are read-only views of the pipe buffers. Closing the generator stops ffmpeg.
    Raises PlateError when the stream stops before the probed frame count.
    """
    import imageio_ffmpeg

    pix_fmt, bits = info.output_format
    w, h = info.size
    output = ["-map", "0:v:0", "-fps_mode", "passthrough"]
    if start > 0:
        output += ["-vf", f"select=gte(n\\,{int(start)})"]
    wanted = info.frame_count - start if count is None else min(count, info.frame_count - start)
    output += ["-frames:v", str(max(wanted, 0))]
    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt=pix_fmt, bits_per_pixel=bits,
                                     output_params=output)
    dtype = np.dtype("<u2") if info.deep else np.dtype(np.uint8)
    delivered = 0
    try:
        next(gen)
        for data in gen:
            pixels = np.frombuffer(data, dtype=dtype).reshape(h, w, info.channels)
            yield pixels if dtype == np.uint8 else pixels.astype(np.uint16)
            delivered += 1
    except PlateError:
        raise
    except (RuntimeError, OSError) as exc:
        raise PlateError(
            f"video {path} stopped at frame index {start + delivered}: {exc}. "
            "The file is damaged; re-export it"
        ) from exc
    finally:
        gen.close()
    if delivered < wanted:
        raise PlateError(
            f"video {path} ended after {start + delivered} of {info.frame_count} frames; the file "
            "is truncated or damaged. Re-export it (frames already written are kept)"
        )
