"""The live two-view 3D: after enough frame pairs it finds the cameras' geometry and triangulates each
new pair; checked against a synthetic clip's ground truth, and the per-pair time."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def test_live_stereo_fuses_pairs_once_it_has_an_estimate():
    from test_geometry import _intrinsics, _synthetic_clip

    from mvcapture.geometry.projection import optical_axes_angle_deg
    from mvcapture.pipeline.live_stereo import LiveStereo

    clip = _synthetic_clip(100.0, seconds=6.0, seed=5)
    live = LiveStereo(clip.image_size, _intrinsics(clip), fps=clip.fps, background=False, min_pairs=90,
                      refit_s=1e9)
    out = []
    for t in range(clip.num_frames):
        out.append(live(clip.kp2d[0, t], clip.conf[0, t], clip.kp2d[1, t], clip.conf[1, t]))
    assert all(o is None for o in out[:89])  # nothing before the first estimate
    assert live.status == "ok"
    truth = optical_axes_angle_deg(clip.extras["cam_R"][1] @ clip.extras["cam_R"][0].T)
    assert abs(live.angle_deg - truth) < 3.0
    fused = [o for o in out[90:] if o is not None]
    assert len(fused) > 0.8 * len(out[90:])
    gt = clip.gt3d[0] - clip.gt3d[0][:, :1]
    errs = [np.nanmean(np.linalg.norm(o - gt[90 + i], axis=-1)) for i, o in enumerate(out[90:]) if o is not None]
    assert np.median(errs) < 0.08  # metres, from the default height alone
    t0 = time.perf_counter()
    for t in range(50):
        live(clip.kp2d[0, t], clip.conf[0, t], clip.kp2d[1, t], clip.conf[1, t])
    per_pair_ms = (time.perf_counter() - t0) / 50 * 1000
    assert per_pair_ms < 20.0  # the goal is ≤ 2 ms on an idle core; the bound leaves room for a busy machine


def test_live_stereo_without_enough_motion_shows_nothing():
    from test_geometry import _intrinsics, _synthetic_clip

    from mvcapture.pipeline.live_stereo import LiveStereo

    clip = _synthetic_clip(90.0, seconds=4.0, seed=6)
    live = LiveStereo(clip.image_size, _intrinsics(clip), background=False, min_pairs=60, refit_s=1e9)
    for _ in range(100):  # the same instant over and over: a static athlete
        assert live(clip.kp2d[0, 0], clip.conf[0, 0], clip.kp2d[1, 0], clip.conf[1, 0]) is None
    assert live.status == "degenerate" and live.angle_deg is None


EXIT_WHILE_ESTIMATING = r"""
import sys
sys.path.insert(0, {tests!r})
from test_geometry import _intrinsics, _synthetic_clip
from mvcapture.pipeline.live_stereo import LiveStereo

clip = _synthetic_clip(100.0, seconds=6.0, seed=5)
live = LiveStereo(clip.image_size, _intrinsics(clip), fps=clip.fps, background=True, min_pairs=90, refit_s=1e9)
for t in range(clip.num_frames):
    live(clip.kp2d[0, t], clip.conf[0, t], clip.kp2d[1, t], clip.conf[1, t])
assert live._worker is not None and live._worker.is_alive()  # an estimate (OpenCV inside) in flight
print("exiting", flush=True)
"""


def test_interpreter_exit_waits_for_the_estimate_in_flight(tmp_path):
    """The program ends while the live estimate runs in its thread (OpenCV's RANSAC inside): it must exit
    cleanly. A daemon thread killed inside OpenCV at exit aborted the process (SIGABRT: "terminate called
    without an active exception" here; "FATAL: exception not rethrown", exit code 134, when pytest ran the
    Capture tab's live tests after another test file)."""
    import subprocess

    script = tmp_path / "exit_while_estimating.py"
    script.write_text(EXIT_WHILE_ESTIMATING.format(tests=str(Path(__file__).parent)))
    for _ in range(2):
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "exiting" in done.stdout


def test_closed_live_stereo_starts_no_new_estimate():
    from test_geometry import _intrinsics, _synthetic_clip

    from mvcapture.pipeline.live_stereo import LiveStereo

    clip = _synthetic_clip(100.0, seconds=4.0, seed=5)
    live = LiveStereo(clip.image_size, _intrinsics(clip), fps=clip.fps, background=False, min_pairs=30, refit_s=0.0)
    for t in range(40):
        live(clip.kp2d[0, t], clip.conf[0, t], clip.kp2d[1, t], clip.conf[1, t])
    fits = live.fits
    assert fits >= 1
    live.close()
    for t in range(40, 80):
        live(clip.kp2d[0, t], clip.conf[0, t], clip.kp2d[1, t], clip.conf[1, t])
    assert live.fits == fits and live.estimate is not None
