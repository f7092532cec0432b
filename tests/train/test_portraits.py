"""Real portraits in training: the pack (tracking, crop, light, matte) round-trips, held-out files
stay out, PortraitSource batches are deterministic, and the mixing ratio is honoured."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from relight_core.train.config import TrainConfig
from relight_core.train.data import MixedSource, PortraitSource, make_data, portrait_step
from relight_core.train.portraits import read_pack, track_folder, write_pack
from relight_core.train.split import split_held_out

REPO = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tracked(shared_data, tmp_path_factory):
    """Eight real portraits (the split holds the 8th out) tracked at the tiny network's 64 px."""
    folder = tmp_path_factory.mktemp("portraits")
    for path in sorted((shared_data / "portraits").glob("*.jpg"))[:8]:
        shutil.copy(path, folder / path.name)
    results = dict(track_folder(folder, 64))
    return folder, results


@pytest.fixture(scope="module")
def pack(tracked, tmp_path_factory) -> Path:
    _, results = tracked
    portraits = [r for r in results.values() if not isinstance(r, str)]
    return write_pack(tmp_path_factory.mktemp("pack") / "pack.safetensors", portraits, info={"test": True})


def test_held_out_files_are_never_tracked(tracked):
    folder, results = tracked
    train, held_out = split_held_out(list(folder.iterdir()))
    assert sorted(results) == sorted(p.name for p in train) and len(held_out) == 1
    assert held_out[0].name not in results


def test_pack_round_trips(tracked, pack):
    _, results = tracked
    portraits = [r for r in results.values() if not isinstance(r, str)]
    assert len(portraits) >= 6, {k: v for k, v in results.items() if isinstance(v, str)}
    loaded = read_pack(pack)
    assert loaded.names == [p.name for p in portraits] and loaded.info == {"test": True}
    assert loaded.image.shape == (len(portraits), 3, 64, 64) and loaded.matte.shape == (len(portraits), 2, 32, 32)
    for i, p in enumerate(portraits):
        crop = loaded.image[i].permute(1, 2, 0).numpy().astype(np.float64)
        assert np.abs(crop - p.crop).mean() < 6, "JPEG (quality 90, 4:2:0) should be close to the crop"
        matte = loaded.matte[i, 0].float().numpy() / 255
        assert abs(matte.mean() - p.matte.mean()) < 0.01
        assert torch.equal(loaded.camera[i], torch.from_numpy(p.camera))
        assert torch.equal(loaded.sh[i], torch.from_numpy(p.sh))
    # what the tracking put in: a person in the middle, a frontal-ish camera, a plausible light
    assert (loaded.matte[:, 0, 12:20, 12:20].float() / 255).mean() > 0.9  # the face is person
    assert (loaded.sh[:, 0] > 0.2).all() and (loaded.sh[:, 0] < 2).all()  # DC term
    radius = loaded.camera[:, :16].view(-1, 4, 4)[:, :3, 3].norm(dim=-1)
    assert torch.allclose(radius, torch.full_like(radius, 2.7), atol=0.05)
    assert pack.stat().st_size < 30_000 * len(portraits)


def test_a_bad_pack_names_the_file_and_the_fix(tmp_path):
    bad = tmp_path / "notapack.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + b" " * 14)
    with pytest.raises(ValueError, match="notapack.safetensors.*prepare_portraits"):
        read_pack(bad)
    with pytest.raises(ValueError, match="prepare_portraits"):
        read_pack(tmp_path / "missing.safetensors")


def test_portrait_batches_are_a_pure_function_of_seed_step_rank(pack):
    config = TrainConfig.from_dict({"model": "tiny", "portraits": str(pack)})
    source = PortraitSource(config)
    a, b = source.batch(3, 0, 4, CPU), PortraitSource(config).batch(3, 0, 4, CPU)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other_rank, other_step = source.batch(3, 1, 4, CPU), source.batch(4, 0, 4, CPU)
    assert not torch.equal(a["target_cameras"], other_rank["target_cameras"])
    assert not torch.equal(a["target_cameras"], other_step["target_cameras"])
    reseeded = PortraitSource(TrainConfig.from_dict({"model": "tiny", "portraits": str(pack), "seed": 1})).batch(3, 0, 4, CPU)
    assert not torch.equal(a["target_cameras"], reseeded["target_cameras"])
    assert a["image"].shape == (4, 3, 64, 64) and a["target_cameras"].shape == (4, 2, 25)
    assert a["rgb"].shape == (4, 1, 3, 64, 64) and a["mask"].shape == a["valid"].shape == (4, 1, 1, 64, 64)
    assert a["target_sh"].shape == (4, 9, 3)
    assert torch.equal(a["target_cameras"][:, 0], a["camera"])  # the supervised view is the input view
    assert (a["rgb"] <= a["mask"] + 1e-6).all()  # zero outside the person
    assert "albedo" not in a and "depth" not in a


def test_the_mixing_ratio_is_honoured(pack):
    for fraction in (0.25, 0.1, 1 / 3, 1.0, 0.0):
        picks = [portrait_step(k, fraction) for k in range(600)]
        assert sum(picks) == round(600 * fraction)
        if fraction == 0.25:
            assert all(sum(picks[i:i + 4]) == 1 for i in range(0, 600, 4))  # evenly spread
    config = TrainConfig.from_dict({"model": "tiny", "portraits": str(pack), "portrait_fraction": 0.25})
    data = make_data(config)
    assert isinstance(data, MixedSource)
    kinds = ["valid" in data.batch(k, 0, 1, CPU) for k in range(8)]
    assert kinds == [portrait_step(k, 0.25) for k in range(8)] and sum(kinds) == 2
    with pytest.raises(ValueError, match="portrait_fraction"):
        TrainConfig.from_dict({"model": "tiny", "portrait_fraction": 1.5})


def test_training_steps_on_mixed_data(pack, tmp_path):
    """Through the entry point: synthetic and portrait steps alternate; portrait steps have no
    albedo/shading/depth terms but get the adversarial term on their novel view."""
    from relight_core.train.__main__ import main as train_main

    config = tmp_path / "mixed.toml"
    config.write_text((REPO / "configs/train/tiny.toml").read_text()
                      + f'portraits = "{pack}"\nportrait_fraction = 0.5\n')
    run = tmp_path / "run"
    assert train_main([str(config), "--out", str(run), "--steps", "4"]) == 0
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    portrait = [portrait_step(r["step"] - 1, 0.5) for r in records]
    assert portrait == [False, True, False, True]
    for record, is_portrait in zip(records, portrait):
        assert ("albedo" in record) != is_portrait and np.isfinite(record["total"])
        if record["step"] > 2:  # adversarial_start = 2 in tiny.toml
            assert "adversarial" in record and "discriminator" in record
