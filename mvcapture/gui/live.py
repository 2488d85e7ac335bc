"""Live pose for the Capture tab: detect and lift each camera's newest frame in a worker thread, align
the two views over the last seconds and report the camera angle.

The work is done by the live pipeline (`mvcapture.pipeline.live.LivePipeline`: detector, tracker, lifter,
running alignment); this thread only feeds it the sources' newest frames at a fixed rate and sends the
result to the GUI.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6 import QtCore

from mvcapture.errors import MvcaptureError
from mvcapture.gui.workers import lower_thread_priority

log = logging.getLogger(__name__)

LIVE_RATE_HZ = 10.0
HISTORY_FRAMES = 50  # frames aligned together (5 s at 10 Hz): one similarity for the recent motion
MIN_ALIGN_FRAMES = 8


@dataclass
class LivePose:
    """One live result. kp2d (V, 17, 2) px and conf (V, 17) per view's newest frame; aligned (V, 17, 3)
    metres in view 0's camera frame, residual_mm (17,) and angle_deg (between the optical axes of views 0
    and 1, degrees) once enough frames were seen, else None."""

    kp2d: np.ndarray
    conf: np.ndarray
    aligned: np.ndarray | None
    residual_mm: np.ndarray | None
    angle_deg: float | None


def default_detector():
    from mvcapture.detect import create_detector

    return create_detector("lightweight")


def default_lifter():
    from mvcapture.lifter import load_lifter

    return load_lifter("active")  # the model store's active version (the shipped default until one is activated)


class LivePoseWorker(QtCore.QThread):
    """Follows `sources` (capture FrameSources, read with `latest()` only, never consumed).

    Args:
        make_detector / make_lifter: build the detector and the Lifter inside the thread (slow: model loading).

    Signals: `pose_ready(LivePose)`, `failed(message)` (e.g. models missing; the thread then ends).
    """

    pose_ready = QtCore.Signal(object)
    failed = QtCore.Signal(str)

    def __init__(self, sources: list, make_detector: Callable = default_detector,
                 make_lifter: Callable = default_lifter, rate_hz: float = LIVE_RATE_HZ,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.sources = list(sources)
        self._make_detector = make_detector
        self._make_lifter = make_lifter
        self._period_s = 1.0 / rate_hz
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()
        self.wait()

    def run(self) -> None:
        lower_thread_priority()
        try:
            from mvcapture.pipeline.live import LivePipeline

            detector = self._make_detector()
            lifter = self._make_lifter()
        except (MvcaptureError, ImportError) as exc:
            self.failed.emit(f"live pose is off: {exc}")
            return
        views = len(self.sources)
        # The rate limit already spares the lifter: lift every polled frame (no extra 3D delay).
        pipeline = LivePipeline(detector, lifter, num_views=views, window=HISTORY_FRAMES, refit_every=5,
                                min_align_frames=MIN_ALIGN_FRAMES, lift_stride=1)
        last_index = [-1] * views
        while not self._stop.is_set():
            start = time.monotonic()
            frames = [s.latest() for s in self.sources]
            if any(f is None for f in frames) or all(f.index == i for f, i in zip(frames, last_index)):
                self._stop.wait(self._period_s)
                continue
            try:
                last_index = [f.index for f in frames]
                r = pipeline.process([f.image for f in frames], [f.t_ns for f in frames])
                fitted = views >= 2 and r.fitted
                result = LivePose(r.kp2d_px, r.conf, r.aligned_m if fitted else None,
                                  r.residual_mm if fitted else None,
                                  float(r.axis_angle_deg[1]) if fitted else None)
            except Exception as exc:  # one bad frame must not end live pose
                log.exception("live pose failed on a frame")
                self.failed.emit(f"live pose stopped: {exc}")
                return
            self.pose_ready.emit(result)
            self._stop.wait(max(0.0, self._period_s - (time.monotonic() - start)))
