"""Stereo pseudo-labels (`l3d_stereo`): the two views' own triangulated 3D, checked against the synthetic
clip's ground truth (which the pseudo-labelling never reads), clips that cannot tell left out, and the
weighted 3D loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mvcapture.core.metrics import n_mpjpe
from mvcapture.errors import MvcaptureError
from mvcapture.io.clip import MultiViewClip


def _clip(angle=90.0, seed=0, static=False):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_geometry import _synthetic_clip

    clip = _synthetic_clip(angle, seconds=6.0, seed=seed)
    if static:
        clip = MultiViewClip(kp2d=np.repeat(clip.kp2d[:, :1], clip.num_frames, 1),
                             conf=np.repeat(clip.conf[:, :1], clip.num_frames, 1), image_size=clip.image_size,
                             fps=clip.fps, gt3d=None, name="static", extras={"focal_px": clip.extras["focal_px"]})
    return clip


def test_pseudo_labels_match_the_hidden_ground_truth_in_each_camera():
    from mvcapture.train.pseudo import stereo_pseudo_labels

    clip = _clip()
    truth = clip.gt3d.copy()
    blind = MultiViewClip(kp2d=clip.kp2d, conf=clip.conf, image_size=clip.image_size, fps=clip.fps, gt3d=None,
                          name="blind", extras={"focal_px": clip.extras["focal_px"]})
    labelled, info = stereo_pseudo_labels(blind)
    assert info["status"] == "ok" and labelled is not None
    assert labelled.gt3d.shape == truth.shape and labelled.extras["target_weight"].shape == truth.shape[:-1]
    for v in (0, 1):  # in each camera's own frame, up to scale
        assert float(n_mpjpe(labelled.gt3d[v], truth[v])) < 60.0
        assert (labelled.gt3d[v][..., 2] > 0).all()
    w = labelled.extras["target_weight"]
    assert 0.0 <= w.min() and w.max() <= 1.0 and w.mean() > 0.5
    # the view-1 label is the view-0 label moved by the estimated pose: both see the same body
    assert np.allclose(np.linalg.norm(np.diff(labelled.gt3d[0], axis=1), axis=-1),
                       np.linalg.norm(np.diff(labelled.gt3d[1], axis=1), axis=-1), atol=1e-4)


def test_clips_that_cannot_tell_are_left_out_and_none_left_is_an_error_before_training():
    from mvcapture.train.data import check_requirements
    from mvcapture.train.pseudo import pseudo_labelled

    good, static = _clip(seed=1), _clip(seed=2, static=True)
    kept, infos = pseudo_labelled([good, static], ["good.npz", "static.npz"])
    assert len(kept) == 1 and infos[1]["status"] == "degenerate"
    with pytest.raises(MvcaptureError, match="l3d_stereo.*static.npz"):
        check_requirements(["l3d_stereo"], [static], ["static.npz"])


def test_slices_of_a_labelled_clip_keep_the_same_frames_of_its_label():
    from mvcapture.train.data import slice_clip
    from mvcapture.train.pseudo import PSEUDO_KEY, stereo_pseudo_labels

    clip = _clip(seed=3)
    full, _ = stereo_pseudo_labels(clip)
    part = slice_clip(clip, 30, 90)
    sliced, _ = part.extras[PSEUDO_KEY]
    np.testing.assert_array_equal(sliced.gt3d, full.gt3d[:, 30:90])
    np.testing.assert_array_equal(sliced.extras["target_weight"], full.extras["target_weight"][:, 30:90])


def test_weighted_position_loss_ignores_joints_of_weight_zero():
    from mvcapture.train.finetune import TrainConfig, compute_losses

    torch.manual_seed(0)
    B, V, T = 2, 2, 9
    target = torch.randn(B, V, T, 17, 3)
    target = target - target[..., :1, :]
    pred = target.clone()
    pred[..., 5, :] += 10.0           # one joint far off ...
    weight = torch.ones(B, V, T, 17)
    weight[..., 5] = 0.0              # ... where the pseudo-label is unknown
    batch = {"kp2d_norm": torch.zeros(B, V, T, 17, 2), "conf": torch.ones(B, V, T, 17), "target": target,
             "has_target": torch.ones(B, dtype=torch.bool), "target_weight": weight, "valid": torch.ones(B, T, dtype=torch.bool)}
    config = TrainConfig(variant="l3d_stereo")
    _, parts = compute_losses(pred, batch, config)
    assert parts["pos"] == pytest.approx(0.0, abs=1e-6)
    del batch["target_weight"]
    _, parts = compute_losses(pred, batch, config)
    assert parts["pos"] > 0.5
