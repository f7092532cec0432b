# SPDX-License-Identifier: GPL-3.0-or-later
"""Evaluated Blender scene -> the plain dicts of ``relight_core.scene`` (format "relight.scene" v1).

This module only *reads* Blender data; every conversion to SH lives in relight_core (one
conversion, shared with the CLI). Per frame it writes the visible lights (instances included, read
from the evaluated depsgraph), the world and the active camera:

* lights: type, colour (times the blackbody tint when "Temperature" is on), power, exposure,
  normalize, ``matrix_world``, radius and soft falloff, spot cone, sun angle, area shape and
  spread. Lights hidden for rendering or invisible to diffuse rays are skipped.
* world: ``constant`` when the node tree is a plain Background with unlinked inputs (or nodes are
  off); anything else is baked: Cycles renders the world alone through an equirectangular
  panoramic camera (Blender's Environment Texture layout) and the linear radiance is saved as a
  float32 ``.npy`` ``[H, W, 3]`` next to the scene file. Unanimated worlds are baked once per
  export.
* camera: see ``camera.py``.

Not exported (warned about): light and world node trees beyond the above, light linking, area
light textures. A world whose camera-ray and lighting branches differ (Light Path tricks) is baked
as the camera sees it.
"""

import json
import math
import os
import tempfile

import bpy
import numpy as np

from . import camera as _camera

FORMAT = "relight.scene"
VERSION = 1
_LIGHT_TYPES = {"POINT": "point", "SUN": "sun", "SPOT": "spot", "AREA": "area"}
_BAKE_NAME = "RELIGHT_world_bake"


def _rows(matrix):
    return [list(map(float, row)) for row in matrix]


# ------------------------------------------------------------------------------------------
# lights
# ------------------------------------------------------------------------------------------


def light_dict(light, matrix, name, warnings):
    """The relight_core.scene ``light`` dict of a (evaluated) Light datablock placed at ``matrix``."""
    color = [float(c) for c in light.color]
    if getattr(light, "use_temperature", False):  # Blender 4.5+
        color = [c * float(t) for c, t in zip(color, light.temperature_color)]
    d = {
        "type": _LIGHT_TYPES[light.type],
        "name": name,
        "power": float(light.energy),
        "color": color,
        "exposure": float(getattr(light, "exposure", 0.0)),  # 4.5+; 4.2 has neither
        "normalize": bool(getattr(light, "normalize", True)),
        "matrix": _rows(matrix),
    }
    if light.type in ("POINT", "SPOT"):
        d["radius"] = float(light.shadow_soft_size)
        d["soft_falloff"] = bool(getattr(light, "use_soft_falloff", True))
    if light.type == "SPOT":
        d["spot_size"] = float(light.spot_size)
        d["spot_blend"] = float(light.spot_blend)
    elif light.type == "SUN":
        d["angle"] = float(light.angle)
    elif light.type == "AREA":
        d["shape"] = light.shape.lower()
        d["size"] = float(light.size)
        d["size_y"] = float(light.size_y)
        d["spread"] = float(getattr(light, "spread", math.pi))
    if getattr(light, "use_nodes", False) and light.node_tree is not None:
        warnings.append(f"light {name!r}: its node tree is ignored (only colour and power are read)")
    return d


def _renderable_hidden_lights(view_layer, seen):
    """Lights hidden in the viewport (not in a viewport depsgraph) that still render."""
    out = []
    for ob in view_layer.objects:
        if ob.type != "LIGHT" or ob.name in seen or ob.hide_render:
            continue
        if any(c.hide_render for c in ob.users_collection):
            continue
        out.append(ob)
    return out


def export_lights(depsgraph, view_layer, warnings):
    """Light dicts of every renderable light instance of an evaluated depsgraph."""
    lights, seen = [], set()
    for inst in depsgraph.object_instances:
        ob = inst.object
        if ob.type != "LIGHT":
            continue
        original = ob.original
        if original.hide_render:
            continue
        seen.add(original.name)
        name = original.name if not inst.is_instance else f"{original.name} (instance)"
        if not getattr(original, "visible_diffuse", True):
            warnings.append(f"light {name!r}: invisible to diffuse rays, skipped")
            continue
        if _light_linked(original):
            warnings.append(f"light {name!r}: light linking is ignored; it lights the head")
        lights.append(light_dict(ob.data, inst.matrix_world, name, warnings))
    if depsgraph.mode == "VIEWPORT":
        for ob in _renderable_hidden_lights(view_layer, seen):
            if getattr(ob, "visible_diffuse", True):
                lights.append(light_dict(ob.data, ob.matrix_world, ob.name, warnings))
    return lights


def _light_linked(ob):
    link = getattr(ob, "light_linking", None)
    return link is not None and (link.receiver_collection is not None or link.blocker_collection is not None)


# ------------------------------------------------------------------------------------------
# world
# ------------------------------------------------------------------------------------------


def constant_world(world):
    """``(rgb, strength)`` when the world is one unlinked Background (or nodes are off), else None."""
    if not world.use_nodes or world.node_tree is None:
        return [float(c) for c in world.color], 1.0
    outputs = [n for n in world.node_tree.nodes if n.type == "OUTPUT_WORLD" and n.target in ("ALL", "CYCLES")]
    active = [n for n in outputs if n.is_active_output] or outputs
    if not active:
        return [0.0, 0.0, 0.0], 0.0
    surface = active[0].inputs["Surface"]
    if not surface.is_linked:
        return [0.0, 0.0, 0.0], 0.0
    node = surface.links[0].from_node
    if node.type != "BACKGROUND" or node.inputs["Color"].is_linked or node.inputs["Strength"].is_linked:
        return None
    return [float(c) for c in node.inputs["Color"].default_value[:3]], float(node.inputs["Strength"].default_value)


def world_is_animated(world):
    """True when the world or its node tree has animation data (or drivers)."""
    ids = [world] + ([world.node_tree] if world.node_tree is not None else [])
    return any(i.animation_data is not None and (i.animation_data.action or i.animation_data.drivers) for i in ids)


def bake_world(world, frame, path, width=64, samples=256):
    """Render ``world`` alone through an equirectangular camera with Cycles; save ``[H, W, 3]`` .npy.

    The camera sits at the origin with rotation (90, 0, -90) degrees, so the image centre is +X,
    the column at u = 0.25 is +Y and the top row +Z: Blender's Environment Texture layout
    (``relight_core.sh.envmap_directions``). A box filter of one pixel makes each pixel the mean
    radiance over its footprint. The temporary scene, camera and image are removed afterwards.

    Returns:
        The float32 array ``[width // 2, width, 3]`` (rows from the top) also written to ``path``.
    """
    height = max(1, width // 2)
    tmp = bpy.data.scenes.new(_BAKE_NAME)
    cam = bpy.data.cameras.new(_BAKE_NAME)
    ob = bpy.data.objects.new(_BAKE_NAME, cam)
    fd, exr = tempfile.mkstemp(prefix="relight_world_", suffix=".exr")
    os.close(fd)
    img = None
    # Camera rays see the background directly, so Cycles' world importance map (seconds to
    # build for an HDRI) is useless here: switch it off for the bake, restore it afterwards.
    world_cycles = getattr(world, "cycles", None)
    old_sampling = getattr(world_cycles, "sampling_method", None)
    try:
        if old_sampling is not None:
            world_cycles.sampling_method = "NONE"
        tmp.world = world
        tmp.collection.objects.link(ob)
        tmp.camera = ob
        cam.type = "PANO"
        cam.panorama_type = "EQUIRECTANGULAR"  # 4.x: on the camera (was cycles.panorama_type)
        ob.rotation_euler = (math.pi / 2.0, 0.0, -math.pi / 2.0)
        r = tmp.render
        r.engine = "CYCLES"
        r.resolution_x, r.resolution_y, r.resolution_percentage = width, height, 100
        r.use_compositing = r.use_sequencer = False
        r.image_settings.file_format = "OPEN_EXR"
        r.image_settings.color_depth = "32"
        r.filepath = exr
        c = tmp.cycles
        c.device = "CPU"
        c.samples = samples
        c.use_denoising = False
        c.use_adaptive_sampling = False
        c.pixel_filter_type = "BOX"
        c.filter_width = 1.0
        tmp.view_settings.view_transform = "Standard"
        tmp.view_settings.look = "None"
        tmp.view_settings.exposure = 0.0
        tmp.frame_set(frame)
        bpy.ops.render.render(write_still=True, scene=tmp.name)
        img = bpy.data.images.load(exr, check_existing=False)
        w, h = img.size
        px = np.empty(w * h * img.channels, dtype=np.float32)
        img.pixels.foreach_get(px)
        env = np.ascontiguousarray(px.reshape(h, w, img.channels)[::-1, :, :3])
        np.save(path, env)
        return env
    finally:
        if old_sampling is not None:
            world_cycles.sampling_method = old_sampling
        if img is not None:
            bpy.data.images.remove(img)
        bpy.data.objects.remove(ob)
        bpy.data.cameras.remove(cam)
        bpy.data.scenes.remove(tmp)
        if os.path.exists(exr):
            os.remove(exr)


def export_world(scene, frame, bake_dir, settings, bake_cache, warnings):
    """The relight_core.scene ``world`` dict (None for no world); paths are relative to ``bake_dir``'s parent."""
    world = scene.world
    if world is None:
        return None
    vis = getattr(world, "cycles_visibility", None)
    if vis is not None and not vis.diffuse:
        warnings.append(f"world {world.name!r}: invisible to diffuse rays, not exported")
        return None
    const = constant_world(world)
    if const is not None:
        return {"kind": "constant", "color": const[0], "strength": const[1]}
    animated = world_is_animated(world)
    key = (world.name, frame if animated else None)
    if key not in bake_cache:
        os.makedirs(bake_dir, exist_ok=True)
        fname = f"{bpy.path.clean_name(world.name)}_{frame:06d}.npy" if animated else f"{bpy.path.clean_name(world.name)}.npy"
        path = os.path.join(bake_dir, fname)
        bake_world(world, frame, path, settings["world_bake_width"], settings["world_bake_samples"])
        bake_cache[key] = os.path.join(os.path.basename(bake_dir), fname)
    return {"kind": "image", "path": bake_cache[key], "strength": 1.0,
            "rotation": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]}


# ------------------------------------------------------------------------------------------
# frames
# ------------------------------------------------------------------------------------------


def _bake_settings(scene):
    s = getattr(scene, "relight", None)
    return {"world_bake_width": getattr(s, "world_bake_width", 64), "world_bake_samples": getattr(s, "world_bake_samples", 256)}


def export_frame(scene, depsgraph, view_layer, bake_dir, bake_cache=None, warnings=None):
    """The relight_core.scene ``frame`` dict of ``scene`` as evaluated in ``depsgraph`` (its current frame).

    Args:
        scene: the Blender scene (original).
        depsgraph: its evaluated depsgraph at the frame (viewport or render).
        view_layer: the view layer whose visibility applies.
        bake_dir: folder for world bakes; the dict refers to them relative to its parent (put
            the scene file in that parent).
        bake_cache: dict reused across frames of one export (unanimated worlds bake once).
        warnings: list that collects messages about what SH9 or this exporter cannot represent.
    """
    warnings = [] if warnings is None else warnings
    bake_cache = {} if bake_cache is None else bake_cache
    frame = scene.frame_current
    cam = None
    if scene.camera is not None:
        cam = _camera.camera_dict(scene.camera, scene, depsgraph)
        if cam is None:
            warnings.append(f"camera {scene.camera.name!r}: not a perspective camera, not exported")
    return {
        "frame": frame,
        "lights": export_lights(depsgraph, view_layer, warnings),
        "world": export_world(scene, frame, bake_dir, _bake_settings(scene), bake_cache, warnings),
        "camera": cam,
    }


def export_scene(context, frames, path):
    """Write the scene description of ``frames`` to ``path`` (JSON) and return ``(dict, warnings)``.

    Moves the current frame through ``frames`` (restored afterwards) and reads the evaluated
    depsgraph at each. World bakes go to ``<path stem>_world/`` next to the file.
    """
    scene, view_layer = context.scene, context.view_layer
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    bake_dir = os.path.join(folder, os.path.splitext(os.path.basename(path))[0] + "_world")
    warnings, bake_cache, out = [], {}, []
    old_frame, old_sub = scene.frame_current, scene.frame_subframe
    try:
        for f in frames:
            scene.frame_set(int(f))
            depsgraph = context.evaluated_depsgraph_get()
            out.append(export_frame(scene, depsgraph, view_layer, bake_dir, bake_cache, warnings))
    finally:
        scene.frame_set(old_frame, subframe=old_sub)
    data = {"format": FORMAT, "version": VERSION, "fps": scene.render.fps / scene.render.fps_base, "frames": out}
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)
    return data, list(dict.fromkeys(warnings))
