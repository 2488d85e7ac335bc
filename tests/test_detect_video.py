"""detect_video end to end on a generated video with tiny ONNX models: exact pixels, absence → conf 0,
resume after an interruption or a cancel, and the `mvcapture detect` command."""

from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest

from mvcapture.detect import (DetectionCancelled, RTMPoseDetector, VideoDetections, cache_path, detect_video,
                              model_specs)
from mvcapture.detect.testing import make_rtmpose, make_yolox_rectangles

W, H, FPS, T = 256, 192, 25.0, 30
ABSENT = set(range(12, 16))                      # frames without the athlete
BINS_X = np.arange(17) * 5 + 3
BINS_Y = np.arange(17) * 7 + 2


def rectangle(t):
    """The 'athlete' (a white rectangle) in frame t: x1, y1, x2, y2, on multiples of 4 px (the 64 px
    detector input is the frame / 4, so the detected box is exact)."""
    x1 = 40 + 4 * t
    return (x1, 32, x1 + 40, 160)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "athlete.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), FPS, (W, H))
    for t in range(T):
        frame = np.zeros((H, W, 3), np.uint8)
        if t not in ABSENT:
            x1, y1, x2, y2 = rectangle(t)
            frame[y1:y2, x1:x2] = 255
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """Tiny models under the names of the 'balanced' mode, as a user's --model-dir would hold them."""
    folder = tmp_path_factory.mktemp("models")
    specs = model_specs("balanced")
    make_rtmpose(folder / specs["pose"].onnx_name, BINS_X, BINS_Y, (48, 64))
    make_yolox_rectangles(folder / specs["det"].onnx_name, (64, 64))
    return folder


class CountingDetector:
    """Wraps a detector and counts the frames it is asked about."""

    def __init__(self, inner):
        self.inner, self.model_id, self.provider, self.calls = inner, inner.model_id, inner.provider, 0

    def detect(self, frame):
        self.calls += 1
        return self.inner.detect(frame)


@pytest.fixture
def detector(model_dir):
    specs = model_specs("balanced")
    return CountingDetector(RTMPoseDetector(model_dir / specs["pose"].onnx_name,
                                            model_dir / specs["det"].onnx_name, device="cpu"))


def expected_keypoints(box, w=48, h=64):
    x1, y1, x2, y2 = box
    sw, sh = (x2 - x1) * 1.25, (y2 - y1) * 1.25
    sw, sh = (sw, sw * h / w) if sw > sh * w / h else (sh * w / h, sh)
    return np.stack([(x1 + x2) / 2 - sw / 2 + BINS_X / 2 * sw / w,
                     (y1 + y2) / 2 - sh / 2 + BINS_Y / 2 * sh / h], axis=1)


def test_detect_video_end_to_end(tmp_path, video, detector):
    calls = []
    result = detect_video(video, detector, progress=lambda done, total: calls.append((done, total)),
                          cache_dir=tmp_path)
    assert result.num_frames == T and detector.calls == T
    assert calls[-1] == (T, T)
    np.testing.assert_allclose(result.frame_times_s, np.arange(T) / FPS, atol=1e-6)
    assert tuple(result.image_size) == (W, H) and result.fps == FPS
    for t in range(T):
        if t in ABSENT:
            assert result.conf[t].max() == 0 and result.box_score[t] == 0, f"frame {t}: nobody there"
        else:
            np.testing.assert_allclose(result.boxes[t], rectangle(t))
            np.testing.assert_allclose(result.kp2d_px[t], expected_keypoints(rectangle(t)), atol=1e-3)
            np.testing.assert_allclose(result.conf[t], 0.9, atol=1e-6)
    assert len(np.unique(result.track_id)) == 1       # 4 missing frames are bridged: one track
    kp, conf = result.h36m()
    assert kp.shape == (T, 17, 2) and conf.shape == (T, 17)
    assert conf[list(ABSENT)].max() == 0 and conf[0].min() > 0


def test_cached_result_is_reused_and_round_trips(tmp_path, video, detector):
    first = detect_video(video, detector, cache_dir=tmp_path)
    again = detect_video(video, detector, cache_dir=tmp_path)
    assert detector.calls == T
    np.testing.assert_array_equal(first.kp2d_px, again.kp2d_px)
    out = tmp_path / "out.npz"
    first.save(out, smooth=True)
    loaded = VideoDetections.load(out)
    np.testing.assert_array_equal(loaded.kp2d_px, first.kp2d_px)
    assert loaded.model_id == first.model_id and loaded.athlete_id == first.athlete_id
    with np.load(out) as data:
        assert data["kp2d_h36m"].shape == (T, 17, 2)
    assert cache_path(video, detector.model_id, tmp_path) != cache_path(video, detector.model_id + "x", tmp_path)


def test_interrupted_run_resumes_where_it_stopped(tmp_path, video, detector):
    reference = detect_video(video, detector, cache_dir=tmp_path / "reference")

    def interrupt_at_17(done, total):
        if done == 17:
            raise KeyboardInterrupt

    detector.calls = 0
    with pytest.raises(KeyboardInterrupt):
        detect_video(video, detector, progress=interrupt_at_17, cache_dir=tmp_path, checkpoint_every=5)
    assert detector.calls == 17
    with np.load(cache_path(video, detector.model_id, tmp_path)) as partial:
        assert len(partial["frame_times_s"]) == 17 and not partial["complete"]
    detector.calls = 0
    resumed = detect_video(video, detector, cache_dir=tmp_path)
    assert detector.calls == T - 17
    for name in ("kp2d_px", "conf", "boxes", "frame_times_s", "track_id"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(reference, name))


def test_cancel_keeps_the_work_done(tmp_path, video, detector):
    cancel = threading.Event()

    def cancel_at_8(done, total):
        if done == 8:
            cancel.set()

    with pytest.raises(DetectionCancelled, match="cancelled at frame 8"):
        detect_video(video, detector, progress=cancel_at_8, cancel=cancel, cache_dir=tmp_path)
    detector.calls = 0
    assert detect_video(video, detector, cache_dir=tmp_path).num_frames == T
    assert detector.calls == T - 8


def test_select_another_athlete_without_detecting_again(tmp_path, video, detector):
    result = detect_video(video, detector, cache_dir=tmp_path)
    picked = result.select_athlete((0, 50.0, 100.0))
    assert picked.athlete_id == result.athlete_id
    np.testing.assert_array_equal(picked.kp2d_px, result.kp2d_px)
    assert detector.calls == T


def test_cli_detect_with_a_model_folder(tmp_path, video, model_dir, capsys):
    from mvcapture.cli import main

    out, summary = tmp_path / "det.npz", tmp_path / "det.json"
    rc = main(["detect", str(video), "--model-dir", str(model_dir), "--device", "cpu", "--out", str(out),
               "--json", str(summary)])
    assert rc == 0
    payload = json.loads(summary.read_text())
    assert payload["frames"] == T and payload["athlete_frames"] == T - len(ABSENT)
    assert VideoDetections.load(out).num_frames == T
    assert "athlete (track 0) seen in 26" in capsys.readouterr().out


def test_cli_offline_without_models_says_what_to_do(tmp_path, video, monkeypatch, capsys):
    from mvcapture.cli import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("MVCAPTURE_OFFLINE", "1")
    assert main(["detect", str(video), "--mode", "rtmo"]) == 2
    err = capsys.readouterr().err
    spec = model_specs("rtmo")["pose"]
    assert spec.onnx_name in err and spec.url in err and "--model-dir" in err


def test_unreadable_video_is_a_clear_error(tmp_path, detector):
    from mvcapture.errors import MvcaptureError

    bad = tmp_path / "not_a_video.mp4"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(MvcaptureError, match="not_a_video.mp4"):
        detect_video(bad, detector, cache_dir=tmp_path)
    with pytest.raises(MvcaptureError, match="does not exist"):
        detect_video(tmp_path / "missing.mp4", detector, cache_dir=tmp_path)
