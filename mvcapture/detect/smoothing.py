"""Optional temporal smoothing of 2D keypoints: the One-Euro filter, vectorised over joints.

Slow joints are smoothed hard (less jitter), fast ones lightly (little lag). Off by default: the lifter
sees many frames at once and smooths on its own.
"""

from __future__ import annotations

import numpy as np


def _alpha(cutoff_hz: np.ndarray, dt_s: np.ndarray) -> np.ndarray:
    tau = 1.0 / (2.0 * np.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """One-Euro filter over arrays (..., J, D): each joint gets its own cutoff from its speed.

    Args:
        min_cutoff_hz: cutoff at rest (lower = smoother, more lag for slow motion).
        beta: cutoff increase per unit of speed (units/s); higher = less lag when moving fast.
        d_cutoff_hz: cutoff of the speed estimate.
    """

    def __init__(self, min_cutoff_hz: float = 1.0, beta: float = 0.02, d_cutoff_hz: float = 1.0):
        self.min_cutoff_hz = min_cutoff_hz
        self.beta = beta
        self.d_cutoff_hz = d_cutoff_hz
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: np.ndarray | None = None

    def __call__(self, x: np.ndarray, t_s: float, valid: np.ndarray | None = None) -> np.ndarray:
        """Filter one sample `x` (..., J, D) taken at time `t_s` seconds.

        `valid` (..., J) marks joints seen in this sample; the others keep their state and come back
        unfiltered (their value is meaningless anyway).
        """
        x = np.asarray(x, dtype=np.float64)
        valid = np.ones(x.shape[:-1], bool) if valid is None else np.asarray(valid, bool)
        if self._x is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            self._t = np.full(x.shape[:-1], np.nan)
        fresh = valid & np.isnan(self._t)
        self._x[fresh] = x[fresh]
        self._dx[fresh] = 0.0
        dt = np.where(np.isnan(self._t), 1.0, t_s - np.nan_to_num(self._t))[..., None]
        dt = np.maximum(dt, 1e-6)
        dx = (x - self._x) / dt
        dx_hat = self._dx + _alpha(np.float64(self.d_cutoff_hz), dt) * (dx - self._dx)
        cutoff = self.min_cutoff_hz + self.beta * np.linalg.norm(dx_hat, axis=-1, keepdims=True)
        x_hat = self._x + _alpha(cutoff, dt) * (x - self._x)
        update = (valid & ~fresh)[..., None]
        self._x = np.where(update, x_hat, self._x)
        self._dx = np.where(update, dx_hat, self._dx)
        self._t = np.where(valid, t_s, self._t)
        return np.where(update, x_hat, x)


def smooth_keypoints(kp2d_px: np.ndarray, conf: np.ndarray, times_s: np.ndarray, min_cutoff_hz: float = 1.0,
                     beta: float = 0.02, d_cutoff_hz: float = 1.0) -> np.ndarray:
    """One-Euro smoothing of a keypoint sequence.

    Args:
        kp2d_px: (T, J, 2) pixels. conf: (T, J); joints with conf 0 are skipped (and stay as they are).
        times_s: (T,) frame times in seconds.

    Returns:
        (T, J, 2) smoothed pixels.
    """
    f = OneEuroFilter(min_cutoff_hz, beta, d_cutoff_hz)
    return np.stack([f(kp2d_px[t], float(times_s[t]), conf[t] > 0) for t in range(len(kp2d_px))]) \
        if len(kp2d_px) else np.asarray(kp2d_px, dtype=np.float64)
