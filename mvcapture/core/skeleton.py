"""Skeleton definitions (h36m17 internal order, coco17 detector order) and COCO → H36M mapping.

Joint orders are those of FORMATS.md. 2D is in pixels, 3D in metres; mapping works on any leading dims.
"""

from __future__ import annotations

import numpy as np

H36M17_JOINTS = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax",
    "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)
COCO17_JOINTS = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)

# Left and right joints that swap under a horizontal flip (MOTIONBERT.md).
H36M17_LEFT = (4, 5, 6, 11, 12, 13)
H36M17_RIGHT = (1, 2, 3, 14, 15, 16)
H36M17_FLIP_PERMUTATION = np.arange(17)
H36M17_FLIP_PERMUTATION[list(H36M17_LEFT)] = H36M17_RIGHT
H36M17_FLIP_PERMUTATION[list(H36M17_RIGHT)] = H36M17_LEFT

COCO17_LEFT = (1, 3, 5, 7, 9, 11, 13, 15)
COCO17_RIGHT = (2, 4, 6, 8, 10, 12, 14, 16)
COCO17_FLIP_PERMUTATION = np.arange(17)
COCO17_FLIP_PERMUTATION[list(COCO17_LEFT)] = COCO17_RIGHT
COCO17_FLIP_PERMUTATION[list(COCO17_RIGHT)] = COCO17_LEFT

# Limb groups whose left/right labels a detector exchanges together: legs with the hips, arms with the shoulders.
H36M17_LIMB_GROUPS = ((1, 2, 3, 4, 5, 6), (11, 12, 13, 14, 15, 16))
COCO17_LIMB_GROUPS = ((11, 12, 13, 14, 15, 16), (5, 6, 7, 8, 9, 10))
# (left, right) shoulder and hip joints: the torso that the side repair and the stereo calibration measure.
H36M17_SHOULDERS, H36M17_HIPS = (11, 14), (4, 1)
COCO17_SHOULDERS, COCO17_HIPS = (5, 6), (11, 12)

# Bones as (parent, child) pairs; the kinematic tree of h36m17 rooted at the pelvis.
H36M17_BONES = (
    (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
    (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16),
)
H36M17_PARENTS = np.full(17, -1)
for _p, _c in H36M17_BONES:
    H36M17_PARENTS[_c] = _p
COCO17_BONES = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12),
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)

# Joints copied one-to-one from COCO-17: h36m index -> coco index.
_COCO_DIRECT = {1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 9: 0, 11: 5, 12: 7, 13: 9, 14: 6, 15: 8, 16: 10}
# Head top sits above the ears, away from the thorax, by this fraction of the thorax→ears distance.
HEAD_TOP_EXTENSION = 0.5


def _check_joints(points: np.ndarray, name: str, dims: tuple[int, ...]) -> np.ndarray:
    points = np.asarray(points)
    if points.ndim < 2 or points.shape[-2] != 17 or points.shape[-1] not in dims:
        want = " or ".join(f"(..., 17, {d})" for d in dims)
        raise ValueError(f"{name} must have shape {want}, got {points.shape}")
    return points


def coco_to_h36m(points: np.ndarray, conf: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Map COCO-17 joints to H36M-17 (2D pixels or 3D metres).

    Derived joints: pelvis = mid-hips, thorax = mid-shoulders, spine = mid(pelvis, thorax),
    neck/nose (9) = nose, head top (10) = mid-ears extended away from the thorax. A derived joint gets
    the minimum confidence of its sources.

    Args:
        points: (..., 17, D) with D in {2, 3}, COCO-17 order.
        conf: optional (..., 17) confidences in [0, 1].

    Returns:
        (..., 17, D) H36M-17 points (same dtype) and (..., 17) confidences (None when `conf` is None).
    """
    points = _check_joints(points, "points", (2, 3))
    if points.size == 0:
        raise ValueError(f"points must not be empty: shape (..., 17, D) with at least one frame, got {points.shape}")
    if not np.issubdtype(points.dtype, np.number) or not np.isfinite(points).all():
        raise ValueError("points must hold finite numbers, shape (..., 17, D) (a joint the detector missed has "
                         "confidence 0, not NaN coordinates)")
    if conf is not None:
        conf = np.asarray(conf)
        if conf.shape != points.shape[:-1]:
            raise ValueError(f"conf must have shape {points.shape[:-1]}, got {conf.shape}")
    out = np.zeros_like(points)
    for h, c in _COCO_DIRECT.items():
        out[..., h, :] = points[..., c, :]
    pelvis = 0.5 * (points[..., 11, :] + points[..., 12, :])
    thorax = 0.5 * (points[..., 5, :] + points[..., 6, :])
    ears = 0.5 * (points[..., 3, :] + points[..., 4, :])
    out[..., 0, :] = pelvis
    out[..., 8, :] = thorax
    out[..., 7, :] = 0.5 * (pelvis + thorax)
    out[..., 10, :] = ears + HEAD_TOP_EXTENSION * (ears - thorax)
    if conf is None:
        return out, None
    out_conf = np.zeros_like(conf)
    for h, c in _COCO_DIRECT.items():
        out_conf[..., h] = conf[..., c]
    hips = np.minimum(conf[..., 11], conf[..., 12])
    shoulders = np.minimum(conf[..., 5], conf[..., 6])
    out_conf[..., 0] = hips
    out_conf[..., 8] = shoulders
    out_conf[..., 7] = np.minimum(hips, shoulders)
    out_conf[..., 10] = np.minimum(np.minimum(conf[..., 3], conf[..., 4]), shoulders)
    return out, out_conf


def flip_h36m(points: np.ndarray, width: float | None = None) -> np.ndarray:
    """Mirror H36M-17 joints horizontally and swap left/right.

    Args:
        points: (..., 17, D). With `width` (pixels), x -> width - 1 - x; without, x -> -x
            (normalized or camera coordinates).
    """
    points = _check_joints(points, "points", (2, 3))
    out = points[..., H36M17_FLIP_PERMUTATION, :].copy()
    out[..., 0] = (width - 1 - out[..., 0]) if width is not None else -out[..., 0]
    return out


def bone_lengths(points: np.ndarray) -> np.ndarray:
    """(..., 17, D) H36M-17 joints -> (..., 16) bone lengths in the same unit, order of H36M17_BONES."""
    points = _check_joints(points, "points", (2, 3))
    parents = np.array([p for p, _ in H36M17_BONES])
    children = np.array([c for _, c in H36M17_BONES])
    return np.linalg.norm(points[..., children, :] - points[..., parents, :], axis=-1)
