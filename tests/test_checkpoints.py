"""Checkpoint files: safetensors with the config in the metadata; clear errors for anything else."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from relight_core.checkpoints import (
    CheckpointError,
    inspect_file,
    load_model,
    read_checkpoint,
    read_official_pth,
    save_checkpoint,
)
from relight_core.models.config import get_config
from relight_core.models.relighter import Relighter


@pytest.fixture()
def tiny_checkpoint(tmp_path):
    torch.manual_seed(3)
    model = Relighter(get_config("tiny")).eval()
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, model.state_dict(), model.config, note="test weights")
    return path, model


def test_round_trip_keeps_weights_config_and_outputs(tiny_checkpoint):
    path, model = tiny_checkpoint
    loaded = load_model(path)
    assert loaded.config == model.config and not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    _, config, metadata = read_checkpoint(path)
    assert config.name == "tiny" and metadata["note"] == "test weights"
    assert [p.name for p in path.parent.iterdir()] == ["tiny.safetensors"]  # no temporary file left


def test_wrong_config_is_named(tiny_checkpoint):
    path, _ = tiny_checkpoint
    with pytest.raises(CheckpointError, match=r"checkpoint for the 'tiny' config, but the 'paper' config was expected"):
        load_model(path, expected_config="paper")


@pytest.mark.parametrize(
    "content, what",
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "is an image, not a Relight checkpoint"),
        (b"", "is an empty file"),
        (b"hello, this is text" * 10, "not a checkpoint format Relight knows"),
    ],
)
def test_files_that_are_not_checkpoints(tmp_path, content, what):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=what):
        load_model(path)


def test_foreign_safetensors_and_pth_files(tmp_path):
    foreign = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(3)}, str(foreign))
    with pytest.raises(CheckpointError, match="safetensors file without Relight metadata"):
        read_checkpoint(foreign)
    pth = tmp_path / "model.pth"
    torch.save({"x": torch.zeros(3)}, pth)
    with pytest.raises(CheckpointError, match=r"is a zip archive .* not a Relight checkpoint"):
        read_checkpoint(pth)
    with pytest.raises(CheckpointError, match="without the released 'encoders.\\*' keys"):
        read_official_pth(pth)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        read_checkpoint(tmp_path / "missing.safetensors")


def test_mismatched_tensors_are_reported(tmp_path, tiny_checkpoint):
    path, model = tiny_checkpoint
    state = model.state_dict()
    state.pop("temporal.combine.weight")
    broken = tmp_path / "broken.safetensors"
    save_checkpoint(broken, state, model.config)
    with pytest.raises(CheckpointError, match="1 missing tensors"):
        load_model(broken)


def test_inspect_describes_a_checkpoint(tiny_checkpoint):
    path, _ = tiny_checkpoint
    text = inspect_file(path)
    assert "Relight checkpoint" in text and "config 'tiny'" in text and "note: test weights" in text


def test_safetensors_is_recognised_whatever_its_header_length(tmp_path):
    """A header length whose first byte is 0x80 (a pickle's first byte) is still safetensors."""
    from relight_core.checkpoints import describe_file

    lengths = set()
    for pad in range(0, 300, 7):
        path = tmp_path / f"f{pad}.safetensors"
        save_file({"x": torch.zeros(1)}, str(path), metadata={"pad": "x" * pad})
        lengths.add(path.read_bytes()[0])
        assert describe_file(path) == "a safetensors file"
    assert 0x80 in lengths or any(b >= 0x80 for b in lengths)


def test_shipped_weights_load_with_the_temporal_network_their_metadata_records():
    """The default weights load as `small`. Their metadata records the temporal-stage steps behind
    them: a trained temporal network runs in the video path; an untrained one ships zeroed, so a
    video frame renders exactly like the image path (no garbage once the window fills)."""
    from relight_core.checkpoints import DEFAULT_WEIGHTS, default_weights_status, load_default_model
    from relight_core.models.relighter import VideoRelighter

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("no default weights shipped")
    model, trained = load_default_model()
    assert trained and model.config.name == "small" and "trained" in default_weights_status()
    _, _, metadata = read_checkpoint(DEFAULT_WEIGHTS)
    temporal_steps = int(metadata["temporal_steps"])
    # silent = zero residuals (tests/models/test_relighter.py checks that skipping it changes nothing)
    assert VideoRelighter(model).silent == (temporal_steps == 0)
