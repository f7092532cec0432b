# SPDX-License-Identifier: GPL-3.0-or-later
"""Panels in the 3D view sidebar (N panel, "Relight" tab)."""

import bpy

from . import preferences


class _SidebarPanel:
    """Where every Relight panel lives: the 3D view's sidebar, "Relight" tab."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Relight"


def _split_column(layout):
    """A column with Blender's label | field property layout."""
    layout.use_property_split = True
    layout.use_property_decorate = False
    return layout.column()


class RELIGHT_PT_main(_SidebarPanel, bpy.types.Panel):
    bl_idname = "RELIGHT_PT_main"
    bl_label = "Relight"

    @classmethod
    def poll(cls, context):
        return context.scene is not None and hasattr(context.scene, "relight")

    def draw(self, context):
        s = context.scene.relight
        layout = self.layout
        col = _split_column(layout)
        col.prop(s, "plate_path")
        col.operator("relight.load_plate", icon="FILE_MOVIE")
        col.prop(s, "plate_colorspace")
        col.prop(s, "plate_focal_mm")
        col.prop(s, "subject")
        col.separator()
        col.prop(s, "light_source")
        if s.light_source == "PRESET":
            col.prop(s, "preset")
        col.prop(s, "exposure")
        prefs = preferences.get(context)
        if prefs is not None and not prefs.python_path:
            layout.label(text="Worker Python not set: using relight_core in Blender's Python", icon="INFO")
        if context.scene.render.engine != "RELIGHT":
            layout.label(text="Render engine is not Relight (F12 renders with it)", icon="INFO")


class RELIGHT_PT_plate(_SidebarPanel, bpy.types.Panel):
    bl_idname = "RELIGHT_PT_plate"
    bl_label = "Plate"
    bl_parent_id = "RELIGHT_PT_main"

    def draw(self, context):
        s = context.scene.relight
        layout = self.layout
        layout.operator_context = "INVOKE_DEFAULT"  # modal: progress in the header, Esc cancels
        col = layout.column(align=True)
        col.operator("relight.track_plate", icon="TRACKER")
        col.operator("relight.preview_frame", icon="RENDER_STILL")
        col.operator("relight.light_from_plate", icon="WORLD")
        col.operator("relight.extract_head_mesh", icon="MESH_MONKEY")
        col = _split_column(layout.column())
        col.prop(s, "plate_camera")
        col.prop(s, "weights")
        col.prop(s, "cache_dir")
        col.prop(s, "warmup_frames")
        col.prop(s, "env_height")
        col.prop(s, "mesh_resolution")
        layout.operator("relight.release", icon="X")


class RELIGHT_PT_export(_SidebarPanel, bpy.types.Panel):
    bl_idname = "RELIGHT_PT_export"
    bl_label = "Scene Export"
    bl_parent_id = "RELIGHT_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.relight
        layout = self.layout
        col = _split_column(layout)
        col.prop(s, "export_path")
        col.prop(s, "use_frame_range")
        sub = col.column(align=True)
        sub.enabled = s.use_frame_range
        sub.prop(s, "frame_start")
        sub.prop(s, "frame_end")
        col.prop(s, "world_bake_width")
        col.prop(s, "world_bake_samples")
        row = layout.row(align=True)
        row.operator_context = "EXEC_DEFAULT"  # write to the path above without a file browser
        op = row.operator("relight.export_scene", text="Export Frame")
        op.frames = "CURRENT"
        op.filepath = s.export_path
        op = row.operator("relight.export_scene", text="Export Range")
        op.frames = "RANGE"
        op.filepath = s.export_path
