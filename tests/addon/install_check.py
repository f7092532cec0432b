"""Run as a fresh process by test_addon_package.py: install the built extension like a user would.

    python install_check.py EXTENSION.zip OUT_DIR

Installs and enables the zip with Blender's extension operator, exercises the operator and the
preferences, disables and re-enables it, and writes its findings to OUT_DIR/result.json. The
interpreter then exits with the add-on still enabled: the test fails if it does not exit promptly
(a leftover timer or thread would keep it alive; BLENDER.md 3.3).
"""

import json
import os
import sys
import threading

MODULE = "bl_ext.user_default.relight"
CLASSES = ("RELIGHT_OT_export_scene", "RELIGHT_OT_load_plate", "RELIGHT_OT_track_plate", "RELIGHT_OT_preview_frame",
           "RELIGHT_OT_light_from_plate", "RELIGHT_OT_extract_head_mesh", "RELIGHT_OT_release",
           "RELIGHT_RenderEngine", "RELIGHT_PT_main", "RELIGHT_PT_plate", "RELIGHT_PT_export")


def main(zip_path, out_dir):
    import bpy  # after argv parsing; BLENDER_USER_RESOURCES is set by the caller
    import addon_utils  # only importable once bpy is

    res = {}

    def registered():
        # a registered RenderEngine is not exposed in bpy.types: look among the subclasses
        engines = {e.__name__ for e in bpy.types.RenderEngine.__subclasses__() if e.is_registered}
        return {
            "classes": [c for c in CLASSES if hasattr(bpy.types, c) or c in engines],
            "scene_settings": getattr(bpy.types.Scene.bl_rna.properties.get("relight"), "fixed_type", None) is not None
            and bpy.types.Scene.bl_rna.properties["relight"].fixed_type.identifier == "RELIGHT_PG_settings",
            "enabled": MODULE in bpy.context.preferences.addons,
        }

    res["install"] = sorted(bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True))
    res["after_install"] = registered()
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.python_path = "/usr/bin/python3"
    prefs.device = "CPU"
    res["prefs"] = [type(prefs).__name__, type(prefs).bl_idname, prefs.python_path, prefs.device]
    scene_file = os.path.join(out_dir, "scene.json")
    res["export"] = sorted(bpy.ops.relight.export_scene(filepath=scene_file, frames="CURRENT"))
    with open(scene_file) as fh:
        exported = json.load(fh)
    res["exported_lights"] = [light["type"] for light in exported["frames"][0]["lights"]]
    res["exported_camera"] = exported["frames"][0]["camera"] is not None
    res["heavy_modules"] = [m for m in ("torch", "relight_core") if m in sys.modules]
    addon_utils.disable(MODULE, default_set=True)
    res["after_disable"] = registered()
    addon_utils.enable(MODULE, default_set=True)
    res["after_enable"] = registered()
    res["threads"] = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    with open(os.path.join(out_dir, "result.json"), "w") as fh:
        json.dump(res, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
