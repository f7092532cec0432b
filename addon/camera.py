# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender camera -> the ``camera`` dict of relight_core.scene (no math beyond reading Blender's).

The intrinsics come from ``Object.calc_matrix_camera``, which honours sensor fit, shift, pixel
aspect and animated focal length (``angle_x``/``angle_y`` ignore sensor fit: BLENDER.md 3.3).
"""


def render_size(scene):
    """Final render ``(width, height, pixel_aspect_x, pixel_aspect_y)`` of a scene."""
    r = scene.render
    pct = r.resolution_percentage / 100.0
    return max(1, int(r.resolution_x * pct)), max(1, int(r.resolution_y * pct)), r.pixel_aspect_x, r.pixel_aspect_y


def normalized_intrinsics(cam_obj, depsgraph, width, height, aspect_x=1.0, aspect_y=1.0):
    """Normalized intrinsics ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (u right, v down, in [0, 1]).

    Read off the OpenGL projection ``P`` of ``calc_matrix_camera``: ``u = (x_ndc + 1) / 2`` and
    ``v = (1 - y_ndc) / 2`` give ``fx = P00 / 2``, ``cx = (1 - P02) / 2``, ``fy = P11 / 2``,
    ``cy = (1 + P12) / 2`` in OpenCV camera axes (x right, y down, z forward).
    """
    p = cam_obj.calc_matrix_camera(depsgraph, x=width, y=height, scale_x=aspect_x, scale_y=aspect_y)
    return [
        [p[0][0] / 2.0, 0.0, (1.0 - p[0][2]) / 2.0],
        [0.0, p[1][1] / 2.0, (1.0 + p[1][2]) / 2.0],
        [0.0, 0.0, 1.0],
    ]


def camera_dict(cam_obj, scene, depsgraph):
    """The relight_core.scene ``camera`` dict of a perspective camera object at the depsgraph's frame.

    Args:
        cam_obj: a camera object (original or evaluated).
        scene: its scene (render resolution and pixel aspect).
        depsgraph: an evaluated depsgraph at the frame.

    Returns:
        dict, or None when the camera is not perspective (orthographic and panoramic cameras
        cannot look at a head through a pinhole).
    """
    ob = cam_obj.evaluated_get(depsgraph)
    cam = ob.data
    if cam.type != "PERSP":
        return None
    width, height, ax, ay = render_size(scene)
    return {
        "name": cam_obj.name,
        "matrix_world": [list(row) for row in ob.matrix_world],
        "resolution": [width, height],
        "lens": cam.lens,
        "sensor_width": cam.sensor_width,
        "sensor_height": cam.sensor_height,
        "sensor_fit": cam.sensor_fit.lower(),
        "shift_x": cam.shift_x,
        "shift_y": cam.shift_y,
        "pixel_aspect": [ax, ay],
        "intrinsics": normalized_intrinsics(cam_obj, depsgraph, width, height, ax, ay),
    }
