"""Live pose for the Capture tab: detect (or track) and lift both cameras' newest frames in a worker thread
as fast as the cameras and the machine allow, align the two views over the last seconds and report the
camera angle.

The work is done by the live pipeline (`mvcapture.pipeline.live.LivePipeline`: detector, tracking, one
batched pose call for both views, lifter with an adaptive stride, running alignment); this thread feeds it
the sources' newest frames (latest frame wins: frames overtaken by newer ones are skipped) and hands the
newest result to the GUI through a one-slot mailbox (a result the GUI has not taken when the next one is
ready is dropped, never queued).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6 import QtCore

from mvcapture.errors import MvcaptureError
from mvcapture.gui.workers import lower_thread_priority

log = logging.getLogger(__name__)

HISTORY_S = 5.0     # seconds of motion aligned together: one similarity for the recent motion
MIN_ALIGN_FRAMES = 8
LIVE_DETECTOR_MODE = "lightweight"   # the live preview's person detector and pose model
DETECT_EVERY = 10   # pairs between person-detector runs per view when scheduled by pairs (it also runs whenever
                    # tracking fails); by default the runs follow the detector mode's clock (pipeline.live.DETECT_EVERY_S)
LIFT_STRIDE = 2     # first lift stride; it adapts to the cameras' rate and the machine (up to 8)
NEW_FRAME_POLL_S = 0.002


@dataclass
class LivePose:
    """One live result. kp2d (V, 17, 2) px and conf (V, 17) per view's frame; aligned (V, 17, 3) metres in
    view 0's camera frame, residual_mm (17,) and angle_deg (between the optical axes of views 0 and 1,
    degrees) once enough frames were seen, else None; fused (17, 3) metres from the two-view 3D when one is
    plugged in and confident, else None.

    t_ns: (V,) capture times (monotonic ns) of the frames; skipped: (V,) frames overtaken before they were
    processed so far; dropped: results replaced before the GUI took them so far; lift_stride: the lifter's
    stride now; detected: (V,) whether the person detector ran (else tracked)."""

    kp2d: np.ndarray
    conf: np.ndarray
    aligned: np.ndarray | None
    residual_mm: np.ndarray | None
    angle_deg: float | None
    fused: np.ndarray | None = None
    angle_source: str = "lifter"   # "stereo" when angle_deg comes from the two views' own geometry
    t_ns: np.ndarray | None = None
    skipped: tuple[int, ...] = ()
    dropped: int = 0
    lift_stride: int = 1
    detected: np.ndarray | None = None


def default_stereo(sources):
    """The live two-view 3D of views 0 and 1 (`pipeline.live_stereo.live_stereo_for`), None for one view."""
    if len(sources) < 2:
        return None
    from mvcapture.pipeline.live_stereo import live_stereo_for

    return live_stereo_for(sources)


def default_detector():
    from mvcapture.detect import create_detector

    return create_detector(LIVE_DETECTOR_MODE)


def default_lifter():
    from mvcapture.lifter import load_lifter

    return load_lifter("active")  # the model store's active version (the shipped default until one is activated)


class LivePoseWorker(QtCore.QThread):
    """Follows `sources` (capture FrameSources, read with `latest()` only, never consumed).

    Args:
        make_detector / make_lifter: build the detector and the Lifter inside the thread (slow: model loading).
        stereo: optional two-view 3D of each pair (`mvcapture.pipeline.live.StereoLift`), shown as `fused`.
        detect_every: pairs between person-detector runs per view, used when `detect_by_clock` is off.
        detect_by_clock: schedule the runs by capture time, as `mvcapture bench live` measures it (one per view
            every `pipeline.live.DETECT_EVERY_S[LIVE_DETECTOR_MODE]` seconds, whatever the pair rate).

    Signals: `ready()` when a new result waits in the mailbox (`take()` it; one signal per waiting result),
    `failed(message)` (e.g. models missing; the thread then ends).
    """

    ready = QtCore.Signal()
    failed = QtCore.Signal(str)

    def __init__(self, sources: list, make_detector: Callable = default_detector,
                 make_lifter: Callable = default_lifter, stereo=None, detect_every: int = DETECT_EVERY,
                 detect_by_clock: bool = True, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.sources = list(sources)
        self._make_detector = make_detector
        self._make_lifter = make_lifter
        self._stereo = stereo
        self._detect_every = detect_every
        self._detect_by_clock = bool(detect_by_clock)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: LivePose | None = None
        self.dropped = 0
        self.skipped = [0] * len(self.sources)

    def stop(self) -> None:
        self._stop.set()
        self.wait()

    def take(self) -> LivePose | None:
        """The newest result, or None when it was already taken (GUI thread)."""
        with self._lock:
            pose, self._pending = self._pending, None
        return pose

    def _post(self, pose: LivePose) -> None:
        with self._lock:
            if self._pending is not None:
                self.dropped += 1
            signal = self._pending is None
            self._pending = pose
        if signal:
            self.ready.emit()

    def _wait_for_new_frames(self, last_index: list[int]) -> list | None:
        """The sources' newest frames once view 0 has one not processed yet (every view must have one);
        None when stopping."""
        while not self._stop.is_set():
            frames = [s.latest() for s in self.sources]
            if all(f is not None for f in frames) and frames[0].index != last_index[0]:
                return frames
            self._stop.wait(NEW_FRAME_POLL_S)
        return None

    def run(self) -> None:
        lower_thread_priority()
        try:
            detector = self._make_detector()
            lifter = self._make_lifter()
        except (MvcaptureError, ImportError) as exc:
            self.failed.emit(f"live pose is off: {exc}")
            return
        views = len(self.sources)
        fps = float(self.sources[0].fps or 30.0)
        pipeline = self.make_pipeline(detector, lifter)
        try:
            self._follow(pipeline, views, fps)
        finally:
            pipeline.close()

    def make_pipeline(self, detector, lifter):
        """The `LivePipeline` this worker runs (called in its thread, after the models are loaded): a motion
        window of `HISTORY_S` at the first source's rate, tracking with background detection on the detector
        mode's clock (or every `detect_every` pairs), an adaptive lift stride, the two-view hook."""
        from mvcapture.pipeline.live import DETECT_EVERY_S, LivePipeline

        fps = float(self.sources[0].fps or 30.0)
        window = max(int(HISTORY_S * fps), 2 * MIN_ALIGN_FRAMES)
        return LivePipeline(detector, lifter, num_views=len(self.sources), window=window,
                            refit_every=5, min_align_frames=MIN_ALIGN_FRAMES, lift_stride=LIFT_STRIDE,
                            adapt_lift_stride=True, detect_every=self._detect_every,
                            detect_every_s=DETECT_EVERY_S[LIVE_DETECTOR_MODE] if self._detect_by_clock else None,
                            background_detection=True, stereo=self._stereo)

    def _follow(self, pipeline, views: int, fps: float) -> None:
        last_index = [-1] * views
        while True:
            frames = self._wait_for_new_frames(last_index)
            if frames is None:
                return
            for v, f in enumerate(frames):   # latest frame wins: the frames in between were never processed
                if last_index[v] >= 0:
                    self.skipped[v] += max(f.index - last_index[v] - 1, 0)
            last_index = [f.index for f in frames]
            try:
                r = pipeline.process([f.image for f in frames], [f.t_ns for f in frames])
                fitted = views >= 2 and r.fitted
                stereo_angle = getattr(self._stereo, "angle_deg", None)  # the two views' own, once confident
                angle = stereo_angle if stereo_angle is not None else (float(r.axis_angle_deg[1]) if fitted else None)
                result = LivePose(r.kp2d_px, r.conf, r.aligned_m if fitted else None,
                                  r.residual_mm if fitted else None, angle, fused=r.fused_m,
                                  angle_source="stereo" if stereo_angle is not None else "lifter",
                                  t_ns=r.t_ns, skipped=tuple(self.skipped), dropped=self.dropped,
                                  lift_stride=r.lift_stride, detected=r.detected)
            except Exception as exc:  # one bad frame must not end live pose
                log.exception("live pose failed on a frame")
                self.failed.emit(f"live pose stopped: {exc}")
                return
            self._post(result)
            pipeline.adapt_lift_stride(1.0 / fps)
