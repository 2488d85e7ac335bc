import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mvcapture.analysis import Analysis
from mvcapture.core.skeleton import H36M17_JOINTS, H36M17_PARENTS
from mvcapture.io import export as ex


def _rigid_motion(T=30, seed=0):
    """Camera-frame motion of a rigid H36M skeleton (constant bone lengths), metres."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    rest = rng.normal(scale=0.15, size=(17, 3))
    rots = Rotation.from_rotvec(rng.normal(scale=0.4, size=(T * 17, 3))).as_matrix().reshape(T, 17, 3, 3)
    glob = np.zeros((T, 17, 3, 3))
    pos = np.zeros((T, 17, 3))
    for j in range(17):
        p = H36M17_PARENTS[j]
        if j == 0:
            glob[:, 0] = rots[:, 0]
            pos[:, 0] = np.linspace(0, 0.5, T)[:, None] * [1, 0, 0.2]
        else:
            glob[:, j] = glob[:, p] @ rots[:, j]
            pos[:, j] = pos[:, p] + np.einsum("tij,j->ti", glob[:, p], rest[j])
    return pos


def _analysis(T=30):
    pose = _rigid_motion(T)
    pose = pose - pose[:, :1]
    pose3d = np.stack([pose, pose @ np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]]).T])
    rng = np.random.default_rng(1)
    return Analysis(
        kp2d=rng.uniform(0, 500, (2, T, 17, 2)), conf=rng.uniform(0, 1, (2, T, 17)),
        pose3d=pose3d, aligned=np.stack([pose, pose + 0.001]), residual_mm=rng.uniform(0, 50, (T, 17)),
        angle_deg=np.array([0.0, 90.0]), image_size=np.array([[640, 480], [640, 480]]),
        times_s=np.arange(T) / 30.0, fps=30.0, offset_s=np.zeros(2),
    )


def test_csv_has_documented_columns_and_values(tmp_path):
    a = _analysis()
    files = ex.export_analysis(a, tmp_path, formats=("csv",))
    assert {f.name for f in files} == {"session_view0.csv", "session_view1.csv", "session_aligned.csv"}
    with open(tmp_path / "session_view1.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][:5] == ["frame", "time_s", "pelvis_x_m", "pelvis_y_m", "pelvis_z_m"]
    assert "r_wrist_residual_mm" in rows[0] and "l_knee_u_px" in rows[0]
    assert len(rows) == 31
    header = rows[0]
    row5 = dict(zip(header, rows[6]))
    assert float(row5["l_elbow_x_m"]) == pytest.approx(a.pose3d[1, 5, 12, 0], abs=1e-5)
    assert float(row5["l_elbow_conf"]) == pytest.approx(a.conf[1, 5, 12], abs=1e-5)
    with open(tmp_path / "session_aligned.csv") as f:
        aligned_header = next(csv.reader(f))
    assert "pelvis_u_px" not in aligned_header


def test_json_structure(tmp_path):
    a = _analysis()
    ex.export_analysis(a, tmp_path, formats=("json",))
    doc = json.loads((tmp_path / "session.json").read_text())
    assert doc["joints"] == list(H36M17_JOINTS)
    assert set(doc["tracks"]) == {"view0", "view1", "aligned"}
    np.testing.assert_allclose(np.array(doc["tracks"]["view0"]["pose3d"]), a.pose3d[0], atol=1e-6)
    np.testing.assert_allclose(np.array(doc["tracks"]["aligned"]["pose3d"]), a.aligned.mean(0), atol=1e-6)


def _simple_trc_reader(text: str):
    """An independent reader of the TRC layout (OpenSim / Pose2Sim): tab-separated, header line 3 holds
    DataRate … Units, line 4 the marker names (each followed by two empty columns), data from line 6."""
    lines = text.splitlines()
    header = dict(zip(lines[1].split("\t"), lines[2].split("\t")))
    names = [n for n in lines[3].split("\t")[2:] if n.strip()]
    rows = [line.split("\t") for line in lines[5:] if line.strip()]
    frames = np.array([[float(v) for v in row[2:2 + 3 * len(names)]] for row in rows])
    times = np.array([float(row[1]) for row in rows])
    return header, names, times, frames.reshape(len(rows), len(names), 3)


def test_trc_round_trip_within_1mm(tmp_path):
    """Every track (each view's 3D and the aligned one) read back by a reader written here, and by ours."""
    a = _analysis()
    ex.export_analysis(a, tmp_path, formats=("trc",))
    tracks = {"view0": a.pose3d[0], "view1": a.pose3d[1], "aligned": a.aligned[0]}
    for track, expected in tracks.items():
        text = (tmp_path / f"session_{track}.trc").read_text()
        header, names, times, data = _simple_trc_reader(text)
        assert header["Units"] == "m" and float(header["DataRate"]) == 30.0 and int(header["NumFrames"]) == 30
        assert names == list(H36M17_JOINTS) and int(header["NumMarkers"]) == 17
        np.testing.assert_allclose(times, np.arange(30) / 30.0, atol=1e-6)
        # TRC is Y-up: camera (x, y, z) -> (x, -y, -z)
        assert np.abs(data * [1, -1, -1] - expected).max() < 1e-3, track
        ours, rate, our_names = ex.read_trc(text)
        assert rate == 30.0 and our_names == names and np.abs(ours - data).max() < 1e-9


def test_unknown_format_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        ex.export_analysis(_analysis(), tmp_path, formats=("fbx",))


def test_bvh_round_trip_through_our_importer_within_1mm(tmp_path):
    """A rigid skeleton's motion → BVH → our BVH importer + FK → the same joint positions."""
    from mvcapture.io.bvh import load_bvh

    a = _analysis()
    ex.export_analysis(a, tmp_path, formats=("bvh",))
    for track, pose in (("view0", a.pose3d[0]), ("view1", a.pose3d[1]), ("aligned", a.aligned[0])):
        motion = load_bvh(tmp_path / f"session_{track}.bvh")
        assert motion.fps == pytest.approx(30.0)
        idx = [motion.index(name) for name in H36M17_JOINTS]
        positions_m = motion.positions()[:, idx] / 100.0  # file is in centimetres, Y up
        expected = pose @ ex.CAMERA_TO_YUP.T
        assert np.abs(positions_m - expected).max() < 1e-3, track


def test_bvh_of_varying_bone_lengths_keeps_directions(tmp_path):
    """Predicted poses stretch bones a little; the BVH keeps median lengths and every bone's direction."""
    from mvcapture.io.bvh import parse_bvh

    pose = _rigid_motion(10)
    stretch = 1 + 0.05 * np.sin(np.arange(10))[:, None, None]
    pose = (pose - pose[:, :1]) * stretch
    motion = parse_bvh(ex.to_bvh(pose, 30.0))
    idx = [motion.index(name) for name in H36M17_JOINTS]
    back = motion.positions()[:, idx] / 100.0 @ ex.CAMERA_TO_YUP.T  # (x, -y, -z) is its own inverse
    for j in range(1, 17):
        p = H36M17_PARENTS[j]
        d0 = pose[:, j] - pose[:, p]
        d1 = back[:, j] - back[:, p]
        cos = np.sum(d0 * d1, -1) / np.linalg.norm(d0, axis=-1) / np.linalg.norm(d1, axis=-1)
        assert cos.min() > 0.999


# -- MP4 and session exports -------------------------------------------------------------------------------

SRC_W, SRC_H, SRC_GREY = 160, 120, 50


def _code_level(i):
    """Brightness that marks source frame i in the bottom-right corner of the generated videos."""
    return 30 + 20 * i


def _write_video(path, n_frames, fps=10.0):
    from mvcapture.io.video import VideoWriter

    with VideoWriter(path, SRC_W, SRC_H, fps) as w:
        for i in range(n_frames):
            img = np.full((SRC_H, SRC_W, 3), SRC_GREY, np.uint8)
            img[80:, 120:] = _code_level(i)
            w.write(img)


def _standing_kp2d():
    """A stick figure in the left part of a 160×120 image (h36m17 order), pixels."""
    return np.array([
        [60, 60], [52, 60], [52, 80], [52, 100], [68, 60], [68, 80], [68, 100], [60, 45], [60, 30],
        [60, 24], [60, 15], [70, 30], [80, 40], [90, 45], [50, 30], [40, 40], [30, 45]], float)


def _session_with_videos(tmp_path, T=10, offset_frames=2):
    """A session of two generated 10 fps videos; view 1 started `offset_frames` earlier (offset_s > 0)."""
    from mvcapture.session import Session

    v0, v1 = tmp_path / "v0.mp4", tmp_path / "v1.mp4"
    _write_video(v0, T)
    _write_video(v1, T + offset_frames)
    session = Session.create("export test", root=tmp_path / "sessions")
    session.import_videos([v0, v1])
    a = _analysis(T)
    a.kp2d = np.broadcast_to(_standing_kp2d(), (2, T, 17, 2)).copy()
    a.conf = np.ones((2, T, 17))
    a.image_size = np.array([[SRC_W, SRC_H], [SRC_W, SRC_H]])
    a.times_s = np.arange(T) / 10.0
    a.fps = 10.0
    a.offset_s = np.array([0.0, offset_frames / 10.0])
    return session, a


def test_source_frames_follow_the_offset_and_stop_outside_the_video():
    from mvcapture.io.export_video import source_frame_indices

    view_times = np.arange(5) / 10.0
    idx = source_frame_indices(np.arange(8) / 10.0, 0.2, view_times)
    assert idx.tolist() == [2, 3, 4, -1, -1, -1, -1, -1]
    idx = source_frame_indices(np.arange(3) / 10.0, -0.1, view_times)
    assert idx.tolist() == [-1, 0, 1]


def test_mp4_export_is_synchronized_with_overlay(tmp_path):
    from mvcapture.io.export_video import export_mp4, panel_layout
    from mvcapture.io.render import VIEW_COLOURS_BGR
    from mvcapture.io.video import probe, read_frames

    session, a = _session_with_videos(tmp_path)
    calls = []
    out = export_mp4(a, [v.media for v in session.views], tmp_path / "out.mp4", height=240,
                     progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (10, 10) and len(calls) == 10
    info = probe(out)
    widths = panel_layout(a.image_size, 240)
    assert widths == [320, 320, 240]
    assert (info.width, info.height, info.frame_count) == (880, 240, 10)
    assert info.fps == pytest.approx(10.0, rel=1e-3)
    _, frames = read_frames(out, "bgr24")
    scale = 240 / SRC_H
    for t in (0, 5, 9):
        for v, x0 in ((0, 0), (1, 320)):
            # synchronization: view 1 shows its source frame t + 2 (it started 0.2 s earlier)
            corner = frames[t, int(90 * scale):int(110 * scale), x0 + int(130 * scale):x0 + int(150 * scale)]
            levels = _code_level(np.arange(12))
            assert np.argmin(np.abs(corner.astype(float).mean() - levels)) == t + 2 * v
            # the 2D overlay: a white joint on the l_wrist, the view's colour along the l_elbow-l_wrist bone
            wrist = frames[t, int(45 * scale), x0 + int(90 * scale)].astype(int)
            assert wrist.min() > 200
            bone = frames[t, int(42.5 * scale) - 1:int(42.5 * scale) + 2,
                          x0 + int(85 * scale) - 1:x0 + int(85 * scale) + 2].reshape(-1, 3).mean(0)
            colour = np.array(VIEW_COLOURS_BGR[v]) * 0.6  # left bones are drawn darker
            assert np.abs(bone - colour).max() < 45, (t, v, bone, colour)
            assert np.abs(frames[t, 5, x0 + 300].astype(float) - SRC_GREY).max() < 15  # plain video elsewhere


def test_mp4_export_can_be_cancelled_and_leaves_no_file(tmp_path):
    import threading

    from mvcapture.io.export_video import ExportCancelled, export_mp4

    session, a = _session_with_videos(tmp_path)
    cancel = threading.Event()

    def progress(done, total):
        if done == 3:
            cancel.set()

    with pytest.raises(ExportCancelled, match="cancelled at frame 3"):
        export_mp4(a, [v.media for v in session.views], tmp_path / "out.mp4", height=120, progress=progress,
                   cancel=cancel)
    assert list(tmp_path.glob("*out*")) == []


def test_cli_export_writes_the_documented_files_and_lists_them(tmp_path, capsys):
    from mvcapture.cli import main

    session, a = _session_with_videos(tmp_path)
    a.save(session.path_for("analysis"))
    report = tmp_path / "report.json"
    assert main(["export", str(session.path), "--json", str(report)]) == 0
    exports = session.path / "exports"
    names = {f"{session.id}.json"} | {f"{session.id}_{track}.{ext}" for track in ("view0", "view1", "aligned")
                                      for ext in ("csv", "trc", "bvh")}
    assert {p.name for p in exports.iterdir()} == names
    doc = json.loads(report.read_text())
    assert doc["formats"] == ["csv", "json", "trc", "bvh"]
    assert {Path(p).name for p in doc["files"]} == names and all(Path(p).is_file() for p in doc["files"])

    out = tmp_path / "elsewhere"
    assert main(["export", str(session.path), "--format", "mp4,csv", "--out", str(out), "--height", "120",
                 "--json", str(report)]) == 0
    doc = json.loads(report.read_text())
    assert doc["formats"] == ["csv", "mp4"]
    assert {Path(p).name for p in doc["files"]} == {f"{session.id}_{t}.csv" for t in ("view0", "view1", "aligned")} \
        | {f"{session.id}.mp4"}
    from mvcapture.io.video import probe

    assert probe(out / f"{session.id}.mp4").frame_count == 10


def test_export_without_analysis_says_to_process_first(tmp_path, capsys):
    from mvcapture.cli import main
    from mvcapture.errors import MvcaptureError
    from mvcapture.export import export_session

    session, _ = _session_with_videos(tmp_path, T=3)
    with pytest.raises(MvcaptureError, match="no analysis yet: run `mvcapture process"):
        export_session(session.path)
    assert main(["export", str(session.path)]) == 2
    assert "run `mvcapture process" in capsys.readouterr().err
    assert main(["export", str(session.path), "--format", "csv,fbx"]) == 2
    assert "unknown export format(s) fbx" in capsys.readouterr().err


def test_readme_documents_the_export_columns():
    from mvcapture.export import ALL_FORMATS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Exports", 1)[1].split("\n## ", 1)[0]
    for column in ("frame", "time_s", "<joint>_x_m", "<joint>_y_m", "<joint>_z_m", "<joint>_u_px", "<joint>_v_px",
                   "<joint>_conf", "<joint>_residual_mm"):
        assert f"`{column}`" in section, column
    for key in ("joints", "fps", "times_s", "camera_angle_deg", "tracks", "pose3d", "kp2d", "conf", "residual_mm"):
        assert f"`{key}`" in section, key
    assert ", ".join(H36M17_JOINTS) in section
    for fmt in ALL_FORMATS:  # every format's file names
        assert f"<track>.{fmt}`" in section or f"`<id>.{fmt}`" in section, fmt
    # the documented columns are the ones written
    cols = ex.csv_columns(with_2d=True)
    assert cols[:2] == ["frame", "time_s"]
    assert cols[2:9] == [f"pelvis_{s}" for s in ("x_m", "y_m", "z_m", "u_px", "v_px", "conf", "residual_mm")]


def test_mp4_frame_with_missing_joints_and_views():
    """NaN keypoints, 3D and residuals (joints not seen) and views without a frame still give a frame."""
    from mvcapture.io.export_video import compose_frame

    a = _analysis(3)
    a.kp2d[0, 1, 3] = np.nan
    a.aligned[1, 1, 5] = np.nan
    a.residual_mm[1, :] = np.nan
    frame = compose_frame(a, 1, [None, np.zeros((480, 640, 3), np.uint8)], height=120)
    assert frame.shape == (120, 160 + 160 + 120, 3) and frame.dtype == np.uint8


# -- the fused (two-view) track -----------------------------------------------------------------------------

def _fused_analysis(T=30, gaps=True):
    """`_analysis` with a fused track: a rigid motion in view 0's frame, l_wrist unknown in frames 10-12 (a
    short gap) and r_ankle unknown from frame 20 to the end (held), pelvis-relative like the pipeline's."""
    a = _analysis(T)
    fused = _rigid_motion(T, seed=4)
    fused = fused - fused[:, :1]
    source = np.ones((T, 17), np.int8)
    if gaps:
        fused[10:13, 13] = np.nan
        fused[20:, 3] = np.nan
        source[10:13, 13] = 0
        source[20:, 3] = 0
        source[:5, 16] = 2  # filled from view 0's lift
    a.fused3d = fused.astype(np.float32)
    a.fused_source = source
    a.fused_error_mm = np.full((2, T, 17), 40.0, np.float32)
    return a.validate("test")


def test_fused_track_trc_reads_back_with_the_independent_reader_within_1mm(tmp_path):
    a = _fused_analysis(gaps=False)
    files = ex.export_analysis(a, tmp_path, formats=("trc",))
    assert {f.name for f in files} == {f"session_{t}.trc" for t in ("view0", "view1", "aligned", "fused")}
    header, names, times, data = _simple_trc_reader((tmp_path / "session_fused.trc").read_text())
    assert header["Units"] == "m" and names == list(H36M17_JOINTS) and int(header["NumFrames"]) == 30
    assert np.abs(data * [1, -1, -1] - a.fused3d).max() < 1e-3


def test_unknown_fused_joints_are_empty_in_trc_and_csv_and_null_in_json(tmp_path):
    a = _fused_analysis()
    ex.export_analysis(a, tmp_path, formats=("trc", "csv", "json"))
    text = (tmp_path / "session_fused.trc").read_text()
    row = text.splitlines()[6 + 11].split("\t")  # frame 11: l_wrist (marker 13) unknown
    assert row[0] == "12" and row[2 + 3 * 13:2 + 3 * 14] == ["", "", ""] and row[2 + 3 * 12] != ""
    ours, _, _ = ex.read_trc(text)
    assert np.isnan(ours[11, 13]).all() and np.isnan(ours[25, 3]).all()
    known = np.isfinite(a.fused3d)
    assert np.abs(ours[known.all(-1)] * [1, -1, -1] - a.fused3d[known.all(-1)]).max() < 1e-3
    with open(tmp_path / "session_fused.csv") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert header == ex.csv_columns(with_2d=False, fused=True) and "l_wrist_source" in header
    assert "l_wrist_conf" not in header
    frame11 = dict(zip(header, rows[12]))
    assert frame11["l_wrist_x_m"] == "" and frame11["l_wrist_source"] == "0"
    assert float(frame11["l_elbow_x_m"]) == pytest.approx(a.fused3d[11, 12, 0], abs=1e-5)
    assert dict(zip(header, rows[1]))["r_wrist_source"] == "2"
    doc = json.loads((tmp_path / "session.json").read_text())  # strict JSON: no NaN
    fused = doc["tracks"]["fused"]
    assert fused["pose3d"][11][13] == [None, None, None] and fused["pose3d"][11][12][0] == pytest.approx(
        float(a.fused3d[11, 12, 0]), abs=1e-6)
    assert fused["source"][11][13] == 0 and doc["fused_source_names"]["1"] == "two-view triangulation"


def test_fused_track_bvh_through_fk_keeps_known_joints_and_fills_gaps(tmp_path):
    from mvcapture.io.bvh import load_bvh

    a = _fused_analysis()
    ex.export_analysis(a, tmp_path, formats=("bvh",))
    motion = load_bvh(tmp_path / "session_fused.bvh")
    idx = [motion.index(name) for name in H36M17_JOINTS]
    back = motion.positions()[:, idx] / 100.0 @ ex.CAMERA_TO_YUP.T
    assert np.isfinite(back).all()
    known = np.isfinite(a.fused3d).all(-1)
    assert np.abs(back[known] - a.fused3d[known]).max() < 1e-3  # a rigid skeleton: exact where known
    # the short gap: l_wrist between its neighbours' elbow offsets; the long one: r_ankle holds its last offset
    offset_before = a.fused3d[9, 13] - a.fused3d[9, 12]
    offset_after = a.fused3d[13, 13] - a.fused3d[13, 12]
    gap = back[11, 13] - back[11, 12]
    middle = (offset_before + offset_after) / 2
    assert np.dot(gap, middle) / np.linalg.norm(gap) / np.linalg.norm(middle) > 0.999
    held = back[29, 3] - back[29, 2]
    last = a.fused3d[19, 3] - a.fused3d[19, 2]
    np.testing.assert_allclose(held, last, atol=1e-3)


def test_fill_gaps_interpolates_short_gaps_and_holds_long_ones():
    pose = np.zeros((12, 17, 3))
    pose[:, 1:, 0] = np.arange(12)[:, None] * 0.1 + 0.05  # every joint slides along x, pelvis at 0
    pose[:, 1:] -= 0.05 * (np.arange(1, 17)[:, None] % 3 == 0)
    src = pose.copy()
    src[3:5, 1] = np.nan   # 2 frames: interpolated at 10 fps with max 0.5 s
    src[6:12, 2] = np.nan  # 6 frames to the end: held
    out = ex.fill_gaps(src, fps=10.0, max_gap_s=0.5)
    np.testing.assert_allclose(out[3:5, 1], pose[3:5, 1], atol=1e-9)  # linear motion: exact
    np.testing.assert_allclose(out[6:, 2] - out[6:, 1], np.broadcast_to(pose[5, 2] - pose[5, 1], (6, 3)))
    src[:, 0] = np.nan
    with pytest.raises(ValueError, match="no frame with a known pelvis"):
        ex.fill_gaps(src, fps=10.0)


def test_a_session_without_fused_track_exports_as_before(tmp_path):
    a = _analysis()
    assert a.fused3d is None
    files = ex.export_analysis(a, tmp_path)
    assert {f.name for f in files} == {"session.json"} | {f"session_{t}.{e}" for t in ("view0", "view1", "aligned")
                                                          for e in ("csv", "trc", "bvh")}
    doc = json.loads((tmp_path / "session.json").read_text())
    assert set(doc["tracks"]) == {"view0", "view1", "aligned"} and "fused_source_names" not in doc
