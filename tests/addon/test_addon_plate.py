"""The plate workflow in Blender with the worker in a subprocess: load, track, light from plate,
preview, the "Relight" render engine (still and animation, passes, skip on re-render), the head
mesh, release, and a worker killed mid-render.

Real components: bpy 4.5, three frames with a face (70-72) of the Tears of Steel excerpt (CC BY
3.0, (c) Blender Foundation) as a short MP4, MediaPipe tracking, the seeded `tiny` network. The
worker runs as ``python -m relight_core.worker`` ($RELIGHT_PYTHON: this interpreter, with the repo
on PYTHONPATH). The tests share one scene and run in order.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from pathlib import Path

import bpy
import numpy as np
import pytest
from mathutils import Vector

from conftest import REPO


@pytest.fixture(scope="module")
def clip(face_clip):
    return face_clip


@pytest.fixture(scope="module")
def worker_env(addon):
    """The worker as a subprocess of this interpreter; stopped afterwards."""
    saved = {k: os.environ.get(k) for k in ("RELIGHT_PYTHON", "PYTHONPATH")}
    os.environ["RELIGHT_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), saved["PYTHONPATH"]) if p)
    yield
    addon.backend.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def tracked(addon, worker_env, clip, tmp_path_factory):
    """A scene with the plate loaded and tracked (the state every later test starts from)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    sc.relight.cache_dir = str(tmp_path_factory.mktemp("cache"))
    sc.relight.weights = "tiny"
    sc.relight.warmup_frames = 1
    assert bpy.ops.relight.load_plate(filepath=str(clip)) == {"FINISHED"}
    assert bpy.ops.relight.track_plate() == {"FINISHED"}
    return sc


def _fcurves(ob):
    """An object's F-curves (Blender 5.0 keeps them in the action's slot channel bag)."""
    action = ob.animation_data.action
    if hasattr(action, "fcurves"):
        return action.fcurves
    from bpy_extras import anim_utils

    return anim_utils.action_get_channelbag_for_slot(action, ob.animation_data.action_slot).fcurves


def test_load_plate_keeps_frames_and_size(tracked, clip):
    sc = tracked
    clip_block = sc.relight.plate_clip
    assert clip_block is not None and clip_block.filepath == str(clip)
    assert (sc.frame_start, sc.frame_end) == (1, 3) and clip_block.frame_start == 1
    assert (sc.render.resolution_x, sc.render.resolution_y) == (640, 360)


def test_track_creates_plate_camera_and_animated_anchor(tracked, addon):
    sc = tracked
    cam = sc.relight.plate_camera
    assert sc.camera == cam and cam.data.sensor_fit == "HORIZONTAL"
    assert cam.data.lens == pytest.approx(50.0, abs=0.05)  # the plate lens: 39.6 deg on 36 mm
    bg = cam.data.background_images[0]
    assert cam.data.show_background_images and bg.source == "MOVIE_CLIP" and bg.clip == sc.relight.plate_clip
    anchor = sc.relight.subject
    assert anchor is not None and anchor.type == "EMPTY"
    keyed = sorted({int(k.co[0]) for fc in _fcurves(anchor) for k in fc.keyframe_points})
    assert keyed == [1, 2, 3]
    positions = []
    for f in (1, 2, 3):
        sc.frame_set(f)
        m = anchor.matrix_world
        assert np.allclose([c.length for c in m.to_3x3().col], 1.0, atol=1e-5)  # true scale: no scale on the anchor
        positions.append(np.array(m.translation))
    # the camera looks along +Y from the origin: the head is 0.3-5 m in front, inside the view
    for p in positions:
        assert 0.3 < p[1] < 5.0 and abs(p[0]) < p[1] * 0.4 and abs(p[2]) < p[1] * 0.3
    assert np.linalg.norm(positions[0] - positions[2]) < 0.2
    # the head's +Z (its face direction) points back toward the camera
    face = np.array(anchor.matrix_world.to_3x3().col[2])
    assert face[1] < -0.5


def test_light_from_plate_makes_an_environment_world(tracked):
    sc = tracked
    sc.frame_set(2)
    sc.relight.env_height = 16
    assert bpy.ops.relight.light_from_plate() == {"FINISHED"}
    world = sc.world
    env = next(n for n in world.node_tree.nodes if n.type == "TEX_ENVIRONMENT")
    assert tuple(env.image.size) == (32, 16) and env.image.colorspace_settings.name.startswith("Linear")
    px = np.empty(32 * 16 * 4, np.float32)
    env.image.pixels.foreach_get(px)
    assert px.reshape(16, 32, 4)[..., :3].max() > 0.05 and np.isfinite(px).all()
    sc.world = None  # the render tests below use the scene lights only


def test_preview_frame_shows_the_relit_frame(tracked):
    sc = tracked
    light = bpy.data.objects.new("key", bpy.data.lights.new("key", "SUN"))
    sc.collection.objects.link(light)
    light.data.energy = 3.0
    light.rotation_euler = (0.6, 0.0, 0.8)
    sc.frame_set(2)
    assert bpy.ops.relight.preview_frame() == {"FINISHED"}
    image = bpy.data.images["Relight Preview"]
    assert tuple(image.size) == (640, 360)
    px = np.empty(640 * 360 * 4, np.float32)
    image.pixels.foreach_get(px)
    assert 0.02 < px.reshape(360, 640, 4)[..., :3].mean() < 1.0


def _latest_job(scene):
    import json

    jobs = sorted(Path(scene.relight.cache_dir).glob("jobs/frame.0002.*/job.json"), key=lambda p: p.stat().st_mtime)
    record = jobs[-1].parent / "frames" / "frame.0002.json"
    return json.loads(jobs[-1].read_text())["settings"], json.loads(record.read_text())


def test_preset_light_source_relights_with_the_named_light(tracked):
    sc = tracked
    sc.relight.light_source = "PRESET"
    sc.relight.preset = "rim"
    try:
        assert bpy.ops.relight.preview_frame() == {"FINISHED"}
        settings, record = _latest_job(sc)
        assert settings["light"]["kind"] == "preset" and settings["light"]["name"] == "rim"
        sc.relight.exposure = -1.0  # the worker gets it: half the preset's light
        assert bpy.ops.relight.preview_frame() == {"FINISHED"}
        _, darker = _latest_job(sc)
    finally:
        sc.relight.light_source = "SCENE"
        sc.relight.exposure = 0.0
    np.testing.assert_allclose(darker["target_sh"], 0.5 * np.asarray(record["target_sh"]), rtol=1e-5)


def _exr_channels(path):
    """Every channel of an EXR, all parts: Blender 5.0 writes a multilayer EXR as one part per
    pass (``image_settings.use_exr_interleave`` off), and ``File.channels()`` reads part 0 only."""
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {k: np.asarray(v.pixels) for part in f.parts for k, v in part.channels.items()}


def _multilayer(scene, path):
    scene.render.filepath = str(path)
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5.0: the 4.x enum value is gone
        settings.media_type = "MULTI_LAYER_IMAGE"  # its only format is OPEN_EXR_MULTILAYER
    else:
        settings.file_format = "OPEN_EXR_MULTILAYER"


def test_f12_writes_every_pass_as_named_layers(tracked, addon, tmp_path):
    sc = tracked
    sc.render.engine = "RELIGHT"
    sc.frame_set(2)
    _multilayer(sc, tmp_path / "still.exr")
    assert bpy.ops.render.render(write_still=True) == {"FINISHED"}
    assert addon.engine.RELIGHT_RenderEngine.last_error == ""
    ch = _exr_channels(tmp_path / "still.exr")
    for name in ("Combined.R", "Combined.A", "Relit.A", "Albedo.B", "Shading.G", "Ratio.R", "Normal.X", "Normal.Z",
                 "Depth.Z", "Matte.A"):
        assert f"ViewLayer.{name}" in ch, sorted(ch)
        assert ch[f"ViewLayer.{name}"].shape == (360, 640)
    matte, depth = ch["ViewLayer.Matte.A"], ch["ViewLayer.Depth.Z"]
    assert 0 < (matte > 0.5).mean() < 0.5
    # metres where the head is opaque (the random tiny network's head may be too thin for any)
    assert np.isfinite(depth).all() and depth.min() >= 0 and depth.max() < 5.0
    # EXR rows run from the top: the matte (a face) sits where the tracker found it, upper half
    rows = np.nonzero((matte > 0.5).any(axis=1))[0]
    assert rows.mean() < 250


def test_animation_render_skips_finished_frames(tracked, tmp_path):
    sc = tracked
    sc.render.engine = "RELIGHT"
    _multilayer(sc, tmp_path / "anim_####")
    assert bpy.ops.render.render(animation=True) == {"FINISHED"}
    files = [tmp_path / f"anim_{n:04d}.exr" for n in (1, 2, 3)]
    assert all(f.is_file() for f in files)
    records = sorted(Path(sc.relight.cache_dir).glob("jobs/*/frames/frame.*.json"))
    assert len(records) >= 3
    stamps = {p: p.stat().st_mtime_ns for p in records}
    start = time.monotonic()
    assert bpy.ops.render.render(animation=True) == {"FINISHED"}
    again = time.monotonic() - start
    assert {p: p.stat().st_mtime_ns for p in records} == stamps  # nothing recomputed
    first = _exr_channels(files[0])["ViewLayer.Combined.R"]
    assert np.isfinite(first).all() and again < 30


def test_extract_head_mesh_under_the_anchor(tracked):
    if not (REPO / "relight_core" / "mesh.py").is_file():
        pytest.skip("relight_core.mesh is not there yet")
    sc = tracked
    sc.relight.mesh_resolution = 64
    sc.relight.weights = ""  # the shipped weights: the seeded tiny network has no head surface
    sc.frame_set(2)
    try:
        assert bpy.ops.relight.extract_head_mesh() == {"FINISHED"}
    finally:
        sc.relight.weights = "tiny"
    ob = bpy.data.objects["Relight Head Mesh"]
    assert ob.parent == sc.relight.subject and ob.type == "MESH" and len(ob.data.vertices) > 100
    bpy.context.view_layer.update()
    corners = np.array([ob.matrix_world @ Vector(c) for c in ob.bound_box])
    size = corners.max(0) - corners.min(0)
    assert 0.08 < size.max() < 0.6  # a head, in metres
    centre = corners.mean(0)
    assert np.linalg.norm(centre - np.array(sc.relight.subject.matrix_world.translation)) < 0.25


def test_killing_the_worker_mid_render_gives_a_clean_error(tracked, addon, tmp_path):
    sc = tracked
    sc.render.engine = "RELIGHT"
    sc.relight.warmup_frames = 2
    sc.frame_set(3)
    sc.relight.cache_dir = str(tmp_path / "fresh_cache")  # nothing cached: the worker must work
    _multilayer(sc, tmp_path / "killed.exr")
    killed = threading.Event()

    def kill_when_busy():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            backend = addon.backend.current()
            if backend is not None and (tmp_path / "fresh_cache" / "jobs").is_dir():
                backend.transport.proc.kill()
                killed.set()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=kill_when_busy)
    thread.start()
    try:
        bpy.ops.render.render(write_still=True)
    except RuntimeError as exc:  # Blender reports the engine's error
        assert "Relight frame 3" in str(exc)
    thread.join()
    assert killed.is_set()
    err = addon.engine.RELIGHT_RenderEngine.last_error
    assert "worker stopped" in err and "Last worker log lines" in err, err
    # Blender keeps running, and the next render starts a fresh worker
    assert bpy.ops.render.render(write_still=True) == {"FINISHED"}
    assert addon.engine.RELIGHT_RenderEngine.last_error == ""
    assert addon.backend.current() is not None


def test_release_stops_the_worker(tracked, addon):
    assert addon.backend.current() is not None
    assert bpy.ops.relight.release() == {"FINISHED"}
    assert addon.backend.current() is None


def test_missing_worker_python_is_a_clear_error(tracked, addon, monkeypatch):
    monkeypatch.setenv("RELIGHT_PYTHON", "/nowhere/bin/python")
    with pytest.raises(RuntimeError, match="does not exist; set it in Preferences"):
        bpy.ops.relight.track_plate()


# Last on purpose: a memfile undo invalidates every Python reference to the datablocks it
# restores (the fixtures' scene included), so no test may follow it.
def test_undo_removes_the_extracted_head_mesh_and_redo_restores_it(tracked, addon):
    """Headless Blender (the bpy module runs in background mode) keeps no undo stack until a
    script pushes a step, and operators push none themselves; so this test pushes the steps an
    interactive session makes around an operator with the UNDO option, then undoes and redoes."""
    if not (REPO / "relight_core" / "mesh.py").is_file():
        pytest.skip("relight_core.mesh is not there yet")
    assert {"REGISTER", "UNDO"} <= addon.plate_ops.RELIGHT_OT_extract_head_mesh.bl_options
    sc = tracked
    old = bpy.data.objects.get("Relight Head Mesh")  # from the test above
    if old is not None:
        mesh = old.data
        bpy.data.objects.remove(old)
        bpy.data.meshes.remove(mesh)
    sc.relight.mesh_resolution = 64
    sc.relight.weights = ""  # the shipped weights: the seeded tiny network has no head surface
    sc.frame_set(2)
    objects, meshes = set(bpy.data.objects.keys()), set(bpy.data.meshes.keys())
    bpy.ops.ed.undo_push(message="before Extract Head Mesh")
    assert bpy.ops.relight.extract_head_mesh() == {"FINISHED"}
    bpy.ops.ed.undo_push(message="Extract Head Mesh")
    vertices = len(bpy.data.objects["Relight Head Mesh"].data.vertices)

    assert bpy.ops.ed.undo() == {"FINISHED"}
    sc = bpy.context.scene  # the fixture's reference is stale now
    assert set(bpy.data.objects.keys()) == objects and set(bpy.data.meshes.keys()) == meshes
    anchor, cam = sc.relight.subject, sc.relight.plate_camera
    assert anchor is not None and anchor.name in sc.objects and sc.camera == cam and cam.name in sc.objects

    assert bpy.ops.ed.redo() == {"FINISHED"}
    sc = bpy.context.scene
    ob = bpy.data.objects["Relight Head Mesh"]
    assert ob.parent == sc.relight.subject and ob.name in sc.objects and len(ob.data.vertices) == vertices
