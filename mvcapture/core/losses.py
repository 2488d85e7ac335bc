"""Training losses (torch): multi-view consistency L_con (PAPER.md), 2D reprojection for uncalibrated
cameras, the MotionBERT 3D terms L_pos / L_vel / L_scale, and a guard against the collapse of all joints
to one point. Poses are root-relative normalized 2.5D (core/normalize.py) unless stated.

Reprojection model. The lifter's x', y' are, by construction of the normalized 2.5D space, the
perspective-projected image coordinates of the joints relative to the root, in units of min(w, h)/2,
the same units as the normalized 2D input; camera intrinsics are absorbed by the normalisation. So the
projection is orthographic on (x', y') with a per-frame 2D translation (the root's unknown image
position, fitted in closed form, confidence-weighted, instead of trusting the detected pelvis) and scale
1. Keeping the scale fixed is what pins the body size to the 2D evidence: a fitted scale would make the
loss blind to the prediction's size and leave L_con free to shrink it. `fit_scale=True` fits one scale
per sequence (closed form) for predictions in other units (e.g. metres); then use `collapse_guard`.

Collapse guard. L_con aligns view a onto view b with a free scale, so it is 0 when every view outputs all
joints at one point. `collapse_guard` is a hinge on the predicted body size relative to the 2D input:
relu(1 − size(pred x'y') / (min_ratio · size(2D))), size = confidence-weighted RMS distance of the joints
from their per-frame centroid over the sequence; it is 1 for a collapsed pose, 0 for any plausible one.
`loss_2d_con` adds it to reprojection + λ_con·L_con, so a collapsed model scores ≥ λ_guard + the 2D
spread instead of ~0.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from mvcapture.core.procrustes import MODES, procrustes_torch

DEFAULT_MIN_SIZE_RATIO = 0.5


def _check(x, name: str, shape: str, ndim: int, last: int | None) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor of shape {shape}, got {type(x).__name__}")
    if x.ndim != ndim or (last is not None and x.shape[-1] != last):
        raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty: shape {shape}, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf; expected finite values of shape {shape}")


def _check_same(x, ref_shape, name: str, shape: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor of shape {shape} = {tuple(ref_shape)}, got {type(x).__name__}")
    if tuple(x.shape) != tuple(ref_shape):
        raise ValueError(f"{name} must have shape {shape} = {tuple(ref_shape)}, got {tuple(x.shape)}")


def view_pairs(num_views: int) -> list[tuple[int, int]]:
    """All unordered view pairs (a, b), a < b: num_views·(num_views − 1)/2 of them."""
    if num_views < 2:
        raise ValueError(f"consistency needs at least 2 views, got {num_views}")
    return [(a, b) for a in range(num_views) for b in range(a + 1, num_views)]


def consistency_loss(poses: torch.Tensor, weights: torch.Tensor | None = None,
                     mode: str = "sequence") -> torch.Tensor:
    """Multi-view consistency L_con (PAPER.md): for every view pair (a, b), align a onto b with one
    similarity transform (per sequence, or per frame in "frame" mode), take the mean per-joint Euclidean
    distance (not squared), average over the pairs, then over the batch.

    With weights, a joint counts in a pair with weight w_a·w_b, both in the fit and in the mean, so a
    joint missing in either view neither steers the alignment nor adds to the loss.
    Minimised by collapse (all joints at one point): pair it with `collapse_guard` (see `loss_2d_con`).

    Args:
        poses: (B, V, T, J, 3) predicted poses of the same motion from V ≥ 2 views.
        weights: (B, V, T, J) ≥ 0 (e.g. 2D confidences) or None.
        mode: "sequence" (fixed cameras) or "frame" (moving cameras).

    Returns:
        Scalar tensor in the units of `poses`.

    Shape:
        poses (B, V, T, J, 3), weights (B, V, T, J) → ().
    """
    _check(poses, "poses", "(B, V, T, J, 3)", 5, 3)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    pairs = view_pairs(poses.shape[1])
    idx_a = torch.tensor([a for a, _ in pairs], device=poses.device)
    idx_b = torch.tensor([b for _, b in pairs], device=poses.device)
    src, dst = poses[:, idx_a], poses[:, idx_b]  # (B, P, T, J, 3)
    if weights is None:
        w = None
    else:
        _check(weights, "weights", "(B, V, T, J)", 4, None)
        _check_same(weights, poses.shape[:-1], "weights", "(B, V, T, J)")
        w = (weights[:, idx_a] * weights[:, idx_b]).to(poses.dtype)
    aligned = procrustes_torch(src, dst, w, mode=mode).aligned
    err = torch.linalg.vector_norm(aligned - dst, dim=-1)  # (B, P, T, J)
    if w is None:
        per_pair = err.mean((-1, -2))
    else:
        per_pair = (err * w).sum((-1, -2)) / w.sum((-1, -2)).clamp_min(torch.finfo(poses.dtype).eps)
    return per_pair.mean()


def _weighted_centre(xy: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
    """(B, T, J, 2), (B, T, J) → (B, T, 1, 2) confidence-weighted per-frame centroid."""
    total = conf.sum(-1, keepdim=True).clamp_min(torch.finfo(xy.dtype).eps)
    return ((conf[..., None] * xy).sum(-2) / total)[..., None, :]


def _check_2d(pred3d, kp2d_norm, conf) -> None:
    _check(pred3d, "pred3d", "(B, T, J, 3)", 4, 3)
    _check(kp2d_norm, "kp2d_norm", "(B, T, J, 2)", 4, 2)
    _check(conf, "conf", "(B, T, J)", 3, None)
    _check_same(kp2d_norm, (*pred3d.shape[:-1], 2), "kp2d_norm", "(B, T, J, 2)")
    _check_same(conf, pred3d.shape[:-1], "conf", "(B, T, J)")


def reprojection_loss(pred3d: torch.Tensor, kp2d_norm: torch.Tensor, conf: torch.Tensor,
                      fit_scale: bool = False) -> torch.Tensor:
    """2D reprojection loss L_reproj for uncalibrated cameras (projection model: module doc).

    Projects pred3d orthographically on (x', y'), fits the per-frame 2D translation (and with
    `fit_scale` one scale per sequence) in closed form by confidence-weighted least squares, and
    returns the confidence-weighted mean per-joint Euclidean distance to the 2D input.

    Args:
        pred3d: (B, T, J, 3) root-relative normalized 2.5D prediction.
        kp2d_norm: (B, T, J, 2) normalized 2D input (x', y' of `normalize_kp2d`).
        conf: (B, T, J) detection confidences ≥ 0 (0 = missing).
        fit_scale: fit a per-sequence scale too (predictions not in normalized image units).

    Returns:
        Scalar tensor, normalized image units.

    Shape:
        pred3d (B, T, J, 3), kp2d_norm (B, T, J, 2), conf (B, T, J) → ().
    """
    _check_2d(pred3d, kp2d_norm, conf)
    conf = conf.to(pred3d.dtype)
    p = pred3d[..., :2]
    p_c = p - _weighted_centre(p, conf)
    q_c = kp2d_norm - _weighted_centre(kp2d_norm, conf)
    if fit_scale:
        num = (conf[..., None] * p_c * q_c).sum((-1, -2, -3))
        den = (conf[..., None] * p_c * p_c).sum((-1, -2, -3))
        scale = (num / (den + torch.finfo(p.dtype).eps ** 2))[:, None, None, None]
        p_c = scale * p_c
    err = torch.linalg.vector_norm(p_c - q_c, dim=-1)
    return (conf * err).sum() / conf.sum().clamp_min(torch.finfo(p.dtype).eps)


def _size_2d(xy: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
    """(B, T, J, 2), (B, T, J) → (B,) confidence-weighted RMS distance from the per-frame centroid."""
    sq = (conf * ((xy - _weighted_centre(xy, conf)) ** 2).sum(-1)).sum((-1, -2))
    mean_sq = sq / conf.sum((-1, -2)).clamp_min(torch.finfo(xy.dtype).eps)
    return torch.sqrt(mean_sq + torch.finfo(xy.dtype).eps)


def collapse_guard(pred3d: torch.Tensor, kp2d_norm: torch.Tensor, conf: torch.Tensor,
                   min_ratio: float = DEFAULT_MIN_SIZE_RATIO) -> torch.Tensor:
    """Hinge against the degenerate collapse: relu(1 − size(pred x'y') / (min_ratio · size(2D input))),
    averaged over the batch. 1 for all joints at one point, 0 once the predicted image-plane body size
    reaches `min_ratio` of the detected one (see module doc).

    Shape:
        pred3d (B, T, J, 3), kp2d_norm (B, T, J, 2), conf (B, T, J) → ().
    """
    _check_2d(pred3d, kp2d_norm, conf)
    conf = conf.to(pred3d.dtype)
    ratio = _size_2d(pred3d[..., :2], conf) / (min_ratio * _size_2d(kp2d_norm, conf))
    return torch.relu(1 - ratio).mean()


class LossTerms(NamedTuple):
    """Total loss and its (unweighted) parts, all scalar tensors."""

    total: torch.Tensor
    reproj: torch.Tensor
    con: torch.Tensor
    guard: torch.Tensor


def loss_2d_con(poses: torch.Tensor, kp2d_norm: torch.Tensor, conf: torch.Tensor, mode: str = "sequence",
                lambda_reproj: float = 1.0, lambda_con: float = 0.3, lambda_guard: float = 1.0) -> LossTerms:
    """The paper's 2D-only objective L_2D_con = λ_reproj·L_reproj + λ_con·L_con, plus λ_guard·guard.

    Defaults are the paper's best (λ_reproj = 1, λ_con = 0.3). Confidences weight the reprojection, the
    consistency (product of both views' confidences) and the guard.

    Shape:
        poses (B, V, T, J, 3) normalized 2.5D, kp2d_norm (B, V, T, J, 2), conf (B, V, T, J) → LossTerms.
    """
    _check(poses, "poses", "(B, V, T, J, 3)", 5, 3)
    _check_same(kp2d_norm, (*poses.shape[:-1], 2), "kp2d_norm", "(B, V, T, J, 2)")
    _check_same(conf, poses.shape[:-1], "conf", "(B, V, T, J)")
    flat = poses.flatten(0, 1)
    kp, c = kp2d_norm.flatten(0, 1), conf.flatten(0, 1)
    reproj = reprojection_loss(flat, kp, c)
    con = consistency_loss(poses, conf, mode=mode)
    guard = collapse_guard(flat, kp, c)
    total = lambda_reproj * reproj + lambda_con * con + lambda_guard * guard
    return LossTerms(total, reproj, con, guard)


def _check_pred_gt(pred, gt) -> None:
    _check(pred, "pred", "(B, T, J, 3)", 4, 3)
    _check(gt, "gt", "(B, T, J, 3)", 4, 3)
    _check_same(gt, pred.shape, "gt", "(B, T, J, 3)")


def loss_pos(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """L_pos: MPJPE, mean per-joint Euclidean distance (MotionBERT `loss_mpjpe`).

    Shape: pred, gt (B, T, J, 3) → ().
    """
    _check_pred_gt(pred, gt)
    return torch.linalg.vector_norm(pred - gt, dim=-1).mean()


def loss_vel(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """L_vel: mean per-joint Euclidean error of frame-to-frame velocities (MotionBERT `loss_velocity`);
    0 for single-frame input.

    Shape: pred, gt (B, T, J, 3) → ().
    """
    _check_pred_gt(pred, gt)
    if pred.shape[1] <= 1:
        return pred.new_zeros(())
    return torch.linalg.vector_norm(pred.diff(dim=1) - gt.diff(dim=1), dim=-1).mean()


def loss_scale(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """L_scale: N-MPJPE, MPJPE after scaling each predicted frame by its least-squares optimal scale
    s = Σ⟨gt, pred⟩ / Σ‖pred‖² (MotionBERT `n_mpjpe`).

    Shape: pred, gt (B, T, J, 3) → ().
    """
    _check_pred_gt(pred, gt)
    num = (gt * pred).sum((-1, -2), keepdim=True)
    den = (pred * pred).sum((-1, -2), keepdim=True)
    scale = num / (den + torch.finfo(pred.dtype).eps ** 2)
    return torch.linalg.vector_norm(scale * pred - gt, dim=-1).mean()


def loss_3d(pred: torch.Tensor, gt: torch.Tensor, lambda_pos: float = 1.0, lambda_vel: float = 20.0,
            lambda_scale: float = 0.5) -> torch.Tensor:
    """L_3D = λ_pos·L_pos + λ_vel·L_vel + λ_scale·L_scale with the MotionBERT / paper weights.

    Shape: pred, gt (B, T, J, 3) → ().
    """
    return lambda_pos * loss_pos(pred, gt) + lambda_vel * loss_vel(pred, gt) + lambda_scale * loss_scale(pred, gt)
