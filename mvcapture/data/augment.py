"""3D motion augmentations for training data, in the spirit of PoseAug (Gong et al., CVPR 2021): bone lengths,
body proportions and joint angles perturbed; upper and lower body mixed between clips; mirroring; speed changes.

All work on H36M-17 world poses (T, 17, 3) in metres, y up (as `io.bvh.bvh_to_h36m` gives), before the
virtual cameras film them (`data.synth`). Pure numpy; everything random comes from the given generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mvcapture.core.skeleton import H36M17_BONES, H36M17_FLIP_PERMUTATION
from mvcapture.errors import MvcaptureError

# Bone groups (indices into H36M17_BONES) whose lengths change together; left and right share a factor.
BONE_GROUPS = {
    "hip_width": (0, 3), "thigh": (1, 4), "shin": (2, 5), "spine": (6, 7), "neck": (8,), "head": (9,),
    "shoulder_width": (10, 13), "upper_arm": (11, 14), "forearm": (12, 15),
}
# Joints of the lower body (pelvis, hips, legs) and of the upper body (spine and above) in H36M-17.
LOWER_BODY = (0, 1, 2, 3, 4, 5, 6)
UPPER_BODY = tuple(range(7, 17))
# Rotatable limb segments for joint-angle perturbation: (joint the segment turns about, joints that move).
LIMB_SEGMENTS = (
    (1, (2, 3)), (2, (3,)), (4, (5, 6)), (5, (6,)),          # hips, knees
    (11, (12, 13)), (12, (13,)), (14, (15, 16)), (15, (16,)),  # shoulders, elbows
    (8, (9, 10)),                                              # neck
)
_CHILDREN_ORDER = [c for _, c in H36M17_BONES]  # parents come before children in H36M17_BONES


def _check_pose(pose: np.ndarray, name: str = "pose") -> np.ndarray:
    pose = np.asarray(pose, np.float64)
    if pose.ndim != 3 or pose.shape[1:] != (17, 3) or len(pose) < 1:
        raise MvcaptureError(f"{name} must have shape (T, 17, 3) metres (H36M-17), got {pose.shape}")
    return pose


def scale_bones(pose: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Multiply each bone's length by its factor, keeping every bone's direction and the pelvis in place.

    Args:
        pose: (T, 17, 3) metres. factors: (16,) per bone of `H36M17_BONES`, or (T, 16).

    Returns:
        (T, 17, 3): joints rebuilt from the pelvis outwards along the kinematic tree.
    """
    pose = _check_pose(pose)
    factors = np.broadcast_to(np.asarray(factors, np.float64), (len(pose), len(H36M17_BONES)))
    if not (factors > 0).all():
        raise MvcaptureError("bone length factors must be positive")
    out = pose.copy()
    for b, (parent, child) in enumerate(H36M17_BONES):
        out[:, child] = out[:, parent] + factors[:, b, None] * (pose[:, child] - pose[:, parent])
    return out


def group_factors(groups: dict[str, float]) -> np.ndarray:
    """(16,) bone factors from per-group factors (`BONE_GROUPS` names; groups not given stay 1)."""
    factors = np.ones(len(H36M17_BONES))
    for name, value in groups.items():
        if name not in BONE_GROUPS:
            raise MvcaptureError(f"unknown bone group {name!r}; known: {', '.join(BONE_GROUPS)}")
        factors[list(BONE_GROUPS[name])] = value
    return factors


def random_proportions(rng: np.random.Generator, spread: float = 0.12, asymmetry: float = 0.03,
                       global_range: tuple[float, float] = (0.85, 1.15),
                       limits: tuple[float, float] = (0.7, 1.4)) -> np.ndarray:
    """(16,) random bone factors: one overall body size in `global_range`, times a log-normal factor per bone
    group (std `spread`: body proportions), times a small independent factor per bone (std `asymmetry`),
    kept within `limits`."""
    size = rng.uniform(*global_range)
    factors = np.full(len(H36M17_BONES), size)
    for bones in BONE_GROUPS.values():
        factors[list(bones)] *= np.exp(rng.normal(0.0, spread))
    return np.clip(factors * np.exp(rng.normal(0.0, asymmetry, len(H36M17_BONES))), *limits)


def _rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(..., 3) unit axes, (...) radians → (..., 3, 3) rotation matrices (Rodrigues)."""
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    K = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def rotate_segment(pose: np.ndarray, pivot: int, joints, axis: np.ndarray, angle_rad) -> np.ndarray:
    """Turn `joints` about joint `pivot` by `angle_rad` (scalar or (T,)) around world `axis` ((3,) or (T, 3)).
    Bone lengths do not change."""
    pose = _check_pose(pose)
    axis = np.broadcast_to(np.asarray(axis, np.float64), (len(pose), 3))
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-12)
    R = _rotation(axis, np.broadcast_to(np.asarray(angle_rad, np.float64), (len(pose),)))
    out = pose.copy()
    joints = list(joints)
    rel = pose[:, joints] - pose[:, pivot, None]
    out[:, joints] = pose[:, pivot, None] + np.einsum("tij,tkj->tki", R, rel)
    return out


def random_joint_angles(pose: np.ndarray, rng: np.random.Generator, max_deg: float = 15.0) -> np.ndarray:
    """Turn each limb segment (`LIMB_SEGMENTS`) about its joint by a random angle up to `max_deg`, around an
    axis perpendicular to the segment's first bone, the same offset for the whole clip (PoseAug's bone-angle
    augmentation: new poses near real ones). Bone lengths do not change."""
    pose = _check_pose(pose)
    out = pose
    for pivot, joints in LIMB_SEGMENTS:
        bone = out[:, joints[0]] - out[:, pivot]
        ref = rng.normal(size=3)
        axis = np.cross(bone, ref)
        angle = np.radians(rng.uniform(-max_deg, max_deg))
        out = rotate_segment(out, pivot, joints, axis, angle)
    return out


# Smooth limb motion (`random_limb_motion`): ball joints (pivot, moving joints, +1 left / -1 right limb, "leg"
# or "arm"); hinges (pivot, parent joint, moving joints, +1 knee / -1 elbow: the sign of the hinge axis along the
# pelvis' left axis when the joint flexes the natural way).
BALL_SEGMENTS = ((1, (2, 3), -1.0, "leg"), (4, (5, 6), 1.0, "leg"),
                 (11, (12, 13), 1.0, "arm"), (14, (15, 16), -1.0, "arm"))
HINGE_SEGMENTS = ((2, 1, (3,), 1.0), (5, 4, (6,), 1.0), (12, 11, (13,), -1.0), (15, 14, (16,), -1.0))
MAX_FLEXION_DEG = 150.0
# Where a swing takes a limb, in the pelvis' frame (left, up, forward; "out" = away from the body's midline):
# legs forwards (kicks), sideways and a little backwards; arms forwards, sideways, up.
_SWING_FORWARD = {"leg": (-0.4, 1.0), "arm": (-0.2, 1.0)}
_SWING_OUT = {"leg": (0.0, 1.0), "arm": (0.0, 1.0)}
_SWING_UP = {"leg": (-0.2, 0.2), "arm": (-0.2, 0.5)}


def _raise_lower(rng: np.random.Generator, T: int, fps: float, amplitude_rad: float,
                 period_s: tuple[float, float]) -> np.ndarray:
    """(T,) radians in [0, amplitude_rad]: a limb raised and lowered again (a raised cosine with a random period
    in `period_s` seconds and phase, its peak a random 30-100 % of `amplitude_rad`)."""
    t = np.arange(T) / fps
    peak = rng.uniform(0.3, 1.0) * amplitude_rad
    return peak * 0.5 * (1 - np.cos(2 * np.pi * t / rng.uniform(*period_s) + rng.uniform(0, 2 * np.pi)))


def random_limb_motion(pose: np.ndarray, rng: np.random.Generator, fps: float, leg_deg: float = 60.0,
                       arm_deg: float = 120.0, hinge_deg: float = 60.0,
                       period_s: tuple[float, float] = (0.8, 3.0)) -> np.ndarray:
    """New movements on top of a motion, for poses the mocap clips never show (PoseAug's bone-angle idea
    extended in time): each leg swings forwards, sideways or a little backwards by up to `leg_deg` at the hip
    (kicks, side steps), each arm forwards, sideways or up by up to `arm_deg` at the shoulder (arms raised
    overhead), each knee and elbow flexes or extends by up to `hinge_deg` about its hinge (total flexion kept
    within 0-150°, bent the natural way). Every movement is raised and lowered smoothly (periods in `period_s`
    seconds), its direction fixed in the pelvis' frame, so the limbs move with the body. Bone lengths do not
    change.

    Args:
        pose: (T, 17, 3) H36M-17 metres, y up. fps: its frame rate (Hz).

    Returns:
        (T, 17, 3) metres.
    """
    pose = _check_pose(pose)
    if not fps > 0:
        raise MvcaptureError(f"fps must be positive (the motion's frame rate, Hz), got {fps}")
    T = len(pose)
    out = pose
    frame = _torso_frame(pose)  # (T, 3, 3) rows left, up, forward
    for pivot, joints, side, kind in BALL_SEGMENTS:
        bone = np.einsum("tij,tj->ti", frame, out[:, joints[0]] - out[:, pivot]).mean(0)  # pelvis frame
        target = np.array([side * rng.uniform(*_SWING_OUT[kind]), rng.uniform(*_SWING_UP[kind]),
                           rng.uniform(*_SWING_FORWARD[kind])])
        local = np.cross(bone, target)  # turning about it takes the limb towards the target
        if np.linalg.norm(local) < 1e-6 * max(np.linalg.norm(bone), 1e-9):
            continue
        axis = np.einsum("i,tij->tj", local / np.linalg.norm(local), frame)
        amplitude = np.radians(leg_deg if kind == "leg" else arm_deg)
        out = rotate_segment(out, pivot, joints, axis, _raise_lower(rng, T, fps, amplitude, period_s))
    for pivot, parent, joints, sign in HINGE_SEGMENTS:
        upper = out[:, pivot] - out[:, parent]
        lower = out[:, joints[0]] - out[:, pivot]
        upper_u = upper / np.maximum(np.linalg.norm(upper, axis=-1, keepdims=True), 1e-9)
        lower_u = lower / np.maximum(np.linalg.norm(lower, axis=-1, keepdims=True), 1e-9)
        hinge = np.cross(upper_u, lower_u)
        # nearly straight: the cross product's direction is noise; lean on the pelvis' left axis instead
        weak = np.maximum(0.0, 0.35 - np.linalg.norm(hinge, axis=-1, keepdims=True))
        hinge = hinge + weak * sign * frame[:, 0]
        flexion = np.arccos(np.clip((upper_u * lower_u).sum(-1), -1.0, 1.0))
        angle = _raise_lower(rng, T, fps, np.radians(hinge_deg), period_s)
        if rng.random() < 0.5:
            angle = -angle  # extend instead of flex
        angle = np.clip(angle, -flexion, np.radians(MAX_FLEXION_DEG) - flexion)
        out = rotate_segment(out, pivot, joints, hinge, angle)
    return out


def mirror(pose: np.ndarray) -> np.ndarray:
    """The mirror image of a motion: world x → −x and left ↔ right (a right-handed athlete becomes left-handed)."""
    pose = _check_pose(pose)
    out = pose[:, H36M17_FLIP_PERMUTATION].copy()
    out[..., 0] = -out[..., 0]
    return out


def change_speed(pose: np.ndarray, factor: float) -> np.ndarray:
    """Play a motion `factor` times as fast (linear interpolation): (T, 17, 3) → (ceil(T / factor), 17, 3)
    at the same frame rate; frame k shows the motion at original frame k · factor."""
    pose = _check_pose(pose)
    if not factor > 0:
        raise MvcaptureError(f"speed factor must be positive, got {factor}")
    T = len(pose)
    t = np.arange(0.0, T - 1 + 1e-9, factor)
    i0 = np.clip(np.floor(t).astype(np.int64), 0, max(T - 2, 0))
    w = (t - i0)[:, None, None]
    i1 = np.minimum(i0 + 1, T - 1)
    return (1 - w) * pose[i0] + w * pose[i1]


def _torso_frame(pose: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rows: the pelvis' left (r_hip → l_hip), up (pelvis → spine, orthogonalised), forward."""
    left = pose[:, 4] - pose[:, 1]
    left /= np.maximum(np.linalg.norm(left, axis=-1, keepdims=True), 1e-9)
    up = pose[:, 7] - pose[:, 0]
    up = up - (up * left).sum(-1, keepdims=True) * left
    up /= np.maximum(np.linalg.norm(up, axis=-1, keepdims=True), 1e-9)
    return np.stack([left, up, np.cross(left, up)], 1)


def mix_upper_lower(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """A new motion: legs and pelvis of `lower`, spine, arms and head of `upper`, the upper body placed on
    the lower body's pelvis with the orientation it had relative to its own pelvis (both (T, 17, 3); the
    shorter length is used). Bone lengths of each part come from its source."""
    lower, upper = _check_pose(lower, "lower"), _check_pose(upper, "upper")
    T = min(len(lower), len(upper))
    lower, upper = lower[:T], upper[:T]
    F_low, F_up = _torso_frame(lower), _torso_frame(upper)
    local = np.einsum("tij,tkj->tki", F_up, upper[:, list(UPPER_BODY)] - upper[:, :1])  # in upper's pelvis frame
    out = lower.copy()
    out[:, list(UPPER_BODY)] = lower[:, :1] + np.einsum("tji,tkj->tki", F_low, local)
    return out


@dataclass(frozen=True)
class MotionAugment:
    """Random 3D augmentation of one clip for training data (each applied with its probability).

    proportions: probability of new bone lengths (`random_proportions` with `bone_spread`).
    joint_angles: probability of turned limb segments (`random_joint_angles`, up to `max_angle_deg`).
    mix: probability of taking the upper body from another clip of the same subject (the caller's donor).
    mirror: probability of mirroring. speed: probability of a speed change by a factor in `speed_range`.
    """

    proportions: float = 0.8
    bone_spread: float = 0.12
    joint_angles: float = 0.5
    max_angle_deg: float = 15.0
    mix: float = 0.3
    mirror: float = 0.5
    speed: float = 0.5
    speed_range: tuple[float, float] = (0.6, 1.6)
    limb_motion: float = 0.0
    leg_deg: float = 60.0
    arm_deg: float = 120.0
    hinge_deg: float = 60.0

    def apply(self, pose: np.ndarray, rng: np.random.Generator, donor: np.ndarray | None = None,
              fps: float = 30.0) -> tuple[np.ndarray, dict]:
        """(T, 17, 3) metres at `fps` Hz → augmented (T', 17, 3) and a record of what was done (for the clip's
        metadata)."""
        pose = _check_pose(pose)
        done: dict = {}
        if donor is not None and rng.random() < self.mix:
            pose = mix_upper_lower(pose, _check_pose(donor, "donor"))
            done["mixed"] = True
        if rng.random() < self.speed:
            factor = float(np.exp(rng.uniform(*np.log(self.speed_range))))
            if len(pose) / factor >= 2:
                pose = change_speed(pose, factor)
                done["speed"] = factor
        if rng.random() < self.joint_angles:
            pose = random_joint_angles(pose, rng, self.max_angle_deg)
            done["joint_angles_deg"] = self.max_angle_deg
        if self.limb_motion > 0 and rng.random() < self.limb_motion:
            pose = random_limb_motion(pose, rng, fps, self.leg_deg, self.arm_deg, self.hinge_deg)
            done["limb_motion_deg"] = [self.leg_deg, self.arm_deg, self.hinge_deg]
        if rng.random() < self.proportions:
            factors = random_proportions(rng, self.bone_spread)
            pose = scale_bones(pose, factors)
            done["bone_factors"] = factors.round(4).tolist()
        if rng.random() < self.mirror:
            pose = mirror(pose)
            done["mirrored"] = True
        return pose, done
