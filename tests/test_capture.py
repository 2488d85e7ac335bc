"""Live sources and the crash-safe recorder, with file-backed and synthetic sources (no webcam needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from mvcapture.capture import sources as sources_mod
from mvcapture.capture.recorder import Recorder
from mvcapture.capture.sources import CameraSource, FileSource, FrameSource, list_cameras, parse_v4l2_formats
from mvcapture.cli import main
from mvcapture.errors import MvcaptureError
from mvcapture.io.video import read_frames
from mvcapture.session import Session, read_timestamps
from tests.capture_media import draw_frame, media, read_index  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parent.parent


class BurstSource(FrameSource):
    """Produces `n` frames as fast as it can: faster than the recorder writes, so its buffer overflows."""

    def __init__(self, n: int, **kw):
        super().__init__("burst", **kw)
        self.n = n

    def _open(self):
        return 160, 120, 30.0

    def _grab(self):
        if self.frames_captured >= self.n:
            return None
        return draw_frame(self.frames_captured % 1024), None


class FailingFileSource(FileSource):
    """A file-backed camera whose reads start failing after `fail_after` frames (camera unplugged)."""

    def __init__(self, path, fail_after: int, **kw):
        super().__init__(path, **kw)
        self.fail_after = fail_after

    def _grab(self):
        if self.frames_captured >= self.fail_after:
            raise OSError("device disconnected")
        return super()._grab()


def test_no_camera_gives_an_empty_list(tmp_path, monkeypatch):
    assert isinstance(list_cameras(), list)  # whatever this machine has, enumeration does not fail
    monkeypatch.setattr(sources_mod, "V4L_SYSFS", tmp_path)
    assert list_cameras() == []


def test_v4l2_mode_listing_is_parsed():
    text = textwrap.dedent("""\
        ioctl: VIDIOC_ENUM_FMT
            Type: Video Capture
            [0]: 'MJPG' (Motion-JPEG, compressed)
                Size: Discrete 1280x720
                    Interval: Discrete 0.033s (30.000 fps)
                    Interval: Discrete 0.017s (60.000 fps)
            [1]: 'YUYV' (YUYV 4:2:2)
                Size: Discrete 640x480
                    Interval: Discrete 0.033s (30.000 fps)
        """)
    modes = parse_v4l2_formats(text)
    assert [(m.pixel_format, m.width, m.height, m.fps) for m in modes] == [
        ("MJPG", 1280, 720, 30.0), ("MJPG", 1280, 720, 60.0), ("YUYV", 640, 480, 30.0)]


def test_record_list_cameras(tmp_path, monkeypatch, capsys):
    """`mvcapture record --list-cameras`: what enumeration found, with its modes, on screen and as JSON."""
    import json

    from mvcapture.capture.sources import CameraInfo, CameraMode

    monkeypatch.setattr(sources_mod, "V4L_SYSFS", tmp_path)  # no camera
    assert main(["record", "--list-cameras", "--json", str(tmp_path / "none.json")]) == 0
    assert "no camera found on this computer" in capsys.readouterr().out
    assert json.loads((tmp_path / "none.json").read_text()) == {"cameras": []}
    cams = [CameraInfo(0, "Integrated Webcam", "/dev/video0", (CameraMode(1280, 720, 30.0, "MJPG"),)),
            CameraInfo(2, "USB Camera", "/dev/video2")]
    monkeypatch.setattr(sources_mod, "list_cameras", lambda: cams)
    assert main(["record", "--list-cameras", "--json", str(tmp_path / "two.json")]) == 0
    out = capsys.readouterr().out
    assert "0: Integrated Webcam (/dev/video0)" in out and "1280x720 @ 30 fps MJPG" in out
    assert "2: USB Camera" in out and "the OS lists no modes" in out
    listed = json.loads((tmp_path / "two.json").read_text())["cameras"]
    assert [c["index"] for c in listed] == [0, 2] and listed[0]["modes"][0]["width"] == 1280


@pytest.mark.skipif(bool(list_cameras()), reason="this machine has a camera")
def test_missing_camera_is_a_clear_error(capsys):
    with pytest.raises(MvcaptureError, match="camera 0 could not be opened"):
        CameraSource(0).start()
    assert main(["record", "--cameras", "0", "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert "error: no camera found on this computer" in err and "--files" in err


def test_file_source_plays_at_native_rate(media):
    source = FileSource(media["b25"])
    source.start()
    frames = []
    while (frame := source.read(timeout=2.0)) is not None:
        frames.append(frame)
    assert source.status == "ended" and (source.width, source.height) == (128, 96)
    assert [f.index for f in frames] == list(range(50)) and source.frames_dropped == 0
    t = np.array([f.t_ns for f in frames]) / 1e9
    assert t[-1] - t[0] == pytest.approx(49 / 25, abs=0.15)  # real time, not as fast as decoding
    np.testing.assert_allclose([f.media_t_s for f in frames], np.arange(50) / 25, atol=1e-4)


def test_frames_in_equal_frames_written_plus_dropped(media):
    session = Session.create(name="accounting")
    burst = BurstSource(300, buffer_size=2)
    recorder = Recorder(session, [FileSource(media["a30"]), burst])
    stats = recorder.record(seconds=10)
    for st in stats:
        assert st["frames_captured"] == st["frames_written"] + st["frames_dropped"], st
    assert stats[0]["frames_captured"] == 60 and stats[0]["frames_dropped"] == 0
    assert stats[1]["frames_captured"] == 300 and stats[1]["frames_dropped"] > 0
    reopened = Session.open(session.path)
    assert reopened.problems == [] and reopened.meta["state"] == "complete"
    for view, st in zip(reopened.views, stats):
        times, images = read_frames(view.media, "bgr24")
        assert len(times) == st["frames_written"] == len(view.frame_times())
        np.testing.assert_allclose(times, view.frame_times(), atol=2e-5)  # video times = table times
    assert [read_index(im) for im in read_frames(reopened.views[0].media, "bgr24")[1]] == list(range(60))
    table = read_timestamps(reopened.views[1].timestamps)
    assert np.all(np.diff(table["t_monotonic_ns"]) > 0)


def test_a_camera_that_disappears_is_reported_and_the_other_keeps_recording(media):
    events = []
    session = Session.create(name="unplugged")
    failing = FailingFileSource(media["b25"], fail_after=20)
    recorder = Recorder(session, [FileSource(media["a30"]), failing], on_event=events.append)
    stats = recorder.record(seconds=10)
    lost = [e for e in events if e.kind == "lost"]
    assert len(lost) == 1 and lost[0].source == failing.name and "device disconnected" in lost[0].message
    assert stats[1]["status"] == "lost" and stats[1]["frames_written"] == 20
    assert stats[0]["status"] == "ended" and stats[0]["frames_written"] == 60  # kept going to its end
    reopened = Session.open(session.path)
    assert reopened.meta["views"][1]["recording"]["status"] == "lost"
    assert len(read_frames(reopened.views[1].media)[0]) == 20
    assert len(read_frames(reopened.views[0].media)[0]) == 60


CRASH_SCRIPT = """
import sys, time
from mvcapture.capture import FileSource
from mvcapture.capture.recorder import Recorder
from mvcapture.session import Session
session = Session.create(name="crash")
sources = [FileSource(sys.argv[1], loop=True), FileSource(sys.argv[2], loop=True)]
Recorder(session, sources).start()
print(session.path, flush=True)
while True:
    print(" ".join(str(s.frames_captured) for s in sources), flush=True)
    time.sleep(0.02)
"""


def test_kill_9_during_recording_loses_at_most_the_last_second(media):
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(media["a30"]), str(media["b25"])],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        path = Path(proc.stdout.readline().strip())
        start = time.monotonic()
        line = ""
        while time.monotonic() - start < 2.5:  # past the end of the 2 s files: they loop
            line = proc.stdout.readline()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        produced = [int(x) for x in line.split()]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert Session.open(path, repair=False).problems[0].startswith("the recording was interrupted")
    session = Session.open(path)
    assert session.meta["state"] == "recovered"
    assert any("interrupted" in p for p in session.problems)
    for view, n_produced, fps, n_file in zip(session.views, produced, (30, 25), (60, 50)):
        times, images = read_frames(view.media, "bgr24")  # playable
        table = view.frame_times()
        assert len(times) == len(table) > 0
        np.testing.assert_allclose(times, table, atol=2e-5)
        assert [read_index(im) for im in images] == [k % n_file for k in range(len(images))]
        lost = n_produced - len(images)
        assert 0 <= lost <= fps * 1.0, (lost, n_produced, len(images))
    assert not list(path.glob("media/*.segments"))


def test_a_session_being_recorded_is_not_repaired_under_the_recorder(media):
    session = Session.create(name="live")
    recorder = Recorder(session, [FileSource(media["a30"]), FileSource(media["b25"])], segment_s=0.2)
    recorder.start()
    try:
        time.sleep(0.6)
        during = Session.open(session.path)
        assert during.problems == ["this session is being recorded right now; its videos are incomplete"]
        assert list(session.path.glob("media/view0.segments/seg_*.mp4"))
        assert len(read_frames(sorted(session.path.glob("media/view0.segments/seg_*.mp4"))[0])[0]) > 0
        with pytest.raises(MvcaptureError, match="already being recorded"):
            Recorder(Session.open(session.path, repair=False), [FileSource(media["a30"])]).start()
    finally:
        stats = recorder.stop()
    after = Session.open(session.path)
    assert after.problems == [] and after.meta["state"] == "complete"
    assert [len(v.frame_times()) for v in after.views] == [st["frames_written"] for st in stats]
