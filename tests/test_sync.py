"""The sync result and the combined `estimate_offset`: conventions, manual override, low confidence never
used silently, the 3D consistency residual lowest at the true offset, JSON, and `mvcapture bench sync`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mvcapture.errors import MvcaptureError
from mvcapture.sync import (LowConfidenceSyncError, RecordingSignals, SyncResult, apply_sync,
                            consistency_residual_curve, estimate_offset, manual_offset)
from mvcapture.sync.synthetic import SyntheticScene, true_sync


@pytest.fixture(scope="module")
def scene():
    return SyntheticScene(30.0, seed=1)


@pytest.fixture(scope="module")
def pair(scene):
    """A 60 fps and a 30 fps view of the same 20 s, B started 4.4 frames (60 fps) later, with sound."""
    start_a, start_b = 1.0, 1.0 + 4.4 / 60
    views = [scene.record_view(0.0, 60.0, start_a, 20.0, seed=1),
             scene.record_view(90.0, 30.0, start_b, 20.0, seed=2)]
    sounds = [scene.record_audio(48000, start_a, 20.0, seed=1), scene.record_audio(16000, start_b, 20.0, seed=2)]
    return views, sounds, true_sync(start_a, start_b)[0]


def _signals(view, audio=None, rate=None, pose3d=True) -> RecordingSignals:
    return RecordingSignals(audio=audio, audio_rate_hz=rate, kp2d_px=view["kp2d_px"], conf=view["conf"],
                            frame_times_s=view["frame_times_s"], pose3d=view["pose3d_m"] if pose3d else None)


def test_convention_and_apply_sync():
    result = SyncResult(offset_s=2.0, drift_ppm=100.0, confidence=0.9, method="audio")
    t_a = np.array([0.0, 10.0, 100.0])
    t_b = result.b_time(t_a)      # an event at t_A shows in B at (1 + drift) t_A + offset
    np.testing.assert_allclose(t_b, [2.0, 12.001, 102.01])
    np.testing.assert_allclose(apply_sync(t_b, result), t_a, atol=1e-12)


def test_low_confidence_is_never_applied_silently():
    flagged = SyncResult(offset_s=0.3, confidence=0.2, method="motion", low_confidence=True, reason="too little motion")
    with pytest.raises(LowConfidenceSyncError, match="too little motion"):
        apply_sync(np.arange(3.0), flagged)
    assert apply_sync(np.array([1.3]), flagged, accept_low_confidence=True)[0] == pytest.approx(1.0)


def test_manual_override_wins(pair):
    views, sounds, _ = pair
    result = estimate_offset(_signals(views[0], sounds[0], 48000), _signals(views[1], sounds[1], 16000),
                             manual_offset_s=-1.25)
    assert (result.method, result.offset_s, result.confidence, result.low_confidence) == ("manual", -1.25, 1.0, False)
    assert manual_offset(0.5, drift_ppm=3.0).drift_ppm == 3.0
    with pytest.raises(MvcaptureError):
        manual_offset(float("nan"))


def test_audio_first_then_checked_by_3d(pair):
    views, sounds, truth = pair
    result = estimate_offset(_signals(views[0], sounds[0], 48000), _signals(views[1], sounds[1], 16000))
    assert result.method == "audio" and abs(result.offset_s - truth) < 1e-3 and not result.low_confidence
    assert result.details["consistency_gap_frames"] < 0.25   # the 3D agrees
    # The dict form is plain JSON and comes back equal.
    data = json.loads(json.dumps(result.to_dict()))
    assert SyncResult.from_dict(data).offset_s == result.offset_s


def test_motion_when_silent_and_low_confidence_audio_falls_back(pair):
    views, sounds, truth = pair
    silent = estimate_offset(_signals(views[0]), _signals(views[1]))
    assert silent.method.startswith("motion") and abs(silent.offset_s - truth) < 0.25 / 30
    noise = np.random.default_rng(0).standard_normal(16000 * 20).astype(np.float32)
    result = estimate_offset(_signals(views[0], sounds[0], 48000), _signals(views[1], noise, 16000))
    assert result.method.startswith("motion") and abs(result.offset_s - truth) < 0.25 / 30
    assert result.details["alternatives"][0]["method"] == "audio"
    assert result.details["alternatives"][0]["low_confidence"]


def test_consistency_residual_lowest_at_true_offset(pair):
    views, _, truth = pair
    a, b = views
    offsets = truth + np.linspace(-3, 3, 25) / 30
    curve = consistency_residual_curve(a["pose3d_m"], a["frame_times_s"], b["pose3d_m"], b["frame_times_s"], offsets)
    assert curve.unit == "m" and curve.interior
    assert abs(curve.best_offset_s - truth) < 0.1 / 30
    assert np.nanargmin(curve.residual) == 12 and curve.best_residual < 0.03
    assert curve.residual[0] > 1.5 * curve.best_residual and curve.residual[-1] > 1.5 * curve.best_residual


def test_3d_disagreement_is_flagged(pair):
    views, _, _ = pair
    shifted = dict(views[1], pose3d_m=np.roll(views[1]["pose3d_m"], 5, axis=0))  # 3D off by 5 frames
    result = estimate_offset(_signals(views[0]), _signals(shifted))
    assert result.low_confidence and "3D poses agree best" in result.reason


def test_nothing_to_align_on():
    with pytest.raises(MvcaptureError, match="nothing to align"):
        estimate_offset(RecordingSignals(), RecordingSignals(audio=np.zeros(100), audio_rate_hz=8000))


def test_bench_sync_cli(tmp_path, capsys):
    from mvcapture.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "sync", "--minutes", "0.5", "--repeats", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["hardware"]["cpu"] and len(data["audio"]) == 6 and len(data["motion"]) == 4
    drift_rows = [row for row in data["audio"] if row["variant"] == "offset + drift"]
    assert all(abs(row["offset_error_ms"]) < 1.0 and abs(row["drift_error_ppm"]) < 10 for row in drift_rows)
    assert "real time" in capsys.readouterr().out


def test_short_recording_inside_a_long_one():
    """A 8 s phone clip inside a 50 s recording: too short for a drift fit, the plain offset is used."""
    scene = SyntheticScene(60.0, seed=6)
    long_a = RecordingSignals(audio=scene.record_audio(48000, 1.0, 50.0, seed=1), audio_rate_hz=48000)
    short_b = RecordingSignals(audio=scene.record_audio(44100, 31.7, 8.0, seed=2), audio_rate_hz=44100)
    result = estimate_offset(long_a, short_b)
    assert result.method == "audio" and not result.low_confidence
    assert abs(result.offset_s - true_sync(1.0, 31.7)[0]) < 1e-3
