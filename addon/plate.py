# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender data of the plate workflow: the plate clip, the plate camera, the head anchor, the
world from the plate's light and the head mesh. Main thread only; no worker calls here.

Conventions (shared with relight_core.plate):

* the plate camera is a perspective camera whose horizontal field of view is the plate's
  (``sensor_fit = HORIZONTAL``, lens on the plate sensor width); Track Plate puts it at the world
  origin looking along +Y (Blender's front view) unless it exists already;
* the head anchor is an empty whose local axes are the tracked head's (EG3D head space: +Y up,
  the face looking along +Z), at true scale: its location is the head pivot in metres, its
  scale 1. Frames without a usable face have no key (the pose is interpolated there).
"""

import math
import os
import re

import bpy
from mathutils import Matrix

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mxf", ".mpg", ".mpeg", ".ogv"}
CAMERA_NAME = "Relight Plate Camera"
ANCHOR_NAME = "Relight Head Anchor"
WORLD_NAME = "Relight Plate Light"
_OPENCV_TO_BLENDER_CAMERA = Matrix.Diagonal((1.0, -1.0, -1.0, 1.0))
_LAST_DIGITS = re.compile(r"(\d+)(?=\D*$)")


def plate_source(path):
    """``(worker path, first frame number)`` of a plate file: a video as is (frames from 1); one
    file of a numbered sequence becomes its ``####`` pattern (frames keep their file numbers)."""
    path = bpy.path.abspath(path)
    if not path:
        raise ValueError("no plate: choose a video or one image of a sequence in Load Plate")
    if not os.path.isfile(path):
        raise ValueError(f"plate not found: {path}")
    folder, name = os.path.split(path)
    if os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS:
        return path, 1
    stem, ext = os.path.splitext(name)
    m = _LAST_DIGITS.search(stem)
    if m is None:
        return path, 1
    pattern = stem[:m.start()] + "#" * len(m.group(1)) + stem[m.end():] + ext
    return os.path.join(folder, pattern), int(m.group(1))


def load_clip(scene, path):
    """Load the plate as a MovieClip keeping its frame numbers; fit the scene's range and size to it."""
    _, first = plate_source(path)
    clip = bpy.data.movieclips.load(bpy.path.abspath(path), check_existing=True)
    if clip.size[0] == 0 or clip.frame_duration == 0:
        raise ValueError(f"Blender cannot read the plate {path}: no frames or no size")
    clip.frame_start = first
    s = scene.relight
    s.plate_path, s.plate_clip = path, clip
    scene.frame_start, scene.frame_end = first, first + clip.frame_duration - 1
    scene.render.resolution_x, scene.render.resolution_y = clip.size[0], clip.size[1]
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    if clip.fps > 0:
        scene.render.fps, scene.render.fps_base = round(clip.fps), round(clip.fps) / clip.fps
    if s.plate_camera is not None:
        show_plate(s.plate_camera, clip)
    return clip


def show_plate(cam_obj, clip):
    """Show ``clip`` as the background of ``cam_obj`` (one Relight entry, reused)."""
    cam = cam_obj.data
    bg = next((b for b in cam.background_images if b.source == "MOVIE_CLIP"), None) or cam.background_images.new()
    bg.source = "MOVIE_CLIP"
    bg.clip = clip
    bg.clip_user.use_render_undistorted = False
    bg.alpha = 1.0
    cam.show_background_images = True


def plate_camera(scene, fov_deg, sensor_width):
    """The plate camera (created at the world origin looking along +Y if missing) with the
    plate's horizontal field of view; made the scene camera."""
    s = scene.relight
    ob = s.plate_camera
    if ob is None or ob.type != "CAMERA":
        cam = bpy.data.cameras.new(CAMERA_NAME)
        ob = bpy.data.objects.new(CAMERA_NAME, cam)
        scene.collection.objects.link(ob)
        ob.rotation_euler = (math.pi / 2.0, 0.0, 0.0)
        s.plate_camera = ob
    cam = ob.data
    cam.type = "PERSP"
    cam.sensor_fit = "HORIZONTAL"
    cam.sensor_width = sensor_width
    cam.lens = 0.5 * sensor_width / math.tan(math.radians(fov_deg) / 2.0)
    cam.shift_x = cam.shift_y = 0.0
    scene.camera = ob
    if s.plate_clip is not None:
        show_plate(ob, s.plate_clip)
    return ob


def _rigid(m):
    """``m`` without scale in its rotation block (columns normalised)."""
    out = m.copy()
    for j in range(3):
        col = out.col[j].xyz.normalized()
        for i in range(3):
            out[i][j] = col[i]
    return out


def animate_anchor(scene, cam_obj, frames, metres_per_unit):
    """Key the head anchor (created if missing) at every tracked frame; returns it.

    ``frames``: the worker's ``track`` records; ``head_to_camera`` maps head space to the plate
    camera's OpenCV axes in metres (scale in its rotation block). Old keys are replaced.
    """
    s = scene.relight
    anchor = s.subject if s.subject is not None and s.subject.type == "EMPTY" else None
    if anchor is None:
        anchor = bpy.data.objects.new(ANCHOR_NAME, None)
        scene.collection.objects.link(anchor)
        anchor.empty_display_type = "ARROWS"
        anchor.empty_display_size = 0.1
        s.subject = anchor
    anchor.animation_data_clear()
    anchor.parent = None
    anchor.rotation_mode = "QUATERNION"
    anchor["relight_metres_per_unit"] = float(metres_per_unit)
    cam_world = _rigid(cam_obj.matrix_world) @ _OPENCV_TO_BLENDER_CAMERA
    previous = None
    keyed = 0
    for rec in frames:
        if not rec.get("found"):
            continue
        m = cam_world @ Matrix(rec["head_to_camera"])
        loc, rot, _ = m.decompose()
        if previous is not None:
            rot.make_compatible(previous)  # no sign flips between keys: smooth interpolation
        previous = rot
        anchor.location, anchor.rotation_quaternion, anchor.scale = loc, rot, (1.0, 1.0, 1.0)
        anchor.keyframe_insert("location", frame=rec["frame"])
        anchor.keyframe_insert("rotation_quaternion", frame=rec["frame"])
        keyed += 1
    return anchor, keyed


def camera_matrix(ob):
    """An object's world matrix as nested lists (fresh: after a view-layer update)."""
    return [list(row) for row in ob.matrix_world]


def plate_light_world(scene, image_path):
    """Make (or update) the world that shows the plate's light: Environment Texture -> Background."""
    world = bpy.data.worlds.get(WORLD_NAME) or bpy.data.worlds.new(WORLD_NAME)
    world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    nodes.clear()
    old = bpy.data.images.get(WORLD_NAME)
    if old is not None:
        bpy.data.images.remove(old)
    image = bpy.data.images.load(image_path, check_existing=False)
    image.name = WORLD_NAME
    image.colorspace_settings.name = _linear_colourspace(image)
    env = nodes.new("ShaderNodeTexEnvironment")
    env.image = image
    env.location = (-300, 0)
    background = nodes.new("ShaderNodeBackground")
    output = nodes.new("ShaderNodeOutputWorld")
    output.location = (250, 0)
    links.new(env.outputs["Color"], background.inputs["Color"])
    links.new(background.outputs["Background"], output.inputs["Surface"])
    scene.world = world
    return world


def _linear_colourspace(image):
    names = [i.identifier for i in image.colorspace_settings.bl_rna.properties["name"].enum_items]
    for name in ("Linear Rec.709", "Linear"):
        if name in names:
            return name
    return image.colorspace_settings.name


def place_mesh(context, path, anchor):
    """Import a head mesh file (PLY/OBJ) and parent it to the head anchor with no offset: its
    vertices are in head space, metres, like the anchor's local axes."""
    before = set(bpy.data.objects)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".ply":
        bpy.ops.wm.ply_import(filepath=path)
    elif ext == ".obj":
        bpy.ops.wm.obj_import(filepath=path, forward_axis="Y", up_axis="Z")
    else:
        raise ValueError(f"cannot import {path}: expected .ply or .obj")
    new = [ob for ob in bpy.data.objects if ob not in before and ob.type == "MESH"]
    if not new:
        raise ValueError(f"{path} holds no mesh")
    ob = new[0]
    ob.name = "Relight Head Mesh"
    ob.parent = anchor
    ob.matrix_parent_inverse = Matrix.Identity(4)
    ob.matrix_basis = Matrix.Identity(4)
    return ob
