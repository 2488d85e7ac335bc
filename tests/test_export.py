import csv
import json

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


def test_trc_round_trip_within_1mm(tmp_path):
    a = _analysis()
    ex.export_analysis(a, tmp_path, formats=("trc",))
    data, rate, names = ex.read_trc((tmp_path / "session_view0.trc").read_text())
    assert rate == 30.0 and names == list(H36M17_JOINTS)
    # TRC is Y-up: camera (x, y, z) -> (x, -y, -z)
    back = data * [1, -1, -1]
    assert np.abs(back - a.pose3d[0]).max() < 1e-3


def test_unknown_format_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        ex.export_analysis(_analysis(), tmp_path, formats=("fbx",))


def test_bvh_round_trip_through_our_importer_within_1mm(tmp_path):
    """A rigid skeleton's motion → BVH → our BVH importer + FK → the same joint positions."""
    from mvcapture.io.bvh import load_bvh

    a = _analysis()
    ex.export_analysis(a, tmp_path, formats=("bvh",))
    motion = load_bvh(tmp_path / "session_view0.bvh")
    assert motion.fps == pytest.approx(30.0)
    idx = [motion.index(name) for name in H36M17_JOINTS]
    positions_m = motion.positions()[:, idx] / 100.0  # file is in centimetres, Y up
    expected = a.pose3d[0] @ ex.CAMERA_TO_YUP.T
    assert np.abs(positions_m - expected).max() < 1e-3


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
