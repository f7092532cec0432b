#!/usr/bin/env bash
# One chunk of training on the GPU machine, resumable across machines.
#
#   scripts/device_train.sh CONFIG MINUTES [NPROC]
#
# Resumes from .carry/run (a checkpoint folder fetched from an earlier chunk: model.safetensors,
# state-*.safetensors, state.json) when present, trains for MINUTES of wall time, and copies the
# newest checkpoint, the log and the newest sample sheet flat into $OUT (at most 8 files, each
# under 16 MiB: what the device tool brings back). Put those files into .carry/run/ for the next
# chunk (scripts/fetch_run.sh does it).
set -euo pipefail
config=${1:?config}; minutes=${2:?minutes}; nproc=${3:-1}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
run=/tmp/relight_run
mkdir -p "$run"
if [ -f .carry/run/state.json ]; then
    step=$(python3 -c 'import json;print(json.load(open(".carry/run/state.json"))["step"])')
    folder=$(printf 'step_%08d' "$step")
    mkdir -p "$run/$folder" && cp .carry/run/* "$run/$folder/" && echo "$folder" > "$run/latest"
    echo "resuming from $folder"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m torch.distributed.run --standalone --nproc_per_node "$nproc" -m relight_core.train "$config" \
    --out "$run" --max-minutes "$minutes"
latest=$(cat "$run/latest")
cp "$run/$latest"/* "$OUT/"
cp "$run/log.jsonl" "$OUT/"
sample=$(ls "$run"/samples/*.png 2>/dev/null | tail -n 1 || true)
[ -n "$sample" ] && cp "$sample" "$OUT/samples.png"
ls -la "$OUT"
tail -n 3 "$run/log.jsonl"
