"""Motion alignment on a generated scene (a skeleton acting in a room, two cameras 90 degrees apart):
sub-frame offsets at different and variable frame rates, clock drift, side swaps, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from mvcapture.sync import (RecordingSignals, estimate_motion_drift, estimate_motion_offset, estimate_offset,
                            motion_signal)
from mvcapture.sync.synthetic import SyntheticScene, true_sync


@pytest.fixture(scope="module")
def scene():
    return SyntheticScene(40.0, seed=1)


def _signals(view) -> RecordingSignals:
    return RecordingSignals(kp2d_px=view["kp2d_px"], conf=view["conf"], frame_times_s=view["frame_times_s"])


CASES = [  # fps A, fps B, start A, start B, frame-time jitter of B (s)
    (60, 60, 1.0, 1.0 + 7.3 / 60, 0.0),
    (30, 60, 2.0, 1.21, 0.0),
    (30, 25, 1.5, 2.777, 0.004),   # variable frame rate in B
    (60, 30, 0.5, 0.5 + 2.5 / 30, 0.0),
]


@pytest.mark.parametrize("fps_a, fps_b, start_a, start_b, jitter", CASES)
def test_motion_offset_within_quarter_frame(scene, fps_a, fps_b, start_a, start_b, jitter):
    a = scene.record_view(0.0, fps_a, start_a, 20.0, seed=1)
    b = scene.record_view(90.0, fps_b, start_b, 20.0, jitter_s=jitter, seed=2)
    truth, _ = true_sync(start_a, start_b)
    frame_s = 1.0 / min(fps_a, fps_b)
    # Keypoint speeds alone: within half a frame (view-dependent 2D speeds bias them slightly) ...
    speeds = estimate_motion_offset(a["kp2d_px"], a["conf"], a["frame_times_s"],
                                    b["kp2d_px"], b["conf"], b["frame_times_s"])
    assert abs(speeds.offset_s - truth) < 0.5 * frame_s and not speeds.low_confidence
    # ... and refined by the epipolar residual (still cameras): within a quarter frame.
    result = estimate_offset(_signals(a), _signals(b))
    assert result.method == "motion+epipolar"
    assert abs(result.offset_s - truth) < 0.25 * frame_s
    assert not result.low_confidence and result.confidence > 0.5


def test_motion_drift_2997_vs_30_fps():
    """A camera stamping frames at a nominal 30 fps while running at 29.97 fps: drift -1000 ppm."""
    scene = SyntheticScene(640.0, seed=5)
    a = scene.record_view(0.0, 30.0, 10.0, 600.0, seed=1)
    b = scene.record_view(90.0, 30.0, 22.345, 600.0, drift_ppm=-1000.0, seed=2)
    truth_offset, truth_drift = true_sync(10.0, 22.345, -1000.0)
    result = estimate_motion_drift(a["kp2d_px"], a["conf"], a["frame_times_s"],
                                   b["kp2d_px"], b["conf"], b["frame_times_s"])
    assert abs(result.drift_ppm - truth_drift) < 10.0
    assert abs(result.offset_s - truth_offset) < 0.25 / 30
    combined = estimate_offset(_signals(a), _signals(b))
    assert combined.method == "motion+drift+epipolar" and not combined.low_confidence
    assert abs(combined.drift_ppm - truth_drift) < 10.0 and abs(combined.offset_s - truth_offset) < 0.25 / 30


def test_side_swaps_do_not_change_speeds(scene):
    view = scene.record_view(0.0, 30.0, 1.0, 10.0, noise_px=0.0, seed=1)
    swapped = view["kp2d_px"].copy()
    frames = np.random.default_rng(0).random(len(swapped)) < 0.3
    left, right = [5, 7, 9, 11, 13, 15], [6, 8, 10, 12, 14, 16]
    swapped[np.ix_(frames, left + right)] = view["kp2d_px"][np.ix_(frames, right + left)]
    clean = motion_signal(view["kp2d_px"], view["conf"], view["frame_times_s"])
    dirty = motion_signal(swapped, view["conf"], view["frame_times_s"])
    # Each left/right pair's two channels follow the limbs, whichever side the detector named them.
    pairs = lambda v: np.sort(v[:, :12].reshape(len(v), 6, 2), axis=-1)  # noqa: E731
    np.testing.assert_allclose(pairs(dirty.values), pairs(clean.values), atol=1e-6)
    np.testing.assert_allclose(dirty.values[:, 12:], clean.values[:, 12:], atol=1e-6)


def test_unrelated_motion_is_flagged(scene):
    a = scene.record_view(0.0, 30.0, 1.0, 15.0, seed=1)
    other = SyntheticScene(40.0, seed=99).record_view(90.0, 30.0, 1.0, 15.0, seed=2)
    result = estimate_motion_offset(a["kp2d_px"], a["conf"], a["frame_times_s"],
                                    other["kp2d_px"], other["conf"], other["frame_times_s"])
    assert result.low_confidence and result.reason


def test_motion_input_errors(scene):
    view = scene.record_view(0.0, 30.0, 1.0, 2.0, seed=1)
    with pytest.raises(ValueError, match="strictly increasing"):
        motion_signal(view["kp2d_px"], view["conf"], view["frame_times_s"][::-1])
    with pytest.raises(ValueError, match=r"\(T, 17, 2\)"):
        motion_signal(view["kp2d_px"][:, :5], view["conf"], view["frame_times_s"])
    with pytest.raises(ValueError, match="never detected"):
        motion_signal(view["kp2d_px"], np.zeros_like(view["conf"]), view["frame_times_s"])


def test_missed_detections_do_not_break_the_alignment(scene):
    """Real detectors miss joints (occlusions, the athlete leaving the frame) and report them with confidence
    0 at a placeholder position (0, 0). Here each joint is missed in 10 % of the frames and a shoulder in a
    further 30 %. Before: the placeholders were smoothed into the seen frames and flipped the side-swap
    tracking, and frames missing any torso joint were dropped whole, so the recordings "did not overlap
    enough" (no estimate at all)."""
    truth, _ = true_sync(2.0, 2.0 + 3.4 / 30)
    signals = []
    for seed, (yaw, start) in enumerate(((0.0, 2.0), (90.0, 2.0 + 3.4 / 30))):
        view = scene.record_view(yaw, 30, start, 20.0, seed=seed)
        rng = np.random.default_rng(10 + seed)
        missed = rng.random(view["conf"].shape) < 0.10
        missed[:, 5] |= rng.random(len(missed)) < 0.30
        kp, conf = view["kp2d_px"].copy(), view["conf"].copy()
        kp[missed], conf[missed] = 0.0, 0.0
        signals.append(RecordingSignals(kp2d_px=kp, conf=conf, frame_times_s=view["frame_times_s"]))
    result = estimate_offset(*signals)
    assert result.method.startswith("motion")
    assert abs(result.offset_s - truth) * 30 < 0.25, result.to_dict()
    assert not result.low_confidence
