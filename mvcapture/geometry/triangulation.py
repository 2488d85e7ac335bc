"""Triangulation of keypoints seen by several calibrated views: the confidence-weighted linear (DLT)
method of Hartley & Zisserman (2nd ed., 12.2), batched over frames and joints."""

from __future__ import annotations

import numpy as np


def projection_from_KRt(K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """P = K [R | t] (H&Z eq. 6.8): (3, 3), (3, 3), (3,) → (3, 4)."""
    return np.asarray(K, np.float64) @ np.hstack([np.asarray(R, np.float64), np.asarray(t, np.float64).reshape(3, 1)])


def two_view_projections(R: np.ndarray, t: np.ndarray, focal_a: float, focal_b: float) -> np.ndarray:
    """(2, 3, 4) projection matrices of two centred-pixel cameras: view a at the origin, view b seeing X at
    R X + t; focal lengths in pixels, principal points at (0, 0)."""
    return np.stack([projection_from_KRt(np.diag([focal_a, focal_a, 1.0]), np.eye(3), np.zeros(3)),
                     projection_from_KRt(np.diag([focal_b, focal_b, 1.0]), R, t)])


def triangulate_points(P: np.ndarray, points_px: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Confidence-weighted DLT over V views.

    Args:
        P: (V, 3, 4) projection matrices.
        points_px: (V, ..., 2) pixels of the same points in each view.
        weight: (V, ...) ≥ 0 weights (0 = not seen in that view).

    Returns:
        (..., 3) points; NaN where fewer than two views have a positive weight.
    """
    P = np.asarray(P, np.float64)
    x = np.asarray(points_px, np.float64)
    w = np.asarray(weight, np.float64)
    V = P.shape[0]
    if P.shape[1:] != (3, 4) or x.shape[0] != V or x.shape[-1] != 2 or w.shape != x.shape[:-1]:
        raise ValueError(f"P must be (V, 3, 4), points_px (V, ..., 2), weight (V, ...); got {P.shape}, "
                         f"{x.shape}, {w.shape}")
    batch = x.shape[1:-1]
    xv = np.moveaxis(x, 0, -2)                     # (..., V, 2)
    wv = np.moveaxis(w, 0, -1)                     # (..., V)
    # rows u·P3 − P1 and v·P3 − P2 per view: (..., V, 2, 4)
    rows = xv[..., :, :, None] * P[:, 2][:, None, :] - P[:, :2]
    A = rows.reshape(batch + (2 * V, 4)) * np.repeat(wv, 2, axis=-1)[..., None]
    _, _, vt = np.linalg.svd(A)
    Xh = vt[..., -1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        X = Xh[..., :3] / Xh[..., 3:]
    enough = (wv > 0).sum(-1) >= 2
    return np.where(enough[..., None] & np.isfinite(X), X, np.nan)


def reprojection_error_px(P: np.ndarray, points3d: np.ndarray, points_px: np.ndarray) -> np.ndarray:
    """(V, 3, 4), (..., 3), (V, ..., 2) → (V, ...) distance in pixels between projection and observation."""
    P = np.asarray(P, np.float64)
    X = np.asarray(points3d, np.float64)
    Xh = np.concatenate([X, np.ones(X.shape[:-1] + (1,))], -1)
    proj = np.einsum("vij,...j->v...i", P, Xh)
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = proj[..., :2] / proj[..., 2:]
    return np.linalg.norm(uv - np.asarray(points_px, np.float64), axis=-1)
