"""Left/right labels that stay continuous over time.

A pose detector sometimes exchanges an athlete's left and right sides for a few frames (MediaPipe on the
bundled recording: cam02, frames 41–81, the whole body; a lifter fed those frames mirrors its 3D there). Seen
over time such a swap is a jump: the left knee lands where the right one was a frame before. A Viterbi over
frames whose states say, per limb group (legs with the hips, arms with the shoulders), "as labelled" or "sides
exchanged" keeps the labels whose motion is continuous; a small cost per frame kept exchanged leaves the labels
as detected wherever the motion cannot tell (a static pose), and a small cost for legs and arms in different
states lets a group whose motion cannot tell (legs crossing) follow the other.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from mvcapture.core.skeleton import (COCO17_FLIP_PERMUTATION, COCO17_HIPS, COCO17_LIMB_GROUPS, COCO17_SHOULDERS,
                                     H36M17_FLIP_PERMUTATION, H36M17_HIPS, H36M17_LIMB_GROUPS, H36M17_SHOULDERS)

# Keeping a limb group exchanged costs this many torso lengths per second. A real detector swap gains about
# half a torso length of continuity at each of its two ends; on the bundled recording (60 fps) every cost
# from 0.18 to 0.6 per second recovers cam02's swapped frames as its 4-camera triangulation finds them, 3 per
# second (the per-frame cost of the 3D track, 0.05) misses most of them.
SWAP_COST_2D_PER_S = 0.3
# Keeping the legs and the arms in different states (one exchanged, the other not) costs this much more per
# second: MediaPipe exchanges whole bodies, and where one group's motion cannot tell (legs crossing) it follows
# the other; a detector's legs-only swap (RTMPose) gains more at its two ends than a second of this costs. On the
# bundled recording the live repair of cam02 goes from 90 % to 99 % of frames agreeing with the reference.
SPLIT_COST_2D_PER_S = 0.3
MIN_CONF_2D = 0.3  # a keypoint below this confidence does not count towards the motion
TORSO_FRAMES = 300  # the live repair's torso length: the median over this many recent frames

_LAYOUTS = {
    "h36m17": (H36M17_FLIP_PERMUTATION, H36M17_LIMB_GROUPS, H36M17_SHOULDERS, H36M17_HIPS),
    "coco17": (COCO17_FLIP_PERMUTATION, COCO17_LIMB_GROUPS, COCO17_SHOULDERS, COCO17_HIPS),
}


def viterbi_path(unary: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """The cheapest state sequence (Viterbi).

    Args:
        unary: (T, S) cost of each state per frame.
        trans: (T, S, S) cost of moving from state [prev] to state [cur] into frame t (trans[0] unused).

    Returns:
        (T,) int.
    """
    T, S = unary.shape
    cost = unary[0].copy()
    back = np.zeros((T, S), int)
    for t in range(1, T):
        total = cost[:, None] + trans[t]
        back[t] = np.argmin(total, axis=0)
        cost = total[back[t], np.arange(S)] + unary[t]
    path = np.zeros(T, int)
    path[-1] = int(np.argmin(cost))
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _group_states(groups: int) -> np.ndarray:
    """(2^G, G) every combination of "as labelled" (0) / "exchanged" (1) over G limb groups."""
    return np.array(np.meshgrid(*[[0, 1]] * groups, indexing="ij")).reshape(groups, -1).T


def torso_lengths(points: np.ndarray, shoulders: tuple, hips: tuple) -> np.ndarray:
    """(..., J, D) points → (...,) distance mid-shoulders to mid-hips (NaN where one of them is missing)."""
    (ls, rs), (lh, rh) = shoulders, hips
    return np.linalg.norm(0.5 * (points[..., ls, :] + points[..., rs, :])
                          - 0.5 * (points[..., lh, :] + points[..., rh, :]), axis=-1)


def median_torso_length(points: np.ndarray, shoulders: tuple, hips: tuple) -> float:
    """Median over frames of the torso length of (T, J, D) points (NaN where missing); 1.0 when no frame shows
    the torso."""
    torso = torso_lengths(points, shoulders, hips)
    return float(np.nanmedian(torso)) if np.isfinite(torso).any() else 1.0


def transition_costs(before: np.ndarray, after: np.ndarray, flip_permutation, group, scale: float) -> np.ndarray:
    """How far a group of joints moves from one frame to the next, each frame taken as labelled (state 0) or
    with the group's left and right exchanged (state 1).

    Args:
        before, after: (..., J, D) points of consecutive frames (NaN where missing: those joints do not count).
        flip_permutation: (J,) each joint's mirror. group: the group's joint indices (closed under the mirror).
        scale: the unit of the result (the torso length).

    Returns:
        (2 prev, 2 cur, ...) the group's mean joint displacement over `scale` (0 where no joint is seen twice).
    """
    g = np.asarray(group)
    mirror = np.asarray(flip_permutation)[g]
    prev = np.stack([before[..., g, :], before[..., mirror, :]])
    cur = np.stack([after[..., g, :], after[..., mirror, :]])
    d = np.linalg.norm(cur[None] - prev[:, None], axis=-1)                        # (2, 2, ..., G)
    seen = np.isfinite(d)
    return np.where(seen, d, 0.0).sum(-1) / np.maximum(seen.sum(-1), 1) / scale


def continuous_limb_order(points: np.ndarray, flip_permutation, limb_groups, shoulders: tuple, hips: tuple,
                          swap_cost: float, split_cost: float = 0.0) -> np.ndarray:
    """Per frame, the joint order that keeps each limb group's left and right sides continuous over time.

    A Viterbi over frames whose states say, per group, "as labelled" or "sides exchanged" (2^G states): the
    transition cost is each group's mean joint displacement between consecutive frames in torso lengths
    (median over the track), summed over the groups; each exchanged group costs `swap_cost` per frame, and
    states where the groups disagree cost `split_cost` more (0: every cost splits by group, so the groups are
    decided independently).

    Args:
        points: (T, J, D) points (2D pixels or 3D metres; NaN where missing).
        flip_permutation: (J,) each joint's left/right mirror.
        limb_groups: joint indices per group, each group closed under the mirror.
        shoulders, hips: (left, right) joint indices, for the torso length.
        swap_cost, split_cost: torso lengths per frame.

    Returns:
        (T, J) int: the source joint of each joint per frame (np.arange(J) where nothing is exchanged).
    """
    points = np.asarray(points, np.float64)
    T, J = points.shape[:2]
    if T < 2:
        return np.tile(np.arange(J), (T, 1))
    perm = np.asarray(flip_permutation)
    scale = median_torso_length(points, shoulders, hips)
    states = _group_states(len(limb_groups))                                        # (S, G)
    trans = np.zeros((T, len(states), len(states)))
    trans[1:] = np.moveaxis(_state_transitions(points[:-1], points[1:], perm, limb_groups, states, scale), -1, 0)
    unary = np.tile(_state_costs(states, swap_cost, split_cost), (T, 1))
    return _state_orders(states, perm, limb_groups)[viterbi_path(unary, trans)]


def _state_transitions(before: np.ndarray, after: np.ndarray, perm: np.ndarray, groups, states: np.ndarray,
                       scale: float) -> np.ndarray:
    """(S prev, S cur, ...) cost of moving between the joint states (S, G) from `before` to `after` ((..., J, D)
    points): each group's `transition_costs` for its part of the two states, summed over the groups."""
    total = 0.0
    for k, group in enumerate(groups):
        s = states[:, k]
        total = total + transition_costs(before, after, perm, group, scale)[s[:, None], s[None, :]]
    return total


def _state_orders(states: np.ndarray, perm: np.ndarray, groups) -> np.ndarray:
    """(S, G) joint states (1 = the group's sides exchanged) → (S, J) the source joint of each joint per state."""
    order = np.tile(np.arange(len(perm)), (len(states), 1))
    for k, group in enumerate(groups):
        g = np.asarray(group)
        order[np.ix_(states[:, k] == 1, g)] = perm[g]
    return order


def _state_costs(states: np.ndarray, swap_cost: float, split_cost: float) -> np.ndarray:
    """(S,) per-frame cost of each joint state (S, G): `swap_cost` per exchanged group, `split_cost` where the
    groups disagree."""
    return swap_cost * states.sum(1) + split_cost * (states.min(1) != states.max(1))


def _layout_for(layout: str, fps: float) -> tuple:
    """The (flip permutation, limb groups, shoulders, hips) of `layout`, after checking it and `fps`."""
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(_LAYOUTS)}, got {layout!r}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return _LAYOUTS[layout]


def repair_side_swaps(kp2d_px: np.ndarray, conf: np.ndarray, fps: float, layout: str = "h36m17",
                      swap_cost_per_s: float = SWAP_COST_2D_PER_S, split_cost_per_s: float = SPLIT_COST_2D_PER_S
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One view's 2D keypoints with the detector's left/right swaps undone (`continuous_limb_order`, legs and
    arms decided jointly).

    Args:
        kp2d_px: (T, 17, 2) keypoints in pixels, joint order `layout` ("h36m17" or "coco17").
        conf: (T, 17) confidences in [0, 1]; keypoints below `MIN_CONF_2D` do not count towards the motion.
        fps: frames per second of the track (the swap cost is per second).
        swap_cost_per_s: torso lengths per second of a limb group kept exchanged.
        split_cost_per_s: torso lengths per second of legs and arms in different states.

    Returns:
        kp2d_px (T, 17, 2) and conf (T, 17) relabelled (same dtypes), and order (T, 17) int: the source joint
        of each joint per frame (np.arange(17) where nothing was exchanged).
    """
    perm, groups, shoulders, hips = _layout_for(layout, fps)
    kp2d_px, conf = np.asarray(kp2d_px), np.asarray(conf)
    if kp2d_px.ndim != 3 or kp2d_px.shape[1:] != (17, 2) or conf.shape != kp2d_px.shape[:2]:
        raise ValueError(f"kp2d_px must be (T, 17, 2) and conf (T, 17), got {kp2d_px.shape} and {conf.shape}")
    points = np.where((conf >= MIN_CONF_2D)[..., None], kp2d_px, np.nan)
    order = continuous_limb_order(points, perm, groups, shoulders, hips, swap_cost_per_s / float(fps),
                                  split_cost_per_s / float(fps))
    rows = np.arange(len(order))[:, None]
    return kp2d_px[rows, order], conf[rows, order], order


class OnlineSideRepair:
    """`repair_side_swaps` for a live stream: frame by frame, each limb group's labelling decided at once from
    the whole past (the forward pass of the same Viterbi, with the torso length of the frames so far: a swap
    is undone from the frame it starts in, and the labels stay undone until the motion jumps back; where limbs
    cross, what follows cannot correct the choice as it does offline, but the other group's clear motion can).

    Args:
        fps: frames per second of the stream (the swap cost is per second).
        layout: joint order, "h36m17" or "coco17".
        swap_cost_per_s: torso lengths per second of a limb group kept exchanged.
        split_cost_per_s: torso lengths per second of legs and arms in different states.
    """

    def __init__(self, fps: float, layout: str = "h36m17", swap_cost_per_s: float = SWAP_COST_2D_PER_S,
                 split_cost_per_s: float = SPLIT_COST_2D_PER_S):
        perm, self.groups, self.shoulders, self.hips = _layout_for(layout, fps)
        self.perm = np.asarray(perm)
        self.fps = float(fps)
        self.states = _group_states(len(self.groups))                               # (S, G)
        self.state_cost = _state_costs(self.states, swap_cost_per_s / self.fps, split_cost_per_s / self.fps)
        self.state_orders = _state_orders(self.states, self.perm, self.groups)    # (S, 17)
        self.reset()

    def reset(self) -> None:
        """Forget the past (a new take or a lost athlete)."""
        self._previous: np.ndarray | None = None  # (17, 2) the last frame as detected, NaN where unseen
        self._cost = np.zeros(len(self.states))
        self._torso: deque = deque(maxlen=TORSO_FRAMES)

    def push(self, kp2d_px: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One frame: kp2d_px (17, 2) pixels, conf (17,) → the frame relabelled (same shapes) and its order (17,)."""
        kp2d_px, conf = np.asarray(kp2d_px), np.asarray(conf)
        points = np.where((conf >= MIN_CONF_2D)[:, None], kp2d_px, np.nan).astype(np.float64)
        torso = float(torso_lengths(points, self.shoulders, self.hips))
        if torso > 0:  # False for NaN: the torso not seen
            self._torso.append(torso)
        scale = float(np.median(self._torso)) if self._torso else 1.0
        if self._previous is None:
            self._cost = self.state_cost.copy()
        else:
            trans = _state_transitions(self._previous, points, self.perm, self.groups, self.states, scale)
            self._cost = (self._cost[:, None] + trans).min(0) + self.state_cost
            self._cost -= self._cost.min()
        order = self.state_orders[int(np.argmin(self._cost))].copy()  # the caller may keep or change it
        self._previous = points
        return kp2d_px[order], conf[order], order
