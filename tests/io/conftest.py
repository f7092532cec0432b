"""Fixtures of the io tests (helpers live in io_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def clip_path(shared_data) -> Path:
    path = shared_data / "video" / "tears_of_steel_clip.mp4"
    if not path.is_file():
        pytest.skip(f"clip not found at {path}")
    return path
