"""The three encoder stages (albedo, shading, joint) on the tiny network: what each trains, which
loss terms it computes, the chain from one stage to the next, and old "encoder" checkpoints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from relight_core.models.config import get_config
from relight_core.models.relighter import Relighter
from relight_core.train.__main__ import main as train_main
from relight_core.train.config import STAGES, LossWeights, TrainConfig, recorded_stage
from relight_core.train.data import make_data
from relight_core.train.trainer import Trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"
BOOKKEEPING = {"grad_norm", "skipped", "total"}


def one_step(stage: str, tmp_path: Path) -> tuple[Trainer, set[str], dict[str, float]]:
    """A tiny trainer of `stage` after one step: the trainer, the changed parameters, the logged values."""
    config = TrainConfig.from_dict({"model": "tiny", "stage": stage, "batch_size": 1, "adversarial_start": 0})
    trainer = Trainer(config, make_data(config), tmp_path)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.train_step(0)
    after = trainer.model.state_dict()
    return trainer, {k for k in after if not torch.equal(before[k], after[k])}, result


def test_the_stages_split_the_network_and_name_real_loss_terms():
    names = [name for name, _ in Relighter(get_config("tiny")).named_parameters()]
    joint, temporal = STAGES["joint"], STAGES["temporal"]
    assert all(name.startswith(joint.trains) != name.startswith(temporal.trains) for name in names)
    for stage in ("albedo", "shading"):
        trained = [name for name in names if name.startswith(STAGES[stage].trains)]
        assert trained and all(name.startswith(joint.trains) for name in trained), stage
    weights = {f.name for f in dataclasses.fields(LossWeights)}
    assert all(stage.losses <= weights for stage in STAGES.values())


def test_the_albedo_stage_trains_the_albedo_encoder_and_decoder_only(tmp_path):
    trainer, changed, result = one_step("albedo", tmp_path)
    assert set(result) - BOOKKEEPING == {"albedo", "depth", "mask"}
    albedo = ("albedo_encoder.", "renderer.decoders.albedo_")
    assert changed and all(k.startswith(albedo) for k in changed), sorted(changed)
    assert all(any(k.startswith(prefix) for k in changed) for prefix in albedo)
    trained = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert all(n.startswith(albedo) for n in trained)
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in trainer.model.parameters() if p.requires_grad}


def test_the_shading_stage_keeps_the_albedo_encoder_frozen_and_in_eval_mode(tmp_path):
    trainer, changed, result = one_step("shading", tmp_path)
    assert set(result) - BOOKKEEPING == {"shading", "rgb"}
    shading = ("shading_encoder.", "lighting.", "renderer.decoders.shading_")
    assert changed and all(k.startswith(shading) for k in changed), sorted(changed)
    assert all(any(k.startswith(prefix) for k in changed) for prefix in shading)
    assert not trainer.model.albedo_encoder.training and trainer.model.shading_encoder.training
    trainer.write_samples()  # switches to eval and back
    assert not trainer.model.albedo_encoder.training and trainer.model.renderer.training


def test_the_joint_stage_trains_everything_but_the_temporal_network(tmp_path):
    _, changed, result = one_step("joint", tmp_path)
    assert set(result) - BOOKKEEPING - {"discriminator"} == STAGES["joint"].losses
    for prefix in STAGES["joint"].trains:
        assert any(k.startswith(prefix) for k in changed), prefix
    assert not any(k.startswith("temporal.") for k in changed)


def test_albedo_then_shading_then_joint_through_the_entry_point(tmp_path):
    """Each stage starts from the previous one's weights (--init); a run folder belongs to one stage,
    and a joint run resumes a checkpoint that records the old name "encoder"."""
    runs = {stage: tmp_path / stage for stage in ("albedo", "shading", "joint")}
    assert train_main([str(CONFIGS / "tiny_albedo.toml"), "--out", str(runs["albedo"]), "--steps", "1"]) == 0
    albedo = runs["albedo"] / "step_00000001" / "model.safetensors"
    refusal = r"checkpoint of the albedo stage.*shading stage.*--init .*model\.safetensors --fresh"
    with pytest.raises(ValueError, match=refusal):
        train_main([str(CONFIGS / "tiny_shading.toml"), "--out", str(runs["albedo"]), "--steps", "2"])
    assert train_main([str(CONFIGS / "tiny_shading.toml"), "--out", str(runs["shading"]), "--steps", "1",
                       "--init", str(albedo)]) == 0
    shading = runs["shading"] / "step_00000001" / "model.safetensors"
    before, after = load_file(str(albedo)), load_file(str(shading))
    frozen = ("albedo_encoder.", "renderer.decoders.albedo_")
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(frozen))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("shading_encoder."))
    joint = [str(CONFIGS / "tiny.toml"), "--out", str(runs["joint"])]
    assert train_main([*joint, "--steps", "1", "--init", str(shading)]) == 0

    # the same checkpoint as older code wrote it: resumed by a joint run
    state = runs["joint"] / "step_00000001" / "state.json"
    meta = json.loads(state.read_text())
    assert meta["config"]["stage"] == "joint"
    meta["config"]["stage"] = "encoder"
    state.write_text(json.dumps(meta))
    assert train_main([*joint, "--steps", "2"]) == 0
    records = [json.loads(line) for line in (runs["joint"] / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2], "the second run should resume at step 1"


def test_recorded_stages_by_todays_names():
    assert recorded_stage({"stage": "encoder"}) == "joint"
    assert recorded_stage({}) == "joint"  # written before stages were recorded
    assert recorded_stage({"stage": "shading"}) == "shading"


def test_stage_settings_that_cannot_work_are_refused(tmp_path):
    old = tmp_path / "old.toml"
    old.write_text('model = "tiny"\nstage = "encoder"\n')
    with pytest.raises(ValueError, match=r"'encoder' is now called 'joint'"):
        TrainConfig.load(old)
    with pytest.raises(ValueError, match=r"one of 'albedo', 'shading', 'joint', 'temporal', got 'decoder'"):
        TrainConfig.from_dict({"stage": "decoder"})
    for stage in ("albedo", "shading", "temporal"):
        with pytest.raises(ValueError, match=rf"portraits are used by the joint stage only; the {stage} stage"):
            TrainConfig.from_dict({"stage": stage, "portraits": "pack.safetensors"})


@pytest.mark.cuda
@pytest.mark.parametrize("stage", ["albedo", "shading", "joint", "temporal"])
def test_every_stage_steps_on_the_gpu(stage, tmp_path):
    """One step of each stage on CUDA (the trainer takes the GPU when there is one): finite
    losses, and only the stage's own parameters move."""
    import math

    trainer, changed, result = one_step(stage, tmp_path)
    assert trainer.device.type == "cuda"
    assert all(math.isfinite(value) for value in result.values()), result
    assert changed and all(k.startswith(STAGES[stage].trains) for k in changed), sorted(changed)
