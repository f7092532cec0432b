"""Fixtures of the Blender add-on tests.

``bpy`` (pip ``bpy==4.5.15``) is imported in-process: one bpy per process, so every test that
needs a clean scene calls ``read_factory_settings`` through the ``empty_scene`` fixture
(BLENDER.md 3.3). Blender's user folders go to a temporary directory so tests never touch the
real configuration; it must be set before bpy is imported.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="relight_blender_user_"))
bpy = pytest.importorskip("bpy", reason="the add-on tests need the bpy module (pip install bpy==4.5.15)")

ADDON_MODULE = "relight_addon"


def load_addon():
    """The repo's addon/ package imported as ``relight_addon`` (not registered)."""
    if ADDON_MODULE in sys.modules:
        return sys.modules[ADDON_MODULE]
    spec = importlib.util.spec_from_file_location(
        ADDON_MODULE, REPO / "addon" / "__init__.py", submodule_search_locations=[str(REPO / "addon")]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[ADDON_MODULE] = module
    spec.loader.exec_module(module)
    return module


def _unregister_leftovers():
    """Safety net: a Python operator or panel still registered when the interpreter exits makes the
    bpy module hang in a static destructor (its delayed-close thread), so never leave one behind."""
    module = sys.modules.get(ADDON_MODULE)
    if module is not None and module.classes[0].is_registered:
        module.unregister()


atexit.register(_unregister_leftovers)  # runs before bpy's own exit handler (registered earlier)


@pytest.fixture(scope="session")
def addon():
    """The add-on package, registered for the whole session (unregistered at the end)."""
    module = load_addon()
    module.register()
    yield module
    if module.classes[0].is_registered:
        module.unregister()


@pytest.fixture
def empty_scene(addon):
    """A factory-fresh empty scene (with the add-on's classes registered)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory):
    """The extension zip built and validated by scripts/build_addon.py."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import build_addon
    finally:
        sys.path.pop(0)
    return build_addon.build(tmp_path_factory.mktemp("addon_dist"))
