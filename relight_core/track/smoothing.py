"""One-Euro filtering of landmarks, translations and rotations (Casiez et al., CHI 2012).

The One-Euro filter is an exponential smoother whose cutoff frequency rises with the signal's
speed: ``fc = min_cutoff + beta * |dx/dt|``, ``alpha = 1 / (1 + 1 / (2 pi fc dt))``. Slow motion
(jitter) is smoothed strongly, fast motion follows with little lag. This is the maintainer's
advice for video (PAPER_MODEL.md 1.4: smooth the keypoints, less for large head motion).

* :class:`OneEuroFilter` works on arrays of any shape. With ``shared_speed=True`` (the default for
  landmark sets) the speed is the RMS over the whole array, so every point gets the same cutoff
  and a rigid motion stays rigid. ``scale`` makes the speed dimensionless (e.g. divide pixel
  speeds by the face size) so one ``beta`` suits faces of every size.
* :class:`RotationFilter` smooths 3x3 rotations on the rotation group: each step moves the
  filtered rotation toward the new one along the geodesic, ``R <- R exp(alpha log(R^T R_new))``,
  with the speed measured as an angular velocity (rad/s).

Both are reset with :meth:`reset` (at shot cuts) and restart from the next sample unsmoothed.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuroFilter", "RotationFilter", "rotation_log", "rotation_exp"]


def _alpha(cutoff, dt: float):
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def _check_params(min_cutoff: float, beta: float, d_cutoff: float) -> None:
    if not (min_cutoff > 0 and d_cutoff > 0 and beta >= 0):
        raise ValueError(
            f"expected min_cutoff > 0, d_cutoff > 0 and beta >= 0, got {min_cutoff}, {d_cutoff}, {beta}"
        )


class OneEuroFilter:
    """One-Euro filter over arrays.

    Args:
        min_cutoff: cutoff frequency (Hz) at zero speed; lower = smoother.
        beta: speed coefficient (Hz per unit of speed); higher = less lag when moving.
        d_cutoff: cutoff frequency (Hz) of the speed estimate.
        shared_speed: one speed (RMS over the array) for all elements, instead of one per element.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0, *, shared_speed: bool = True):
        _check_params(min_cutoff, beta, d_cutoff)
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.shared_speed = bool(shared_speed)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample is returned as is."""
        self._x = None
        self._dx = None
        self._t = None

    @property
    def value(self):
        """The last filtered value (None before the first sample)."""
        return None if self._x is None else self._x.copy()

    def __call__(self, x, t: float, scale: float = 1.0) -> np.ndarray:
        """Filter sample ``x`` taken at time ``t`` (seconds, increasing); returns the filtered array.

        ``scale`` divides the speed before it enters the cutoff (e.g. the face size in pixels).
        """
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or x.shape != self._x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        if not dt > 0:
            raise ValueError(f"t: expected increasing times, got {t} after {self._t}")
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        speed = np.sqrt(np.mean(self._dx**2)) if self.shared_speed else np.abs(self._dx)
        cutoff = self.min_cutoff + self.beta * speed / float(scale)
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._t = float(t)
        return self._x.copy()


def rotation_log(R) -> np.ndarray:
    """Rotation vector (axis * angle) of a 3x3 rotation matrix, stable near 0 and pi."""
    R = np.asarray(R, dtype=np.float64)
    c = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    angle = math.acos(c)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if angle < 1e-6:
        return 0.5 * w
    if angle > math.pi - 1e-4:
        # axis from the symmetric part: R + I = 2 a a^T near pi
        B = (R + np.eye(3)) / 2.0
        k = int(np.argmax(np.diag(B)))
        a = B[:, k] / math.sqrt(max(B[k, k], 1e-12))
        if w @ a < 0:
            a = -a
        return angle * a / np.linalg.norm(a)
    return angle / (2.0 * math.sin(angle)) * w


def rotation_exp(v) -> np.ndarray:
    """3x3 rotation of a rotation vector (Rodrigues' formula)."""
    v = np.asarray(v, dtype=np.float64)
    angle = float(np.linalg.norm(v))
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    if angle < 1e-9:
        return np.eye(3) + K
    K /= angle
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * (K @ K)


class RotationFilter:
    """One-Euro filter on 3x3 rotations (geodesic steps; speed = angular velocity in rad/s)."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        _check_params(min_cutoff, beta, d_cutoff)
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the past."""
        self._R = None
        self._w = None
        self._t = None

    @property
    def value(self):
        """The last filtered rotation (None before the first sample)."""
        return None if self._R is None else self._R.copy()

    def __call__(self, R, t: float) -> np.ndarray:
        """Filter rotation ``R`` taken at time ``t`` (seconds); returns the filtered rotation."""
        R = np.asarray(R, dtype=np.float64)
        if R.shape != (3, 3):
            raise ValueError(f"R: expected a 3x3 rotation, got shape {list(R.shape)}")
        if self._R is None:
            self._R, self._w, self._t = R.copy(), np.zeros(3), float(t)
            return R.copy()
        dt = float(t) - self._t
        if not dt > 0:
            raise ValueError(f"t: expected increasing times, got {t} after {self._t}")
        step = rotation_log(self._R.T @ R)  # body-frame rotation from the filtered to the new sample
        w = step / dt
        self._w = self._w + _alpha(self.d_cutoff, dt) * (w - self._w)
        cutoff = self.min_cutoff + self.beta * float(np.linalg.norm(self._w))
        self._R = self._R @ rotation_exp(_alpha(cutoff, dt) * step)
        # re-orthonormalize against drift
        u, _, vt = np.linalg.svd(self._R)
        self._R = u @ vt
        self._t = float(t)
        return self._R.copy()
