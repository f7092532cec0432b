"""The one error type of plate input/output."""

from __future__ import annotations


class PlateError(ValueError):
    """A plate cannot be read or written as asked.

    The message names the file (and frame where there is one) and says what to do; the CLI prints
    it and exits non-zero. Nothing has been modified when it is raised.
    """
