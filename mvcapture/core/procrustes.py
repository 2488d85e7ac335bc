"""Similarity Procrustes (scale, rotation, translation): one batched, differentiable torch implementation
with a numpy entry point. Used by the consistency loss (sequence mode), by PA-MPJPE (frame mode) and by the
GUI overlay. Row-vector convention of the paper: aligned = s * src @ R + t.

Degenerate inputs (all joints at one point, repeated singular values, zero motion) have no unique rotation
and plain autograd through `torch.linalg.svd` gives inf/NaN there (its backward divides by σ_i² − σ_j²).
We therefore never differentiate the SVD itself: the rotation is computed by `_SafeRotation`, whose
backward is the closed-form derivative of the (reflection-corrected) polar factor R = U D Vᵀ,
dR = U' Ω Vᵀ with Ω_ij = (X_ij − X_ji) / (σ'_i + σ'_j), X = U'ᵀ dH V (U' = U D, σ' = D σ). Its only
singular denominators σ'_i + σ'_j are regularised as d / (d² + ε²) with ε = √eps(dtype) · σ_max + tiny:
exact (to ~eps) wherever the rotation is well defined, finite (and zero for an all-zero covariance)
where it is not. The scale divides by the source variance + eps(dtype)², so it is finite as well.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

MODES = ("sequence", "frame")

# Largest ‖centroid‖² / variance for which the unweighted fit uses raw (uncentred) moments: the
# cancellation then costs at most ~1e3·eps relative (float32 ~1e-4 — far below pose noise; float64 ~1e-10).
CANCELLATION_LIMIT = {torch.float32: 1e3, torch.float64: 1e6}


class SimilarityTransform(NamedTuple):
    """Result of `procrustes`: aligned = s * src @ R + t.

    sequence mode: aligned (..., T, J, 3), s (...,), R (..., 3, 3), t (..., 3).
    frame mode:    aligned (..., T, J, 3), s (..., T), R (..., T, 3, 3), t (..., T, 3).
    """

    aligned: object
    s: object
    R: object
    t: object


class _SafeRotation(torch.autograd.Function):
    """H (..., 3, 3) → R = argmax_{R ∈ SO(3)} tr(Rᵀ H) with a finite backward (see module doc)."""

    @staticmethod
    def forward(ctx, H):
        U, S, Vh = torch.linalg.svd(H)
        det = torch.linalg.det(U @ Vh)
        d = torch.ones_like(S)
        d[..., 2] = torch.where(det < 0, -1.0, 1.0).to(S.dtype)
        Ud = U * d[..., None, :]
        R = Ud @ Vh
        ctx.save_for_backward(Ud, S * d, Vh)
        return R

    @staticmethod
    def backward(ctx, grad_R):
        Ud, sig, Vh = ctx.saved_tensors
        M = Ud.transpose(-1, -2) @ grad_R @ Vh.transpose(-1, -2)
        den = sig[..., :, None] + sig[..., None, :]
        finfo = torch.finfo(sig.dtype)
        eps = (finfo.eps ** 0.5) * sig.abs().amax(-1)[..., None, None] + finfo.tiny ** 0.5
        grad_X = (M - M.transpose(-1, -2)) * (den / (den * den + eps * eps))
        return Ud @ grad_X @ Vh


def _check_points(x, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor of shape (..., T, J, 3) like the other points (torch "
                         f"and numpy cannot be mixed; numpy arrays go through procrustes_np), got {type(x).__name__}")
    if x.ndim < 3 or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., T, J, 3), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty: shape (..., T, J, 3) with T, J ≥ 1, got {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"{name} must be float32 or float64, got {x.dtype}")


def _check_finite(moment, name: str) -> None:
    # NaN/inf anywhere in a point array reaches its (weighted) mean; checking the mean avoids a full pass.
    if not bool(torch.isfinite(moment).all()):
        raise ValueError(f"{name} contains NaN or inf; expected finite (..., T, J, 3) coordinates")


def _check_pair(src, dst, weights, names=("src", "dst", "weights")) -> None:
    _check_points(src, names[0])
    _check_points(dst, names[1])
    if src.shape != dst.shape:
        raise ValueError(f"{names[1]} must have the same shape as {names[0]} {tuple(src.shape)}, got {tuple(dst.shape)}")
    if weights is not None:
        if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != tuple(src.shape[:-1]):
            shape = tuple(weights.shape) if hasattr(weights, "shape") else type(weights).__name__
            raise ValueError(f"{names[2]} must have shape (..., T, J) = {tuple(src.shape[:-1])}, got {shape}")
        if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
            raise ValueError(f"{names[2]} must be finite and ≥ 0, shape (..., T, J)")


def procrustes_torch(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None,
                     mode: str = "sequence", allow_scale: bool = True) -> SimilarityTransform:
    """Best similarity transform mapping `src` onto `dst` in the (weighted) least-squares sense.

    Minimises Σ w ‖s·src·R + t − dst‖² over s > 0, R ∈ SO(3) (reflections excluded), t, in closed form
    (Umeyama). Differentiable; finite gradients also on degenerate input (see module doc).

    Args:
        src: (..., T, J, 3) points to move, any device; float32/float64 (half precision is computed and
            returned in float32, also under autocast).
        dst: (..., T, J, 3) target points.
        weights: (..., T, J) ≥ 0 or None (all 1). A joint with weight 0 does not steer the fit;
            a sequence (or frame) with zero total weight gets s = 0, t = 0.
        mode: "sequence": one transform for all frames and joints (the paper's L_c);
            "frame": one transform per frame (PA-MPJPE, moving cameras).
        allow_scale: if False, s = 1 (rigid alignment).

    Returns:
        SimilarityTransform(aligned, s, R, t).

    Shape:
        sequence: aligned (..., T, J, 3), s (...,), R (..., 3, 3), t (..., 3).
        frame:    aligned (..., T, J, 3), s (..., T), R (..., T, 3, 3), t (..., T, 3).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    _check_pair(src, dst, weights)
    if src.dtype not in (torch.float32, torch.float64):  # half precision: SVD needs float32
        src, dst = src.float(), dst.float()
    dst = dst.to(src.dtype)
    # Autocast would run the moments in half precision; the fit is cheap, keep it in float32/64.
    with torch.autocast(device_type=src.device.type, enabled=False):
        return _fit(src, dst, weights, mode, allow_scale)


def _fit(src, dst, weights, mode, allow_scale) -> SimilarityTransform:
    shape = src.shape
    if mode == "sequence":
        x = src.reshape(*shape[:-3], shape[-3] * shape[-2], 3)
        y = dst.reshape(x.shape)
        w = weights
    else:
        x, y, w = src, dst, weights
    # x, y (B', N, 3) with B' all leading dims flattened. Moments by bmm, and only x gets a centred copy
    # (plus its weighted copy with weights): memory traffic dominates the cost at B·T·J ~ 4e6 points.
    lead = x.shape[:-2]
    n = x.shape[-2]
    x = x.reshape(-1, n, 3)
    y = y.reshape(-1, n, 3)
    if w is None:
        mu_x = x.mean(-2, keepdim=True)
        mu_y = y.mean(-2, keepdim=True)
        # Moments of the raw points, no centred copy: H = E[x yᵀ] − μx μyᵀ, var = E‖x‖² − ‖μx‖². They
        # lose ~eps·‖μx‖²/var to cancellation, so points far from the origin relative to their spread
        # (above CANCELLATION_LIMIT, e.g. float32 poses metres away from the origin) take the centred path.
        # (NaN input fails the comparison, takes the centred path and is reported by _check_finite below.)
        mu_sq = mu_x.square().sum((-2, -1))
        var_x = torch.linalg.vector_norm(x, dim=(-2, -1)) ** 2 / n - mu_sq
        if bool((mu_sq <= CANCELLATION_LIMIT[x.dtype] * var_x).all()):
            H = x.transpose(-1, -2) @ y / n - mu_x.transpose(-1, -2) @ mu_y
            xc = None
        else:
            xc = x - mu_x
            H = xc.transpose(-1, -2) @ (y - mu_y) / n
            var_x = torch.linalg.vector_norm(xc, dim=(-2, -1)) ** 2 / n
    else:
        w = w.reshape(-1, 1, n).to(x.dtype)
        w = w / w.sum(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        mu_x = w @ x
        mu_y = w @ y
        xc = x - mu_x
        xcw = xc.transpose(-1, -2) * w
        H = xcw @ y
        var_x = (xcw @ xc).diagonal(dim1=-2, dim2=-1).sum(-1)
    _check_finite(mu_x, "src")
    _check_finite(mu_y, "dst")
    R = _SafeRotation.apply(H)
    if allow_scale:
        s = (R * H).sum((-1, -2)) / (var_x + torch.finfo(x.dtype).eps ** 2)
    else:
        s = torch.ones(H.shape[:-2], dtype=x.dtype, device=x.device)
    t = mu_y - s[:, None, None] * (mu_x @ R)
    sR = s[:, None, None] * R
    aligned = torch.baddbmm(t, x, sR) if xc is None else torch.baddbmm(mu_y, xc, sR)
    s, R, t = s.reshape(lead), R.reshape(*lead, 3, 3), t.reshape(*lead, 3)
    return SimilarityTransform(aligned.reshape(shape), s, R, t)


def procrustes_np(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None,
                  mode: str = "sequence", allow_scale: bool = True) -> SimilarityTransform:
    """numpy entry point of `procrustes_torch` (same algorithm, run through torch on CPU, no grad).

    Same shapes; returns numpy arrays in the dtype of `src` (float32 or float64; other dtypes → float64).
    """
    def to_t(a, name):
        a = np.asarray(a)
        if a.dtype not in (np.float32, np.float64):
            if not np.issubdtype(a.dtype, np.number):
                raise ValueError(f"{name} must be a numeric array, got dtype {a.dtype}")
            a = a.astype(np.float64)
        return torch.from_numpy(np.ascontiguousarray(a))

    src_t, dst_t = to_t(src, "src"), to_t(dst, "dst")
    dst_t = dst_t.to(src_t.dtype)
    w_t = None if weights is None else to_t(weights, "weights").to(src_t.dtype)
    with torch.no_grad():
        out = procrustes_torch(src_t, dst_t, w_t, mode=mode, allow_scale=allow_scale)
    return SimilarityTransform(*(v.numpy() for v in out))


def procrustes(src, dst, weights=None, mode: str = "sequence", allow_scale: bool = True) -> SimilarityTransform:
    """Dispatch to `procrustes_np` (numpy arrays) or `procrustes_torch` (tensors); see those for shapes."""
    if isinstance(src, torch.Tensor):
        return procrustes_torch(src, dst, weights, mode=mode, allow_scale=allow_scale)
    return procrustes_np(src, dst, weights, mode=mode, allow_scale=allow_scale)


def optical_axis_angle_deg(R):
    """Angle in degrees, in [0, 180], between the optical axes (z) of two cameras, from the row-vector
    rotation R (..., 3, 3) that maps the second camera's coordinates onto the first's (x_0 = x_v @ R, as
    `procrustes` returns it): camera v's z axis in camera 0 is R[2], so the angle is acos(R[2, 2]).

    This is "the angle between the cameras" a user places (about 90° works best); the rotation angle
    (`rotation_angle_deg`) is larger when the cameras are also tilted or rolled differently.
    Shape: (..., 3, 3) → (...,) (numpy, float64; a single R gives a float).
    """
    R = np.asarray(R, np.float64)
    if R.ndim < 2 or R.shape[-2:] != (3, 3):
        raise ValueError(f"R must have shape (..., 3, 3), got {R.shape}")
    angle = np.degrees(np.arccos(np.clip(R[..., 2, 2], -1.0, 1.0)))
    return float(angle) if angle.ndim == 0 else angle


def rotation_angle_deg(R):
    """Rotation angle in degrees, in [0, 180], of rotation matrices R (..., 3, 3) (numpy or torch).

    Uses atan2(‖axis‖, tr R − 1), accurate near 0° and 180° and differentiable away from 0°.
    Shape: (..., 3, 3) → (...,).
    """
    is_np = not isinstance(R, torch.Tensor)
    Rt = torch.from_numpy(np.asarray(R, dtype=np.float64)) if is_np else R
    if Rt.ndim < 2 or tuple(Rt.shape[-2:]) != (3, 3):
        raise ValueError(f"R must have shape (..., 3, 3), got {tuple(Rt.shape)}")
    axis = torch.stack([Rt[..., 2, 1] - Rt[..., 1, 2], Rt[..., 0, 2] - Rt[..., 2, 0],
                        Rt[..., 1, 0] - Rt[..., 0, 1]], -1)
    cos2 = Rt.diagonal(dim1=-2, dim2=-1).sum(-1) - 1
    angle = torch.rad2deg(torch.atan2(torch.linalg.vector_norm(axis, dim=-1), cos2))
    return angle.numpy() if is_np else angle
