"""BVH import on the shipped CMU files and on small hand-written skeletons (Mixamo, other names, rotation orders)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mvcapture.core.skeleton import bone_lengths
from mvcapture.errors import MvcaptureError
from mvcapture.io.bvh import (BvhMotion, bvh_to_h36m, find_landmarks, load_bvh, match_landmarks_by_name,
                              parse_bvh, resample)


@pytest.fixture(scope="module")
def cmu_dir(shared_data):
    path = shared_data / "mocap" / "cmu"
    if not path.is_dir():
        pytest.skip(f"no CMU clips at {path}")
    return path


@pytest.fixture(scope="module")
def cmu_poses(cmu_dir):
    """Every shipped clip as H36M-17 world metres (parsed once for the module)."""
    out = {}
    for f in sorted(cmu_dir.glob("*.bvh")):
        motion = load_bvh(f)
        pose, fps = bvh_to_h36m(motion)
        out[f.stem] = (motion, pose, fps)
    return out


def test_every_shipped_bvh_parses(cmu_dir, cmu_poses):
    assert len(cmu_poses) == 44
    for stem, (motion, pose, fps) in cmu_poses.items():
        header = int((cmu_dir / f"{stem}.bvh").read_text().split("Frames:")[1].split()[0])
        assert motion.num_frames == header, stem
        assert fps == 60.0
        assert motion.names[0] in ("RL_BoneRoot", "CC_Base_Hip") and len(motion.channels[0]) == 6
        assert find_landmarks(motion)[0] == "iclone"
        assert pose.shape[1:] == (17, 3) and np.all(np.isfinite(pose)), stem


def test_bone_lengths_are_human_after_unit_detection(cmu_poses):
    for stem, (_, pose, _) in cmu_poses.items():
        bones = np.median(bone_lengths(pose), axis=0)  # order of H36M17_BONES
        thighs, shins = bones[[1, 4]], bones[[2, 5]]
        upper_arms, forearms = bones[[11, 14]], bones[[12, 15]]
        assert np.all((thighs > 0.35) & (thighs < 0.55)), (stem, thighs)
        assert np.all((shins > 0.35) & (shins < 0.55)), (stem, shins)
        assert np.all((upper_arms > 0.2) & (upper_arms < 0.4)), (stem, upper_arms)
        assert np.all((forearms > 0.2) & (forearms < 0.4)), (stem, forearms)
        height = np.median(pose[:, 10, 1] - np.minimum(pose[:, 3, 1], pose[:, 6, 1]))
        assert 1.3 < height < 1.9, (stem, height)


def test_fk_of_rest_pose_is_cumulative_offsets(cmu_poses):
    motion = cmu_poses["002_01"][0]
    zero = BvhMotion(motion.names, motion.parents, motion.offsets, motion.channels,
                     np.zeros((2, motion.motion.shape[1])), motion.frame_time)
    expected = np.zeros_like(motion.offsets)
    for j, p in enumerate(motion.parents):
        expected[j] = motion.offsets[j] + (expected[p] if p >= 0 else 0)
    np.testing.assert_allclose(zero.positions()[1], expected, atol=1e-9)
    np.testing.assert_allclose(zero.rest_positions(), expected, atol=1e-9)


def test_left_right_sides_in_world_frame(cmu_poses):
    """Convention: y up; a subject facing +z has the left hip at +x (left = up × forward)."""
    for stem in ("002_01", "003_01", "005_01", "007_05"):
        pose = cmu_poses[stem][1]
        walk = pose[-1, 0] - pose[0, 0]
        walk[1] = 0
        forward = walk / np.linalg.norm(walk)
        left = np.cross([0.0, 1.0, 0.0], forward)
        assert np.all((pose[:, 4] - pose[:, 1]) @ left > 0.1), stem       # left hip on the left
        assert np.mean((pose[:, 11] - pose[:, 14]) @ left > 0.2) > 0.95, stem  # left shoulder too
        assert np.all(pose[:, 10, 1] > pose[:, 0, 1] + 0.4), stem            # head above pelvis: y up


def test_converter_tpose_frame_detected(cmu_poses):
    # 007_03..12 start with a prepended T-pose (arms level, jump to the motion); the others don't
    for stem, (motion, pose, _) in cmu_poses.items():
        dropped = motion.num_frames - pose.shape[0]
        assert dropped == (1 if stem >= "007_03" else 0), stem
    motion = cmu_poses["007_03"][0]
    kept, _ = bvh_to_h36m(motion, drop_first=False)
    arm_span = np.linalg.norm(kept[0, 13] - kept[0, 16])
    assert arm_span > 1.3 and abs(kept[0, 13, 1] - kept[0, 11, 1]) < 0.1   # frame 0 is a T-pose


def test_resample_to_30_fps(cmu_poses):
    motion, pose60, _ = cmu_poses["002_01"]
    pose30, fps = bvh_to_h36m(motion, fps=30)
    assert fps == 30.0 and pose30.shape[0] == (pose60.shape[0] - 1) // 2 + 1
    np.testing.assert_allclose(pose30, pose60[::2], atol=1e-9)
    half = resample(pose60[:3], 60.0, 120.0)
    np.testing.assert_allclose(half[1], 0.5 * (pose60[0] + pose60[1]))


def _bvh_text(joints, frames, frame_time=0.04):
    """joints: list of (name, parent_name|None, offset, channels); End Sites as ("End", parent, offset, ())."""
    children = {}
    for j in joints:
        children.setdefault(j[1], []).append(j)
    lines = ["HIERARCHY"]

    def emit(joint, depth):
        name, parent, offset, channels = joint
        pad = "  " * depth
        head = "End Site" if name == "End" else (f"ROOT {name}" if parent is None else f"JOINT {name}")
        lines.append(pad + head)
        lines.append(pad + "{")
        lines.append(pad + "  OFFSET " + " ".join(f"{v:.6f}" for v in offset))
        if name != "End":
            lines.append(pad + f"  CHANNELS {len(channels)} " + " ".join(channels))
            for child in children.get(name, []):
                emit(child, depth + 1)
        lines.append(pad + "}")

    emit(children[None][0], 0)
    lines += ["MOTION", f"Frames: {len(frames)}", f"Frame Time: {frame_time}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in frames]
    return "\n".join(lines) + "\n"


def test_rotation_orders_against_scipy():
    rng = np.random.default_rng(0)
    root_ch = ("Xposition", "Yposition", "Zposition", "Yrotation", "Xrotation", "Zrotation")
    joints = [("root", None, (1.0, 2.0, 3.0), root_ch),
              ("a", "root", (0.0, 10.0, 0.0), ("Xrotation", "Zrotation", "Yrotation")),
              ("b", "a", (5.0, 0.0, 1.0), ("Zposition", "Xposition", "Yposition", "Zrotation", "Xrotation",
                                            "Yrotation")),
              ("End", "b", (0.0, 0.0, 4.0), ())]
    frames = rng.uniform(-90, 90, size=(5, 15))
    motion = parse_bvh(_bvh_text(joints, frames))
    assert motion.names == ["root", "a", "b", "b_End"]
    np.testing.assert_allclose(motion.motion, frames, atol=1e-6)
    pos = motion.positions()
    for t, row in enumerate(motion.motion):
        R_root = Rotation.from_euler("YXZ", row[3:6], degrees=True).as_matrix()  # intrinsic = listed order
        R_a = Rotation.from_euler("XZY", row[6:9], degrees=True).as_matrix()
        R_b = Rotation.from_euler("ZXY", row[12:15], degrees=True).as_matrix()
        p_root = row[0:3]                                  # position channels replace the offset
        p_a = p_root + R_root @ np.array([0.0, 10.0, 0.0])
        p_b = p_a + R_root @ R_a @ np.array([row[10], row[11], row[9]])
        p_end = p_b + R_root @ R_a @ R_b @ np.array([0.0, 0.0, 4.0])
        np.testing.assert_allclose(pos[t], [p_root, p_a, p_b, p_end], atol=1e-9)
    np.testing.assert_allclose(motion.positions([3], frames=slice(2, 4)), pos[2:4, [3]])


# A Mixamo-like T-pose skeleton: Z up, facing -y, in inches (checks family, unit and up-axis handling).
_MIXAMO = [
    ("Hips", None, (0, 0, 40)), ("Spine", "Hips", (0, 0, 4)), ("Spine1", "Spine", (0, 0, 4)),
    ("Spine2", "Spine1", (0, 0, 4)), ("Neck", "Spine2", (0, 0, 6)), ("Head", "Neck", (0, -0.5, 4)),
    ("HeadTop_End", "Head", (0, 0, 7)), ("LeftEye", "Head", (1.2, -3, 2)), ("RightEye", "Head", (-1.2, -3, 2)),
    ("LeftShoulder", "Spine2", (2, 0, 5)), ("LeftArm", "LeftShoulder", (4, 0, 0)),
    ("LeftForeArm", "LeftArm", (10, 0, 0)), ("LeftHand", "LeftForeArm", (10, 0, 0)),
    ("RightShoulder", "Spine2", (-2, 0, 5)), ("RightArm", "RightShoulder", (-4, 0, 0)),
    ("RightForeArm", "RightArm", (-10, 0, 0)), ("RightHand", "RightForeArm", (-10, 0, 0)),
    ("LeftUpLeg", "Hips", (3.5, 0, -2)), ("LeftLeg", "LeftUpLeg", (0, 0, -17)), ("LeftFoot", "LeftLeg", (0, 0, -17)),
    ("LeftToeBase", "LeftFoot", (0, -5, -2)),
    ("RightUpLeg", "Hips", (-3.5, 0, -2)), ("RightLeg", "RightUpLeg", (0, 0, -17)),
    ("RightFoot", "RightLeg", (0, 0, -17)), ("RightToeBase", "RightFoot", (0, -5, -2)),
]


def _skeleton_bvh(spec, prefix="", frames=3):
    joints = []
    for name, parent, offset in spec:
        channels = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation") if parent is None \
            else ("Zrotation", "Xrotation", "Yrotation")
        joints.append((prefix + name, None if parent is None else prefix + parent, offset, channels))
    joints.append(("End", joints[-1][0], (0, 0, 0), ()))
    num_channels = sum(len(j[3]) for j in joints)
    motion = np.zeros((frames, num_channels))
    motion[:, 2] = 40.0
    return _bvh_text(joints, motion)


def test_mixamo_names_units_and_up_axis():
    motion = parse_bvh(_skeleton_bvh(_MIXAMO, prefix="mixamorig:"), source="mixamo.bvh")
    family, landmarks = find_landmarks(motion)
    assert family == "mixamo"
    assert motion.names[landmarks["l_hip"]] == "mixamorig:LeftUpLeg"
    assert motion.names[landmarks["r_shoulder"]] == "mixamorig:RightArm"
    assert motion.names[landmarks["head_top"]] == "mixamorig:HeadTop_End"
    pose, fps = bvh_to_h36m(motion)
    assert fps == 25.0 and pose.shape == (3, 17, 3)
    np.testing.assert_allclose(np.linalg.norm(pose[0, 4] - pose[0, 5]), 17 * 0.0254, rtol=1e-6)  # inches
    assert pose[0, 10, 1] > pose[0, 0, 1] + 0.5                       # z up in the file → y up
    # the file's subject faces -y (eyes at -y); after z→y up it faces +z, so left must be +x
    assert pose[0, 9, 2] > pose[0, 10, 2] and pose[0, 4, 0] > pose[0, 1, 0]
    np.testing.assert_allclose(pose[0, 10], np.array([0, 40 + 12 + 6 + 4 + 7, 0.5]) * 0.0254, atol=1e-9)


def test_name_matching_fallback():
    names = ["Bip01", "Bip01 Pelvis", "Bip01 L Thigh", "Bip01 L Calf", "Bip01 L Foot", "Bip01 L Toe0",
             "Bip01 R Thigh", "Bip01 R Calf", "Bip01 R Foot", "Bip01 Spine", "Bip01 Neck", "Bip01 Head",
             "Bip01 HeadNub", "Bip01 L Clavicle", "Bip01 L UpperArm", "Bip01 L Forearm", "Bip01 L Hand",
             "Bip01 L Finger0", "Bip01 R Clavicle", "Bip01 R UpperArm", "Bip01 R ForeArmTwist", "Bip01 R Forearm",
             "Bip01 R Hand", "l_eye", "RightEye"]
    found = match_landmarks_by_name(names)
    expect = {"l_hip": "Bip01 L Thigh", "l_knee": "Bip01 L Calf", "l_ankle": "Bip01 L Foot",
              "r_hip": "Bip01 R Thigh", "r_knee": "Bip01 R Calf", "r_ankle": "Bip01 R Foot",
              "l_shoulder": "Bip01 L UpperArm", "l_elbow": "Bip01 L Forearm", "l_wrist": "Bip01 L Hand",
              "r_shoulder": "Bip01 R UpperArm", "r_elbow": "Bip01 R Forearm", "r_wrist": "Bip01 R Hand",
              "neck": "Bip01 Neck", "head": "Bip01 Head", "l_eye": "l_eye", "r_eye": "RightEye"}
    assert {k: names[v] for k, v in found.items()} == expect
    # lower-case snake_case names and Mixamo's LeftShoulder (a clavicle) losing to LeftArm
    found = match_landmarks_by_name(["left_shoulder", "left_arm", "left_forearm", "l_wrist", "right_upleg",
                                     "right_knee", "r_ankle"])
    assert found == {"l_shoulder": 1, "l_elbow": 2, "l_wrist": 3, "r_hip": 4, "r_knee": 5, "r_ankle": 6}


def test_fallback_maps_a_renamed_skeleton():
    renamed = {"Hips": "root", "LeftUpLeg": "thigh_l", "LeftLeg": "calf_l", "LeftFoot": "foot_l",
               "RightUpLeg": "thigh_r", "RightLeg": "calf_r", "RightFoot": "foot_r", "LeftArm": "upperarm_l",
               "LeftForeArm": "lowerarm_l", "LeftHand": "hand_l", "RightArm": "upperarm_r",
               "RightForeArm": "lowerarm_r", "RightHand": "hand_r", "LeftShoulder": "clavicle_l",
               "RightShoulder": "clavicle_r", "Neck": "neck_01", "Head": "head", "HeadTop_End": "headtop_end"}
    spec = [(renamed.get(n, n), renamed.get(p, p) if p else None, o) for n, p, o in _MIXAMO]
    motion = parse_bvh(_skeleton_bvh(spec), source="ue.bvh")
    family, landmarks = find_landmarks(motion)
    assert family == "name-match"
    assert motion.names[landmarks["head_top"]] == "headtop_end"
    pose_ref, _ = bvh_to_h36m(parse_bvh(_skeleton_bvh(_MIXAMO)))
    pose, _ = bvh_to_h36m(motion)
    np.testing.assert_allclose(pose, pose_ref, atol=1e-9)


def test_unmappable_skeleton_lists_missing_joints():
    spec = [j for j in _MIXAMO if not any(w in j[0] for w in ("Shoulder", "Arm", "Hand"))]
    motion = parse_bvh(_skeleton_bvh(spec), source="legs_only.bvh")
    with pytest.raises(MvcaptureError) as err:
        bvh_to_h36m(motion)
    message = str(err.value)
    assert "legs_only.bvh" in message
    for joint in ("l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist"):
        assert joint in message
    assert "l_hip" not in message


def test_damaged_files_give_clear_errors(tmp_path):
    with pytest.raises(MvcaptureError, match="not a BVH"):
        parse_bvh("hello")
    text = _skeleton_bvh(_MIXAMO)
    with pytest.raises(MvcaptureError, match="channels"):
        parse_bvh(text.replace("CHANNELS 3 Zrotation Xrotation Yrotation", "CHANNELS 2 Zrotation Xrotation", 1))
    with pytest.raises(MvcaptureError, match="no such BVH"):
        load_bvh(tmp_path / "missing.bvh")
