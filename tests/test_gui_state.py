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
