"""The speed benchmark runs end to end on the CPU with the tiny preset (no speeds are asserted)."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from relight_core.eval import bench

PROVENANCE = ("config", "device", "device_name", "torch", "cuda", "precision", "batch", "iterations",
              "warmup", "git_commit", "date_utc", "rows")


@pytest.fixture(scope="module")
def fp32_result(one_thread) -> dict:
    return bench.run_benchmark("tiny", "cpu", iterations=2, warmup=1)


def check_rows(result: dict) -> None:
    assert [row["stage"] for row in result["rows"]] == [key for key, _ in bench.STAGES]
    for row in result["rows"]:
        for key in ("median_ms", "min_ms", "max_ms"):
            assert math.isfinite(row[key]) and row[key] > 0, row
        assert row["min_ms"] <= row["median_ms"] <= row["max_ms"], row


def test_rows_and_provenance(fp32_result):
    check_rows(fp32_result)
    for key in PROVENANCE:
        assert key in fp32_result, key
    assert fp32_result["config"] == "tiny" and fp32_result["precision"] == "fp32"
    assert (fp32_result["batch"], fp32_result["iterations"], fp32_result["warmup"]) == (1, 2, 1)
    assert fp32_result["git_commit"]
    assert fp32_result["peak_cuda_mib"] is None  # CPU run


def test_bf16_runs_on_cpu():
    result = bench.run_benchmark("tiny", "cpu", precision="bf16", iterations=1, warmup=0)
    check_rows(result)
    assert result["precision"] == "bf16"


def test_fp32_restores_tf32_flags():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with bench.precision_context("fp32", "cpu"):
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_frontal_camera_label():
    label = bench.frontal_camera(2, torch.device("cpu"))
    assert label.shape == (2, 25)
    cam2world, intrinsics = label[0, :16].reshape(4, 4), label[0, 16:].reshape(3, 3)
    assert torch.allclose(cam2world[:3, 3], torch.tensor([0.0, 0.0, 2.7]))
    assert torch.allclose(cam2world[:3, 2], torch.tensor([0.0, 0.0, -1.0]))  # OpenCV +z looks at the origin
    expected = torch.tensor([[4.2634, 0, 0.5], [0, 4.2634, 0.5], [0, 0, 1]])
    assert torch.allclose(intrinsics, expected, atol=1e-4)


def test_write_results(fp32_result, tmp_path):
    json_path, md_path = bench.write_results([fp32_result, fp32_result], tmp_path / "out")
    loaded = json.loads(json_path.read_text())
    assert loaded[0]["rows"] == fp32_result["rows"]
    table = md_path.read_text()
    assert table.count("| stage |") == 1
    for key, what in bench.STAGES:
        assert f"`{key}`" in table and what in table
    assert not [p for p in json_path.parent.iterdir() if p.name.endswith(".tmp")]


def test_bad_settings_raise():
    with pytest.raises(ValueError):
        bench.run_benchmark("tiny", "cpu", precision="fp16")
    with pytest.raises(ValueError):
        bench.run_benchmark("nope", "cpu")
    with pytest.raises(ValueError):
        bench.run_benchmark("tiny", "cpu", iterations=0)


def test_cli_arguments(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--config", "tiny", "--device", "cpu", "--precision", "fp32,bf16", "--precision", "fp32",
                              "--iterations", "1", "--warmup", "0", "--out", str(tmp_path)])
    assert args.batch == 1
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    assert "tiny fp32 median ms" in out and "tiny bf16 median ms" in out and str(tmp_path) in out
    assert len(json.loads((tmp_path / "bench.json").read_text())) == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp16"])
