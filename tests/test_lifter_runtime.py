"""Lifter runtime: shapes, flip test-time augmentation, tiling seams, live window, metres, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mvcapture.core.normalize import camera_to_norm25d, norm25d_to_metres, normalize_kp2d
from mvcapture.core.skeleton import H36M17_FLIP_PERMUTATION, coco_to_h36m
from mvcapture.io.clip import MultiViewClip
from mvcapture.lifter import Lifter, clip_to_metres, create_lifter, select_device, to_metres
from mvcapture.lifter.runtime import tile_windows

SIZE = np.array([640, 480], np.float32)


@pytest.fixture(scope="module")
def lifter():
    torch.manual_seed(0)
    model = create_lifter("tiny")
    with torch.no_grad():  # make the random network clearly asymmetric and context dependent
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return Lifter(model, device="cpu", batch_size=4)


def _track(frames, seed=0):
    """A smooth-ish random 2D track in pixels with confidences, some joints missing."""
    rng = np.random.default_rng(seed)
    base = rng.uniform([200, 100], [440, 400], (17, 2))
    drift = np.cumsum(rng.normal(0, 3, (frames, 17, 2)), axis=0)
    conf = rng.uniform(0.3, 1, (frames, 17)).astype(np.float32)
    conf[rng.uniform(size=conf.shape) < 0.05] = 0
    return (base + drift).astype(np.float32), conf


@pytest.mark.parametrize("frames", [1, 10, 27, 100])
def test_lift_clip_shapes_and_root_relative(lifter, frames):
    kp2d, conf = _track(frames)
    out = lifter.lift_clip(kp2d, conf, SIZE)
    assert out.shape == (frames, 17, 3) and out.dtype == np.float32
    assert np.all(out[:, 0] == 0) and np.all(np.isfinite(out))


def test_flip_tta_is_equivariant(lifter):
    kp2d, conf = _track(40)
    mirrored_px = kp2d[:, H36M17_FLIP_PERMUTATION].copy()
    mirrored_px[..., 0] = SIZE[0] - mirrored_px[..., 0]  # x' = -x in normalized coordinates
    mirrored_conf = conf[:, H36M17_FLIP_PERMUTATION]
    out = lifter.lift_clip(kp2d, conf, SIZE, flip=True)
    out_mirrored = lifter.lift_clip(mirrored_px, mirrored_conf, SIZE, flip=True)
    expected = out[:, H36M17_FLIP_PERMUTATION] * np.array([-1, 1, 1], np.float32)
    np.testing.assert_allclose(out_mirrored, expected, atol=2e-5)
    # without test-time flipping a random network is not equivariant, so the check above has teeth
    plain = lifter.lift_clip(kp2d, conf, SIZE)
    plain_mirrored = lifter.lift_clip(mirrored_px, mirrored_conf, SIZE)
    assert np.abs(plain_mirrored - plain[:, H36M17_FLIP_PERMUTATION] * [-1, 1, 1]).max() > 1e-3


def test_tile_windows_cover_the_clip():
    for frames in (27, 28, 50, 81, 200, 1000):
        for overlap in (0, 9, 13):
            starts = tile_windows(frames, 27, overlap)
            assert starts[0] == 0 and starts[-1] == frames - 27
            assert all(b - a <= 27 - overlap for a, b in zip(starts, starts[1:]))


def test_long_clip_equals_concatenated_windows_without_overlap(lifter):
    kp2d, conf = _track(81)
    lifter_no_overlap = Lifter(lifter.model, device="cpu", overlap=0)
    out = lifter_no_overlap.lift_clip(kp2d, conf, SIZE)
    windows = normalize_kp2d(kp2d, conf, SIZE).reshape(3, 27, 17, 3)
    np.testing.assert_allclose(out, lifter.lift_windows(windows).reshape(81, 17, 3), atol=1e-6)


def test_overlapping_windows_blend_smoothly_at_seams(lifter):
    kp2d, conf = _track(45)
    out = lifter.lift_clip(kp2d, conf, SIZE)  # windows [0, 27) and [18, 45): 9 shared frames
    assert lifter.overlap == 9
    norm = normalize_kp2d(kp2d, conf, SIZE)
    first, second = lifter.lift_windows(np.stack([norm[:27], norm[18:]]))
    np.testing.assert_allclose(out[:18], first[:18], atol=1e-6)
    np.testing.assert_allclose(out[27:], second[9:], atol=1e-6)
    seam, a, b = out[18:27], first[18:], second[:9]
    assert np.all(seam >= np.minimum(a, b) - 1e-6) and np.all(seam <= np.maximum(a, b) + 1e-6)
    ramp = np.arange(1, 10)[:, None, None] / 10  # linear cross-fade from the first window to the second
    np.testing.assert_allclose(seam, (1 - ramp) * a + ramp * b, atol=1e-5)


def test_live_window_equals_offline_last_frame(lifter):
    kp2d, conf = _track(40)
    live = lifter.live(flip=True)
    for t in range(40):
        pose = live.push(kp2d[t], conf[t], SIZE)
        assert pose.shape == (17, 3)
        if t + 1 >= 27:
            offline = lifter.lift_clip(kp2d[t + 1 - 27:t + 1], conf[t + 1 - 27:t + 1], SIZE, flip=True)
            np.testing.assert_allclose(pose, offline[-1], atol=1e-5)
        elif t == 5:  # warming up: the window is padded at its start with the oldest frame
            norm = normalize_kp2d(kp2d[:6], conf[:6], SIZE)
            padded = np.concatenate([np.repeat(norm[:1], 21, axis=0), norm])
            np.testing.assert_allclose(pose, lifter.lift_windows(padded[None], flip=True)[0, -1], atol=1e-5)
    assert live.num_frames == 27
    live.reset()
    assert live.num_frames == 0


def test_live_stride_returns_delayed_frames_of_the_last_lifted_window(lifter):
    """Stride k: one lift every k pushes; push n gives frame n − k + 1 as the offline window ending at
    the last lift (n rounded down to ≡ k − 1 mod k) predicts it."""
    kp2d, conf = _track(60)
    k, W = 4, 27
    live = lifter.live(stride=k)
    assert live.delay_frames == 3
    calls = []
    original = lifter.lift_windows
    lifter.lift_windows = lambda *a, **kw: calls.append(1) or original(*a, **kw)
    try:
        poses = [live.push(kp2d[t], conf[t], SIZE) for t in range(60)]
    finally:
        del lifter.lift_windows
    assert len(calls) == 1 + 60 // k, "one forward pass per k frames (plus the first)"
    for n in range(W + k, 60):
        m = n - (n - (k - 1)) % k                      # the newest frame of the last lifted window
        f = n - (k - 1)
        offline = lifter.lift_clip(kp2d[m + 1 - W:m + 1], conf[m + 1 - W:m + 1], SIZE)
        np.testing.assert_allclose(poses[n], offline[W - 1 - (m - f)], atol=1e-5)
    # warming up: the first pushes return frame 0 from the first (padded) window
    first = lifter.lift_windows(np.repeat(normalize_kp2d(kp2d[:1], conf[:1], SIZE), W, axis=0)[None])[0, -1]
    np.testing.assert_allclose(poses[0], first, atol=1e-5)
    np.testing.assert_allclose(poses[2], first, atol=1e-5)
    with pytest.raises(ValueError, match="stride"):
        lifter.live(stride=0)


def test_live_stride_phase_moves_the_lifts_and_keeps_the_delay(lifter):
    """Phase p: the lifts fall on pushes n with (n + p) ≡ k − 1 mod k; push n still gives frame n − k + 1,
    as the window ending at that last lift predicts it."""
    kp2d, conf = _track(40)
    k, p, W = 4, 2, 27
    live = lifter.live(stride=k, phase=p)
    lifted_at = []
    original = lifter.lift_windows
    lifter.lift_windows = lambda *a, **kw: lifted_at.append(live._count - 1) or original(*a, **kw)
    try:
        poses = [live.push(kp2d[t], conf[t], SIZE) for t in range(40)]
    finally:
        del lifter.lift_windows
    assert lifted_at == [0] + [n for n in range(40) if (n + p) % k == k - 1]
    for n in range(W + k, 40):
        m = max(i for i in lifted_at if i <= n)
        f = n - (k - 1)
        offline = lifter.lift_clip(kp2d[m + 1 - W:m + 1], conf[m + 1 - W:m + 1], SIZE)
        np.testing.assert_allclose(poses[n], offline[W - 1 - (m - f)], atol=1e-5)


def test_live_window_shorter_than_the_models_lifts_the_last_frames_only(lifter):
    """window w < the model's: each push runs the model on the last w frames (padded while fewer), so its
    cost per push falls with w; stride and delay work as with the whole window."""
    kp2d, conf = _track(30)
    w = 9
    live = lifter.live(window=w)
    norm = normalize_kp2d(kp2d, conf, SIZE)
    for t in range(30):
        pose = live.push(kp2d[t], conf[t], SIZE)
        frames = norm[max(0, t + 1 - w):t + 1]
        frames = np.concatenate([np.repeat(frames[:1], w - len(frames), axis=0), frames])
        np.testing.assert_allclose(pose, lifter.lift_windows(frames[None])[0, -1], atol=1e-5)
    assert live.num_frames == w
    strided = lifter.live(window=w, stride=3)
    poses = [strided.push(kp2d[t], conf[t], SIZE) for t in range(30)]
    m, n = 26, 28                                   # push 28 returns frame 26, from the window lifted at push 26
    ref = lifter.lift_windows(norm[m + 1 - w:m + 1][None])[0]
    np.testing.assert_allclose(poses[n], ref[w - 1 - (m - (n - 2))], atol=1e-5)
    for bad in (0, lifter.window + 1):
        with pytest.raises(ValueError, match="window"):
            lifter.live(window=bad)
    with pytest.raises(ValueError, match="stride"):
        lifter.live(window=4, stride=5)


def test_live_mode_lifts_the_live_window_capped_at_the_models():
    from mvcapture.pipeline.live import LIVE_WINDOW, LivePipeline

    small = Lifter(create_lifter("small"), device="cpu")
    tiny = Lifter(create_lifter("tiny"), device="cpu")
    assert small.window == 81 and LIVE_WINDOW == 27
    assert [live.window for live in LivePipeline(None, small).lifters] == [27, 27]
    assert LivePipeline(None, small, lift_window=None).lifters[0].window == 81
    assert LivePipeline(None, tiny, lift_window=60).lifters[0].window == tiny.window


def test_lift_views_and_coco(lifter):
    views = [_track(30, seed=s) for s in range(2)]
    clip = MultiViewClip(kp2d=np.stack([v[0] for v in views]), conf=np.stack([v[1] for v in views]),
                         image_size=np.array([[640, 480], [1280, 720]], np.int32), fps=30.0)
    out = lifter.lift_views(clip)
    assert out.shape == (2, 30, 17, 3)
    for v in range(2):
        np.testing.assert_allclose(out[v], lifter.lift_clip(clip.kp2d[v], clip.conf[v], clip.image_size[v]),
                                   atol=1e-6)
    coco, coco_conf = _track(30, seed=5)
    h36m, h36m_conf = coco_to_h36m(coco, coco_conf)
    np.testing.assert_allclose(lifter.lift_coco(coco, coco_conf, SIZE), lifter.lift_clip(h36m, h36m_conf, SIZE),
                               atol=1e-6)


def _camera_poses(frames=20, seed=0):
    """A person ~1.7 m tall walking from 4 m to 6 m away from the camera (camera metres, 3 mm jitter)."""
    rng = np.random.default_rng(seed)
    body = np.array([[0, 0, 0], [-.13, 0, 0], [-.13, .45, 0], [-.13, .88, 0], [.13, 0, 0], [.13, .45, 0],
                     [.13, .88, 0], [0, -.25, 0], [0, -.5, 0], [0, -.6, -.05], [0, -.72, 0], [.18, -.48, 0],
                     [.2, -.2, 0], [.2, .05, 0], [-.18, -.48, 0], [-.2, -.2, 0], [-.2, .05, 0]])
    root = np.stack([np.full(frames, 0.4), np.full(frames, 0.1), np.linspace(4, 6, frames)], axis=-1)
    return body[None] + rng.normal(0, 0.003, (frames, 17, 3)) + root[:, None]


def test_to_metres_with_focal_recovers_camera_pose():
    pose_m = _camera_poses()
    focal, size = 1000.0, np.array([1280.0, 720.0])
    pose_norm = camera_to_norm25d(pose_m, focal, size)
    root_px = pose_m[:, 0, :2] / pose_m[:, 0, 2:] * focal + size / 2
    # the height prior that makes the body-size proxy exact for this skeleton
    from mvcapture.core.normalize import HEIGHT_PROXY_RATIO, height_proxy

    height_m = float(np.median(height_proxy(pose_m))) / HEIGHT_PROXY_RATIO
    metres = to_metres(pose_norm, size, focal, root_px, height_m=height_m)
    expected = pose_m - pose_m[:, :1]
    assert metres.shape == pose_m.shape
    assert np.abs(metres - expected).max() < 0.01  # depth per frame: the body keeps its size
    np.testing.assert_allclose(to_metres(pose_norm, size), norm25d_to_metres(pose_norm), rtol=1e-6)


def test_clip_to_metres_uses_focal_when_present():
    pose_m = _camera_poses()[None].repeat(2, axis=0)
    size = np.array([[1280, 720], [1280, 720]], np.int32)
    pose_norm = camera_to_norm25d(pose_m, np.array([1000.0, 1000.0]), size)
    kp2d = (pose_m[..., :2] / pose_m[..., 2:] * 1000 + size[:, None, None] / 2).astype(np.float32)
    clip = MultiViewClip(kp2d=kp2d, conf=np.ones(kp2d.shape[:-1], np.float32), image_size=size, fps=30.0)
    metres, method = clip_to_metres(pose_norm, clip)
    assert method == "height" and metres.shape == pose_m.shape
    clip.extras["focal_px"] = np.array([1000.0, 1000.0])
    metres, method = clip_to_metres(pose_norm, clip)
    assert method == "focal+height" and metres.shape == pose_m.shape


def test_device_selection_and_precision():
    assert select_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        expected = "mps"
    assert select_device(None).type == expected
    cpu = Lifter(create_lifter("tiny"), device="cpu")
    assert cpu.autocast_dtype is None and cpu.window == 27
    with pytest.raises(ValueError):
        Lifter(create_lifter("tiny"), device="cpu", precision="fp8")


@pytest.mark.gpu
def test_cuda_bf16_sdpa_matches_fp32_reference():
    torch.manual_seed(0)
    model = create_lifter("small")
    x = np.random.default_rng(0).uniform(-1, 1, (4, 81, 17, 3)).astype(np.float32)
    fast = Lifter(model, device="cuda", precision="auto")
    assert fast.autocast_dtype == torch.bfloat16
    fast.attention = "sdpa"
    out_fast = fast.lift_windows(x, flip=True)
    slow = Lifter(model, device="cuda", precision="fp32")
    slow.attention = "reference"
    out_slow = slow.lift_windows(x, flip=True)
    scale = np.abs(out_slow).max()
    assert np.abs(out_fast - out_slow).max() < 0.05 * scale + 1e-3


def test_live_window_undoes_the_detectors_side_swaps(lifter, shared_data):
    """A filmed CMU run streamed frame by frame with the whole body exchanged in frames 40-49: with
    `sides_fps` every push lifts the window as filmed — also while the swap has only just begun — and
    without it the swapped frames' lifts differ."""
    from test_sides import _filmed

    kp2d = _filmed(shared_data)[:70].astype(np.float32)  # H36M-17 pixels
    conf = np.full(kp2d.shape[:2], 0.9, np.float32)
    bad = kp2d.copy()
    bad[40:50] = kp2d[40:50][:, H36M17_FLIP_PERMUTATION]
    size = np.array([1080, 1920], np.float32)
    w = 27
    norm = normalize_kp2d(kp2d, conf, size)
    repaired, plain = lifter.live(window=w, sides_fps=60.0), lifter.live(window=w)
    for t in range(70):
        frames = norm[max(0, t + 1 - w):t + 1]
        frames = np.concatenate([np.repeat(frames[:1], w - len(frames), axis=0), frames])
        truth = lifter.lift_windows(frames[None])[0, -1]
        np.testing.assert_allclose(repaired.push(bad[t], conf[t], size), truth, atol=1e-5)
        pose = plain.push(bad[t], conf[t], size)
        if 40 <= t < 50:
            assert np.abs(pose - truth).max() > 1e-3
