# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: where the relight_core worker runs."""

import bpy
from bpy.props import EnumProperty, StringProperty


class RELIGHT_AddonPreferences(bpy.types.AddonPreferences):
    """Worker interpreter and device (Edit > Preferences > Add-ons > Relight)."""

    bl_idname = __package__

    python_path: StringProperty(
        name="Worker Python",
        description=(
            "Python interpreter of an environment where relight_core is installed; it runs the "
            "Relight worker in its own process. Empty: $RELIGHT_PYTHON, else relight_core inside "
            "Blender's own Python when it is installed there"
        ),
        subtype="FILE_PATH",
        default="",
    )
    device: EnumProperty(
        name="Device",
        description="Where the worker runs the network",
        items=(
            ("AUTO", "Auto", "CUDA when the worker finds a GPU, else CPU"),
            ("CUDA", "CUDA", "NVIDIA GPU through CUDA"),
            ("CPU", "CPU", "CPU only (slow, for previews and tests)"),
        ),
        default="AUTO",
    )

    def draw(self, context):
        from . import backend

        layout = self.layout
        layout.prop(self, "python_path")
        layout.prop(self, "device")
        running = backend.current()
        info = running.info if running is not None else None
        if info:
            gpu = info.get("gpu") or "no CUDA GPU"
            layout.label(text=f"Worker: relight_core {info['relight_core']}, torch {info['torch']}, {gpu}", icon="CHECKMARK")
            layout.label(text=f"Weights: {info['weights'][:90]}")
        else:
            layout.label(text="Worker: not running (it starts when a Relight operator or render needs it)")


def get(context=None):
    """These preferences, or None when the add-on is registered without being enabled (tests)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return None if addon is None else addon.preferences
