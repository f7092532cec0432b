"""The plate job (relight_core.plate, relight_core.passes): passes, records, resume, bad input.

Fast: the `tiny` network with seeded random weights, short clips made in tmp_path from
skimage.data.astronaut(), ../shared/data/portraits and the Tears of Steel clip (those skip when the
shared data is absent). The composite's bit-identity outside the matte is checked against the
source pixels; "no network work on resume" by making the model loader fail.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from relight_core.io import PlateError, open_plate
from relight_core.io.exr import exr_channel_names, read_exr
from relight_core.io.images import read_image
from relight_core.passes import PASS_NAMES
from relight_core.plate import PlateInterrupted, PlateJobConfig, load_sh_file, parse_camera, run_plate
from relight_core.plate import job as job_mod
from relight_core.plate.lights import plate_light_to_head

FAST = dict(weights="tiny", formats=("png8",), multilayer=False, preview=False, contact_sheet=False)
"""Settings of the quick jobs: the tiny network, one format, no movie or sheet."""


def _astronaut(size: int = 384, dx: int = 0, dy: int = 0) -> np.ndarray:
    """A crop of the public-domain astronaut portrait with a ~90 px face."""
    from skimage import data

    img = data.astronaut()
    return np.ascontiguousarray(img[dy:dy + size, 64 + dx:64 + dx + size])


def _grey(h: int = 384, w: int = 384, value: int = 128) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def _sequence(folder: Path, frames: dict[int, np.ndarray], name: str = "plate") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n, img in frames.items():
        Image.fromarray(img).save(folder / f"{name}.{n:04d}.png")
    return folder


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if p.is_file() and ".tmp" in p.name]


def _exr_channel(path: Path, name: str) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return np.asarray(f.channels()[name].pixels)


# -- one full job on a short sequence, shared by several tests -----------------------------


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """Four frames (a face, the face moved, no face, the face), every pass in every format."""
    root = tmp_path_factory.mktemp("job")
    frames = {1001: _astronaut(), 1002: _astronaut(dx=3, dy=2), 1003: _grey(), 1004: _astronaut()}
    seq = _sequence(root / "plate", frames)
    config = PlateJobConfig(input=seq, out=root / "out", light="key_left", weights="tiny",
                            formats=("png8", "png16", "exr16", "exr32"), multilayer=True, preview=True)
    report = run_plate(config, progress=None)
    return {"config": config, "report": report, "out": root / "out", "frames": frames, "seq": seq}


def test_job_relights_faces_and_passes_no_face_frames_through(job):
    r = job["report"]
    assert r.frames == [1001, 1002, 1003, 1004]
    assert r.processed == [1001, 1002, 1003, 1004] and r.skipped == []
    assert r.relit == [1001, 1002, 1004]
    assert r.passed_through == {1003: "no face"}
    assert r.trained_weights is False and any("UNTRAINED" in w for w in r.warnings)
    text = r.summary()
    assert "no face: 1003" in text and "relit: 3 frames" in text
    saved = json.loads((job["out"] / "report.json").read_text())
    assert saved["passed_through"] == {"1003": "no face"}
    for stage in ("decode", "track", "light", "network", "composite", "write", "total"):
        assert stage in saved["timings"]


def test_composite_is_bit_identical_outside_the_matte(job):
    out = job["out"]
    changed_any = False
    for n, src in job["frames"].items():
        beauty = read_image(out / "beauty" / f"beauty.{n}.png")
        assert beauty.dtype == np.uint8 and beauty.shape == src.shape
        matte = read_exr(out / "exr32" / "alpha" / f"alpha.{n}.exr")[..., 0]
        assert np.array_equal(beauty[matte == 0], src[matte == 0])
        if n == 1003:
            assert np.array_equal(beauty, src) and not matte.any()  # passed through whole
        else:
            assert (matte > 0).sum() > 500
            changed_any |= bool((beauty[matte > 0] != src[matte > 0]).any())
    assert changed_any


def test_every_pass_file_exists_and_has_the_right_channels(job):
    out = job["out"]
    expected_channels = {"beauty": 3, "relit": 4, "albedo": 3, "shading": 3, "ratio": 3, "normal": 3, "alpha": 1}
    for n in job["frames"]:
        for name in PASS_NAMES:
            for fmt, bits in (("png8", 8), ("png16", 16)):
                path = out / fmt / name / f"{name}.{n}.png"
                if name == "depth":
                    assert not path.exists()  # data: EXR only
                    continue
                pixels = read_image(path)
                assert pixels.dtype == (np.uint8 if bits == 8 else np.uint16)
                assert pixels.shape[:2] == (384, 384)
                assert (pixels.shape[2] if pixels.ndim == 3 else 1) == expected_channels[name]
            for fmt, dtype in (("exr16", "HALF"), ("exr32", "FLOAT")):
                path = out / fmt / name / f"{name}.{n}.exr"
                names = exr_channel_names(path)
                want = {"depth": ["Z"], "alpha": ["A"], "relit": ["A", "B", "G", "R"]}.get(name, ["B", "G", "R"])
                assert sorted(names) == want
                data = read_exr(path)
                assert data.shape[:2] == (384, 384) and np.isfinite(data).all()
        ml = out / "multilayer" / f"multilayer.{n}.exr"
        names = set(exr_channel_names(ml))
        assert {"R", "G", "B", "relit.R", "relit.A", "albedo.R", "shading.G", "ratio.B", "normal.X", "normal.Z",
                "depth.Z", "alpha.A"} <= names
        assert _exr_channel(ml, "depth.Z").dtype == np.float32
    # neutral passes on the frame without a face
    assert np.all(read_exr(out / "exr32" / "ratio" / "ratio.1003.exr") == 1.0)
    assert not read_exr(out / "exr32" / "normal" / "normal.1003.exr").any()


def test_passes_hold_sensible_values(job):
    out = job["out"]
    normal = read_exr(out / "exr32" / "normal" / "normal.1001.exr")
    length = np.linalg.norm(normal, axis=-1)
    assert np.all((np.abs(length - 1) < 1e-3) | (length == 0))  # unit normals or none
    ratio = read_exr(out / "exr32" / "ratio" / "ratio.1001.exr")
    cfg = job["config"]
    assert ratio.min() >= cfg.ratio_range[0] - 1e-6 and ratio.max() <= cfg.ratio_range[1] + 1e-6
    matte = read_exr(out / "exr32" / "alpha" / "alpha.1001.exr")[..., 0]
    assert np.all(ratio[matte == 0] == 1.0)
    depth = read_exr(out / "exr32" / "depth" / "depth.1001.exr")[..., 0]
    assert np.all(depth >= 0)


def test_frame_records_and_job_file(job):
    out = job["out"]
    rec = json.loads((out / "frames" / "frame.1001.json").read_text())
    assert rec["frame"] == 1001 and rec["face_found"] and rec["relit"] and rec["faces"] == 1
    assert len(rec["box"]) == 4 and len(rec["camera_label"]) == 25
    assert np.array(rec["pose"]["rotation"]).shape == (3, 3) and math.isfinite(rec["pose"]["yaw_deg"])
    assert np.array(rec["input_sh"]).shape == (9, 3) and rec["input_light"]["ok"]
    assert np.array(rec["target_sh"]).shape == (9,)  # key_left is grey
    assert np.array(rec["target_sh_network"]).shape == (9,)
    # as given (plate camera DPR frame) and as fed to the network (head DPR frame)
    rotation = np.array(rec["pose"]["rotation"])
    for given, fed in (("target_sh", "target_sh_network"), ("input_sh", "input_sh_network")):
        expected = plate_light_to_head(torch.tensor(rec[given]), rotation)
        assert np.allclose(rec[fed], expected.numpy(), atol=1e-5)
    assert "head DPR" in rec["light_frames"]["network"] and "plate camera" in rec["light_frames"]["given"]
    for stage in ("decode", "track", "light", "network", "composite", "write"):
        assert rec["timings"][stage] >= 0
    assert all((out / f).is_file() for f in rec["files"])
    blank = json.loads((out / "frames" / "frame.1003.json").read_text())
    assert not blank["face_found"] and not blank["relit"] and blank["reason"] == "no face"
    job_file = json.loads((out / "job.json").read_text())
    assert job_file["format"] == "relight.plate-job" and job_file["settings"]["light"]["name"] == "key_left"
    assert rec["job_id"] == job_file["job_id"]


def test_contact_sheet_and_preview(job):
    out = job["out"]
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.size[0] > 5 * 100 and sheet.size[1] > 3 * 100
    movie = open_plate(out / "preview.mp4")
    assert len(movie) == 4 and movie.size == (384, 384)
    assert _no_temp_files(out)


def test_rerun_skips_every_finished_frame_without_network_work(job, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the network or the tracker was started on a finished job")

    monkeypatch.setattr(job_mod, "load_model", no_work)
    monkeypatch.setattr(job_mod, "FrameWorker", no_work)
    before = (job["out"] / "contact_sheet.png").stat().st_mtime_ns
    report = run_plate(job["config"], progress=None)
    assert report.processed == [] and report.skipped == [1001, 1002, 1003, 1004]
    assert report.relit == [1001, 1002, 1004] and report.passed_through == {1003: "no face"}
    assert (job["out"] / "contact_sheet.png").stat().st_mtime_ns == before  # not rebuilt


def test_other_settings_on_rerun_ask_for_force(job):
    cfg = PlateJobConfig(**{**job["config"].__dict__, "light": "key_right"})
    with pytest.raises(PlateError, match=r"other settings \(light\.name: \"key_left\" -> \"key_right\".*--force"):
        run_plate(cfg, progress=None)


# -- resume and stopping -------------------------------------------------------------------


def test_partial_run_resumes_with_the_remaining_frames(tmp_path):
    seq = _sequence(tmp_path / "plate", {n: _astronaut(dx=n % 3) for n in (1, 2, 3)})
    cfg = PlateJobConfig(input=seq, out=tmp_path / "out", **FAST)
    stops = iter([True])
    first = run_plate(cfg, progress=None, should_stop=lambda: next(stops, False))
    assert first.interrupted and first.processed == [1]
    assert not (tmp_path / "out" / "frames" / "frame.0002.json").exists()
    second = run_plate(cfg, progress=None)
    assert second.skipped == [1] and second.processed == [2, 3] and not second.interrupted
    assert second.relit == [1, 2, 3]
    # --force redoes everything, with other settings too
    third = run_plate(PlateJobConfig(**{**cfg.__dict__, "light": "top", "force": True}), progress=None)
    assert third.processed == [1, 2, 3]


def test_ctrl_c_stops_cleanly_and_keeps_finished_frames(tmp_path):
    seq = _sequence(tmp_path / "plate", {n: _astronaut() for n in (1, 2, 3)})
    cfg = PlateJobConfig(input=seq, out=tmp_path / "out", **FAST)

    def interrupt(done, total, record):
        raise KeyboardInterrupt

    with pytest.raises(PlateInterrupted) as stop:
        run_plate(cfg, progress=interrupt)
    assert isinstance(stop.value, KeyboardInterrupt)
    assert stop.value.report.interrupted and stop.value.report.processed == [1]
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["interrupted"] is True
    assert (tmp_path / "out" / "frames" / "frame.0001.json").is_file()
    assert _no_temp_files(tmp_path / "out")
    assert run_plate(cfg, progress=None).processed == [2, 3]


def test_job_keeps_the_callers_autograd_mode_and_threads(tmp_path):
    seq = _sequence(tmp_path / "plate", {1: _astronaut()})
    threads = torch.get_num_threads()
    report = run_plate(PlateJobConfig(input=seq, out=tmp_path / "out", threads=threads + 1, **FAST), progress=None)
    assert report.relit == [1]
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    assert torch.get_num_threads() == threads


def test_frame_range(tmp_path):
    seq = _sequence(tmp_path / "plate", {n: _astronaut() for n in (1001, 1002, 1003)})
    report = run_plate(PlateJobConfig(input=seq, out=tmp_path / "out", frames="1002:1003", **FAST), progress=None)
    assert report.frames == [1002, 1003] and report.processed == [1002, 1003]
    assert not (tmp_path / "out" / "beauty" / "beauty.1001.png").exists()
    with pytest.raises(PlateError, match="outside"):
        run_plate(PlateJobConfig(input=seq, out=tmp_path / "out2", frames="990:995", **FAST), progress=None)


# -- lights and cameras ----------------------------------------------------------------------


def test_sh_file_forms(tmp_path):
    grey = tmp_path / "grey.txt"
    grey.write_text("# DPR light\n" + "\n".join(["0.8", "0.1", "0.2", "-0.3", "0", "0", "0.05", "0", "0"]))
    assert tuple(load_sh_file(grey).shape) == (9,)
    coloured = tmp_path / "col.json"
    coloured.write_text(json.dumps({"sh": [[0.8, 0.7, 0.6]] + [[0.0, 0.0, 0.0]] * 8}))
    assert tuple(load_sh_file(coloured).shape) == (9, 3)
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps(list(range(27))))
    sh = load_sh_file(flat)
    assert sh[1, 0] == 3 and sh[0, 2] == 2  # rows of (R, G, B)


def test_coloured_sh_file_job(tmp_path):
    light = tmp_path / "gel.json"
    light.write_text(json.dumps([[0.9, 0.5, 0.3], [0.1, 0.0, -0.1]] + [[0, 0, 0]] * 7))
    seq = _sequence(tmp_path / "plate", {1: _astronaut()})
    report = run_plate(PlateJobConfig(input=seq, out=tmp_path / "out", sh_file=light, **FAST), progress=None)
    assert report.relit == [1]
    rec = json.loads((tmp_path / "out" / "frames" / "frame.0001.json").read_text())
    assert np.array(rec["target_sh"]).shape == (9, 3)


def test_scene_light_job(tmp_path):
    scene = {"format": "relight.scene", "version": 1, "fps": 24.0, "frames": [{
        "frame": 1,
        "lights": [{"type": "sun", "power": 3.0, "color": [1.0, 0.9, 0.8],
                    "matrix": [[1, 0, 0, 0], [0, 0, -1, -5], [0, 1, 0, 2], [0, 0, 0, 1]]}],
        "world": {"kind": "constant", "color": [0.2, 0.2, 0.2], "strength": 1.0}, "camera": None}]}
    path = tmp_path / "scene.json"
    path.write_text(json.dumps(scene))
    seq = _sequence(tmp_path / "plate", {1: _astronaut(), 2: _astronaut()})
    report = run_plate(PlateJobConfig(input=seq, out=tmp_path / "out", scene=path, **FAST), progress=None)
    assert report.relit == [1, 2]
    rec = json.loads((tmp_path / "out" / "frames" / "frame.0001.json").read_text())
    assert np.array(rec["target_sh"]).shape == (9, 3) and np.array(rec["target_sh_network"]).shape == (9, 3)


def test_orbit_camera_gives_an_rgba_head_render(tmp_path):
    seq = _sequence(tmp_path / "plate", {1: _astronaut(), 2: _grey()})
    report = run_plate(PlateJobConfig(input=seq, out=tmp_path / "out", camera="orbit:25,5", **FAST), progress=None)
    assert report.relit == [1] and report.passed_through == {2: "no face"}
    beauty = read_image(tmp_path / "out" / "beauty" / "beauty.0001.png")
    assert beauty.shape == (384, 384, 4)
    assert beauty[..., 3].max() > 0 and beauty[0, 0, 3] == 0  # head render over transparency
    blank = read_image(tmp_path / "out" / "beauty" / "beauty.0002.png")
    assert blank.shape == (384, 384, 4) and not blank[..., 3].any()


def test_cli(tmp_path, capsys):
    from relight_core.cli import main

    seq = _sequence(tmp_path / "plate", {1: _astronaut()})
    code = main(["plate", str(seq), "--out", str(tmp_path / "out"), "--weights", "tiny", "--formats", "png8",
                 "--no-multilayer", "--no-preview", "--quiet", "--light", "top"])
    captured = capsys.readouterr()
    assert code == 0 and "relit: 1 frames" in captured.out
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()  # the caller's state is kept
    code = main(["plate", str(seq), "--out", str(tmp_path / "out2"), "--light", "sunset"])
    assert code == 2 and "unknown light preset 'sunset'" in capsys.readouterr().err


# -- bad input: each gets a clear message, no crash, no partial file -------------------------


def test_missing_file(tmp_path):
    with pytest.raises(PlateError, match=r"not found.*nothere\.mp4"):
        run_plate(PlateJobConfig(input=tmp_path / "nothere.mp4", out=tmp_path / "out", **FAST), progress=None)
    assert not (tmp_path / "out").exists()


def test_unreadable_video(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a movie" * 100)
    with pytest.raises(PlateError, match="broken.mp4"):
        run_plate(PlateJobConfig(input=bad, out=tmp_path / "out", **FAST), progress=None)


def test_truncated_video_keeps_finished_frames_valid(tmp_path):
    from relight_core.io import MovieWriter

    movie = tmp_path / "clip.mp4"
    with MovieWriter(movie, fps=24) as w:
        for i in range(24):
            w.write(_astronaut(dx=i % 4))
    data = movie.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    try:
        report = run_plate(PlateJobConfig(input=cut, out=out, **FAST), progress=None)
    except PlateError as exc:  # the reader notices at open or mid-stream: either way, named
        assert "cut.mp4" in str(exc)
    else:  # ffmpeg recovered what it could: every frame it gave is a complete output
        assert report.processed
    if out.exists():
        assert _no_temp_files(out)
        for rec_path in (out / "frames").glob("frame.*.json") if (out / "frames").exists() else []:
            rec = json.loads(rec_path.read_text())
            for f in rec["files"]:
                read_image(out / f)  # complete, readable


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlateError, match="empty"):
        run_plate(PlateJobConfig(input=tmp_path / "empty", out=tmp_path / "out", **FAST), progress=None)


def test_sequence_with_gaps(tmp_path):
    seq = _sequence(tmp_path / "plate", {1: _grey(), 2: _grey(), 5: _grey()})
    with pytest.raises(PlateError, match=r"gaps: frames 3-4 are missing.*--frames"):
        run_plate(PlateJobConfig(input=seq, out=tmp_path / "out", **FAST), progress=None)
    report = run_plate(PlateJobConfig(input=seq, out=tmp_path / "out", allow_gaps=True, **FAST), progress=None)
    assert report.frames == [1, 2, 5]


def test_mixed_resolutions(tmp_path):
    seq = _sequence(tmp_path / "plate", {1: _grey(64, 64), 2: _grey(64, 80)})
    with pytest.raises(PlateError, match=r"mixed resolutions.*frame 2"):
        run_plate(PlateJobConfig(input=seq, out=tmp_path / "out", **FAST), progress=None)


def test_plate_without_any_face(tmp_path):
    frames = {1: _grey(96, 128, 40), 2: _grey(96, 128, 200)}
    seq = _sequence(tmp_path / "plate", frames)
    out = tmp_path / "out"
    report = run_plate(PlateJobConfig(input=seq, out=out, **{**FAST, "contact_sheet": True}), progress=None)
    assert report.relit == [] and report.passed_through == {1: "no face", 2: "no face"}
    assert any("no usable face in any of the 2 frames" in w for w in report.warnings)
    for n, src in frames.items():
        assert np.array_equal(read_image(out / "beauty" / f"beauty.{n:04d}.png"), src)
    assert (out / "contact_sheet.png").is_file()


def test_several_faces_relights_the_largest(tmp_path, shared_data):
    portraits = sorted((shared_data / "portraits").glob("*.jpg"))
    big = [p for p in portraits if p.stat().st_size > 40000][:2]
    if len(big) < 2:
        pytest.skip("not enough portraits")
    a = np.asarray(Image.open(big[0]).convert("RGB"))
    b = np.asarray(Image.open(big[1]).convert("RGB").resize((a.shape[1] * 3 // 4, a.shape[0] * 3 // 4)))
    canvas = _grey(a.shape[0], a.shape[1] + b.shape[1] + 20, 90)
    canvas[:, : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] + 20:] = b
    seq = _sequence(tmp_path / "plate", {1: canvas})
    report = run_plate(PlateJobConfig(input=seq, out=tmp_path / "out", **FAST), progress=None)
    assert report.several_faces == [1] and report.relit == [1]
    rec = json.loads((tmp_path / "out" / "frames" / "frame.0001.json").read_text())
    assert rec["faces"] == 2 and rec["box"][2] <= a.shape[1] + 5  # the larger, left face
    assert "several faces visible" in report.summary()


def test_tiny_face_is_passed_through_and_listed(tmp_path):
    small = np.asarray(Image.fromarray(_astronaut()).resize((128, 128), Image.LANCZOS))
    canvas = _grey(360, 640, 70)
    canvas[100:228, 250:378] = small  # face ~ 30 px
    seq = _sequence(tmp_path / "plate", {1: canvas})
    report = run_plate(PlateJobConfig(input=seq, out=tmp_path / "out", **FAST), progress=None)
    assert report.relit == []
    reason = report.passed_through[1]
    assert reason.startswith("face too small") or reason == "no face"
    assert np.array_equal(read_image(tmp_path / "out" / "beauty" / "beauty.0001.png"), canvas)


def test_extreme_pose_is_passed_through_and_listed(tmp_path):
    seq = _sequence(tmp_path / "plate", {1: _astronaut()})
    cfg = PlateJobConfig(input=seq, out=tmp_path / "out", tracker={"max_yaw_deg": 0.01, "max_pitch_deg": 0.01},
                         **FAST)
    report = run_plate(cfg, progress=None)
    assert report.passed_through[1].startswith("extreme pose")
    rec = json.loads((tmp_path / "out" / "frames" / "frame.0001.json").read_text())
    assert math.isfinite(rec["pose"]["yaw_deg"])


def test_video_plate_with_several_faces_and_no_face_frames(tmp_path, shared_data):
    """Real frames of the Tears of Steel clip (CC BY 3.0, (c) Blender Foundation), as a short MP4."""
    from relight_core.io import MovieWriter

    clip = shared_data / "video" / "tears_of_steel_clip.mp4"
    if not clip.is_file():
        pytest.skip("clip not found")
    short = tmp_path / "short.mp4"
    with MovieWriter(short, fps=24) as movie:
        for frame in open_plate(clip, frames=range(94, 99)):
            movie.write(frame.source_pixels)
        for frame in open_plate(clip, frames=range(2, 4)):
            movie.write(frame.source_pixels)
    out = tmp_path / "out"
    report = run_plate(PlateJobConfig(input=short, out=out, **FAST), progress=None)
    assert report.frames == list(range(1, 8))
    assert report.relit, report.summary()
    assert report.several_faces and set(report.several_faces) <= set(range(1, 6))
    assert report.passed_through.get(6) == "no face" and report.passed_through.get(7) == "no face"
    source = {f.number: f.source_pixels for f in open_plate(short)}
    for n in report.frames:
        beauty = read_image(out / "beauty" / f"beauty.{n:04d}.png")
        matte = read_image(out / "png8" / "alpha" / f"alpha.{n:04d}.png")
        assert np.array_equal(beauty[matte == 0], source[n][matte == 0])


def test_invalid_preset_names_the_presets(tmp_path):
    with pytest.raises(PlateError, match=r"unknown light preset 'key_lefty' \(did you mean 'key_left'\?\).*rotating"):
        run_plate(PlateJobConfig(input=tmp_path, out=tmp_path / "out", light="key_lefty", **FAST), progress=None)
    with pytest.raises(PlateError, match="unknown input light preset 'studio'"):
        run_plate(PlateJobConfig(input=tmp_path, out=tmp_path / "out", input_light="studio", **FAST), progress=None)


@pytest.mark.parametrize("content,message", [
    ("0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8", "holds 8 numbers"),
    (json.dumps([0.1] * 10), "holds 10 numbers"),
    ("0.8 nan 0 0 0 0 0 0 0", r"non-finite values \(NaN or inf\) at positions \[1\]"),
    ("[0.8, 0.1,", "not valid JSON"),
    ("0.8 bright 0 0 0 0 0 0 0", "could not convert"),
])
def test_bad_sh_file(tmp_path, content, message):
    path = tmp_path / "light.txt"
    path.write_text(content)
    with pytest.raises(PlateError, match=message) as err:
        run_plate(PlateJobConfig(input=tmp_path, out=tmp_path / "out", sh_file=path, **FAST), progress=None)
    assert "light.txt" in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("settings,message", [
    ({"camera": "orbit:120,0"}, "impossible for the network"),
    ({"camera": "orbit:10,nan"}, "finite"),
    ({"camera": "orbit:10,5,0"}, "DISTANCE"),
    ({"camera": "sideways"}, "write 'plate' or 'orbit"),
    ({"fov_deg": 0.0}, "impossible plate camera"),
    ({"focal_mm": -35.0}, "impossible plate camera"),
])
def test_impossible_camera(tmp_path, settings, message):
    with pytest.raises(PlateError, match=message):
        run_plate(PlateJobConfig(input=tmp_path, out=tmp_path / "out", **FAST, **settings), progress=None)


def test_parse_camera():
    assert parse_camera("plate") == ("plate",)
    assert parse_camera("orbit:30,-10") == ("orbit", 30.0, -10.0, 1.0)
    assert parse_camera("orbit: 5, 5, 2") == ("orbit", 5.0, 5.0, 2.0)


def test_out_must_not_hold_the_plate(tmp_path):
    seq = _sequence(tmp_path / "plate", {1: _grey(32, 32)})
    with pytest.raises(PlateError, match="plate's own folder"):
        run_plate(PlateJobConfig(input=seq, out=seq, **FAST), progress=None)
    # a plate stored where the job would write its beauty
    inside = _sequence(tmp_path / "job" / "beauty", {1: _grey(32, 32)}, name="beauty")
    with pytest.raises(PlateError, match="would write over the plate's file"):
        run_plate(PlateJobConfig(input=inside, out=tmp_path / "job", **FAST), progress=None)
    before = (inside / "beauty.0001.png").read_bytes()
    assert (inside / "beauty.0001.png").read_bytes() == before


def test_two_light_options_are_refused(tmp_path):
    with pytest.raises(PlateError, match="give one target light"):
        run_plate(PlateJobConfig(input=tmp_path, out=tmp_path / "o", light="top", sh_file="x.txt"), progress=None)
