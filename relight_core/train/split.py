"""The held-out rule for real data sets: one fixed, documented split shared by training and evaluation.

Files are ordered by name and every eighth one (index 7, 15, 23, ...) is held out: simple to state
in a report and to reproduce by hand, and independent of any random seed.
"""

from __future__ import annotations

from pathlib import Path

HELD_OUT_EVERY = 8


def split_held_out(paths: list[Path] | list[str]) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files) of a data set, by the rule above."""
    ordered = sorted((Path(p) for p in paths), key=lambda p: p.name)
    train = [p for i, p in enumerate(ordered) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    held_out = [p for i, p in enumerate(ordered) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    return train, held_out
