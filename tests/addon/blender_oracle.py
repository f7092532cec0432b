"""Cycles ground truth for SH lighting: a tiny white diffuse sphere at the head (BLENDER.md 4.4).

A Lambertian sphere of albedo 1 renders ``E(n) / pi`` at the pixel whose normal is ``n``, which is
exactly what ``relight_core.sh.shading`` predicts from the SH (up to SH9 truncation). The sphere
(radius 2 mm, so the inverse-square change across it is < 0.3 % at 1 m) is rendered with Cycles
(CPU, direct light only, no denoising, Standard view, pixel filter shrunk to the pixel centre) by
six orthographic cameras along the world axes; together they see every normal at least 26 degrees
inside a silhouette (the rim is dropped).
"""

from __future__ import annotations

import os
import tempfile

import bpy
import numpy as np
from mathutils import Vector

RADIUS = 0.002
_AXES = [Vector(v) for v in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))]
_NAME = "RELIGHT_TEST_probe"


def add_probe(scene, head, resolution=40, samples=64):
    """Add the white sphere at ``head`` and set Cycles up; returns the sphere object."""
    mesh = bpy.data.meshes.new(_NAME)
    import bmesh

    bm = bmesh.new()
    bmesh.ops.create_uvsphere(bm, u_segments=128, v_segments=64, radius=RADIUS)
    bm.to_mesh(mesh)
    bm.free()
    mesh.shade_smooth()
    ob = bpy.data.objects.new(_NAME, mesh)
    ob.location = head
    scene.collection.objects.link(ob)
    mat = bpy.data.materials.new(_NAME)
    mat.use_nodes = True
    nt = mat.node_tree
    nt.nodes.clear()
    diffuse = nt.nodes.new("ShaderNodeBsdfDiffuse")
    diffuse.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    out = nt.nodes.new("ShaderNodeOutputMaterial")
    nt.links.new(diffuse.outputs[0], out.inputs["Surface"])
    mesh.materials.append(mat)

    r = scene.render
    r.engine = "CYCLES"
    r.resolution_x = r.resolution_y = resolution
    r.resolution_percentage = 100
    r.image_settings.file_format = "OPEN_EXR"
    r.image_settings.color_depth = "32"
    c = scene.cycles
    c.device = "CPU"
    c.samples = samples
    c.use_denoising = False
    c.use_adaptive_sampling = False
    c.max_bounces = 0
    c.filter_width = 0.01
    c.seed = 1
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    return ob


def render_probe(scene, head):
    """Render the six views; returns (normals [N, 3] in world axes, linear RGB [N, 3]) on the sphere."""
    head = Vector(head)
    cam_data = bpy.data.cameras.new(_NAME)
    cam_data.type = "ORTHO"
    cam_data.ortho_scale = 2.4 * RADIUS
    cam_data.clip_start = 0.01
    cam = bpy.data.objects.new(_NAME + "_cam", cam_data)
    scene.collection.objects.link(cam)
    old_camera = scene.camera
    scene.camera = cam
    fd, path = tempfile.mkstemp(suffix=".exr")
    os.close(fd)
    normals, values = [], []
    try:
        res = scene.render.resolution_x
        t = ((np.arange(res) + 0.5) / res - 0.5) * cam_data.ortho_scale
        yy, xx = np.meshgrid(t, t, indexing="ij")  # rows from the bottom, as in Image.pixels
        rho2 = (xx**2 + yy**2) / RADIUS**2
        keep = rho2 < 0.81
        for view in _AXES:  # camera looks along -view, from the +view side
            rot = (-view).to_track_quat("-Z", "Y")
            cam.rotation_euler = rot.to_euler()
            cam.location = head + view * 0.5
            scene.render.filepath = path
            bpy.ops.render.render(write_still=True)
            img = bpy.data.images.load(path, check_existing=False)
            px = np.empty(res * res * 4, dtype=np.float32)
            img.pixels.foreach_get(px)
            bpy.data.images.remove(img)
            px = px.reshape(res, res, 4)
            right = np.array(rot @ Vector((1, 0, 0)))
            up = np.array(rot @ Vector((0, 1, 0)))
            z = np.sqrt(np.clip(1.0 - rho2, 0.0, None))
            n = (xx[..., None] * right + yy[..., None] * up) / RADIUS + z[..., None] * np.array(view)
            normals.append(n[keep])
            values.append(px[..., :3][keep])
    finally:
        scene.camera = old_camera
        bpy.data.objects.remove(cam)
        bpy.data.cameras.remove(cam_data)
        os.remove(path)
    return np.concatenate(normals).astype(np.float64), np.concatenate(values).astype(np.float64)


def fit_sh(normals, values, lmax=8):
    """Least-squares SH fit of the rendered shading; returns the DPR coefficients ``c`` [9, 3].

    The shading holds every even band (A_l != 0), so bands 3..lmax are fitted too (any basis of
    each band works) and only the first nine coefficients are returned, divided by A_l: those are
    the radiance SH / pi that ``scene_to_sh`` predicts.
    """
    import scipy.special as sp
    import torch

    from relight_core import sh

    cols = [sh.sh_basis(torch.from_numpy(normals)).numpy()]
    theta = np.arccos(np.clip(normals[:, 2], -1, 1))
    phi = np.arctan2(normals[:, 1], normals[:, 0])
    for degree in range(3, lmax + 1):
        for m in range(degree + 1):
            y = sp.sph_harm_y(degree, m, theta, phi)
            cols.append(y.real[:, None])
            if m:
                cols.append(y.imag[:, None])
    a = np.concatenate(cols, axis=1)
    coef, *_ = np.linalg.lstsq(a, values, rcond=None)
    return coef[:9] / np.asarray(sh.LAMBERT)[:, None]


def translation(p):
    m = np.eye(4)
    m[:3, 3] = p
    return m


FRONT_CAMERA_OFFSET = (0.0, -3.0, 0.0)


def front_camera(head):
    """OpenCV cam2world of a camera 3 m in front of the head (-Y) looking +Y with Z up.

    Its DPR frame is the world frame (x = X right, y = Y into the screen, z = Z up), so world
    normals can be fed to ``sh.shading`` directly.
    """
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2] = (1, 0, 0), (0, 0, -1), (0, 1, 0)
    m[:3, 3] = np.asarray(head) + np.asarray(FRONT_CAMERA_OFFSET)
    return m


def add_light(scene, kind, location, **props):
    """A light object of type `kind` ("POINT", "SUN", "SPOT", "AREA") at `location`, with data properties."""
    data = bpy.data.lights.new(kind.lower(), kind)
    for key, value in props.items():
        setattr(data, key, value)
    ob = bpy.data.objects.new(kind.lower(), data)
    ob.location = location
    scene.collection.objects.link(ob)
    return ob
