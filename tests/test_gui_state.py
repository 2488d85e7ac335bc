"""ReviewState, review sources and frame reading: the GUI's plain-Python layer, tested without Qt."""

from __future__ import annotations

import numpy as np
import pytest

from mvcapture.errors import MvcaptureError
from mvcapture.gui.source import load_review_source
from mvcapture.gui.state import ReviewState, placement_advice
from mvcapture.gui.synthetic import synthetic_analysis, write_synthetic_session
from mvcapture.io.frames import VideoFrames


def recorder(event):
    seen = []
    event.connect(lambda *args: seen.append(args if len(args) > 1 else args[0]))
    return seen


def test_seek_step_clamp_and_events_fire_only_on_change():
    state = ReviewState(10, 25.0, offset_s=[0.0, 0.0])
    frames = recorder(state.events.frame)
    state.seek(4)
    state.seek(4)
    state.seek(99)
    state.step(-2)
    state.first()
    state.step(-1)
    state.last()
    assert frames == [4, 9, 7, 0, 9]
    assert state.clamp(-5) == 0 and state.clamp(50) == 9
    state.seek_time(0.2)
    assert state.frame == 5 and state.time_s == pytest.approx(0.2)


def test_playback_advances_by_wall_time_with_speed_and_loop():
    state = ReviewState(10, 10.0, offset_s=[0.0, 0.0])
    playing = recorder(state.events.playing)
    state.advance(1.0)
    assert state.frame == 0, "not playing: time passing changes nothing"
    state.play()
    state.advance(0.05)
    assert state.frame == 0, "half a frame is carried, not rounded up"
    state.advance(0.05)
    assert state.frame == 1
    state.set_speed(2.0)
    state.advance(0.2)
    assert state.frame == 5
    state.advance(0.6)  # 12 frames at 2x -> wraps round
    assert state.frame == (5 + 12) % 10 and state.playing
    state.step(1)
    assert not state.playing, "stepping pauses"
    assert playing == [True, False]


def test_playback_without_loop_stops_at_the_end_and_restarts_from_the_start():
    state = ReviewState(10, 10.0, offset_s=[0.0, 0.0])
    state.set_loop(False)
    state.play()
    state.advance(5.0)
    assert state.frame == 9 and not state.playing
    state.toggle_play()
    assert state.playing and state.frame == 0


def test_selection_speed_and_offset_validate_and_notify():
    state = ReviewState(5, 30.0, offset_s=[0.0, 0.25])
    joints = recorder(state.events.selected_joint)
    offsets = recorder(state.events.offset_s)
    state.select_joint(13)
    state.select_joint(13)
    state.select_joint(None)
    assert joints == [13, None]
    with pytest.raises(ValueError):
        state.select_joint(17)
    with pytest.raises(ValueError):
        state.set_speed(0)
    state.set_offset_s(1, 0.3)
    assert offsets == [(1, 0.3)] and state.offset_s(1) == 0.3
    with pytest.raises(ValueError):
        ReviewState(0, 30.0)


def test_a_failing_observer_does_not_stop_the_others():
    state = ReviewState(5, 30.0)
    seen = []
    state.events.frame.connect(lambda f: 1 / 0)
    state.events.frame.connect(seen.append)
    state.seek(3)
    assert seen == [3]


def test_placement_advice_prefers_about_ninety_degrees():
    assert placement_advice(88).startswith("good")
    assert "same way" in placement_advice(10)
    assert "face each other" in placement_advice(175)
    assert "aim for ~90" in placement_advice(45) and "aim for ~90" in placement_advice(130)


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory):
    return write_synthetic_session(tmp_path_factory.mktemp("gui_state") / "walk", num_frames=30,
                                   image_size=(160, 120))


def test_review_source_from_folder_or_analysis_file(session_dir):
    source = load_review_source(session_dir)
    assert source.name == "walk" and [p.name for p in source.videos] == ["view0.mp4", "view1.mp4"]
    assert source.analysis.num_frames == 30
    assert source.video_time_s(1, 10, 0.5) == pytest.approx(10 / 25 + 0.5)
    bare = load_review_source(session_dir / "analysis.npz")
    assert bare.videos == [None, None] and bare.folder is None
    with pytest.raises(MvcaptureError, match="nothing to open"):
        load_review_source(session_dir / "missing")
    with pytest.raises(MvcaptureError, match="no analysis.npz"):
        load_review_source(session_dir.parent)


def test_video_frames_random_and_sequential_access(session_dir):
    with VideoFrames(session_dir / "view0.mp4", max_width=80) as video:
        assert video.num_frames == 30 and video.size == (160, 120) and video.scale == 0.5
        f5 = video.read(5)
        assert f5.shape == (60, 80, 3) and f5.dtype == np.uint8
        f6 = video.read(6)  # sequential
        f9 = video.read(9)  # short skip forward
        again = video.read(5)  # seek back
        assert np.abs(again.astype(int) - f5).mean() < 2
        assert np.abs(f9.astype(int) - f6).mean() > 0
        assert video.read(30) is None and video.read(-1) is None
        assert video.index_at(0.4) == 10
    with pytest.raises(MvcaptureError):
        VideoFrames(session_dir / "nope.mp4")


def test_synthetic_analysis_has_one_bad_stretch():
    a = synthetic_analysis(80)
    per_frame = a.residual_mm.mean(axis=1)
    assert per_frame[40:50].mean() > 2 * per_frame[:30].mean()
    assert np.allclose(a.aligned[0], a.pose3d[0])


def test_training_progress_follows_job_events():
    from mvcapture.gui.training import TrainingProgress, format_eta

    p = TrainingProgress()
    p.feed({"event": "start", "variant": "l2d_con", "epochs": 2, "steps_per_epoch": 2, "device": "cpu",
            "validation_set": "the training windows (every clip is shorter than 162 frames, ...)",
            "validation_held_out": False})
    assert p.log[-1] == "validation on the training windows (every clip is shorter than 162 frames, ...)"
    assert not p.validation_held_out
    p.feed({"event": "validation", "epoch": 0, "validation": {"consistency_mm": 30.0, "loss": 2.0}})
    p.feed({"event": "step", "epoch": 1, "epochs": 2, "global_step": 1, "total_steps": 4, "eta_s": 90,
            "losses": {"total": 1.5, "reproj": 1.0}})
    p.feed({"event": "step", "epoch": 1, "epochs": 2, "global_step": 2, "total_steps": 4, "eta_s": 60,
            "losses": {"total": 1.2, "reproj": 0.9, "con": 0.3}})
    assert p.status == "running" and p.fraction == 0.5 and format_eta(p.eta_s) == "1 min 00 s"
    assert p.losses["con"][0] != p.losses["con"][0] and p.losses["con"][1] == 0.3, "late series padded with NaN"
    p.feed({"event": "epoch", "epoch": 1, "best_epoch": 1, "best": True,
            "validation": {"consistency_mm": 20.0, "loss": 1.0}})
    assert p.epoch_x == [0, 1] and p.validation["consistency_mm"] == [30.0, 20.0]
    p.feed({"event": "cancelled", "epoch": 2})
    assert p.finished and p.status == "cancelled"
    p.feed({"event": "resumed", "global_step": 2})
    assert not p.finished
    p.feed({"event": "done", "version": "v0003", "activated": False})
    assert p.status == "done" and p.result["version"] == "v0003" and "v0003" in p.log[-1]
    p.feed({"event": "failed", "error": "boom"})
    assert p.error == "boom"


def test_training_progress_under_a_time_limit_follows_the_clock_when_it_comes_first():
    from mvcapture.gui.training import TrainingProgress

    p = TrainingProgress()
    p.feed({"event": "start", "variant": "l2d_con", "epochs": 1000, "steps_per_epoch": 10, "device": "cpu"})
    p.feed({"event": "step", "epoch": 1, "epochs": 1000, "global_step": 5, "total_steps": 10_000, "eta_s": 300,
            "losses": {"total": 1.0}, "train_s": 300.0, "time_budget_s": 600.0})
    assert p.fraction == 0.5, "half the time limit, a tiny share of the steps"
    p.feed({"event": "step", "epoch": 1, "epochs": 1000, "global_step": 6, "total_steps": 12, "eta_s": 10,
            "losses": {"total": 1.0}, "train_s": 200.0, "time_budget_s": 600.0})
    assert p.fraction == 0.5, "the steps, when they come first"
    p.feed({"event": "budget", "seconds": 601.0, "budget_s": 600.0, "global_step": 9, "epoch": 1, "step": 9})
    assert p.log[-1].startswith("time limit reached (10 min 01 s of training, 9 steps)")
    without = TrainingProgress()
    without.feed({"event": "step", "epoch": 1, "epochs": 2, "global_step": 1, "total_steps": 4, "losses": {}})
    assert without.fraction == 0.25 and without.time_budget_s == 0.0


def test_gui_command_is_registered_and_rejects_missing_paths(tmp_path):
    from mvcapture.cli import build_parser
    from mvcapture.gui.cli import run_gui

    args = build_parser().parse_args(["gui", str(tmp_path / "a.npz"), "--video", "v0.mp4", "--video", "v1.mp4"])
    assert args.func is run_gui and [p.name for p in args.videos] == ["v0.mp4", "v1.mp4"]
    with pytest.raises(MvcaptureError, match="nothing to open"):
        run_gui(args)


def test_progress_is_read_from_tqdm_output():
    from mvcapture.gui.processing import parse_progress

    assert parse_progress("detect view 0:  42%|####      | 42/100 [00:01<00:02]") == (42, "detect view 0")
    assert parse_progress("a: 10%|#| 1/10\rb: 55%|#####| 5/10") == (55, "b")
    assert parse_progress("no bar here") is None


# -- the two-view (fused) track in the review: ReviewScene --------------------------------------------------

def test_lifts_onto_fused_undo_one_similarity_and_keep_a_lifts_drift():
    """A lift that is the fused track moved by one similarity lands back on it (error ~0); a drift the lift
    makes over time is not fitted away (one transform per sequence): its error is the drift."""
    from scipy.spatial.transform import Rotation

    from mvcapture.geometry.fusion import lifts_onto_fused

    rng = np.random.default_rng(3)
    fused = rng.normal(0, 0.3, (40, 17, 3))
    fused -= fused[:, :1]
    R = Rotation.from_euler("xyz", [20, -70, 5], degrees=True).as_matrix()
    moved = 0.8 * fused @ R.T + [0.1, -0.2, 0.3]
    drift = moved.copy()
    drift[30:, 13] += [0.0, 0.0, 0.08]  # the lift's l_wrist is 8 cm off in the last 10 frames
    conf = np.ones((2, 40, 17))
    conf[1, :, 5] = 0.0  # view 1 does not see the l_knee
    fused_gap = fused.copy()
    fused_gap[:5, 16] = np.nan
    placed, error = lifts_onto_fused(np.stack([moved, drift]), conf, fused_gap)
    assert placed.shape == (2, 40, 17, 3) and error.shape == (2, 40, 17)
    np.testing.assert_allclose(placed[0], fused, atol=1e-4)
    assert np.nanmax(error[0]) < 0.1
    assert np.isnan(error[:, :5, 16]).all() and np.isfinite(placed[:, :5, 16]).all()
    assert np.isnan(error[1, :, 5]).all() and np.isfinite(placed[1, :, 5]).all()  # unseen: drawn, not scored
    assert np.median(error[1, 30:, 13]) == pytest.approx(80 / 0.8, rel=0.1)  # 8 cm at the lift's scale 0.8
    assert np.nanmedian(error[1, :30]) < 5
    with pytest.raises(ValueError, match="expected lifts"):
        lifts_onto_fused(moved, conf[0], fused)


def test_review_state_toggles_the_fused_skeleton():
    state = ReviewState(10, 25.0)
    seen = recorder(state.events.show_fused)
    assert state.show_fused
    state.toggle_fused()
    state.set_show_fused(False)
    state.set_show_fused(True)
    assert seen == [False, True]


def test_review_scene_with_and_without_the_fused_track():
    from mvcapture.gui.state import FUSED_HINT, ReviewScene

    a = synthetic_analysis(60)
    scene = ReviewScene(a, {"status": "ok", "axis_angle_deg": 80.0})
    assert scene.has_fused and scene.fused_hint is None
    lifts, joint_mm, fused = scene.poses(32, show_fused=True)
    np.testing.assert_array_equal(fused, a.fused3d[32])
    # the lifts are placed onto the fused track: the gap drawn is the error plotted
    gap_mm = np.linalg.norm(lifts - fused, axis=-1) * 1000
    np.testing.assert_allclose(joint_mm, gap_mm, atol=0.5)
    np.testing.assert_allclose(joint_mm, a.fused_error_mm[:, 32], atol=1e-3)
    assert joint_mm[1].mean() > 3 * joint_mm[0].mean()  # view 1's bad stretch (frames 30-36)
    lifts, joint_mm, fused = scene.poses(45, show_fused=False)
    assert fused is None
    np.testing.assert_array_equal(lifts, a.aligned[:, 45])
    np.testing.assert_array_equal(joint_mm, np.broadcast_to(a.residual_mm[45], (2, 17)))
    curve = scene.fused_error_per_frame_mm()
    assert curve.shape == (2, 60)
    np.testing.assert_allclose(curve[1, 10], np.nanmean(a.fused_error_mm[1, 10]), rtol=1e-5)
    assert scene.fused_from_stereo[0, 13] == False and scene.fused_from_stereo[0, 12]  # noqa: E712
    assert scene.floor_poses_m.shape == (5, 60, 17, 3)
    assert scene.angle_text(1) == "80° apart (two-view geometry)"

    old = synthetic_analysis(60, fused=False)
    scene = ReviewScene(old)
    assert not scene.has_fused and scene.fused_hint == FUSED_HINT
    lifts, _, fused = scene.poses(3, show_fused=True)
    assert fused is None and np.array_equal(lifts, old.aligned[:, 3])
    assert scene.fused_error_per_frame_mm() is None
    assert scene.angle_text(1) == "80° apart (lifter)"
    assert FUSED_HINT in scene.angle_tooltip(1)


def test_review_scene_says_why_the_angle_is_the_lifters():
    from mvcapture.gui.state import ReviewScene

    a = synthetic_analysis(30)
    a.stereo_axis_angle_deg = np.array([0.0, np.nan])  # not confident: the lifter's angle is shown
    a.axis_angle_deg = np.array([0.0, 143.2])
    uncertain = {"status": "uncertain", "axis_angle_deg": 104.0, "axis_angle_interval_deg": [85.2, 131.0],
                 "confidence": 0.3, "focal_px": [1600, 1650], "lens": ["estimated", "estimated"],
                 "notes": ["focal length poorly constrained"]}
    scene = ReviewScene(a, uncertain)
    assert scene.angle_text(1) == "143° apart (lifter; two-view geometry uncertain: 85–131°)"
    tip = scene.angle_tooltip(1)
    assert "lifter alone" in tip and "143°" in tip and "85.2–131.0°" in tip and "focal length poorly" in tip
    scene = ReviewScene(a, {"status": "degenerate", "notes": ["cameras 8° apart"]})
    assert scene.angle_text(1) == "143° apart (lifter; two-view geometry not usable)"


def test_review_source_reads_the_stereo_estimate_beside_the_analysis(tmp_path):
    import json

    folder = write_synthetic_session(tmp_path / "demo", num_frames=10, image_size=(80, 60))
    assert load_review_source(folder).stereo is None
    (folder / "metrics.json").write_text(json.dumps({"stereo": {"status": "ok"}, "notes": ["check the sync"]}))
    source = load_review_source(folder)
    assert source.stereo == {"status": "ok"} and source.notes == ["check the sync"]
