"""BVH motion capture import: parsing, forward kinematics and mapping to H36M-17 world poses in metres.

`load_bvh` parses any channel and rotation order (6- and 3-channel joints, End Sites);
`BvhMotion.positions` runs forward kinematics vectorised over frames; `bvh_to_h36m` turns a file into
(T, 17, 3) metres in the canonical world frame: right-handed, **y up**, floor and heading as in the file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mvcapture.core.skeleton import H36M17_JOINTS, HEAD_TOP_EXTENSION
from mvcapture.errors import MvcaptureError

log = logging.getLogger(__name__)

# Length units a BVH file may use, as metres per file unit.
UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "dm": 0.1, "ft": 0.3048}
# Adult hip→knee→ankle chain (one leg), metres: CMU ≈ 0.98, H36M ≈ 0.90. Units are told apart by this.
EXPECTED_LEG_M = 0.9
# A frame 0 this far (mean joint distance, metres, root-relative) from frame 1 while the rest of the
# clip moves at most a fifth of it per frame is a converter's T-pose.
TPOSE_JUMP_M = 0.08
TPOSE_JUMP_RATIO = 5.0
# Nose below the eyes' midpoint along the neck→skull direction, metres.
NOSE_BELOW_EYES_M = 0.03
# Without eyes: nose in front of the skull base (along the chest's forward direction), metres.
NOSE_AHEAD_OF_HEAD_M = 0.09

_AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclass
class BvhMotion:
    """A parsed BVH file: skeleton hierarchy plus motion channels (file units, file axes).

    Attributes:
        names: joint names in file order (parents before children). An End Site becomes a joint
            named `<parent>_End` without channels.
        parents: (J,) int, parent index per joint, -1 for roots.
        offsets: (J, 3) float64 rest offset of each joint from its parent, file units.
        channels: per joint, its channel names in file order (e.g. ("Xposition", ..., "Xrotation")).
        motion: (F, C) float64 channel values per frame (rotations in degrees).
        frame_time: seconds per frame.
        source: file path or label, for messages.
    """

    names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    channels: list[tuple[str, ...]]
    motion: np.ndarray
    frame_time: float
    source: str = "bvh"
    _channel_start: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        counts = np.array([len(c) for c in self.channels], dtype=np.int64)
        self._channel_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        if self.motion.shape[1] != int(counts.sum()):
            raise MvcaptureError(
                f"{self.source}: motion rows have {self.motion.shape[1]} values but the hierarchy declares "
                f"{int(counts.sum())} channels; the file is damaged or not a BVH file")

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def fps(self) -> float:
        """Frames per second; 1 / Frame Time, snapped to a whole number when the file rounded it (0.016667)."""
        fps = 1.0 / self.frame_time
        return float(round(fps)) if abs(fps - round(fps)) < 2e-3 * fps else fps

    def index(self, name: str) -> int:
        """Index of the joint called `name` (exact match)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise MvcaptureError(f"{self.source}: no joint named {name!r}") from None

    def rest_positions(self) -> np.ndarray:
        """(J, 3) joint positions with every channel zero, i.e. cumulative offsets (file units)."""
        pos = np.zeros((len(self.names), 3))
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] + (pos[p] if p >= 0 else 0.0)
        return pos

    def local_rotations(self, joints: np.ndarray | None = None, frames: slice | np.ndarray | None = None
                        ) -> np.ndarray:
        """(T, len(joints), 3, 3) rotation of each joint relative to its parent.

        Channels listed as `Zrotation Yrotation Xrotation` give R = Rz @ Ry @ Rx (column vectors,
        child → parent), i.e. the BVH convention of applying rotations in listed order, intrinsically.
        """
        joints = np.arange(len(self.names)) if joints is None else np.asarray(joints)
        motion = self.motion if frames is None else self.motion[frames]
        out = np.broadcast_to(np.eye(3), (motion.shape[0], len(joints), 3, 3)).copy()
        for k, j in enumerate(joints):
            for c, name in enumerate(self.channels[j]):
                if not name.endswith("rotation"):
                    continue
                angle = np.deg2rad(motion[:, self._channel_start[j] + c])
                out[:, k] = out[:, k] @ _axis_rotation(_AXES[name[0].upper()], angle)
        return out

    def positions(self, joints: list[int] | np.ndarray | None = None,
                  frames: slice | np.ndarray | None = None) -> np.ndarray:
        """Forward kinematics: world positions, file units and axes.

        Args:
            joints: indices to return (default all); only they and their ancestors are computed.
            frames: optional frame selection (default all frames).

        Returns:
            (T, len(joints), 3) float64. A joint's translation relative to its parent is its OFFSET,
            or, for a joint with position channels, the position channel values (they replace the
            offset, as in most exporters and Blender).
        """
        wanted = np.arange(len(self.names)) if joints is None else np.asarray(joints, dtype=np.int64)
        needed = set()
        for j in wanted:
            j = int(j)
            while j >= 0 and j not in needed:
                needed.add(j)
                j = int(self.parents[j])
        order = np.array(sorted(needed), dtype=np.int64)  # file order: parents first
        slot = {int(j): k for k, j in enumerate(order)}
        motion = self.motion if frames is None else self.motion[frames]
        T = motion.shape[0]
        local_R = self.local_rotations(order, frames)
        glob_R = np.empty((T, len(order), 3, 3))
        glob_p = np.empty((T, len(order), 3))
        for k, j in enumerate(order):
            trans = np.broadcast_to(self.offsets[j], (T, 3)).copy()
            for c, name in enumerate(self.channels[j]):
                if name.endswith("position"):
                    trans[:, _AXES[name[0].upper()]] = motion[:, self._channel_start[j] + c]
            p = int(self.parents[j])
            if p < 0:
                glob_R[:, k] = local_R[:, k]
                glob_p[:, k] = trans
            else:
                q = slot[p]
                glob_R[:, k] = glob_R[:, q] @ local_R[:, k]
                glob_p[:, k] = glob_p[:, q] + np.einsum("tij,tj->ti", glob_R[:, q], trans)
        return glob_p[:, [slot[int(j)] for j in wanted]]


def _axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations by `angle` radians about coordinate axis 0/1/2 (right-handed)."""
    c, s = np.cos(angle), np.sin(angle)
    R = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R[..., axis, axis] = 1.0
    R[..., i, i] = c
    R[..., j, j] = c
    R[..., i, j] = -s
    R[..., j, i] = s
    return R


def parse_bvh(text: str, source: str = "bvh") -> BvhMotion:
    """Parse BVH text (see `load_bvh`)."""
    head, sep, tail = text.partition("MOTION")
    if not sep or "HIERARCHY" not in head:
        raise MvcaptureError(f"{source}: not a BVH file (needs a HIERARCHY and a MOTION section)")
    tokens = head.split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    stack: list[int] = []
    pending: int | None = None
    i = tokens.index("HIERARCHY") + 1
    if i >= len(tokens) or tokens[i] != "ROOT":
        raise MvcaptureError(f"{source}: damaged BVH hierarchy (expected 'ROOT' after HIERARCHY, found "
                             f"{tokens[i] if i < len(tokens) else 'nothing'!r})")
    try:
        while i < len(tokens):
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                name = tokens[i + 1]
                i += 2
                pending = _add_joint(names, parents, offsets, channels, name, stack[-1] if stack else -1)
            elif tok == "End":
                parent = stack[-1]
                i += 2  # "End Site"
                pending = _add_joint(names, parents, offsets, channels, f"{names[parent]}_End", parent)
            elif tok == "{":
                if pending is None:
                    raise ValueError("'{' without a joint")
                stack.append(pending)
                pending = None
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                offsets[stack[-1]] = [_hierarchy_number(v, f"OFFSET of joint {names[stack[-1]]}",
                                                        "three numbers (x y z)") for v in tokens[i + 1:i + 4]]
                i += 4
            elif tok == "CHANNELS":
                n = _channel_count(tokens[i + 1], names[stack[-1]])
                chans = tuple(tokens[i + 2:i + 2 + n])
                for c in chans:
                    if c[0].upper() not in _AXES or c[1:].lower() not in ("position", "rotation"):
                        raise ValueError(f"unknown channel {c!r}")
                channels[stack[-1]] = tuple(c[0].upper() + c[1:].lower() for c in chans)
                i += 2 + n
            else:
                raise ValueError(f"unexpected token {tok!r}")
    except (ValueError, IndexError) as exc:
        raise MvcaptureError(f"{source}: damaged BVH hierarchy ({exc})") from exc
    if not names or stack:
        raise MvcaptureError(f"{source}: damaged BVH hierarchy (no joints or unbalanced braces)")

    frames_m = re.search(r"Frames:\s*(\d+)", tail)
    time_m = re.search(r"Frame\s+Time:\s*([-+0-9.eE]+)", tail)
    if not frames_m or not time_m:
        raise MvcaptureError(f"{source}: MOTION section lacks 'Frames:' or 'Frame Time:'")
    num_frames = int(frames_m.group(1))
    try:
        frame_time = float(time_m.group(1))
    except ValueError:
        frame_time = float("nan")
    if not 0 < frame_time < 10:
        raise MvcaptureError(f"{source}: 'Frame Time:' must be seconds per frame (0 to 10), got {time_m.group(1)!r}")
    body = tail[time_m.end():]
    num_channels = sum(len(c) for c in channels)
    lines = [line for line in body.splitlines() if line.strip()]
    try:
        values = np.array(body.split(), dtype=np.float64)
    except ValueError:
        row, token = next((r, tok) for r, line in enumerate(lines, 1) for tok in line.split() if not _is_number(tok))
        raise MvcaptureError(f"{source}: motion frame {row} holds {token[:20]!r}, which is not a number; expected "
                             f"{num_channels} numbers per frame (the CHANNELS of the hierarchy)") from None
    if not np.all(np.isfinite(values)):
        row = next(r for r, line in enumerate(lines, 1) if not np.all(np.isfinite(np.array(line.split(), float))))
        raise MvcaptureError(f"{source}: motion frame {row} holds NaN or an infinite value; expected finite "
                             f"numbers (positions in the file's units, rotations in degrees)")
    rows = len(lines)
    if values.size != rows * num_channels:
        raise MvcaptureError(
            f"{source}: motion data has {values.size} values in {rows} rows, but the hierarchy declares "
            f"{num_channels} channels per frame; the file is damaged")
    if rows < num_frames:
        raise MvcaptureError(f"{source}: the header says {num_frames} frames ('Frames:'), the file holds {rows}; "
                             f"the file is truncated")
    if rows != num_frames:
        log.warning("%s: header says %d frames, file holds %d", source, num_frames, rows)
    num_frames = min(num_frames, rows)
    if num_frames < 1:
        raise MvcaptureError(f"{source}: no motion frames")
    motion = values[:num_frames * num_channels].reshape(num_frames, num_channels)
    return BvhMotion(names=names, parents=np.array(parents, dtype=np.int64),
                     offsets=np.array(offsets, dtype=np.float64), channels=channels,
                     motion=motion, frame_time=frame_time, source=source)


MAX_OFFSET = 1e4   # a bone longer than 100 m in centimetres (the largest common BVH unit ratio): not a body


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _hierarchy_number(token: str, what: str, expected: str) -> float:
    """A number of the hierarchy, or ValueError saying which joint's entry holds what instead."""
    if not _is_number(token):
        raise ValueError(f"{what} must be {expected}, found {token[:20]!r}")
    value = float(token)
    if not abs(value) <= MAX_OFFSET:
        raise ValueError(f"{what} must be {expected} of a body's size (at most {MAX_OFFSET:g}), found {token[:20]}")
    return value


def _channel_count(token: str, joint: str) -> int:
    if not token.isdigit():
        raise ValueError(f"CHANNELS of joint {joint} must start with their count (0 to 9), found {token[:20]!r}")
    return int(token)


def _add_joint(names, parents, offsets, channels, name, parent) -> int:
    names.append(name)
    parents.append(parent)
    offsets.append([0.0, 0.0, 0.0])
    channels.append(())
    return len(names) - 1


def load_bvh(path: Path | str) -> BvhMotion:
    """Read a BVH file: hierarchy (any channel / rotation order, End Sites) and motion, as in the file."""
    path = Path(path)
    if not path.is_file():
        raise MvcaptureError(f"{path}: no such BVH file")
    return parse_bvh(path.read_text(errors="replace"), source=str(path))


# ---------------------------------------------------------------- mapping to H36M-17

# Anatomical landmarks we take from a rig; H36M-17 is derived from them (see `landmarks_to_h36m`).
REQUIRED_LANDMARKS = (
    "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle",
    "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist", "neck", "head",
)
OPTIONAL_LANDMARKS = ("head_top", "l_eye", "r_eye")

_SIDE_PARTS = {"hip": "Thigh", "knee": "Calf", "ankle": "Foot", "shoulder": "Upperarm", "elbow": "Forearm",
               "wrist": "Hand", "eye": "Eye"}
ICLONE_NAMES = {f"{s}_{part}": f"CC_Base_{s.upper()}_{name}" for s in "lr" for part, name in _SIDE_PARTS.items()}
ICLONE_NAMES.update(neck="CC_Base_NeckTwist01", head="CC_Base_Head")

_MIXAMO_PARTS = {"hip": "UpLeg", "knee": "Leg", "ankle": "Foot", "shoulder": "Arm", "elbow": "ForeArm",
                 "wrist": "Hand", "eye": "Eye"}
MIXAMO_NAMES = {f"{s[0].lower()}_{part}": f"{s}{name}" for s in ("Left", "Right")
                for part, name in _MIXAMO_PARTS.items()}
MIXAMO_NAMES.update(neck="Neck", head="Head", head_top="HeadTop_End")

SKELETON_FAMILIES = {"iclone": ICLONE_NAMES, "mixamo": MIXAMO_NAMES}

# Name-matching fallback: keywords of each body part in lowercased, namespace-free joint names.
_KEYWORDS = {
    "hip": ("upleg", "upperleg", "thigh", "hip"),
    "knee": ("knee", "calf", "shin", "lowerleg", "leg"),
    "ankle": ("ankle", "foot"),
    "shoulder": ("upperarm", "uparm", "arm", "shoulder"),
    "elbow": ("forearm", "lowerarm", "elbow"),
    "wrist": ("wrist", "hand"),
    "eye": ("eye",),
}
_CENTRE_KEYWORDS = {"neck": ("neck",), "head": ("head",), "head_top": ("headtop", "headtopend", "headend")}
_EXCLUDE = ("twist", "share", "roll", "nub", "pole", "target", "thumb", "index", "middle", "ring", "pinky",
            "finger", "toe", "ball", "jaw", "brow", "lid", "tongue", "teeth", "carpal", "ctrl")


def _tokens(name: str) -> list[str]:
    name = name.split(":")[-1].split("|")[-1]
    return [t.lower() for t in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)]


def _side(tokens: list[str]) -> str | None:
    for t in tokens:
        if t in ("l", "left", "lft") or (t.startswith("left") and len(t) > 4):
            return "l"
        if t in ("r", "right", "rgt") or (t.startswith("right") and len(t) > 5):
            return "r"
    return None


def _part_text(tokens: list[str]) -> str:
    drop = {"l", "r", "left", "right", "lft", "rgt", "cc", "base", "mixamorig", "bip", "b"}
    text = "".join(t for t in tokens if t not in drop and not t.isdigit())
    return text.removeprefix("left").removeprefix("right")


def match_landmarks_by_name(names: list[str], parents: np.ndarray | None = None) -> dict[str, int]:
    """Name-matching fallback: landmark → joint index from keywords in the joint names.

    Names are split into lowercase words (camelCase, `_`, ` `, `:` namespaces), the side comes from a
    word `l`/`left`/`r`/`right`, and the rest is matched against keywords in priority order:
    hip: upleg, upperleg, thigh, hip; knee: knee, calf, shin, lowerleg, leg; ankle: ankle, foot;
    shoulder: upperarm, uparm, arm, shoulder (so a `LeftShoulder` clavicle loses to `LeftArm`);
    elbow: forearm, lowerarm, elbow; wrist: wrist, hand; eye; and without a side neck, head,
    head_top (headtop, headtop_end, or a head's End Site `<head>_End`). Names with
    twist/roll/finger/toe/... words are ignored. Among equal matches the joint closest
    to the root wins. Unmatched landmarks are simply absent from the result.
    """
    depth = np.zeros(len(names), dtype=np.int64)
    if parents is not None:
        for j, p in enumerate(parents):
            depth[j] = depth[p] + 1 if p >= 0 else 0
    best: dict[str, tuple[int, int, int]] = {}  # landmark -> (keyword rank, depth, index)

    def offer(landmark: str, rank: int, j: int) -> None:
        cand = (rank, int(depth[j]), j)
        if landmark not in best or cand < best[landmark]:
            best[landmark] = cand

    for j, name in enumerate(names):
        tokens = _tokens(name)
        text = _part_text(tokens)
        if not text or "ik" in tokens or any(word in text for word in _EXCLUDE):
            continue
        side = _side(tokens)
        if side is None:
            for landmark, words in _CENTRE_KEYWORDS.items():
                if text in words:
                    offer(landmark, 0, j)
            continue
        for part, words in _KEYWORDS.items():
            for rank, word in enumerate(words):
                if text == word:
                    offer(f"{side}_{part}", rank, j)
                    break
    return {k: v[2] for k, v in best.items()}


def find_landmarks(motion: BvhMotion) -> tuple[str, dict[str, int]]:
    """Landmark → joint index for a skeleton: known families first, then the name-matching fallback.

    Returns:
        (family, mapping) with family "iclone", "mixamo" or "name-match".

    Raises:
        MvcaptureError listing the landmarks (and what they would be called) that the skeleton lacks.
    """
    plain = {n.split(":")[-1]: j for j, n in enumerate(motion.names)}
    for family, table in SKELETON_FAMILIES.items():
        if all(table[k] in plain for k in REQUIRED_LANDMARKS):
            return family, {k: plain[v] for k, v in table.items() if v in plain}
    found = match_landmarks_by_name(motion.names, motion.parents)
    missing = [k for k in REQUIRED_LANDMARKS if k not in found]
    if missing:
        raise MvcaptureError(
            f"{motion.source}: cannot map this skeleton to H36M-17; it lacks joints for: {', '.join(missing)}. "
            "Rename the joints (e.g. LeftUpLeg/LeftLeg/LeftFoot, LeftArm/LeftForeArm/LeftHand, Neck, Head) "
            "or use a CMU/iClone or Mixamo rig")
    return "name-match", found


def landmarks_to_h36m(lm: dict[str, np.ndarray]) -> np.ndarray:
    """Anatomical landmarks (each (T, 3), y up, metres) → (T, 17, 3) H36M-17.

    Derived the way `core.skeleton.coco_to_h36m` derives them from a detector, so synthetic 2D inputs
    look like real ones: pelvis = mid-hips, thorax = mid-shoulders, spine = mid(pelvis, thorax);
    neck/nose (9) = nose: eyes' midpoint moved NOSE_BELOW_EYES_M down the neck→skull direction, or
    without eyes NOSE_AHEAD_OF_HEAD_M in front of the skull base; head top (10) = the rig's head-top
    joint if it has one, else skull base + HEAD_TOP_EXTENSION × (skull base − thorax).
    """
    out = np.empty(lm["head"].shape[:-1] + (17, 3))
    index = {name: i for i, name in enumerate(H36M17_JOINTS)}
    for name in ("r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "l_shoulder", "l_elbow", "l_wrist",
                 "r_shoulder", "r_elbow", "r_wrist"):
        out[..., index[name], :] = lm[name]
    pelvis = 0.5 * (lm["l_hip"] + lm["r_hip"])
    thorax = 0.5 * (lm["l_shoulder"] + lm["r_shoulder"])
    out[..., 0, :] = pelvis
    out[..., 7, :] = 0.5 * (pelvis + thorax)
    out[..., 8, :] = thorax
    head = lm["head"]
    up = _unit(head - lm["neck"])
    if "l_eye" in lm and "r_eye" in lm:
        nose = 0.5 * (lm["l_eye"] + lm["r_eye"]) - NOSE_BELOW_EYES_M * up
    else:
        forward = _unit(np.cross(lm["l_shoulder"] - lm["r_shoulder"], head - thorax))
        nose = head + NOSE_AHEAD_OF_HEAD_M * forward
    out[..., 9, :] = nose
    out[..., 10, :] = lm["head_top"] if "head_top" in lm else head + HEAD_TOP_EXTENSION * (head - thorax)
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def detect_unit(motion: BvhMotion, landmarks: dict[str, int]) -> tuple[str, float]:
    """Length unit of the file from its leg bones: (name, metres per unit).

    The hip→knee→ankle bone lengths (offset norms, so independent of the rest pose) are compared
    with an adult leg (EXPECTED_LEG_M); the unit of UNIT_SCALES that makes them closest wins.
    """
    lengths = []
    for side in "lr":
        total = 0.0
        for a, b in ((f"{side}_hip", f"{side}_knee"), (f"{side}_knee", f"{side}_ankle")):
            total += _chain_length(motion, landmarks[a], landmarks[b])
        lengths.append(total)
    leg = float(np.mean(lengths))
    if not leg > 0:
        raise MvcaptureError(f"{motion.source}: leg bones have zero length; cannot tell the file's unit")
    unit = min(UNIT_SCALES, key=lambda u: abs(np.log(leg * UNIT_SCALES[u] / EXPECTED_LEG_M)))
    return unit, UNIT_SCALES[unit]


def _chain_length(motion: BvhMotion, ancestor: int, joint: int) -> float:
    total = 0.0
    while joint != ancestor:
        if joint < 0:
            raise MvcaptureError(f"{motion.source}: joint {motion.names[ancestor]} is not an ancestor as expected")
        total += float(np.linalg.norm(motion.offsets[joint]))
        joint = int(motion.parents[joint])
    return total


def detect_up_axis(head: np.ndarray, ankles: np.ndarray) -> np.ndarray:
    """Unit vector (3,) of the file axis (±x, ±y, ±z) along which the head is usually above the ankles."""
    median = np.median(head - ankles, axis=0)
    axis = int(np.argmax(np.abs(median)))
    up = np.zeros(3)
    up[axis] = np.sign(median[axis]) or 1.0
    return up


def up_to_y_rotation(up: np.ndarray) -> np.ndarray:
    """(3, 3) proper rotation R (row vectors: p @ R.T) taking the file's up axis to +y."""
    up = _unit(np.asarray(up, dtype=np.float64))
    y = np.array([0.0, 1.0, 0.0])
    v = np.cross(up, y)
    c = float(up @ y)
    if np.linalg.norm(v) < 1e-9:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


_UP_AXES = {"x": (1, 0, 0), "-x": (-1, 0, 0), "y": (0, 1, 0), "-y": (0, -1, 0), "z": (0, 0, 1), "-z": (0, 0, -1)}


def resample(positions: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """(T, ...) samples at `src_fps` → linear interpolation at `dst_fps` over the same time span."""
    T = positions.shape[0]
    if T < 2 or abs(src_fps - dst_fps) < 1e-9:
        return positions
    duration = (T - 1) / src_fps
    t = np.arange(int(np.floor(duration * dst_fps + 1e-9)) + 1) / dst_fps * src_fps
    i0 = np.minimum(np.floor(t).astype(np.int64), T - 2)
    w = (t - i0).reshape((-1,) + (1,) * (positions.ndim - 1))
    return (1 - w) * positions[i0] + w * positions[i0 + 1]


def is_tpose_first_frame(pose: np.ndarray) -> bool:
    """True when frame 0 of a (T, 17, 3) metres clip is a prepended T-pose (a jump no motion makes)."""
    if pose.shape[0] < 3:
        return False
    rel = pose - pose[:, :1]
    step = np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean(-1)
    rest = np.percentile(step[1:], 99)
    return bool(step[0] > TPOSE_JUMP_M and step[0] > TPOSE_JUMP_RATIO * rest)


def bvh_to_h36m(source: Path | str | BvhMotion, fps: float | None = None, up_axis: str = "auto",
                unit: str = "auto", drop_first: bool | None = None) -> tuple[np.ndarray, float]:
    """A BVH file (or parsed motion) → H36M-17 world poses in metres.

    Args:
        source: path or `BvhMotion`.
        fps: resample to this rate (linear interpolation of positions); None keeps the file's rate.
        up_axis: "auto" (the axis along which the head is above the ankles) or one of x, -x, y, -y, z, -z.
        unit: "auto" (from leg bone lengths, see `detect_unit`) or a key of UNIT_SCALES.
        drop_first: drop frame 0 (converters such as the CMU → iClone one prepend a T-pose);
            None detects it (`is_tpose_first_frame`).

    Returns:
        (T, 17, 3) float64 metres in the canonical world frame: right-handed, +y up, the file's floor
        and heading otherwise kept (a subject facing +z has its left hip at +x), and the frame rate.
    """
    motion = source if isinstance(source, BvhMotion) else load_bvh(source)
    family, landmarks = find_landmarks(motion)
    if unit == "auto":
        unit, scale = detect_unit(motion, landmarks)
    elif unit in UNIT_SCALES:
        scale = UNIT_SCALES[unit]
    else:
        raise MvcaptureError(f"unknown unit {unit!r}; use auto or one of {', '.join(UNIT_SCALES)}")
    keys = list(landmarks)
    pos = motion.positions([landmarks[k] for k in keys]) * scale
    lm = {k: pos[:, i] for i, k in enumerate(keys)}
    if up_axis == "auto":
        up = detect_up_axis(lm["head"], 0.5 * (lm["l_ankle"] + lm["r_ankle"]))
    elif up_axis in _UP_AXES:
        up = np.array(_UP_AXES[up_axis], dtype=np.float64)
    else:
        raise MvcaptureError(f"unknown up axis {up_axis!r}; use auto or one of {', '.join(_UP_AXES)}")
    R = up_to_y_rotation(up)
    pose = landmarks_to_h36m({k: v @ R.T for k, v in lm.items()})
    if drop_first is None:
        drop_first = is_tpose_first_frame(pose)
    if drop_first:
        pose = pose[1:]
    log.debug("%s: family %s, unit %s, up %s, dropped first frame: %s", motion.source, family, unit, up, drop_first)
    out_fps = motion.fps if fps is None else float(fps)
    return resample(pose, motion.fps, out_fps), out_fps
