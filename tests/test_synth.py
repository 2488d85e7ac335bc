"""Synthetic multi-view clips from real motion capture: geometry, noise model, determinism, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mvcapture.cli import main
from mvcapture.data.synth import NO_NOISE, NoiseModel, project, synthesize_clip
from mvcapture.errors import MvcaptureError
from mvcapture.io.bvh import bvh_to_h36m
from mvcapture.io.clip import load_clip


@pytest.fixture(scope="module")
def walk(shared_data):
    """A walk (translates ~4 m) and a dance clip, H36M-17 world metres at 30 fps."""
    cmu = shared_data / "mocap" / "cmu"
    if not cmu.is_dir():
        pytest.skip("no CMU clips")
    return {stem: bvh_to_h36m(cmu / f"{stem}.bvh", fps=30) for stem in ("002_01", "005_06")}


def _axes_angle(R_a, R_b):
    return np.degrees(np.arccos(np.clip(R_a[2] @ R_b[2], -1, 1)))


def test_projection_of_gt3d_gives_clean_kp2d(walk):
    pose, fps = walk["002_01"]
    clip = synthesize_clip(pose, fps, name="002_01_r0", seed=3, views=3)
    focal, size = clip.extras["focal_px"], clip.image_size
    assert focal.shape == (3,) and clip.extras["cam_R"].shape == (3, 3, 3) and clip.extras["cam_t"].shape == (3, 3)
    # by hand: principal point at the image centre, square pixels
    u = focal[:, None, None] * clip.gt3d[..., 0] / clip.gt3d[..., 2] + size[:, None, None, 0] / 2
    v = focal[:, None, None] * clip.gt3d[..., 1] / clip.gt3d[..., 2] + size[:, None, None, 1] / 2
    np.testing.assert_allclose(np.stack([u, v], -1), clip.extras["kp2d_clean"], atol=0.01)
    # gt3d is the world pose seen through the stored extrinsics
    R, t = clip.extras["cam_R"], clip.extras["cam_t"]
    np.testing.assert_allclose(clip.gt3d, np.einsum("vij,tkj->vtki", R, pose) + t[:, None, None], atol=1e-4)
    # everyone in frame, in front of the camera
    kp = clip.extras["kp2d_clean"]
    assert np.all(clip.gt3d[..., 2] > 1.0)
    assert np.all(kp >= 0)
    assert np.all(kp[..., 0] < size[:, None, None, 0]) and np.all(kp[..., 1] < size[:, None, None, 1])
    clean = synthesize_clip(pose, fps, name="002_01_r0", seed=3, views=3, noise=NO_NOISE)
    np.testing.assert_array_equal(clean.kp2d, clean.extras["kp2d_clean"])
    assert np.all(clean.conf == 1)


@pytest.mark.parametrize("angle", [30.0, 90.0, 135.0])
def test_requested_angle_is_measured_between_views(walk, angle):
    pose, fps = walk["005_06"]
    clip = synthesize_clip(pose, fps, name="x", seed=1, views=3, angle_deg=angle, height_m=[0.8, 1.8, 1.2])
    R = clip.extras["cam_R"]
    for a, b in ((0, 1), (1, 2)):
        assert _axes_angle(R[a], R[b]) == pytest.approx(angle, abs=1e-6)
        # independently of cam_R's axes: the relative rotation maps view a's root-relative gt3d onto
        # view b's, and it turns view a's optical axis by the requested angle
        R_ab = R[b] @ R[a].T
        rel_a = clip.gt3d[a] - clip.gt3d[a][:, :1]
        rel_b = clip.gt3d[b] - clip.gt3d[b][:, :1]
        np.testing.assert_allclose(rel_a @ R_ab.T, rel_b, atol=1e-4)
        assert np.degrees(np.arccos(R_ab[2, 2])) == pytest.approx(angle, abs=1e-6)


def test_given_camera_settings_and_subject_in_frame(walk):
    pose, fps = walk["002_01"]
    for size in ((1920, 1080), (1080, 1920)):
        clip = synthesize_clip(pose, fps, name="a", views=2, image_size=size, distance_m=4.0, height_m=1.5,
                               focal_px=1500.0, noise=NO_NOISE)
        assert np.all(clip.image_size == size) and np.allclose(clip.extras["focal_px"], 1500.0)
        kp = clip.extras["kp2d_clean"]
        assert np.all(kp >= 0) and np.all(kp < np.array(size))     # moved back to keep the walk in frame
        cam_centre = -np.einsum("vji,vj->vi", clip.extras["cam_R"], clip.extras["cam_t"])
        xz = pose[:, :, [0, 2]].reshape(-1, 2)
        path_centre = 0.5 * (xz.min(0) + xz.max(0))
        assert np.all(np.linalg.norm(cam_centre[:, [0, 2]] - path_centre, axis=1) > 4.0)


def test_same_seed_same_clip_other_seed_other_noise(walk):
    pose, fps = walk["002_01"]
    a = synthesize_clip(pose, fps, name="002_01_r0", seed=7)
    b = synthesize_clip(pose, fps, name="002_01_r0", seed=7)
    c = synthesize_clip(pose, fps, name="002_01_r0", seed=8)
    for key in ("kp2d", "conf", "gt3d", "image_size"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    for key in a.extras:
        np.testing.assert_array_equal(a.extras[key], b.extras[key])
    assert not np.allclose(a.kp2d, c.kp2d)
    # the name salts the seed: two rigs of one file differ
    d = synthesize_clip(pose, fps, name="002_01_r1", seed=7)
    assert not np.allclose(a.extras["focal_px"], d.extras["focal_px"])


def test_noise_statistics(walk):
    pose, fps = walk["005_06"]
    clip = synthesize_clip(pose, fps, name="n", seed=0, views=4, angle_deg=60)
    err = np.linalg.norm(clip.kp2d - clip.extras["kp2d_clean"], axis=-1)      # (V, T, 17) px
    seen = clip.conf > 0
    wrists = np.median(err[..., [13, 16]][seen[..., [13, 16]]])
    ankles = np.median(err[..., [3, 6]][seen[..., [3, 6]]])
    hips = np.median(err[..., [1, 4]][seen[..., [1, 4]]])
    assert wrists > 1.2 * hips and ankles > hips
    size = np.linalg.norm(clip.extras["kp2d_clean"].max(2) - clip.extras["kp2d_clean"].min(2), axis=-1)
    rel = np.median(err[seen] / np.broadcast_to(size[..., None], err.shape)[seen])
    assert 0.004 < rel < 0.03                                  # jitter ~1 % of the person's size
    dropped = clip.conf == 0
    assert 0.005 < dropped.mean() < 0.1
    assert np.all((clip.conf >= 0) & (clip.conf <= 1))
    # confidence falls with error among detected, unswapped joints
    assert np.corrcoef(err[seen & (err < 100)], clip.conf[seen & (err < 100)])[0, 1] < -0.3
    # left/right swaps: some frames have the left ankle where the right one is
    swapped = np.linalg.norm(clip.kp2d[..., 6, :] - clip.extras["kp2d_clean"][..., 3, :], axis=-1) < \
        np.linalg.norm(clip.kp2d[..., 6, :] - clip.extras["kp2d_clean"][..., 6, :], axis=-1)
    assert 0 < swapped.mean() < 0.1
    off = synthesize_clip(pose, fps, name="n", seed=0, views=4, angle_deg=60,
                          noise=NoiseModel(swap_rate=0.0, dropout_rate=0.0, occlusion_rate=0.0))
    assert np.all(off.conf > 0)


def test_time_offset_and_panning(walk):
    pose, fps = walk["002_01"]
    clip = synthesize_clip(pose, fps, name="o", views=2, time_offset_s=2 / fps, noise=NO_NOISE)
    assert clip.num_frames == pose.shape[0] - 2
    np.testing.assert_allclose(clip.extras["time_offset_s"], [0, 2 / fps])
    R, t = clip.extras["cam_R"], clip.extras["cam_t"]
    world = np.einsum("vji,vtkj->vtki", R, clip.gt3d - t[:, None, None])        # back to the world
    np.testing.assert_allclose(world[0], pose[:-2], atol=1e-4)
    np.testing.assert_allclose(world[1], pose[2:], atol=1e-4)

    pan = synthesize_clip(pose, fps, name="p", views=2, pan=True, noise=NO_NOISE)
    T = pan.num_frames
    assert pan.extras["cam_R"].shape == (2, T, 3, 3) and pan.extras["cam_t"].shape == (2, T, 3)
    R, t = pan.extras["cam_R"], pan.extras["cam_t"]
    np.testing.assert_allclose(pan.gt3d, np.einsum("vtij,tkj->vtki", R, pose) + t[:, :, None], atol=1e-4)
    np.testing.assert_allclose(project(pan.gt3d, pan.extras["focal_px"], pan.image_size),
                               pan.extras["kp2d_clean"], atol=0.01)
    # the camera turns: the pelvis stays near the image centre although the subject walks ~4 m
    centre = pan.image_size[:, None] / 2
    assert np.max(np.abs(pan.extras["kp2d_clean"][:, :, 0] - centre) / pan.image_size[:, None]) < 0.2
    assert np.degrees(np.arccos(np.clip(R[0, 0, 2] @ R[0, -1, 2], -1, 1))) > 10


def test_bad_requests_raise():
    pose = np.zeros((10, 17, 3))
    with pytest.raises(MvcaptureError, match="angle"):
        synthesize_clip(pose, 30, angle_deg=0)
    with pytest.raises(MvcaptureError, match="shape"):
        synthesize_clip(pose[:, :5], 30)


def test_cli_synth(shared_data, tmp_path):
    bvh_dir = tmp_path / "bvh"
    bvh_dir.mkdir()
    for stem in ("002_03", "007_12"):
        shutil.copy(shared_data / "mocap" / "cmu" / f"{stem}.bvh", bvh_dir)
    out = tmp_path / "clips"
    args = ["data", "synth", str(bvh_dir), str(out), "--rigs", "2", "--views", "3", "--angle", "80",
            "--seed", "5", "--orientation", "portrait", "--json", str(tmp_path / "r.json")]
    assert main(args) == 0
    files = sorted(p.name for p in out.glob("*.npz"))
    assert files == ["002_03_r0.npz", "002_03_r1.npz", "007_12_r0.npz", "007_12_r1.npz"]
    clip = load_clip(out / "007_12_r1.npz", min_views=3)
    assert clip.fps == 30 and np.all(clip.image_size == (1080, 1920)) and clip.gt3d is not None
    assert clip.extras["focal_px"].shape == (3,) and clip.extras["kp2d_clean"].shape == clip.kp2d.shape
    assert _axes_angle(clip.extras["cam_R"][0], clip.extras["cam_R"][1]) == pytest.approx(80, abs=1e-4)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n_clips"] == 4 and report["frames"] > 0
    again = tmp_path / "again"
    assert main(args[:3] + [str(again)] + args[4:]) == 0
    np.testing.assert_array_equal(load_clip(again / "002_03_r0.npz").kp2d, load_clip(out / "002_03_r0.npz").kp2d)
    assert main(["data", "synth", str(tmp_path / "empty"), str(out)]) == 2


def test_cli_synth_limb_motion(shared_data, tmp_path):
    bvh_dir = tmp_path / "bvh"
    bvh_dir.mkdir()
    shutil.copy(shared_data / "mocap" / "cmu" / "002_03.bvh", bvh_dir)
    plain, moved = tmp_path / "plain", tmp_path / "moved"
    base = ["data", "synth", str(bvh_dir), "--rigs", "2", "--seed", "5", "--augment"]
    assert main(base[:3] + [str(plain)] + base[3:]) == 0
    assert main(base[:3] + [str(moved)] + base[3:] + ["--limb-motion", "1", "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["limb_motion"] == 1.0
    for rig in ("r0", "r1"):
        a, b = load_clip(plain / f"002_03_{rig}.npz"), load_clip(moved / f"002_03_{rig}.npz")
        assert "limb_motion_deg" in json.loads(str(b.extras["augment"]))
        assert "limb_motion_deg" not in json.loads(str(a.extras["augment"]))
        assert a.gt3d.shape == b.gt3d.shape and np.abs(a.gt3d - b.gt3d).max() > 0.05  # another motion (metres)
    assert main(["data", "synth", str(bvh_dir), str(tmp_path / "x"), "--limb-motion", "0.5"]) == 2  # no --augment
    assert main(base[:3] + [str(tmp_path / "y")] + base[3:] + ["--limb-motion", "1.5"]) == 2


def test_height_and_distance_ranges_place_cameras_inside_them(walk, tmp_path, shared_data):
    """Camera centres recovered from the extrinsics (C = -Rᵀt) lie in the requested ranges."""
    pose, fps = walk["005_06"]
    floor = pose[:, [3, 6], 1].min()
    heights, pitches = [], []
    for i in range(12):
        clip = synthesize_clip(pose, fps, name=f"r{i}", seed=2, views=2, height_range_m=(2.2, 2.8),
                               distance_range_m=(6.0, 6.5), noise=NO_NOISE)
        R, t = clip.extras["cam_R"], clip.extras["cam_t"]
        centres = -np.einsum("vji,vj->vi", R, t)
        heights += list(centres[:, 1] - floor)
        pitches += list(np.degrees(np.arcsin(-R[:, 2, 1])))     # optical axis below the horizon
    assert 2.2 - 1e-6 <= min(heights) and max(heights) <= 2.8 + 1e-6
    assert min(pitches) > 5, "high cameras look down"
    with pytest.raises(MvcaptureError, match="height_range_m"):
        synthesize_clip(pose, fps, height_range_m=(2.0, 1.0))
    # the CLI takes a value or a LO-HI range
    bvh_dir = tmp_path / "bvh"
    bvh_dir.mkdir()
    shutil.copy(shared_data / "mocap" / "cmu" / "005_06.bvh", bvh_dir)
    out = tmp_path / "clips"
    assert main(["data", "synth", str(bvh_dir), str(out), "--height", "2.5-2.6", "--distance", "6",
                 "--json", str(tmp_path / "r.json")]) == 0
    clip = load_clip(out / "005_06_r0.npz")
    centres = -np.einsum("vji,vj->vi", clip.extras["cam_R"], clip.extras["cam_t"])
    assert np.all((centres[:, 1] - floor > 2.5 - 1e-6) & (centres[:, 1] - floor < 2.6 + 1e-6))
    assert json.loads((tmp_path / "r.json").read_text())["height_m"] == [2.5, 2.6]
    with pytest.raises(SystemExit) as exc:     # argparse's usage error
        main(["data", "synth", str(bvh_dir), str(out), "--height", "2.6-2.5"])
    assert exc.value.code == 2
