# SPDX-License-Identifier: GPL-3.0-or-later
"""Relight for Blender: relight people in video plates with the scene's lights (ARCHITECTURE.md 5).

The add-on is thin on purpose. It reads Blender data (lights, world, camera, plate settings) and
hands plain JSON-able descriptions to relight_core, which runs in its own Python as a worker. It
never imports torch or relight_core, so it loads in any Blender 4.2+ and cannot break Blender's
Python.

Modules: ``properties`` (the one ``Scene.relight`` settings group), ``preferences`` (worker
interpreter and device), ``camera`` (camera intrinsics via ``calc_matrix_camera``),
``scene_export`` (evaluated depsgraph -> ``relight_core.scene`` dict, world bake), ``backend``
(the worker process and its JSON-lines protocol), ``jobs`` (modal / blocking worker operators),
``plate`` (plate clip, plate camera, head anchor, plate-light world, head mesh), ``render_job``
(one frame's render request and passes), ``operators`` and ``plate_ops``, ``engine`` (the
"Relight" RenderEngine), ``ui``. Every registered class and operator id uses the ``RELIGHT_`` / ``relight.`` prefix.
"""

import bpy

from . import backend, engine, operators, plate_ops, preferences, properties, ui

classes = (
    properties.RELIGHT_PG_settings,
    preferences.RELIGHT_AddonPreferences,
    operators.RELIGHT_OT_export_scene,
    *plate_ops.classes,
    engine.RELIGHT_RenderEngine,
    ui.RELIGHT_PT_main,
    ui.RELIGHT_PT_plate,
    ui.RELIGHT_PT_export,
)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.relight = bpy.props.PointerProperty(type=properties.RELIGHT_PG_settings)


def unregister():
    backend.stop()  # no worker outlives the add-on
    del bpy.types.Scene.relight
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
