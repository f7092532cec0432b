"""Image sequences and image files: patterns, folders, frame numbers, bit depths, alpha, EXR."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from io_helpers import gradient, make_sequence, save_png8
from PIL import Image

from relight_core.io import PlateError, decode, open_plate, parse_frame_range, write_exr, write_png
from relight_core.io.images import probe_image, read_image

OpenEXR = pytest.importorskip("OpenEXR")  # absent on the GPU machine


@pytest.mark.parametrize("pattern", ["shot.####.png", "shot.%04d.png", ""])
def test_sequence_keeps_1001_based_numbers(tmp_path, pattern):
    paths = make_sequence(tmp_path / "plate", "shot", range(1001, 1006))
    (tmp_path / "plate" / "notes.txt").write_text("not an image")
    plate = open_plate(tmp_path / "plate" / pattern if pattern else tmp_path / "plate")
    assert plate.kind == "sequence"
    assert plate.frame_numbers == [1001, 1002, 1003, 1004, 1005]
    assert plate.size == (32, 24) and plate.fps == 24.0 and not plate.has_alpha
    assert plate.pattern.endswith(pattern or "shot.####.png")
    frames = list(plate)
    assert [f.number for f in frames] == plate.frame_numbers
    for frame, path in zip(frames, paths):
        source = np.array(Image.open(path))
        assert frame.path == path
        np.testing.assert_array_equal(frame.source_pixels, source)
        np.testing.assert_array_equal(frame.rgb, decode(source, "sRGB")[0])
        assert frame.rgb.dtype == np.float32 and frame.rgb.shape == (24, 32, 3)
        assert frame.alpha is None and frame.colourspace == "sRGB"


def test_frame_range_and_random_access(tmp_path):
    make_sequence(tmp_path, "shot", range(1001, 1011))
    plate = open_plate(tmp_path / "shot.####.png", frames=parse_frame_range("1003:1005"))
    assert plate.frame_numbers == [1003, 1004, 1005]
    assert [f.number for f in plate] == [1003, 1004, 1005]
    assert plate.read_frame(1004).number == 1004
    with pytest.raises(PlateError, match="frame 1009 is not in plate"):
        plate.read_frame(1009)
    with pytest.raises(PlateError, match="outside plate"):
        open_plate(tmp_path / "shot.####.png", frames=range(990, 1003))
    assert parse_frame_range("1001") == range(1001, 1002)
    with pytest.raises(PlateError, match="START:END"):
        parse_frame_range("a:b")


def test_wide_numbers_and_unpadded_patterns(tmp_path):
    for n in (9998, 9999, 10000, 10001):
        save_png8(tmp_path / f"a.{n:04d}.png", gradient(4, 4))
    assert open_plate(tmp_path / "a.####.png").frame_numbers == [9998, 9999, 10000, 10001]
    for n in (8, 9, 10, 11):
        save_png8(tmp_path / f"b_{n}.png", gradient(4, 4))
    assert open_plate(tmp_path / "b_%d.png").frame_numbers == [8, 9, 10, 11]


def test_single_image_is_a_one_frame_plate(tmp_path):
    path = save_png8(tmp_path / "still.1042.png", gradient())
    plate = open_plate(path)
    assert plate.frame_numbers == [1042] and len(list(plate)) == 1


def test_16bit_png_round_trip(tmp_path):
    for channels in (1, 2, 3, 4):
        pixels = gradient(20, 30, channels, np.uint16, seed=channels)
        path = write_png(tmp_path / f"deep{channels}.0001.png", pixels, bits=16)
        assert probe_image(path).dtype == np.uint16 and probe_image(path).channels == channels
        back = read_image(path)
        np.testing.assert_array_equal(back.reshape(pixels.shape), pixels)
    plate = open_plate(tmp_path / "deep4.####.png")
    frame = next(iter(plate))
    assert plate.has_alpha and frame.source_pixels.dtype == np.uint16
    np.testing.assert_array_equal(frame.alpha, gradient(20, 30, 4, np.uint16, seed=4)[..., 3] / np.float32(65535))


def test_float_png_writer_encodes_linear_to_srgb(tmp_path):
    linear = np.full((4, 4, 3), 0.214041140, np.float32)
    write_png(tmp_path / "grey.png", linear, bits=8)
    assert (np.array(Image.open(tmp_path / "grey.png")) == 128).all()


def test_rgba_alpha_is_carried_and_not_colour_converted(tmp_path):
    pixels = gradient(16, 16, 4, np.uint8)
    save_png8(tmp_path / "rgba.1001.png", pixels)
    plate = open_plate(tmp_path / "rgba.####.png")
    frame = next(iter(plate))
    assert plate.has_alpha and frame.alpha.shape == (16, 16)
    np.testing.assert_array_equal(frame.alpha, pixels[..., 3] / np.float32(255))
    np.testing.assert_array_equal(frame.rgb, decode(pixels[..., :3])[0])


@pytest.mark.parametrize("mode", ["L", "LA", "I;16"])
def test_grey_inputs_become_rgb(tmp_path, mode):
    if mode == "I;16":
        pixels = gradient(8, 8, 1, np.uint16)[..., 0]
        Image.fromarray(pixels).save(tmp_path / "g.0001.png")
    else:
        pixels = gradient(8, 8, len(mode), np.uint8)
        save_png8(tmp_path / "g.0001.png", pixels)
    frame = next(iter(open_plate(tmp_path / "g.####.png")))
    grey = pixels if pixels.ndim == 2 else pixels[..., 0]
    assert frame.rgb.shape == (8, 8, 3)
    np.testing.assert_array_equal(frame.rgb[..., 1], decode(grey)[0][..., 0])
    assert (frame.alpha is not None) == (mode == "LA")


def test_jpeg_and_tiff_inputs(tmp_path):
    make_sequence(tmp_path / "jpg", "j", [1, 2], ext="jpg")
    assert len(list(open_plate(tmp_path / "jpg"))) == 2
    deep = gradient(10, 12, 3, np.uint16)
    tifffile.imwrite(tmp_path / "t16.0001.tif", deep)
    np.testing.assert_array_equal(next(iter(open_plate(tmp_path / "t16.####.tif"))).source_pixels, deep)
    flt = gradient(10, 12, 1, np.float32)[..., 0]
    tifffile.imwrite(tmp_path / "tf.0001.tif", flt)
    frame = next(iter(open_plate(tmp_path / "tf.####.tif")))
    assert frame.colourspace == "linear"  # float files default to linear
    np.testing.assert_array_equal(frame.rgb[..., 0], flt)


@pytest.mark.parametrize("half", [False, True])
def test_exr_float_round_trip(tmp_path, half):
    rgb = gradient(12, 16, 3, np.float32)
    alpha = np.linspace(0, 1, 12 * 16, dtype=np.float32).reshape(12, 16)
    for n in (1001, 1002):
        write_exr(tmp_path / f"lin.{n}.exr", rgb, alpha=alpha, half=half, metadata={"frame": n})
    plate = open_plate(tmp_path / "lin.####.exr")
    frame = next(iter(plate))
    dtype = np.float16 if half else np.float32
    assert plate.has_alpha and frame.colourspace == "linear" and frame.premultiplied
    assert frame.source_pixels.dtype == dtype
    np.testing.assert_array_equal(frame.rgb, rgb.astype(dtype).astype(np.float32))
    np.testing.assert_array_equal(frame.alpha, alpha.astype(dtype).astype(np.float32))


def test_exr_grey_layer_and_data_window(tmp_path):
    y = gradient(6, 8, 1, np.float32)[..., 0]
    write_exr(tmp_path / "y.0001.exr", y, half=False)  # a "Y" channel
    np.testing.assert_array_equal(next(iter(open_plate(tmp_path / "y.####.exr"))).rgb[..., 2], y)

    # only a "beauty" layer: its R,G,B are used
    chans = {f"beauty.{c}": np.full((4, 5), v, np.float32) for c, v in zip("RGB", (1, 2, 3))}
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, chans) as f:
        f.write(str(tmp_path / "layer.exr"))
    np.testing.assert_array_equal(read_image(tmp_path / "layer.exr")[0, 0], [1, 2, 3])

    # data window smaller than the display window: placed inside it
    header = {"type": OpenEXR.scanlineimage,
              "dataWindow": (np.array([1, 1], np.int32), np.array([3, 2], np.int32)),
              "displayWindow": (np.array([0, 0], np.int32), np.array([4, 3], np.int32))}
    with OpenEXR.File(header, {"R": np.ones((2, 3), np.float32), "G": np.ones((2, 3), np.float32),
                               "B": np.ones((2, 3), np.float32)}) as f:
        f.write(str(tmp_path / "dw.exr"))
    px = read_image(tmp_path / "dw.exr")
    assert px.shape == (4, 5, 3) and px[..., 0].sum() == 6 and px[1, 1, 0] == 1 and px[0, 0, 0] == 0


def test_explicit_colourspace_applies_to_every_frame(tmp_path):
    make_sequence(tmp_path, "s", [1, 2])
    frame = next(iter(open_plate(tmp_path / "s.####.png", colourspace="linear")))
    np.testing.assert_array_equal(frame.rgb, frame.source_pixels / np.float32(255))
    assert frame.colourspace == "linear"
