"""One-Euro smoothing: less jitter on a noisy moving joint, little lag, missing joints left alone."""

from __future__ import annotations

import numpy as np

from mvcapture.detect import OneEuroFilter, smooth_keypoints


def noisy_sine(T=300, fps=30.0, still_s=3.0, seed=0):
    """Joints at rest for `still_s` seconds, then swinging (0.5 Hz, 80 px), with 3 px noise."""
    t = np.arange(T) / fps
    phase = 2 * np.pi * 0.5 * np.clip(t - still_s, 0, None)
    truth = np.zeros((T, 17, 2))
    truth[..., 0] = 300 + 80 * np.sin(phase)[:, None] + np.arange(17) * 10
    truth[..., 1] = 200 + 40 * (1 - np.cos(phase))[:, None]
    noisy = truth + np.random.default_rng(seed).normal(0, 3.0, truth.shape)
    return t, truth, noisy


def lag_frames(signal, truth):
    errors = [np.mean((signal[s:] - truth[:len(truth) - s]) ** 2) for s in range(6)]
    return int(np.argmin(errors))


def test_smoothing_reduces_jitter_and_lags_little():
    t, truth, noisy = noisy_sine()
    smooth = smooth_keypoints(noisy, np.ones((len(t), 17)), t)
    assert smooth.shape == noisy.shape
    rest, moving = slice(15, 90), slice(100, None)
    rms = lambda x, part: np.sqrt(np.mean((x[part] - truth[part]) ** 2))  # noqa: E731
    assert rms(smooth, rest) < 0.5 * rms(noisy, rest)            # at rest: half the noise gone
    jitter = lambda x: np.std(np.diff(x[moving], n=2, axis=0))   # noqa: E731
    assert jitter(smooth) < 0.6 * jitter(noisy)                  # moving: still much smoother
    assert lag_frames(smooth[moving, :, 0], truth[moving, :, 0]) <= 1
    assert rms(smooth, moving) < 1.5 * rms(noisy, moving)        # ...and hardly behind


def test_missing_joints_are_skipped_and_returned_unchanged():
    t, truth, noisy = noisy_sine(T=60)
    conf = np.ones((60, 17))
    conf[20:25, 3] = 0
    noisy[20:25, 3] = 0.0                                 # what a missing joint looks like
    smooth = smooth_keypoints(noisy, conf, t)
    np.testing.assert_array_equal(smooth[20:25, 3], 0.0)
    assert np.abs(smooth[25:, 3] - truth[25:, 3]).max() < 15   # picks up where it left, no jump from 0


def test_a_still_point_converges_and_first_sample_passes_through():
    f = OneEuroFilter()
    x = np.full((17, 2), 5.0)
    np.testing.assert_array_equal(f(x, 0.0), x)
    for i in range(1, 30):
        out = f(x, i / 30)
    np.testing.assert_allclose(out, x)
    assert smooth_keypoints(np.zeros((0, 17, 2)), np.zeros((0, 17)), np.zeros(0)).shape == (0, 17, 2)
