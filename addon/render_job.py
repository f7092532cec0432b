# SPDX-License-Identifier: GPL-3.0-or-later
"""One relit frame: the worker's ``render`` request for a Blender frame, and its passes.

Each frame is its own plate job in the cache folder, named by a hash of everything that
affects it (the frame's exported lights, world and camera, the plate camera, the settings): a
re-render with nothing changed finds the job done and the worker skips it without loading the
network; a change makes a new job. ``warmup_frames`` earlier plate frames are tracked and relit
again first (not written), so tracking smoothing and the temporal network are settled.
"""

import hashlib
import json
import os

import bpy
import numpy as np

from . import plate as _plate
from . import preferences, scene_export

# (Blender pass, plate pass, channels, channel ids, type). Multilayer EXR names come out as
# <view layer>.<pass>.<channel>, e.g. "ViewLayer.Normal.X": what Nuke and Blender read as layers.
PASSES = (
    ("Relit", "relit", 4, "RGBA", "COLOR"),
    ("Albedo", "albedo", 3, "RGB", "COLOR"),
    ("Shading", "shading", 3, "RGB", "COLOR"),
    ("Ratio", "ratio", 3, "RGB", "COLOR"),
    ("Normal", "normal", 3, "XYZ", "VECTOR"),
    ("Depth", "depth", 1, "Z", "VALUE"),
    ("Matte", "alpha", 1, "A", "VALUE"),
)


def cache_dir(scene):
    """The absolute cache folder (next to the .blend, or in Blender's temp folder when unsaved)."""
    path = scene.relight.cache_dir or "//relight_cache/"
    if path.startswith("//") and not bpy.data.filepath:
        return os.path.join(bpy.app.tempdir or os.path.join(os.path.expanduser("~"), ".cache"), "relight_cache")
    return os.path.abspath(bpy.path.abspath(path))


def _write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)


def _world_bakes(scene, bake_dir, allow_bake):
    """The bake cache for export_frame: a node world must be baked on the main thread (a render
    cannot start another render), so the engine reuses the bake a Preview made."""
    world = scene.world
    if world is None or allow_bake or scene_export.constant_world(world) is not None:
        return {}
    name = f"{bpy.path.clean_name(world.name)}.npy"
    if scene_export.world_is_animated(world) or not os.path.isfile(os.path.join(bake_dir, name)):
        raise ValueError(f"the world {world.name!r} uses nodes and must be baked first: run Preview Frame once "
                         "(animated node worlds: use a constant-colour world or bake lights as lamps)")
    return {(world.name, None): os.path.join(os.path.basename(bake_dir), name)}


def frame_request(scene, depsgraph, view_layer, allow_bake=False):
    """``(args, warnings)`` of the worker's ``render`` request for the depsgraph's frame.

    Scene lights: the frame's lights, world and camera are exported (a scene file per frame);
    another active camera than the plate camera gives a novel view. Preset: a named light fixed
    to the plate camera, rendered in the plate's view.
    """
    s = scene.relight
    plate_path, _ = _plate.plate_source(s.plate_path)
    frame = scene.frame_current
    root = cache_dir(scene)
    scenes = os.path.join(root, "scenes")
    prefs = preferences.get()
    settings = {"input": plate_path, "frames": f"{frame}:{frame}", "weights": bpy.path.abspath(s.weights) or None,
                "device": (prefs.device if prefs is not None else "AUTO").lower(),
                "colourspace": s.plate_colorspace or None, "video_start": 1, "focal_mm": s.plate_focal_mm,
                "sensor_width_mm": s.plate_sensor_width, "resume_warmup": s.warmup_frames,
                "exposure": s.exposure, "formats": ["exr32"], "multilayer": False, "preview": False,
                "contact_sheet": False}
    warnings, files = [], {}
    if s.light_source == "PRESET":
        settings["light"] = s.preset
    else:
        bake_dir = os.path.join(scenes, "world")
        frame_dict = scene_export.export_frame(scene, depsgraph, view_layer, bake_dir,
                                               _world_bakes(scene, bake_dir, allow_bake), warnings)
        files["scene"] = {"format": scene_export.FORMAT, "version": scene_export.VERSION,
                          "fps": scene.render.fps / scene.render.fps_base, "frames": [frame_dict]}
        plate_cam = s.plate_camera
        if plate_cam is not None and scene.camera is not None and scene.camera.name != plate_cam.name:
            files["plate_camera"] = {"matrix_world": _plate.camera_matrix(plate_cam)}
    key = hashlib.sha1(json.dumps([settings, files], sort_keys=True).encode()).hexdigest()[:12]
    for name, content in files.items():
        settings[name] = os.path.join(scenes, f"{name}.{frame:04d}.{key}.json")
        _write_json(settings[name], content)
    settings["out"] = os.path.join(root, "jobs", f"frame.{frame:04d}.{key}")
    return settings, warnings


def load_passes(path):
    """The ``.npz`` of a rendered frame -> {plate pass: float32 [H, W, C], rows from the top}."""
    with np.load(path) as data:
        return {k: np.asarray(data[k], dtype=np.float32) for k in data.files}


def fit(image, width, height, channels):
    """``image`` [H, W, C] as Blender pixel rows (bottom first), resized (nearest) to width x
    height and padded to ``channels`` (alpha 1): ``[height * width, channels]``."""
    h, w = image.shape[:2]
    if (w, h) != (width, height):
        rows = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(int)
        cols = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(int)
        image = image[rows][:, cols]
    c = image.shape[2]
    if c < channels:
        pad = np.ones((height, width, channels - c), np.float32)
        image = np.concatenate([image, pad], axis=2)
    return np.ascontiguousarray(image[::-1, :, :channels]).reshape(-1, channels)


def preview_image(name, beauty):
    """A float image datablock holding ``beauty`` [H, W, 3|4] (scene-linear)."""
    h, w = beauty.shape[:2]
    image = bpy.data.images.get(name)
    if image is None or tuple(image.size) != (w, h):
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.new(name, w, h, alpha=True, float_buffer=True)
    image.pixels.foreach_set(fit(beauty, w, h, 4).ravel())
    image.update()
    return image
