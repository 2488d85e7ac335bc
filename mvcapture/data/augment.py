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

    def apply(self, pose: np.ndarray, rng: np.random.Generator, donor: np.ndarray | None = None
              ) -> tuple[np.ndarray, dict]:
        """(T, 17, 3) → augmented (T', 17, 3) and a record of what was done (for the clip's metadata)."""
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
        if rng.random() < self.proportions:
            factors = random_proportions(rng, self.bone_spread)
            pose = scale_bones(pose, factors)
            done["bone_factors"] = factors.round(4).tolist()
        if rng.random() < self.mirror:
            pose = mirror(pose)
            done["mirrored"] = True
        return pose, done
