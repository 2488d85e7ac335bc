"""A 2D detector's errors, measured on a calibrated real recording and reproduced on synthetic projections.

Measured: the detections (H36M-17, through `core.skeleton.coco_to_h36m` as the app maps them) against the
recording's triangulated reference reprojected into each camera (`data.calibrated`). Per joint, in a body
frame (up = pelvis → thorax in the image, out = away from the body's midline, lengths in units of the 2D
bounding-box diagonal): the systematic offset (median), the spread (robust std), the frame-to-frame
correlation; per view the left/right swap events; the confidence distribution; missing joints. The statistics
are a small JSON resource (`resources/noise/`); `MeasuredNoise` draws detector output with them. The
recording's poses never become training data: only these error statistics are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from mvcapture.core.skeleton import H36M17_FLIP_PERMUTATION, H36M17_JOINTS, H36M17_LEFT, H36M17_RIGHT, coco_to_h36m
from mvcapture.errors import MvcaptureError

STATS_FORMAT = "mvcapture-detector-noise"
OUTLIER_FRACTION = 0.10  # a residual farther than this (bbox diagonals) from the joint's offset is an outlier
MISSING_CONF = 0.05      # a detection below this confidence counts as missing
CONF_QUANTILES = np.linspace(0.0, 1.0, 21)
# Side of each H36M-17 joint: +1 left, −1 right, 0 on the midline (its "out" axis points to the body's left).
JOINT_SIDE = np.zeros(17)
JOINT_SIDE[list(H36M17_LEFT)] = 1.0
JOINT_SIDE[list(H36M17_RIGHT)] = -1.0


def body_frame(kp2d_px: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame image axes of the body and its size.

    Args:
        kp2d_px: (..., 17, 2) H36M-17 pixels.

    Returns:
        up (..., 2) unit vector pelvis → thorax, left (..., 2) unit vector perpendicular to it on the side of
        the left hip, diag (...) the bounding-box diagonal in pixels.
    """
    up = kp2d_px[..., 8, :] - kp2d_px[..., 0, :]
    up = up / np.maximum(np.linalg.norm(up, axis=-1, keepdims=True), 1e-9)
    perp = np.stack([-up[..., 1], up[..., 0]], -1)
    hips = kp2d_px[..., 4, :] - kp2d_px[..., 1, :]
    sign = np.where((hips * perp).sum(-1, keepdims=True) < 0, -1.0, 1.0)
    diag = np.linalg.norm(kp2d_px.max(-2) - kp2d_px.min(-2), axis=-1)
    return up, perp * sign, diag


def _to_body(err_px: np.ndarray, clean_px: np.ndarray) -> np.ndarray:
    """(..., 17, 2) pixel errors → (..., 17, 2) (up, out) in bounding-box diagonals."""
    up, left, diag = body_frame(clean_px)
    out_axis = left[..., None, :] * np.where(JOINT_SIDE == 0, 1.0, JOINT_SIDE)[:, None]
    comp = np.stack([(err_px * up[..., None, :]).sum(-1), (err_px * out_axis).sum(-1)], -1)
    return comp / np.maximum(diag, 1e-9)[..., None, None]


def _from_body(comp: np.ndarray, clean_px: np.ndarray) -> np.ndarray:
    """Inverse of `_to_body`: (..., 17, 2) (up, out) in diagonals → pixel offsets."""
    up, left, diag = body_frame(clean_px)
    out_axis = left[..., None, :] * np.where(JOINT_SIDE == 0, 1.0, JOINT_SIDE)[:, None]
    return (comp[..., :1] * up[..., None, :] + comp[..., 1:] * out_axis) * diag[..., None, None]


def _runs(flags: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D bool array."""
    padded = np.r_[False, flags, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return (edges[1::2] - edges[::2]).tolist()


def residual_statistics(detected_px: np.ndarray, reference_px: np.ndarray, conf: np.ndarray,
                        swapped: np.ndarray, fps: float) -> dict:
    """Error statistics of detections against reference projections.

    Args:
        detected_px: (V, T, 17, 2) H36M-17 detections as the detector gave them (sides possibly swapped).
        reference_px: (V, T, 17, 2) the true joints' projections.
        conf: (V, T, 17) detection confidences. swapped: (V, T) frames whose sides the detector exchanged.
        fps: frame rate.

    Returns:
        the statistics dict stored in the JSON resource (see `measure_recording`).
    """
    V, T = conf.shape[:2]
    fixed = np.where(swapped[..., None, None], detected_px[:, :, H36M17_FLIP_PERMUTATION], detected_px)
    fixed_conf = np.where(swapped[..., None], conf[:, :, H36M17_FLIP_PERMUTATION], conf)
    comp = _to_body(fixed - reference_px, reference_px)              # (V, T, 17, 2)
    seen = (fixed_conf >= MISSING_CONF) & np.isfinite(comp).all(-1)
    joints = {}
    for j, name in enumerate(H36M17_JOINTS):
        c = comp[:, :, j][seen[:, :, j]]                             # (N, 2)
        offset = np.median(c, 0)
        dev = np.linalg.norm(c - offset, axis=-1)
        inlier = dev <= OUTLIER_FRACTION
        spread = 1.4826 * np.median(np.abs(c[inlier] - offset), 0)
        lag = []
        for v in range(V):
            x = comp[v, :, j] - offset
            ok = seen[v, 1:, j] & seen[v, :-1, j] & (np.linalg.norm(x[1:], axis=-1) <= OUTLIER_FRACTION) \
                & (np.linalg.norm(x[:-1], axis=-1) <= OUTLIER_FRACTION)
            if ok.sum() > 2:
                lag.append((x[1:][ok] * x[:-1][ok]).sum(0) / np.maximum((x[:-1][ok] ** 2).sum(0), 1e-12))
        rho = np.clip(np.median(lag, 0), 0.0, 0.98) if lag else np.zeros(2)
        out_dev = dev[~inlier]
        joints[name] = {"offset": offset.tolist(), "spread": spread.tolist(), "frame_correlation": rho.tolist(),
                        "outlier_rate": float((~inlier).mean()),
                        "outlier_scale": float(np.median(out_dev)) if len(out_dev) else 0.0,
                        "missing_rate": float((fixed_conf[:, :, j] < MISSING_CONF).mean()),
                        "conf_quantiles": np.quantile(fixed_conf[:, :, j], CONF_QUANTILES).tolist()}
    runs = [r for v in range(V) for r in _runs(swapped[v])]
    seconds = V * T / fps
    return {"joints": joints, "swap": {"events_per_s": len(runs) / seconds,
                                       "frames_fraction": float(swapped.mean()),
                                       "mean_frames": float(np.mean(runs)) if runs else 0.0,
                                       "frames_range": [int(min(runs)), int(max(runs))] if runs else [0, 0]},
            "views": int(V), "frames": int(T), "fps": float(fps)}


def measure_recording(folder: Path | str) -> dict:
    """The detector statistics of a calibrated recording (`data.calibrated.load_calibrated_recording`):
    `residual_statistics` of its detections against its reference reprojected into every camera (lens
    distortion applied), with how it was measured."""
    from mvcapture.data.calibrated import load_calibrated_recording, triangulate_reference

    recording = load_calibrated_recording(folder)
    tri = triangulate_reference(recording)
    ref_world = tri.h36m()
    if not np.isfinite(ref_world).all():
        keep = np.isfinite(ref_world).all((1, 2))
    else:
        keep = np.ones(recording.num_frames, bool)
    ref_px = np.stack([cam.project(ref_world[keep]) for cam in recording.cameras])
    det, conf = coco_to_h36m(recording.kp2d_coco_px[:, keep], recording.conf_coco[:, keep])
    stats = residual_statistics(det, ref_px, conf, tri.swapped[keep].T, recording.fps)
    stats.update({"format": STATS_FORMAT, "recording": Path(folder).name, "cameras": recording.names,
                  "method": "detections (COCO-17 → H36M-17 as the app maps them) against the recording's 3D "
                            "triangulated from all its calibrated cameras (side-corrected, outlier views "
                            "dropped), reprojected into each camera with its lens distortion; per joint in the "
                            "body frame (up: pelvis → thorax; out: away from the midline, left for midline "
                            "joints) in units of the 2D bounding-box diagonal: offset = median, spread = "
                            "1.4826 × MAD of the residuals within 0.10 diagonal of the offset, outliers beyond; "
                            "swaps from the triangulation's side correction. Offsets common to all cameras "
                            "(a keypoint off the joint centre in 3D) are inside the reference and not measured."})
    return stats


def _rounded(value, digits: int = 5):
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    return value


def write_stats(stats: dict, path: Path | str) -> None:
    """Write detector statistics as JSON (floats rounded to 5 digits), atomically."""
    from mvcapture.io.atomic import atomic_write_text

    atomic_write_text(Path(path), json.dumps(_rounded(stats), indent=1) + "\n")


def load_stats(path: Path | str) -> dict:
    """Read a detector statistics JSON (checks its format and that every H36M-17 joint is there)."""
    path = Path(path)
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MvcaptureError(f"{path}: not readable detector statistics ({exc})") from exc
    missing = [j for j in H36M17_JOINTS if j not in stats.get("joints", {})]
    if stats.get("format") != STATS_FORMAT or missing or "swap" not in stats:
        raise MvcaptureError(f"{path}: expected format {STATS_FORMAT!r} with keys joints (all of "
                             f"{', '.join(H36M17_JOINTS)}) and swap; missing {missing or 'format/swap'}")
    return stats


def default_stats_path() -> Path:
    """The shipped statistics: MediaPipe Pose on the Pose2Sim demo recording."""
    from mvcapture.paths import resources_dir

    return resources_dir() / "noise" / "mediapipe_pose2sim.json"


def _ar1(rng: np.random.Generator, shape: tuple, rho: np.ndarray) -> np.ndarray:
    """Unit-variance AR(1) noise along axis 1 of `shape` (V, T, ...), coefficient `rho` broadcast to (...)."""
    white = rng.standard_normal(shape)
    out = np.empty(shape)
    out[:, 0] = white[:, 0]
    gain = np.sqrt(1 - rho ** 2)
    for t in range(1, shape[1]):
        out[:, t] = rho * out[:, t - 1] + gain * white[:, t]
    return out


@dataclass
class MeasuredNoise:
    """Detector output drawn with measured statistics (`residual_statistics`); `scale` multiplies the spreads,
    offsets and event rates (1 = as measured)."""

    stats: dict
    scale: float = 1.0

    @classmethod
    def load(cls, path: Path | str | None = None, scale: float = 1.0) -> "MeasuredNoise":
        return cls(load_stats(path or default_stats_path()), scale)

    def _table(self, key: str) -> np.ndarray:
        return np.array([self.stats["joints"][j][key] for j in H36M17_JOINTS], np.float64)

    def apply(self, kp2d_clean: np.ndarray, image_size: np.ndarray, fps: float, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
        """Exact projections (V, T, 17, 2) px → detector-like kp2d (V, T, 17, 2) px and conf (V, T, 17)
        (`draw` without its swap record)."""
        kp2d, conf, _ = self.draw(kp2d_clean, image_size, fps, rng)
        return kp2d, conf

    def draw(self, kp2d_clean: np.ndarray, image_size: np.ndarray, fps: float, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact projections (V, T, 17, 2) px → kp2d (V, T, 17, 2) px, conf (V, T, 17) and swapped (V, T) bool.

        Per joint: the measured offset and AR(1) noise of the measured spread and correlation in the body
        frame; outliers at the measured rate and size; confidences drawn from the measured distribution
        (AR(1) in time); missing joints at the measured rate and outside the image (conf 0); whole-body
        left/right swaps at the measured rate and lengths.
        """
        kp2d_clean = np.asarray(kp2d_clean, np.float64)
        V, T = kp2d_clean.shape[:2]
        s = self.scale
        offset, spread, rho = self._table("offset"), self._table("spread"), self._table("frame_correlation")
        comp = offset * s + _ar1(rng, (V, T, 17, 2), rho) * spread * s
        out_rate, out_scale = self._table("outlier_rate") * s, self._table("outlier_scale")
        outlier = rng.random((V, T, 17)) < out_rate
        direction = rng.standard_normal((V, T, 17, 2))
        direction /= np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-9)
        comp = comp + outlier[..., None] * direction * (out_scale * rng.uniform(0.5, 1.5, (V, T, 17)))[..., None]
        kp2d = kp2d_clean + _from_body(comp, kp2d_clean)
        quant = self._table("conf_quantiles")                                     # (17, Q)
        u = ndtr(_ar1(rng, (V, T, 17), np.full(17, 0.9)))
        conf = np.stack([np.interp(u[..., j], CONF_QUANTILES, quant[j]) for j in range(17)], -1)
        conf[rng.random((V, T, 17)) < self._table("missing_rate") * s] = 0.0
        swap = self.stats["swap"]
        rate = swap["events_per_s"] * s / fps
        lo, hi = swap["frames_range"]
        swapped = np.zeros((V, T), bool)
        for v in range(V):
            if rate <= 0:
                break
            for start in np.flatnonzero(rng.random(T) < rate):
                swapped[v, start:start + int(rng.integers(max(lo, 1), max(hi, 1) + 1))] = True
        flip = swapped[..., None, None]
        kp2d = np.where(flip, kp2d[:, :, H36M17_FLIP_PERMUTATION], kp2d)
        conf = np.where(flip[..., 0], conf[:, :, H36M17_FLIP_PERMUTATION], conf)
        w = np.asarray(image_size, np.float64)[:, None, None, 0]
        h = np.asarray(image_size, np.float64)[:, None, None, 1]
        outside = (kp2d[..., 0] < 0) | (kp2d[..., 0] >= w) | (kp2d[..., 1] < 0) | (kp2d[..., 1] >= h)
        conf[outside] = 0.0
        return kp2d, np.clip(conf, 0.0, 1.0), swapped
