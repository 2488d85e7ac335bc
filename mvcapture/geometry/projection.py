"""Pinhole cameras for the two-view geometry: intrinsic matrices, pixels ↔ normalized image coordinates,
projection, and the angles between two cameras (Hartley & Zisserman, 2nd ed., ch. 6).

Convention: a camera frame has x right, y down, z forward; view b sees a point X_a of view a's frame at
X_b = R X_a + t.
"""

from __future__ import annotations

import numpy as np


def intrinsic_matrix(focal_px, principal_px) -> np.ndarray:
    """(3, 3) K from a focal length (pixels; a scalar or (fx, fy)) and a principal point (2,) pixels."""
    f = np.broadcast_to(np.asarray(focal_px, np.float64), (2,))
    c = np.asarray(principal_px, np.float64)
    if not (np.isfinite(f).all() and (f > 0).all() and np.isfinite(c).all() and c.shape == (2,)):
        raise ValueError(f"focal_px must be > 0 and principal_px a finite (2,), got {focal_px!r}, {principal_px!r}")
    return np.array([[f[0], 0.0, c[0]], [0.0, f[1], c[1]], [0.0, 0.0, 1.0]])


def focal_from_vfov(vfov_deg, image_height_px) -> np.ndarray:
    """Focal length in pixels of a camera with vertical field of view `vfov_deg` over `image_height_px`."""
    return 0.5 * np.asarray(image_height_px, np.float64) / np.tan(np.radians(np.asarray(vfov_deg)) / 2)


def vfov_from_focal(focal_px, image_height_px) -> np.ndarray:
    """Vertical field of view in degrees of a focal length in pixels."""
    return np.degrees(2 * np.arctan(0.5 * np.asarray(image_height_px, np.float64) / np.asarray(focal_px)))


def pixels_to_normalized(points_px: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(..., 2) pixels → (..., 2) normalized image coordinates (x/z, y/z) of an undistorted pinhole K."""
    points_px = np.asarray(points_px, np.float64)
    if points_px.shape[-1] != 2:
        raise ValueError(f"points_px must have shape (..., 2), got {points_px.shape}")
    return (points_px - K[:2, 2]) / np.array([K[0, 0], K[1, 1]])


def normalized_to_pixels(points_n: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(..., 2) normalized image coordinates → (..., 2) pixels of pinhole K."""
    return np.asarray(points_n, np.float64) * np.array([K[0, 0], K[1, 1]]) + K[:2, 2]


def project(points: np.ndarray, K: np.ndarray, R: np.ndarray | None = None, t: np.ndarray | None = None
            ) -> np.ndarray:
    """Project (..., 3) points (metres or any unit) through x = K (R X + t) → (..., 2) pixels.

    Points at or behind the camera (z ≤ 1e-9) project to NaN.
    """
    X = np.asarray(points, np.float64)
    if X.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., 3), got {X.shape}")
    if R is not None:
        X = X @ np.asarray(R, np.float64).T
    if t is not None:
        X = X + np.asarray(t, np.float64)
    z = X[..., 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        xn = np.where(z > 1e-9, X[..., :2] / z, np.nan)
    return normalized_to_pixels(xn, K)


def rotation_angle_deg(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices → (...,) rotation angles in degrees (geodesic distance to I)."""
    R = np.asarray(R, np.float64)
    c = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def optical_axes_angle_deg(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) relative rotation a → b → (...,) angle between the two cameras' optical axes in degrees.

    View b's optical axis in a's frame is Rᵀ e_z, so the angle is acos(R[2, 2]).
    """
    R = np.asarray(R, np.float64)
    return np.degrees(np.arccos(np.clip(R[..., 2, 2], -1.0, 1.0)))


def skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) vectors → (..., 3, 3) cross-product matrices [v]×."""
    v = np.asarray(v, np.float64)
    z = np.zeros(v.shape[:-1])
    return np.stack([np.stack([z, -v[..., 2], v[..., 1]], -1),
                     np.stack([v[..., 2], z, -v[..., 0]], -1),
                     np.stack([-v[..., 1], v[..., 0], z], -1)], -2)


def essential_from_Rt(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """E = [t]× R (H&Z eq. 9.12), so that x_bᵀ E x_a = 0 for normalized homogeneous points. (..., 3, 3)."""
    return skew(t) @ np.asarray(R, np.float64)


def unit_vector_from_angles(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Spherical angles (radians) → (..., 3) unit vectors (sin θ cos φ, sin θ sin φ, cos θ)."""
    return np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)


def angles_from_unit_vector(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) unit vectors → spherical angles θ, φ (radians); inverse of `unit_vector_from_angles`."""
    v = np.asarray(v, np.float64)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return np.arccos(np.clip(v[..., 2], -1, 1)), np.arctan2(v[..., 1], v[..., 0])
