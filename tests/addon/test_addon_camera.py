"""Blender camera -> relight_core.scene camera: intrinsics against calc_matrix_camera and world_to_camera_view."""

from __future__ import annotations

import math

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from relight_core import camera as rcamera
from relight_core import scene as rscene

POINTS = np.array([[0.4, 0.9, 0.3], [-0.5, 1.5, -0.2], [0.1, 0.3, 0.6], [0.0, 0.0, 0.0]])


def _camera(scene, lens=35.0, fit="AUTO", shift=(0.0, 0.0)):
    data = bpy.data.cameras.new("cam")
    data.lens, data.sensor_width, data.sensor_height, data.sensor_fit = lens, 36.0, 20.0, fit
    data.shift_x, data.shift_y = shift
    ob = bpy.data.objects.new("cam", data)
    ob.location = (0.3, -4.0, 0.5)
    ob.rotation_euler = (math.radians(85), math.radians(5), math.radians(10))
    scene.collection.objects.link(ob)
    scene.camera = ob
    return ob


def _export_camera(addon, scene):
    dg = bpy.context.evaluated_depsgraph_get()
    return rscene.CameraDesc.from_dict(addon.camera.camera_dict(scene.camera, scene, dg))


def _blender_uv(scene, cam, points):
    """Normalized image coordinates (u right, v down) from Blender's own projection."""
    out = []
    for p in points:
        w = world_to_camera_view(scene, cam, Vector(p))
        out.append((w.x, 1.0 - w.y))
    return np.array(out)


@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920)], ids=["landscape", "portrait"])
@pytest.mark.parametrize("fit", ["AUTO", "HORIZONTAL", "VERTICAL"])
@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.1, -0.05)], ids=["centred", "shifted"])
@pytest.mark.parametrize("aspect", [(1.0, 1.0), (2.0, 1.0)], ids=["square_px", "anamorphic"])
def test_intrinsics_match_blender(empty_scene, addon, size, fit, shift, aspect):
    sc = empty_scene
    sc.render.resolution_x, sc.render.resolution_y = size
    sc.render.pixel_aspect_x, sc.render.pixel_aspect_y = aspect
    cam = _camera(sc, fit=fit, shift=shift)
    desc = _export_camera(addon, sc)
    assert desc.resolution == size and desc.sensor_fit == fit.lower()
    # relight_core.scene's lens model == the calc_matrix_camera intrinsics the add-on wrote
    np.testing.assert_allclose(desc.lens_intrinsics(), desc.intrinsics, atol=2e-6)
    # and both project like Blender does
    uv = rcamera.project_points(POINTS, desc.cam2world(), desc.lens_intrinsics()).numpy()
    np.testing.assert_allclose(uv, _blender_uv(sc, cam, POINTS), atol=2e-6)


def test_portrait_auto_fit_uses_sensor_width_on_the_long_side(empty_scene, addon):
    sc = empty_scene
    sc.render.resolution_x, sc.render.resolution_y = 1080, 1920
    _camera(sc, lens=50.0)
    desc = _export_camera(addon, sc)
    k = desc.K()
    assert k[1, 1] == pytest.approx(50.0 / 36.0, rel=1e-6)  # fy per image height = lens / sensor_width
    assert k[0, 0] == pytest.approx(50.0 / 36.0 * 1920 / 1080, rel=1e-6)


def test_animated_zoom(empty_scene, addon, tmp_path):
    sc = empty_scene
    sc.render.resolution_x, sc.render.resolution_y = 1280, 720
    cam = _camera(sc, lens=24.0, shift=(0.05, 0.0))
    cam.data.keyframe_insert("lens", frame=1)
    cam.data.lens = 85.0
    cam.data.keyframe_insert("lens", frame=9)
    path = tmp_path / "zoom.json"
    assert bpy.ops.relight.export_scene(filepath=str(path), frames="RANGE", frame_start=1, frame_end=9) == {"FINISHED"}
    loaded = rscene.Scene.load(path)
    lenses = []
    for f, frame in loaded.frames.items():
        sc.frame_set(f)
        dg = bpy.context.evaluated_depsgraph_get()
        assert frame.camera.lens == pytest.approx(cam.evaluated_get(dg).data.lens, rel=1e-6)
        np.testing.assert_allclose(frame.camera.lens_intrinsics(), frame.camera.K(), atol=2e-6)
        expected = np.array(addon.camera.normalized_intrinsics(cam, dg, 1280, 720))
        np.testing.assert_allclose(frame.camera.K(), expected, atol=1e-7)
        uv = rcamera.project_points(POINTS, frame.camera.cam2world(), frame.camera.K()).numpy()
        np.testing.assert_allclose(uv, _blender_uv(sc, cam, POINTS), atol=2e-6)
        lenses.append(frame.camera.lens)
    assert lenses[0] == pytest.approx(24.0) and lenses[-1] == pytest.approx(85.0)
    assert all(a < b for a, b in zip(lenses, lenses[1:]))


def test_orthographic_camera_is_not_exported(empty_scene, addon):
    sc = empty_scene
    cam = _camera(sc)
    cam.data.type = "ORTHO"
    dg = bpy.context.evaluated_depsgraph_get()
    warnings = []
    frame = addon.scene_export.export_frame(sc, dg, bpy.context.view_layer, "/nonexistent", {}, warnings)
    assert frame["camera"] is None and "not a perspective camera" in warnings[0]
