"""Training losses on hand-built cases: consistency over view pairs, reprojection, the MotionBERT 3D terms,
and the collapse guard (a model that outputs all joints at one point must not score near zero)."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mvcapture.core.losses import (
    collapse_guard,
    consistency_loss,
    loss_2d_con,
    loss_3d,
    loss_pos,
    loss_scale,
    loss_vel,
    reprojection_loss,
    view_pairs,
)

EPS = 0.01
# Square in the xy-plane; offsets ±EPS along z that leave the optimal similarity at the identity
# (Σ e = 0, Σ x eᵀ = 0, Σ ⟨x, e⟩ = 0), so every joint's residual is exactly EPS.
SQUARE = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=torch.float64)
OFFSET = torch.tensor([[0, 0, EPS], [0, 0, EPS], [0, 0, -EPS], [0, 0, -EPS]], dtype=torch.float64)


def similar(pose, seed):
    R = torch.from_numpy(Rotation.random(random_state=seed).as_matrix())
    return 1.7 * pose @ R + torch.tensor([0.3, -0.2, 2.0], dtype=torch.float64)


def test_view_pair_count():
    for v in range(2, 7):
        pairs = view_pairs(v)
        assert len(pairs) == v * (v - 1) // 2 == len(set(pairs))
        assert all(a < b for a, b in pairs)
    with pytest.raises(ValueError):
        view_pairs(1)


def test_consistency_hand_built_value():
    a = SQUARE.expand(1, 3, 4, 3)
    b = (SQUARE + OFFSET).expand(1, 3, 4, 3)
    poses = torch.stack([a, similar(b, 0)], dim=1)  # (1, 2, 3, 4, 3)
    assert consistency_loss(poses).item() == pytest.approx(EPS * 1.7, rel=1e-9)  # in b's units (scaled 1.7)
    assert consistency_loss(torch.stack([a, b], 1), mode="frame").item() == pytest.approx(EPS, rel=1e-9)


def test_consistency_is_zero_for_similar_views_and_averages_pairs():
    rng = np.random.default_rng(0)
    pose = torch.from_numpy(rng.normal(scale=0.3, size=(2, 10, 17, 3)))
    views = torch.stack([pose, similar(pose, 1), similar(pose, 2)], dim=1)
    assert consistency_loss(views).item() < 1e-10
    noisy = views + torch.from_numpy(rng.normal(scale=0.01, size=views.shape))
    three = consistency_loss(noisy)
    pairs = [consistency_loss(noisy[:, [a, b]]) for a, b in view_pairs(3)]
    assert three.item() == pytest.approx(sum(p.item() for p in pairs) / 3, rel=1e-12)


def test_consistency_weights_ignore_missing_joints():
    rng = np.random.default_rng(1)
    pose = torch.from_numpy(rng.normal(scale=0.3, size=(1, 8, 17, 3)))
    other = similar(pose, 3).clone()
    other[..., 5, :] += 10.0  # a joint the detector lost in view b
    w = torch.ones(1, 2, 8, 17, dtype=torch.float64)
    w[:, 1, :, 5] = 0
    poses = torch.stack([pose, other], 1)
    assert consistency_loss(poses, w).item() < 1e-10
    assert consistency_loss(poses).item() > 0.1


def test_frame_variant_tolerates_moving_cameras():
    rng = np.random.default_rng(2)
    pose = torch.from_numpy(rng.normal(scale=0.3, size=(1, 6, 17, 3)))
    moving = torch.stack([similar(pose[:, i], 10 + i) for i in range(6)], dim=1)  # a new rotation every frame
    poses = torch.stack([pose, moving], 1)
    assert consistency_loss(poses, mode="frame").item() < 1e-10
    assert consistency_loss(poses, mode="sequence").item() > 0.05


def test_reprojection_hand_built_value():
    rng = np.random.default_rng(3)
    kp = torch.from_numpy(rng.uniform(-0.5, 0.5, size=(2, 5, 17, 2)))
    conf = torch.ones(2, 5, 17, dtype=torch.float64)
    pred = torch.zeros(2, 5, 17, 3, dtype=torch.float64)
    pred[..., :2] = kp - kp[..., :1, :]  # root-relative, depth arbitrary
    pred[..., 2] = torch.from_numpy(rng.normal(size=(2, 5, 17)))
    assert reprojection_loss(pred, kp, conf).item() < 1e-12
    d = 0.1
    moved = pred.clone()
    moved[..., 7, 0] += d  # one joint off by d: the fitted translation absorbs d/J
    J = 17
    assert reprojection_loss(moved, kp, conf).item() == pytest.approx(2 * (J - 1) * d / J ** 2, rel=1e-9)
    conf_missing = conf.clone()
    conf_missing[..., 7] = 0
    assert reprojection_loss(moved, kp, conf_missing).item() < 1e-12
    half = pred * 0.5
    assert reprojection_loss(half, kp, conf).item() > 0.05
    assert reprojection_loss(half, kp, conf, fit_scale=True).item() < 1e-12


def test_3d_losses_hand_built():
    rng = np.random.default_rng(4)
    gt = torch.from_numpy(rng.normal(size=(2, 6, 17, 3)))
    shift = torch.tensor([0.03, 0.0, 0.04], dtype=torch.float64)
    assert loss_pos(gt + shift, gt).item() == pytest.approx(0.05)
    assert loss_vel(gt + shift, gt).item() == pytest.approx(0.0, abs=1e-12)
    assert loss_scale(2 * gt, gt).item() == pytest.approx(0.0, abs=1e-12)
    assert loss_pos(2 * gt, gt).item() == pytest.approx(gt.norm(dim=-1).mean().item())
    ramp = gt.clone()
    ramp[:, 1:] += 0.01 * torch.arange(1, 6, dtype=torch.float64)[None, :, None, None]  # +0.01/frame in x, y, z
    assert loss_vel(ramp, gt).item() == pytest.approx(0.01 * 3 ** 0.5)  # every step moves (0.01, 0.01, 0.01)
    total = loss_3d(gt + shift, gt)
    assert total.item() == pytest.approx(0.05 + 0.5 * loss_scale(gt + shift, gt).item())
    assert loss_vel(gt[:, :1], gt[:, :1]).item() == 0.0


def _two_view_batch():
    """A consistent 2-view batch: one 3D motion seen orthographically by two cameras 90° apart."""
    rng = np.random.default_rng(5)
    body = torch.from_numpy(rng.normal(scale=0.25, size=(2, 12, 17, 3)))
    body = body - body[..., :1, :]
    R90 = torch.from_numpy(Rotation.from_euler("y", 90, degrees=True).as_matrix())
    views = torch.stack([body, body @ R90], 1)  # (B, V, T, J, 3)
    kp2d = views[..., :2] + 0.2  # image position of the root
    conf = torch.ones(views.shape[:-1], dtype=torch.float64)
    return views, kp2d, conf


def test_collapse_is_not_rewarded():
    views, kp2d, conf = _two_view_batch()
    collapsed = torch.zeros_like(views, requires_grad=True)
    # Why the guard is needed: consistency alone rewards the collapse.
    assert consistency_loss(collapsed).item() < 1e-12
    good = loss_2d_con(views, kp2d, conf)
    bad = loss_2d_con(collapsed, kp2d, conf)
    assert good.guard.item() == 0.0 and good.total.item() < 1e-9
    assert bad.guard.item() == pytest.approx(1.0, abs=1e-6)
    assert bad.total.item() > 1.0
    bad.total.backward()
    assert torch.isfinite(collapsed.grad).all() and collapsed.grad.abs().sum() > 0
    # The guard also holds where the reprojection fits a scale (blind to size): half size passes, 1 % fails.
    assert collapse_guard(views[:, 0] * 0.6, kp2d[:, 0], conf[:, 0]).item() == 0.0
    assert collapse_guard(views[:, 0] * 0.01, kp2d[:, 0], conf[:, 0]).item() > 0.9


def test_losses_have_finite_gradients_at_collapse():
    views, kp2d, conf = _two_view_batch()
    for dtype in (torch.float32, torch.float64):
        x = torch.zeros(views.shape, dtype=dtype, requires_grad=True)
        for mode in ("sequence", "frame"):
            total = loss_2d_con(x, kp2d.to(dtype), conf.to(dtype), mode=mode).total
            total = total + reprojection_loss(x[:, 0], kp2d[:, 0].to(dtype), conf[:, 0].to(dtype), fit_scale=True)
            (g,) = torch.autograd.grad(total, x)
            assert torch.isfinite(g).all()


@pytest.mark.parametrize("call, arg", [
    (lambda: consistency_loss(torch.zeros(2, 2, 5, 17, 2)), "poses"),
    (lambda: consistency_loss(torch.zeros(2, 1, 5, 17, 3)), "2 views"),
    (lambda: consistency_loss(torch.zeros(2, 2, 5, 17, 3), torch.ones(2, 2, 5, 16)), "weights"),
    (lambda: consistency_loss(torch.full((2, 2, 5, 17, 3), float("nan"))), "poses"),
    (lambda: consistency_loss(torch.zeros(2, 2, 0, 17, 3)), "poses"),
    (lambda: reprojection_loss(torch.zeros(2, 5, 17, 3), torch.zeros(2, 5, 17, 3), torch.ones(2, 5, 17)), "kp2d_norm"),
    (lambda: reprojection_loss(torch.zeros(2, 5, 17, 3), torch.zeros(2, 5, 17, 2), torch.ones(2, 5)), "conf"),
    (lambda: loss_pos(torch.zeros(2, 5, 17, 3), torch.zeros(2, 4, 17, 3)), "gt"),
    (lambda: loss_vel(torch.zeros(5, 17, 3), torch.zeros(5, 17, 3)), "pred"),
    (lambda: loss_2d_con(torch.rand(1, 2, 5, 17, 3), torch.rand(1, 2, 5, 17, 2), np.ones((1, 2, 5, 17))),
     r"conf must be a torch tensor of shape \(B, V, T, J\) = \(1, 2, 5, 17\)"),
])
def test_bad_input_raises_value_error(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()
