"""Session pipeline: demo session end to end, stage caching/resume/force, time offsets, cancel, camera angle,
the `process` / `demo` commands, live mode on two file sources and `bench live`. Tiny models only."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from mvcapture.analysis import Analysis
from mvcapture.core.procrustes import procrustes, rotation_angle_deg
from mvcapture.errors import ModelNotFoundError
from mvcapture.io.video import VideoWriter
from mvcapture.lifter import create_lifter, save_lifter
from mvcapture.lifter.runtime import Lifter
from mvcapture.lifter.weights import default_weights_path
from mvcapture.pipeline.process import (PipelineCancelled, SessionPipeline, camera_angle_advice,
                                        optical_axis_angle_deg, process_session, resample_view)
from mvcapture.session.store import Session

W, H, FPS, T = 128, 96, 25.0, 24
BINS_X = np.arange(17) * 5 + 3
BINS_Y = np.arange(17) * 7 + 2


# --- fixtures ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Batch-1 lifting of tiny models: one thread is fastest on the shared 2-core test machine (two threads
    spin against the capture threads and other processes, 5-10x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_lifter():
    import torch

    torch.manual_seed(0)
    return Lifter(create_lifter("tiny"), card={"name": "tiny-test", "version": "t1", "sha256": "0" * 64},
                  device="cpu")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lifter") / "tiny.pt"
    save_lifter(create_lifter("tiny"), path, {"name": "tiny-test", "version": "t1"})
    return path


@pytest.fixture
def no_detector_weights(monkeypatch):
    """As on an offline machine without rtmlib's models: creating a detector fails."""
    def unavailable(mode="balanced", **kwargs):
        raise ModelNotFoundError(f"detector model(s) for {mode!r} not found on this computer (test)")

    monkeypatch.setattr("mvcapture.detect.backends.create_detector", unavailable)


def _rectangle_video(path, shift=0, frames=T):
    """A white 'athlete' rectangle walking right (moved `shift` frames later), on multiples of 2 px."""
    with VideoWriter(path, W, H, FPS) as writer:
        for t in range(frames):
            image = np.zeros((H, W, 3), np.uint8)
            x1 = 20 + 2 * max(t - shift, 0)
            image[16:80, x1:x1 + 32] = 255
            writer.write(image)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [_rectangle_video(folder / "a.mp4"), _rectangle_video(folder / "b.mp4", shift=1)]


@pytest.fixture(scope="module")
def tiny_detector_files(tmp_path_factory):
    from mvcapture.detect.models import model_specs
    from mvcapture.detect.testing import make_rtmpose, make_yolox_rectangles

    folder = tmp_path_factory.mktemp("models")
    specs = model_specs("balanced")
    pose = make_rtmpose(folder / specs["pose"].onnx_name, BINS_X, BINS_Y, (48, 64))
    det = make_yolox_rectangles(folder / specs["det"].onnx_name, (64, 64))
    return pose, det


class CountingDetector:
    def __init__(self, pose, det):
        from mvcapture.detect.backends import RTMPoseDetector

        self.inner = RTMPoseDetector(pose, det, device="cpu")
        self.model_id, self.provider, self.calls = self.inner.model_id, self.inner.provider, 0

    def detect(self, frame):
        self.calls += 1
        return self.inner.detect(frame)


@pytest.fixture
def detector(tiny_detector_files):
    return CountingDetector(*tiny_detector_files)


def _manual_sync(session, offset_s=0.0, view=1, **extra):
    session.save_sync({"offset_s": offset_s, "drift_ppm": 0.0, "confidence": 1.0, "low_confidence": False,
                       "method": "manual", "reason": "", **extra}, view=view)


@pytest.fixture
def rect_session(videos):
    session = Session.create(name="rectangles")
    session.import_videos(videos)
    _manual_sync(session)
    return session


# --- synthetic athlete for sessions with shipped (cached) detections ------------------------------------

COCO_TEMPLATE = np.array([  # metres, x right, y down, z forward; COCO-17 order, standing
    [0, -1.62, 0.08], [-0.03, -1.66, 0.06], [0.03, -1.66, 0.06], [-0.07, -1.64, 0], [0.07, -1.64, 0],
    [-0.18, -1.42, 0], [0.18, -1.42, 0], [-0.22, -1.15, 0.02], [0.22, -1.15, 0.02], [-0.24, -0.9, 0.05],
    [0.24, -0.9, 0.05], [-0.11, -0.92, 0], [0.11, -0.92, 0], [-0.12, -0.5, 0.02], [0.12, -0.5, 0.02],
    [-0.12, -0.08, 0], [0.12, -0.08, 0]])


def _athlete_3d(t_s):
    """(N, 17, 3) world metres: arms swing, knees lift, body turns slowly, all at times t_s (any value)."""
    t_s = np.atleast_1d(np.asarray(t_s, np.float64))
    poses = np.repeat(COCO_TEMPLATE[None], len(t_s), 0).copy()
    swing = 0.25 * np.sin(2 * np.pi * 1.3 * t_s)
    poses[:, [7, 9], 2] += swing[:, None] * [1, 2]
    poses[:, [8, 10], 2] -= swing[:, None] * [1, 2]
    poses[:, [13, 15], 2] += 0.5 * swing[:, None] * [1, 1]
    poses[:, [14, 16], 2] -= 0.5 * swing[:, None] * [1, 1]
    yaw = 0.6 * np.sin(2 * np.pi * 0.4 * t_s)
    c, s = np.cos(yaw), np.sin(yaw)
    x, z = poses[..., 0].copy(), poses[..., 2].copy()
    poses[..., 0] = c[:, None] * x + s[:, None] * z
    poses[..., 2] = -s[:, None] * x + c[:, None] * z
    return poses


def _camera(yaw_deg):
    """World → camera: camera on a circle 4 m from the athlete, looking at it, turned by yaw_deg."""
    a = np.radians(yaw_deg)
    R = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
    return R, np.array([0.0, 0.9, 4.0])


def _project(world, yaw_deg, size=(W, H), focal=90.0):
    R, t = _camera(yaw_deg)
    cam = world @ R.T + t
    return (cam[..., :2] / cam[..., 2:] * focal + np.array(size) / 2).astype(np.float32)


def _cached_session(tmp_path, delay_frames=0, frames=60, yaw1=0.0):
    """A session with black videos and shipped COCO-17 detections of the synthetic athlete; view 1 sees
    the same motion `delay_frames` later (from camera yaw `yaw1`)."""
    t = np.arange(frames) / FPS
    views = [_project(_athlete_3d(t), 0.0), _project(_athlete_3d(t - delay_frames / FPS), yaw1)]
    paths = []
    for v in range(2):
        path = tmp_path / f"view{v}.mp4"
        with VideoWriter(path, W, H, FPS) as writer:
            for _ in range(frames):
                writer.write(np.zeros((H, W, 3), np.uint8))
        paths.append(path)
    session = Session.create(name="cached")
    session.import_videos(paths)
    for v, kp in enumerate(views):
        rel = f"detections/shipped/view{v}_coco17.npz"
        (session.path / rel).parent.mkdir(parents=True, exist_ok=True)
        np.savez(session.path / rel, keypoints=kp, scores=np.full(kp.shape[:2], 0.9, np.float32),
                 image_size=np.array([W, H], np.int32), fps=np.float64(FPS))
        session.meta["views"][v]["cached_detections"] = rel
    session.save_meta()
    return session


# --- pure functions ---------------------------------------------------------------------------------------

def test_resample_view_interpolates_and_marks_missing():
    times = np.arange(4) / 10.0
    kp = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 17, 2), np.float32)
    conf = np.ones((4, 17), np.float32)
    conf[2, 3] = 0.0
    out_kp, out_conf = resample_view(times, kp, conf, np.array([0.05, 0.1, 0.15, 0.2, 0.35, -0.01, 0.3]))
    np.testing.assert_allclose(out_kp[:2, 0, 0], [0.5, 1.0])
    assert out_conf[2, 3] == 0 and out_conf[2, 4] == 1      # a missing neighbour → missing
    assert out_conf[3, 3] == 0 and out_conf[1, 3] == 1      # on a frame: that frame alone
    assert (out_conf[5] == 0).all()                          # before the first frame
    np.testing.assert_allclose(out_kp[6, 0, 0], 3.0)      # on the last frame
    assert (out_conf[4] == 0).all()                          # after the last frame


def test_camera_angles_from_procrustes_rotation():
    """Procrustes on exact camera-frame poses recovers the cameras' relative rotation; the optical-axis
    angle ignores a roll about the viewing direction, the rotation angle does not."""
    world = _athlete_3d(np.arange(30) / FPS)
    world = world - world[:, 11:13].mean(1, keepdims=True)  # root-relative (mid-hips)
    for yaw, roll, want_rot, want_axis in ((90.0, 0.0, 90.0, 90.0), (100.0, 60.0, None, 100.0)):
        R0, _ = _camera(0.0)
        R1, _ = _camera(yaw)
        c, s = np.cos(np.radians(roll)), np.sin(np.radians(roll))
        R1 = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ R1
        cam0, cam1 = world @ R0.T, world @ R1.T
        fit = procrustes(cam1, cam0, mode="sequence")
        np.testing.assert_allclose(fit.aligned, cam0, atol=1e-9)
        rot = float(rotation_angle_deg(fit.R))
        true_rot = float(rotation_angle_deg((R0 @ R1.T).T))
        assert rot == pytest.approx(true_rot, abs=1e-6)
        if want_rot is not None:
            assert rot == pytest.approx(want_rot, abs=1e-6)
        else:
            assert rot > want_axis + 10  # the roll adds to the rotation, not to the axis angle
        assert optical_axis_angle_deg(fit.R) == pytest.approx(want_axis, abs=1e-6)


def test_camera_angle_advice():
    assert "90" in camera_angle_advice(15) and "same side" in camera_angle_advice(15)
    assert camera_angle_advice(95).startswith("The cameras are 95° apart: good")
    assert "mirror" in camera_angle_advice(170)


# --- the pipeline on sessions ---------------------------------------------------------------------------

def test_demo_session_headless_cli(tmp_path, tiny_weights, no_detector_weights):
    from mvcapture.cli import main

    out = tmp_path / "out"
    assert main(["demo", "--no-gui", "--out", str(out), "--model", str(tiny_weights),
                 "--json", str(tmp_path / "r.json")]) == 0
    for name in ("analysis.npz", "metrics.json", "results.json", "demo.png"):
        assert (out / name).stat().st_size > 0
    a = Analysis.load(out / "analysis.npz")
    assert a.pose3d.shape == (2, 100, 17, 3) and np.isfinite(a.pose3d).all()
    assert np.isfinite(a.aligned).all() and np.isfinite(a.residual_mm).all()
    assert 0.0 <= a.angle_deg[1] <= 180.0 and a.angle_deg[0] == 0.0
    metrics = json.loads((out / "metrics.json").read_text())
    assert a.axis_angle_deg[1] == pytest.approx(metrics["camera_axis_angle_deg"][1])
    assert a.lifter_camera_angle_deg[1] == a.axis_angle_deg[1]
    # the angle shown is the two views' own geometry (lenses from the demo's checkerboard pictures)
    stereo = metrics["stereo"]
    assert stereo["status"] == "ok" and stereo["lens"] == ["intrinsics", "intrinsics"]
    assert a.camera_angle_deg[1] == pytest.approx(stereo["axis_angle_deg"]) and a.camera_angle_source[1] == "stereo"
    assert metrics["camera_angle_source"] == "stereo"
    assert a.has_fused and a.fused3d.shape == (100, 17, 3) and np.isfinite(a.fused3d).all()
    assert np.allclose(a.fused3d[:, 0], 0.0)  # pelvis-relative
    assert a.fused_error_mm.shape == (2, 100, 17)
    # files written before the optical-axis angle and the stereo were stored still load; the rotation angle
    # stands in
    old = dict(np.load(out / "analysis.npz"))
    for key in ("axis_angle_deg", "stereo_axis_angle_deg", "stereo_angle_deg", "fused3d", "fused_source",
                "fused_error_mm"):
        del old[key]
    np.savez(tmp_path / "old.npz", **old)
    legacy = Analysis.load(tmp_path / "old.npz")
    assert np.isnan(legacy.axis_angle_deg).all() and legacy.camera_angle_deg[1] == pytest.approx(a.angle_deg[1])
    assert not legacy.has_fused
    result = json.loads((tmp_path / "r.json").read_text())
    assert any("shipped with the session" in n for n in result["notes"])
    assert [d["source"] for d in result["metrics"]["detections"]] == ["cached", "cached"]
    check = result["calibration_check"]
    assert check["calibration"]["relative_rotation_deg"] == pytest.approx(131.65)
    assert check["lifter_only"]["relative_rotation_deg"] == pytest.approx(a.angle_deg[1])
    assert check["estimated"]["source"] == "stereo"
    assert abs(check["error_deg"]["relative_rotation"]) < 5 and abs(check["error_deg"]["optical_axis"]) < 5
    import cv2

    image = cv2.imread(str(out / "demo.png"))
    assert image.shape[0] == 720 and image.shape[1] > 3 * 400
    session = Session.open(result["path"])
    models = {(m["stage"], m["model"]) for m in session.meta["models"]}
    assert ("lift", "tiny-test") in models
    # a second demo run finds the same session and skips every stage
    assert main(["demo", "--no-gui", "--out", str(out), "--model", str(tiny_weights),
                 "--json", str(tmp_path / "r2.json")]) == 0
    again = json.loads((tmp_path / "r2.json").read_text())
    assert again["path"] == result["path"] and again["ran"] == []
    assert any("shipped with the session" in n for n in again["notes"])


def test_demo_with_gui_says_when_the_app_is_missing(tiny_weights, no_detector_weights, monkeypatch, capsys):
    import importlib.util

    from mvcapture.cli import main

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mvcapture.gui" else real_find_spec(name, *a))
    assert main(["demo", "--model", str(tiny_weights)]) == 2
    err = capsys.readouterr().err
    assert "mvcapture.gui" in err and "--no-gui --out DIR" in err


@pytest.mark.skipif(not default_weights_path().is_file(),
                    reason="resources/lifter/default.pt is not there yet (the trained default lifter)")
def test_demo_camera_angle_close_to_calibration(no_detector_weights):
    """The trained default lifter on the real demo. Measured with the shipped lifter (stage 5, GPU-trained with
    augmented motion and realistic cameras): rotation 172.6° against the calibration's 131.7° (+40.9°), optical
    axes 137.7° against 101.5° (+36.1°); default-v1 (stage 4, high synthetic cameras): +38.0° / +41.7°; the
    stage-2 lifter trained on tripod heights only: +40.2° / +58.1°. Its poses are still too flat in cam04 on
    this real clip (depth / width 0.46 against 0.57 triangulated), which pulls the fit towards the 180° mirror
    solution. With exact 3D the same pipeline is within 0.1° (test_demo_angles_from_triangulated_3d). The
    bounds below are those measurements plus a margin, so a regression of the pipeline or the lifter shows."""
    from mvcapture.pipeline.demo import calibration_angles, demo_session

    pipeline = SessionPipeline(demo_session(), model="default")
    pipeline.run()
    calib = calibration_angles()
    rotation = pipeline.metrics["camera_rotation_deg"][1]
    error = rotation - calib["relative_rotation_deg"]
    axis_error = pipeline.metrics["camera_axis_angle_deg"][1] - calib["optical_axis_angle_deg"]
    assert abs(error) < 42.0, f"camera rotation {rotation:.1f}° ({error:+.1f}° from the calibration)"
    assert abs(axis_error) < 40.0, f"optical axes {axis_error:+.1f}° from the calibration"


@pytest.mark.skipif(not default_weights_path().is_file(), reason="resources/lifter/default.pt is not there yet")
def test_the_lifted_3d_checks_the_time_alignment_of_the_real_demo(no_detector_weights):
    """Issue #7 (c) in the pipeline: after lifting, the two views' 3D are compared at shifted offsets. With
    the recording's own alignment (offset 0, hardware-synchronized cameras) nothing is said; with a manual
    offset 6 frames wrong (+0.1 s at 60 fps) the note names the shift and suggests an offset near the truth.
    Measured: best shift -23 ms at the true offset, suggestion -0.008 s for the wrong one."""
    from mvcapture.pipeline.demo import demo_session

    session = demo_session()
    right = SessionPipeline(session, model="default")
    right.run()
    check = right.metrics["sync_check_3d"]["1"]
    assert check["checked"] and not check["hint"] and not check["flagged"]
    assert not any("agree best" in n for n in right.notes)
    session.save_sync({"offset_s": 0.1, "drift_ppm": 0.0, "confidence": 1.0, "method": "manual"}, view=1)
    wrong = SessionPipeline(session, model="default")
    wrong.run()
    check = wrong.metrics["sync_check_3d"]["1"]
    assert check["hint"] and abs(check["suggested_offset_s"]) < 0.035, check
    assert any("agree best" in n and "try" in n for n in wrong.notes)


@pytest.mark.slow
@pytest.mark.skipif(not default_weights_path().is_file(), reason="resources/lifter/default.pt is not there yet")
def test_finetuning_on_the_demo_footage_brings_the_camera_angle_closer(no_detector_weights):
    """The app's loop on real footage: process the demo, fine-tune the default lifter on its own two views
    (l2d_con, 2D only: no calibration, no 3D; the app's defaults: "auto" epochs give the 100 frames, one
    step per epoch, 100 epochs), process again with the new version. Measured (1 thread, ~60 s of training): validation
    consistency 144 -> 56 mm, the pipeline's residual 130 -> 58 mm, camera rotation error +38.0° -> +5.6°,
    optical axes +41.7° -> +16.4°. Before the lr warm-up and the soft-collapse patience the default run
    stopped in epoch 1 with nothing kept; without flip augmentation it reached only +16.8° / +29.3°
    (residual 114 mm: the flip-TTA half of each prediction was never adapted)."""
    from mvcapture.pipeline.demo import calibration_angles, demo_session
    from mvcapture.train.finetune import auto_epochs
    from mvcapture.train.jobs import JobSpec, start_job

    calib = calibration_angles()

    def errors(model):
        pipeline = SessionPipeline(demo_session(), model=model)
        pipeline.run()
        m = pipeline.metrics
        return (m["camera_rotation_deg"][1] - calib["relative_rotation_deg"],
                m["camera_axis_angle_deg"][1] - calib["optical_axis_angle_deg"], pipeline)

    rot_before, axis_before, pipeline = errors("default")
    analysis = pipeline.session.path_for("analysis")
    job = start_job(JobSpec(clips=[str(analysis)], model="default", train={"variant": "l2d_con", **auto_epochs(None)}))
    events = list(job.events())
    done = events[-1]
    assert done["event"] == "done", done
    validation = [e["validation"]["consistency_mm"] for e in events if e["event"] == "epoch"]
    assert len(validation) == 100
    assert validation[-1] < 0.5 * validation[0], validation[::10]
    assert done["metrics"]["eval_set"].startswith("the training windows")  # 100 frames: no tail to hold out
    rot_after, axis_after, after = errors(done["version"])
    assert abs(rot_before) > 30.0 and abs(rot_after) < 15.0, (rot_before, rot_after)
    assert abs(axis_after) < abs(axis_before) - 15.0, (axis_before, axis_after)
    assert after.metrics["residual_mean_mm"] < 0.6 * pipeline.metrics["residual_mean_mm"]


class OracleLifter(Lifter):
    """Returns the true root-relative camera-frame poses of each view in turn (views are lifted in order)."""

    def __init__(self, poses_per_view):
        super().__init__(create_lifter("tiny"), card={"name": "oracle"}, device="cpu")
        self.poses, self.calls = poses_per_view, 0

    def lift_clip(self, kp2d_px, conf, image_size, flip=False, progress=None):
        pose = self.poses[self.calls % len(self.poses)]
        self.calls += 1
        return pose.astype(np.float32)


def test_pipeline_recovers_the_camera_angle_from_exact_3d(tmp_path, no_detector_weights):
    """With perfect per-view 3D the pipeline's sequence alignment gives the cameras' true angle."""
    from mvcapture.core.skeleton import coco_to_h36m

    frames, yaw1 = 40, 100.0
    session = _cached_session(tmp_path, frames=frames, yaw1=yaw1)
    _manual_sync(session)
    world, _ = coco_to_h36m(_athlete_3d(np.arange(frames) / FPS))
    poses = []
    for yaw in (0.0, yaw1):
        R, _ = _camera(yaw)
        cam = world @ R.T
        poses.append(cam - cam[:, :1])
    pipeline = SessionPipeline(session, model=OracleLifter(poses))
    a = pipeline.run()
    assert a.angle_deg[1] == pytest.approx(yaw1, abs=1e-3)
    assert pipeline.metrics["camera_axis_angle_deg"][1] == pytest.approx(yaw1, abs=1e-3)
    assert np.nanmax(a.residual_mm) < 1e-2
    assert "good" in pipeline.metrics["camera_angle_advice"]
    assert min(pipeline.metrics["depth_ratio"]) > 0.15 and not any("flat" in n for n in pipeline.notes)

    flat = [p * [1.0, 1.0, 0.05] for p in poses]  # a lifter that hardly predicts depth
    flat_run = SessionPipeline(session, model=OracleLifter(flat), from_stage="lift")
    b = flat_run.run()
    assert b.angle_deg[1] > yaw1 + 30  # biased towards the 180° mirror solution -- and said so
    note = next(n for n in flat_run.metrics["notes"] if "nearly flat" in n)
    assert f"mvcapture finetune {session.path}" in note  # the remedy, runnable as printed


def _qualisys_cameras(path):
    """name → (R world→camera in our convention (x right, y down, z forward), centre m, focal px, cx, cy)
    from a Qualisys calibration (rows of its R are the camera axes; it looks along −z, y up)."""
    import xml.etree.ElementTree as ET

    cams = {}
    for cam in ET.parse(path).getroot().iter("camera"):
        t, i = cam.find("transform").attrib, cam.find("intrinsic").attrib
        R = np.array([[float(t[f"r{a}{b}"]) for b in "123"] for a in "123"])
        centre = np.array([float(t[k]) for k in "xyz"]) / 1000.0
        sensor_per_px = 64.0  # Qualisys sensor units per pixel on this recording
        cams[cam.attrib["serial"]] = (np.diag([1.0, -1.0, -1.0]) @ R, centre, float(i["focalLengthU"]) / sensor_per_px,
                                      float(i["centerPointU"]) / sensor_per_px, float(i["centerPointV"]) / sensor_per_px)
    return cams


def test_demo_angles_from_triangulated_3d(shared_data, no_detector_weights):
    """The real demo geometry: the shipped detections of three calibrated cameras triangulated to 3D, seen
    from cam01 and cam04, give through the pipeline exactly the calibration's angles -- the Procrustes
    rotation is the cameras' relative rotation (131.7°), acos(R[2, 2]) the optical-axis angle (101.5°)."""
    from mvcapture.core.skeleton import coco_to_h36m
    from mvcapture.pipeline.demo import calibration_angles, demo_session

    folder = shared_data / "video" / "pose2sim_demo"
    cams = _qualisys_cameras(folder / "Calib.qca.txt")
    names = ("cam01", "cam03", "cam04")  # cam02's detections swap left and right in many frames
    dets = {k: np.load(folder / "detections" / f"{k}_coco17.npz") for k in names}
    P = {}
    for k, (R, centre, f, cx, cy) in cams.items():
        P[k] = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]]) @ np.hstack([R, -(R @ centre)[:, None]])
    rows = np.stack([dets[k]["scores"][..., None, None] * (dets[k]["keypoints"][..., :, None] * P[k][2] - P[k][:2])
                     for k in names], 2)  # (T, 17, cams, 2, 4)
    _, _, vt = np.linalg.svd(rows.reshape(100, 17, -1, 4))
    world = vt[..., -1, :3] / vt[..., -1, 3:]
    for k in names:  # the triangulation agrees with every camera's detections
        proj = np.concatenate([world, np.ones((100, 17, 1))], -1) @ P[k].T
        assert np.median(np.linalg.norm(proj[..., :2] / proj[..., 2:] - dets[k]["keypoints"], axis=-1)) < 20
    poses = []
    for k in ("cam01", "cam04"):
        R, centre = cams[k][:2]
        pose, _ = coco_to_h36m((world - centre) @ R.T)
        poses.append(pose - pose[:, :1])
    pipeline = SessionPipeline(demo_session(), model=OracleLifter(poses))
    a = pipeline.run()
    calib = calibration_angles()
    assert a.angle_deg[1] == pytest.approx(calib["relative_rotation_deg"], abs=0.1)
    assert pipeline.metrics["camera_axis_angle_deg"][1] == pytest.approx(calib["optical_axis_angle_deg"], abs=0.1)


def test_stage_caching_resume_and_force(rect_session, detector, tiny_lifter):
    events = []
    a1 = process_session(rect_session, model=tiny_lifter, detector=detector,
                         progress=lambda *e: events.append(e))
    assert detector.calls == 2 * T
    assert {e[0] for e in events} == {"detections", "sync", "lift", "stereo", "analysis"}
    assert all(0.0 <= e[1] <= 1.0 for e in events)
    assert a1.pose3d.shape == (2, T, 17, 3) and np.isfinite(a1.aligned).all()
    assert rect_session.stage_status()["analysis"] and all(rect_session.stage_status()["lift"])

    second = SessionPipeline(rect_session, model=tiny_lifter, detector=detector)
    a2 = second.run()
    assert detector.calls == 2 * T and second.ran == []
    assert {"detections/view0", "detections/view1", "lift/view0", "lift/view1", "stereo", "analysis"} <= set(second.skipped)
    np.testing.assert_array_equal(a1.aligned, a2.aligned)

    lift_only = SessionPipeline(rect_session, model=tiny_lifter, detector=detector, from_stage="lift")
    lift_only.run()
    assert detector.calls == 2 * T and lift_only.ran == ["lift/view0", "lift/view1", "stereo", "analysis"]

    forced = SessionPipeline(rect_session, model=tiny_lifter, detector=detector, force=True)
    forced.run()
    assert detector.calls == 4 * T
    assert {"detections/view0", "detections/view1"} <= set(forced.ran)

    other_height = SessionPipeline(rect_session, model=tiny_lifter, detector=detector, height_m=1.9)
    other_height.run()
    assert other_height.ran == ["lift/view0", "lift/view1", "stereo", "analysis"]


def test_a_changed_side_repair_setting_lifts_again(rect_session, detector, tiny_lifter, monkeypatch):
    """The lift stage's cache key holds every setting of the detector's side repair: with only the swap cost
    in it, a changed split cost (legs and arms in different states) reused lifts repaired the old way."""
    import mvcapture.pipeline.process as process_module

    SessionPipeline(rect_session, model=tiny_lifter, detector=detector).run()
    monkeypatch.setattr(process_module, "SPLIT_COST_2D_PER_S", 0.0)
    again = SessionPipeline(rect_session, model=tiny_lifter, detector=detector)
    again.run()
    assert again.ran == ["lift/view0", "lift/view1", "stereo", "analysis"]


def test_cancel_then_resume(rect_session, detector, tiny_lifter):
    cancel = threading.Event()

    def progress(stage, fraction, message):
        if stage == "detections" and "frame 10/" in message:
            cancel.set()

    with pytest.raises(PipelineCancelled, match="resume"):
        process_session(rect_session, model=tiny_lifter, detector=detector, progress=progress, cancel=cancel)
    assert not rect_session.stage_status()["analysis"]
    done_before = detector.calls
    assert 0 < done_before < 2 * T
    process_session(rect_session, model=tiny_lifter, detector=detector)
    assert detector.calls == 2 * T  # resumed from the cache: no frame detected twice
    assert rect_session.stage_status()["analysis"]


def test_sync_offset_applied(tmp_path, tiny_lifter, no_detector_weights):
    k = 5
    session = _cached_session(tmp_path, delay_frames=k)
    _manual_sync(session, offset_s=k / FPS)
    pipeline = SessionPipeline(session, model=tiny_lifter)
    a = pipeline.run()
    assert a.offset_s[1] == pytest.approx(k / FPS)
    n = a.num_frames - k
    np.testing.assert_allclose(a.kp2d[1, :n], a.kp2d[0, :n], atol=1e-3)  # same motion on one time base
    assert (a.conf[1, n:] == 0).all() and (a.conf[1, :n] > 0).all()     # beyond view 1's end: missing
    assert np.isnan(a.residual_mm[n:]).all() and np.isfinite(a.residual_mm[:n]).all()
    assert a.angle_deg[1] < 5.0  # identical 2D over the overlap → (nearly) identical 3D

    _manual_sync(session, offset_s=0.0)  # the wrong offset: the 2D no longer agree
    b = SessionPipeline(session, model=tiny_lifter).run()
    assert np.abs(b.kp2d[1, :n] - b.kp2d[0, :n]).max() > 2.0


def test_sync_estimated_from_motion_when_not_stored(tmp_path, tiny_lifter, no_detector_weights):
    k = 5
    session = _cached_session(tmp_path, delay_frames=k, frames=100, yaw1=70.0)
    pipeline = SessionPipeline(session, model=tiny_lifter)
    a = pipeline.run()
    assert a.offset_s[1] == pytest.approx(k / FPS, abs=0.01)
    stored = session.load_sync(1)
    assert stored["method"].startswith("motion") and stored["offset_s"] == pytest.approx(a.offset_s[1])
    assert pipeline.metrics["sync"][1]["method"] == stored["method"]
    if stored["low_confidence"]:  # periodic motion: the estimate is flagged, and the flag is reported
        assert pipeline.metrics["sync_low_confidence"] and any("uncertain" in n for n in pipeline.notes)


def test_low_confidence_sync_is_flagged(tmp_path, tiny_lifter, no_detector_weights):
    session = _cached_session(tmp_path, frames=40)
    session.save_sync({"offset_s": 0.04, "drift_ppm": 0.0, "confidence": 0.2, "low_confidence": True,
                       "method": "motion", "reason": "two peaks of similar height"}, view=1)
    pipeline = SessionPipeline(session, model=tiny_lifter)
    pipeline.run()
    assert pipeline.metrics["sync_low_confidence"] is True
    assert any("uncertain" in n and "two peaks" in n for n in pipeline.metrics["notes"])


def test_process_cli_json(tmp_path, rect_session, tiny_weights, tiny_detector_files, capsys):
    from mvcapture.cli import main

    out = tmp_path / "process.json"
    assert main(["process", str(rect_session.path), "--model-dir", str(tiny_detector_files[0].parent),
                 "--model", str(tiny_weights), "--device", "cpu", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["session"] == rect_session.id
    assert {"detections/view0", "detections/view1", "analysis"} <= set(result["ran"])
    m = result["metrics"]
    assert m["views"] == 2 and m["frames"] == T and len(m["camera_rotation_deg"]) == 2
    assert set(m["residual_per_joint_mm"]) >= {"pelvis", "head"} and m["camera_angle_advice"]
    assert json.loads((rect_session.path / "metrics.json").read_text())["frames"] == T
    printed = capsys.readouterr().out
    assert "consistency residual" in printed and "optical axes" in printed
    assert main(["process", str(rect_session.path), "--model", str(tiny_weights), "--from", "analysis",
                 "--model-dir", str(tiny_detector_files[0].parent), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["ran"] == ["analysis"]


def test_missing_second_view_is_a_clear_error(videos, tiny_lifter):
    from mvcapture.errors import MvcaptureError

    session = Session.create(name="one view")
    session.import_videos(videos[:1])
    with pytest.raises(MvcaptureError, match="needs two"):
        process_session(session, model=tiny_lifter)


# --- live mode ------------------------------------------------------------------------------------------

def test_running_alignment_recovers_rotation():
    from mvcapture.pipeline.live import RunningAlignment

    world = _athlete_3d(np.arange(40) / FPS)
    world = world - world[:, 11:13].mean(1, keepdims=True)
    R1, _ = _camera(80.0)
    align = RunningAlignment(num_views=2, window=30, refit_every=5, min_frames=10)
    conf = np.ones((2, 17))
    for t in range(40):
        aligned, residual = align.push(np.stack([world[t], world[t] @ R1.T]), conf)
    assert align.fitted and align.angle_deg[1] == pytest.approx(80.0, abs=1e-6)
    assert align.axis_angle_deg[1] == pytest.approx(80.0, abs=1e-6)  # a turn about the vertical only
    single = RunningAlignment(num_views=1, window=30, refit_every=5, min_frames=10)  # one camera previewing
    for t in range(20):
        one_aligned, one_residual = single.push(world[t][None], conf[:1])
    assert not single.fitted and np.isnan(one_residual).all()
    np.testing.assert_array_equal(one_aligned[0], world[19])
    np.testing.assert_allclose(aligned[1], world[-1], atol=1e-9)
    assert np.nanmax(residual) < 1e-6


def test_live_pipeline_on_two_file_sources(videos, tiny_detector_files, tiny_lifter):
    from mvcapture.capture.sources import FileSource
    from mvcapture.detect.backends import RTMPoseDetector
    from mvcapture.pipeline.live import LIVE_STAGES, LivePipeline

    results = []
    live = LivePipeline(RTMPoseDetector(*tiny_detector_files, device="cpu"), tiny_lifter, window=20,
                        refit_every=4, on_frame=results.append)
    sources = [FileSource(v, buffer_size=64) for v in videos]
    try:
        pairs = live.run(sources, timeout_s=5.0)
    finally:
        for s in sources:
            s.stop()
    assert pairs == len(results) >= T // 2  # frames may be dropped when the shared machine stalls
    last = results[-1]
    assert last.pose3d_m.shape == (2, 17, 3) and np.isfinite(last.pose3d_m).all()
    assert (last.conf > 0).all() and last.fitted and np.isfinite(last.residual_mm).all()
    skew_s = np.array([abs(int(r.t_ns[1]) - int(r.t_ns[0])) for r in results]) / 1e9
    assert np.median(skew_s) < 2 / FPS  # frames of the same instant are paired (capture threads may lag)
    assert set(last.timings_s) == {*LIVE_STAGES, "total"}
    assert last.timings_s["total"] >= sum(last.timings_s[s] for s in LIVE_STAGES) * 0.99
    summary = live.timing_summary()
    assert summary["detect"]["mean_ms"] > 0 and summary["total"]["mean_ms"] > 0


def test_live_pipeline_lift_stride_delays_3d_with_its_own_confidences(tiny_detector_files, tiny_lifter):
    """lift_stride 3: a third of the lifts; the 3D of pair n is pair n − 2's, weighted by pair n − 2's
    confidences (view 1 sees the athlete from pair 6 on: the residual appears at pair 8, not 6)."""
    from mvcapture.detect.backends import RTMPoseDetector
    from mvcapture.pipeline.live import LivePipeline

    def images(t):
        a = np.zeros((H, W, 3), np.uint8)
        a[16:80, 20 + 2 * t:52 + 2 * t] = 255
        b = a.copy() if t >= 6 else np.zeros_like(a)
        return [a, b]

    detector = RTMPoseDetector(*tiny_detector_files, device="cpu")
    calls = []
    original = tiny_lifter.lift_windows
    tiny_lifter.lift_windows = lambda *a, **kw: calls.append(1) or original(*a, **kw)
    try:
        strided = LivePipeline(detector, tiny_lifter, lift_stride=3)
        every = LivePipeline(detector, tiny_lifter, lift_stride=1)
        calls.clear()
        late = [strided.process(images(t)) for t in range(12)]
        assert len(calls) == 2 * (1 + 12 // 3), "views × (first + one lift per 3 pairs)"
        now = [every.process(images(t)) for t in range(12)]
    finally:
        del tiny_lifter.lift_windows
    assert [r.pose_index for r in late] == [0, 0] + list(range(10))
    assert [r.pose_index for r in now] == list(range(12))
    assert (late[6].conf[1] > 0).all() and np.isnan(late[6].residual_mm).all()
    assert np.isfinite(now[6].residual_mm).all() and np.isfinite(late[8].residual_mm).all()
    assert np.isnan(late[7].residual_mm).all()


def test_bench_live_json(tmp_path, videos, tiny_weights, tiny_detector_files, capsys):
    from mvcapture.cli import main
    from mvcapture.pipeline.live import LIVE_STAGES

    out = tmp_path / "bench.json"
    assert main(["bench", "live", "--videos", str(videos[0]), str(videos[1]), "--frames", "6", "--warmup", "2",
                 "--mode", "balanced", "--detect-every", "3", "--model", str(tiny_weights),
                 "--model-dir", str(tiny_detector_files[0].parent), "--minutes", "0.05", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["pairs_timed"] == 6 and list(result["runs"]) == ["every frame", "tracking"]
    for name, run in result["runs"].items():
        assert run["pairs"] == 6 and run["pairs_per_s"] > 0 and run["latency_p95_ms"] >= run["latency_p50_ms"] > 0
        assert set(run["stages_ms"]) == {*LIVE_STAGES, "total"}
        assert run["cpu_ms_per_pair"] >= run["pipeline_cpu_ms_per_pair"] > 0 and run["capacity_pairs_per_s"] > 0
    every, tracking = result["runs"]["every frame"], result["runs"]["tracking"]
    assert every["detect_every"] == 1 and tracking["detect_every"] == 3 and tracking["detect_every_s"] is None
    assert sum(sum(d.values()) for d in tracking["detector_runs"]) < sum(sum(d.values()) for d in every["detector_runs"])
    soak = result["soak"]
    assert len(soak["windows"]) >= 2 and soak["rss_growth_mb"] is not None and soak["slowdown"] > 0
    assert result["hardware"]["cpu"] and result["load_before"]
    camera = result["camera"]   # the default webcam stand-in: the videos transcoded to 720p30 MJPEG first
    assert camera["spec"] == "720p30" and camera["codec"] == "mjpeg"
    assert [(v["width"], v["height"], v["codec"]) for v in camera["videos"]] == [(1280, 720, "mjpeg")] * 2
    text = capsys.readouterr().out
    assert "pairs/s (sustained)" in text and "latency p95 ms" in text and "soak 0.05 min: RSS" in text
    assert "as camera 720p30: 1280x720 mjpeg" in text and "WEBCAM STAND-IN 720p30" in text


def test_bench_live_refuses_cuda_without_a_device(tmp_path, videos, tiny_weights):
    import torch

    from mvcapture.cli import main

    if torch.cuda.is_available():
        pytest.skip("this computer has a CUDA device")
    assert main(["bench", "live", "--videos", str(videos[0]), str(videos[1]), "--device", "cuda",
                 "--model", str(tiny_weights)]) != 0


_OPENED: list[str] | None = None


def _record_opens(event, args):
    """sys audit hook (stays installed for the process: cheap, never raises): files opened while recording."""
    if _OPENED is not None and event == "open" and args and isinstance(args[0], (str, bytes)):
        _OPENED.append(str(args[0]))


def test_stereo_stage_never_reads_the_calibration(tiny_lifter, no_detector_weights, tmp_path):
    """The demo's two-view geometry comes from the session alone: while the stereo stage runs, no file of
    the Qualisys calibration (nor the demo's calibration angles) is opened; its angle is within 5° of it."""
    import sys

    from mvcapture.pipeline.demo import calibration_angles, demo_session

    global _OPENED
    session = demo_session(root=tmp_path)
    pipeline = SessionPipeline(session, model=tiny_lifter)
    stereo_stage = pipeline._stereo
    opened: list[str] = []

    def watched(*args, **kwargs):
        global _OPENED
        _OPENED = opened
        try:
            return stereo_stage(*args, **kwargs)
        finally:
            _OPENED = None

    sys.addaudithook(_record_opens)
    pipeline._stereo = watched
    a = pipeline.run()
    assert opened, "the audit hook saw no file opened: it does not work"
    assert not [p for p in opened if "Calib" in p or "calibration" in p.lower()]
    calib = calibration_angles()
    assert abs(a.camera_angle_deg[1] - calib["optical_axis_angle_deg"]) < 5.0
    assert abs(a.stereo_angle_deg[1] - calib["relative_rotation_deg"]) < 5.0


def test_stereo_falls_back_to_the_lifter_when_one_view_is_mostly_hidden(tiny_lifter, no_detector_weights, tmp_path):
    """One camera sees the athlete in a few frames only: a clear note, no fused 3D, the lifter's angle."""
    from mvcapture.pipeline.demo import demo_session

    session = demo_session(root=tmp_path)
    rel = session.meta["views"][1]["cached_detections"]
    data = dict(np.load(session.path / rel))
    data["scores"] = data["scores"].copy()
    data["scores"][:85] = 0.0
    np.savez(session.path / rel, **data)
    pipeline = SessionPipeline(session, model=tiny_lifter)
    a = pipeline.run()
    assert pipeline.metrics["stereo"]["status"] == "degenerate"
    assert any("two-view 3D not available" in n and "occluded" in n for n in pipeline.notes)
    assert a.camera_angle_source[1] == "lifter" and a.camera_angle_deg[1] == pytest.approx(a.axis_angle_deg[1])
    assert not a.has_fused


class RecordingLifter(Lifter):
    """The tiny lifter, keeping the 2D each view was lifted from."""

    def __init__(self):
        super().__init__(create_lifter("tiny"), card={"name": "recording"}, device="cpu")
        self.inputs = []

    def lift_clip(self, kp2d_px, conf, image_size, flip=False, progress=None):
        self.inputs.append((np.array(kp2d_px), np.array(conf)))
        return super().lift_clip(kp2d_px, conf, image_size, flip=flip, progress=progress)


def test_process_lifts_each_view_with_the_detectors_side_swaps_undone(tmp_path, no_detector_weights):
    """View 1's shipped detections exchange left and right in frames 20-34 (as MediaPipe does from behind):
    the lifter gets the track as filmed, and the lift arrays record which frames were exchanged back."""
    from mvcapture.core.skeleton import COCO17_FLIP_PERMUTATION, coco_to_h36m

    frames = 60
    session = _cached_session(tmp_path, frames=frames, yaw1=45.0)
    _manual_sync(session)
    rel = session.path / session.meta["views"][1]["cached_detections"]
    data = dict(np.load(rel))
    clean = data["keypoints"].copy()
    data["keypoints"][20:35] = clean[20:35][:, COCO17_FLIP_PERMUTATION]
    np.savez(rel, **data)
    lifter = RecordingLifter()
    SessionPipeline(session, model=lifter).run()
    assert len(lifter.inputs) == 2
    expected, _ = coco_to_h36m(clean)
    np.testing.assert_allclose(lifter.inputs[1][0], expected, atol=1e-3)
    lifted = session.load_array("lift/view1")
    swapped = (lifted["side_order"] != np.arange(17)).any(-1)
    assert np.flatnonzero(swapped).tolist() == list(range(20, 35))
    assert not (session.load_array("lift/view0")["side_order"] != np.arange(17)).any()
