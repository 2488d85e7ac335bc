"""Clock drift: a robust straight line through local offsets measured in windows along recording A.

A local offset measured around A-time c is t_B - t_A = drift * c + offset_s (module `result`), so a line
fit of local offsets against window centres gives offset_s (intercept) and drift (slope).
"""

from __future__ import annotations

import numpy as np

# Windows whose own match confidence is below this are not used for the line.
MIN_WINDOW_CONFIDENCE = 0.2
# A window is an outlier beyond this many robust standard deviations of the residuals.
OUTLIER_SIGMAS = 3.5


def fit_clock_drift(window_times_s: np.ndarray, window_offsets_s: np.ndarray,
                    window_weights: np.ndarray, *, min_windows: int = 3) -> dict | None:
    """Fit offset_s + drift * t to windowed offsets, rejecting outlier windows (iterated MAD cut).

    Args:
        window_times_s: (W,) window centres in A's time (s).
        window_offsets_s: (W,) local t_B - t_A measured there (s).
        window_weights: (W,) confidences in [0, 1]; windows below MIN_WINDOW_CONFIDENCE are ignored.
        min_windows: fewest inlier windows for a fit.

    Returns:
        None when fewer than `min_windows` usable windows, else a dict with offset_s, drift_ppm,
        drift_ppm_stderr, residual_rms_s, inlier_fraction, n_windows and the per-window arrays as lists.
    """
    times = np.asarray(window_times_s, dtype=np.float64)
    offsets = np.asarray(window_offsets_s, dtype=np.float64)
    weights = np.asarray(window_weights, dtype=np.float64)
    usable = weights >= MIN_WINDOW_CONFIDENCE
    if usable.sum() < min_windows or np.ptp(times[usable]) <= 0:
        return None
    inliers = usable.copy()
    for _ in range(10):
        slope, intercept = _weighted_line(times[inliers], offsets[inliers], weights[inliers])
        residuals = offsets - (intercept + slope * times)
        sigma = max(1.4826 * float(np.median(np.abs(residuals[inliers]))), 1e-7)
        updated = usable & (np.abs(residuals) <= OUTLIER_SIGMAS * sigma)
        if updated.sum() < min_windows or np.array_equal(updated, inliers):
            break
        inliers = updated
    slope, intercept = _weighted_line(times[inliers], offsets[inliers], weights[inliers])
    residuals = offsets - (intercept + slope * times)
    rms = float(np.sqrt(np.mean(residuals[inliers] ** 2)))
    n_in = int(inliers.sum())
    spread = float(np.sqrt(np.sum((times[inliers] - times[inliers].mean()) ** 2)))
    stderr = rms / spread * np.sqrt(n_in / max(n_in - 2, 1)) if spread > 0 else float("inf")
    return {
        "offset_s": float(intercept),
        "drift_ppm": float(slope * 1e6),
        "drift_ppm_stderr": float(stderr * 1e6),
        "residual_rms_s": rms,
        "inlier_fraction": n_in / len(times),
        "n_windows": int(len(times)),
        "window_times_s": times.tolist(),
        "window_offsets_s": offsets.tolist(),
        "window_confidences": weights.tolist(),
        "window_inliers": inliers.tolist(),
        "confidence": drift_confidence(weights, inliers),
    }


def drift_confidence(window_weights: np.ndarray, inliers: np.ndarray) -> float:
    """Median confidence of the inlier windows, lowered when fewer than 80% of all windows are inliers."""
    if not np.any(inliers):
        return 0.0
    return float(np.median(window_weights[inliers]) * min(1.0, 1.25 * np.mean(inliers)))


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares slope and intercept (x centred for conditioning)."""
    x0 = float(np.average(x, weights=w))
    xc = x - x0
    denom = float(np.sum(w * xc * xc))
    slope = float(np.sum(w * xc * (y - np.average(y, weights=w))) / denom) if denom > 0 else 0.0
    intercept = float(np.average(y, weights=w)) - slope * x0
    return slope, intercept
