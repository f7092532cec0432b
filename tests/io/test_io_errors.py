"""Bad input: every case gets a PlateError naming the file or frame and saying what to do."""

from __future__ import annotations

import numpy as np
import pytest
from io_helpers import gradient, make_sequence, save_png8

from relight_core.io import MovieWriter, PlateError, open_plate


def _small_movie(path, frames=12, faststart=True):
    """A real H.264 mp4 (moov first with faststart, else moov at the end)."""
    if faststart:
        with MovieWriter(path, fps=24) as movie:
            for i in range(frames):
                movie.write(gradient(32, 48, 3, np.uint8, seed=i))
        return path
    import imageio_ffmpeg

    gen = imageio_ffmpeg.write_frames(str(path), (48, 32), fps=24, macro_block_size=1,
                                      ffmpeg_log_level="error")
    gen.send(None)
    for i in range(frames):
        gen.send(gradient(32, 48, 3, np.uint8, seed=i).tobytes())
    gen.close()
    return path


def test_plate_error_is_a_value_error():
    assert issubclass(PlateError, ValueError)


@pytest.mark.parametrize("name", ["missing.mp4", "missing.1001.exr", "missing.png", "nothere"])
def test_missing_file(tmp_path, name):
    with pytest.raises(PlateError, match="not found") as err:
        open_plate(tmp_path / name)
    assert name in str(err.value)


def test_missing_pattern_folder_and_no_matching_files(tmp_path):
    with pytest.raises(PlateError, match="folder not found"):
        open_plate(tmp_path / "nope" / "shot.####.exr")
    make_sequence(tmp_path, "shot", [1, 2])  # 4-digit files
    with pytest.raises(PlateError, match=r"no files match .*shot\.###\.png.*padding"):
        open_plate(tmp_path / "shot.###.png")


def test_unreadable_video(tmp_path):
    bad = tmp_path / "notavideo.mp4"
    bad.write_bytes(b"this is not a video file at all" * 100)
    with pytest.raises(PlateError, match=r"cannot read video .*notavideo\.mp4.*Re-export"):
        open_plate(bad)


@pytest.mark.parametrize("faststart", [True, False])
def test_truncated_video(tmp_path, faststart):
    movie = _small_movie(tmp_path / "full.mp4", faststart=faststart)
    assert len(open_plate(movie)) == 12
    data = movie.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(PlateError, match=r"cut\.mp4.*truncated or corrupt"):
        open_plate(cut)


def test_truncated_real_clip(tmp_path, clip_path):
    cut = tmp_path / "clip_cut.mp4"
    cut.write_bytes(clip_path.read_bytes()[:300_000])
    with pytest.raises(PlateError, match="truncated or corrupt"):
        open_plate(cut)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlateError, match=r"empty holds no numbered image sequence.*shot\.1001\.exr"):
        open_plate(tmp_path / "empty")
    (tmp_path / "empty" / "readme.txt").write_text("x")
    (tmp_path / "empty" / ".hidden.0001.png").write_bytes(b"")
    with pytest.raises(PlateError, match="no numbered image sequence"):
        open_plate(tmp_path / "empty")


def test_folder_with_two_sequences(tmp_path):
    make_sequence(tmp_path, "beauty", [1, 2])
    make_sequence(tmp_path, "matte", [1, 2])
    with pytest.raises(PlateError, match=r"several image sequences: beauty\.####\.png .*matte"):
        open_plate(tmp_path)


def test_sequence_with_gaps(tmp_path):
    make_sequence(tmp_path, "shot", [1001, 1002, 1003, 1007, 1009, 1010])
    with pytest.raises(PlateError) as err:
        open_plate(tmp_path / "shot.####.png")
    msg = str(err.value)
    assert "gaps" in msg and "1004-1006, 1008" in msg and "allow_gaps" in msg
    plate = open_plate(tmp_path / "shot.####.png", allow_gaps=True)
    assert plate.frame_numbers == [1001, 1002, 1003, 1007, 1009, 1010]
    assert plate.missing_frames == [1004, 1005, 1006, 1008]
    assert [f.number for f in plate] == plate.frame_numbers
    with pytest.raises(PlateError, match=r"frames 1004-1006 are missing"):
        open_plate(tmp_path / "shot.####.png", frames=range(1004, 1008))
    # a range without gaps is fine without allow_gaps
    assert open_plate(tmp_path / "shot.####.png", frames=range(1001, 1004)).frame_numbers == [1001, 1002, 1003]


def test_mixed_resolutions_name_the_first_offending_frame(tmp_path):
    make_sequence(tmp_path, "shot", range(1001, 1006),
                  size=lambda n: (40, 24) if n in (1003, 1005) else (32, 24))
    with pytest.raises(PlateError) as err:
        open_plate(tmp_path / "shot.####.png")
    msg = str(err.value)
    assert "mixed resolutions" in msg and "frame 1003" in msg and "shot.1003.png" in msg
    assert "40x24" in msg and "32x24" in msg and "1005" not in msg


def test_unsupported_extension(tmp_path):
    odd = tmp_path / "plate.xyz"
    odd.write_bytes(b"data")
    with pytest.raises(PlateError, match=r"unsupported plate .*plate\.xyz.*\.xyz"):
        open_plate(odd)
    with pytest.raises(PlateError, match="unsupported image type"):
        open_plate(tmp_path / "shot.####.xyz")


def test_corrupt_frame_in_a_sequence_is_named_at_open(tmp_path):
    paths = make_sequence(tmp_path, "shot", range(1001, 1004))
    paths[1].write_bytes(paths[1].read_bytes()[:30])  # truncated PNG
    with pytest.raises(PlateError, match=r"frame 1002: cannot read image .*shot\.1002\.png.*re-render"):
        open_plate(tmp_path / "shot.####.png")


def test_corrupt_pixels_found_while_streaming_name_the_frame(tmp_path):
    paths = make_sequence(tmp_path, "shot", range(1001, 1004), size=(64, 64))
    plate = open_plate(tmp_path / "shot.####.png")
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) - 200])  # header intact, pixel data cut
    frames = iter(plate)
    assert next(frames).number == 1001
    assert next(frames).number == 1002
    with pytest.raises(PlateError, match=r"frame 1003: .*shot\.1003\.png"):
        next(frames)


def test_bad_colourspace_fails_at_open(tmp_path):
    save_png8(tmp_path / "a.0001.png", gradient())
    with pytest.raises(PlateError, match="colour space 'no-such-space'"):
        open_plate(tmp_path / "a.####.png", colourspace="no-such-space")
