"""Follow people through a clip by their boxes and pick the athlete among coach and bystanders.

Boxes are matched frame to frame (Hungarian assignment on centre distance, size change and IoU against
a constant-velocity prediction); a track survives short dropouts (occlusion, a missed detection) and
is picked up again where its motion says it should be. The athlete is by default the biggest, most
central and longest-seen person; the user can pick another by track id or by clicking on a frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from mvcapture.detect.backends import Person
from mvcapture.errors import MvcaptureError

log = logging.getLogger(__name__)

# A frame (0-based index) and a pixel (x, y) in it, e.g. where the user clicked on the athlete.
ClickPoint = tuple[int, float, float]
# How the athlete is chosen: None = automatic, a track id, or a click point.
AthleteChoice = int | ClickPoint | None

_NO_MATCH = 1e6


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (N, 4) and b (M, 4), x1 y1 x2 y2 → (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass
class _Track:
    id: int
    centre: np.ndarray       # (2,) px at the last match
    size: np.ndarray         # (2,) width, height px at the last match
    velocity: np.ndarray     # (2,) px per frame
    last_frame: int
    hits: int = 1

    def predicted_box(self, frame: int) -> np.ndarray:
        centre = self.centre + self.velocity * (frame - self.last_frame)
        return np.concatenate([centre - self.size / 2, centre + self.size / 2])


class BoxTracker:
    """Online multi-person tracker over person boxes.

    Args:
        max_gap: frames a track may go unseen and still be picked up again (gap bridging).
        gate: largest centre jump from the predicted position, in box heights, for a match (grows by
            a fifth per missed frame).
        velocity_smoothing: weight of a new velocity measurement in the running velocity (0..1].
    """

    def __init__(self, max_gap: int = 15, gate: float = 0.75, velocity_smoothing: float = 0.5):
        self.max_gap = max_gap
        self.gate = gate
        self.velocity_smoothing = velocity_smoothing
        self.tracks: list[_Track] = []
        self.frame = -1
        self._next_id = 0

    def _cost(self, track: _Track, boxes: np.ndarray) -> np.ndarray:
        dt = self.frame - track.last_frame
        pred = track.predicted_box(self.frame)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        sizes = np.maximum(boxes[:, 2:] - boxes[:, :2], 1e-3)
        height = max(track.size[1], 1e-3)
        jump = np.linalg.norm(centres - (pred[:2] + pred[2:]) / 2, axis=1) / height
        size_change = np.abs(np.log(sizes / np.maximum(track.size, 1e-3))).sum(axis=1)
        overlap = box_iou(pred, boxes)[0]
        # A track seen in the last frame is a likelier owner than one coasting through a dropout.
        cost = jump + size_change + 0.5 * (1.0 - overlap) + 0.05 * (dt - 1)
        allowed = (jump < self.gate * (1.0 + 0.2 * (dt - 1))) & (size_change < np.log(4.0))
        return np.where(allowed, cost, _NO_MATCH)

    def update(self, boxes: np.ndarray) -> np.ndarray:
        """Feed the next frame's boxes (N, 4) px; returns their track ids (N,)."""
        self.frame += 1
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self.tracks = [t for t in self.tracks if self.frame - t.last_frame <= self.max_gap + 1]
        ids = np.full(len(boxes), -1, dtype=np.int64)
        if self.tracks and len(boxes):
            cost = np.stack([self._cost(t, boxes) for t in self.tracks])
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] < _NO_MATCH:
                    self._update_track(self.tracks[r], boxes[c])
                    ids[c] = self.tracks[r].id
        for c in np.flatnonzero(ids < 0):
            box = boxes[c]
            track = _Track(self._next_id, (box[:2] + box[2:]) / 2, box[2:] - box[:2], np.zeros(2), self.frame)
            self.tracks.append(track)
            ids[c] = track.id
            self._next_id += 1
        return ids

    def _update_track(self, track: _Track, box: np.ndarray) -> None:
        centre = (box[:2] + box[2:]) / 2
        dt = self.frame - track.last_frame
        measured = (centre - track.centre) / dt
        a = self.velocity_smoothing
        track.velocity = measured if track.hits == 1 else (1 - a) * track.velocity + a * measured
        track.centre, track.size, track.last_frame = centre, box[2:] - box[:2], self.frame
        track.hits += 1


def track_people(boxes_per_frame: Sequence[np.ndarray], max_gap: int = 15) -> list[np.ndarray]:
    """Track ids for every box of every frame: list of (N_t,) int arrays, same order as the boxes."""
    tracker = BoxTracker(max_gap=max_gap)
    return [tracker.update(boxes) for boxes in boxes_per_frame]


def prominence(boxes: np.ndarray, image_size: Sequence[float]) -> np.ndarray:
    """How athlete-like each box (N, 4) is: size relative to the image times closeness to its centre."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    width, height = float(image_size[0]), float(image_size[1])
    size = np.sqrt(np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1) / (width * height))
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    off_centre = np.linalg.norm((centre - [width / 2, height / 2]) / [width / 2, height / 2], axis=1)
    return size * np.clip(1.0 - 0.5 * off_centre, 0.1, None)


def choose_athlete(boxes_per_frame: Sequence[np.ndarray], ids_per_frame: Sequence[np.ndarray],
                   image_size: Sequence[float], athlete: AthleteChoice = None) -> int | None:
    """The athlete's track id.

    Args:
        boxes_per_frame, ids_per_frame: per frame (N_t, 4) boxes px and (N_t,) track ids.
        image_size: (width, height) px.
        athlete: None = the track with the largest summed prominence (big, central, seen long);
            an int = that track id; (frame, x, y) = the person whose box holds that pixel in that frame
            (the smallest such box, else the nearest box centre).

    Returns:
        The track id, or None when nobody was detected in the whole clip.

    Raises:
        MvcaptureError: unknown track id, or nobody at the clicked point.
    """
    known = np.unique(np.concatenate([np.zeros(0, np.int64)] + [np.asarray(i, np.int64) for i in ids_per_frame]))
    if athlete is None:
        if not len(known):
            return None
        totals: dict[int, float] = {}
        for boxes, ids in zip(boxes_per_frame, ids_per_frame):
            for track_id, p in zip(ids, prominence(boxes, image_size)):
                totals[int(track_id)] = totals.get(int(track_id), 0.0) + float(p)
        return max(totals, key=totals.__getitem__)
    if isinstance(athlete, (int, np.integer)):
        if int(athlete) not in known:
            raise MvcaptureError(f"there is no person track {athlete}; tracks found: "
                                 f"{', '.join(map(str, known)) or 'none'}")
        return int(athlete)
    frame, x, y = athlete
    frame = int(frame)
    if not 0 <= frame < len(boxes_per_frame) or not len(boxes_per_frame[frame]):
        raise MvcaptureError(f"nobody was detected in frame {frame}; pick the athlete on another frame")
    boxes = np.asarray(boxes_per_frame[frame], dtype=np.float64).reshape(-1, 4)
    inside = (boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y <= boxes[:, 3])
    if inside.any():
        areas = np.where(inside, np.prod(boxes[:, 2:] - boxes[:, :2], axis=1), np.inf)
        return int(ids_per_frame[frame][int(np.argmin(areas))])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    nearest = int(np.argmin(np.linalg.norm(centres - [x, y], axis=1)))
    return int(ids_per_frame[frame][nearest])


class AthleteTracker:
    """Live (frame by frame) version: track everyone, return the athlete's detection or None.

    Args:
        image_size: (width, height) px.
        athlete_id: follow this track id; None = the most prominent person, re-chosen when lost.
        max_gap: as for `BoxTracker`.
    """

    def __init__(self, image_size: Sequence[float], athlete_id: int | None = None, max_gap: int = 15):
        self.image_size = image_size
        self.athlete_id = athlete_id
        self.tracker = BoxTracker(max_gap=max_gap)
        self._last: tuple[np.ndarray, np.ndarray] = (np.zeros((0, 4)), np.zeros(0, np.int64))

    def update(self, people: list[Person]) -> Person | None:
        """Feed one frame's `Person` list; returns the athlete's `Person`, or None when not seen."""
        boxes = np.array([p.box for p in people], dtype=np.float64).reshape(-1, 4)
        ids = self.tracker.update(boxes)
        self._last = (boxes, ids)
        alive = {t.id for t in self.tracker.tracks}
        if (self.athlete_id is None or self.athlete_id not in alive) and len(ids):
            self.athlete_id = int(ids[int(np.argmax(prominence(boxes, self.image_size)))])
        hits = np.flatnonzero(ids == self.athlete_id)
        return people[int(hits[0])] if len(hits) else None

    def pick(self, x: float, y: float) -> int:
        """Follow the person under pixel (x, y) of the last frame from now on; returns their track id."""
        boxes, ids = self._last
        self.athlete_id = choose_athlete([boxes], [ids], self.image_size, (0, x, y))
        return self.athlete_id


def box_from_keypoints(keypoints: np.ndarray, scores: np.ndarray, min_score: float = 0.3,
                       expansion: float = 1.0) -> np.ndarray | None:
    """The box (4,) x1 y1 x2 y2 px around the keypoints (17, 2) px whose score (17,) is at least `min_score`,
    grown about its centre by `expansion`; None when fewer than two keypoints are that confident."""
    keypoints = np.asarray(keypoints, np.float64).reshape(-1, 2)
    good = keypoints[np.asarray(scores, np.float64).reshape(-1) >= min_score]
    if len(good) < 2:
        return None
    lo, hi = good.min(axis=0), good.max(axis=0)
    centre, half = (lo + hi) / 2, np.maximum(hi - lo, 1.0) * expansion / 2
    return np.concatenate([centre - half, centre + half])


# Why the person detector ran for a frame (`KeypointTracker.reasons` counts them).
DETECT_REASONS = ("scheduled", "no athlete", "low confidence", "drift")
# A background detection whose athlete box overlaps the tracked keypoints' box less than this (IoU) means
# tracking drifted off the athlete.
LATE_MIN_IOU = 0.3


class KeypointTracker:
    """One view's athlete in live mode: the person detector runs every `detect_every` frames and whenever
    tracking fails; in between the pose model runs in a box taken from the athlete's last keypoints (as
    rtmlib's PoseTracker does). The athlete's identity is kept by an `AthleteTracker` fed the detector's
    boxes, and on tracked frames the keypoints' box.

    Per frame: `plan()` says whether the detector must run (None) or gives the box to use; after a
    detector run `detected(boxes)` gives the athlete's box (or None); after the pose model `update(...)`
    says whether the keypoints are good enough to follow (else the detector runs next, and the caller may
    re-detect at once). A scheduled run may instead go to the background while tracking continues
    (`detection_due`, `detecting_in_background`, later `detected_late`), or wait while the background
    detector is busy (`postpone_detection`).

    Args:
        image_size: (width, height) px.
        detect_every: frames between scheduled detector runs (1 = every frame, no tracking).
        min_conf: mean keypoint score under which the athlete counts as lost.
        max_drift: largest frame-to-frame move of the keypoints' box centre, in box heights, and of its
            size, as a log ratio, before the box is no longer trusted.
        expansion: the pose model's box is the keypoints' box grown by this factor (rtmlib's pose
            model pads every box by another 1.25).
        athlete_id, max_gap: as for `AthleteTracker`.
        phase: the first scheduled detector run comes this many frames early (views with different
            phases do not run the detector in the same frame pair: steadier frame times).
        detect_every_s: schedule by the clock instead: a run when this many seconds have passed since the
            last one (frame times given by `at`), whatever the frame rate; `phase_s` then brings the first
            scheduled run that many seconds early.

    Attributes:
        reasons: detector runs per reason (`DETECT_REASONS`).
    """

    def __init__(self, image_size: Sequence[float], detect_every: int = 10, min_conf: float = 0.3,
                 max_drift: float = 0.5, expansion: float = 1.25, athlete_id: int | None = None,
                 max_gap: int = 15, phase: int = 0, detect_every_s: float | None = None, phase_s: float = 0.0):
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1 frame, got {detect_every}")
        if detect_every_s is not None and detect_every_s <= 0:
            raise ValueError(f"detect_every_s must be positive, got {detect_every_s}")
        self.detect_every_s = None if detect_every_s is None else float(detect_every_s)
        self._phase_s = float(phase_s)
        self._t_s: float | None = None          # time of the current frame (`at`)
        self._detected_at_s: float | None = None   # time of the last run (less the phase, for the first)
        self.image_size = tuple(float(v) for v in image_size)
        self.detect_every = int(detect_every)
        self.min_conf = float(min_conf)
        self.max_drift = float(max_drift)
        self.expansion = float(expansion)
        self.athlete = AthleteTracker(image_size, athlete_id, max(max_gap, detect_every + 1))
        self.reasons = dict.fromkeys(DETECT_REASONS, 0)
        self._phase = int(phase) % self.detect_every
        self._keypoint_box: np.ndarray | None = None   # tight box of the last accepted keypoints
        self._since_detection = 0
        self._failure: str | None = "no athlete"
        self._postponed = False
        self._last_detection = self.athlete._last
        self.generation = 0   # detector runs in the foreground so far (a late result of an older one is stale)

    @property
    def detections(self) -> int:
        """Detector runs so far."""
        return sum(self.reasons.values())

    def at(self, t_s: float) -> None:
        """The time (s, any monotonic clock) of the frame about to be planned (for `detect_every_s`)."""
        self._t_s = float(t_s)

    def _schedule_due(self) -> bool:
        if self.detect_every_s is not None and self._t_s is not None and self._detected_at_s is not None:
            return self._t_s - self._detected_at_s >= self.detect_every_s
        return self._since_detection >= self.detect_every

    @property
    def overdue(self) -> float:
        """How far past its schedule the next scheduled run is: seconds with `detect_every_s`, else frames
        (negative while not due yet)."""
        if self.detect_every_s is not None and self._t_s is not None and self._detected_at_s is not None:
            return self._t_s - self._detected_at_s - self.detect_every_s
        return float(self._since_detection - self.detect_every)

    def _ran_detector(self) -> None:
        self._detected_at_s = None if self._t_s is None else self._t_s - self._phase_s
        self._phase_s = 0.0

    def plan(self) -> np.ndarray | None:
        """Start a frame: the box (4,) px to run the pose model in, or None when the detector must run."""
        reason = self._failure
        if reason is None and self._schedule_due() and not self._postponed:
            reason = "scheduled"
        self._postponed = False
        if reason is not None:
            self.reasons[reason] += 1
            self._since_detection = 0
            return None
        self._since_detection += 1
        return self._grown(self._keypoint_box)

    @property
    def detection_due(self) -> bool:
        """A scheduled detector run is due while tracking works (so it may run in the background)."""
        return self._failure is None and self._schedule_due()

    def postpone_detection(self) -> None:
        """The scheduled run that is due cannot start in the background now (the detector is busy, e.g.
        with the other view): this frame is tracked (`plan` gives a box) and the run is due again on the
        next one. A tracking failure still sends `plan` to the detector at once."""
        self._postponed = True

    def detecting_in_background(self) -> None:
        """The due run was started on this frame in the background: tracking goes on (`plan` gives a box);
        its boxes come back through `detected_late`."""
        self.reasons["scheduled"] += 1
        self._since_detection, self._phase = self._phase, 0
        self._ran_detector()

    def detected_late(self, boxes: np.ndarray, scores: np.ndarray | None = None, generation: int | None = None) -> bool:
        """The person boxes (N, 4) px of a background detector run on an earlier frame (a few frames back).
        The athlete's track (identity) is updated; when the athlete is not among them, or their box overlaps
        the tracked keypoints' box less than `LATE_MIN_IOU`, the detector runs on the next frame. Results of
        a run started before the last foreground run (`generation` older) are ignored. Returns whether the
        tracking was confirmed."""
        if generation is not None and generation != self.generation:
            return False
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, np.float64)
        athlete = self.athlete.update([Person(b, float(s), np.zeros((17, 2)), np.zeros(17))
                                       for b, s in zip(boxes, scores)])
        self._last_detection = self.athlete._last
        if self._failure is not None or self._keypoint_box is None:
            return False
        if athlete is None:
            self._failure, self._keypoint_box = "no athlete", None
            return False
        if box_iou(athlete.box, self._keypoint_box)[0, 0] < LATE_MIN_IOU:
            self._failure, self._keypoint_box = "drift", None
            return False
        return True

    def detected(self, boxes: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray | None:
        """The detector's person boxes (N, 4) px (and scores (N,)) of this frame → the athlete's box (4,),
        or None when the athlete is not among them (the detector runs again next frame)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, np.float64)
        people = [Person(b, float(s), np.zeros((17, 2)), np.zeros(17)) for b, s in zip(boxes, scores)]
        athlete = self.athlete.update(people)
        self._last_detection = self.athlete._last
        self._since_detection, self._phase = 1 + self._phase, 0
        self._ran_detector()
        self.generation += 1
        if athlete is None:
            self._failure, self._keypoint_box = "no athlete", None
            return None
        self._failure = None
        return athlete.box.copy()

    def update(self, keypoints: np.ndarray, scores: np.ndarray, detected: bool) -> bool:
        """The pose model's keypoints (17, 2) px and scores (17,) in this frame's box; `detected` says
        whether the box came from the detector. Returns True when they are followed next frame, False
        when tracking failed (low confidence, lost, drift: the detector runs next frame)."""
        scores = np.asarray(scores, np.float64)
        box = box_from_keypoints(keypoints, scores, self.min_conf)
        failure = None
        if box is None:
            failure = "no athlete"
        elif scores.mean() < self.min_conf:
            failure = "low confidence"
        elif self._keypoint_box is not None and not detected and self._drifted(self._keypoint_box, box):
            failure = "drift"
        if failure is not None:
            self._failure, self._keypoint_box = failure, None
            return False
        if not detected:   # keep the athlete's track (and its identity) moving with the keypoints
            self.athlete.update([Person(box, float(scores.mean()), np.asarray(keypoints), scores)])
        self._keypoint_box, self._failure = box, None
        return True

    def _drifted(self, before: np.ndarray, after: np.ndarray) -> bool:
        height = max(before[3] - before[1], 1.0)
        jump = np.linalg.norm((after[:2] + after[2:]) / 2 - (before[:2] + before[2:]) / 2) / height
        size_change = np.abs(np.log(np.maximum(after[2:] - after[:2], 1.0) / np.maximum(before[2:] - before[:2], 1.0)))
        return bool(jump > self.max_drift or size_change.max() > self.max_drift)

    def _grown(self, box: np.ndarray) -> np.ndarray:
        centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) * self.expansion / 2
        width, height = self.image_size
        grown = np.concatenate([centre - half, centre + half])
        return np.clip(grown, 0, [width, height, width, height])

    def pick(self, x: float, y: float) -> int:
        """Follow the person under pixel (x, y) of the last detector frame from now on (the detector runs
        next frame); returns their track id."""
        self.athlete._last = self._last_detection   # the boxes of every person, not just the tracked one
        track_id = self.athlete.pick(x, y)
        self._failure, self._keypoint_box = "scheduled", None
        return track_id
