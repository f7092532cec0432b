# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators. Each one works headless (``blender -b`` / the bpy module) as well as in the UI."""

import os

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import scene_export

# Blender 4.5+ warns about "//" paths in operator properties without this option (4.2 lacks it).
_PATH_OPTIONS = {"PATH_SUPPORTS_BLEND_RELATIVE"} if bpy.app.version >= (4, 5, 0) else set()


def _frames(op, scene):
    """Frames to export: the current one, or a range (operator values > scene settings > scene range)."""
    if op.frames == "CURRENT":
        return [scene.frame_current]
    s = scene.relight
    start, end = (s.frame_start, s.frame_end) if s.use_frame_range else (scene.frame_start, scene.frame_end)
    if op.properties.is_property_set("frame_start"):
        start = op.frame_start
    if op.properties.is_property_set("frame_end"):
        end = op.frame_end
    if end < start:
        raise ValueError(f"the frame range ends ({end}) before it starts ({start})")
    return list(range(start, end + 1, max(1, scene.frame_step)))


def _resolve(path):
    if path.startswith("//") and not bpy.data.filepath:
        raise ValueError(f"{path!r} is relative to the .blend file, which is not saved yet; save it or pick an absolute path")
    path = bpy.path.abspath(path)
    return path if path.lower().endswith(".json") else path + ".json"


class RELIGHT_OT_export_scene(bpy.types.Operator):
    """Write the lights, world and camera of the current frame or a frame range as a Relight scene file"""

    bl_idname = "relight.export_scene"
    bl_label = "Export Relight Scene"
    bl_options = {"REGISTER"}

    filepath: StringProperty(name="File", description="Scene file to write (JSON); empty: the scene's Relight setting",
                             subtype="FILE_PATH", default="", options=_PATH_OPTIONS)
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})
    frames: EnumProperty(
        name="Frames",
        items=(("CURRENT", "Current Frame", "Only the current frame"),
               ("RANGE", "Frame Range", "The scene's frame range, or the Relight custom range")),
        default="CURRENT",
    )
    frame_start: IntProperty(name="Start", description="First frame (overrides the scene's)")
    frame_end: IntProperty(name="End", description="Last frame (overrides the scene's)")

    @classmethod
    def poll(cls, context):
        return context.scene is not None and hasattr(context.scene, "relight")

    def invoke(self, context, event):
        if not self.filepath:
            self.filepath = context.scene.relight.export_path
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        scene = context.scene
        try:
            path = _resolve(self.filepath or scene.relight.export_path)
            frames = _frames(self, scene)
            _, warnings = scene_export.export_scene(context, frames, path)
        except (OSError, ValueError, RuntimeError) as exc:
            self.report({"ERROR"}, f"Relight export failed: {exc}")
            return {"CANCELLED"}
        for w in warnings:
            self.report({"WARNING"}, w)
        self.report({"INFO"}, f"Relight: wrote {len(frames)} frame(s) to {os.path.basename(path)}")
        return {"FINISHED"}
