"""Shot-cut detection from frame statistics.

A cut changes both the colours of a frame and its structure. Either alone misfires on real
plates: a flickering hologram or a lighting change swings the colour histogram with the picture
unchanged, and fast motion changes local structure within a shot. So a cut is declared when both

* the **colour distance**, half the L1 distance between the HSV histograms (16 hue x 4
  saturation x 4 value bins) of consecutive frames, in [0, 1], exceeds ``hist_threshold``; and
* the **structural similarity**, the correlation between the two frames' brightness thumbnails
  (64 x 36, each normalized to zero mean and unit variance, so global brightness, contrast and
  tint changes cancel), in [-1, 1], falls below ``structure_threshold``.

On the *Tears of Steel* test clip (640x360) the three cuts (to frames 21, 65 and 185) have colour
distances 0.37-0.83 and correlations below 0.05; the hologram flicker at frames 192-204 reaches
a colour distance of 0.63 but keeps correlations of 0.76 or more, and elsewhere within shots the
colour distance stays below 0.16. The defaults (0.25, 0.5) sit between those.

The tracker adds a second, face-based signal: a jump of the tracked landmarks (see
:mod:`relight_core.track.tracker`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CutDetector", "CutInfo", "frame_signature", "hist_distance", "structure_correlation"]

_THUMB = (36, 64)  # rows, columns of the brightness thumbnail
_BINS = (16, 4, 4)


@dataclass
class FrameSignature:
    """Per-frame statistics: a normalized HSV histogram and a standardized brightness thumbnail."""

    hist: np.ndarray
    thumb: np.ndarray


@dataclass
class CutInfo:
    """Result for one frame: ``cut`` (True if a new shot starts here), the colour distance and the
    structural correlation to the previous frame (0 and 1 for the first frame)."""

    cut: bool
    hist_distance: float
    structure: float


def _downsample(frame: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Box-average an [H, W, C] float image to [rows, cols, C] (H, W cropped to multiples)."""
    h, w = frame.shape[:2]
    fy, fx = max(h // rows, 1), max(w // cols, 1)
    r, c = min(rows, h // fy), min(cols, w // fx)
    a = frame[: r * fy, : c * fx].reshape(r, fy, c, fx, -1)
    return a.mean(axis=(1, 3))


def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] RGB in [0, 1] -> HSV in [0, 1]."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = rgb.max(-1)
    mn = rgb.min(-1)
    d = mx - mn
    safe = np.where(d > 0, d, 1.0)
    h = np.where(mx == r, (g - b) / safe % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    h = np.where(d > 0, h / 6.0, 0.0)
    s = np.where(mx > 0, d / np.where(mx > 0, mx, 1.0), 0.0)
    return np.stack((h, s, mx), -1)


def frame_signature(frame) -> FrameSignature:
    """Statistics of one ``[H, W, 3]`` uint8 RGB frame (computed on a ~160 px wide reduction)."""
    a = np.asarray(frame)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"frame: expected a uint8 RGB image [H, W, 3], got {a.dtype} {list(a.shape)}")
    small = _downsample(a.astype(np.float32) / 255.0, 90, 160)
    hsv = _rgb_to_hsv(small).reshape(-1, 3)
    idx = [np.minimum((hsv[:, k] * n).astype(np.int64), n - 1) for k, n in enumerate(_BINS)]
    flat = (idx[0] * _BINS[1] + idx[1]) * _BINS[2] + idx[2]
    hist = np.bincount(flat, minlength=int(np.prod(_BINS))).astype(np.float64)
    hist /= hist.sum()
    grey = small @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    thumb = _downsample(grey[..., None], *_THUMB)[..., 0].astype(np.float64)
    thumb = thumb - thumb.mean()
    sd = thumb.std()
    thumb = thumb / sd if sd > 1e-6 else np.zeros_like(thumb)
    return FrameSignature(hist, thumb)


def hist_distance(a: FrameSignature, b: FrameSignature) -> float:
    """Half the L1 distance of two histograms, in [0, 1]."""
    return float(0.5 * np.abs(a.hist - b.hist).sum())


def structure_correlation(a: FrameSignature, b: FrameSignature) -> float:
    """Correlation of two standardized thumbnails, in [-1, 1] (1 for a flat frame pair)."""
    if a.thumb.shape != b.thumb.shape:
        return 0.0
    if not a.thumb.any() and not b.thumb.any():
        return 1.0
    return float((a.thumb * b.thumb).mean())


class CutDetector:
    """Streaming shot-cut detector; feed frames in order.

    Args:
        hist_threshold: colour distance above which a cut is possible (0-1).
        structure_threshold: structural correlation below which a cut is possible (-1-1).
    """

    def __init__(self, hist_threshold: float = 0.25, structure_threshold: float = 0.5):
        if not 0.0 < hist_threshold < 1.0:
            raise ValueError(f"hist_threshold: expected a value in (0, 1), got {hist_threshold!r}")
        if not -1.0 < structure_threshold < 1.0:
            raise ValueError(f"structure_threshold: expected a value in (-1, 1), got {structure_threshold!r}")
        self.hist_threshold = float(hist_threshold)
        self.structure_threshold = float(structure_threshold)
        self._prev: FrameSignature | None = None

    def reset(self) -> None:
        """Forget the previous frame (the next frame is not compared to anything)."""
        self._prev = None

    def __call__(self, frame) -> CutInfo:
        """Whether ``frame`` starts a new shot (the first frame is not a cut)."""
        sig = frame_signature(frame)
        prev, self._prev = self._prev, sig
        if prev is None or prev.thumb.shape != sig.thumb.shape:
            return CutInfo(False, 0.0, 1.0)
        d = hist_distance(prev, sig)
        s = structure_correlation(prev, sig)
        return CutInfo(d > self.hist_threshold and s < self.structure_threshold, d, s)
