#!/usr/bin/env bash
# The one script run on the GPU machine (an H100; Python 3.12, torch + CUDA, nvcc; no network).
#
# Steps: print the machine and versions; build cuda_ext/ in place (relight_core._cuda) and check
# that it loads; run the GPU tests (pytest -m cuda: kernels against their torch twins, the bf16
# model against fp32); benchmark paper on cuda as a ladder (50 iterations after 10 warm-up):
# eager fp32 and bf16 (the baselines), then bf16 graphs (autocast + CUDA graphs, the previous
# best), cast (weights converted once), temporal (+ compiled temporal net), fast (+ compiled
# encoders), plus a torch.profiler table of the fast video frame; then the throughput mode (fast at
# batch 4 and 8, frames in flight); then small: eager fp32 and fast bf16; then, with what is left,
# paper fast with max-autotune; finally concatenate the tables into $OUT/BENCH.md. A failed step
# does not stop the others; the script exits non-zero at the end if any step failed. Everything
# printed is also in $OUT/device_log.txt.
# Budget: about 8 minutes in all; every step after the paper ladder is capped by the time left.
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
BUDGET_S=${BUDGET_S:-470}   # whole script; the steps after the paper ladder get what is left
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

# The mesh dependencies (trimesh, PyMCubes, fast-simplification) are not on the GPU machine: install
# their wheels from .whl/ (git-ignored, carried) into a private folder so tests/test_mesh.py runs.
install_mesh_wheels() {
    local wheels=("$REPO"/.whl/trimesh-*.whl "$REPO"/.whl/PyMCubes-*.whl "$REPO"/.whl/fast_simplification-*.whl)
    if [ ! -e "${wheels[0]}" ]; then
        echo "no mesh wheels in .whl/ (carry .whl): tests/test_mesh.py will fail to import trimesh"
        return 1
    fi
    python3 -m pip install --quiet --no-deps --no-index --target /tmp/relight-site "${wheels[@]}" || return 1
    export PYTHONPATH="$PYTHONPATH:/tmp/relight-site"
    python3 -c "import trimesh, mcubes; print('trimesh', trimesh.__version__, '| PyMCubes ok')"
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

# bench ARGS...: `relight bench` on cuda, killed when the script's budget runs out (the results
# written before are kept: bench writes its files after each mode).
bench() {
    local left=$((BUDGET_S - SECONDS))
    [ "$left" -gt 0 ] || { echo "no time left in the ${BUDGET_S}s budget"; return 124; }
    timeout --signal=INT --kill-after=15 "$left" \
        python3 -m relight_core.cli bench --device cuda --iterations "$ITERATIONS" --warmup "$WARMUP" "$@"
    local rc=$?
    [ "$rc" -eq 124 ] && echo "bench hit the budget cap of ${left}s (the results written before are kept)"
    return "$rc"
}

# The paper ladder: baselines, then each step of the fast path; the profile is of the last (fast).
benchmark_paper() {
    bench --config paper --mode eager --precision fp32,bf16 --out "$OUT/bench_paper" || return 1
    bench --config paper --mode graphs,cast,temporal,fast --precision bf16 --append --out "$OUT/bench_paper" --profile
}

# capped NEED_S FUNCTION: run it when at least NEED_S of the budget is left, else skip (each
# bench inside is capped by the time left anyway).
capped() {
    local need=$1
    shift
    local left=$((BUDGET_S - SECONDS))
    if [ "$left" -lt "$need" ]; then
        echo "skipped: only ${left}s of the ${BUDGET_S}s budget left (needs about ${need}s)"
        return 0
    fi
    echo "${left}s of the budget left"
    "$@"
}

# Throughput: frames in flight (batch 4 and 8) in the fast mode; fps = batch / median latency.
benchmark_throughput() {
    local batch
    for batch in 4 8; do
        ITERATIONS=20 WARMUP=5 bench --config paper --mode fast --precision bf16 --batch "$batch" --append \
            --out "$OUT/bench_paper" || return 1
    done
}

benchmark_small() {
    bench --config small --mode eager --precision fp32 --out "$OUT/bench_small" || return 1
    bench --config small --mode fast --precision bf16 --append --out "$OUT/bench_small"
}

# Inductor's autotuning of every GEMM and convolution shape: minutes; only with what is left.
benchmark_autotune() {
    bench --config paper --mode fast --precision bf16 --compile-mode max-autotune-no-cudagraphs --append \
        --out "$OUT/bench_paper"
}

collect_tables() {
    local target=$OUT/BENCH.md
    {
        echo "# Benchmarks from scripts/device_check.sh"
        echo
        local gpu
        gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
        echo "$(date -u +%Y-%m-%dT%H:%M:%SZ); GPU, driver: ${gpu:-unknown}"
        echo "Batch 1 (b4/b8: 4 or 8 frames per call, 20 timed calls), ${ITERATIONS} timed calls after ${WARMUP}"
        echo "warm-up, random weights; ms per call."
        echo "Modes: eager = torch reference (fp32, or bf16 autocast); graphs = fused CUDA renderer + CUDA graphs"
        echo "(video frame: FastVideoRelighter), autocast; cast = graphs on bf16 weights converted once"
        echo "(channels-last encoders, cudnn.benchmark, GEMM attention for 512-wide heads); temporal = cast +"
        echo "compiled temporal net; fast = temporal + compiled encoders; b4/b8 = batch (frames in flight)."
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
    step mesh_wheels install_mesh_wheels
    step build_ext build_extension
    step gpu_tests gpu_tests
    step bench_paper benchmark_paper
    step bench_throughput capped 100 benchmark_throughput
    step bench_small capped 60 benchmark_small
    step bench_paper_autotune capped 150 benchmark_autotune
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
