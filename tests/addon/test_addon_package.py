"""The extension package: build and validation, install and enable, registration, clean exit."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import blender_oracle
import bpy
import install_check
import pytest

from conftest import ADDON_MODULE, REPO

ADDON_FILES = sorted(p.name for p in (REPO / "addon").glob("*.py"))


def test_zip_holds_the_addon_and_manifest(addon_zip):
    names = sorted(zipfile.ZipFile(addon_zip).namelist())
    assert names == sorted(ADDON_FILES + ["blender_manifest.toml"])
    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text())
    assert manifest["id"] == "relight"
    assert manifest["blender_version_min"] == "4.2.0"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert set(manifest["permissions"]) == {"files"}  # no network: nothing is downloaded
    assert addon_zip.name == f"relight-{manifest['version']}.zip"


def test_addon_never_imports_torch_or_relight_core():
    for name in ADDON_FILES:
        tree = ast.parse((REPO / "addon" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module or ""]
            else:
                continue
            for m in mods:
                assert m.split(".")[0] not in ("torch", "relight_core"), f"addon/{name} imports {m}"


def test_installs_enables_and_exits_cleanly(addon_zip, tmp_path):
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    env.pop("PYTHONPATH", None)  # the installed extension must not find relight_core or the repo
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("install_check.py")), str(addon_zip), str(tmp_path)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "result.json").read_text())
    everything = {"classes": list(install_check.CLASSES), "scene_settings": True, "enabled": True}
    assert res["install"] == ["FINISHED"]
    assert res["after_install"] == everything
    assert res["prefs"] == ["RELIGHT_AddonPreferences", "bl_ext.user_default.relight", "/usr/bin/python3", "CPU"]
    assert res["export"] == ["FINISHED"]
    assert res["exported_lights"] == ["point"] and res["exported_camera"]  # the factory scene
    assert res["heavy_modules"] == []
    assert res["after_disable"] == {"classes": [], "scene_settings": False, "enabled": False}
    assert res["after_enable"] == everything
    assert res["threads"] == []
    # exiting with the add-on enabled must be prompt: no timer or thread keeps Python alive
    assert elapsed < 60, f"the interpreter took {elapsed:.0f} s to exit"


def _settings_registered():
    prop = bpy.types.Scene.bl_rna.properties.get("relight")
    return prop is not None and prop.fixed_type.identifier == "RELIGHT_PG_settings"


def test_register_unregister_is_clean(addon):
    assert all(c.__name__.startswith("RELIGHT_") for c in addon.classes)
    assert all(c.is_registered for c in addon.classes) and _settings_registered()
    for _ in range(2):
        addon.unregister()
        try:
            assert not any(c.is_registered for c in addon.classes)
            assert not _settings_registered()
        finally:
            addon.register()
        assert all(c.is_registered for c in addon.classes) and _settings_registered()


def test_ids_use_the_prefix(addon):
    assert addon.operators.RELIGHT_OT_export_scene.bl_idname.startswith("relight.")
    for cls in addon.classes:
        if cls is addon.engine.RELIGHT_RenderEngine:
            assert cls.bl_idname == "RELIGHT"  # the name scene.render.engine takes
            continue
        assert getattr(cls, "bl_idname", cls.__name__).startswith(("RELIGHT_", "relight.", ADDON_MODULE))


def test_settings_and_defaults(empty_scene, addon):
    s = empty_scene.relight
    assert s.light_source == "SCENE" and s.world_bake_width == 64
    s.plate_path = "/plates/shot_010.####.exr"
    s.light_source = "PRESET"
    s.preset = "rim"
    assert (s.plate_path, s.preset) == ("/plates/shot_010.####.exr", "rim")
    assert addon.preferences.get() is None  # registered by hand, not enabled as an add-on


def test_preset_names_match_relight_core(addon):
    from relight_core import sh

    assert tuple(addon.properties.PRESET_NAMES) == tuple(sh.PRESETS)


def test_export_format_matches_relight_core(addon):
    from relight_core import scene

    assert (addon.scene_export.FORMAT, addon.scene_export.VERSION) == (scene.FORMAT, scene.VERSION)




def test_export_operator_frame_range_in_background(empty_scene, tmp_path):
    from relight_core import scene as rscene

    sc = empty_scene
    key = blender_oracle.add_light(sc, "POINT", (0, -2, 1), energy=100.0)
    key.keyframe_insert("location", frame=1)
    key.location = (2, -2, 1)
    key.keyframe_insert("location", frame=3)
    blender_oracle.add_light(sc, "SPOT", (1, 1, 1), energy=10.0).hide_render = True  # not rendered: not exported
    hidden = blender_oracle.add_light(sc, "SUN", (0, 0, 5), energy=2.0)
    hidden.hide_set(True)  # hidden in the viewport only: it still renders, so it is exported
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    sc.collection.objects.link(cam)
    sc.camera = cam
    sc.frame_set(2)
    path = tmp_path / "out" / "shot.json"
    assert bpy.ops.relight.export_scene(filepath=str(path), frames="RANGE", frame_start=1, frame_end=3) == {"FINISHED"}
    assert sc.frame_current == 2  # restored
    loaded = rscene.Scene.load(path)
    assert list(loaded.frames) == [1, 2, 3]
    xs = [next(x for x in f.lights if x.type == "point").position[0] for f in loaded.frames.values()]
    assert xs[0] == pytest.approx(0.0) and xs[2] == pytest.approx(2.0) and 0.0 < xs[1] < 2.0
    assert sorted(x.type for x in loaded.frame(1).lights) == ["point", "sun"]
    assert loaded.frame(1).camera is not None and loaded.frame(1).world is None


def test_export_operator_reports_bad_paths(empty_scene):
    with pytest.raises(RuntimeError, match="not saved yet"):
        bpy.ops.relight.export_scene(filepath="//relight/scene.json")
