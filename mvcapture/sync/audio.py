"""Audio time alignment: GCC-PHAT cross-correlation with sub-sample refinement, and clock drift.

Both recordings are mixed to mono and resampled to one analysis rate; offsets follow the convention of
`mvcapture.sync.result` (t_B = (1 + drift) * t_A + offset_s). Microphones at different places hear a
sound at different times (about 1 ms per 34 cm): that is a physical limit of audio alignment.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction

import numpy as np
from scipy import fft as sfft
from scipy import signal

from mvcapture.sync._peaks import parabolic_peak, peak_stats
from mvcapture.sync.drift import fit_clock_drift
from mvcapture.sync.result import SyncResult, flagged

log = logging.getLogger(__name__)

# Analysis rate: 8 kHz resolves 0.125 ms before sub-sample refinement and keeps 10-minute files fast.
ANALYSIS_RATE_HZ = 8000.0
# All lags are first searched at this rate (0.5 ms steps), then refined near the peak at the analysis rate.
COARSE_RATE_HZ = 2000.0
# Windows searched over the whole drift range before the line is refined with every window.
FIRST_PASS_WINDOWS = 24
# Frequencies below this carry room rumble and mains hum rather than timing information.
LOW_CUT_HZ = 40.0


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(N,) or (N, channels) samples -> (N,) float32 mono without DC."""
    audio = np.asarray(audio)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if audio.ndim != 1:
        raise ValueError(f"audio must have shape (N,) or (N, channels), got {audio.shape}")
    audio = audio.astype(np.float32, copy=False)
    return audio - audio.mean(dtype=np.float64).astype(np.float32) if audio.size else audio


def resample_audio(audio: np.ndarray, rate_hz: float, target_hz: float) -> np.ndarray:
    """Resample mono audio from `rate_hz` to `target_hz` (polyphase, anti-aliased).

    The ratio is exact for usual rates (up to a denominator of 10000, e.g. 8000/44056 = 1000/5507):
    an approximate ratio would act like a clock drift.
    """
    if rate_hz <= 0 or target_hz <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_hz} and {target_hz}")
    ratio = (Fraction(float(target_hz)) / Fraction(float(rate_hz))).limit_denominator(10000)
    if ratio == 1:
        return audio
    return signal.resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32, copy=False)


def analysis_rate(rate_a_hz: float, rate_b_hz: float) -> float:
    """The rate both recordings are compared at: the lower of their rates, at most `ANALYSIS_RATE_HZ`."""
    return float(min(rate_a_hz, rate_b_hz, ANALYSIS_RATE_HZ))


def gcc_phat(a: np.ndarray, b: np.ndarray, rate_hz: float, min_lag: int, max_lag: int) -> np.ndarray:
    """GCC-PHAT of two mono signals at one rate, for integer lags min_lag..max_lag (samples).

    Value at lag k correlates a[n] with b[n + k]: if B repeats A delayed by d samples, the peak is at k = d.
    Frequencies outside [LOW_CUT_HZ, 0.9 * Nyquist] are left out (no shared content there after resampling).
    """
    # Circular correlation is exact for the requested lags once the FFT covers both signals' reach.
    nfft = sfft.next_fast_len(max(len(a) + max(max_lag, 0), len(b) - min(min_lag, 0)), real=True)
    spec_a = sfft.rfft(a, nfft)
    spec = sfft.rfft(b, nfft)
    spec *= np.conj(spec_a)
    del spec_a
    mag = np.abs(spec)
    freqs = np.arange(len(spec)) * (rate_hz / nfft)
    band = (freqs >= LOW_CUT_HZ) & (freqs <= 0.45 * rate_hz)
    floor = 1e-6 * float(mag[band].max()) if band.any() and mag[band].max() > 0 else 1.0
    spec = np.where(band, spec / (mag + floor), 0)
    corr = sfft.irfft(spec, nfft)
    lags = np.arange(min_lag, max_lag + 1)
    return corr[lags % nfft]


def _audio_confidence(curve: np.ndarray, index: int) -> tuple[float, dict]:
    stats = peak_stats(curve, index, guard=2)
    # Largest sidelobe expected from noise alone among n lags (Gaussian extreme value).
    z_noise = math.sqrt(2.0 * math.log(max(stats["n"], 2)))
    sharp = np.clip((stats["psr"] - z_noise) / z_noise, 0.0, 1.0) if math.isfinite(stats["psr"]) else 0.0
    unique = np.clip((1.0 - stats["rival"]) / 0.5, 0.0, 1.0) if math.isfinite(stats["rival"]) else 0.0
    stats.update(psr_noise=z_noise, sharpness=float(sharp), uniqueness=float(unique))
    return float(min(sharp, unique)), stats


def _lag_range(len_a: int, len_b: int, max_lag: int | None) -> tuple[int, int]:
    lo, hi = -(len_a - 1), len_b - 1
    if max_lag is not None:
        lo, hi = max(lo, -max_lag), min(hi, max_lag)
    if lo > hi:
        raise ValueError("the allowed lag range does not overlap the recordings")
    return lo, hi


def estimate_audio_offset(audio_a: np.ndarray, rate_a_hz: float, audio_b: np.ndarray, rate_b_hz: float,
                          *, max_lag_s: float | None = None) -> SyncResult:
    """Offset of recording B against A from their sound (GCC-PHAT, parabolic sub-sample peak).

    Args:
        audio_a, audio_b: (N,) or (N, channels) samples, any lengths.
        rate_a_hz, rate_b_hz: their sample rates.
        max_lag_s: largest |offset_s| considered (None: any offset with some overlap).

    Returns:
        `SyncResult` with method "audio", drift 0; confidence from the peak-to-sidelobe ratio and the
        height of the best rival peak over all lags at COARSE_RATE_HZ (details: psr, rival, rates);
        the offset itself is refined at the analysis rate.
    """
    rate = analysis_rate(rate_a_hz, rate_b_hz)
    a = resample_audio(to_mono(audio_a), rate_a_hz, rate)
    b = resample_audio(to_mono(audio_b), rate_b_hz, rate)
    return _offset(a, b, rate, max_lag_s)


def estimate_audio_drift(audio_a: np.ndarray, rate_a_hz: float, audio_b: np.ndarray, rate_b_hz: float,
                         *, window_s: float = 4.0, max_drift_ppm: float = 1500.0,
                         max_lag_s: float | None = None) -> SyncResult:
    """Offset and clock drift of B against A from windowed GCC-PHAT offsets and a robust line fit.

    The global offset (as `estimate_audio_offset`) says where to look. Then up to `FIRST_PASS_WINDOWS`
    windows of `window_s` spread over A are searched in B within the spread `max_drift_ppm` allows over
    the recording, and a first line is fitted. A second pass compares every window of A with B
    resampled on that line, so large drifts do not smear the peaks, and the local offsets are fitted
    again by `fit_clock_drift` (outlier windows rejected).

    Returns:
        `SyncResult` with method "audio+drift"; offset_s at t_A = 0 and drift_ppm; confidence from the
        windows (`drift.drift_confidence`); details hold the window times, local offsets, the fit's
        residual RMS and the drift's standard error.
    """
    rate = analysis_rate(rate_a_hz, rate_b_hz)
    a = resample_audio(to_mono(audio_a), rate_a_hz, rate)
    b = resample_audio(to_mono(audio_b), rate_b_hz, rate)
    coarse = _offset(a, b, rate, max_lag_s, fine=False)
    win = int(round(window_s * rate))
    starts = np.arange(0, len(a) - win + 1, win)
    if len(starts) < 3:
        return flagged(coarse.offset_s, 0.0, "audio+drift", details={"coarse": coarse.to_dict()},
                       reason=f"recording A is too short ({len(a) / rate:.1f} s) to estimate clock drift")
    first_starts = starts[np.unique(np.linspace(0, len(starts) - 1, FIRST_PASS_WINDOWS).round().astype(int))]
    margin_s = max_drift_ppm * 1e-6 * len(a) / rate + 0.01
    first = fit_clock_drift(*_audio_windows(a, b, rate, first_starts, win, coarse.offset_s, 0.0, margin_s))
    if first is None:
        return flagged(coarse.offset_s, 0.0, "audio+drift", details={"coarse": coarse.to_dict()},
                       reason="too few audio windows matched to estimate clock drift")
    windows = _audio_windows(a, b, rate, starts, win, first["offset_s"], first["drift_ppm"] * 1e-6, 0.002)
    fit = fit_clock_drift(*windows) or first
    details = {"window_s": window_s, "coarse": coarse.to_dict(), "analysis_rate_hz": rate, **fit}
    return flagged(fit["offset_s"], fit["confidence"], "audio+drift", drift_ppm=fit["drift_ppm"], details=details)


def _offset(a: np.ndarray, b: np.ndarray, rate: float, max_lag_s: float | None, *, fine: bool = True
            ) -> SyncResult:
    """Search all lags at COARSE_RATE_HZ (confidence from that curve), then, with `fine`, refine within
    a few coarse samples on the overlapping parts at the analysis rate (parabolic sub-sample peak)."""
    if len(a) < 2 or len(b) < 2 or not (np.any(a) and np.any(b)):
        return flagged(0.0, 0.0, "audio", reason="a recording has no sound to align on")
    coarse_rate = min(rate, COARSE_RATE_HZ)
    ca, cb = resample_audio(a, rate, coarse_rate), resample_audio(b, rate, coarse_rate)
    max_lag = None if max_lag_s is None else int(math.ceil(max_lag_s * coarse_rate))
    lo, hi = _lag_range(len(ca), len(cb), max_lag)
    curve = gcc_phat(ca, cb, coarse_rate, lo, hi)
    index = int(np.argmax(curve))
    confidence, stats = _audio_confidence(curve, index)
    frac, _ = parabolic_peak(curve, index)
    offset_s = (lo + frac) / coarse_rate
    details = {"analysis_rate_hz": rate, "coarse_rate_hz": coarse_rate, "peak": float(curve[index]), **stats}
    if fine and coarse_rate < rate:
        offset_s = _fine_offset(a, b, rate, offset_s, 2.0 / coarse_rate)
    log.debug("audio offset %.6f s (confidence %.2f)", offset_s, confidence)
    return flagged(offset_s, confidence, "audio", details=details)


def _fine_offset(a: np.ndarray, b: np.ndarray, rate: float, offset_s: float, margin_s: float) -> float:
    """GCC-PHAT peak within ±margin_s of `offset_s` over the overlapping parts (parabolic sub-sample)."""
    lag = int(round(offset_s * rate))
    margin = int(math.ceil(margin_s * rate)) + 1
    n0, n1 = max(0, -lag), min(len(a), len(b) - lag)
    if n1 - n0 < 4 * margin:
        return offset_s
    # b[start + m] for m = 0 .. : a[n0 + n] meets b[n0 + n + lag - margin + k] at seg lag k.
    start = n0 + lag - margin
    seg_b = b[max(0, start):n1 + lag + margin]
    if start < 0:
        seg_b = np.concatenate([np.zeros(-start, dtype=seg_b.dtype), seg_b])
    curve = gcc_phat(a[n0:n1], seg_b, rate, 0, 2 * margin)
    index = int(np.argmax(curve))
    frac, _ = parabolic_peak(curve, index)
    return (lag - margin + frac) / rate


def _audio_windows(a: np.ndarray, b: np.ndarray, rate: float, starts: np.ndarray, win: int, offset_s: float,
                   drift: float, margin_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window a[start:start + win]: centre time c (s, A), local offset t_B - t_A at c (s), confidence.

    B is sampled at the times the line (offset_s, drift) maps the window onto (linear interpolation), so
    only the residual lag is searched, within ±margin_s.
    """
    margin = int(math.ceil(margin_s * rate))
    centres, offsets, weights = [], [], []
    for start in starts:
        seg_a = a[start:start + win]
        pos_b = ((1.0 + drift) * (start + np.arange(-margin, win + margin)) / rate + offset_s) * rate
        inside = (pos_b >= 0) & (pos_b <= len(b) - 1)
        if inside.mean() < 0.9 or not np.any(seg_a):
            continue
        i0 = np.clip(np.floor(pos_b).astype(np.int64), 0, len(b) - 2)
        frac_b = (pos_b - i0).astype(np.float32)
        seg_b = (b[i0] * (1 - frac_b) + b[i0 + 1] * frac_b) * inside
        # seg_b sample m is seen at A sample start - margin + m: the residual lag is (k - margin) samples.
        curve = gcc_phat(seg_a, seg_b, rate, 0, 2 * margin)
        index = int(np.argmax(curve))
        frac, _ = parabolic_peak(curve, index)
        confidence, _ = _audio_confidence(curve, index)
        centre = (start + 0.5 * win) / rate
        # A residual lag r (A seconds) against the line means t_B - t_A = offset + drift * c + (1 + drift) r.
        offsets.append(offset_s + drift * centre + (frac - margin) / rate * (1.0 + drift))
        centres.append(centre)
        weights.append(confidence)
    return np.asarray(centres), np.asarray(offsets), np.asarray(weights)
