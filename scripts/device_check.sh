#!/usr/bin/env bash
# The one script run on the GPU machine (an H100; Python 3.12, torch + CUDA, nvcc; no network).
#
# Steps: print the machine and versions; build cuda_ext/ in place (relight_core._cuda) and check
# that it loads; run the GPU tests (pytest -m cuda, kernels against their torch twins included);
# benchmark paper and small on cuda as a ladder in one process each, so the ratios are honest:
# modes eager (torch reference), kernels (fused CUDA renderer), graphs (+ CUDA graphs), each in
# fp32 and bf16 (50 iterations after 10 warm-up), plus a torch.profiler table of the paper video
# frame; then, with whatever time is left (capped), paper bf16 with torch.compile; finally
# concatenate the tables into $OUT/BENCH.md. A failed step does not stop the others; the script
# exits non-zero at the end if any step failed. Everything printed is also in $OUT/device_log.txt.
# Budget: about 8 minutes in all (the compile step gets what is left of it, or is skipped).
#
# Usage (from anywhere):  OUT=/some/folder scripts/device_check.sh
#   OUT                 output folder (default: out/device in the repository)
#   RELIGHT_GIT_COMMIT  commit recorded in the results when the copy has no .git (default: unknown)
#
# Files written (8 at most, as the device tool brings back): device_log.txt, BENCH.md,
# bench_paper/bench.{json,md}, bench_paper/profile.txt, bench_small/bench.{json,md}.

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
MODES=eager,kernels,graphs
BUDGET_S=${BUDGET_S:-470}   # whole script; the compile step gets what is left
FAILED=()
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}   # build for the H100 only: a shorter compile
export MAX_JOBS=${MAX_JOBS:-16}

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
    python3 setup.py build_ext --inplace || return 1
    # The dispatch must find it: prints where it loaded from, or the import error.
    python3 -c "from relight_core.models import kernels; print('extension', kernels.extension_status()); \
import sys; sys.exit(kernels.load_extension() is None)"
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
    local profile=()
    [ "$config" = paper ] && profile=(--profile)   # of the last variant: graphs bf16
    python3 -m relight_core.cli bench --config "$config" --device cuda --mode "$MODES" --precision fp32,bf16 \
        --iterations "$ITERATIONS" --warmup "$WARMUP" --out "$OUT/bench_$config" "${profile[@]}"
}

# torch.compile of the paper network takes minutes: run it last, capped by the time left.
benchmark_compile() {
    local left=$((BUDGET_S - SECONDS))
    if [ "$left" -lt 90 ]; then
        echo "skipped: only ${left}s of the ${BUDGET_S}s budget left (compile needs more)"
        return 0
    fi
    echo "time cap ${left}s"
    timeout --signal=INT --kill-after=15 "$left" python3 -m relight_core.cli bench --config paper --device cuda \
        --mode compile --precision bf16 --iterations "$ITERATIONS" --warmup "$WARMUP" --append \
        --out "$OUT/bench_paper"
    local rc=$?
    [ "$rc" -eq 124 ] && echo "compile step hit its ${left}s cap (the other results are kept)"
    return "$rc"
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
        echo "Modes: eager = torch reference; kernels = + fused CUDA renderer; graphs = + CUDA graphs"
        echo "(video frame: FastVideoRelighter); compile = + torch.compile (paper bf16 only, if time allowed)."
        for config in "${CONFIGS[@]}"; do
            echo
            echo "## $config"
            echo
            if [ -f "$OUT/bench_$config/bench.md" ]; then
                cat "$OUT/bench_$config/bench.md"
            else
                echo "(no table: the $config benchmark failed; see device_log.txt)"
            fi
            if [ -f "$OUT/bench_$config/profile.txt" ]; then
                echo
                echo "Profile of the video frame: bench_$config/profile.txt"
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
    step bench_paper_compile benchmark_compile
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
