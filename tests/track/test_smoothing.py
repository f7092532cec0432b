"""One-Euro filters on arrays and rotations (relight_core.track.smoothing)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from relight_core.track.smoothing import OneEuroFilter, RotationFilter, rotation_exp, rotation_log

FPS = 24.0


def _angle(R):
    return math.degrees(np.linalg.norm(rotation_log(R)))


def test_reduces_jitter_on_a_still_signal():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 500, (478, 3))
    f = OneEuroFilter(min_cutoff=1.0, beta=4.0)
    raw, out = [], []
    for k in range(96):
        x = truth + rng.normal(0, 1.0, truth.shape)
        raw.append(x)
        out.append(f(x, k / FPS, scale=100.0))
    raw, out = np.array(raw[24:]), np.array(out[24:])
    jitter_raw = np.sqrt(((raw - truth) ** 2).mean())
    jitter = np.sqrt(((out - truth) ** 2).mean())
    print(f"RMS jitter {jitter_raw:.3f} -> {jitter:.3f}")
    assert jitter < jitter_raw / 2.5


def test_follows_motion_with_little_lag():
    """Fast motion raises the cutoff: a moving signal is followed, unlike a plain low-pass."""
    t = np.arange(48) / FPS
    x = 200.0 * t  # 200 px/s, 2 face sizes per second for a 100 px face
    fast = OneEuroFilter(min_cutoff=1.0, beta=4.0)
    slow = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    lag_fast = np.abs([fast(np.array([v]), tt, scale=100.0)[0] - v for v, tt in zip(x, t)])[-12:].mean()
    lag_slow = np.abs([slow(np.array([v]), tt, scale=100.0)[0] - v for v, tt in zip(x, t)])[-12:].mean()
    assert lag_fast < lag_slow / 3


def test_step_after_reset_and_without():
    f = OneEuroFilter(min_cutoff=1.0, beta=4.0)
    for k in range(10):
        f(np.zeros(4), k / FPS)
    f.reset()
    step = np.full(4, 50.0)
    np.testing.assert_array_equal(f(step, 10 / FPS), step)  # a reset filter starts at the sample
    # without a reset, the filter converges to the step within a few frames
    g = OneEuroFilter(min_cutoff=1.0, beta=4.0)
    for k in range(10):
        g(np.zeros(4), k / FPS)
    ys = [g(step, k / FPS)[0] for k in range(10, 30)]
    assert ys[0] < 50 and abs(ys[-1] - 50) < 1.0
    assert all(b >= a for a, b in zip(ys, ys[1:]))


def test_shared_speed_keeps_a_rigid_motion_rigid():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, (50, 2))
    f = OneEuroFilter(1.0, 4.0, shared_speed=True)
    for k in range(20):
        out = f(pts + [3.0 * k, -2.0 * k], k / FPS)
    shift = out - pts
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-9)


def test_time_must_increase():
    f = OneEuroFilter()
    f(np.zeros(2), 1.0)
    with pytest.raises(ValueError):
        f(np.zeros(2), 1.0)
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0.0)


def test_rotation_log_exp_roundtrip():
    rng = np.random.default_rng(2)
    for v in list(rng.normal(0, 1, (20, 3))) + [np.zeros(3), np.array([math.pi - 1e-6, 0, 0]), np.array([0, 0, 1e-8])]:
        R = rotation_exp(v)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(rotation_exp(rotation_log(R)), R, atol=1e-7)


def test_rotation_filter_reduces_jitter_and_follows_a_turn():
    rng = np.random.default_rng(3)
    base = rotation_exp([0.1, 0.4, -0.05])
    f = RotationFilter(min_cutoff=1.0, beta=2.0)
    raw_err, err = [], []
    for k in range(72):
        noisy = base @ rotation_exp(rng.normal(0, math.radians(1.5), 3))
        out = f(noisy, k / FPS)
        np.testing.assert_allclose(out @ out.T, np.eye(3), atol=1e-9)
        if k >= 24:
            raw_err.append(_angle(base.T @ noisy))
            err.append(_angle(base.T @ out))
    print(f"rotation jitter {np.mean(raw_err):.2f} -> {np.mean(err):.2f} deg")
    assert np.mean(err) < np.mean(raw_err) / 2.5
    # a 40 deg turn: followed within a few frames
    turned = base @ rotation_exp([0.0, math.radians(40), 0.0])
    outs = [f(turned, k / FPS) for k in range(72, 90)]
    assert _angle(turned.T @ outs[0]) < 40 and _angle(turned.T @ outs[-1]) < 1.0
    f.reset()
    np.testing.assert_array_equal(f(base, 100.0), base)
