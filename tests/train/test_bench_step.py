"""The training-step benchmark runs a configuration's real steps and reports each batch size."""

import re
from pathlib import Path

from relight_core.train import bench_step

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "train" / "tiny.toml"


def test_reports_every_batch_size(capsys):
    assert bench_step.main([str(CONFIG), "--batch", "1,2", "--steps", "1"]) == 0
    rows = re.findall(r"batch +(\d+) synthetic: ([\d.]+) s/step, +([\d.]+) samples/s", capsys.readouterr().out)
    assert [int(batch) for batch, _, _ in rows] == [1, 2]
    for batch, seconds, rate in rows:
        assert float(seconds) > 0 and abs(float(rate) - int(batch) / float(seconds)) < 0.1 * float(rate) + 0.1
