"""The training loop on the tiny network with real synthetic data: smoke, exact resume, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from relight_core.train.__main__ import main as train_main
from relight_core.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "train" / "tiny.toml"


def weights(run: Path) -> dict[str, torch.Tensor]:
    latest = (run / "latest").read_text().strip()
    return load_file(str(run / latest / "model.safetensors"))


def test_tiny_trains_through_the_entry_point(tmp_path):
    assert train_main([str(TINY), "--out", str(tmp_path), "--steps", "2"]) == 0
    assert (tmp_path / "latest").read_text().strip() == "step_00000002"
    checkpoint = tmp_path / "step_00000002"
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["step"] == 2 and state["config"]["model"] == "tiny"
    assert all((checkpoint / shard).stat().st_size < 15 * 2**20 + 2**16 for shard in state["shards"])
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["total"] > 0 for r in records)
    assert (tmp_path / "samples" / "step_00000002.png").stat().st_size > 1000
    from relight_core.checkpoints import load_model

    assert load_model(checkpoint / "model.safetensors").config.name == "tiny"


def tiny_with(tmp_path: Path, setting: str) -> Path:
    """The tiny configuration plus one setting line."""
    config = tmp_path / "tiny_plus.toml"
    config.write_text(TINY.read_text() + setting + "\n")
    return config


def raw_weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    """The raw (not averaged) trained weights a checkpoint's state holds when it averages."""
    folder = run / f"step_{step:08d}"
    tensors = {}
    for shard in json.loads((folder / "state.json").read_text())["shards"]:
        tensors.update(load_file(str(folder / shard)))
    return {k[len("raw."):]: v for k, v in tensors.items() if k.startswith("raw.")}


@pytest.mark.parametrize("setting", ["", "ema_half_life = 2"])
def test_resume_continues_bit_exactly(tmp_path, setting):
    config = str(tiny_with(tmp_path, setting))
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_main([config, "--out", str(straight), "--steps", "4"]) == 0
    assert train_main([config, "--out", str(split), "--steps", "2"]) == 0
    assert train_main([config, "--out", str(split), "--steps", "4"]) == 0  # resumes at step 2
    a, b = weights(straight), weights(split)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from an uninterrupted run"
    raw_a, raw_b = raw_weights(straight, 4), raw_weights(split, 4)
    assert bool(raw_a) == bool(setting)
    assert all(torch.equal(raw_a[k], raw_b[k]) for k in raw_a), "resumed raw weights differ"
    before = load_file(str(split / "step_00000002" / "model.safetensors"))
    assert any(not torch.equal(before[k], b[k]) for k in b), "steps 3-4 changed nothing"


def test_checkpoints_hold_the_moving_average_of_the_weights(tmp_path):
    """With ema_half_life = 1 each step moves the average halfway to the new weights; the
    checkpoint's model.safetensors is the average and its state the raw weights."""
    config = str(tiny_with(tmp_path, "ema_half_life = 1"))
    assert train_main([config, "--out", str(tmp_path), "--steps", "0"]) == 0  # the initial weights
    assert train_main([config, "--out", str(tmp_path), "--steps", "1"]) == 0
    start, average, raw = weights_at(tmp_path, 0), weights_at(tmp_path, 1), raw_weights(tmp_path, 1)
    assert raw and all(not torch.equal(raw[k], start[k]) for k in raw), "one step changed no trained weight"
    for name, value in raw.items():
        torch.testing.assert_close(average[name], (start[name] + value) / 2, rtol=0, atol=1e-6)
    frozen = [k for k in average if k not in raw]  # buffers and the temporal network (not trained here)
    assert frozen and all(torch.equal(average[k], start[k]) for k in frozen if average[k].is_floating_point())


def weights_at(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / f"step_{step:08d}" / "model.safetensors"))


def test_deterministic_runs_train_and_leave_the_global_setting_alone(tmp_path):
    assert train_main([str(tiny_with(tmp_path, "deterministic = true")), "--out", str(tmp_path / "run"), "--steps", "2"]) == 0
    assert not torch.are_deterministic_algorithms_enabled()
    assert json.loads((tmp_path / "run" / "step_00000002" / "state.json").read_text())["config"]["deterministic"]


@pytest.mark.cuda
def test_deterministic_resume_on_cuda_is_bit_exact(tmp_path):
    """With `deterministic = true`, 2 + 2 steps with a restart equal 4 straight steps on the GPU
    too. (Without it the GPU's atomic adds make even two straight runs differ in the last bits:
    about 2e-6 in the weights of the tiny network after 4 steps on an H100.)"""
    config = str(tiny_with(tmp_path, "deterministic = true"))
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_main([config, "--out", str(straight), "--steps", "4"]) == 0
    assert train_main([config, "--out", str(split), "--steps", "2"]) == 0
    assert train_main([config, "--out", str(split), "--steps", "4"]) == 0
    a, b = weights(straight), weights(split)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed weights differ from an uninterrupted run: {different[:5]}"


def test_a_run_from_earlier_weights_draws_new_data(tmp_path):
    """Checkpoints record how far along the data stream their weights are ("data_steps"); a run
    started from them (--init) draws its data after that point, and keeps it when resumed."""
    import dataclasses

    from relight_core.checkpoints import read_checkpoint
    from relight_core.train.data import make_data
    from relight_core.train.trainer import Trainer

    first = tmp_path / "first"
    assert train_main([str(TINY), "--out", str(first), "--steps", "2"]) == 0
    init = first / "step_00000002" / "model.safetensors"
    assert read_checkpoint(init)[2]["data_steps"] == "2"

    config = dataclasses.replace(TrainConfig.load(TINY), init=str(init), steps=1)
    source, drawn = make_data(config), []

    class Recording:  # the real source, noting which data positions the trainer asks for
        def prepare(self, device):
            source.prepare(device)

        def batch(self, step, rank, batch_size, device):
            drawn.append(step)
            return source.batch(step, rank, batch_size, device)

    second = tmp_path / "second"
    Trainer(config, Recording(), second).run()
    Trainer(dataclasses.replace(config, steps=2), Recording(), second).run()  # resumes at step 1
    training_draws = [step for step in drawn if step != 10**9]  # (10**9: the sample sheet's fixed batch)
    assert training_draws == [2, 3]  # not [0, 1]: the first run's data is not drawn again
    assert read_checkpoint(second / "step_00000002" / "model.safetensors")[2]["data_steps"] == "4"


def test_unknown_settings_are_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "tiny"\nlearning_rate = 1\n')
    with pytest.raises(ValueError, match=r"unknown training settings \['learning_rate'\]"):
        TrainConfig.load(bad)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["tiny.toml", "tiny_albedo.toml", "tiny_shading.toml"])
def test_two_processes_train_with_distributed_data_parallel(tmp_path, config):
    """torchrun with two CPU processes (gloo): the same entry point the GPUs use, in each stage
    that trains part of the network (DDP must not wait for gradients of frozen parameters)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "relight_core.train", str(TINY.parent / config), "--out", str(tmp_path), "--steps", "2"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "step_00000002" / "model.safetensors").is_file()
