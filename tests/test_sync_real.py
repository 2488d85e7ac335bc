"""Motion alignment on real video: the Pose2Sim four-camera recording (60 fps, synchronized), cut with
known offsets. Keypoints from the cached detections (MediaPipe, COCO-17) of that folder, and from our own
detection pipeline where rtmlib's models are on disk."""

from __future__ import annotations

import numpy as np
import pytest

from mvcapture.sync import RecordingSignals, estimate_offset

FPS = 60.0


def _load(shared_data, cam: str) -> tuple[np.ndarray, np.ndarray]:
    path = shared_data / "video" / "pose2sim_demo" / "detections" / f"cam{cam}_coco17.npz"
    if not path.is_file():
        pytest.skip(f"cached detections not found at {path}")
    data = np.load(path)
    assert float(data["fps"]) == FPS
    return data["keypoints"].astype(np.float64), data["scores"].astype(np.float64)


def _cut(kp2d, conf, first_frame: float, step: int = 1):
    """A recording that starts `first_frame` (fractional: resampled between frames) into the original
    and keeps every `step`-th frame; its own clock starts at 0."""
    src = np.arange(len(kp2d), dtype=np.float64)
    at = np.arange(first_frame, len(kp2d) - 1 + 1e-9, step)
    kp = np.stack([np.stack([np.interp(at, src, kp2d[:, j, d]) for d in range(2)], -1) for j in range(17)], 1)
    cf = np.stack([np.interp(at, src, conf[:, j]) for j in range(17)], 1)
    return RecordingSignals(kp2d_px=kp, conf=cf, frame_times_s=np.arange(len(at)) * step / FPS)


@pytest.mark.parametrize("cut_a, cut_b, step_b", [
    (0, 0, 1), (0, 3, 1), (0, 8, 1), (6, 0, 1),           # whole frames dropped
    (0, 2.5, 1), (0, 4.3, 1), (3.7, 0, 1), (0, 10.2, 1),  # fractional frames
    (0, 1.4, 2), (2.6, 0, 2),                             # B at 30 fps
])
def test_cam01_cam04_offsets(shared_data, cut_a, cut_b, step_b):
    """cam01 + cam04 (about 100 degrees apart): error at most half a frame (60 fps)."""
    kp_a, conf_a = _load(shared_data, "01")
    kp_b, conf_b = _load(shared_data, "04")
    a = _cut(kp_a, conf_a, cut_a)
    b = _cut(kp_b, conf_b, cut_b, step_b)
    truth = (cut_a - cut_b) / FPS   # original frame i is at (i - cut_a)/FPS in A, (i - cut_b)/FPS in B
    result = estimate_offset(a, b)
    assert result.method.startswith("motion")
    assert abs(result.offset_s - truth) * FPS <= 0.5, result.to_dict()
    assert not result.low_confidence


@pytest.mark.parametrize("cut_b", [0, 4, 9])
def test_cam02_with_side_swaps(shared_data, cut_b):
    """cam02's detections swap left and right in about a third of the frames; whole-frame cuts keep
    those detections as they are."""
    kp_a, conf_a = _load(shared_data, "01")
    kp_b, conf_b = _load(shared_data, "02")
    result = estimate_offset(_cut(kp_a, conf_a, 0), _cut(kp_b, conf_b, cut_b))
    assert abs(result.offset_s + cut_b / FPS) * FPS <= 0.5, result.to_dict()
    assert not result.low_confidence


@pytest.mark.slow
def test_cam01_cam04_offsets_with_keypoints_from_our_detection_pipeline(shared_data, tmp_path):
    """The same cuts with the keypoints of our own detection pipeline (rtmlib models, athlete tracking) on
    the real videos. Runs where rtmlib's models are on disk — its cache, or a folder named by
    MVCAPTURE_DETECTOR_DIR — and is skipped elsewhere (nothing can be downloaded on the build machine)."""
    import os

    from mvcapture.detect import create_detector, detect_video
    from mvcapture.errors import ModelNotFoundError

    try:
        detector = create_detector("balanced", model_dir=os.environ.get("MVCAPTURE_DETECTOR_DIR"), download=False)
    except ModelNotFoundError as exc:
        pytest.skip(f"rtmlib's detector models are not on this machine: {exc}")
    video = shared_data / "video" / "pose2sim_demo"
    tracks = {cam: detect_video(video / f"cam{cam}.mp4", detector, cache_dir=tmp_path) for cam in ("01", "04")}
    for cam, det in tracks.items():
        assert (det.conf.max(1) > 0.3).mean() > 0.9, f"cam{cam}: the athlete is found in most frames"
    for cut_a, cut_b in ((0, 0), (0, 4.3), (3.7, 0), (0, 8)):
        a = _cut(tracks["01"].kp2d_px.astype(np.float64), tracks["01"].conf.astype(np.float64), cut_a)
        b = _cut(tracks["04"].kp2d_px.astype(np.float64), tracks["04"].conf.astype(np.float64), cut_b)
        result = estimate_offset(a, b)
        assert abs(result.offset_s - (cut_a - cut_b) / FPS) * FPS <= 0.5, result.to_dict()
