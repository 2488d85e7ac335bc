"""mvcapture.io.video: probing, upright decoding, VFR timestamps, audio, clear errors for bad files."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from mvcapture.errors import MvcaptureError
from mvcapture.io import video
from tests.capture_media import draw_frame, media, read_index  # noqa: F401 (fixture)


def test_probe_constant_rate_files(media):
    a = video.probe(media["a30"])
    assert (a.width, a.height, a.frame_count, a.rotation_deg) == (160, 120, 60, 0)
    assert a.fps == pytest.approx(30.0, abs=1e-3) and a.duration_s == pytest.approx(2.0, abs=1e-3)
    assert not a.variable_frame_rate and not a.has_audio
    b = video.probe(media["b25"])
    assert (b.width, b.height, b.frame_count) == (128, 96, 50) and b.fps == pytest.approx(25.0, abs=1e-3)
    ntsc = video.probe(media["ntsc"])
    assert ntsc.fps == pytest.approx(30000 / 1001, abs=1e-3)


def test_frames_come_back_in_order_with_their_times(media):
    times, images = video.read_frames(media["b25"], pixel_format="bgr24")
    assert images.shape == (50, 96, 128, 3) and images.dtype == np.uint8
    assert [read_index(im) for im in images] == list(range(50))
    np.testing.assert_allclose(times, np.arange(50) / 25, atol=1e-4)
    rgb = video.read_frames(media["b25"], pixel_format="rgb24", start_s=1.0, end_s=1.2)[1]
    assert len(rgb) == 5 and read_index(rgb[0]) == 25
    np.testing.assert_array_equal(rgb[0][40:70].reshape(-1, 3).max(0)[[0, 2]] > 200, [True, False])  # red in RGB


def test_variable_frame_rate_times_come_from_presentation_timestamps(media):
    rng = np.random.default_rng(0)
    truth = np.concatenate([[0.0], np.cumsum(rng.choice([1 / 60, 1 / 30, 1 / 15], size=44))])
    np.testing.assert_allclose(video.frame_times(media["vfr"]), truth, atol=2e-5)
    decoded, images = video.read_frames(media["vfr"])
    np.testing.assert_allclose(decoded, truth, atol=2e-5)
    assert [read_index(im) for im in images] == list(range(45))
    info = video.probe(media["vfr"])
    assert info.variable_frame_rate and info.frame_count == 45


def test_rotation_metadata_gives_upright_frames(media):
    info = video.probe(media["portrait"])
    assert info.rotation_deg == 90 and (info.coded_width, info.coded_height) == (160, 120)
    assert (info.width, info.height) == (120, 160)
    _, images = video.read_frames(media["portrait"], pixel_format="bgr24")
    assert images.shape[1:] == (160, 120, 3)
    # undoing the display rotation gives back what was drawn
    assert read_index(np.rot90(images[7], k=-1)) == 7
    if shutil.which("ffmpeg"):  # the same picture ffmpeg (and phones' players) show
        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(media["portrait"]), "-frames:v", "1", "-f",
                              "rawvideo", "-pix_fmt", "bgr24", "-"], capture_output=True, check=True).stdout
        reference = np.frombuffer(raw, np.uint8).reshape(160, 120, 3)
        assert np.abs(reference.astype(int) - images[0]).mean() < 3


def test_audio_is_mono_float_on_the_video_timeline(media):
    assert video.probe(media["audio"]).has_audio
    samples, rate = video.read_audio(media["audio"])
    assert rate == 16000 and samples.dtype == np.float32 and samples.ndim == 1
    first_click = np.argmax(np.abs(samples) > 0.5) / rate
    assert first_click == pytest.approx(0.25, abs=1e-3)
    low, low_rate = video.read_audio(media["audio"], sample_rate=8000)
    assert low_rate == 8000 and abs(len(low) - len(samples) / 2) < 600
    with pytest.raises(MvcaptureError, match="a30.mp4.*no audio"):
        video.read_audio(media["a30"])


def test_unreadable_files_name_the_file_and_the_problem(tmp_path, media):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    with pytest.raises(MvcaptureError, match="garbage.mp4: not a readable video"):
        video.probe(garbage)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(media["a30"].read_bytes()[: media["a30"].stat().st_size // 2])
    with pytest.raises(MvcaptureError, match="truncated.mp4"):
        video.probe(truncated)
    with pytest.raises(MvcaptureError, match="missing.mp4: file not found"):
        video.read_frames(tmp_path / "missing.mp4")
    sound_only = tmp_path / "sound.m4a"
    import av

    with av.open(str(sound_only), "w") as c:
        s = c.add_stream("aac", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    with pytest.raises(MvcaptureError, match="sound.m4a: contains no video track"):
        video.probe(sound_only)


def test_writer_picks_an_available_encoder_and_crops_odd_sizes(tmp_path):
    assert video.available_video_codec() in video.VIDEO_CODECS
    path = tmp_path / "odd.mp4"
    with video.VideoWriter(path, 161, 121, 30) as w:
        for i in range(5):
            w.write(np.pad(draw_frame(i), ((0, 1), (0, 1), (0, 0))))
    info = video.probe(path)
    assert (info.width, info.height, info.frame_count) == (160, 120, 5)
    with video.VideoWriter(tmp_path / "fallback.mp4", 160, 120, 30, codec="mpeg4") as w:
        w.write(draw_frame(3))
    assert video.probe(tmp_path / "fallback.mp4").video_codec == "mpeg4"
    assert read_index(video.read_frames(tmp_path / "fallback.mp4", "bgr24")[1][0]) == 3


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs the ffmpeg command to make the clip")
def test_trimmed_clip_with_b_frames_lists_only_the_frames_shown(tmp_path, media):
    full, trimmed = tmp_path / "bframes.mp4", tmp_path / "trimmed.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(media["a30"]), "-c:v", "libx264", "-bf", "3", "-g", "30",
                    str(full)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-ss", "0.5", "-i", str(full), "-c", "copy", str(trimmed)], check=True)
    times, images = video.read_frames(trimmed, "bgr24")
    np.testing.assert_allclose(video.frame_times(trimmed), times)
    assert video.probe(trimmed).frame_count == len(images) == 45 and read_index(images[0]) == 15
