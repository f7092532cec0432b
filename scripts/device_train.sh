#!/usr/bin/env bash
# One chunk of training on the GPU machine, resumable across machines.
#
#   scripts/device_train.sh CONFIG MINUTES [NPROC]
#
# Resumes from .carry/run (a checkpoint folder fetched from an earlier chunk: model.safetensors,
# state-*.safetensors, state.json) when it is a checkpoint of the same stage as CONFIG. When the
# carried checkpoint is of another stage (an encoder-stage run and a temporal CONFIG), the stage
# starts fresh from the carried weights (--init .carry/run/model.safetensors). Trains for MINUTES
# of wall time and copies the newest checkpoint, the log and the newest sample sheet flat into
# $OUT (at most 8 files, each under 16 MiB: what the device tool brings back). Put those files
# into .carry/run/ for the next chunk (scripts/fetch_run.sh does it). A portrait pack named by
# CONFIG (portraits = ".carry/....safetensors") must be carried too.
set -euo pipefail
config=${1:?config}; minutes=${2:?minutes}; nproc=${3:-1}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
run=/tmp/relight_run
rm -rf "$run" && mkdir -p "$run"  # only what .carry holds is resumed (the same on a reused machine)
extra=()
if [ -f .carry/run/state.json ]; then
    read -r step carried_stage wanted_stage < <(python3 - "$config" <<'PY'
import json, sys, tomllib
state = json.load(open(".carry/run/state.json"))
wanted = tomllib.load(open(sys.argv[1], "rb")).get("stage", "encoder")
print(state["step"], state["config"].get("stage", "encoder"), wanted)
PY
)
    if [ "$carried_stage" = "$wanted_stage" ]; then
        folder=$(printf 'step_%08d' "$step")
        mkdir -p "$run/$folder" && cp .carry/run/* "$run/$folder/" && echo "$folder" > "$run/latest"
        echo "resuming the $wanted_stage stage from $folder"
    else
        extra=(--init .carry/run/model.safetensors)
        echo "carried checkpoint is $carried_stage-stage step $step: starting the $wanted_stage stage from its weights"
    fi
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m torch.distributed.run --standalone --nproc_per_node "$nproc" -m relight_core.train "$config" \
    --out "$run" --max-minutes "$minutes" ${extra[@]+"${extra[@]}"}
latest=$(cat "$run/latest")
cp "$run/$latest"/* "$OUT/"
cp "$run/log.jsonl" "$OUT/"
sample=$(ls "$run"/samples/*.png 2>/dev/null | tail -n 1 || true)
[ -n "$sample" ] && cp "$sample" "$OUT/samples.png"
ls -la "$OUT"
tail -n 3 "$run/log.jsonl"
