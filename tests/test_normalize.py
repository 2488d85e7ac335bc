import numpy as np
import pytest
import torch

from mvcapture.core import normalize as nz


def _pose_m(T=6, seed=0):
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.3, size=(T, 17, 3))
    pose[..., 2] += 4.0
    pose[:, :, 0] += 0.5
    return pose


def test_normalize_kp2d_matches_formula_and_masks_missing():
    kp = np.array([[[960.0, 540.0]] * 17])  # (1, 17, 2) centre of a 1920x1080 frame
    kp[0, 3] = [1500.0, 100.0]
    conf = np.ones((1, 17))
    conf[0, 5] = 0
    out = nz.normalize_kp2d(kp, conf, np.array([1920, 1080]))
    assert out.shape == (1, 17, 3)
    np.testing.assert_allclose(out[0, 0], [0, 0, 1])
    np.testing.assert_allclose(out[0, 3, :2], [(1500 - 960) / 540, (100 - 540) / 540])
    np.testing.assert_allclose(out[0, 5], [0, 0, 0])
    np.testing.assert_allclose(nz.denormalize_xy(out[..., :2], np.array([1920, 1080]))[0, 3], [1500, 100])


def test_portrait_keeps_aspect_ratio():
    kp = np.array([[[1080.0, 1920.0]] * 17])
    out = nz.normalize_kp2d(kp, np.ones((1, 17)), np.array([1080, 1920]))
    np.testing.assert_allclose(out[0, 0, :2], [1.0, 960 / 540])


def test_camera_norm25d_round_trip_numpy_and_torch():
    pose = _pose_m()
    f, size = 1200.0, np.array([1920, 1080])
    n = nz.camera_to_norm25d(pose, f, size)
    np.testing.assert_allclose(n[:, 0], 0, atol=1e-12)
    back = nz.norm25d_to_camera(n, f, size, pose[:, 0])
    np.testing.assert_allclose(back, pose - pose[:, :1], atol=1e-9)
    nt = nz.camera_to_norm25d(torch.from_numpy(pose), torch.tensor(f, dtype=torch.float64), size)
    np.testing.assert_allclose(nt.numpy(), n, atol=1e-12)


def test_norm25d_xy_is_projection_of_camera_pose():
    pose = _pose_m()
    f, size = 1000.0, np.array([1280, 720])
    n = nz.camera_to_norm25d(pose, f, size)
    u = f * pose[..., 0] / pose[..., 2] + 640
    kp_norm = nz.normalize_kp2d(np.stack([u, f * pose[..., 1] / pose[..., 2] + 360], -1), np.ones((6, 17)), size)
    np.testing.assert_allclose(n[..., 0], kp_norm[..., 0] - kp_norm[..., :1, 0], atol=1e-12)


def test_height_prior_scaling():
    pose = _pose_m()
    scaled = nz.norm25d_to_metres(pose * 7.0, height_m=1.8)
    proxy = np.median(nz.height_proxy(scaled))
    assert proxy == pytest.approx(nz.HEIGHT_PROXY_RATIO * 1.8)


def test_bad_shapes():
    with pytest.raises(ValueError, match="kp2d_px"):
        nz.normalize_kp2d(np.zeros((3, 16, 2)), np.zeros((3, 16)), np.array([10, 10]))
    with pytest.raises(ValueError, match="conf"):
        nz.normalize_kp2d(np.zeros((3, 17, 2)), np.zeros((3, 16)), np.array([10, 10]))
