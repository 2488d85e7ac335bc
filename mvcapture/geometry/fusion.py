"""The fused 3D track of two views: the triangulated joints in metres (scaled by the athlete's height),
completed where only one camera sees a joint by that view's lift, placed onto the triangulated joints by a
per-frame similarity. Output in view a's camera frame, pelvis-relative, H36M-17 (FORMATS.md `fused3d`)."""

from __future__ import annotations

import numpy as np

from mvcapture.core.normalize import HEIGHT_PROXY_RATIO, height_proxy
from mvcapture.core.skeleton import coco_to_h36m

MIN_PLACEMENT_JOINTS = 4   # a lift is placed onto a frame's triangulated joints when at least this many exist
# where the fused joint came from
SOURCE_NONE, SOURCE_STEREO, SOURCE_LIFT_A, SOURCE_LIFT_B = 0, 1, 2, 3
_PROXY_JOINTS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)


def metric_scale(pose_h36m: np.ndarray, valid: np.ndarray, height_m: float) -> float | None:
    """Metres per unit of a triangulated track: the athlete's body-size proxy (legs + trunk, median over the
    frames where all its joints exist) made `HEIGHT_PROXY_RATIO · height_m`, as the lifts are scaled.

    pose_h36m (T, 17, 3) any unit; valid (T, 17) bool. None when no frame has the proxy's joints.
    """
    full = valid[:, list(_PROXY_JOINTS)].all(-1)
    if not full.any():
        return None
    size = float(np.median(height_proxy(pose_h36m[full])))
    return HEIGHT_PROXY_RATIO * height_m / size if size > 0 else None


def fuse_tracks(points_coco: np.ndarray, conf_coco: np.ndarray, lifts_m: np.ndarray, lift_conf: np.ndarray,
                R_ab: np.ndarray, height_m: float, layout: str = "coco17") -> tuple[np.ndarray, np.ndarray, float | None]:
    """Fuse a triangulated track with the two views' lifts.

    Args:
        points_coco: (T, 17, 3) triangulated joints in the order `layout` ("coco17" as detected, or
            "h36m17"), view a's frame, any unit (NaN = not triangulated).
        conf_coco: (T, 17) their confidences (0 = not triangulated).
        lifts_m: (2, T, 17, 3) each view's lift, H36M-17, metres, root-relative in its own camera frame.
        lift_conf: (2, T, 17) the lifts' 2D confidences (0 = the view does not see the joint).
        R_ab: (3, 3) rotation from view a's frame to view b's (X_b = R X_a + t).
        height_m: the athlete's height in metres.

    Returns:
        fused (T, 17, 3) metres, pelvis-relative, view a's frame (NaN where nothing is known);
        source (T, 17) int8: SOURCE_STEREO, SOURCE_LIFT_A, SOURCE_LIFT_B or SOURCE_NONE;
        scale: metres per triangulation unit (None when the track never shows the whole body).
    """
    from mvcapture.core.procrustes import procrustes

    T = points_coco.shape[0]
    seen = np.isfinite(points_coco).all(-1) & (conf_coco > 0)
    if layout == "coco17":
        tri, tri_conf = coco_to_h36m(np.where(seen[..., None], points_coco, 0.0), seen.astype(np.float64))
    else:
        tri, tri_conf = np.where(seen[..., None], points_coco, 0.0), seen.astype(np.float64)
    tri_ok = tri_conf > 0
    lifts = np.asarray(lifts_m, np.float64).copy()
    lifts[1] = lifts[1] @ np.asarray(R_ab, np.float64)           # view b's lift into view a's axes (Rᵀ x)
    lift_ok = (np.asarray(lift_conf) > 0) & np.isfinite(lifts).all(-1)
    scale = metric_scale(tri, tri_ok, height_m)
    if scale is None:
        # never the whole body triangulated: the scale of the lift of view a onto the triangulated joints
        w = (tri_ok & lift_ok[0]).astype(np.float64)
        frames = w.sum(-1) >= MIN_PLACEMENT_JOINTS
        if frames.any():
            fit = procrustes(tri[frames], lifts[0][frames], w[frames], mode="frame")
            scale = float(np.median(fit.s))
    tri_m = tri * (scale if scale is not None else np.nan)
    fused = np.where(tri_ok[..., None], tri_m, np.nan)
    source = np.where(tri_ok, SOURCE_STEREO, SOURCE_NONE).astype(np.int8)
    placed = []
    for v in (0, 1):
        w = (tri_ok & lift_ok[v]).astype(np.float64)
        enough = w.sum(-1) >= MIN_PLACEMENT_JOINTS
        out = np.full((T, 17, 3), np.nan)
        if enough.any():
            fit = procrustes(lifts[v][enough], np.nan_to_num(tri_m[enough]), w[enough], mode="frame")
            out[enough] = fit.aligned
        # too few triangulated joints: the lift as it is (metres, view a's axes) about its own pelvis
        out[~enough] = lifts[v][~enough]
        placed.append(np.where(lift_ok[v][..., None], out, np.nan))
    conf = np.asarray(lift_conf, np.float64)
    prefer_b = (conf[1] > conf[0]) & lift_ok[1] | ~lift_ok[0]
    fill = np.where(prefer_b[..., None], placed[1], placed[0])
    fill_src = np.where(prefer_b, SOURCE_LIFT_B, SOURCE_LIFT_A)
    missing = ~tri_ok & np.isfinite(fill).all(-1)
    fused = np.where(missing[..., None], fill, fused)
    source = np.where(missing, fill_src, source).astype(np.int8)
    fused = fused - fused[:, :1]
    source = np.where(np.isfinite(fused).all(-1), source, SOURCE_NONE).astype(np.int8)
    return fused.astype(np.float32), source, scale


def lifts_onto_fused(pose3d_m: np.ndarray, conf: np.ndarray, fused_m: np.ndarray,
                     min_joints: int = MIN_PLACEMENT_JOINTS) -> tuple[np.ndarray, np.ndarray]:
    """Each view's lift placed onto the fused track by one similarity for the whole sequence, and its error.

    One transform per sequence (not per frame), so what is left is the lift's own error over time: its
    drift, flips and wrong depth stay visible instead of being fitted away frame by frame. The Review draws
    these placed lifts beside the fused skeleton and plots `error_mm`, so the distance drawn is the one plotted.

    Args:
        pose3d_m: (V, T, 17, 3) each view's lift, metres, root-relative in its own camera frame.
        conf: (V, T, 17) the lifts' 2D confidences (0 = the view does not see the joint).
        fused_m: (T, 17, 3) the fused track, metres (NaN = unknown).
        min_joints: a view with fewer usable (seen and fused) joints over the whole clip is not placed.

    Returns:
        placed (V, T, 17, 3) metres in the fused track's frame: every joint the lift predicts, seen or not
        (NaN for a view that could not be placed); error_mm (V, T, 17) distance of each placed joint the view
        sees to the fused joint (NaN where the view does not see it or the fused joint is unknown).
    """
    from mvcapture.core.procrustes import procrustes

    pose3d_m = np.asarray(pose3d_m, np.float64)
    conf = np.asarray(conf)
    fused_m = np.asarray(fused_m, np.float64)
    if pose3d_m.ndim != 4 or pose3d_m.shape[2:] != (17, 3) or conf.shape != pose3d_m.shape[:3] \
            or fused_m.shape != pose3d_m.shape[1:]:
        raise ValueError(f"expected lifts (V, T, 17, 3), confidences (V, T, 17) and a fused track (T, 17, 3); got "
                         f"{pose3d_m.shape}, {conf.shape} and {fused_m.shape}")
    fused_ok = np.isfinite(fused_m).all(-1)
    target = np.where(fused_ok[..., None], fused_m, 0.0)
    placed = np.full(pose3d_m.shape, np.nan)
    error_mm = np.full(conf.shape, np.nan)
    for v in range(pose3d_m.shape[0]):
        predicted = np.isfinite(pose3d_m[v]).all(-1)
        used = (conf[v] > 0) & predicted & fused_ok
        if used.sum() < min_joints:
            continue
        src = np.where(predicted[..., None], pose3d_m[v], 0.0)
        fit = procrustes(src, target, used.astype(np.float64), mode="sequence")
        placed[v] = np.where(predicted[..., None], fit.aligned, np.nan)
        error_mm[v] = np.where(used, np.linalg.norm(fit.aligned - target, axis=-1) * 1000.0, np.nan)
    return placed.astype(np.float32), error_mm.astype(np.float32)
