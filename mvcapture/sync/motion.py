"""Motion time alignment: cross-correlation of scale-free 2D keypoint speeds with sub-frame refinement.

Each view gives per-frame 2D keypoints with timestamps (any, possibly variable, frame rate). Speeds are
taken relative to the torso centre (travel across the room looks different from every camera) and
divided by the person's torso length (so distance and zoom do not matter), each left/right pair is
followed through detector side swaps (so a swap does not create a speed spike), and each joint's
channel is compared by Pearson correlation over the overlap (so view-dependent gains do not matter).
2D speeds still depend a little on the view (a limb moving towards one camera), which can bias the
lag by a fraction of a frame; the epipolar residual (module `consistency`) removes that for still
cameras.
Offsets follow `mvcapture.sync.result`: t_B = (1 + drift) * t_A + offset_s.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from mvcapture.sync._peaks import peak_stats, quadratic_peak
from mvcapture.sync._tracks import fill_gaps, seen_within
from mvcapture.sync.drift import fit_clock_drift
from mvcapture.sync.result import SyncResult, flagged

log = logging.getLogger(__name__)

# (left, right) joint pairs and single joints whose speeds are correlated, per skeleton.
_CHANNELS = {
    "coco17": {"pairs": ((5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)), "singles": (0,),
               "torso": ((5, 6), (11, 12))},
    "h36m17": {"pairs": ((11, 14), (12, 15), (13, 16), (4, 1), (5, 2), (6, 3)), "singles": (0, 10),
               "torso": ((11, 14), (4, 1))},
}
# Keypoints below this detection confidence are treated as missing.
MIN_KEYPOINT_CONF = 0.3
# Keypoint tracks are smoothed by a Gaussian of this standard deviation (s) before speeds are taken.
SMOOTH_S = 0.04
# Lags are first searched on a grid at the faster view's frame rate, then refined with A sampled
# at FINE_GRID_FACTOR times that rate and B interpolated at any sub-frame offset.
FINE_GRID_FACTOR = 2
# Fewest overlapping seconds (and fraction of the shorter recording) for a lag to count.
MIN_OVERLAP_S = 1.0
MIN_OVERLAP_FRACTION = 0.5
# A torso joint missed for at most this long still gives the torso centre and scale (interpolated).
TORSO_GAP_S = 0.5


@dataclass(frozen=True)
class MotionSignal:
    """Per-frame-interval speed channels of one view.

    Attributes:
        times_s: (N,) midpoints of consecutive frames (s, the view's clock).
        values: (N, C) speeds in torso lengths per second, log-compressed.
        valid: (N, C) bool, both frames had the channel's keypoints.
    """

    times_s: np.ndarray
    values: np.ndarray
    valid: np.ndarray

    @property
    def fps(self) -> float:
        """Median frame rate (frames/s)."""
        return float(1.0 / np.median(np.diff(self.times_s))) if len(self.times_s) > 1 else 0.0

    def sample(self, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Linearly interpolated (len(times), C) values and validity at `times_s` (invalid outside)."""
        t = self.times_s
        pos = np.interp(times_s, t, np.arange(len(t)), left=-1.0, right=-1.0)
        inside = pos >= 0
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, len(t) - 1)
        i1 = np.clip(i0 + 1, 0, len(t) - 1)
        frac = (pos - i0)[:, None]
        values = self.values[i0] * (1 - frac) + self.values[i1] * frac
        valid = self.valid[i0] & self.valid[i1] & inside[:, None]
        return np.where(valid, values, 0.0), valid


def motion_signal(kp2d_px: np.ndarray, conf: np.ndarray, frame_times_s: np.ndarray,
                  skeleton: str = "coco17") -> MotionSignal:
    """Scale-free, side-swap-proof speed channels of one view's 2D keypoints, relative to the torso.

    Args:
        kp2d_px: (T, 17, 2) keypoints in pixels.
        conf: (T, 17) detection confidences in [0, 1].
        frame_times_s: (T,) strictly increasing frame times (s).
        skeleton: joint order of the keypoints, "coco17" (detector output) or "h36m17".

    Returns:
        `MotionSignal` with one channel per joint of the left/right pairs (shoulders, elbows, wrists,
        hips, knees, ankles; each pair followed through side swaps: it is swapped wherever that moves
        it less) and per single joint (nose; h36m17: pelvis and head), of positions relative to the
        torso centre (mid shoulders + hips) smoothed over SMOOTH_S, divided by the median torso length
        and compressed as log(1 + v / median v).
    """
    kp2d = np.asarray(kp2d_px, dtype=np.float64)
    conf = np.asarray(conf, dtype=np.float64)
    times = np.asarray(frame_times_s, dtype=np.float64)
    if skeleton not in _CHANNELS:
        raise ValueError(f"skeleton must be one of {sorted(_CHANNELS)}, got {skeleton!r}")
    if kp2d.ndim != 3 or kp2d.shape[1:] != (17, 2):
        raise ValueError(f"kp2d_px must have shape (T, 17, 2), got {kp2d.shape}")
    if conf.shape != kp2d.shape[:2] or times.shape != kp2d.shape[:1]:
        raise ValueError(f"conf must be (T, 17) and frame_times_s (T,) for T={len(kp2d)}, "
                         f"got {conf.shape} and {times.shape}")
    if len(times) < 3 or np.any(np.diff(times) <= 0):
        raise ValueError("frame_times_s must hold at least 3 strictly increasing times")
    spec = _CHANNELS[skeleton]
    seen = conf >= MIN_KEYPOINT_CONF
    kp2d = fill_gaps(kp2d, seen)
    dt = np.diff(times)[:, None]
    # A torso joint missed for a moment (occluded by an arm, say) is bridged by the gap filling above: the
    # torso counts as seen where each of its joints was seen within TORSO_GAP_S.
    seen_torso = seen.copy()
    for j in (*spec["torso"][0], *spec["torso"][1]):
        seen_torso[:, j] = seen_within(times, seen[:, j], TORSO_GAP_S)

    def mid(pair):
        return 0.5 * (kp2d[:, pair[0]] + kp2d[:, pair[1]]), seen_torso[:, pair[0]] & seen_torso[:, pair[1]]

    (shoulders, ok_s), (hips, ok_h) = mid(spec["torso"][0]), mid(spec["torso"][1])
    torso = np.linalg.norm(shoulders - hips, axis=-1)
    torso_ok = ok_s & ok_h & (torso > 0)
    if not torso_ok.any():
        raise ValueError("the athlete's shoulders and hips are never detected: cannot align by motion")
    scale = float(np.median(torso[torso_ok]))
    # Limb motion relative to the torso centre: whole-body travel looks different from every camera.
    kp2d = kp2d - 0.5 * (shoulders + hips)[:, None, :]
    seen = seen & torso_ok[:, None]
    joints = []
    for left, right in spec["pairs"]:
        # Follow each limb through detector side swaps: swap a pair wherever that moves it less, and
        # keep the swap for the following frames (parity = running count of swaps, mod 2).
        l0, l1, r0, r1 = kp2d[:-1, left], kp2d[1:, left], kp2d[:-1, right], kp2d[1:, right]
        kept = np.linalg.norm(l1 - l0, axis=-1) + np.linalg.norm(r1 - r0, axis=-1)
        swapped = np.linalg.norm(l1 - r0, axis=-1) + np.linalg.norm(r1 - l0, axis=-1)
        parity = np.concatenate([[0], np.cumsum(swapped < kept) % 2]).astype(bool)
        kp2d[parity, left], kp2d[parity, right] = kp2d[parity, right], kp2d[parity, left]
        seen[parity, left], seen[parity, right] = seen[parity, right], seen[parity, left]
        joints += [left, right]
    joints += list(spec["singles"])
    if SMOOTH_S > 0:
        # Same smoothing time on both views (keeps the lag unbiased), against detector jitter.
        sigma = SMOOTH_S / float(np.median(np.diff(times)))
        kp2d = ndimage.gaussian_filter1d(kp2d, sigma, axis=0, mode="nearest")
    channels = np.linalg.norm(kp2d[1:, joints] - kp2d[:-1, joints], axis=-1)
    valid = seen[1:, joints] & seen[:-1, joints]
    speed = channels / dt / scale
    for c in range(speed.shape[1]):
        typical = np.median(speed[valid[:, c], c]) if valid[:, c].any() else 0.0
        speed[:, c] = np.log1p(speed[:, c] / typical) if typical > 0 else 0.0
    return MotionSignal(times_s=0.5 * (times[1:] + times[:-1]), values=speed, valid=valid)


def correlation_at(sig_a: MotionSignal, sig_b: MotionSignal, offsets_s: np.ndarray, drift: float = 0.0,
                   *, grid_hz: float | None = None, window_s: tuple[float, float] | None = None,
                   min_overlap_s: float = MIN_OVERLAP_S) -> np.ndarray:
    """Mean per-channel Pearson correlation of A(t) with B((1 + drift) t + offset) for each offset.

    A is sampled on a grid of `grid_hz` (default FINE_GRID_FACTOR x the faster frame rate) over `window_s`
    (A's clock; default all of A); lags with less than `min_overlap_s` of valid overlap get NaN.
    """
    grid_hz = grid_hz or FINE_GRID_FACTOR * max(sig_a.fps, sig_b.fps)
    lo, hi = window_s if window_s is not None else (sig_a.times_s[0], sig_a.times_s[-1])
    grid = np.arange(lo, hi, 1.0 / grid_hz)
    xa, va = sig_a.sample(grid)
    out = np.full(len(offsets_s), np.nan)
    for i, offset in enumerate(np.asarray(offsets_s, dtype=np.float64)):
        xb, vb = sig_b.sample((1.0 + drift) * grid + offset)
        both = va & vb
        count = both.sum(axis=0)
        if count.sum() < min_overlap_s * grid_hz * xa.shape[1]:
            continue
        out[i] = _pearson_channels(xa, xb, both, count)
    return out


def _pearson_channels(xa: np.ndarray, xb: np.ndarray, mask: np.ndarray, count: np.ndarray) -> float:
    """Count-weighted mean over channels of the Pearson correlation over masked samples."""
    n = np.maximum(count, 1)
    xa_m = xa * mask
    xb_m = xb * mask
    sa, sb = xa_m.sum(0), xb_m.sum(0)
    cov = (xa_m * xb).sum(0) - sa * sb / n
    var = ((xa_m * xa).sum(0) - sa * sa / n) * ((xb_m * xb).sum(0) - sb * sb / n)
    ok = (count > 2) & (var > 1e-12)
    if not ok.any():
        return float("nan")
    return float(np.sum(count[ok] * cov[ok] / np.sqrt(var[ok])) / np.sum(count[ok]))


def _masked_ncc(sig_a: MotionSignal, sig_b: MotionSignal, grid_hz: float, min_overlap: int,
                span_a_s: tuple[float, float] | None = None, span_b_s: tuple[float, float] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Correlation for every lag on the grid at once (masked normalised cross-correlation via FFT).

    Only A's times within `span_a_s` and B's within `span_b_s` are used (default: all).
    Returns (offsets_s, curve) with NaN where the recordings overlap for fewer than `min_overlap` samples,
    or share too few valid samples (see below).
    """
    step = 1.0 / grid_hz

    def grid(sig, span):
        lo, hi = sig.times_s[0], sig.times_s[-1]
        if span is not None:
            lo, hi = max(lo, span[0]), min(hi, span[1])
        return np.arange(math.ceil(lo / step), math.floor(hi / step) + 1) * step

    ga, gb = grid(sig_a, span_a_s), grid(sig_b, span_b_s)
    if len(ga) < 3 or len(gb) < 3:
        return np.zeros(1), np.full(1, np.nan)
    xa, ma = sig_a.sample(ga)
    xb, mb = sig_b.sample(gb)
    ma, mb = ma.astype(np.float64), mb.astype(np.float64)
    nfft = sfft.next_fast_len(len(ga) + len(gb) - 1, real=True)

    spec_a = [np.conj(sfft.rfft(u, nfft, axis=0)) for u in (ma, xa * ma, xa * xa * ma)]
    spec_b = [sfft.rfft(v, nfft, axis=0) for v in (mb, xb * mb, xb * xb * mb)]

    def xcorr(i, j):  # sum_n u_i[n] v_j[n + k], k = -(len(ga)-1) .. len(gb)-1, per channel
        r = sfft.irfft(spec_a[i] * spec_b[j], nfft, axis=0)
        return np.concatenate([r[nfft - (len(ga) - 1):], r[:len(gb)]], axis=0)

    n = xcorr(0, 0)
    sa, sb = xcorr(1, 0), xcorr(0, 1)
    saa, sbb = xcorr(2, 0), xcorr(0, 2)
    sab = xcorr(1, 1)
    n_safe = np.maximum(np.round(n), 1.0)
    cov = sab - sa * sb / n_safe
    var = (saa - sa * sa / n_safe) * (sbb - sb * sb / n_safe)
    ok = (n > 2.5) & (var > 1e-12)
    corr = np.where(ok, cov / np.sqrt(np.where(ok, var, 1.0)), 0.0)
    weight = np.where(ok, n, 0.0)
    total = weight.sum(axis=1)
    lags = np.arange(-(len(ga) - 1), len(gb))
    # Two conditions per lag: the recordings overlap in time for `min_overlap` samples (missed detections
    # do not shorten that: they only thin the samples), and the channels that carry motion in both views
    # share at least MIN_OVERLAP_S of valid samples each on average.
    overlap = np.clip(np.minimum(len(ga), len(gb) - lags) - np.maximum(0, -lags), 0, None)
    live = int(((ma.sum(axis=0) > 0) & (mb.sum(axis=0) > 0)).sum())
    enough = (overlap >= min_overlap) & (total >= MIN_OVERLAP_S * grid_hz * max(live, 1))
    curve = np.where(enough, (corr * weight).sum(axis=1) / np.maximum(total, 1), np.nan)
    offsets = gb[0] - ga[0] + lags * step
    return offsets, curve


def _refine(sig_a: MotionSignal, sig_b: MotionSignal, offset_s: float, drift: float,
            window_s: tuple[float, float] | None = None) -> tuple[float, float]:
    """Sub-frame offset near `offset_s`: correlations at 21 offsets within one frame (of the slower
    view) either side, on the frames of A inside B for all of them, and a quadratic through the
    samples within a quarter frame of the best. Returns (offset_s, correlation), NaN if no overlap."""
    frame_s = 1.0 / min(sig_a.fps, sig_b.fps)
    fine = offset_s + np.linspace(-frame_s, frame_s, 21)
    lo, hi = window_s if window_s is not None else (sig_a.times_s[0], sig_a.times_s[-1])
    # A's times whose images in B exist for every candidate.
    lo = max(lo, (sig_b.times_s[0] - fine.min()) / (1.0 + drift))
    hi = min(hi, (sig_b.times_s[-1] - fine.max()) / (1.0 + drift))
    if hi - lo < MIN_OVERLAP_S:
        return offset_s, float("nan")
    values = correlation_at(sig_a, sig_b, fine, drift, window_s=(lo, hi))
    if not np.any(np.isfinite(values)):
        return offset_s, float("nan")
    j = int(np.nanargmax(values))
    return quadratic_peak(fine, values, j, 0.25 * frame_s), float(values[j])


def _strength(peak: float) -> float:
    """Confidence from a peak correlation: 0 at or below 0.15, 1 from 0.5 up."""
    return float(np.clip((peak - 0.15) / 0.35, 0.0, 1.0))


def _motion_confidence(curve: np.ndarray, index: int, peak: float) -> tuple[float, dict]:
    finite = np.where(np.isfinite(curve), curve, np.nanmin(curve))
    stats = peak_stats(finite, index)
    strength = _strength(peak)
    unique = float(np.clip((1.0 - stats["rival"]) / 0.5, 0.0, 1.0)) if math.isfinite(stats["rival"]) else 1.0
    stats.update(peak_correlation=peak, strength=strength, uniqueness=unique)
    return min(strength, unique), stats


def estimate_motion_offset(kp2d_a: np.ndarray, conf_a: np.ndarray, times_a_s: np.ndarray,
                           kp2d_b: np.ndarray, conf_b: np.ndarray, times_b_s: np.ndarray, *,
                           max_lag_s: float | None = None, skeleton: str = "coco17") -> SyncResult:
    """Offset of view B against view A from their 2D keypoint motion.

    Args:
        kp2d_a, kp2d_b: (T, 17, 2) keypoints (px) of the same athlete in each view (T may differ).
        conf_a, conf_b: (T, 17) keypoint confidences.
        times_a_s, times_b_s: (T,) frame times (s) on each recording's clock; any frame rates.
        max_lag_s: largest |offset_s| considered (None: any with enough overlap).
        skeleton: joint order, "coco17" or "h36m17".

    Returns:
        `SyncResult` with method "motion", drift 0. The lag is found on a grid at the faster frame
        rate, then refined within one frame by a quadratic through correlations evaluated on a fixed
        stretch of A. Confidence from the peak correlation and the height of the best rival peak.
    """
    sig_a = motion_signal(kp2d_a, conf_a, times_a_s, skeleton)
    sig_b = motion_signal(kp2d_b, conf_b, times_b_s, skeleton)
    return _offset(sig_a, sig_b, max_lag_s)


def _offset(sig_a: MotionSignal, sig_b: MotionSignal, max_lag_s: float | None, *, fine: bool = True) -> SyncResult:
    """All lags on a grid at the faster frame rate (confidence from that curve), then, with `fine`,
    the sub-frame refinement of `_refine`."""
    grid_hz = max(sig_a.fps, sig_b.fps)
    shorter = min(np.ptp(sig_a.times_s), np.ptp(sig_b.times_s))
    min_overlap = int(max(MIN_OVERLAP_S, MIN_OVERLAP_FRACTION * shorter) * grid_hz)
    offsets, curve = _masked_ncc(sig_a, sig_b, grid_hz, min_overlap)
    if max_lag_s is not None:
        curve = np.where(np.abs(offsets) <= max_lag_s, curve, np.nan)
    if not np.any(np.isfinite(curve)):
        return flagged(0.0, 0.0, "motion", reason="the two recordings do not overlap enough in time "
                       "(or the athlete is not detected) to align them by motion")
    index = int(np.nanargmax(curve))
    best, peak = _refine(sig_a, sig_b, float(offsets[index]), 0.0) if fine else (0.0, float("nan"))
    if not math.isfinite(peak):
        best, peak = float(offsets[index]), float(curve[index])
    confidence, stats = _motion_confidence(curve, index, peak)
    details = {"fps_a": sig_a.fps, "fps_b": sig_b.fps, **stats}
    log.debug("motion offset %.4f s (confidence %.2f)", best, confidence)
    return flagged(best, confidence, "motion", details=details)


def estimate_motion_drift(kp2d_a: np.ndarray, conf_a: np.ndarray, times_a_s: np.ndarray,
                          kp2d_b: np.ndarray, conf_b: np.ndarray, times_b_s: np.ndarray, *,
                          window_s: float = 30.0, max_drift_ppm: float = 1500.0,
                          max_lag_s: float | None = None, skeleton: str = "coco17") -> SyncResult:
    """Offset and clock drift of view B against A from windowed motion offsets and a robust line fit.

    The global offset (as `estimate_motion_offset`) says where to look; each window of `window_s` of
    A is searched in B within the spread `max_drift_ppm` allows over the recording, a first line is
    fitted, then every window is refined within one frame with B read along that line (so drift does
    not smear the windows) and the line is fitted again (`fit_clock_drift`, outliers rejected).
    29.97 vs 30 fps nominal timestamps are a drift of about -1000 ppm.

    Returns:
        `SyncResult` with method "motion+drift", offset_s at t_A = 0 and drift_ppm; confidence from
        the windows; details hold the window times, local offsets and the drift's standard error.
    """
    sig_a = motion_signal(kp2d_a, conf_a, times_a_s, skeleton)
    sig_b = motion_signal(kp2d_b, conf_b, times_b_s, skeleton)
    coarse = _offset(sig_a, sig_b, max_lag_s, fine=False)
    grid_hz = max(sig_a.fps, sig_b.fps)
    t0, t1 = sig_a.times_s[0], sig_a.times_s[-1]
    n_windows = int((t1 - t0) // window_s)
    if n_windows < 3:
        return flagged(coarse.offset_s, 0.0, "motion+drift", details={"coarse": coarse.to_dict()},
                       reason=f"recording A is too short ({t1 - t0:.0f} s) to estimate clock drift")
    starts = t0 + window_s * np.arange(n_windows)
    margin_s = max_drift_ppm * 1e-6 * (t1 - t0) + 2.0 / min(sig_a.fps, sig_b.fps)
    min_overlap = int(0.5 * window_s * grid_hz)
    centres, local, weights = [], [], []
    for start in starts:
        span_a = (start, start + window_s)
        span_b = (start + coarse.offset_s - margin_s, start + window_s + coarse.offset_s + margin_s)
        offsets, curve = _masked_ncc(sig_a, sig_b, grid_hz, min_overlap, span_a, span_b)
        curve = np.where(np.abs(offsets - coarse.offset_s) <= margin_s, curve, np.nan)
        if not np.any(np.isfinite(curve)):
            continue
        index = int(np.nanargmax(curve))
        confidence, _ = _motion_confidence(curve, index, float(curve[index]))
        centres.append(start + 0.5 * window_s)
        local.append(float(offsets[index]))
        weights.append(confidence)
    first = fit_clock_drift(np.asarray(centres), np.asarray(local), np.asarray(weights))
    if first is None:
        return flagged(coarse.offset_s, 0.0, "motion+drift", details={"coarse": coarse.to_dict()},
                       reason="too few stretches of motion matched to estimate clock drift")
    drift = first["drift_ppm"] * 1e-6
    centres, local, weights = [], [], []
    for start in starts:
        centre = start + 0.5 * window_s
        offset, peak = _refine(sig_a, sig_b, first["offset_s"], drift, (start, start + window_s))
        if not math.isfinite(peak):
            continue
        centres.append(centre)
        # B read at (1 + drift) t + offset: the local t_B - t_A at the window centre.
        local.append(offset + drift * centre)
        weights.append(_strength(peak))
    fit = fit_clock_drift(np.asarray(centres), np.asarray(local), np.asarray(weights)) or first
    details = {"window_s": window_s, "coarse": coarse.to_dict(), **fit}
    return flagged(fit["offset_s"], fit["confidence"], "motion+drift", drift_ppm=fit["drift_ppm"], details=details)
