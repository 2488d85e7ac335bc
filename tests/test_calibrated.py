"""Calibrated recordings: Qualisys calibration reading, the triangulated reference (side correction, outlier
views) and `mvcapture eval-recording` — against OpenCV, synthetic cameras and the bundled real recording."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mvcapture.core.procrustes import optical_axis_angle_deg, rotation_angle_deg
from mvcapture.core.skeleton import COCO17_FLIP_PERMUTATION
from mvcapture.data.calibrated import (CalibratedCamera, InvalidRecordingError, Recording, load_calibrated_recording,
                                       reference_3d, relative_rotation, to_camera, triangulate_reference)
from mvcapture.data.recording_eval import evaluate_lifts, evaluate_recording, parse_pairs, reference_in_cameras

# The calibration's angles of the bundled recording (shared/data/video/pose2sim_demo/README.md).
CALIBRATION_ANGLES = {("cam01", "cam02"): (48.6, 48.7), ("cam01", "cam03"): (132.2, 166.6),
                      ("cam01", "cam04"): (101.5, 131.7), ("cam02", "cam03"): (108.3, 121.2),
                      ("cam02", "cam04"): (137.5, 173.7), ("cam03", "cam04"): (66.7, 67.3)}


def _look_at(centre, target):
    """World → camera rotation (x right, y down, z forward) of a camera at `centre` looking at `target`, z up."""
    z = target - centre
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def _synthetic_recording(rng, T=12, V=4):
    """A person-sized cloud of 17 joints moving in the middle of V cameras on a circle, seen with distortion."""
    cams = []
    for v in range(V):
        a = 2 * np.pi * v / V + 0.3
        centre = np.array([4 * np.cos(a), 4 * np.sin(a), 1.2 + 0.4 * v])
        R = _look_at(centre, np.array([0.0, 0.0, 1.0]))
        K = np.array([[1500.0 + 50 * v, 0, 540], [0, 1500.0 + 50 * v, 960], [0, 0, 1]])
        cams.append(CalibratedCamera(f"cam{v + 1:02d}", K, np.array([-0.05, 0.12, 0.001, -0.0005, 0.0]), R,
                                     -R @ centre, np.array([1080, 1920])))
    base = rng.normal(0, 0.3, (17, 3)) * [1, 1, 2.5] + [0, 0, 1.0]
    base[[1, 3, 5, 7, 9, 11, 13, 15], 0] += 0.25   # left joints on +x, right on −x: sides are distinguishable
    base[[2, 4, 6, 8, 10, 12, 14, 16], 0] -= 0.25
    world = base + np.cumsum(rng.normal(0, 0.01, (T, 1, 3)), 0)
    kp = np.stack([c.project(world) for c in cams])
    return Recording(folder=None, cameras=cams, kp2d_coco_px=kp, conf_coco=np.full(kp.shape[:3], 0.9), fps=30.0), world


def test_projection_matches_opencv():
    rng = np.random.default_rng(0)
    rec, world = _synthetic_recording(rng)
    for cam in rec.cameras:
        rvec, _ = cv2.Rodrigues(cam.R)
        ref, _ = cv2.projectPoints(world.reshape(-1, 3), rvec, cam.t, cam.K, cam.dist)
        np.testing.assert_allclose(cam.project(world).reshape(-1, 2), ref.reshape(-1, 2), atol=1e-6)
        h = np.concatenate([world, np.ones(world.shape[:-1] + (1,))], -1) @ cam.P.T
        np.testing.assert_allclose(cam.undistort(cam.project(world)), h[..., :2] / h[..., 2:], atol=1e-3)
        np.testing.assert_allclose(to_camera(world, cam), world @ cam.R.T + cam.t)
        np.testing.assert_allclose(cam.centre, -cam.R.T @ cam.t)


def test_triangulation_corrects_sides_and_drops_outliers():
    rng = np.random.default_rng(1)
    rec, world = _synthetic_recording(rng)
    flip_frames = [2, 5, 6, 9]
    rec.kp2d_coco_px[1, flip_frames] = rec.kp2d_coco_px[1][flip_frames][:, COCO17_FLIP_PERMUTATION]
    rec.kp2d_coco_px[3, 4, 7] += [150.0, -90.0]   # cam04 misplaces the left elbow in frame 4
    rec.conf_coco[2, 8, 0] = 0.0                   # cam03 misses the nose in frame 8
    tri = triangulate_reference(rec)
    assert tri.swapped[:, 1].nonzero()[0].tolist() == flip_frames
    assert not tri.swapped[:, [0, 2, 3]].any()
    assert not tri.used[4, 3, 7] and tri.used[4, :3, 7].all()
    assert not tri.used[8, 2, 0]
    np.testing.assert_allclose(tri.world_coco_m, world, atol=1e-4)
    assert tri.reprojection_px[4, 3, 7] > 100 and np.median(tri.reprojection_px) < 1e-3
    pose = tri.h36m()
    assert pose.shape == (12, 17, 3)
    np.testing.assert_allclose(pose[:, 0], 0.5 * (world[:, 11] + world[:, 12]), atol=1e-4)


def test_too_few_views_leave_nan():
    rng = np.random.default_rng(2)
    rec, _ = _synthetic_recording(rng, V=3)
    rec.conf_coco[1:, 3, 9] = 0.0   # only one camera sees the left wrist in frame 3
    tri = triangulate_reference(rec)
    assert np.isnan(tri.world_coco_m[3, 9]).all() and np.isfinite(tri.world_coco_m[3, 10]).all()
    assert np.isnan(tri.h36m()[3, 13]).all()


def test_oracle_lifts_give_calibration_angles_synthetic():
    rng = np.random.default_rng(3)
    rec, world = _synthetic_recording(rng)
    oracle = reference_in_cameras(rec)
    out = evaluate_lifts(rec, oracle, np.ones(oracle.shape[:3]))
    assert len(out["pairs"]) == 6
    for row in out["pairs"]:
        a, b = (rec.camera(n) for n in row["cameras"])
        cos = float(a.R[2] @ b.R[2])  # optical axes in world coordinates
        assert row["optical_axis_angle_deg"]["lifter"] == pytest.approx(np.degrees(np.arccos(cos)), abs=0.01)
        assert abs(row["relative_rotation_deg"]["error"]) < 0.01
    for v in out["views"].values():
        assert v["n_mpjpe"] < 1e-3 and v["pa_mpjpe"] < 1e-3
    # a lift that is off is scored as off: the reference with a 10° rotated depth
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    tilted = oracle.copy()
    tilted[0] = oracle[0] @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    worse = evaluate_lifts(rec, tilted, np.ones(oracle.shape[:3]))
    assert worse["views"]["cam01"]["n_mpjpe"] > 10 and worse["views"]["cam01"]["pa_mpjpe"] < 1e-3
    assert worse["views"]["cam01"]["orientation_error_deg"] == pytest.approx(10, abs=1e-6)
    assert max(out["views"][n]["orientation_error_deg"] for n in out["views"]) < 1e-3
    assert max(worse["views"][n]["orientation_error_deg"] for n in list(out["views"])[1:]) < 1e-3
    assert abs(worse["pairs"][0]["relative_rotation_deg"]["error"]) == pytest.approx(10, abs=0.5)


def _qca(cams):
    """A Qualisys calibration file of CalibratedCameras (Qualisys conventions: R rows = camera axes, y up, −z
    forward; mm; sensor units 64 per pixel)."""
    parts = []
    for cam in cams:
        Rq = np.diag([1.0, -1.0, -1.0]) @ cam.R
        r = " ".join(f'r{a + 1}{b + 1}="{float(Rq[a, b])!r}"' for a in range(3) for b in range(3))
        x, y, z = cam.centre * 1000
        K, d = (cam.K * 64).tolist(), cam.dist.tolist()
        w, h = cam.image_size
        parts.append(
            f'<camera serial="{cam.name}"><fov_video bottom="{h - 1}" left="0" right="{w - 1}" top="0"/>'
            f'<transform {r} x="{float(x)!r}" y="{float(y)!r}" z="{float(z)!r}"/>'
            f'<intrinsic centerPointU="{K[0][2]!r}" centerPointV="{K[1][2]!r}" focalLengthU="{K[0][0]!r}" '
            f'focalLengthV="{K[1][1]!r}" radialDistortion1="{d[0]!r}" radialDistortion2="{d[1]!r}" '
            f'radialDistortion3="{d[4]!r}" tangentalDistortion1="{d[2]!r}" tangentalDistortion2="{d[3]!r}"/></camera>')
    return f'<calibration><cameras>{"".join(parts)}</cameras></calibration>'


def test_load_recording_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(4)
    rec, world = _synthetic_recording(rng, V=3)
    (tmp_path / "rig.qca.txt").write_text(_qca(rec.cameras))
    (tmp_path / "detections").mkdir()
    for v, cam in enumerate(rec.cameras):
        np.savez(tmp_path / "detections" / f"{cam.name}_coco17.npz", keypoints=rec.kp2d_coco_px[v].astype(np.float32),
                 scores=rec.conf_coco[v].astype(np.float32), image_size=cam.image_size.astype(np.int32), fps=30.0)
    loaded = load_calibrated_recording(tmp_path)
    assert loaded.names == ["cam01", "cam02", "cam03"] and loaded.fps == 30.0
    for a, b in zip(loaded.cameras, rec.cameras):
        np.testing.assert_allclose(a.R, b.R, atol=1e-9)
        np.testing.assert_allclose(a.t, b.t, atol=1e-9)
        np.testing.assert_allclose(a.K, b.K, atol=1e-9)
        np.testing.assert_allclose(a.dist, b.dist)
    np.testing.assert_allclose(triangulate_reference(loaded).world_coco_m, world, atol=1e-3)
    assert parse_pairs("01-03, cam02-03", loaded) == [("cam01", "cam03"), ("cam02", "cam03")]
    for bad in ("01", "01-01", "01-07"):
        with pytest.raises(InvalidRecordingError):
            parse_pairs(bad, loaded)
    np.savez(tmp_path / "detections" / "cam03_coco17.npz", keypoints=np.zeros((5, 17, 2), np.float32),
             scores=np.ones((5, 17), np.float32), image_size=np.array([1080, 1920], np.int32), fps=30.0)
    with pytest.raises(InvalidRecordingError, match="cam03_coco17.npz: 5 frames"):
        load_calibrated_recording(tmp_path)
    (tmp_path / "rig.qca.txt").write_text("<calibration><cameras><camera serial='x'/></cameras></calibration>")
    with pytest.raises(InvalidRecordingError, match="rig.qca.txt: camera x lacks"):
        load_calibrated_recording(tmp_path)
    with pytest.raises(InvalidRecordingError, match="expected one Qualisys calibration"):
        load_calibrated_recording(tmp_path / "detections")


@pytest.fixture(scope="module")
def bundled(shared_data):
    folder = shared_data / "video" / "pose2sim_demo"
    if not (folder / "detections").is_dir():
        pytest.skip(f"no detections in {folder}")
    return folder


def test_bundled_reference_reprojects_onto_every_camera(bundled):
    rec = load_calibrated_recording(bundled)
    assert rec.names == ["cam01", "cam02", "cam03", "cam04"] and rec.num_frames == 100
    tri = triangulate_reference(rec)
    for v, name in enumerate(rec.names):
        assert np.nanmedian(tri.reprojection_px[:, v]) < 20, name
    # cam02's detector swaps the sides in about a third of the frames (detections/README.md); the others never
    assert 20 <= tri.swapped[:, 1].sum() <= 45 and not tri.swapped[:, [0, 2, 3]].any()
    ref = reference_3d(rec)
    assert np.isfinite(ref).all()
    thigh = np.linalg.norm(ref[:, 1] - ref[:, 2], axis=-1)
    assert 0.3 < np.median(thigh) < 0.5   # metres: a person


def test_bundled_oracle_gives_calibration_angles(bundled):
    rec = load_calibrated_recording(bundled)
    oracle = reference_in_cameras(rec)
    out = evaluate_lifts(rec, oracle, np.ones(oracle.shape[:3]))
    for row in out["pairs"]:
        axis, rotation = CALIBRATION_ANGLES[tuple(row["cameras"])]
        assert row["optical_axis_angle_deg"]["lifter"] == pytest.approx(axis, abs=0.1)
        assert row["relative_rotation_deg"]["lifter"] == pytest.approx(rotation, abs=0.1)
        assert abs(row["optical_axis_angle_deg"]["error"]) < 0.1 and abs(row["relative_rotation_deg"]["error"]) < 0.1
        R = relative_rotation(rec.camera(row["cameras"][0]), rec.camera(row["cameras"][1]))
        assert optical_axis_angle_deg(R) == pytest.approx(axis, abs=0.06)
        assert float(rotation_angle_deg(R)) == pytest.approx(rotation, abs=0.06)
    for v in out["views"].values():
        assert v["n_mpjpe"] < 1e-6 and v["pa_mpjpe"] < 1e-3


def test_eval_recording_command_on_bundled(bundled, tmp_path, capsys):
    from mvcapture.cli import main

    out = tmp_path / "eval.json"
    assert main(["eval-recording", str(bundled), "--pairs", "01-04,02-03", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cam01-cam04" in printed and "cam02-cam03" in printed and "101.5" in printed
    result = json.loads(out.read_text())
    assert [r["pair"] for r in result["pairs"]] == ["cam01-cam04", "cam02-cam03"]
    assert result["model"]["config"] and result["n_frames"] == 100 and result["flip"] is True
    for view in result["views"].values():
        assert 0 < view["pa_mpjpe"] <= view["n_mpjpe"] * 1.5 and view["n_mpjpe"] < 500
    cam02 = result["views"]["cam02"]
    assert cam02["side_swapped_frames"] == 32 and cam02["side_repair_agreement"] >= 0.98  # undone before lifting
    assert "cam02: 32 / 33" in printed
    assert max(result["reference_reprojection_px"].values()) < 20
    assert main(["eval-recording", str(bundled), "--pairs", "01-09"]) == 2


def test_eval_recording_lifts_as_process_does(bundled, monkeypatch):
    """The lifter-only angles of pair 01-04 are exactly those `mvcapture process` gives for the demo session
    (cam01 + cam04, the same shipped detections): both lift each view the same way."""
    from mvcapture.errors import ModelNotFoundError
    from mvcapture.lifter import load_lifter
    from mvcapture.pipeline.demo import demo_session
    from mvcapture.pipeline.process import SessionPipeline

    def unavailable(mode="balanced", **kwargs):
        raise ModelNotFoundError(f"detector model(s) for {mode!r} not found on this computer (test)")

    monkeypatch.setattr("mvcapture.detect.backends.create_detector", unavailable)
    lifter = load_lifter("default", device="cpu")
    pipeline = SessionPipeline(demo_session(), model=lifter)
    pipeline.run()
    row = evaluate_recording(bundled, model=lifter, pairs="01-04")["pairs"][0]
    assert row["optical_axis_angle_deg"]["lifter"] == pytest.approx(pipeline.metrics["camera_axis_angle_deg"][1],
                                                                    abs=0.05)
    assert row["relative_rotation_deg"]["lifter"] == pytest.approx(pipeline.metrics["camera_rotation_deg"][1],
                                                                   abs=0.05)
