"""Keypoint tracks with missed detections: where a joint was seen, and its positions bridged over the gaps."""

from __future__ import annotations

import numpy as np


def seen_within(times_s: np.ndarray, seen: np.ndarray, gap_s: float) -> np.ndarray:
    """(T,) True where some frame within `gap_s` seconds of it (before or after, itself included) is `seen`."""
    seen_t = times_s[seen]
    if seen_t.size == 0:
        return np.zeros(len(times_s), bool)
    after = np.clip(np.searchsorted(seen_t, times_s), 0, len(seen_t) - 1)
    before = np.clip(after - 1, 0, len(seen_t) - 1)
    nearest = np.minimum(np.abs(seen_t[after] - times_s), np.abs(times_s - seen_t[before]))
    return nearest <= gap_s


def fill_gaps(kp2d: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(T, J, D) positions with each joint's unseen frames (`seen` (T, J) False) interpolated over time
    from the frames that see it (held at the ends). A detector's placeholder for a missed joint (often 0, 0) must not reach the
    smoothing, which would smear it into the seen frames next to it, nor the side-swap test, whose flipped
    parity would then swap that pair for the rest of the recording. Those frames stay invalid."""
    out = kp2d.copy()
    frames = np.arange(len(kp2d))
    for j in range(kp2d.shape[1]):
        ok = seen[:, j]
        if ok.any() and not ok.all():
            for d in range(kp2d.shape[2]):
                out[~ok, j, d] = np.interp(frames[~ok], frames[ok], kp2d[ok, j, d])
    return out
