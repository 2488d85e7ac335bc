"""Stereo pseudo-labels for fine-tuning (variant `l3d_stereo`): the two views' own geometry, found from the
clip's 2D keypoints alone (geometry.stereo), triangulated into a 3D track in each view's camera frame that
the lifter is then trained against, joint by joint weighted by how confidently both views saw it.

No 3D ground truth is read. A clip whose two-view geometry is not confident (degenerate, or uncertain, e.g.
an unknown lens) gets no pseudo-label; the reason is reported.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from mvcapture.core.normalize import DEFAULT_ATHLETE_HEIGHT_M
from mvcapture.io.clip import MultiViewClip

log = logging.getLogger(__name__)

PSEUDO_KEY = "stereo_pseudo"   # clip.extras key caching a clip's pseudo-label result
MAX_GAP_FRAMES = 15            # joints missing in the triangulation for up to this many frames are interpolated


def _lens(clip: MultiViewClip, v: int) -> dict | None:
    """The clip's lens for view v at the image centre (the lifter's normalization assumes it): the processed
    session's stereo focal length (analysis.npz `stereo_focal_px`), else the clip's `focal_px`, else None."""
    for key in ("stereo_focal_px", "focal_px"):
        f = clip.extras.get(key)
        if f is not None:
            f = np.asarray(f, np.float64).reshape(-1)
            if len(f) > v and np.isfinite(f[v]) and f[v] > 0:
                w, h = (float(x) for x in clip.image_size[v])
                return {"fx": f[v], "fy": f[v], "cx": w / 2, "cy": h / 2, "dist": [0.0] * 5}
    return None


def _fill_gaps(track: np.ndarray, seen: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation over time of each joint's missing frames (gaps ≤ max_gap), nearest value at the
    ends. track (T, J, 3), seen (T, J) → filled track, and (T, J) bool: known or interpolated."""
    T, J = seen.shape
    out = track.copy()
    usable = seen.copy()
    t = np.arange(T)
    for j in range(J):
        k = np.flatnonzero(seen[:, j])
        if len(k) == 0:
            out[:, j] = 0.0
            continue
        for d in range(3):
            out[:, j, d] = np.interp(t, k, track[k, j, d])
        # distance to the nearest seen frame
        nearest = np.abs(t[:, None] - k[None, :]).min(1)
        usable[:, j] = nearest <= max_gap // 2 + 1
    return out, usable


def stereo_pseudo_labels(clip: MultiViewClip, height_m: float = DEFAULT_ATHLETE_HEIGHT_M
                         ) -> tuple[MultiViewClip | None, dict]:
    """A two-view copy of `clip` whose `gt3d` is the stereo pseudo-label, or None with the reason.

    Views 0 and 1 are used (a clip with more views is cut to those two). The pseudo-label is in each view's
    camera frame (x right, y down, z forward), metres from the athlete's height (its scale does not matter
    to the MotionBERT-normalized target); `focal_px` is the estimate's focal length; `target_weight`
    (2, T, 17) in [0, 1] weighs each joint by both views' confidence (0 where it is not triangulated and
    too long missing to interpolate).

    Returns:
        (clip or None, info): info has status, axis_angle_deg, confidence, share of joints triangulated and
        the notes of the stereo estimate.
    """
    from mvcapture.geometry.stereo import despike, self_calibrate, smooth_track, triangulate_tracks
    from mvcapture.geometry.fusion import metric_scale

    cached = clip.extras.get(PSEUDO_KEY)
    if isinstance(cached, tuple):
        return cached
    kp, conf = np.asarray(clip.kp2d, np.float64), np.asarray(clip.conf, np.float64)
    lenses = [_lens(clip, v) for v in (0, 1)]
    est = self_calibrate(kp[0], conf[0], kp[1], conf[1], clip.image_size[0], clip.image_size[1], lenses[0],
                         lenses[1], fps=float(clip.fps), layout="h36m17")
    info = {"status": est.status, "axis_angle_deg": float(est.axis_angle_deg), "confidence": float(est.confidence),
            "lens": ["known" if lens else "unknown" for lens in lenses], "notes": list(est.notes)}
    if est.status != "ok":
        result = (None, info)
        clip.extras[PSEUDO_KEY] = result
        return result
    X, tri_conf, _ = triangulate_tracks(est, kp[0], conf[0], kp[1], conf[1], clip.image_size[0],
                                        clip.image_size[1], lenses[0], lenses[1], layout="h36m17")
    X = smooth_track(despike(X), float(clip.fps))
    seen = np.isfinite(X).all(-1)
    scale = metric_scale(np.where(seen[..., None], X, 0.0), seen, height_m) or 1.0
    filled, usable = _fill_gaps(np.where(seen[..., None], X, 0.0) * scale, seen, MAX_GAP_FRAMES)
    root_ok = usable[:, 0]
    cam_a = filled
    cam_b = filled @ est.R.T + est.t * scale
    gt3d = np.stack([cam_a, cam_b]).astype(np.float32)
    if not ((gt3d[..., 2] > 0).all() and root_ok.any()):
        info["status"] = "uncertain"
        info["notes"].append("the triangulated track passes behind a camera; no pseudo-label")
        result = (None, info)
        clip.extras[PSEUDO_KEY] = result
        return result
    weight = np.where(usable, np.clip(tri_conf, 0.0, 1.0), 0.0)
    weight = np.where(seen, weight, np.where(usable, 0.5 * weight.max(initial=0.0), 0.0))
    weight = np.where(root_ok[:, None], weight, 0.0)
    info["triangulated_share"] = float(seen.mean())
    extras = {k: v for k, v in clip.extras.items() if k != PSEUDO_KEY}
    extras["focal_px"] = np.asarray(est.focal_px, np.float64)
    extras["target_weight"] = np.stack([weight, weight]).astype(np.float32)
    out = replace(clip, kp2d=clip.kp2d[:2], conf=clip.conf[:2], image_size=clip.image_size[:2], gt3d=gt3d,
                  name=f"{clip.name} (stereo pseudo-label)", extras=extras)
    result = (out, info)
    clip.extras[PSEUDO_KEY] = result
    return result


def pseudo_labelled(clips: list[MultiViewClip], sources: list | None = None) -> tuple[list[MultiViewClip], list[dict]]:
    """Pseudo-label every clip; clips without a confident two-view geometry are left out (logged).

    Raises MvcaptureError naming the clips and the reasons when none is left.
    """
    from mvcapture.errors import MvcaptureError

    sources = sources or [c.name or f"clip {i}" for i, c in enumerate(clips)]
    out, infos = [], []
    for clip, source in zip(clips, sources):
        labelled, info = stereo_pseudo_labels(clip)
        info = {"clip": str(source), **info}
        infos.append(info)
        if labelled is None:
            log.warning("%s: no stereo pseudo-label (%s): %s", source, info["status"], "; ".join(info["notes"]))
        else:
            out.append(labelled)
    if not out:
        reasons = "; ".join(f"{i['clip']}: {i['status']} ({'; '.join(i['notes']) or 'no reason given'})" for i in infos[:3])
        raise MvcaptureError(f"variant l3d_stereo needs clips whose two views fix the cameras' geometry; none of "
                             f"the {len(clips)} does ({reasons}). Give the sessions lens intrinsics "
                             f"(mvcapture calibrate-intrinsics) or use l2d_con")
    return out, infos
