"""Live pose for the Capture tab: detect and lift each camera's newest frame in a worker thread, align
the two views over the last seconds and report the camera angle.

The work is done by the lower layers (detector, `LiveLifter`, `consistency_residual`, `rotation_angle_deg`);
this thread only feeds them the sources' newest frames at a fixed rate and sends the result to the GUI.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
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
    metres in view 0's camera frame, residual_mm (17,) and angle_deg (camera angle between views 0 and 1)
    once enough frames were seen, else None."""

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
            from mvcapture.core.metrics import consistency_residual
            from mvcapture.core.normalize import norm25d_to_metres
            from mvcapture.core.procrustes import rotation_angle_deg
            from mvcapture.core.skeleton import coco_to_h36m
            from mvcapture.detect import AthleteTracker
            from mvcapture.lifter import LiveLifter

            detector = self._make_detector()
            lifter = self._make_lifter()
        except (MvcaptureError, ImportError) as exc:
            self.failed.emit(f"live pose is off: {exc}")
            return
        views = len(self.sources)
        live = [LiveLifter(lifter) for _ in range(views)]
        trackers: list = [None] * views
        history = [deque(maxlen=HISTORY_FRAMES) for _ in range(views)]
        weights = [deque(maxlen=HISTORY_FRAMES) for _ in range(views)]
        last_index = [-1] * views
        while not self._stop.is_set():
            start = time.monotonic()
            frames = [s.latest() for s in self.sources]
            if any(f is None for f in frames) or all(f.index == i for f, i in zip(frames, last_index)):
                self._stop.wait(self._period_s)
                continue
            try:
                kp2d, conf = np.zeros((views, 17, 2)), np.zeros((views, 17))
                for v, frame in enumerate(frames):
                    last_index[v] = frame.index
                    h, w = frame.image.shape[:2]
                    if trackers[v] is None:
                        trackers[v] = AthleteTracker((w, h))
                    person = trackers[v].update(detector.detect(frame.image))
                    if person is not None:
                        kp2d[v], conf[v] = coco_to_h36m(person.keypoints, person.scores)
                    pose = norm25d_to_metres(live[v].push(kp2d[v], conf[v], (w, h))[None])[0]  # this frame's scale
                    history[v].append(pose)
                    weights[v].append(conf[v])
                result = LivePose(kp2d, conf, None, None, None)
                if views >= 2 and len(history[0]) >= MIN_ALIGN_FRAMES:
                    w01 = np.asarray(weights[0]) * np.asarray(weights[1])
                    if w01.sum() > 0:
                        res = consistency_residual(np.asarray(history[1]), np.asarray(history[0]), w01 + 1e-6)
                        result.aligned = np.stack([history[0][-1], res.transform.aligned[-1]])
                        result.residual_mm = np.asarray(res.residual_mm[-1])
                        result.angle_deg = float(rotation_angle_deg(res.transform.R))
            except Exception as exc:  # one bad frame must not end live pose
                log.exception("live pose failed on a frame")
                self.failed.emit(f"live pose stopped: {exc}")
                return
            self.pose_ready.emit(result)
            self._stop.wait(max(0.0, self._period_s - (time.monotonic() - start)))
