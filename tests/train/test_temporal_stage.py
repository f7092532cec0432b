"""The temporal stage on the tiny network: exact flow, the loss going down, exact resume, frozen
encoders, and the shipping rule for temporal weights (relight_core.train.export)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from relight_core.checkpoints import read_checkpoint
from relight_core.train.__main__ import main as train_main
from relight_core.train.config import TrainConfig
from relight_core.train.data import make_data
from relight_core.train.export import export_weights
from relight_core.train.losses import warp
from relight_core.train.synthetic import SyntheticHeads
from relight_core.train.trainer import Trainer

CONFIG = 'model = "tiny"\nstage = "temporal"\nbatch_size = 1\nsequence_length = 5\nlog_every = 1\nsample_every = 100\ncheckpoint_every = 2\n'


def test_flow_from_the_rasterizer_maps_each_pixel_to_the_same_surface_point():
    """Warping frame s's albedo (attached to the skin) with the flow reproduces frame t's albedo."""
    heads = SyntheticHeads(96, supersample=2)
    clip = heads.sequence(6, torch.Generator().manual_seed(3), fps=2.0, flow_reference=2)  # low fps: large motion
    albedo = clip["albedo"]
    for name, source in (("previous", (torch.arange(6) - 1).clamp(min=0)), ("reference", torch.full((6,), 2))):
        flow, valid = clip["flow_" + name], (clip["valid_" + name] > 0.99).float()
        assert flow.shape == (6, 2, 96, 96) and valid.mean() > 0.3
        assert flow.abs().amax() > 3, "the head should move by several pixels"
        warped = ((warp(albedo[source], flow) - albedo).abs() * valid).sum() / valid.sum()
        unwarped = ((albedo[source] - albedo).abs() * valid).sum() / valid.sum()
        assert warped < 0.4 * unwarped, (name, float(warped), float(unwarped))
    # frame 0's "previous" is itself: zero flow wherever visible
    assert clip["flow_previous"][0].abs().max() < 1e-4
    # the flow costs no random draws: the frames are the same without it
    plain = heads.sequence(6, torch.Generator().manual_seed(3), fps=2.0)
    assert torch.equal(plain["target_rgb"], clip["target_rgb"])


def test_a_few_steps_on_one_batch_reduce_the_temporal_loss(tmp_path):
    """Only the temporal terms, one fixed batch: every step lowers them, and only temporal.* moves.
    (From random tiny weights most of the change mismatch is the encoders' own, which the
    residual of the previous frames can only partly undo: the decrease is steady, not large.)"""
    raw = TrainConfig.from_dict({"model": "tiny", "stage": "temporal", "batch_size": 1, "sequence_length": 6, "lr": 3e-3,
                                 "loss": {"rgb": 0.0, "rgb_sr": 0.0, "structure": 0.0, "temporal_short": 1.0, "temporal_long": 1.0}})
    trainer = Trainer(raw, make_data(raw), tmp_path)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    history = [trainer.train_step(0) for _ in range(6)]  # step 0's batch every time
    temporal = [h["temporal_short"] + h["temporal_long"] for h in history]
    assert all(b < a for a, b in zip(temporal, temporal[1:])), temporal
    after = trainer.model.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("temporal.") for k in changed), sorted(changed)[:5]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("temporal")
    config = root / "tiny_temporal.toml"
    config.write_text(CONFIG)
    straight, split = root / "straight", root / "split"
    assert train_main([str(config), "--out", str(straight), "--steps", "4"]) == 0
    assert train_main([str(config), "--out", str(split), "--steps", "2"]) == 0
    assert train_main([str(config), "--out", str(split), "--steps", "4"]) == 0  # resumes at step 2
    return {"straight": straight, "split": split}


def test_temporal_stage_resumes_bit_exactly(runs):
    a = load_file(str(runs["straight"] / "step_00000004" / "model.safetensors"))
    b = load_file(str(runs["split"] / "step_00000004" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed temporal weights differ from an uninterrupted run"
    start = load_file(str(runs["split"] / "step_00000002" / "model.safetensors"))
    assert any(not torch.equal(start[k], b[k]) for k in b if k.startswith("temporal.")), "steps 3-4 changed nothing"
    assert all(torch.equal(start[k], b[k]) for k in b if not k.startswith("temporal.")), "frozen weights moved"


def test_checkpoints_record_temporal_training_and_export_keeps_it(runs, tmp_path):
    checkpoint = runs["straight"] / "step_00000004" / "model.safetensors"
    metadata = read_checkpoint(checkpoint)[2]
    assert metadata["stage"] == "temporal" and metadata["temporal_steps"] == "4"
    shipped = tmp_path / "shipped.safetensors"
    written = export_weights([checkpoint], shipped, status="test")
    tensors, _, meta = read_checkpoint(shipped)
    assert written["temporal"].startswith("trained") and meta["status"] == "test"
    original = read_checkpoint(checkpoint)[0]
    weigh = "temporal.albedo_head.weigh.weight"
    assert tensors[weigh].dtype == torch.float16 and tensors[weigh].abs().max() > 0
    torch.testing.assert_close(tensors[weigh].float(), original[weigh], atol=1e-3, rtol=1e-3)


def test_export_zeroes_an_untrained_temporal_network(tmp_path):
    """A joint-stage checkpoint (temporal_steps 0) ships with the temporal output zeroed, so
    video frames render exactly like images."""
    from relight_core.checkpoints import load_model
    from relight_core.models.relighter import VideoRelighter

    run = tmp_path / "run"
    assert train_main([str(Path(__file__).resolve().parents[2] / "configs/train/tiny.toml"), "--out", str(run), "--steps", "1"]) == 0
    checkpoint = run / "step_00000001" / "model.safetensors"
    assert read_checkpoint(checkpoint)[2]["temporal_steps"] == "0"
    shipped = tmp_path / "shipped.safetensors"
    assert export_weights([checkpoint], shipped)["temporal"].startswith("untrained")
    tensors = read_checkpoint(shipped)[0]
    zeroed = [k for k in tensors if k.startswith(("temporal.albedo_head.weigh.", "temporal.shading_head.weigh."))]
    assert len(zeroed) == 4 and all(not tensors[k].any() for k in zeroed)
    assert any(tensors[k].any() for k in tensors if k.startswith("temporal.") and k not in zeroed)
    # silent: the video path skips the network and renders like images (test_relighter checks
    # that this equals running it)
    assert VideoRelighter(load_model(shipped)).silent


def test_the_temporal_stage_starts_from_zero_residuals(tmp_path):
    """Joint-stage weights carry random, untrained temporal output layers; the temporal stage
    zeroes them first, so training starts from video = per-frame images (a trained temporal
    network, temporal_steps > 0, is kept as it is)."""
    joint_run = tmp_path / "joint"
    assert train_main([str(Path(__file__).resolve().parents[2] / "configs/train/tiny.toml"), "--out", str(joint_run),
                       "--steps", "1"]) == 0
    init = joint_run / "step_00000001" / "model.safetensors"
    outputs = ("temporal.albedo_head.weigh.", "temporal.shading_head.weigh.")
    assert any(v.any() for k, v in read_checkpoint(init)[0].items() if k.startswith(outputs))
    raw = TrainConfig.from_dict({"model": "tiny", "stage": "temporal", "batch_size": 1, "sequence_length": 6,
                                 "init": str(init)})
    trainer = Trainer(raw, make_data(raw), tmp_path / "temporal")
    heads = {k: v for k, v in trainer.model.state_dict().items() if k.startswith(outputs)}
    assert len(heads) == 4 and not any(v.any() for v in heads.values())
