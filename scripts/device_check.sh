#!/usr/bin/env bash
# The one script run on the GPU machine (an H100; Python 3.12, torch + CUDA, nvcc; no network).
#
# Steps: print the machine and versions; build cuda_ext/ in place when it has sources; run the GPU
# tests (pytest -m cuda); benchmark paper and small in fp32 and bf16 on cuda (50 iterations after
# 10 warm-up); concatenate the tables into $OUT/BENCH.md. A failed step does not stop the others;
# the script exits non-zero at the end if any step failed. Everything printed is also in
# $OUT/device_log.txt.
#
# Usage (from anywhere):  OUT=/some/folder scripts/device_check.sh
#   OUT                 output folder (default: out/device in the repository)
#   RELIGHT_GIT_COMMIT  commit recorded in the results when the copy has no .git (default: unknown)
#
# Files written (8 at most, as the device tool brings back): device_log.txt, BENCH.md,
# bench_paper/bench.{json,md}, bench_small/bench.{json,md}.

set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
REPO=$PWD
OUT=${OUT:-$REPO/out/device}
mkdir -p "$OUT" || exit 1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"   # pip install -e does not work there
export PYTHONUNBUFFERED=1

ITERATIONS=50
WARMUP=10
CONFIGS=(paper small)
FAILED=()

# step NAME COMMAND...: run, report the exit code, remember failures, never stop the script.
step() {
    local name=$1
    shift
    echo
    echo "=== [$name] $*  ($(date -u +%H:%M:%S) UTC)"
    "$@"
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "=== [$name] FAILED (exit $rc)"
        FAILED+=("$name (exit $rc)")
    else
        echo "=== [$name] ok"
    fi
    return 0
}

print_versions() {
    local rc=0
    nvidia-smi || rc=1
    echo "python: $(python3 --version 2>&1) at $(command -v python3)"
    python3 - <<'EOF' || rc=1
import torch
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| cuDNN", torch.backends.cudnn.version())
print("cuda available:", torch.cuda.is_available(), "| devices:", torch.cuda.device_count())
if torch.cuda.is_available():
    print("device 0:", torch.cuda.get_device_name(0), "| capability", torch.cuda.get_device_capability(0))
EOF
    nvcc --version || echo "(nvcc not found)"
    python3 -m pytest --version || rc=1
    echo "commit: ${RELIGHT_GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
    return "$rc"
}

build_extension() {
    local sources
    sources=$(find cuda_ext -maxdepth 1 \( -name '*.cu' -o -name '*.cpp' \) 2>/dev/null | head -n 1)
    if [ -z "$sources" ]; then
        echo "cuda_ext/ has no sources (.cu/.cpp): nothing to build, skipping"
        return 0
    fi
    python3 setup.py build_ext --inplace
}

gpu_tests() {
    python3 -m pytest -q -rA -m cuda --continue-on-collection-errors tests
    local rc=$?
    if [ "$rc" -eq 5 ]; then   # pytest: no tests collected
        echo "no tests are marked cuda yet: nothing to run"
        return 0
    fi
    return "$rc"
}

benchmark() {
    local config=$1
    python3 -m relight_core.cli bench --config "$config" --device cuda --precision fp32,bf16 \
        --iterations "$ITERATIONS" --warmup "$WARMUP" --out "$OUT/bench_$config"
}

collect_tables() {
    local target=$OUT/BENCH.md
    {
        echo "# Benchmarks from scripts/device_check.sh"
        echo
        local gpu
        gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
        echo "$(date -u +%Y-%m-%dT%H:%M:%SZ); GPU, driver: ${gpu:-unknown}"
        echo "Batch 1, ${ITERATIONS} timed calls after ${WARMUP} warm-up, random weights; ms per call."
        for config in "${CONFIGS[@]}"; do
            echo
            echo "## $config"
            echo
            if [ -f "$OUT/bench_$config/bench.md" ]; then
                cat "$OUT/bench_$config/bench.md"
            else
                echo "(no table: the $config benchmark failed; see device_log.txt)"
            fi
        done
    } >"$target.tmp" && mv "$target.tmp" "$target" || return 1
    echo "wrote $target"
}

main() {
    echo "device_check: repository $REPO, output $OUT, started $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    step versions print_versions
    step build_ext build_extension
    step gpu_tests gpu_tests
    for config in "${CONFIGS[@]}"; do
        step "bench_$config" benchmark "$config"
    done
    step collect collect_tables
    echo
    if [ "${#FAILED[@]}" -gt 0 ]; then
        echo "device_check: ${#FAILED[@]} step(s) failed: ${FAILED[*]}"
        return 1
    fi
    echo "device_check: all steps passed"
}

main 2>&1 | tee "$OUT/device_log.txt"
exit "${PIPESTATUS[0]}"
