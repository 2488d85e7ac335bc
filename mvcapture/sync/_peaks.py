"""Peak picking on correlation curves: sub-sample refinement and sharpness measures for confidences."""

from __future__ import annotations

import numpy as np


def parabolic_peak(curve: np.ndarray, index: int) -> tuple[float, float]:
    """Refine the extremum at `index` of a sampled curve with a parabola through its two neighbours.

    Returns (fractional index, interpolated value); the integer index when at an edge or flat.
    """
    if index <= 0 or index >= len(curve) - 1:
        return float(index), float(curve[index])
    y0, y1, y2 = (float(v) for v in curve[index - 1:index + 2])
    denom = y0 - 2.0 * y1 + y2
    if denom == 0.0:
        return float(index), y1
    delta = 0.5 * (y0 - y2) / denom
    delta = float(np.clip(delta, -0.5, 0.5))
    return index + delta, y1 - 0.25 * (y0 - y2) * delta


def quadratic_peak(x: np.ndarray, y: np.ndarray, index: int, halfwidth: float) -> float:
    """x of the extremum of a quadratic fitted to the samples within `halfwidth` of x[index].

    Falls back to x[index] when fewer than 3 finite samples are near, the fit has the wrong curvature
    for the extremum at `index`, or the vertex leaves the fitted span.
    """
    near = np.flatnonzero((np.abs(x - x[index]) <= halfwidth) & np.isfinite(y))
    if near.size < 3:
        return float(x[index])
    dx = x[near] - x[index]
    a, b, _ = np.polyfit(dx, y[near], 2)
    is_max = y[index] >= np.nanmax(y[near])
    if a == 0 or (a < 0) != is_max:
        return float(x[index])
    return float(x[index] + np.clip(-b / (2 * a), dx.min(), dx.max()))


def main_lobe(curve: np.ndarray, index: int) -> tuple[int, int]:
    """Half-open index range [lo, hi) of the lobe around the peak at `index`.

    Each side runs down to half height (between the peak and the curve's median), then on to the next
    valley (the first sample after which the curve rises again).
    """
    level = 0.5 * (curve[index] + np.median(curve))
    lo = index
    while lo > 0 and (curve[lo - 1] > level or curve[lo - 1] < curve[lo]):
        lo -= 1
    hi = index + 1
    while hi < len(curve) and (curve[hi] > level or curve[hi] < curve[hi - 1]):
        hi += 1
    return lo, hi


def peak_stats(curve: np.ndarray, index: int, guard: int = 0) -> dict[str, float]:
    """Sharpness of the peak at `index`: peak-to-sidelobe ratio and height of the best rival peak.

    The main lobe (see `main_lobe`), widened by `guard` samples each side, is excluded from the sidelobes.

    Returns:
        psr: (peak - mean(sidelobes)) / std(sidelobes).
        rival: (best sidelobe - median) / (peak - median), in (-inf, 1]; near 1 means an ambiguous peak.
        n: number of sidelobe samples.
    """
    lo, hi = main_lobe(curve, index)
    lo, hi = max(0, lo - guard), min(len(curve), hi + guard)
    side = np.concatenate([curve[:lo], curve[hi:]])
    peak = float(curve[index])
    if side.size < 3:
        return {"psr": float("nan"), "rival": float("nan"), "n": int(side.size)}
    median = float(np.median(curve))
    std = float(side.std())
    psr = (peak - float(side.mean())) / std if std > 0 else float("inf")
    height = peak - median
    rival = (float(side.max()) - median) / height if height > 0 else 1.0
    return {"psr": psr, "rival": rival, "n": int(side.size)}
