"""Two-view consistency residuals as a function of the time offset: lowest at the true offset.

- 3D: the paper's sequence residual. View B's 3D poses are resampled onto A's frame times for each
  candidate offset, one similarity transform is fitted for the whole sequence (core.procrustes) and
  the mean per-joint distance after alignment is the residual (metres).
- 2D: the epipolar residual, for cameras that do not move. For each candidate offset one fundamental
  matrix is fitted to all keypoint correspondences and the trimmed mean Sampson distance (pixels) is
  the residual; motion seen at the wrong time leaves the epipolar lines.
Offsets follow `mvcapture.sync.result`: t_B = (1 + drift) * t_A + offset_s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mvcapture.sync._peaks import quadratic_peak
from mvcapture.sync._tracks import fill_gaps
from mvcapture.sync.result import SyncResult, flagged

log = logging.getLogger(__name__)

# Keypoints below this detection confidence are not used as correspondences.
MIN_KEYPOINT_CONF = 0.3
# The epipolar residual averages the best fraction of correspondences (side swaps, bad detections).
EPIPOLAR_KEEP = 0.8
# At most this many frames of A enter a residual (evenly spread), which bounds the cost of long files.
MAX_FRAMES = 1500
# A curve's contrast is the relative rise of its residual this far (s) from the minimum.
CONTRAST_SPAN_S = 1.0 / 30.0
# The epipolar minimum may move an estimate when the residual CONTRAST_SPAN_S away is at least this much
# (relative) higher: below that, detector noise and lens distortion rather than timing dominate it
# (0.05-0.2 on the Pose2Sim demo's cached detections, 0.6-1.5 on the generated scene).
REFINE_CONTRAST = 0.25
# The 3D check flags an estimate when the residual's minimum elsewhere is at least this much lower.
CHECK_CONTRAST = 0.1


@dataclass(frozen=True)
class ResidualCurve:
    """Residual against candidate offsets and its refined minimum.

    Attributes:
        offsets_s: (K,) candidate offsets (s).
        residual: (K,) residual per candidate (unit in `unit`), NaN where too little overlap.
        best_offset_s: offset of the minimum, refined by a quadratic through its neighbourhood.
        best_residual: residual at the sampled minimum.
        contrast: relative rise of the residual from the minimum to CONTRAST_SPAN_S either side (mean).
        interior: False when the minimum sits on the edge of the candidates (the true one may be beyond).
        unit: "m" (3D) or "px" (2D epipolar).
    """

    offsets_s: np.ndarray
    residual: np.ndarray
    best_offset_s: float
    best_residual: float
    contrast: float
    interior: bool
    unit: str

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return {"offsets_s": self.offsets_s.tolist(),
                "residual": [None if not np.isfinite(v) else float(v) for v in self.residual],
                "best_offset_s": self.best_offset_s, "best_residual": self.best_residual,
                "contrast": self.contrast, "interior": self.interior, "unit": self.unit}


def consistency_residual_curve(pose3d_a: np.ndarray, times_a_s: np.ndarray, pose3d_b: np.ndarray,
                               times_b_s: np.ndarray, offsets_s: np.ndarray, drift: float = 0.0,
                               weights_a: np.ndarray | None = None) -> ResidualCurve:
    """Sequence-Procrustes residual of the two views' 3D poses for each candidate offset.

    Args:
        pose3d_a, pose3d_b: (T, J, 3) 3D poses of each view (any frame of reference, e.g. root-relative
            camera frame, lifter units).
        times_a_s, times_b_s: (T,) frame times (s) on each recording's clock.
        offsets_s: (K,) candidate offsets; B is sampled at (1 + drift) * t_A + offset (linear).
        drift: clock drift of B (dimensionless, ppm * 1e-6).
        weights_a: optional (T, J) per-joint weights for A's frames (e.g. detection confidences).

    Returns:
        `ResidualCurve` in the units of pose3d_b (after aligning A onto B: scale s, rotation R,
        translation t for the whole sequence, mean per-joint Euclidean distance). The same frames of A
        (those inside B for every candidate) enter every residual, so values compare.
    """
    from mvcapture.core.procrustes import procrustes

    pose_a = np.asarray(pose3d_a, dtype=np.float64)
    pose_b = np.asarray(pose3d_b, dtype=np.float64)
    if pose_a.ndim != 3 or pose_a.shape[-1] != 3 or pose_b.shape[1:] != pose_a.shape[1:]:
        raise ValueError(f"pose3d_a and pose3d_b must be (T, J, 3) with the same J, got {pose_a.shape} "
                         f"and {pose_b.shape}")
    # Same reason as for 2D keypoints (see epipolar_residual_curve): smooth before interpolating.
    pose_a, pose_b = _smooth_pair(pose_a, times_a_s, pose_b, times_b_s)
    offsets, frames = _common_frames(times_a_s, times_b_s, offsets_s, drift)
    residual = np.full(len(offsets), np.nan)
    if frames.size >= 2:
        t_a = np.asarray(times_a_s, dtype=np.float64)[frames]
        dst = np.stack([_interp_frames(pose_b, times_b_s, (1.0 + drift) * t_a + offset) for offset in offsets])
        src = np.broadcast_to(pose_a[frames], dst.shape)
        w = None
        if weights_a is not None:
            w = np.broadcast_to(np.asarray(weights_a, dtype=np.float64)[frames], dst.shape[:-1])
        aligned = np.asarray(procrustes(src, dst, weights=w, mode="sequence").aligned)
        err = np.linalg.norm(aligned - dst, axis=-1)
        if w is None:
            residual = err.mean(axis=(1, 2))
        else:
            residual = np.sum(err * w, axis=(1, 2)) / np.maximum(np.sum(w, axis=(1, 2)), 1e-12)
    return _curve(offsets, residual, float(np.median(np.diff(times_b_s))), "m")


def epipolar_residual_curve(kp2d_a: np.ndarray, conf_a: np.ndarray, times_a_s: np.ndarray,
                            kp2d_b: np.ndarray, conf_b: np.ndarray, times_b_s: np.ndarray,
                            offsets_s: np.ndarray, drift: float = 0.0) -> ResidualCurve:
    """Epipolar residual (px) of the two views' 2D keypoints for each candidate offset (static cameras).

    Args:
        kp2d_a, kp2d_b: (T, J, 2) keypoints (px) of the same athlete, same joint order.
        conf_a, conf_b: (T, J) detection confidences.
        times_a_s, times_b_s: (T,) frame times (s) on each recording's clock.
        offsets_s: (K,) candidate offsets; B is sampled at (1 + drift) * t_A + offset (linear).
        drift: clock drift of B (dimensionless).

    Returns:
        `ResidualCurve` of the trimmed mean Sampson distance (px) under the best fundamental matrix
        (normalised 8-point, refitted on the best EPIPOLAR_KEEP of the correspondences).
    """
    kp_a = np.asarray(kp2d_a, dtype=np.float64)
    kp_b = np.asarray(kp2d_b, dtype=np.float64)
    if kp_a.ndim != 3 or kp_a.shape[-1] != 2 or kp_b.shape[1:] != kp_a.shape[1:]:
        raise ValueError(f"kp2d_a and kp2d_b must be (T, J, 2) with the same J, got {kp_a.shape} and {kp_b.shape}")
    # Interpolating noisy keypoints between frames averages their noise, which would make offsets between
    # B's frames look better: smooth both tracks over one frame of the slower view first (same time scale
    # for both, so the minimum does not move).
    # Missed joints' placeholder positions must not be smoothed into the frames that see them.
    kp_a = fill_gaps(kp_a, np.asarray(conf_a) >= MIN_KEYPOINT_CONF)
    kp_b = fill_gaps(kp_b, np.asarray(conf_b) >= MIN_KEYPOINT_CONF)
    kp_a, kp_b = _smooth_pair(kp_a, times_a_s, kp_b, times_b_s)
    offsets, frames = _common_frames(times_a_s, times_b_s, offsets_s, drift)
    residual = np.full(len(offsets), np.nan)
    if frames.size >= 4:
        t_a = np.asarray(times_a_s, dtype=np.float64)[frames]
        pts_a = kp_a[frames]
        seen_a = np.asarray(conf_a)[frames] >= MIN_KEYPOINT_CONF
        seen_b_all = np.asarray(conf_b, dtype=np.float64)[..., None]
        for k, offset in enumerate(offsets):
            t_b = (1.0 + drift) * t_a + offset
            pts_b = _interp_frames(kp_b, times_b_s, t_b)
            seen_b = _interp_frames(seen_b_all, times_b_s, t_b)[..., 0] >= MIN_KEYPOINT_CONF
            ok = seen_a & seen_b
            if ok.sum() >= 16:
                residual[k] = _epipolar_residual(pts_a[ok], pts_b[ok])
    frame_s = float(np.median(np.diff(times_b_s)))
    return _curve(offsets, residual, frame_s, "px")


def refine_with_epipolar(result: SyncResult, kp2d_a: np.ndarray, conf_a: np.ndarray, times_a_s: np.ndarray,
                         kp2d_b: np.ndarray, conf_b: np.ndarray, times_b_s: np.ndarray,
                         search_frames: float = 1.5) -> SyncResult:
    """Move a motion estimate to the epipolar residual's minimum within ±search_frames of B's frames
    (at least ±1.5 CONTRAST_SPAN_S).

    The estimate moves only when the minimum lies inside the search range and its contrast is at
    least REFINE_CONTRAST (moving cameras or too little motion leave it as it was); the curve is kept in
    `details["epipolar"]` either way.
    """
    span_s = max(search_frames * float(np.median(np.diff(times_b_s))), 1.5 * CONTRAST_SPAN_S)
    offsets = result.offset_s + np.linspace(-span_s, span_s, 25)
    curve = epipolar_residual_curve(kp2d_a, conf_a, times_a_s, kp2d_b, conf_b, times_b_s, offsets,
                                    drift=result.drift)
    details = dict(result.details, epipolar=curve.to_dict())
    usable = curve.interior and curve.contrast >= REFINE_CONTRAST
    if not usable:
        return SyncResult(result.offset_s, result.drift_ppm, result.confidence, result.method,
                          result.low_confidence, result.reason, details)
    details["before_epipolar_offset_s"] = result.offset_s
    return flagged(curve.best_offset_s, result.confidence, result.method + "+epipolar",
                   drift_ppm=result.drift_ppm, reason=result.reason, details=details)


def check_with_consistency(result: SyncResult, pose3d_a: np.ndarray, times_a_s: np.ndarray,
                           pose3d_b: np.ndarray, times_b_s: np.ndarray, *, search_frames: float = 3.0,
                           tolerance_frames: float = 1.0) -> SyncResult:
    """Check an estimate against the 3D consistency residual's minimum (±search_frames of B's frames).

    The result is flagged when the residual's minimum is more than `tolerance_frames` away from the
    estimate and either clearly lower than at the estimate or a clear minimum inside the range (also
    when it lies on the range's edge: the 3D then agrees better beyond the searched frames); the curve
    goes in `details["consistency"]`.
    """
    frame_s = float(np.median(np.diff(times_b_s)))
    offsets = result.offset_s + np.linspace(-search_frames, search_frames, 8 * int(np.ceil(search_frames)) + 1) * frame_s
    curve = consistency_residual_curve(pose3d_a, times_a_s, pose3d_b, times_b_s, offsets, drift=result.drift)
    details = dict(result.details, consistency=curve.to_dict())
    gap_frames = abs(curve.best_offset_s - result.offset_s) / frame_s
    details["consistency_gap_frames"] = gap_frames
    at_estimate = float(np.interp(result.offset_s, curve.offsets_s, curve.residual))
    clearly_lower = curve.best_residual < (1.0 - CHECK_CONTRAST) * at_estimate
    reason = result.reason
    if gap_frames > tolerance_frames and (clearly_lower or (curve.interior and curve.contrast >= CHECK_CONTRAST)):
        where = f"{gap_frames:.1f} frames" if curve.interior else f"more than {search_frames:g} frames"
        reason = (f"the two views' 3D poses agree best {where} away from the {result.method} offset: "
                  "check the alignment by eye or set it manually")
    return flagged(result.offset_s, result.confidence, result.method, drift_ppm=result.drift_ppm,
                   reason=reason, details=details)


def _common_frames(times_a_s, times_b_s, offsets_s, drift) -> tuple[np.ndarray, np.ndarray]:
    """Candidate offsets (float array) and the indices of A's frames inside B for all of them."""
    t_a = np.asarray(times_a_s, dtype=np.float64)
    t_b = np.asarray(times_b_s, dtype=np.float64)
    offsets = np.asarray(offsets_s, dtype=np.float64)
    mapped_lo = (1.0 + drift) * t_a + offsets.min()
    mapped_hi = (1.0 + drift) * t_a + offsets.max()
    frames = np.flatnonzero((mapped_lo >= t_b[0]) & (mapped_hi <= t_b[-1]))
    if frames.size > MAX_FRAMES:
        frames = frames[np.linspace(0, frames.size - 1, MAX_FRAMES).round().astype(int)]
    return offsets, frames


def _interp_frames(values: np.ndarray, times_s: np.ndarray, at_s: np.ndarray) -> np.ndarray:
    """Linear interpolation of per-frame arrays (T, ...) at times `at_s` inside the recording."""
    times = np.asarray(times_s, dtype=np.float64)
    pos = np.interp(at_s, times, np.arange(len(times)))
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, len(times) - 2)
    frac = (pos - i0).reshape((-1,) + (1,) * (values.ndim - 1))
    return values[i0] * (1.0 - frac) + values[i0 + 1] * frac


def _smooth_pair(track_a: np.ndarray, times_a_s, track_b: np.ndarray, times_b_s) -> tuple[np.ndarray, np.ndarray]:
    """Smooth two tracks (T, J, D) over one frame of the slower view (one time scale for both)."""
    frame_s = max(float(np.median(np.diff(times_a_s))), float(np.median(np.diff(times_b_s))))
    return _smooth(track_a, times_a_s, frame_s), _smooth(track_b, times_b_s, frame_s)


def _smooth(track: np.ndarray, times_s: np.ndarray, sigma_s: float) -> np.ndarray:
    """Gaussian smoothing of a (T, ...) track along time, sigma in seconds."""
    return ndimage.gaussian_filter1d(track, sigma_s / float(np.median(np.diff(times_s))), axis=0, mode="nearest")


def _normalise(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hartley normalisation: (N, 3) homogeneous points and the 3x3 transform applied."""
    centre = points.mean(axis=0)
    scale = np.sqrt(2.0) / max(float(np.mean(np.linalg.norm(points - centre, axis=1))), 1e-12)
    T = np.array([[scale, 0, -scale * centre[0]], [0, scale, -scale * centre[1]], [0, 0, 1]])
    homog = np.c_[points, np.ones(len(points))] @ T.T
    return homog, T


def _fundamental(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Normalised 8-point fundamental matrix with x_b^T F x_a = 0 (rank 2)."""
    ha, Ta = _normalise(pa)
    hb, Tb = _normalise(pb)
    design = (hb[:, :, None] * ha[:, None, :]).reshape(len(ha), 9)
    _, vecs = np.linalg.eigh(design.T @ design)
    F = vecs[:, 0].reshape(3, 3)
    u, s, vt = np.linalg.svd(F)
    F = u @ np.diag([s[0], s[1], 0.0]) @ vt
    return Tb.T @ F @ Ta


def _sampson(F: np.ndarray, pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    ha = np.c_[pa, np.ones(len(pa))]
    hb = np.c_[pb, np.ones(len(pb))]
    fa = ha @ F.T
    fb = hb @ F
    num = np.sum(hb * fa, axis=1) ** 2
    den = fa[:, 0] ** 2 + fa[:, 1] ** 2 + fb[:, 0] ** 2 + fb[:, 1] ** 2
    return np.sqrt(num / np.maximum(den, 1e-12))


def _epipolar_residual(pa: np.ndarray, pb: np.ndarray) -> float:
    """Trimmed mean Sampson distance (px) after fitting F to all, then to the best EPIPOLAR_KEEP."""
    keep = max(8, int(EPIPOLAR_KEEP * len(pa)))
    dist = _sampson(_fundamental(pa, pb), pa, pb)
    best = np.argpartition(dist, keep - 1)[:keep]
    F = _fundamental(pa[best], pb[best])
    return float(np.partition(_sampson(F, pa, pb), keep - 1)[:keep].mean())


def _curve(offsets: np.ndarray, residual: np.ndarray, frame_s: float, unit: str) -> ResidualCurve:
    if not np.any(np.isfinite(residual)):
        return ResidualCurve(offsets, residual, float("nan"), float("nan"), 0.0, False, unit)
    i = int(np.nanargmin(residual))
    interior = 0 < i < len(residual) - 1 and np.isfinite(residual[i - 1]) and np.isfinite(residual[i + 1])
    best = float(offsets[i])
    if interior:
        step = float(np.median(np.diff(offsets)))
        best = quadratic_peak(offsets, residual, i, max(0.5 * frame_s, 1.01 * step))
    side = [np.interp(offsets[i] + d, offsets, residual) for d in (-CONTRAST_SPAN_S, CONTRAST_SPAN_S)
            if offsets[0] <= offsets[i] + d <= offsets[-1]]
    rise = float(np.nanmean(side)) - float(residual[i]) if side else 0.0
    contrast = rise / float(residual[i]) if residual[i] > 0 else float("inf")
    return ResidualCurve(offsets, residual, best, float(residual[i]), float(contrast), bool(interior), unit)
