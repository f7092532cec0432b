#!/usr/bin/env bash
# One chunk of training on the GPU machine, resumable across calls and machines.
#
#   scripts/device_train.sh CONFIG MINUTES [NPROC]
#
# The run lives in .device_run/<config name>/ on the GPU machine (git-ignored and never carried), so
# the next call on the same warm machine goes on from it exactly, with nothing to carry but the
# data. A checkpoint carried in .carry/run (model.safetensors, state-*.safetensors, state.json,
# fetched from an earlier chunk by scripts/fetch_run.sh) takes precedence: one of CONFIG's stage is
# resumed exactly; one of another stage (the previous stage's run and the next stage's CONFIG, e.g.
# an albedo-stage run and small_shading.toml) starts the stage from its weights. Checkpoints that
# record the old stage name "encoder" are of the "joint" stage. The carried checkpoint is used up
# (removed there), so a later call that does not carry it goes on from the machine's own run.
# Trains for MINUTES of wall time and copies the newest checkpoint's weights, the log and the newest
# sample sheet flat into $OUT, with the optimizer state when it fits (the device tool brings back at
# most 8 files of under 16 MiB each, 64 MiB in all). A
# portrait pack named by CONFIG must be carried too (on a warm machine it stays from an earlier call).
set -euo pipefail
config=${1:?config}; minutes=${2:?minutes}; nproc=${3:-1}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
run=.device_run/$(basename "$config" .toml)
if [ -f .carry/run/state.json ]; then
    read -r step carried_stage wanted_stage < <(python3 - "$config" <<'PY'
import json, sys
from relight_core.train.config import TrainConfig, recorded_stage
state = json.load(open(".carry/run/state.json"))
print(state["step"], recorded_stage(state["config"]), TrainConfig.load(sys.argv[1]).stage)
PY
)
    rm -rf "$run" && mkdir -p "$run"
    if [ "$carried_stage" = "$wanted_stage" ]; then
        folder=$(printf 'step_%08d' "$step")
        mkdir -p "$run/$folder" && cp .carry/run/* "$run/$folder/" && echo "$folder" > "$run/latest"
        echo "resuming the $wanted_stage stage from the carried $folder"
    else
        cp .carry/run/model.safetensors "$run/init.safetensors"
        echo "carried checkpoint is $carried_stage-stage step $step: starting the $wanted_stage stage from its weights"
    fi
    rm -rf .carry/run
elif [ -f "$run/latest" ]; then
    echo "going on from this machine's $run/$(cat "$run/latest")"
fi
mkdir -p "$run"
extra=()
[ -f "$run/init.safetensors" ] && extra=(--init "$run/init.safetensors")
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m torch.distributed.run --standalone --nproc_per_node "$nproc" -m relight_core.train "$config" \
    --out "$run" --max-minutes "$minutes" ${extra[@]+"${extra[@]}"}
latest=$(cat "$run/latest")
cp "$run/$latest"/model.safetensors "$run/log.jsonl" "$OUT/"
sample=$(ls "$run"/samples/*.png 2>/dev/null | tail -n 1 || true)
[ -n "$sample" ] && cp "$sample" "$OUT/samples.png"
# The optimizer state (and state.json, which makes a fetched folder resumable) comes back only
# when everything fits the 64 MiB the device tool returns; a run with a moving average of its
# weights (raw weights in the state) does not, and a new machine then starts from the returned
# weights (docs/TRAINING.md, "How to continue").
state_bytes=$(cat "$run/$latest"/state-*.safetensors | wc -c)
if [ $(( $(du -cb "$OUT"/* | tail -n 1 | cut -f1) + state_bytes )) -le $(( 63 * 2**20 )) ]; then
    cp "$run/$latest"/state-*.safetensors "$run/$latest"/state.json "$OUT/"
else
    echo "optimizer state ($(( state_bytes / 2**20 )) MiB) not returned: over the 64 MiB the device tool brings back"
fi
ls -la "$OUT"
tail -n 3 "$run/log.jsonl"
