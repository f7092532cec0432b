#!/usr/bin/env bash
# Put the checkpoint a device training chunk returned (a folder of files) into .carry/run/, where
# scripts/device_train.sh resumes from, and keep the log and samples under runs/.
#   scripts/fetch_run.sh /work/.device/N
set -euo pipefail
src=${1:?folder with model.safetensors, state-*.safetensors, state.json}
if [ ! -f "$src"/state.json ]; then
    echo "$src holds weights without the optimizer state (it did not fit the device transfer): a new machine" >&2
    echo "starts from them, e.g. cp $src/model.safetensors .carry/init/model.safetensors (docs/TRAINING.md)" >&2
    exit 2
fi
mkdir -p .carry/run runs
rm -f .carry/run/*
cp "$src"/model.safetensors "$src"/state-*.safetensors "$src"/state.json .carry/run/
step=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["step"])' .carry/run/state.json)
cat "$src"/log.jsonl >> runs/log.jsonl
[ -f "$src"/samples.png ] && cp "$src"/samples.png "runs/samples_$(printf '%08d' "$step").png"
echo "carried checkpoint at step $step in .carry/run"
