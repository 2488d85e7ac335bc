"""Webcam stand-ins (`mvcapture.capture.standin`): camera specs, and a portrait 60-fps H.264 clip transcoded to
what a 720p30 MJPEG webcam delivers, played through a looping FileSource."""

from __future__ import annotations

import numpy as np
import pytest

from mvcapture.capture.standin import CameraSpec, fit_frame, parse_camera, resample_indices, webcam_video
from mvcapture.errors import MvcaptureError


def test_camera_specs():
    assert parse_camera("720p30") == CameraSpec(1280, 720, 30.0)
    assert parse_camera("480p30") == CameraSpec(640, 480, 30.0)
    assert parse_camera("1080P25") == CameraSpec(1920, 1080, 25.0)
    assert parse_camera("native").native and str(parse_camera("native")) == "native"
    assert str(parse_camera("720p30")) == "720p30"
    assert parse_camera("720p30").to_dict() == {"spec": "720p30", "width": 1280, "height": 720, "fps": 30.0,
                                                "codec": "mjpeg"}
    for bad in ("720", "700p30", "hd", "1280x720"):
        with pytest.raises(MvcaptureError, match="720p30"):
            parse_camera(bad)
    with pytest.raises(MvcaptureError, match="between 1 and 120 fps"):
        parse_camera("720p0")


def test_portrait_picture_is_pillarboxed_upright():
    portrait = np.full((192, 108, 3), 200, np.uint8)
    portrait[:20] = 50   # the top stays at the top (not rotated)
    out = fit_frame(portrait, 128, 72)
    assert out.shape == (72, 128, 3)
    picture = np.flatnonzero(out[36, :, 0] > 0)
    assert picture[0] == 128 // 2 - 20 and picture[-1] == 128 // 2 + 20 - 1   # 40.5 px wide, centred
    assert (out[:, :picture[0]] == 0).all() and (out[:, picture[-1] + 1:] == 0).all()
    assert out[2, 64, 0] == 50 and out[70, 64, 0] == 200


def test_resampling_to_the_camera_rate():
    at_60 = np.arange(100) / 60
    assert resample_indices(at_60, 30).tolist() == list(range(0, 100, 2))
    assert resample_indices(at_60, 60).tolist() == list(range(100))
    at_20 = np.arange(10) / 20
    assert resample_indices(at_20, 50).tolist() == np.minimum(np.rint(np.arange(25) * 0.4), 9).astype(int).tolist()


def test_webcam_video_is_720p30_mjpeg_and_plays_looped(tmp_path):
    from mvcapture.capture.sources import FileSource
    from mvcapture.io.video import VideoWriter, probe

    source = tmp_path / "portrait.mp4"
    with VideoWriter(source, 108, 192, 60.0) as writer:
        for i in range(24):
            image = np.zeros((192, 108, 3), np.uint8)
            image[40:150, 30:80] = 40 + 8 * i
            writer.write(image)
    out = webcam_video(source, parse_camera("720p30"), tmp_path)
    info = probe(out)
    assert (info.width, info.height, info.video_codec, info.frame_count) == (1280, 720, "mjpeg", 12)
    assert info.fps == pytest.approx(30.0)
    assert webcam_video(source, parse_camera("native"), tmp_path) == source
    with FileSource(out, loop=True) as camera:
        frames = [camera.read(5.0) for _ in range(15)]   # past the 12 frames: looped
    assert all(f is not None and f.image.shape == (720, 1280, 3) for f in frames)
    assert frames[0].image[:, :400].max() < 20    # pillarbox bars
    assert frames[14].media_t_s == pytest.approx(14 / 30, abs=1e-3)
