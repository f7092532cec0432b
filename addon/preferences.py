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
            "Relight worker. Empty: python3 on the system PATH"
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
        layout = self.layout
        layout.prop(self, "python_path")
        layout.prop(self, "device")


def get(context=None):
    """These preferences, or None when the add-on is registered without being enabled (tests)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return None if addon is None else addon.preferences
