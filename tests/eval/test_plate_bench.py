"""The plate pipeline benchmark (relight_core.eval.plate_bench, `relight bench --plate`).

A real plate job on a short sequence made from skimage's astronaut portrait, with the `tiny`
network's seeded random weights (same code path as any weights; only the speed differs).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from relight_core.eval.plate_bench import PLATE_STAGES, format_plate_table, run_plate_benchmark


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """Frames 11-13: the face, the face moved, a grey frame without a face."""
    from skimage import data

    folder = tmp_path_factory.mktemp("plate")
    face = np.ascontiguousarray(data.astronaut()[:384, 64:448])
    frames = {11: face, 12: np.roll(face, 3, axis=1), 13: np.full_like(face, 128)}
    for n, image in frames.items():
        Image.fromarray(image).save(folder / f"shot.{n:04d}.png")
    return folder / "shot.####.png"


@pytest.fixture(scope="module")
def result(plate):
    return run_plate_benchmark(plate, frames="11:13", device="cpu", config="tiny")


def test_every_stage_is_timed_over_the_frames_it_runs_on(result):
    rows = {r["stage"]: r for r in result["rows"]}
    assert [r["stage"] for r in result["rows"]] == [k for k, _ in PLATE_STAGES if k in rows]
    assert result["frame_count"] == 3 and result["relit_count"] == 2
    for stage in ("decode", "track", "write"):
        assert rows[stage]["frames"] == 3  # every frame
    for stage in ("light", "network", "network.encode", "network.render", "composite"):
        assert rows[stage]["frames"] == 2  # relit frames only
    for r in result["rows"]:
        assert 0 <= r["min_ms"] <= r["median_ms"] <= r["max_ms"]
    parts = sum(rows[k]["median_ms"] for k in rows if k.startswith("network."))
    assert parts <= rows["network"]["max_ms"] * 1.01  # the parts add up to (at most) the whole
    assert result["loop_fps"] > 0 and result["wall_fps"] > 0
    assert result["wall_fps"] <= result["loop_fps"]  # wall time adds setup and finish
    assert result["config"] == "tiny" and result["trained_weights"] is False


def test_markdown_table_names_the_machine_and_settings(result):
    text = format_plate_table(result)
    assert result["device_name"] in text and result["git_commit"] in text
    assert "frames 11:13: 3 frames, 2 relit" in text and "tiny config, seeded random weights" in text
    assert "| `track` |" in text and "**whole pipeline, loop**" in text
    assert f"{result['loop_fps']:.2f} frames/s" in text


def test_cli_writes_the_table(plate, tmp_path, capsys):
    from relight_core.cli import main

    code = main(["bench", "--plate", str(plate), "--frames", "11:11", "--config", "tiny", "--device", "cpu",
                 "--out", str(tmp_path)])
    assert code == 0
    saved = json.loads((tmp_path / "plate_bench.json").read_text())
    assert saved["frame_count"] == 1 and (tmp_path / "plate_bench.md").read_text() in capsys.readouterr().out
    assert main(["bench", "--plate", str(tmp_path / "missing.mp4"), "--device", "cpu"]) == 2
    assert "missing.mp4" in capsys.readouterr().err
