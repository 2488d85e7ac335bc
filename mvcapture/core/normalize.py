"""Coordinate conventions between pixels, the lifter's normalized 2.5D space and metres.

The lifter (MotionBERT convention) sees 2D as x' = (u - w/2) / (m/2), y' = (v - h/2) / (m/2) with
m = min(w, h) (aspect ratio kept), and predicts root-relative 2.5D poses in the same units: x', y' as in
the image, z' = f (Z - Z_root) / Z_root / (m/2). Metres come back either exactly (known focal length and
root position, synthetic data and evaluation) or through a body-size prior (in the wild).
Works on numpy arrays and torch tensors alike.
"""

from __future__ import annotations

import numpy as np

# Bone chain used as a body-size measure: legs (mean of both sides) + pelvis → spine → thorax → neck → head.
# For an adult it is ~0.95 × standing height (H36M mean bones: 0.896 m legs + 0.726 m trunk for ~1.70 m).
HEIGHT_PROXY_RATIO = 0.95
DEFAULT_ATHLETE_HEIGHT_M = 1.75


def _xp_stack(arrays, axis):
    if isinstance(arrays[0], np.ndarray):
        return np.stack(arrays, axis=axis)
    import torch

    return torch.stack(arrays, dim=axis)


def _norm(x):
    if isinstance(x, np.ndarray):
        return np.linalg.norm(x, axis=-1)
    return x.norm(dim=-1)


def _as_like(value, ref):
    if isinstance(ref, np.ndarray):
        return np.asarray(value, dtype=ref.dtype)
    import torch

    return torch.as_tensor(value, dtype=ref.dtype, device=ref.device)


def _check_last(points, name: str, dims: tuple[int, ...]):
    if points.ndim < 2 or points.shape[-2] != 17 or points.shape[-1] not in dims:
        want = " or ".join(f"(..., 17, {d})" for d in dims)
        raise ValueError(f"{name} must have shape {want}, got {tuple(points.shape)}")


def normalize_kp2d(kp2d_px, conf, image_size):
    """Pixels → lifter input.

    Args:
        kp2d_px: (..., T, 17, 2) pixels.
        conf: (..., T, 17) in [0, 1]; joints with conf 0 get coordinates 0.
        image_size: (..., 2) width, height in pixels (broadcast over T and joints).

    Returns:
        (..., T, 17, 3): x', y' normalized (see module doc) and the confidence as third channel.
    """
    _check_last(kp2d_px, "kp2d_px", (2,))
    if tuple(conf.shape) != tuple(kp2d_px.shape[:-1]):
        raise ValueError(f"conf must have shape {tuple(kp2d_px.shape[:-1])}, got {tuple(conf.shape)}")
    size = _as_like(image_size, kp2d_px)
    if size.shape[-1] != 2:
        raise ValueError(f"image_size must have shape (..., 2), got {tuple(size.shape)}")
    size = size[..., None, None, :]
    half_min = (size.min(-1) if isinstance(size, np.ndarray) else size.min(-1).values)[..., None] / 2
    xy = (kp2d_px - size / 2) / half_min
    valid = conf > 0
    xy = xy * valid[..., None]
    if isinstance(xy, np.ndarray):
        xy = np.nan_to_num(xy)
        return np.concatenate([xy, conf[..., None].astype(xy.dtype)], axis=-1)
    import torch

    xy = torch.nan_to_num(xy)
    return torch.cat([xy, conf[..., None].to(xy.dtype)], dim=-1)


def denormalize_xy(xy_norm, image_size):
    """Inverse of the 2D part of `normalize_kp2d`: (..., T, 17, 2) normalized → pixels."""
    size = _as_like(image_size, xy_norm)[..., None, None, :]
    half_min = (size.min(-1) if isinstance(size, np.ndarray) else size.min(-1).values)[..., None] / 2
    return xy_norm * half_min + size / 2


def camera_to_norm25d(pose_m, focal_px, image_size):
    """Camera-frame metres → root-relative normalized 2.5D (the lifter's training target).

    Principal point at the image centre, square pixels.

    Args:
        pose_m: (..., T, 17, 3) metres in the camera frame (x right, y down, z forward), z > 0.
        focal_px: (...,) focal length in pixels.
        image_size: (..., 2) width, height in pixels.

    Returns:
        (..., T, 17, 3) root-relative: x', y' projected and normalized, z' = f (Z - Z_root) / Z_root / (m/2).
    """
    _check_last(pose_m, "pose_m", (3,))
    f = _as_like(focal_px, pose_m)[..., None, None]
    size = _as_like(image_size, pose_m)
    half_min = (size.min(-1) if isinstance(size, np.ndarray) else size.min(-1).values)[..., None, None] / 2
    Z = pose_m[..., 2]
    u = f * pose_m[..., 0] / Z / half_min
    v = f * pose_m[..., 1] / Z / half_min
    z_root = Z[..., :1]
    z = f * (Z - z_root) / z_root / half_min
    out = _xp_stack([u - u[..., :1], v - v[..., :1], z], axis=-1)
    return out


def focal_from_projection(kp2d_px: np.ndarray, conf: np.ndarray, pose_m: np.ndarray, image_size: np.ndarray
                          ) -> np.ndarray:
    """Focal length (px) of each view from its 2D keypoints and camera-frame 3D: the closed-form least
    squares of the pinhole projection u − c = f · (X/Z, Y/Z) with the principal point c at the image centre
    (the model `camera_to_norm25d` assumes), weighted by confidence; f = Σ w (u − c)·a / Σ w a·a with a = (X/Z, Y/Z).

    Args:
        kp2d_px: (V, T, 17, 2) pixels. conf: (V, T, 17) in [0, 1] (0 = not used).
        pose_m: (V, T, 17, 3) metres in each camera's frame, z forward. image_size: (V, 2) width, height.

    Returns:
        (V,) focal lengths in pixels; NaN for a view without any joint with conf > 0 in front of the camera
        (z > 0), or whose fit is not positive.
    """
    kp = np.asarray(kp2d_px, np.float64)
    pose = np.asarray(pose_m, np.float64)
    centre = np.asarray(image_size, np.float64)[:, None, None, :] / 2
    Z = pose[..., 2]
    w = np.where((np.asarray(conf) > 0) & (Z > 1e-6) & np.all(np.isfinite(kp), -1), np.asarray(conf, np.float64), 0.0)
    a = pose[..., :2] / np.where(Z > 1e-6, Z, 1.0)[..., None]
    u = np.where(w[..., None] > 0, kp - centre, 0.0)
    num = (w[..., None] * u * a).sum(axis=(1, 2, 3))
    den = (w[..., None] * a * a).sum(axis=(1, 2, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        f = num / den
    return np.where((den > 0) & (f > 0), f, np.nan)


def norm25d_to_camera(pose_norm, focal_px, image_size, root_m):
    """Exact inverse of `camera_to_norm25d` given where the root is.

    Args:
        pose_norm: (..., T, 17, 3) root-relative normalized 2.5D.
        focal_px: (...,) pixels. image_size: (..., 2). root_m: (..., T, 3) root in camera metres.

    Returns:
        (..., T, 17, 3) root-relative metres in the camera frame.
    """
    _check_last(pose_norm, "pose_norm", (3,))
    f = _as_like(focal_px, pose_norm)[..., None, None]
    size = _as_like(image_size, pose_norm)
    half_min = (size.min(-1) if isinstance(size, np.ndarray) else size.min(-1).values)[..., None, None] / 2
    root = _as_like(root_m, pose_norm)
    z_root = root[..., None, 2]
    Z = z_root * (1 + pose_norm[..., 2] * half_min / f)
    u_root = f * root[..., None, 0] / z_root / half_min
    v_root = f * root[..., None, 1] / z_root / half_min
    X = (pose_norm[..., 0] + u_root) * half_min * Z / f
    Y = (pose_norm[..., 1] + v_root) * half_min * Z / f
    out = _xp_stack([X, Y, Z], axis=-1)
    return out - out[..., :1, :]


def height_proxy(pose):
    """(..., 17, 3) H36M-17 pose → (...,) body-size measure (legs + trunk bone chain), same units."""
    _check_last(pose, "pose", (2, 3))
    legs = 0.5 * (_norm(pose[..., 1, :] - pose[..., 2, :]) + _norm(pose[..., 2, :] - pose[..., 3, :])
                  + _norm(pose[..., 4, :] - pose[..., 5, :]) + _norm(pose[..., 5, :] - pose[..., 6, :]))
    trunk = (_norm(pose[..., 0, :] - pose[..., 7, :]) + _norm(pose[..., 7, :] - pose[..., 8, :])
             + _norm(pose[..., 8, :] - pose[..., 9, :]) + _norm(pose[..., 9, :] - pose[..., 10, :]))
    return legs + trunk


def norm25d_to_metres(pose_norm, height_m: float = DEFAULT_ATHLETE_HEIGHT_M):
    """In the wild: normalized 2.5D (..., T, 17, 3) → metres, scaled so the athlete has `height_m`.

    One scale per sequence (median body size over its frames), so motion keeps its proportions.
    """
    _check_last(pose_norm, "pose_norm", (3,))
    proxy = height_proxy(pose_norm)
    if isinstance(proxy, np.ndarray):
        size = np.median(proxy, axis=-1)[..., None, None, None]
        size = np.maximum(size, 1e-6)
    else:
        size = proxy.median(dim=-1).values[..., None, None, None].clamp_min(1e-6)
    return pose_norm * (HEIGHT_PROXY_RATIO * height_m / size)
