"""Shared fixtures. `../shared` (design data, conformance vectors) is optional: tests that need it skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RELIGHT_SHARED", REPO.parent / "shared"))


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU; skipped without one")
    config.addinivalue_line("markers", "slow: runs the full paper-size network on the CPU (a minute or more)")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """The folder of reference vectors of the released network (skips when absent)."""
    path = SHARED / "conformance"
    if not (path / "run_info.json").is_file():
        pytest.skip(f"conformance vectors not found at {path}")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real test data (portraits, a plate clip); skips when absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"shared test data not found at {path}")
    return path


@pytest.fixture(scope="session")
def face_clip(shared_data, tmp_path_factory) -> Path:
    """Frames 70-72 of the Tears of Steel excerpt (a face in each; CC BY 3.0, (c) Blender
    Foundation) as a 3-frame MP4: a real plate that the worker and add-on tests run in seconds."""
    from relight_core.io import MovieWriter, open_plate

    source = shared_data / "video" / "tears_of_steel_clip.mp4"
    if not source.is_file():
        pytest.skip(f"{source} not found")
    short = tmp_path_factory.mktemp("face_clip") / "short.mp4"
    with MovieWriter(short, fps=24) as movie:
        for frame in open_plate(source, frames=range(70, 73)):
            movie.write(frame.source_pixels)
    return short
