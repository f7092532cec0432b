"""Shipping the average of several checkpoints."""

import pytest
import torch

from relight_core.checkpoints import read_checkpoint, save_checkpoint
from relight_core.models.config import get_config
from relight_core.models.relighter import Relighter
from relight_core.train.export import export_weights


def tiny_checkpoint(path, seed, **metadata):
    torch.manual_seed(seed)
    model = Relighter(get_config("tiny"))
    save_checkpoint(path, model.state_dict(), model.config, source=f"seed {seed}", **metadata)
    return path


def test_the_average_of_checkpoints_leaves_out_untrained_temporal_networks(tmp_path):
    paths = [tiny_checkpoint(tmp_path / "a.safetensors", 0, temporal_steps="0", data_steps="10"),
             tiny_checkpoint(tmp_path / "b.safetensors", 1, temporal_steps="7", data_steps="30"),
             tiny_checkpoint(tmp_path / "c.safetensors", 2, temporal_steps="9", data_steps="20")]
    a, b, c = (read_checkpoint(p)[0] for p in paths)
    written = export_weights(paths, tmp_path / "shipped.safetensors", status="test", half=False)
    shipped, _, metadata = read_checkpoint(tmp_path / "shipped.safetensors")
    assert metadata["temporal_steps"] == "9" and metadata["data_steps"] == "30" and metadata["status"] == "test"
    assert written["source"].startswith("average of 3 checkpoints") and "seed 1" in written["source"]
    name = "renderer.decoders.albedo_hidden.weight"
    torch.testing.assert_close(shipped[name], (a[name] + b[name] + c[name]) / 3)
    temporal = [k for k in shipped if k.startswith("temporal.") and shipped[k].is_floating_point()]
    assert temporal
    for k in temporal:  # only b and c trained theirs
        torch.testing.assert_close(shipped[k], (b[k] + c[k]) / 2)


def test_checkpoints_of_different_networks_are_refused(tmp_path):
    tiny = tiny_checkpoint(tmp_path / "tiny.safetensors", 0)
    model = Relighter(get_config("small"))
    save_checkpoint(tmp_path / "small.safetensors", model.state_dict(), model.config)
    with pytest.raises(ValueError, match="different networks"):
        export_weights([tiny, tmp_path / "small.safetensors"], tmp_path / "out.safetensors")
