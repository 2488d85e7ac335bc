"""Small synthetic multi-view clips and tiny lifters for the training tests (no mocap files needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mvcapture.io.clip import MultiViewClip

# A standing H36M-17 pose in metres (x right, y down, z towards the camera's forward axis).
REST_POSE = np.array([
    [0.00, 0.00, 0.00], [-0.12, 0.00, 0.00], [-0.13, 0.45, 0.02], [-0.13, 0.88, 0.04],
    [0.12, 0.00, 0.00], [0.13, 0.45, 0.02], [0.13, 0.88, 0.04], [0.00, -0.24, 0.00],
    [0.00, -0.48, 0.00], [0.00, -0.58, -0.05], [0.00, -0.70, 0.00], [0.17, -0.45, 0.00],
    [0.20, -0.18, 0.03], [0.22, 0.06, 0.08], [-0.17, -0.45, 0.00], [-0.20, -0.18, 0.03],
    [-0.22, 0.06, 0.08]])


def make_clip(T: int = 90, views: int = 2, seed: int = 0, angle_deg: float = 90.0,
              focal_px: float = 1000.0, size=(1280, 720), noise_px: float = 1.5) -> MultiViewClip:
    """A moving body seen by `views` cameras `angle_deg` apart around the vertical axis, with gt3d."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None, None] / 30.0
    freq = 0.4 + rng.random((1, 17, 3))
    phase = rng.random((1, 17, 3)) * 2 * np.pi
    pose = REST_POSE[None] + 0.08 * np.sin(2 * np.pi * freq * t + phase)
    pose[:, 0] = 0.0
    yaw = np.sin(2 * np.pi * 0.2 * t[:, 0, 0]) * 0.6 + rng.random() * np.pi
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.stack([np.stack([c, 0 * c, s], -1), np.stack([0 * c, 1 + 0 * c, 0 * c], -1),
                    np.stack([-s, 0 * c, c], -1)], -2)  # (T, 3, 3) body yaw over time
    world = np.einsum("tij,tkj->tki", rot, pose)
    size = np.asarray(size, np.float64)
    kp, gts = [], []
    for v in range(views):
        a = np.deg2rad(angle_deg * v)
        cam_rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        cam = world @ cam_rot.T + np.array([0.05, 0.1, 4.5])
        gts.append(cam)
        kp.append(focal_px * cam[..., :2] / cam[..., 2:] + size / 2)
    kp2d = np.stack(kp) + rng.normal(scale=noise_px, size=(views, T, 17, 2))
    conf = rng.uniform(0.3, 1.0, size=(views, T, 17))  # uneven, so confidence weighting matters
    return MultiViewClip(kp2d=kp2d.astype(np.float32), conf=conf.astype(np.float32),
                         image_size=np.tile(size.astype(np.int32), (views, 1)), fps=30.0,
                         gt3d=np.stack(gts).astype(np.float32), name=f"synthetic{seed}",
                         extras={"focal_px": np.full(views, focal_px, np.float32)})


def write_clips(folder: Path, n: int = 3, T: int = 90, views: int = 2, first_seed: int = 0,
                names: list[str] | None = None) -> Path:
    """`n` clips (or one per name in `names`) saved as `<name>.npz` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"clip{i:02d}" for i in range(n)]
    for i, name in enumerate(names):
        clip = make_clip(T=T, views=views, seed=first_seed + i)
        clip.name = name
        clip.save(folder / f"{name}.npz")
    return folder


def tiny_weights(path: Path, seed: int = 0) -> Path:
    """Save an untrained tiny lifter (with model card) to `path`."""
    import torch

    from mvcapture.lifter import create_lifter, save_lifter

    torch.manual_seed(seed)
    model = create_lifter("tiny")
    save_lifter(model, path, {"name": "test tiny lifter", "version": "test"})
    return path
