"""Athlete tracking: a bystander crossing in front of / behind the athlete, gap bridging, picking another."""

from __future__ import annotations

import numpy as np
import pytest

from mvcapture.detect import AthleteTracker, Person, choose_athlete, track_people
from mvcapture.errors import MvcaptureError

IMAGE = (640, 360)
T = 60


def box_at(cx, cy, w, h):
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def crossing(occluded: str, size_b=(60.0, 150.0), seed=0):
    """Athlete A (big, walks right) and bystander B (walks left) cross at frame ~30.

    occluded: which one the detector misses while they overlap ("athlete", "bystander" or "none").
    Returns per-frame boxes, and per-frame index of A's box (-1 when A is not detected).
    """
    rng = np.random.default_rng(seed)
    boxes, a_index = [], []
    for t in range(T):
        a = box_at(100 + 7.0 * t, 200, 80, 200) + rng.normal(0, 1.0, 4)
        b = box_at(520 - 7.0 * t, 190, *size_b) + rng.normal(0, 1.0, 4)
        overlapping = abs((100 + 7.0 * t) - (520 - 7.0 * t)) < 50
        frame = []
        if not (overlapping and occluded == "bystander"):
            frame.append(b)
        if not (overlapping and occluded == "athlete"):
            frame.insert(t % 2, a)                       # detector order changes from frame to frame
        boxes.append(np.array(frame).reshape(-1, 4))
        a_index.append(next((i for i, bx in enumerate(frame) if bx is a), -1))
    return boxes, np.array(a_index)


@pytest.mark.parametrize("occluded", ["none", "athlete", "bystander"])
def test_athlete_is_kept_through_a_crossing(occluded):
    boxes, a_index = crossing(occluded)
    ids = track_people(boxes)
    athlete = choose_athlete(boxes, ids, IMAGE)
    for t in range(T):
        hits = np.flatnonzero(ids[t] == athlete)
        if a_index[t] < 0:
            assert len(hits) == 0, f"frame {t}: athlete hidden but a box was given to them"
        else:
            assert list(hits) == [a_index[t]], f"frame {t}: athlete track lost or swapped"
    if occluded == "athlete":
        assert (a_index < 0).sum() >= 3                  # the test really hides the athlete for a while


def test_equal_sized_people_crossing_keep_their_ids():
    boxes, a_index = crossing("none", size_b=(80.0, 200.0), seed=1)
    ids = track_people(boxes)
    a_ids = {int(ids[t][a_index[t]]) for t in range(T)}
    assert len(a_ids) == 1
    assert len(np.unique(np.concatenate(ids))) == 2


def test_gap_bridging_keeps_the_id_after_a_short_dropout_only():
    def walk(missing):
        return [np.zeros((0, 4)) if t in missing else box_at(100 + 6.0 * t, 200, 80, 200)[None] for t in range(40)]

    short = track_people(walk(set(range(10, 20))), max_gap=15)
    assert len(np.unique(np.concatenate(short))) == 1    # 10 missing frames bridged, moving meanwhile
    long = track_people(walk(set(range(10, 30))), max_gap=15)
    assert len(np.unique(np.concatenate(long))) == 2     # 20 missing frames: a new track


def test_default_is_the_biggest_most_central_person():
    boxes = [np.array([box_at(320, 180, 80, 200), box_at(40, 180, 80, 200), box_at(330, 100, 20, 50)])] * 5
    ids = track_people(boxes)
    assert choose_athlete(boxes, ids, IMAGE) == ids[0][0]


def test_user_picks_another_person_by_id_or_click():
    boxes, a_index = crossing("none")
    ids = track_people(boxes)
    a_id = ids[0][a_index[0]]
    b_id = ids[0][1 - a_index[0]]
    assert choose_athlete(boxes, ids, IMAGE, athlete=int(b_id)) == b_id
    bx = boxes[5][1 - a_index[5]]
    assert choose_athlete(boxes, ids, IMAGE, athlete=(5, (bx[0] + bx[2]) / 2, bx[1] + 5)) == b_id
    assert choose_athlete(boxes, ids, IMAGE, athlete=(5, 0.0, 0.0)) == a_id          # nearest centre
    with pytest.raises(MvcaptureError, match="no person track 99"):
        choose_athlete(boxes, ids, IMAGE, athlete=99)
    empty = [np.zeros((0, 4))] * 3
    with pytest.raises(MvcaptureError, match="nobody was detected in frame 1"):
        choose_athlete(empty, track_people(empty), IMAGE, athlete=(1, 10.0, 10.0))
    assert choose_athlete(empty, track_people(empty), IMAGE) is None


def test_live_tracker_follows_the_athlete_and_reports_absence():
    boxes, a_index = crossing("athlete")
    tracker = AthleteTracker(IMAGE)
    zeros = (np.zeros((17, 2)), np.zeros(17))
    for t in range(T):
        people = [Person(b, 0.9, *zeros) for b in boxes[t]]
        found = tracker.update(people)
        if a_index[t] < 0:
            assert found is None
        else:
            assert found is people[a_index[t]]
    b = [p for p in people if p is not found][0]
    tracker.pick((b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2)
    np.testing.assert_array_equal(tracker.update([Person(bx, 0.9, *zeros) for bx in boxes[-1]]).box, b.box)
