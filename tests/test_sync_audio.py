"""Audio alignment on generated scenes: GCC-PHAT offsets within 1 ms, clock drift within 10 ppm, a real
encode/decode round trip through PyAV, and low confidence flagged when the sounds do not match."""

from __future__ import annotations

import fractions

import numpy as np
import pytest

from mvcapture.sync import apply_sync, estimate_audio_drift, estimate_audio_offset
from mvcapture.sync.synthetic import SyntheticScene, true_sync


@pytest.fixture(scope="module")
def scene():
    return SyntheticScene(30.0, seed=3)


@pytest.mark.parametrize("rate_a, rate_b, start_a, start_b, dur_a, dur_b", [
    (48000, 44100, 1.0, 3.3456789, 15.0, 15.0),     # B started later: negative offset
    (16000, 48000, 5.0, 2.00037, 12.0, 20.0),       # B started earlier, longer, other rate
    (44100, 22050, 0.5, 0.5 + 1 / 30 * 7.37, 8.0, 6.0),  # fractional video frames, short B
])
def test_audio_offset_within_1ms(scene, rate_a, rate_b, start_a, start_b, dur_a, dur_b):
    a = scene.record_audio(rate_a, start_a, dur_a, seed=1)
    b = scene.record_audio(rate_b, start_b, dur_b, seed=2)
    truth, _ = true_sync(start_a, start_b)
    result = estimate_audio_offset(a, rate_a, b, rate_b)
    assert abs(result.offset_s - truth) < 1e-3
    assert result.method == "audio" and not result.low_confidence and result.confidence > 0.9


def test_audio_stereo_and_max_lag(scene):
    a = scene.record_audio(48000, 2.0, 10.0, seed=1)
    b = scene.record_audio(48000, 2.25, 10.0, seed=2)
    stereo_b = np.stack([b, 0.5 * b], axis=1)
    result = estimate_audio_offset(a, 48000, stereo_b, 48000, max_lag_s=1.0)
    assert abs(result.offset_s + 0.25) < 1e-3
    # The true offset lies outside a 0.1 s bound: whatever is found is not trusted.
    bounded = estimate_audio_offset(a, 48000, b, 48000, max_lag_s=0.1)
    assert abs(bounded.offset_s) <= 0.1 + 1e-9 and bounded.low_confidence


def test_unrelated_sound_is_flagged(scene):
    a = scene.record_audio(16000, 1.0, 10.0, seed=1)
    noise = np.random.default_rng(0).standard_normal(16000 * 8).astype(np.float32)
    result = estimate_audio_offset(a, 16000, noise, 16000)
    assert result.low_confidence and result.confidence < 0.5 and "audio" in result.reason
    silent = estimate_audio_offset(a, 16000, np.zeros(16000), 16000)
    assert silent.low_confidence and "no sound" in silent.reason


@pytest.mark.parametrize("drift_ppm", [123.0, -1001.0])
def test_audio_drift_within_10ppm(drift_ppm):
    scene = SyntheticScene(70.0, seed=4)
    a = scene.record_audio(48000, 1.0, 60.0, seed=1)
    b = scene.record_audio(16000, 3.21, 60.0, drift_ppm=drift_ppm, seed=2)
    truth_offset, truth_drift = true_sync(1.0, 3.21, drift_ppm)
    result = estimate_audio_drift(a, 48000, b, 16000)
    assert abs(result.drift_ppm - truth_drift) < 10.0
    assert abs(result.offset_s - truth_offset) < 1e-3
    assert result.method == "audio+drift" and not result.low_confidence
    # Mapping B's clock onto A's: an event at A time 50 s comes back to 50 s.
    t_b = (1 + truth_drift * 1e-6) * 50.0 + truth_offset
    assert abs(apply_sync(np.array([t_b]), result)[0] - 50.0) < 1e-3


def _write_clip(path, scene: SyntheticScene, start_s: float, duration_s: float, fps: int, rate: int, seed: int):
    """A small MP4 (MPEG-4 video of the projected joints + AAC mono sound) of the scene."""
    import av

    audio = scene.record_audio(rate, start_s, duration_s, seed=seed)
    view = scene.record_view(0.0, fps, start_s, duration_s, seed=seed, image_size=(96, 64), focal_px=60.0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        sound = container.add_stream("aac", rate=rate)
        sound.layout = "mono"
        for kp in view["kp2d_px"]:
            image = np.zeros((64, 96, 3), np.uint8)
            xy = kp.astype(int)
            inside = (xy[:, 0] >= 0) & (xy[:, 0] < 96) & (xy[:, 1] >= 0) & (xy[:, 1] < 64)
            image[xy[inside, 1], xy[inside, 0]] = 255
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        for i in range(0, len(audio), 1024):
            frame = av.AudioFrame.from_ndarray(audio[None, i:i + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, i, fractions.Fraction(1, rate)
            container.mux(sound.encode(frame))
        container.mux(sound.encode())


def _read_audio(path) -> tuple[np.ndarray, int, float]:
    """Decoded mono samples, sample rate and the first sample's time (s) from the stream's timestamps."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks, first_s = [], None
        for frame in container.decode(stream):
            if first_s is None:
                first_s = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
            chunks.append(frame.to_ndarray().reshape(-1))
        return np.concatenate(chunks), stream.rate, first_s or 0.0


def test_audio_offset_through_encoded_files(tmp_path):
    """Encode two short videos with sound (PyAV: MPEG-4 + AAC), decode them back, align by sound."""
    scene = SyntheticScene(8.0, seed=2)
    _write_clip(tmp_path / "a.mp4", scene, 1.0, 3.0, 30, 48000, seed=1)
    _write_clip(tmp_path / "b.mp4", scene, 1.4321, 3.0, 30, 44100, seed=2)
    a, rate_a, first_a = _read_audio(tmp_path / "a.mp4")
    b, rate_b, first_b = _read_audio(tmp_path / "b.mp4")
    assert (rate_a, rate_b) == (48000, 44100) and abs(len(a) / rate_a - 3.0) < 0.1
    result = estimate_audio_offset(a, rate_a, b, rate_b)
    truth, _ = true_sync(1.0, 1.4321)
    # Sample k of a stream plays at first_s + k / rate: shift the offset by the streams' start times.
    offset_s = result.offset_s + first_b - first_a
    assert abs(offset_s - truth) < 1e-3 and not result.low_confidence


def test_audio_offset_through_project_decoder(tmp_path):
    """The same round trip through `mvcapture.io.video.read_audio` (the session import's decoder)."""
    from mvcapture.io.video import read_audio

    scene = SyntheticScene(8.0, seed=5)
    _write_clip(tmp_path / "a.mp4", scene, 0.8, 3.0, 30, 44100, seed=1)
    _write_clip(tmp_path / "b.mp4", scene, 0.3217, 3.0, 25, 48000, seed=2)
    (a, rate_a), (b, rate_b) = read_audio(tmp_path / "a.mp4"), read_audio(tmp_path / "b.mp4")
    result = estimate_audio_offset(a, rate_a, b, rate_b)
    assert abs(result.offset_s - true_sync(0.8, 0.3217)[0]) < 1e-3 and not result.low_confidence
