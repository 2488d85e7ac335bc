"""Evaluation metrics on numpy arrays or torch tensors: MPJPE, PA-MPJPE, N-MPJPE and the per-joint /
per-frame consistency residual between two views. Inputs in metres, results in millimetres.
numpy in → float / numpy arrays out; torch in → tensors out (differentiable, same device).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from mvcapture.core.procrustes import SimilarityTransform, procrustes_torch

MM_PER_M = 1000.0


def _to_torch(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be a numeric array of shape (..., T, J, 3), got dtype {a.dtype}")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def _check(pred, gt, names=("pred_m", "gt_m")) -> None:
    for x, name in zip((pred, gt), names):
        if not x.dtype.is_floating_point:
            raise ValueError(f"{name} must be a float tensor or a numeric array of shape (..., T, J, 3) metres, "
                             f"got {x.dtype}")
        if x.ndim < 3 or x.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (..., T, J, 3), got {tuple(x.shape)}")
        if x.numel() == 0:
            raise ValueError(f"{name} must not be empty: shape (..., T, J, 3), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or inf; expected finite metres, shape (..., T, J, 3)")
    if pred.shape != gt.shape:
        raise ValueError(f"{names[1]} must have the same shape as {names[0]} {tuple(pred.shape)}, got {tuple(gt.shape)}")


def _out(value: torch.Tensor, numpy_in: bool):
    return value.item() if numpy_in else value


def _root_relative(p: torch.Tensor) -> torch.Tensor:
    return p - p[..., :1, :]


def mpjpe(pred_m, gt_m):
    """MPJPE in mm: mean per-joint Euclidean error after making both poses root-relative (joint 0).

    Shape: pred_m, gt_m (..., T, J, 3) metres → scalar mm.
    """
    numpy_in = not isinstance(pred_m, torch.Tensor)
    pred, gt = _to_torch(pred_m, "pred_m"), _to_torch(gt_m, "gt_m")
    _check(pred, gt)
    err = torch.linalg.vector_norm(_root_relative(pred) - _root_relative(gt), dim=-1).mean()
    return _out(err * MM_PER_M, numpy_in)


def pa_mpjpe(pred_m, gt_m):
    """PA-MPJPE in mm: mean per-joint error after aligning each predicted frame onto the ground truth
    with its own similarity transform (scale, rotation, translation).

    Shape: pred_m, gt_m (..., T, J, 3) metres → scalar mm.
    """
    numpy_in = not isinstance(pred_m, torch.Tensor)
    pred, gt = _to_torch(pred_m, "pred_m"), _to_torch(gt_m, "gt_m")
    _check(pred, gt)
    aligned = procrustes_torch(pred, gt.to(pred.dtype), mode="frame").aligned
    err = torch.linalg.vector_norm(aligned - gt, dim=-1).mean()
    return _out(err * MM_PER_M, numpy_in)


def n_mpjpe(pred_m, gt_m):
    """N-MPJPE in mm: root-relative MPJPE after scaling each predicted frame by its least-squares optimal
    scale s = Σ⟨gt, pred⟩ / Σ‖pred‖² (MotionBERT protocol).

    Shape: pred_m, gt_m (..., T, J, 3) metres → scalar mm.
    """
    numpy_in = not isinstance(pred_m, torch.Tensor)
    pred, gt = _to_torch(pred_m, "pred_m"), _to_torch(gt_m, "gt_m")
    _check(pred, gt)
    pred, gt = _root_relative(pred), _root_relative(gt)
    num = (gt * pred).sum((-1, -2), keepdim=True)
    den = (pred * pred).sum((-1, -2), keepdim=True)
    scale = num / (den + torch.finfo(pred.dtype).eps ** 2)
    err = torch.linalg.vector_norm(scale * pred - gt, dim=-1).mean()
    return _out(err * MM_PER_M, numpy_in)


class ConsistencyResidual(NamedTuple):
    """How far view a, aligned onto view b, is from view b (mm), at several granularities.

    residual_mm (..., T, J); per_joint_mm (..., J) mean over frames; per_frame_mm (..., T) mean over
    joints; mean_mm (...); transform: the SimilarityTransform used (its R gives the camera angle via
    `rotation_angle_deg`). Means are weighted when weights were given.
    """

    residual_mm: object
    per_joint_mm: object
    per_frame_mm: object
    mean_mm: object
    transform: SimilarityTransform


def consistency_residual(pose_a_m, pose_b_m, weights=None, mode: str = "sequence") -> ConsistencyResidual:
    """Consistency residual between two views of the same motion, in mm.

    Aligns view a onto view b with one similarity transform for the whole sequence (mode "sequence")
    or one per frame ("frame"), weighted by `weights` (e.g. product of both views' confidences), and
    measures the per-joint Euclidean distance to view b.

    Args:
        pose_a_m: (..., T, J, 3) metres (or any common unit: the result is that unit × 1000).
        pose_b_m: (..., T, J, 3) metres.
        weights: (..., T, J) ≥ 0 or None.
        mode: "sequence" or "frame".

    Shape:
        → ConsistencyResidual with residual_mm (..., T, J), per_joint_mm (..., J), per_frame_mm (..., T),
        mean_mm (...).
    """
    numpy_in = not isinstance(pose_a_m, torch.Tensor)
    a, b = _to_torch(pose_a_m, "pose_a_m"), _to_torch(pose_b_m, "pose_b_m")
    _check(a, b, ("pose_a_m", "pose_b_m"))
    b = b.to(a.dtype)
    w = None
    if weights is not None:
        w = _to_torch(weights, "weights").to(a.dtype)
    transform = procrustes_torch(a, b, w, mode=mode)
    res = torch.linalg.vector_norm(transform.aligned - b, dim=-1) * MM_PER_M
    if w is None:
        per_joint, per_frame, mean = res.mean(-2), res.mean(-1), res.mean((-1, -2))
    else:
        tiny = torch.finfo(a.dtype).eps

        def wmean(dims):
            return (res * w).sum(dims) / w.sum(dims).clamp_min(tiny)

        per_joint, per_frame, mean = wmean(-2), wmean(-1), wmean((-1, -2))
    out = ConsistencyResidual(res, per_joint, per_frame, mean, transform)
    if numpy_in:
        out = ConsistencyResidual(res.numpy(), per_joint.numpy(), per_frame.numpy(), mean.numpy(),
                                  SimilarityTransform(*(v.numpy() for v in transform)))
    return out
