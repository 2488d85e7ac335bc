"""Time alignment of two recordings: audio, motion, the two-view consistency check, clock drift.

Convention (every function here): an event seen at time t_A in recording A appears in recording B at
t_B = (1 + drift) * t_A + offset_s, drift = drift_ppm * 1e-6. `estimate_offset` picks the method:
audio when both recordings have sound, else motion (refined by the epipolar residual when the cameras
stand still), then checks the result with the 3D consistency residual when both views have 3D poses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mvcapture.errors import MvcaptureError
from mvcapture.sync.audio import estimate_audio_drift, estimate_audio_offset
from mvcapture.sync.consistency import (ResidualCurve, check_with_consistency, consistency_residual_curve,
                                        epipolar_residual_curve, refine_with_epipolar)
from mvcapture.sync.drift import fit_clock_drift
from mvcapture.sync.motion import estimate_motion_drift, estimate_motion_offset, motion_signal
from mvcapture.sync.result import (LOW_CONFIDENCE, LowConfidenceSyncError, SyncResult, apply_sync,
                                   manual_offset)

__all__ = [
    "LOW_CONFIDENCE", "LowConfidenceSyncError", "RecordingSignals", "ResidualCurve", "SyncResult",
    "apply_sync", "check_with_consistency", "consistency_residual_curve", "epipolar_residual_curve",
    "estimate_audio_drift", "estimate_audio_offset", "estimate_motion_drift", "estimate_motion_offset",
    "estimate_offset", "fit_clock_drift", "manual_offset", "motion_signal", "refine_with_epipolar",
]

log = logging.getLogger(__name__)

# When both recordings are at least this long (s), clock drift is estimated too (shorter: drift 0);
# a drift estimate that comes out low-confidence gives way to a confident plain offset.
AUDIO_DRIFT_MIN_S = 40.0
MOTION_DRIFT_MIN_S = 90.0


@dataclass
class RecordingSignals:
    """What one recording offers for alignment; leave out what it lacks.

    Attributes:
        audio: (N,) or (N, channels) samples, or None (no sound track).
        audio_rate_hz: sample rate of `audio`.
        kp2d_px: (T, 17, 2) 2D keypoints of the athlete (px), or None.
        conf: (T, 17) keypoint confidences.
        frame_times_s: (T,) frame times (s, the recording's clock; variable frame rate is fine).
        pose3d: (T, 17, 3) per-view 3D poses at `frame_times_s` (e.g. the lifter's output), or None.
        skeleton: joint order of kp2d_px, "coco17" (detector output) or "h36m17".
    """

    audio: np.ndarray | None = None
    audio_rate_hz: float | None = None
    kp2d_px: np.ndarray | None = None
    conf: np.ndarray | None = None
    frame_times_s: np.ndarray | None = None
    pose3d: np.ndarray | None = None
    skeleton: str = "coco17"

    @property
    def has_audio(self) -> bool:
        return (self.audio is not None and self.audio_rate_hz is not None and np.size(self.audio) > 0
                and bool(np.any(np.asarray(self.audio) != 0)))

    @property
    def has_motion(self) -> bool:
        return self.kp2d_px is not None and self.conf is not None and self.frame_times_s is not None

    @property
    def has_pose3d(self) -> bool:
        return self.pose3d is not None and self.frame_times_s is not None

    def audio_duration_s(self) -> float:
        return len(self.audio) / float(self.audio_rate_hz) if self.has_audio else 0.0


def estimate_offset(a: RecordingSignals, b: RecordingSignals, *, manual_offset_s: float | None = None,
                    max_lag_s: float | None = None) -> SyncResult:
    """Align recording B to recording A with the best evidence both offer.

    1. `manual_offset_s` given: that offset (method "manual", confidence 1), nothing estimated.
    2. Both have sound: audio (GCC-PHAT; with clock drift when both are at least AUDIO_DRIFT_MIN_S long).
    3. Otherwise, or when the audio result is low-confidence: motion of the 2D keypoints (with drift
       when both are at least MOTION_DRIFT_MIN_S long), refined by the epipolar residual when its minimum
       is clear; the more confident of audio and motion is kept, the other goes in
       `details["alternatives"]`.
    4. Both have 3D poses: the result is checked against the 3D consistency residual and flagged if
       the residual's minimum is elsewhere.

    Args:
        a, b: the two recordings' signals (`RecordingSignals`).
        manual_offset_s: a user-given offset that overrides every estimate.
        max_lag_s: largest |offset_s| to consider (None: any with enough overlap).

    Returns:
        `SyncResult`; `low_confidence` with a `reason` when it must not be used without the user's say.

    Raises:
        MvcaptureError: when the recordings offer nothing to align on.
    """
    if manual_offset_s is not None:
        return manual_offset(manual_offset_s, note="set by the user")
    candidates: list[SyncResult] = []
    if a.has_audio and b.has_audio:
        long_enough = min(a.audio_duration_s(), b.audio_duration_s()) >= AUDIO_DRIFT_MIN_S
        candidates.append(_with_drift_if_long(estimate_audio_drift, estimate_audio_offset, long_enough,
                                              a.audio, a.audio_rate_hz, b.audio, b.audio_rate_hz,
                                              max_lag_s=max_lag_s))
    if (not candidates or candidates[0].low_confidence) and a.has_motion and b.has_motion:
        candidates.append(_motion(a, b, max_lag_s))
    if not candidates:
        raise MvcaptureError("nothing to align the two recordings on: they need sound in both, or the "
                             "athlete's 2D keypoints in both (run detection first), or a manual offset")
    best = max(candidates, key=lambda r: (not r.low_confidence, r.confidence))
    others = [r.to_dict() for r in candidates if r is not best]
    if others:
        best = SyncResult(best.offset_s, best.drift_ppm, best.confidence, best.method, best.low_confidence,
                          best.reason, dict(best.details, alternatives=others))
    if a.has_pose3d and b.has_pose3d:
        best = check_with_consistency(best, a.pose3d, a.frame_times_s, b.pose3d, b.frame_times_s)
    log.info("sync: offset %.4f s, drift %.1f ppm, %s, confidence %.2f%s", best.offset_s, best.drift_ppm,
             best.method, best.confidence, f" (flagged: {best.reason})" if best.low_confidence else "")
    return best


def _motion(a: RecordingSignals, b: RecordingSignals, max_lag_s: float | None) -> SyncResult:
    if a.skeleton != b.skeleton:
        raise MvcaptureError(f"the two recordings' keypoints use different skeletons ({a.skeleton}, {b.skeleton})")
    args = (a.kp2d_px, a.conf, a.frame_times_s, b.kp2d_px, b.conf, b.frame_times_s)
    shorter_s = min(float(np.ptp(np.asarray(a.frame_times_s))), float(np.ptp(np.asarray(b.frame_times_s))))
    result = _with_drift_if_long(estimate_motion_drift, estimate_motion_offset, shorter_s >= MOTION_DRIFT_MIN_S,
                                 *args, max_lag_s=max_lag_s, skeleton=a.skeleton)
    return refine_with_epipolar(result, *args)


def _with_drift_if_long(with_drift, plain, long_enough: bool, *args, **kwargs) -> SyncResult:
    """The drift estimate for long recordings, unless it is flagged and the plain offset is not."""
    if not long_enough:
        return plain(*args, **kwargs)
    result = with_drift(*args, **kwargs)
    if result.low_confidence:
        fallback = plain(*args, **kwargs)
        if not fallback.low_confidence:
            return SyncResult(fallback.offset_s, fallback.drift_ppm, fallback.confidence, fallback.method,
                              False, "", dict(fallback.details, drift_not_used=result.to_dict()))
    return result
