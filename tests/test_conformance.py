"""Proof of fidelity against the released implementation (needs ../shared/conformance)."""

from __future__ import annotations

import json

import pytest

from relight_core import cli
from relight_core.conformance import INPUTS, Result


@pytest.mark.slow
def test_every_reference_tensor_matches(conformance_dir, capsys):
    """`relight conformance DIR`: recipe weights -> model.pth -> convert -> every tensor compared."""
    code = cli.main(["conformance", str(conformance_dir)])
    lines = capsys.readouterr().out.splitlines()
    failures = [line for line in lines if not line.endswith(" pass")]
    assert code == 0, failures
    assert not failures
    names = {line.split()[0] for line in lines}
    # Every output family of the README is among the compared tensors.
    for family in ("cams.orbit", "maplit.ws_lit", "shading_unit.", "render_unit.", "enc.", "img.", "novel.",
                   "temporal_unit.", "video.frozen.", "video.sliding_f7.", "align.crop512", "alignB.trans300"):
        assert any(name.startswith(family) for name in names), family
    manifest = json.loads((conformance_dir / "manifest.json").read_text())
    outputs = {k for k, v in manifest.items() if v["file"] != "inputs.safetensors" and k not in INPUTS}
    assert names == outputs | {"cams.orbit"}


def test_cli_exits_non_zero_on_a_failure(monkeypatch, capsys):
    results = [Result("a", 1e-6, 1e-4, "rel-L2"), Result("b", 1e-2, 1e-4, "rel-L2")]
    monkeypatch.setattr("relight_core.conformance.run_conformance", lambda folder, progress: results)
    assert cli.main(["conformance", "anywhere"]) == 1
    out = capsys.readouterr().out
    assert "b " in out and "FAIL" in out


def test_cli_names_a_folder_that_is_not_a_conformance_folder(tmp_path, capsys):
    assert cli.main(["conformance", str(tmp_path)]) == 2
    assert "is not a conformance folder" in capsys.readouterr().err
