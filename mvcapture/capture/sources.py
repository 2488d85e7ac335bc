"""Live frame sources: webcams (OpenCV) and video files played as if live, one capture thread each.

Every frame gets a monotonic timestamp (`time.monotonic_ns`) when it is captured and goes into a bounded
buffer; when the consumer is too slow the oldest frame is dropped and counted, so
`frames_captured == frames_read + frames_dropped + frames buffered` at all times. A source that fails
(camera unplugged, read errors, decoding error) stops with status "lost" and reports a `SourceEvent`;
other sources are not affected. No Qt here: the GUI observes sources through `on_event` and `latest()`.
"""

from __future__ import annotations

import collections
import glob
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mvcapture.errors import MvcaptureError

log = logging.getLogger(__name__)

# Consecutive failed reads (or seconds without a frame) after which a camera counts as lost.
CAMERA_LOST_READS = 30
CAMERA_LOST_S = 2.0
# Linux lists video devices here (one folder per /dev/videoN, with the device's name)
V4L_SYSFS = Path("/sys/class/video4linux")


@dataclass(frozen=True)
class Frame:
    """One captured frame: `index` counts captured frames of its source from 0; `t_ns` is time.monotonic_ns()
    at capture; `image` is uint8 (H, W, 3) BGR; `media_t_s` is the frame's time in its file (FileSource only)."""

    index: int
    t_ns: int
    image: np.ndarray
    media_t_s: float | None = None


@dataclass(frozen=True)
class SourceEvent:
    """A status change of a source: kind is "started", "ended" (file finished), "lost" (failure) or "stopped"."""

    source: str
    kind: str
    message: str = ""
    t_ns: int = field(default_factory=time.monotonic_ns)


@dataclass(frozen=True)
class CameraMode:
    width: int
    height: int
    fps: float | None
    pixel_format: str | None = None


@dataclass(frozen=True)
class CameraInfo:
    """A camera the OS offers: OpenCV index, human name, device path and the modes the OS lists (may be empty)."""

    index: int
    name: str
    device: str | None = None
    modes: tuple[CameraMode, ...] = ()


class FrameSource:
    """Base of live sources: a capture thread filling a bounded drop-oldest buffer.

    Subclasses implement `_open()` (returning the actual (width, height, fps)), `_grab()` (`(image_bgr, media_t_s)`,
    or None at a clean end of stream or when stopping; raise on failure) and `_close()`.
    """

    def __init__(self, name: str, buffer_size: int = 8,
                 on_event: Callable[[SourceEvent], None] | None = None):
        if buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        self.name = name
        self.on_event = on_event
        self.width: int | None = None
        self.height: int | None = None
        self.fps: float | None = None
        self.status = "idle"  # idle, running, ended, lost, stopped
        self.error: str | None = None
        self.frames_captured = 0
        self.frames_dropped = 0
        self.frames_read = 0
        self._buffer: collections.deque[Frame] = collections.deque()
        self._buffer_size = buffer_size
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: Frame | None = None

    # -- subclass hooks ------------------------------------------------------------------------------------
    def _open(self) -> tuple[int, int, float]:
        raise NotImplementedError

    def _grab(self) -> tuple[np.ndarray, float | None] | None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    # -- public API ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the device/file (raises MvcaptureError if it cannot) and start the capture thread."""
        if self._thread is not None:
            raise RuntimeError(f"source {self.name} already started")
        self.width, self.height, self.fps = self._open()
        self.status = "running"
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
        self._thread.start()
        self._emit("started", f"{self.width}x{self.height} at {self.fps:.2f} fps")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop capturing; frames already buffered stay readable."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        """True while the capture thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def read(self, timeout: float | None = None) -> Frame | None:
        """Pop the oldest buffered frame, waiting up to `timeout` s; None when there is none (or the source ended)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._buffer:
                if not self.alive and self._thread is not None:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining if remaining is not None else 0.1)
            self.frames_read += 1
            return self._buffer.popleft()

    def latest(self) -> Frame | None:
        """The newest captured frame (for previews), without consuming the buffer."""
        return self._latest

    @property
    def buffered(self) -> int:
        with self._cond:
            return len(self._buffer)

    def stats(self) -> dict:
        return {"name": self.name, "status": self.status, "error": self.error, "width": self.width,
                "height": self.height, "fps": self.fps, "frames_captured": self.frames_captured,
                "frames_dropped": self.frames_dropped}

    def __enter__(self) -> "FrameSource":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------------------------
    def _emit(self, kind: str, message: str = "") -> None:
        event = SourceEvent(self.name, kind, message)
        log.info("source %s %s %s", self.name, kind, message)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a broken observer must not kill capture
                log.exception("event callback failed for %s", self.name)

    def _push(self, image: np.ndarray, media_t_s: float | None) -> None:
        frame = Frame(self.frames_captured, time.monotonic_ns(), image, media_t_s)
        with self._cond:
            if len(self._buffer) >= self._buffer_size:
                self._buffer.popleft()
                self.frames_dropped += 1
            self._buffer.append(frame)
            self.frames_captured += 1
            self._latest = frame
            self._cond.notify_all()

    def _run(self) -> None:
        kind, message = "stopped", ""
        try:
            while not self._stop.is_set():
                grabbed = self._grab()
                if grabbed is None:
                    if not self._stop.is_set():
                        kind, message = "ended", "end of stream"
                    break
                image, media_t = grabbed
                self._push(image, media_t)
        except Exception as exc:
            kind, message = "lost", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.error = message
            log.warning("source %s lost: %s", self.name, message, exc_info=True)
        finally:
            try:
                self._close()
            except Exception:
                log.exception("closing source %s failed", self.name)
            self.status = kind
            with self._cond:
                self._cond.notify_all()
            self._emit(kind, message)


class CameraSource(FrameSource):
    """A webcam through OpenCV. Requested size/fps are negotiated: `width`, `height`, `fps` report what the
    camera actually delivers after `start()`."""

    def __init__(self, index: int, width: int | None = None, height: int | None = None, fps: float | None = None,
                 buffer_size: int = 8, on_event: Callable[[SourceEvent], None] | None = None,
                 name: str | None = None):
        super().__init__(name or f"camera{index}", buffer_size, on_event)
        self.index = index
        self.requested = (width, height, fps)
        self._cap = None

    @property
    def identity(self) -> str:
        """What identifies this physical camera across recordings (lens intrinsics are remembered by it)."""
        return camera_identity(self.index)

    def _open(self) -> tuple[int, int, float]:
        import cv2

        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(self.index, backend)
        if not cap.isOpened():
            cap.release()
            raise MvcaptureError(
                f"camera {self.index} could not be opened: it is not connected, in use by another program, "
                f"or not allowed (found cameras: {[c.index for c in list_cameras()] or 'none'})")
        width, height, fps = self.requested
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise MvcaptureError(f"camera {self.index} opened but delivers no frames")
        actual_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0) or float(fps or 30.0)
        h, w = image.shape[:2]
        if (width and width != w) or (height and height != h) or (fps and abs(actual_fps - fps) > 0.5):
            log.warning("camera %d: asked for %sx%s at %s fps, got %dx%d at %.2f fps",
                        self.index, width, height, fps, w, h, actual_fps)
        self._cap = cap
        self._failed_since: float | None = None
        self._failures = 0
        return w, h, actual_fps

    def _grab(self) -> tuple[np.ndarray, None] | None:
        while not self._stop.is_set():
            ok, image = self._cap.read()
            if ok and image is not None:
                self._failures, self._failed_since = 0, None
                return image, None
            self._failures += 1
            now = time.monotonic()
            self._failed_since = self._failed_since or now
            if self._failures >= CAMERA_LOST_READS or now - self._failed_since > CAMERA_LOST_S:
                raise MvcaptureError(f"camera {self.index} stopped delivering frames (unplugged or failed)")
            time.sleep(0.01)
        return None

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FileSource(FrameSource):
    """Plays a video file as if it were a live camera: frames are released at their presentation times
    (native rate, real time), timestamped when released. `loop=True` restarts at the end (demos, long tests)."""

    def __init__(self, path: Path | str, loop: bool = False, buffer_size: int = 8,
                 on_event: Callable[[SourceEvent], None] | None = None, name: str | None = None):
        super().__init__(name or Path(path).stem, buffer_size, on_event)
        self.path = Path(path)
        self.loop = loop
        self._frames = None

    def _open(self) -> tuple[int, int, float]:
        from mvcapture.io.video import probe

        info = probe(self.path)
        self.info = info
        self._frames = self._iterate()
        self._t0: float | None = None
        self._loop_offset = 0.0
        return info.width, info.height, info.fps

    def _iterate(self):
        from mvcapture.io.video import iter_frames

        return iter_frames(self.path, pixel_format="bgr24")

    def _grab(self) -> tuple[np.ndarray, float] | None:
        item = next(self._frames, None)
        if item is None:
            if not self.loop or self.frames_captured == 0:
                return None
            self._loop_offset = self._last_media_t + 1.0 / max(self.info.fps, 1e-6) - self.info.start_s
            self._frames = self._iterate()
            item = next(self._frames, None)
            if item is None:
                return None
        media_t, image = item
        self._last_media_t = media_t + self._loop_offset
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now - (media_t - self.info.start_s)
        wait = self._t0 + (self._last_media_t - self.info.start_s) - now
        if wait > 0:
            self._stop.wait(wait)
        return image, self._last_media_t

    def _close(self) -> None:
        if self._frames is not None:
            self._frames.close()
            self._frames = None


def list_cameras(max_index: int = 10) -> list[CameraInfo]:
    """Cameras present on this computer (an empty list when there are none).

    Linux: video-capture nodes from /sys/class/video4linux (names from sysfs, modes from `v4l2-ctl` when
    installed). Elsewhere: OpenCV indices 0..max_index-1 that open.
    """
    if sys.platform.startswith("linux"):
        return _linux_cameras()
    return _probe_opencv_indices(max_index)


def _linux_cameras() -> list[CameraInfo]:
    cameras = []
    for node in sorted(glob.glob(str(V4L_SYSFS / "video*")), key=lambda p: int(p.rsplit("video", 1)[1])):
        index = int(node.rsplit("video", 1)[1])
        # a camera exposes a metadata node too; the capture node is the one with index 0 under its device
        try:
            if Path(node, "index").read_text().strip() not in ("", "0"):
                continue
        except OSError:
            pass
        try:
            name = Path(node, "name").read_text().strip()
        except OSError:
            name = f"camera {index}"
        device = f"/dev/video{index}"
        if not os.path.exists(device):
            continue
        cameras.append(CameraInfo(index, name, device, _v4l2_modes(device)))
    return cameras


def camera_identity(index: int) -> str:
    """A camera's identity across recordings and reboots: its name, plus its USB serial number where it has
    one (Linux; two cameras of one model without serials share an identity, and, being the same model,
    nearly the same lens). Elsewhere OpenCV gives no names: "camera INDEX"."""
    node = V4L_SYSFS / f"video{index}"
    try:
        name = Path(node, "name").read_text().strip()
    except OSError:
        return f"camera {index}"
    try:
        serial = (Path(node, "device").resolve().parent / "serial").read_text().strip()
    except OSError:
        serial = ""
    return f"{name} (serial {serial})" if serial else name


def _v4l2_modes(device: str) -> tuple[CameraMode, ...]:
    tool = shutil.which("v4l2-ctl")
    if tool is None:
        return ()
    try:
        text = subprocess.run([tool, "-d", device, "--list-formats-ext"], capture_output=True, text=True,
                              timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return parse_v4l2_formats(text)


def parse_v4l2_formats(text: str) -> tuple[CameraMode, ...]:
    """Modes from `v4l2-ctl --list-formats-ext` output: one CameraMode per (format, size, interval)."""
    import re

    modes: list[CameraMode] = []
    fmt = None
    size = None
    for line in text.splitlines():
        m = re.search(r"\[\d+\]: '(\w+)'", line)
        if m:
            fmt = m.group(1)
            continue
        m = re.search(r"Size: \w+ (\d+)x(\d+)", line)
        if m:
            size = (int(m.group(1)), int(m.group(2)))
            continue
        m = re.search(r"Interval: \w+ [\d.]+s \(([\d.]+) fps\)", line)
        if m and size is not None:
            modes.append(CameraMode(size[0], size[1], float(m.group(1)), fmt))
    return tuple(dict.fromkeys(modes))


def _probe_opencv_indices(max_index: int) -> list[CameraInfo]:
    import cv2

    cameras = []
    for index in range(max_index):
        cap = cv2.VideoCapture(index)
        try:
            if cap.isOpened():
                cameras.append(CameraInfo(index, f"camera {index}"))
        finally:
            cap.release()
    return cameras
