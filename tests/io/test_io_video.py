"""Streaming the real clip (Tears of Steel, CC BY 3.0 (c) Blender Foundation): count, size,
fps, numbering, ranges and bounded memory."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from relight_core.io import PlateError, open_plate


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        import os

        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_clip_metadata(clip_path):
    plate = open_plate(clip_path)
    assert plate.kind == "video"
    assert len(plate) == 240
    assert plate.frame_numbers[0] == 1 and plate.frame_numbers[-1] == 240
    assert plate.size == (640, 360)
    assert plate.fps == 24.0
    assert not plate.has_alpha
    assert plate.is_source(clip_path)


def test_stream_whole_clip_in_bounded_memory(clip_path):
    plate = open_plate(clip_path)
    frame_bytes = 640 * 360 * 3 * 4  # one float32 frame: 2.8 MB; the clip decoded: 660 MB
    gc.collect()
    rss_before = _rss_bytes()
    tracemalloc.start()
    try:
        first = last = None
        count = 0
        for frame in plate:
            if first is None:
                first = frame
            last = frame
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = _rss_bytes() - rss_before
    assert count == 240 and (first.number, last.number) == (1, 240)
    assert first.rgb.shape == (360, 640, 3) and first.rgb.dtype == np.float32
    assert first.source_pixels.dtype == np.uint8 and first.alpha is None
    assert np.abs(first.rgb - last.rgb).mean() > 0.01  # different shots
    assert peak < 12 * frame_bytes, f"python heap peak {peak / 1e6:.1f} MB"
    assert rss_growth < 40 * frame_bytes, f"RSS grew {rss_growth / 1e6:.1f} MB"


def test_frame_range_matches_the_full_stream(clip_path):
    full = open_plate(clip_path)
    wanted = {}
    for frame in full:
        if frame.number in (120, 121, 122):
            wanted[frame.number] = frame.source_pixels.copy()
        if frame.number > 122:
            break  # leaving early stops ffmpeg
    part = open_plate(clip_path, frames=range(120, 123))
    assert part.frame_numbers == [120, 121, 122]
    got = {f.number: f.source_pixels for f in part}
    assert got.keys() == wanted.keys()
    for n in wanted:
        np.testing.assert_array_equal(got[n], wanted[n])
    np.testing.assert_array_equal(full.read_frame(121).source_pixels, wanted[121])
    with pytest.raises(PlateError, match="outside plate"):
        open_plate(clip_path, frames=range(230, 260))


def test_video_start_number_and_fps_override(clip_path):
    plate = open_plate(clip_path, video_start=1001, fps=25)
    assert plate.frame_numbers[0] == 1001 and plate.frame_numbers[-1] == 1240 and plate.fps == 25
    assert next(iter(open_plate(clip_path, frames=range(1001, 1002), video_start=1001))).number == 1001


def _write_movie(path, frames, pix_fmt):
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    gen = imageio_ffmpeg.write_frames(str(path), (w, h), fps=25, pix_fmt_in=pix_fmt,
                                      pix_fmt_out=pix_fmt.replace("48le", "48be"), codec="png",
                                      macro_block_size=1, ffmpeg_log_level="error")
    gen.send(None)
    for frame in frames:
        gen.send(frame.tobytes())
    gen.close()
    return path


def test_video_with_alpha_and_16bit_video_are_exact(tmp_path):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (3, 16, 24, 4), dtype=np.uint8)
    plate = open_plate(_write_movie(tmp_path / "alpha.mov", rgba, "rgba"))
    assert plate.has_alpha and plate.fps == 25 and len(plate) == 3
    for frame, want in zip(plate, rgba):
        np.testing.assert_array_equal(frame.source_pixels, want)
        np.testing.assert_array_equal(frame.alpha, want[..., 3] / np.float32(255))

    deep = rng.integers(0, 65536, (2, 16, 24, 3), dtype=np.uint16)
    plate = open_plate(_write_movie(tmp_path / "deep.mov", deep, "rgb48le"))
    assert plate.video.deep and not plate.has_alpha
    for frame, want in zip(plate, deep):
        assert frame.source_pixels.dtype == np.uint16
        np.testing.assert_array_equal(frame.source_pixels, want)
