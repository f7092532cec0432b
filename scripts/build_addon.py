"""Build the Blender extension zip from addon/ + blender_manifest.toml and validate it.

Uses Blender's own extension tool, ``blender_ext.py``, which ships inside the ``bpy`` wheel and
runs with plain Python (BLENDER.md 2.3), so no Blender binary is needed:

    python scripts/build_addon.py [--out-dir build/addon] [--blender-ext PATH]

Steps: stage ``addon/*`` and the manifest into a temporary folder (the extension's root must hold
``__init__.py`` and ``blender_manifest.toml`` side by side), ``blender_ext.py build`` it into
``<out-dir>/relight-<version>.zip``, then ``blender_ext.py validate`` the zip. Prints the zip's path;
exits non-zero with the tool's message on any failure.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ADDON = REPO / "addon"
MANIFEST = REPO / "blender_manifest.toml"


def find_blender_ext() -> Path:
    """``blender_ext.py`` from $BLENDER_EXT or the installed ``bpy`` wheel (without importing bpy)."""
    env = os.environ.get("BLENDER_EXT")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("build_addon: the bpy package is not installed (pip install bpy==4.5.15), "
                         "or point $BLENDER_EXT at blender_ext.py")
    for root in spec.submodule_search_locations:
        hits = sorted(glob.glob(os.path.join(root, "*", "scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py")))
        if hits:
            return Path(hits[-1])
    raise SystemExit("build_addon: blender_ext.py not found inside the bpy package; set $BLENDER_EXT")


def _run(tool: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(tool), *args], capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).strip()
    failed = any(line.startswith(("Error", "FATAL_ERROR")) for line in out.splitlines())
    if proc.returncode != 0 or failed:
        raise SystemExit(f"build_addon: `blender_ext.py {args[0]}` failed:\n{out}")
    return out


def build(out_dir: Path, tool: Path | None = None) -> Path:
    """Build and validate the extension; returns the zip's path."""
    tool = tool or find_blender_ext()
    if not (ADDON / "__init__.py").is_file() or not MANIFEST.is_file():
        raise SystemExit(f"build_addon: expected {ADDON}/__init__.py and {MANIFEST}")
    out_dir.mkdir(parents=True, exist_ok=True)  # the tool requires an existing output folder
    with tempfile.TemporaryDirectory(prefix="relight_addon_") as tmp:
        stage = Path(tmp) / "relight"
        shutil.copytree(ADDON, stage, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
        shutil.copy2(MANIFEST, stage / "blender_manifest.toml")
        before = set(out_dir.glob("*.zip"))
        _run(tool, "build", "--source-dir", str(stage), "--output-dir", str(out_dir))
        made = sorted(set(out_dir.glob("*.zip")) - before) or sorted(out_dir.glob("relight-*.zip"), key=os.path.getmtime)
    if not made:
        raise SystemExit(f"build_addon: the build wrote no zip into {out_dir}")
    zip_path = made[-1]
    _run(tool, "validate", str(zip_path))
    return zip_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=REPO / "build" / "addon", help="where the zip goes")
    ap.add_argument("--blender-ext", type=Path, default=None, help="path of blender_ext.py (default: from bpy)")
    args = ap.parse_args(argv)
    print(build(args.out_dir, args.blender_ext))
    return 0


if __name__ == "__main__":
    sys.exit(main())
