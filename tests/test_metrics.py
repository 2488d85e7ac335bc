"""Metrics (metres in, millimetres out) on hand-computed cases, numpy and torch alike."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mvcapture.core.metrics import consistency_residual, mpjpe, n_mpjpe, pa_mpjpe
from mvcapture.core.procrustes import rotation_angle_deg

EPS_M = 0.01
SQUARE = np.array([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]])
OFFSET = np.array([[0, 0, EPS_M], [0, 0, EPS_M], [0, 0, -EPS_M], [0, 0, -EPS_M]])


def test_mpjpe_is_root_relative_and_in_mm():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(3, 5, 17, 3))
    pred = gt + np.array([5.0, -2.0, 1.0])  # a global shift does not count
    assert mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    pred[..., 4, :] += np.array([0.03, 0.04, 0.0])  # one joint 50 mm off
    assert mpjpe(pred, gt) == pytest.approx(50.0 / 17)
    assert mpjpe(torch.from_numpy(pred), torch.from_numpy(gt)).item() == pytest.approx(50.0 / 17)


def test_pa_mpjpe_hand_computed():
    # Square + z offsets: the optimal similarity is the identity, each joint is off by 10 mm.
    gt = (SQUARE + OFFSET)[None]
    pred = SQUARE[None]
    assert pa_mpjpe(pred, gt) == pytest.approx(10.0, rel=1e-9)
    # A rotated, scaled, translated prediction scores the same; MPJPE does not forgive it.
    R = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    moved = 0.5 * pred @ R + np.array([1.0, 2.0, 3.0])
    assert pa_mpjpe(moved, gt) == pytest.approx(10.0, rel=1e-9)
    assert mpjpe(moved, gt) > 100
    # Per frame: a second frame with its own rotation still aligns separately.
    two = np.stack([pred[0], SQUARE @ Rotation.from_euler("x", 70, degrees=True).as_matrix()])[None]
    gt_two = np.stack([gt[0], gt[0]])[None]
    assert pa_mpjpe(two, gt_two) == pytest.approx(10.0, rel=1e-9)


def test_n_mpjpe_forgives_scale_only():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(2, 4, 17, 3))
    assert n_mpjpe(3.0 * gt, gt) == pytest.approx(0.0, abs=1e-9)
    gt_rr = gt - gt[..., :1, :]
    pred = gt_rr.copy()
    pred[..., 2, :] += 0.05
    s = (gt_rr * pred).sum((-1, -2), keepdims=True) / (pred * pred).sum((-1, -2), keepdims=True)
    expected = np.linalg.norm(s * pred - gt_rr, axis=-1).mean() * 1000
    assert n_mpjpe(pred, gt) == pytest.approx(expected, rel=1e-12)


def test_consistency_residual_per_joint_per_frame_and_camera_angle():
    T = 6
    a = np.broadcast_to(SQUARE, (T, 4, 3))
    R = Rotation.from_euler("y", 90, degrees=True).as_matrix()
    b = np.broadcast_to((SQUARE + OFFSET) @ R + np.array([0, 0, 4.0]), (T, 4, 3))
    res = consistency_residual(a, b)
    assert res.residual_mm.shape == (T, 4) and res.per_joint_mm.shape == (4,) and res.per_frame_mm.shape == (T,)
    np.testing.assert_allclose(res.residual_mm, 10.0, rtol=1e-9)
    np.testing.assert_allclose(res.per_joint_mm, 10.0, rtol=1e-9)
    assert float(res.mean_mm) == pytest.approx(10.0, rel=1e-9)
    assert rotation_angle_deg(res.transform.R) == pytest.approx(90.0)
    # a joint that is wrong in one view only shows up at that joint, unless weighted out
    rng = np.random.default_rng(2)
    pose = rng.normal(scale=0.3, size=(2, T, 17, 3))
    other = pose @ R
    other[:, 3, 9] += 0.2
    res = consistency_residual(torch.from_numpy(pose), torch.from_numpy(other))
    assert res.per_joint_mm.argmax(-1).tolist() == [9, 9] and res.per_frame_mm.argmax(-1).tolist() == [3, 3]
    w = np.ones((2, T, 17))
    w[:, 3, 9] = 0
    clean = consistency_residual(pose, other, w)
    assert np.abs(np.delete(clean.residual_mm, 9, axis=-1)).max() < 1e-9
    assert clean.mean_mm.shape == (2,) and clean.mean_mm.max() < 1e-9


def test_numpy_and_torch_agree():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 3, 8, 17, 3))
    for fn in (mpjpe, pa_mpjpe, n_mpjpe):
        assert fn(a, b) == pytest.approx(fn(torch.from_numpy(a), torch.from_numpy(b)).item(), rel=1e-12)
    res_np = consistency_residual(a, b, mode="frame")
    res_t = consistency_residual(torch.from_numpy(a), torch.from_numpy(b), mode="frame")
    np.testing.assert_allclose(res_np.residual_mm, res_t.residual_mm.numpy(), rtol=1e-12)


@pytest.mark.parametrize("call, arg", [
    (lambda: mpjpe(np.zeros((4, 17, 2)), np.zeros((4, 17, 2))), "pred_m"),
    (lambda: pa_mpjpe(np.zeros((4, 17, 3)), np.zeros((5, 17, 3))), "gt_m"),
    (lambda: n_mpjpe(np.full((4, 17, 3), np.nan), np.zeros((4, 17, 3))), "pred_m"),
    (lambda: mpjpe(np.zeros((0, 17, 3)), np.zeros((0, 17, 3))), "pred_m"),
    (lambda: consistency_residual(np.zeros((4, 17, 3)), np.zeros((4, 17, 3)), np.ones((4, 3))), "weights"),
    (lambda: consistency_residual(np.zeros((4, 17, 3)), np.zeros((4, 17)), None), "pose_b_m"),
    (lambda: mpjpe(torch.zeros(4, 17, 3, dtype=torch.int64), torch.zeros(4, 17, 3)), r"pred_m must be a float"),
    (lambda: n_mpjpe(torch.zeros(4, 17, 3), torch.zeros(4, 17, 3, dtype=torch.int32)), r"gt_m must be a float"),
])
def test_bad_input_raises_value_error(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()
