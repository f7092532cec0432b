"""Seeded stand-in for the released `model.pth`, regenerated from the conformance weight recipe.

The conformance vectors (shared/conformance, README section 2) were produced by the official
network loaded with weights drawn from ONE CPU generator, key by key in sorted order. Every key
must be generated, even ones a test does not use, because each draw shifts the generator.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor


def official_weights(recipe_path: str | Path, seed: int) -> dict[str, Tensor]:
    """All official state-dict tensors (float32, official key names) of the recipe for `seed`."""
    recipe = json.loads(Path(recipe_path).read_text())
    generator = torch.Generator().manual_seed(seed)
    weights: dict[str, Tensor] = {}
    for key in sorted(recipe):  # plain code-point order, as the recipe prescribes
        entry = recipe[key]
        if entry["init"] == "normal":
            noise = torch.randn(entry["shape"], generator=generator, dtype=torch.float32)
            weights[key] = entry["mean"] + entry["std"] * noise
        elif entry["init"] == "value":  # consumes no random numbers
            weights[key] = torch.tensor(entry["value"], dtype=torch.float32).reshape(entry["shape"])
        else:
            raise ValueError(f"{key}: unknown init {entry['init']!r}")
    return weights


def check_against(weights: dict[str, Tensor], check_path: str | Path) -> int:
    """Compare generated weights with `weights_check.json`; return the number of keys checked.

    The first 4 values must be equal bit for bit and the float64 sum and abs-sum must agree to
    1e-12 relative to the abs-sum (a sum near zero has no meaningful relative error of its own).
    Raises ValueError listing the offending keys otherwise.
    """
    check = json.loads(Path(check_path).read_text())
    problems = sorted(set(check) ^ set(weights))
    for key in sorted(set(check) & set(weights)):
        flat = weights[key].reshape(-1)
        expected = check[key]
        if [float(v) for v in flat[:4]] != expected["first"]:
            problems.append(f"{key}: first values differ")
            continue
        values = flat.double()
        scale = max(expected["abs_sum"], 1e-30)
        for name, got in (("sum", values.sum().item()), ("abs_sum", values.abs().sum().item())):
            want = expected[name]
            if abs(got - want) > 1e-12 * scale:
                problems.append(f"{key}: {name} {got!r} != {want!r}")
    if problems:
        raise ValueError(f"{len(problems)} weight mismatches, e.g. {problems[:5]}")
    return len(check)
