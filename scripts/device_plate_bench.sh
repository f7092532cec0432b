#!/usr/bin/env bash
# Whole plate pipeline benchmark on the GPU machine: `relight bench --plate` on a real clip, per stage.
#
# The GPU machine (Python 3.12, torch + CUDA, OpenCV; no network) lacks mediapipe and OpenEXR, so
# they come as wheels in .whl/ (git-ignored; the lead carries it). They are installed with
# --no-deps into a private folder put first on PYTHONPATH, so the image's own packages (its
# protobuf in particular, which mediapipe 0.10.21 needs below 5) stay as they are. The clip is
# .carry/bench/clip.mp4 (git-ignored, carried too). The image has no imageio-ffmpeg, which
# relight_core.io decodes videos with: the frames of the range are then decoded with OpenCV
# into a lossless PNG sequence (same frame numbers) and the job reads that, without preview.mp4
# (the table says which input and outputs it timed).
#
# Usage (from anywhere):  OUT=/some/folder scripts/device_plate_bench.sh
#   OUT                 output folder (default: out/device in the repository)
#   FRAMES              frame range START:END of the clip (default 66:113, 48 frames with a face)
#   CLIP                the clip (default .carry/bench/clip.mp4)
#   RELIGHT_GIT_COMMIT  commit recorded in the table when the copy has no .git (default: unknown)
#
# Files written: $OUT/PLATE_BENCH.md (the table), $OUT/plate_bench_log.txt,
# $OUT/plate_bench/plate_bench.{json,md}.

set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
REPO=$PWD
OUT=${OUT:-$REPO/out/device}
FRAMES=${FRAMES:-66:113}
CLIP=${CLIP:-$REPO/.carry/bench/clip.mp4}
WORK=$(mktemp -d /tmp/plate-bench.XXXXXX)
mkdir -p "$OUT" || exit 1
export PYTHONUNBUFFERED=1

install_wheels() {
    local wheels=("$REPO"/.whl/*.whl)
    if [ ! -e "${wheels[0]}" ]; then
        echo "no wheels in $REPO/.whl: carry .whl (mediapipe 0.10.21 and the rest) with this run"
        return 1
    fi
    python3 -m pip install --quiet --no-deps --no-index --target "$WORK/site" "${wheels[@]}" || return 1
    export PYTHONPATH="$REPO:$WORK/site"   # pip install -e does not work there
    python3 - <<'EOF'
import cv2, mediapipe, numpy, OpenEXR, torch
from google import protobuf
from relight_core.track.landmarks import FaceLandmarker
print("mediapipe", mediapipe.__version__, "| protobuf", protobuf.__version__, "| numpy", numpy.__version__,
      "| OpenCV", cv2.__version__, "| torch", torch.__version__, "| cuda", torch.cuda.is_available())
FaceLandmarker(static=True).close()
print("face landmarker: ok")
EOF
}

# The fused renderer of cuda_ext/, built as scripts/device_check.sh builds it (kept when already
# built on this machine); without it the job runs the torch renderer, and the table says so.
build_extension() {
    if python3 -c "import sys; from relight_core.models import kernels; sys.exit(kernels.load_extension() is None)"; then
        echo "CUDA extension: already built"
        return 0
    fi
    TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16} python3 setup.py build_ext --inplace \
        || echo "CUDA extension build failed: timing the torch renderer"
}

# The plate to time: the clip itself, or its range as PNGs when videos cannot be decoded here.
choose_input() {
    if [ ! -f "$CLIP" ]; then
        echo "clip not found: $CLIP (carry .carry/bench/clip.mp4 with this run)" >&2
        return 1
    fi
    if python3 -c "import imageio_ffmpeg" 2>/dev/null; then
        echo "$CLIP"
        return 0
    fi
    python3 - "$CLIP" "$FRAMES" "$WORK/seq" >&2 <<'EOF' || return 1
import sys
from pathlib import Path

import cv2

clip, frames, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
start, end = (int(v) for v in frames.split(":"))
folder.mkdir(parents=True)
video = cv2.VideoCapture(clip)
number, written = 0, 0
while number < end:
    ok, bgr = video.read()
    if not ok:
        break
    number += 1  # the job numbers a video's frames from 1
    if number >= start:
        cv2.imwrite(str(folder / f"clip.{number:04d}.png"), bgr)
        written += 1
if written != end - start + 1:
    sys.exit(f"decoded {written} of the {end - start + 1} frames {frames} from {clip}")
print(f"no imageio-ffmpeg: decoded frames {frames} of {clip} with OpenCV into {folder} (PNG)")
EOF
    echo "$WORK/seq/clip.####.png"
}

main() {
    echo "device_plate_bench: repository $REPO, output $OUT, started $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    echo "python: $(python3 --version 2>&1) at $(command -v python3)"
    install_wheels || return 1
    build_extension
    local input
    input=$(choose_input) || return 1
    echo "timing $input, frames $FRAMES"
    python3 -m relight_core.cli bench --plate "$input" --frames "$FRAMES" --device cuda --config small \
        --out "$OUT/plate_bench" || return 1
    {
        echo "### Plate pipeline (scripts/device_plate_bench.sh)"
        echo
        echo "GPU, driver: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
        echo "Input: $([ "$input" = "$CLIP" ] && echo "the clip (video decode timed)" || echo "the clip's frames $FRAMES as a PNG sequence decoded by OpenCV (PNG decode timed; no imageio-ffmpeg here)")"
        echo
        cat "$OUT/plate_bench/plate_bench.md"
    } >"$OUT/PLATE_BENCH.md.tmp" && mv "$OUT/PLATE_BENCH.md.tmp" "$OUT/PLATE_BENCH.md" || return 1
    echo "wrote $OUT/PLATE_BENCH.md"
}

main 2>&1 | tee "$OUT/plate_bench_log.txt"
status=${PIPESTATUS[0]}
rm -rf "$WORK"
exit "$status"
