"""Writers: atomic files, output names, multilayer EXR channel names, MP4 preview, and
bit-identical pass-through."""

from __future__ import annotations

import os

import numpy as np
import pytest
from io_helpers import gradient, save_png8
from PIL import Image

from relight_core.io import (
    MovieWriter,
    PlateError,
    atomic_path,
    encode_like_source,
    open_plate,
    output_path,
    sequence_pattern,
    write_exr,
    write_like_source,
    write_multilayer_exr,
    write_png,
)
from relight_core.io.exr import exr_channel_names, exr_pixel_types

OpenEXR = pytest.importorskip("OpenEXR")  # absent on the GPU machine


def _only_visible(folder):
    return sorted(p.name for p in folder.iterdir())


# --- atomic writes ----------------------------------------------------------------------------


def test_atomic_path_publishes_complete_file(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".")
        tmp.write_text("complete")
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_text() == "complete"
    assert _only_visible(target.parent) == ["a.txt"]
    assert (target.stat().st_mode & 0o777) == (0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_path_interrupted_leaves_no_partial_file(tmp_path):
    target = tmp_path / "frame.png"
    with pytest.raises(RuntimeError, match="render crashed"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a file")
            raise RuntimeError("render crashed")
    assert _only_visible(tmp_path) == []

    target.write_bytes(b"old good frame")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old good frame"
    assert _only_visible(tmp_path) == ["frame.png"]


def test_writer_failure_keeps_previous_frame(tmp_path):
    target = write_png(tmp_path / "f.png", gradient())
    before = target.read_bytes()
    with pytest.raises(ValueError):
        write_exr(tmp_path / "f.exr", gradient())  # integer pixels are refused before writing
    with pytest.raises(ValueError, match="unknown EXR compression"):
        write_exr(tmp_path / "g.exr", gradient(dtype=np.float32), compression="bogus")
    assert target.read_bytes() == before
    assert _only_visible(tmp_path) == ["f.png"]


def test_empty_result_is_not_published(tmp_path):
    with pytest.raises(PlateError, match="produced no data"):
        with atomic_path(tmp_path / "x.exr"):
            pass
    assert _only_visible(tmp_path) == []


def test_output_path_names():
    assert str(output_path("out", "beauty", 1001, "exr")) == "out/beauty/beauty.1001.exr"
    assert str(output_path("out", "depth", 7, ".png")) == "out/depth/depth.0007.png"
    assert str(output_path("out", "beauty", 12345, "exr")) == "out/beauty/beauty.12345.exr"
    assert str(sequence_pattern("out", "beauty", "exr")) == "out/beauty/beauty.####.exr"
    with pytest.raises(ValueError):
        output_path("out", "a/b", 1, "exr")


def test_written_sequence_reads_back(tmp_path):
    rgb = gradient(8, 10, 3, np.float32) / 4
    for n in (1001, 1002):
        write_exr(output_path(tmp_path, "relit", n, "exr"), rgb, half=False)
    plate = open_plate(sequence_pattern(tmp_path, "relit", "exr"))
    assert plate.frame_numbers == [1001, 1002]
    np.testing.assert_array_equal(next(iter(plate)).rgb, rgb)


# --- EXR --------------------------------------------------------------------------------------


def test_single_layer_exr_channels_and_metadata(tmp_path):
    depth = gradient(6, 7, 1, np.float32)
    write_exr(tmp_path / "z.exr", depth, channels=("Z",), half=False, metadata={"relight.pose": [1, 2]})
    assert exr_channel_names(tmp_path / "z.exr") == ["Z"]
    with OpenEXR.File(str(tmp_path / "z.exr"), separate_channels=True) as f:
        assert f.header()["relight.pose"] == "[1, 2]"
        np.testing.assert_array_equal(f.channels()["Z"].pixels, depth[..., 0])
    write_exr(tmp_path / "rgba.exr", gradient(6, 7, 4, np.float32))
    assert exr_channel_names(tmp_path / "rgba.exr") == ["A", "B", "G", "R"]
    assert set(exr_pixel_types(tmp_path / "rgba.exr").values()) == {"HALF"}


def test_multilayer_exr_reads_back_with_compositor_channel_names(tmp_path):
    h, w = 6, 8
    layers = {
        "beauty": gradient(h, w, 4, np.float32, seed=1),
        "albedo": gradient(h, w, 3, np.float32, seed=2),
        "normal": gradient(h, w, 3, np.float32, seed=3),
        "depth": gradient(h, w, 1, np.float32, seed=4)[..., 0],
        "alpha": gradient(h, w, 1, np.float32, seed=5),
    }
    path = write_multilayer_exr(tmp_path / "passes.1001.exr", layers, metadata={"frame": 1001})
    names = exr_channel_names(path)
    assert sorted(names) == sorted(
        ["beauty.R", "beauty.G", "beauty.B", "beauty.A", "albedo.R", "albedo.G", "albedo.B",
         "normal.X", "normal.Y", "normal.Z", "depth.Z", "alpha.A"])
    types = exr_pixel_types(path)
    assert types["depth.Z"] == "FLOAT" and types["beauty.R"] == "HALF"
    with OpenEXR.File(str(path), separate_channels=True) as f:
        ch = f.channels()
        np.testing.assert_array_equal(ch["depth.Z"].pixels, layers["depth"])
        np.testing.assert_array_equal(ch["normal.Y"].pixels, layers["normal"][..., 1].astype(np.float16))
        np.testing.assert_array_equal(ch["beauty.A"].pixels, layers["beauty"][..., 3].astype(np.float16))
        assert f.header()["frame"] == 1001
    assert _only_visible(tmp_path) == ["passes.1001.exr"]


def test_multilayer_exr_blender_prefix_and_default_layer(tmp_path):
    layers = {"beauty": gradient(4, 4, 4, np.float32), "depth": gradient(4, 4, 1, np.float32)}
    blender = write_multilayer_exr(tmp_path / "b.exr", layers, prefix="ViewLayer")
    assert "ViewLayer.beauty.R" in exr_channel_names(blender)
    assert "ViewLayer.depth.Z" in exr_channel_names(blender)
    nuke = write_multilayer_exr(tmp_path / "n.exr", layers, default_layer="beauty",
                                channel_names={"depth": ("V",)})
    assert sorted(exr_channel_names(nuke)) == ["A", "B", "G", "R", "depth.V"]
    # a plate reader picks the default layer's R,G,B,A
    frame = next(iter(open_plate(nuke)))
    assert frame.alpha is not None and frame.rgb.shape == (4, 4, 3)
    with pytest.raises(ValueError, match="is \\(3, 4\\)"):
        write_multilayer_exr(tmp_path / "bad.exr", {"a": np.zeros((4, 4, 3)), "b": np.zeros((3, 4, 3))})
    assert not (tmp_path / "bad.exr").exists()


# --- MP4 preview ------------------------------------------------------------------------------


def test_mp4_preview_is_playable(tmp_path):
    path = tmp_path / "preview.mp4"
    grey = np.full((27, 41, 3), 0.214041140, np.float32)  # odd size: padded to 42x28
    with MovieWriter(path, fps=24) as movie:
        for i in range(15):
            movie.write(grey * (1 + (i % 2)))
        assert not path.exists()  # only the hidden temp file while writing
    assert _only_visible(tmp_path) == ["preview.mp4"]
    plate = open_plate(path)
    assert len(plate) == 15 and plate.size == (42, 28) and plate.fps == 24
    first = next(iter(plate))
    assert abs(float(np.median(first.source_pixels)) - 128) <= 3  # sRGB 0.5, BT.709 YUV


def test_mp4_preview_aborted_leaves_nothing(tmp_path):
    path = tmp_path / "preview.mp4"
    with pytest.raises(RuntimeError):
        with MovieWriter(path) as movie:
            movie.write(gradient(16, 16, 3, np.uint8))
            raise RuntimeError("stop")
    assert _only_visible(tmp_path) == []
    movie = MovieWriter(path)
    movie.write(gradient(16, 16, 3, np.uint8))
    with pytest.raises(ValueError, match="16x16"):
        movie.write(gradient(8, 8, 3, np.uint8))
    movie.abort()
    assert _only_visible(tmp_path) == []
    with pytest.raises(PlateError, match="no frames"):
        MovieWriter(path).close()


# --- bit-identical pass-through ---------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_8bit_png_source_is_reproduced_exactly(tmp_path, channels):
    source = gradient(16, 20, channels, np.uint8)
    save_png8(tmp_path / "plate.1001.png", source)
    frame = next(iter(open_plate(tmp_path / "plate.####.png")))
    out = write_like_source(tmp_path / "out" / "o.1001.png", frame, frame.rgb.copy(), frame.alpha)
    back = np.array(Image.open(out))
    back = back if back.ndim == 3 else back[:, :, None]
    src = source if source.ndim == 3 else source[:, :, None]
    # colour channels equal the source's (grey sources come back as equal R=G=B)
    colour = src[..., :1] if channels <= 2 else src[..., :3]
    np.testing.assert_array_equal(back[..., :3], np.broadcast_to(colour, back[..., :3].shape))
    if channels in (2, 4):
        np.testing.assert_array_equal(back[..., 3], src[..., -1])
    # unchanged source pixels written straight through are byte-equal images
    raw = write_like_source(tmp_path / "raw.png", frame)
    np.testing.assert_array_equal(np.array(Image.open(raw)), np.array(Image.open(tmp_path / "plate.1001.png")))


def test_16bit_and_exr_sources_are_reproduced_exactly(tmp_path):
    deep = gradient(12, 14, 4, np.uint16)
    write_png(tmp_path / "d.0001.png", deep, bits=16)
    frame = next(iter(open_plate(tmp_path / "d.####.png")))
    np.testing.assert_array_equal(encode_like_source(frame, frame.rgb, frame.alpha), deep)
    out = write_like_source(tmp_path / "o.png", frame, frame.rgb)
    np.testing.assert_array_equal(next(iter(open_plate(out))).source_pixels, deep)

    half = gradient(12, 14, 3, np.float32).astype(np.float16)
    write_exr(tmp_path / "h.0001.exr", half)
    frame = next(iter(open_plate(tmp_path / "h.####.exr")))
    assert encode_like_source(frame, frame.rgb).dtype == np.float16
    out = write_like_source(tmp_path / "o.exr", frame, frame.rgb)
    np.testing.assert_array_equal(next(iter(open_plate(out))).source_pixels, half)
    with pytest.raises(PlateError, match="use .exr"):
        write_like_source(tmp_path / "o.png", frame)


def test_video_frames_pass_through_exactly(clip_path, tmp_path):
    frame = next(iter(open_plate(clip_path, frames=range(1, 2))))
    out = write_like_source(tmp_path / "f.0001.png", frame, frame.rgb)
    np.testing.assert_array_equal(np.array(Image.open(out)), frame.source_pixels)
