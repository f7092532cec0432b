#!/usr/bin/env bash
# Run the add-on tests (tests/addon) against the oldest and newest Blender the extension supports.
#
#   scripts/addon_compat.sh [BPY_VERSION ...]        (default: 4.2.23 5.0.1)
#
# For each version: a venv in /tmp/relight_bpy_<version> (reused when it exists) with that bpy
# wheel, numpy<2 (bpy 4.2 leaves numpy unpinned; relight_core needs numpy<2), pytest and this
# repository's requirements, then pytest tests/addon. BLENDER.md 3.3 lists the API differences
# these versions expose. Each bpy wheel is ~370 MB; needs Python 3.11 (bpy 4.2-5.0 are cp311).
# Exit status: non-zero if any version failed; a summary line per version at the end.
#
# BASE_SITE=/path/to/site-packages (optional): reuse that environment's packages (torch,
# mediapipe...) through a .pth file and install only bpy (+ numpy<2) into each venv; the venv's
# own bpy comes first on sys.path. Much faster where a dev environment exists.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
versions=("$@")
[ ${#versions[@]} -eq 0 ] && versions=(4.2.23 5.0.1)
summary=()
status=0
for v in "${versions[@]}"; do
    venv=/tmp/relight_bpy_$v
    echo "== bpy $v ($venv)"
    if [ ! -x "$venv/bin/python" ]; then
        "$PYTHON" -m venv "$venv" || { summary+=("bpy $v: cannot create the venv"); status=1; continue; }
    fi
    if [ -n "${BASE_SITE:-}" ]; then
        site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
        echo "$BASE_SITE" > "$site/relight_base.pth"
        "$venv/bin/python" -m pip install -q "bpy==$v" "numpy<2" \
            || { summary+=("bpy $v: pip install failed"); status=1; continue; }
    elif ! "$venv/bin/python" -c "import bpy, sys; sys.exit(bpy.app.version_string.split()[0] != '$v')" 2>/dev/null; then
        "$venv/bin/python" -m pip install -q "bpy==$v" "numpy<2" pytest \
            torch --extra-index-url https://download.pytorch.org/whl/cpu \
            safetensors pillow tqdm imageio imageio-ffmpeg scikit-image OpenEXR tifffile mediapipe==0.10.21 \
            opencv-contrib-python PyMCubes trimesh \
            || { summary+=("bpy $v: pip install failed"); status=1; continue; }
    fi
    if OMP_NUM_THREADS=1 PYTHONPATH=. "$venv/bin/python" -m pytest tests/addon -q -p no:cacheprovider; then
        summary+=("bpy $v: passed")
    else
        summary+=("bpy $v: FAILED")
        status=1
    fi
done
printf '%s\n' "${summary[@]}"
exit $status
