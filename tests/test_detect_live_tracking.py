"""Live tracking: the person detector every k frames and whenever tracking fails, boxes from the last
keypoints in between, both views' crops in one pose-model run (generated ONNX models of known output:
the pose model puts its keypoints at fixed fractions of the bright rectangle it sees in its crop)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("rtmlib")

from mvcapture.detect.backends import RTMPoseDetector  # noqa: E402
from mvcapture.detect.testing import make_rtmpose_following, make_yolox_rectangles  # noqa: E402
from mvcapture.detect.tracking import KeypointTracker, box_from_keypoints  # noqa: E402

H, W = 240, 320
FX = np.linspace(0.1, 0.9, 17)
FY = np.linspace(0.05, 0.95, 17)


def frame(x: int, y: int = 60, w: int = 50, h: int = 120) -> np.ndarray:
    """A dark frame with the 'athlete': a bright rectangle [x, x + w) × [y, y + h)."""
    image = np.zeros((H, W, 3), np.uint8)
    if x is not None:
        image[y:y + h, x:x + w] = 255
    return image


def expected_keypoints(x: int, y: int = 60, w: int = 50, h: int = 120) -> np.ndarray:
    return np.stack([x + FX * w, y + FY * h], axis=1)


class Counting:
    """Counts the calls of one method of an object (the detector's stages, the session's runs)."""

    def __init__(self, obj, name: str):
        self.calls = 0
        original = getattr(obj, name)

        def wrapped(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        setattr(obj, name, wrapped)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("following")
    return (make_rtmpose_following(folder / "pose.onnx", FX, FY, (96, 128)),
            make_yolox_rectangles(folder / "det.onnx", (64, 64)))


@pytest.fixture
def detector(model_files):
    return RTMPoseDetector(*model_files, device="cpu")


@pytest.fixture(scope="module")
def tiny_lifter():
    import torch

    from mvcapture.lifter import create_lifter
    from mvcapture.lifter.runtime import Lifter

    torch.manual_seed(0)
    return Lifter(create_lifter("tiny"), device="cpu")


class _Session:
    """Stands in for an onnxruntime session and counts its runs (the real one's `run` is read-only)."""

    def __init__(self, session):
        self.session, self.runs, self.batches = session, 0, []

    def run(self, outputs, feeds):
        self.runs += 1
        self.batches.append(len(next(iter(feeds.values()))))
        return self.session.run(outputs, feeds)

    def __getattr__(self, name):
        return getattr(self.session, name)


def test_both_views_crops_in_one_batched_pose_run(detector):
    assert detector.pose_batched and detector.supports_tracking
    counting = _Session(detector.pose.session)
    detector.pose.session = counting
    frames = [frame(100), frame(180, 80)]
    boxes = np.array([[80, 40, 170, 200], [160, 60, 250, 220]], float)
    keypoints, scores = detector.pose_in_boxes(frames, boxes)
    assert counting.runs == 1 and counting.batches == [2]
    assert keypoints.shape == (2, 17, 2) and scores.shape == (2, 17)
    for v, (x, y) in enumerate(((100, 60), (180, 80))):
        assert np.abs(keypoints[v] - expected_keypoints(x, y)).max() < 2.0
    np.testing.assert_allclose(scores, 0.9, atol=1e-6)
    # the one-crop path gives the same keypoints
    one_kp, one_scores = detector.pose_in_box(frames[1], boxes[1])
    np.testing.assert_allclose(one_kp, keypoints[1], atol=1e-6)
    # a crop without the athlete: every score drops to 0.01
    _, lost = detector.pose_in_boxes([frame(None)], boxes[:1])
    np.testing.assert_allclose(lost, 0.01, atol=1e-6)


def test_boxes_follow_the_keypoints_between_detections(detector, tiny_lifter):
    """detect_every 100: the detector runs once per view; the athlete moves 4 px a frame and the keypoints
    follow it through the boxes taken from the last keypoints."""
    from mvcapture.pipeline.live import LivePipeline

    det_calls = Counting(detector, "detect_boxes")
    live = LivePipeline(detector, tiny_lifter, detect_every=100, lift_stride=1)
    boxes = []
    for t in range(30):
        x = 40 + 4 * t
        result = live.process([frame(x), frame(x + 20, 70)])
        boxes.append(live.trackers[0]._keypoint_box.copy())
        assert result.detected.tolist() == ([True, True] if t == 0 else [False, False])
        from mvcapture.core.skeleton import coco_to_h36m

        want, _ = coco_to_h36m(np.stack([expected_keypoints(x), expected_keypoints(x + 20, 70)]), np.ones((2, 17)))
        assert np.abs(result.kp2d_px - want).max() < 2.5, t
        assert (result.conf > 0.8).all()
    assert det_calls.calls == 2
    centres = np.array([(b[0] + b[2]) / 2 for b in boxes])
    np.testing.assert_allclose(np.diff(centres), 4.0, atol=1.0)   # the box moved with the athlete
    assert live.trackers[0].reasons == {"scheduled": 0, "no athlete": 1, "low confidence": 0, "drift": 0}


def test_the_detector_reruns_when_confidence_drops_and_when_scheduled(detector, tiny_lifter):
    from mvcapture.pipeline.live import LivePipeline

    det_calls = Counting(detector, "detect_boxes")
    live = LivePipeline(detector, tiny_lifter, num_views=1, detect_every=5, lift_stride=1)
    detected = []
    tall = {"y": 20, "w": 30, "h": 200}
    for t in range(12):   # scheduled: frames 0, 5, 10
        detected.append(bool(live.process([frame(60 + 2 * t, **tall)]).detected[0]))
    assert [t for t, d in enumerate(detected) if d] == [0, 5, 10]
    # nobody in the frame (occluded): the detector runs on every frame until the athlete is back
    for _ in range(3):
        calls = det_calls.calls
        result = live.process([frame(None)])
        assert result.detected[0] and det_calls.calls == calls + 1 and (result.conf == 0).all()
    result = live.process([frame(88, **tall)])   # back where they vanished
    assert result.detected[0] and (result.conf > 0.8).all()
    assert not live.process([frame(90, **tall)]).detected[0]
    # the athlete leaps out of the tracked box (the crop ends at x ≈ 202; still within the athlete track's
    # gate, 0.7 box heights): the pose model loses them (scores 0.01), the detector runs in that very frame
    # and the keypoints are right again
    calls = det_calls.calls
    result = live.process([frame(215, **tall)])
    assert result.detected[0] and det_calls.calls == calls + 1
    from mvcapture.core.skeleton import coco_to_h36m

    want, _ = coco_to_h36m(expected_keypoints(215, **tall)[None], np.ones((1, 17)))
    assert np.abs(result.kp2d_px - want).max() < 2.5
    reasons = live.trackers[0].reasons
    assert reasons["scheduled"] == 2 and reasons["low confidence"] + reasons["no athlete"] >= 4


def test_the_views_detector_runs_fall_in_different_pairs(detector, tiny_lifter):
    from mvcapture.pipeline.live import LivePipeline

    live = LivePipeline(detector, tiny_lifter, detect_every=4, lift_stride=1)
    detected = np.array([live.process([frame(60 + t), frame(100 + t)]).detected for t in range(11)])
    assert np.flatnonzero(detected[:, 0]).tolist() == [0, 4, 8]
    assert np.flatnonzero(detected[:, 1]).tolist() == [0, 2, 6, 10]


def test_low_confidence_and_drift_send_the_tracker_back_to_the_detector():
    tracker = KeypointTracker((W, H), detect_every=50)
    assert tracker.plan() is None   # nothing seen yet: detect
    box = tracker.detected(np.array([[100, 60, 150, 180]]), np.array([0.9]))
    np.testing.assert_array_equal(box, [100, 60, 150, 180])
    kp = expected_keypoints(100)
    assert tracker.update(kp, np.full(17, 0.9), detected=True)
    grown = tracker.plan()
    tight = box_from_keypoints(kp, np.ones(17))
    np.testing.assert_allclose(grown[2:] - grown[:2], (tight[2:] - tight[:2]) * 1.25)
    few = np.where(np.arange(17) < 3, 0.9, 0.1)                              # mean 0.24
    assert not tracker.update(kp, few, detected=False)                       # low confidence
    assert tracker.plan() is None and tracker.reasons["low confidence"] == 1
    tracker.detected(np.array([[100, 60, 150, 180]]))
    assert tracker.update(kp, np.full(17, 0.9), detected=True)
    assert tracker.plan() is not None
    doubled = (kp - kp.mean(0)) * 2 + kp.mean(0)
    assert not tracker.update(doubled, np.full(17, 0.9), detected=False)     # the box drifted (size)
    assert tracker.plan() is None and tracker.reasons["drift"] == 1


def test_the_athlete_keeps_their_identity_and_can_be_picked():
    tracker = KeypointTracker((W, H), detect_every=2)
    athlete, coach = np.array([120, 40, 200, 230.]), np.array([10, 150, 40, 220.])
    assert tracker.plan() is None
    np.testing.assert_array_equal(tracker.detected(np.stack([coach, athlete])), athlete)  # the prominent one
    first_id = tracker.athlete.athlete_id
    kp = np.stack([np.linspace(125, 195, 17), np.linspace(45, 225, 17)], 1)
    assert tracker.update(kp, np.full(17, 0.9), True)
    assert tracker.plan() is not None
    assert tracker.update(kp + [3, 0], np.full(17, 0.9), False)   # tracked frame: the track moves along
    assert tracker.plan() is None                                 # scheduled (every 2 frames)
    np.testing.assert_array_equal(tracker.detected(np.stack([athlete + [6, 0, 6, 0], coach])), athlete + [6, 0, 6, 0])
    assert tracker.athlete.athlete_id == first_id
    # the user clicks on the coach: followed from the next detector frame on
    coach_id = tracker.pick(25, 180)
    assert coach_id != first_id and tracker.plan() is None
    np.testing.assert_array_equal(tracker.detected(np.stack([athlete + [6, 0, 6, 0], coach])), coach)


def test_stereo_hook_gets_both_views_keypoints_and_gives_the_fused_3d(detector, tiny_lifter):
    from mvcapture.pipeline.live import LivePipeline

    seen = []

    def stereo(kp_a, conf_a, kp_b, conf_b):
        seen.append((kp_a.copy(), conf_a.copy(), kp_b.copy(), conf_b.copy()))
        return None if len(seen) < 3 else np.full((17, 3), float(len(seen)))

    live = LivePipeline(detector, tiny_lifter, stereo=stereo, lift_stride=1)
    results = [live.process([frame(60 + t), frame(120 - t)]) for t in range(4)]
    assert [r.fused_m is None for r in results] == [True, True, False, False]
    np.testing.assert_array_equal(results[3].fused_m, np.full((17, 3), 4.0))
    kp_a, conf_a, kp_b, conf_b = seen[-1]
    np.testing.assert_array_equal(kp_a, results[3].kp2d_px[0])
    np.testing.assert_array_equal(kp_b, results[3].kp2d_px[1])
    assert kp_a.shape == (17, 2) and conf_b.shape == (17,)
    assert results[3].timings_s["stereo"] >= 0.0


def test_the_lift_stride_adapts_to_the_frame_period(detector, tiny_lifter):
    from mvcapture.pipeline import live as live_module

    live = live_module.LivePipeline(detector, tiny_lifter, num_views=1, lift_stride=1, adapt_lift_stride=True,
                                    max_lift_stride=4, detect_every=10)
    strides = []
    for t in range(3 * live_module.ADAPT_EVERY):
        result = live.process([frame(60 + t % 20)])
        strides.append(live.adapt_lift_stride(period_s=1e-5))   # cameras far faster than the machine
        assert result.pose_index == max(result.index - (result.lift_stride - 1), 0)
    assert strides[-1] == 4 and sorted(set(strides)) == [1, 2, 4]
    for t in range(3 * live_module.ADAPT_EVERY):                # cameras far slower: back to lifting every pair
        result = live.process([frame(60 + t % 20)])
        strides.append(live.adapt_lift_stride(period_s=10.0))
        assert result.pose_index == max(result.index - (result.lift_stride - 1), 0)
    assert strides[-1] == 1


def test_a_live_lifter_whose_stride_shrinks_returns_the_wanted_frame(tiny_lifter):
    """Before: a stride made smaller between pushes indexed past the last lifted window (IndexError)."""
    rng = np.random.default_rng(0)
    frames = rng.uniform(50, 200, (40, 17, 2)).astype(np.float32)
    conf = np.ones(17, np.float32)
    live = tiny_lifter.live(stride=8)
    for t in range(14):                              # lifts at frames 0 and 7
        live.push(frames[t], conf, (320, 240))
    live.stride = 2
    out = live.push(frames[14], conf, (320, 240))   # wants frame 13 (14 is not a stride-2 lift frame)
    every = tiny_lifter.live(stride=1)              # lifts the window ending at frame 14
    for t in range(15):
        every.push(frames[t], conf, (320, 240))
    want = every._lifted[-2]
    np.testing.assert_allclose(out, want, atol=1e-6)


def test_run_takes_the_latest_frames_and_counts_the_skipped_ones(tmp_path, detector, tiny_lifter):
    """A consumer slower than the cameras: frames are skipped (newest first), never queued up."""
    import time

    import cv2

    from mvcapture.capture.sources import FileSource
    from mvcapture.pipeline.live import LivePipeline

    paths = []
    for v in range(2):
        path = tmp_path / f"v{v}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 50.0, (W, H))
        for t in range(60):
            writer.write(frame(40 + 3 * t + 10 * v))
        writer.release()
        paths.append(path)
    results = []
    live = LivePipeline(detector, tiny_lifter, detect_every=5, lift_stride=2,
                        on_frame=lambda r: (results.append(r), time.sleep(0.06)))
    sources = [FileSource(p, buffer_size=64) for p in paths]
    try:
        pairs = live.run(sources, timeout_s=5.0)
    finally:
        for s in sources:
            s.stop()
    assert 5 <= pairs < 50 and pairs == len(results)
    stats = live.live_stats()
    assert stats["skipped"][0] > 10 and stats["pairs"] == pairs
    assert stats["latency_p95_ms"] < 1000 and stats["pairs_per_s"] > 2   # loose: a shared machine stalls
    skew_s = np.array([abs(int(r.t_ns[1]) - int(r.t_ns[0])) for r in results]) / 1e9
    assert np.median(skew_s) < 2 / 50.0


@pytest.mark.slow
def test_tracking_keeps_the_real_models_keypoints_within_2px_of_every_frame_detection(shared_data, tiny_lifter):
    """With rtmlib's real models (its cache, or a folder named by MVCAPTURE_DETECTOR_DIR; skipped elsewhere:
    nothing can be downloaded on the build machine): on the demo videos, tracking (detector every 10 pairs)
    keeps the keypoints within 2 px (median) of detecting on every frame."""
    import os

    from mvcapture.detect import create_detector
    from mvcapture.errors import ModelNotFoundError
    from mvcapture.io.video import iter_frames
    from mvcapture.pipeline.live import LivePipeline

    try:
        detector = create_detector("lightweight", model_dir=os.environ.get("MVCAPTURE_DETECTOR_DIR"),
                                   download=False, device="cpu")
    except ModelNotFoundError as exc:
        pytest.skip(f"rtmlib's detector models are not on this machine: {exc}")
    video = shared_data / "video" / "pose2sim_demo"
    every = LivePipeline(detector, tiny_lifter, detect_every=1)
    tracking = LivePipeline(detector, tiny_lifter, detect_every=10)
    distances = []
    streams = [iter_frames(video / f"cam{cam}.mp4", pixel_format="bgr24") for cam in ("01", "04")]
    for (_, a), (_, b) in zip(*streams):
        want, got = every.process([a, b]), tracking.process([a, b])
        both = (want.conf > 0.3) & (got.conf > 0.3)
        distances.append(np.linalg.norm(want.kp2d_px - got.kp2d_px, axis=-1)[both])
    distances = np.concatenate(distances)
    assert len(distances) > 1000
    assert tracking.trackers[0].detections < every.trackers[0].detections / 3
    print(f"\ntracking vs every-frame detection: median {np.median(distances):.2f} px, p95 "
          f"{np.percentile(distances, 95):.2f} px over {len(distances)} keypoints")
    assert np.median(distances) <= 2.0


def test_scheduled_detections_run_in_the_background_and_confirm_the_athlete(detector, tiny_lifter):
    """background_detection: a scheduled run leaves its pair tracked (no detector time in it); its boxes,
    picked up by a later pair, confirm the athlete; when they say the athlete is elsewhere, the next pair
    runs the detector in the foreground."""
    import time

    from mvcapture.pipeline.live import LivePipeline

    live = LivePipeline(detector, tiny_lifter, num_views=1, detect_every=3, lift_stride=1, background_detection=True)
    try:
        detected = []
        for t in range(12):
            detected.append(bool(live.process([frame(60 + 2 * t)]).detected[0]))
            time.sleep(0.05)   # the background run finishes before the next pair
        assert detected == [True] + [False] * 11, "only the first detection is in a pair"
        tracker = live.trackers[0]
        assert tracker.reasons["scheduled"] >= 3 and len(live.background_detect_s) >= 3
        # a background result that does not overlap the tracked athlete: detect in the foreground next
        assert not tracker.detected_late(np.array([[250, 10, 300, 60]]), np.array([1.0]), tracker.generation)
        result = live.process([frame(84)])
        assert result.detected[0] and (result.conf > 0.8).all()
        # a stale result (started before that foreground run) is ignored
        assert not tracker.detected_late(np.array([[250, 10, 300, 60]]), None, tracker.generation - 1)
        assert not live.process([frame(86)]).detected[0]
    finally:
        live.close()
    assert not live.background._thread.is_alive()


def test_a_due_run_waits_while_the_background_detector_is_busy(detector, tiny_lifter):
    """While the background detector works on one view's frame, the other view's scheduled run waits (that
    view stays tracked; before, it ran the detector inside its pair, e.g. a whole YOLOX-m run); it goes to
    the background once the detector is free."""
    import threading
    import time

    from mvcapture.pipeline.live import LivePipeline

    gate = threading.Event()
    foreground = []
    original = detector.detect_boxes

    def detect_boxes(image):
        if threading.current_thread().name == "live-detector":
            gate.wait(10.0)
        else:
            foreground.append(1)
        return original(image)

    detector.detect_boxes = detect_boxes
    live = LivePipeline(detector, tiny_lifter, detect_every=3, lift_stride=1, background_detection=True)
    try:
        detected = [live.process([frame(60 + t), frame(100 + t)]).detected.tolist() for t in range(10)]
        assert detected == [[True, True]] + [[False, False]] * 9 and len(foreground) == 2
        assert not live.background.idle   # one run held up, the other view's due run waiting
        assert sorted(t.reasons["scheduled"] for t in live.trackers) == [0, 1]
        gate.set()
        for t in range(10, 16):
            time.sleep(0.05)
            assert not live.process([frame(60 + t), frame(100 + t)]).detected.any()
        assert all(t.reasons["scheduled"] >= 1 for t in live.trackers) and len(foreground) == 2
    finally:
        gate.set()
        live.close()


def test_the_background_detector_thread_runs_at_a_lower_priority(detector):
    import os
    import time

    from mvcapture.pipeline.live import BackgroundDetector

    if not hasattr(os, "setpriority"):
        pytest.skip("no thread priorities here")
    background = BackgroundDetector(detector, nice=5)
    try:
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        deadline = time.monotonic() + 5.0
        while os.getpriority(os.PRIO_PROCESS, background._thread.native_id) == mine and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.getpriority(os.PRIO_PROCESS, background._thread.native_id) == min(mine + 5, 19)
        assert os.getpriority(os.PRIO_PROCESS, 0) == mine   # the caller's own priority is untouched
    finally:
        background.close()


def test_views_pose_crops_run_side_by_side_with_two_workers(detector):
    """workers=2: one onnxruntime run per view, at the same time (in two threads), same keypoints as the
    batched run."""
    import threading
    import time

    frames = [frame(100), frame(180, 80)]
    boxes = np.array([[80, 40, 170, 200], [160, 60, 250, 220]], float)
    together, together_scores = detector.pose_in_boxes(frames, boxes)
    session = detector.pose.session
    state = {"running": 0, "most": 0, "batches": []}
    lock = threading.Lock()

    class Overlapping:
        def run(self, outputs, feeds):
            with lock:
                state["running"] += 1
                state["most"] = max(state["most"], state["running"])
                state["batches"].append(len(next(iter(feeds.values()))))
            time.sleep(0.1)
            try:
                return session.run(outputs, feeds)
            finally:
                with lock:
                    state["running"] -= 1

        def __getattr__(self, name):
            return getattr(session, name)

    detector.pose.session = Overlapping()
    cpu = detector.worker_cpu_s
    apart, apart_scores = detector.pose_in_boxes(frames, boxes, workers=2)
    assert state["batches"] == [1, 1] and state["most"] == 2
    assert detector.worker_cpu_s > cpu   # the pool thread's CPU time is counted (live mode's CPU per pair)
    np.testing.assert_allclose(apart, together, atol=1e-6)
    np.testing.assert_allclose(apart_scores, together_scores, atol=1e-6)


def test_the_views_lift_in_different_pairs_on_one_thread(detector, tiny_lifter):
    """Stride 4, two views, one thread: view 1 lifts two pairs after view 0, so no pair after the first
    carries both views' lifts (each a lifter forward pass)."""
    from mvcapture.pipeline.live import LivePipeline

    live = LivePipeline(detector, tiny_lifter, detect_every=100, lift_stride=4, view_workers=1)
    per_pair = []
    original = tiny_lifter.lift_windows
    tiny_lifter.lift_windows = lambda *a, **kw: per_pair.__setitem__(-1, per_pair[-1] + 1) or original(*a, **kw)
    try:
        for t in range(16):
            per_pair.append(0)
            result = live.process([frame(60 + t), frame(100 + t)])
            assert result.pose_index == max(t - 3, 0)
    finally:
        del tiny_lifter.lift_windows
    assert per_pair[0] == 2 and max(per_pair[1:]) == 1 and sum(per_pair) == 2 + 2 * (16 // 4)


def test_the_detector_schedule_by_the_clock_whatever_the_pair_rate(detector, tiny_lifter):
    """detect_every_s 0.5: a view's scheduled runs come every 0.5 s of capture time at 10 and at 40 pairs/s
    (view 1 a quarter of a second after view 0, at the first pair from then on); a tracking failure still
    runs the detector at once."""
    from mvcapture.pipeline.live import DETECT_EVERY_S, LivePipeline

    assert DETECT_EVERY_S["balanced"] > DETECT_EVERY_S["lightweight"]
    for rate, view1 in ((10, [0.0, 0.3, 0.8, 1.3, 1.8]), (40, [0.0, 0.25, 0.75, 1.25, 1.75])):
        live = LivePipeline(detector, tiny_lifter, detect_every=3, detect_every_s=0.5, lift_stride=1)
        times = np.arange(int(2 * rate)) / rate
        detected = np.array([live.process([frame(60 + i % 40), frame(100 + i % 40)], [int(t * 1e9)] * 2).detected
                             for i, t in enumerate(times)])
        np.testing.assert_allclose(times[detected[:, 0]], [0.0, 0.5, 1.0, 1.5], atol=1e-9)
        np.testing.assert_allclose(times[detected[:, 1]], view1, atol=1e-9)
    t0 = int(times[-1] * 1e9) + 10**7
    result = live.process([frame(None), frame(140)], [t0] * 2)   # view 0's athlete gone: detector now
    assert result.detected.tolist() == [True, False]
    with pytest.raises(ValueError, match="detect_every_s"):
        LivePipeline(detector, tiny_lifter, detect_every_s=0.0)


def test_the_views_lift_side_by_side_with_a_thread_each(detector, tiny_lifter):
    """Stride 4, two views, two threads: both views lift in the same pairs, at the same time; the 3D is what
    the views' lifts one after the other give."""
    import threading
    import time

    from mvcapture.pipeline.live import LivePipeline

    state = {"running": 0, "most": 0, "pairs": []}
    lock = threading.Lock()
    original = tiny_lifter.lift_windows

    def lift_windows(*args, **kwargs):
        with lock:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
            state["pairs"].append(pair)
        time.sleep(0.05)
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                state["running"] -= 1

    images = [[frame(60 + t), frame(100 + t)] for t in range(12)]
    one = LivePipeline(detector, tiny_lifter, detect_every=100, lift_stride=4, view_workers=1)
    for lifter in one.lifters:   # the same lift pairs, one after the other
        lifter.phase = 0
    expected = [one.process(pair_images).pose3d_m for pair_images in images]
    tiny_lifter.lift_windows = lift_windows
    live = LivePipeline(detector, tiny_lifter, detect_every=100, lift_stride=4, view_workers=2)
    try:
        for pair, pair_images in enumerate(images):
            np.testing.assert_allclose(live.process(pair_images).pose3d_m, expected[pair], atol=1e-5)
    finally:
        del tiny_lifter.lift_windows
        live.close()
    assert state["pairs"] == [0, 0, 3, 3, 7, 7, 11, 11] and state["most"] == 2
    assert live.view_cpu_s > 0   # the view thread's CPU time is counted in the pairs' CPU


def test_a_detector_slower_than_its_interval_serves_the_views_in_turn(detector, tiny_lifter):
    """Background runs that take longer than the interval (YOLOX-m: 1.2 s against 1 s): when the detector
    frees up both views are due, and the one that waited longer gets it (view 0 used to get every run)."""
    import threading
    import time

    from mvcapture.pipeline.live import LivePipeline

    started = threading.Semaphore(0)
    release = threading.Semaphore(0)
    original = detector.detect_boxes

    def detect_boxes(image):
        if threading.current_thread().name == "live-detector":
            started.release()
            release.acquire(timeout=10.0)
        return original(image)

    detector.detect_boxes = detect_boxes
    live = LivePipeline(detector, tiny_lifter, detect_every_s=0.1, lift_stride=1, background_detection=True)
    try:
        for t in range(40):   # 25 pairs/s; every run is released 4 pairs (0.16 s) after it started
            live.process([frame(60 + t % 20), frame(100 + t % 20)], [int(t * 0.04e9)] * 2)
            if t % 4 == 3 and started.acquire(timeout=0.0):
                release.release()
                deadline = time.monotonic() + 5.0
                while not live.background.idle and time.monotonic() < deadline:
                    time.sleep(0.005)
        runs = [tr.reasons["scheduled"] for tr in live.trackers]
        assert min(runs) >= 3 and abs(runs[0] - runs[1]) <= 1, runs
    finally:
        release.release(100)
        live.close()


def test_the_capture_tabs_live_worker_schedules_the_detector_by_the_clock(detector, tiny_lifter):
    """The Capture tab's live pipeline schedules the person detector as `bench live` measures it, by the
    lightweight mode's clock (one run per view every 0.5 s of capture time), not every 10 pairs: over 2 s of
    60-fps pairs a view gets at most 5 scheduled runs (every 10 pairs would be 12); by pairs only when asked."""
    pytest.importorskip("PySide6")
    from types import SimpleNamespace

    from mvcapture.gui.live import LivePoseWorker

    sources = [SimpleNamespace(fps=60.0), SimpleNamespace(fps=60.0)]
    live = LivePoseWorker(sources).make_pipeline(detector, tiny_lifter)
    try:
        for i in range(120):
            t_ns = int(i / 60.0 * 1e9)
            live.process([frame(60 + i % 40), frame(100 + i % 40)], [t_ns, t_ns])
        scheduled = [tracker.reasons["scheduled"] for tracker in live.trackers]
        assert all(1 <= n <= 5 for n in scheduled), scheduled
    finally:
        live.close()
    live = LivePoseWorker(sources, detect_every=7, detect_by_clock=False).make_pipeline(detector, tiny_lifter)
    try:
        assert live.detect_every_s is None and live.detect_every == 7
    finally:
        live.close()
