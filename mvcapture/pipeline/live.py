"""Live mode: the pipeline's stages frame by frame for two (or more) live sources, each stage timed.

Per frame pair: the athlete's box per view (the person detector every `detect_every` pairs and whenever
tracking fails, else the box of the last keypoints; identity kept by the athlete tracker) → the pose model
on every view's box (one batched call, or the views side by side on one thread each where there are cores
for them) → optional two-view 3D (`stereo`, the pair's own instant) → sliding-window lifter per view
(lifting every `lift_stride` pairs, the views' lifts in different pairs, the 3D that many pairs minus one
late; the stride may adapt to the machine) → metres (running body-size median) → running sequence alignment
onto view 0 over the last frames (re-fitted every few frames) → per-joint disagreement. Frames are taken
latest-first: a frame that a newer one overtook before it was processed is skipped, not queued. No Qt: the
GUI passes `on_frame` and runs `LivePipeline.process` in a worker.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from mvcapture import threads
from mvcapture.core.normalize import DEFAULT_ATHLETE_HEIGHT_M, HEIGHT_PROXY_RATIO, height_proxy
from mvcapture.core.skeleton import coco_to_h36m

log = logging.getLogger(__name__)

# Timed stages of one frame pair, in order ("total" is their sum plus bookkeeping): the person detector,
# the pose model (with the tracking around it), the two-view 3D, the lifter, metres, the alignment.
LIVE_STAGES = ("detect", "pose", "stereo", "lift", "metres", "align")
MM_PER_M = 1000.0
# Pairs whose stage times are kept for `timing_summary` (bounded: a long live session must not grow).
TIMING_HISTORY = 5000
# Lift strides the adaptive stride moves between (doubling / halving), and pairs between its decisions.
LIFT_STRIDES = (1, 2, 4, 8)
ADAPT_EVERY = 15
# The stride grows when a pair takes longer than this share of the camera's frame period, and shrinks when
# the pair would still fit at the smaller stride with this margin.
ADAPT_HIGH, ADAPT_LOW = 1.0, 0.6
# Seconds between a view's scheduled person-detector runs while tracking is confident, per detector mode
# (`detect_every_s`): YOLOX-m (balanced) costs 11× YOLOX-tiny (lightweight), so it reruns less often.
DETECT_EVERY_S = {"lightweight": 0.5, "balanced": 1.0, "performance": 2.0}
# Frames of past context a live push lifts (live mode: `LivePipeline`, the Capture tab). The network takes any
# window up to its maxlen; 27 frames cost about a third of 81 (`bench lifter`, small, one torch thread, AMD EPYC:
# 14.2 vs 37.9 ms per push), and on the bundled real recording the per-frame live lifts were as good (shipped default, all four
# views: PA-MPJPE mean 94.6 vs 95.4 mm, lifter-only angles within 3°), on held-out synthetic subject 007 2.8 mm
# worse (N-MPJPE 80.9 vs 78.1 mm).
LIVE_WINDOW = 27


def live_lift_window(lifter, wanted: int | None = LIVE_WINDOW) -> int:
    """Frames one live lift of `lifter` sees: `wanted` capped at the model's window (None: the model's)."""
    return lifter.window if wanted is None else min(int(wanted), lifter.window)


# Niceness added to the background person detector's thread: the frame pairs' threads win the cores.
BACKGROUND_DETECT_NICE = 10


class StereoLift(Protocol):
    """Two-view 3D of one instant (e.g. self-calibrated triangulation, `mvcapture.geometry`): H36M-17
    keypoints (17, 2) px and confidences (17,) of views a and b → (17, 3) metres in view a's camera frame,
    or None while it has no confident estimate."""

    def __call__(self, kp2d_a: np.ndarray, conf_a: np.ndarray, kp2d_b: np.ndarray,
                 conf_b: np.ndarray) -> np.ndarray | None: ...

    # optional: `close()`, called by `LivePipeline.close` (stop background work)


@dataclass
class LiveFrameResult:
    """One processed frame pair (all arrays per view, H36M-17).

    Attributes:
        index: pairs processed before this one. t_ns: (V,) capture time of each view's frame (monotonic ns).
        kp2d_px: (V, 17, 2) athlete 2D; conf: (V, 17), 0 where the athlete was not seen.
        pose3d_m: (V, 17, 3) root-relative metres, camera frame of each view, of the pair `pose_index`
            (`lift_stride` − 1 pairs back; kp2d_px and conf are of this pair).
        aligned_m: (V, 17, 3) mapped onto view 0 with the running alignment (view 0 unchanged; the other
            views unchanged too until the first fit).
        residual_mm: (17,) per-joint disagreement between the aligned views (NaN where not seen by both).
        angle_deg: (V,) rotation angle of the current fit between view 0 and each view.
        axis_angle_deg: (V,) angle between the optical axes of view 0 and each view (what users place).
        fitted: whether a running alignment exists yet.
        timings_s: seconds spent in each stage of LIVE_STAGES for this pair, and "total".
        pose_index: the pair whose 3D pose3d_m, aligned_m and residual_mm show (index − delay, ≥ 0).
        fused_m: (17, 3) metres in view 0's camera frame from the `stereo` two-view 3D of this pair, or
            None (no `stereo`, or no confident estimate yet).
        detected: (V,) whether the person detector ran for each view in this pair (else tracked).
        lift_stride: the lifter's stride for this pair.
    """

    index: int
    t_ns: np.ndarray
    kp2d_px: np.ndarray
    conf: np.ndarray
    pose3d_m: np.ndarray
    aligned_m: np.ndarray
    residual_mm: np.ndarray
    angle_deg: np.ndarray
    fitted: bool
    timings_s: dict[str, float] = field(default_factory=dict)
    pose_index: int = 0
    axis_angle_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fused_m: np.ndarray | None = None
    detected: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    lift_stride: int = 1


class RunningAlignment:
    """Sequence similarity alignment of every view onto view 0 over the last `window` frames.

    The fit (one `core.procrustes` per view on window × 17 points, conf-weighted) is redone every
    `refit_every` frames once `min_frames` frames with the athlete in both views are buffered; in between,
    the last fit is applied to each new frame.
    """

    def __init__(self, num_views: int = 2, window: int = 120, refit_every: int = 10, min_frames: int = 15):
        self.num_views = num_views
        self.window = window
        self.refit_every = refit_every
        self.min_frames = min_frames
        self._poses: collections.deque = collections.deque(maxlen=window)
        self._conf: collections.deque = collections.deque(maxlen=window)
        self._since_fit = 0
        self.s = np.ones(num_views)
        self.R = np.tile(np.eye(3), (num_views, 1, 1))
        self.t = np.zeros((num_views, 3))
        self.angle_deg = np.zeros(num_views)
        self.axis_angle_deg = np.zeros(num_views)
        self.fitted = False

    def reset(self) -> None:
        self.__init__(self.num_views, self.window, self.refit_every, self.min_frames)

    def refit(self) -> None:
        from mvcapture.core.procrustes import optical_axis_angle_deg, procrustes_np, rotation_angle_deg

        if self.num_views < 2:    # one camera: nothing to align
            return
        poses = np.stack(self._poses, 1)  # (V, N, 17, 3)
        conf = np.stack(self._conf, 1)    # (V, N, 17)
        both = conf[1:] * conf[:1]         # (V-1, N, 17)
        if ((both > 0).any(-1).sum(-1) < self.min_frames).any():
            return
        fit = procrustes_np(poses[1:], np.repeat(poses[:1], len(poses) - 1, 0), both, mode="sequence")
        self.s[1:], self.R[1:], self.t[1:] = fit.s, fit.R, fit.t
        self.angle_deg[1:] = rotation_angle_deg(fit.R)
        self.axis_angle_deg[1:] = optical_axis_angle_deg(fit.R)
        self.fitted = True

    def push(self, poses_m: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add one frame, (V, 17, 3) metres and (V, 17) conf; returns (aligned (V, 17, 3), residual_mm (17,))."""
        self._poses.append(np.asarray(poses_m, np.float64))
        self._conf.append(np.asarray(conf, np.float64))
        self._since_fit += 1
        if self._since_fit >= self.refit_every or (not self.fitted and len(self._poses) >= self.min_frames):
            self._since_fit = 0
            self.refit()
        aligned = self.s[:, None, None] * np.einsum("vjc,vcd->vjd", poses_m, self.R) + self.t[:, None, :]
        aligned[0] = poses_m[0]
        num = np.zeros(17)
        den = np.zeros(17)
        for a in range(self.num_views):
            for b in range(a + 1, self.num_views):
                w = conf[a] * conf[b]
                num += w * np.linalg.norm(aligned[a] - aligned[b], axis=-1) * MM_PER_M
                den += w
        residual = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        return aligned, residual




class BackgroundDetector:
    """The person detector (`detect_boxes`) in its own thread, one frame at a time: a scheduled run no
    longer holds up its frame pair; its boxes are picked up by a later pair (`finished`). On Linux the
    thread runs at a lower priority (`nice` + `nice`, that thread only), so it takes the cores the frame
    pairs leave free instead of delaying them."""

    def __init__(self, detector, nice: int = BACKGROUND_DETECT_NICE):
        self.detector = detector
        self.nice = int(nice)
        self._cond = threading.Condition()
        self._job: tuple | None = None
        self._done: list[tuple] = []
        self._closed = False
        self.cpu_s = 0.0   # CPU seconds of this thread's runs (onnxruntime's own pool threads not included)
        self._thread = threading.Thread(target=self._run, name="live-detector", daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        with self._cond:
            return self._job is None

    def submit(self, view: int, image: np.ndarray, generation: int) -> bool:
        """Start a run on `image` of `view`; False (nothing started) while the last one still runs."""
        with self._cond:
            if self._job is not None or self._closed:
                return False
            self._job = (view, image, generation)
            self._cond.notify_all()
            return True

    def finished(self) -> list[tuple[int, np.ndarray, np.ndarray, int, float]]:
        """Runs done since the last call: (view, boxes (N, 4) px, scores (N,), generation, seconds)."""
        with self._cond:
            done, self._done = self._done, []
        return done

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(5.0)

    def _lower_priority(self) -> None:
        import os

        if not hasattr(os, "setpriority") or not self.nice:
            return
        try:   # Linux: a thread's own id addresses that thread alone
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self.nice)
        except OSError as exc:
            log.debug("background detector keeps its priority: %s", exc)

    def _run(self) -> None:
        self._lower_priority()
        while True:
            with self._cond:
                while self._job is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                view, image, generation = self._job
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                boxes, scores = self.detector.detect_boxes(image)
            except Exception:   # a failed run must not end live mode; the tracker re-detects when lost
                log.exception("background person detection failed")
                boxes, scores = None, None
            with self._cond:
                if boxes is not None:
                    self._done.append((view, boxes, scores, generation, time.perf_counter() - start))
                self.cpu_s += time.thread_time() - cpu
                self._job = None


class LivePipeline:
    """Frame-by-frame processing of synchronized live views.

    Args:
        detector: a `PoseDetector` (rtmlib, or the generated models of `mvcapture.detect.testing`). A
            top-down one (`supports_tracking`) is run in two stages: its person detector every
            `detect_every` pairs per view (and whenever tracking fails), its pose model on every view's
            athlete box, the views side by side on `view_workers` threads (one batched call with one);
            any other one runs `detect` on every frame.
        lifter: a `Lifter` (one `LiveLifter` sliding window per view is made from it; each frame's left/right
            swaps by the detector are undone as it arrives, at the cameras' frame rate).
        num_views: number of sources.
        window: frames of the running alignment. refit_every: frames between re-fits.
        min_align_frames: frames with the athlete in both views before the first fit.
        height_m: athlete height for metres.
        lift_stride: lift every this many pairs (`LiveLifter` stride): the lifter's cost per pair falls
            by this factor and the 3D arrives `lift_stride` − 1 pairs late (2D stays current). Default 4:
            67 ms behind at 60 fps, a quarter of the lifting cost. With `view_workers` for every view the
            views lift in the same pair, side by side; with fewer, in different pairs (their `LiveLifter`
            phases spread over the stride), so no pair pays for every view's lift on one core.
        adapt_lift_stride: let `adapt_lift_stride` double the stride (up to `max_lift_stride`) while pairs
            take longer than the cameras' frame period, and halve it when the smaller stride would fit.
        detect_every: pairs between scheduled person-detector runs (1 = every pair). Between them the
            athlete's box comes from the last keypoints (`detect.tracking.KeypointTracker`).
        detect_every_s: schedule a view's person-detector runs by the clock instead: one when this many
            seconds (of capture time) passed since its last run, whatever the pair rate (`DETECT_EVERY_S`
            has the interval per detector mode); tracking failures still run it at once.
        background_detection: scheduled person-detector runs go to a `BackgroundDetector` thread (at a
            lower priority) while tracking goes on (their boxes confirm the athlete a few pairs later); a
            scheduled run waits while that thread is busy with the other view's (the view stays tracked);
            runs after a tracking failure stay in the pair. Call `close()` when done.
        stereo: optional two-view 3D of each pair (`StereoLift`, views 0 and 1), shown as `fused_m`.
        view_workers: threads the views' pose model and lifter run on side by side (default
            `threads.live_view_workers`: one per view up to the physical cores, fixed at the first pair).
        on_frame: called with each `LiveFrameResult` (from the thread that runs `process`).
        lift_window: frames each live lift sees (default `LIVE_WINDOW`, capped at the model's
            window; None: the model's whole window, as `mvcapture process` lifts).
    """

    def __init__(self, detector, lifter, num_views: int = 2, window: int = 120, refit_every: int = 10,
                 min_align_frames: int = 15,
                 height_m: float = DEFAULT_ATHLETE_HEIGHT_M, flip: bool = False, lift_stride: int = 4,
                 adapt_lift_stride: bool = False, max_lift_stride: int = 8, detect_every: int = 1,
                 detect_every_s: float | None = None, background_detection: bool = False,
                 stereo: StereoLift | None = None, on_frame: Callable[[LiveFrameResult], None] | None = None,
                 view_workers: int | None = None, lift_window: int | None = LIVE_WINDOW):
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1 pair, got {detect_every}")
        if detect_every_s is not None and detect_every_s <= 0:
            raise ValueError(f"detect_every_s must be positive, got {detect_every_s}")
        self.detect_every_s = detect_every_s
        self.detector = detector
        self.lifter = lifter
        self.num_views = num_views
        self.height_m = float(height_m)
        self.flip = flip
        self.on_frame = on_frame
        self.stereo = stereo
        self.detect_every = int(detect_every)
        self.tracking = bool(getattr(detector, "supports_tracking", False))
        self.alignment = RunningAlignment(num_views, window, refit_every, min_align_frames)
        self.trackers: list = [None] * num_views
        self.lift_window = live_lift_window(lifter, lift_window)
        # each view's frames have the detector's left/right swaps undone as they arrive (at 30 fps until `run`
        # knows the cameras' rate)
        self.lifters = [lifter.live(flip=flip, stride=lift_stride, window=self.lift_window, sides_fps=30.0)
                        for _ in range(num_views)]
        self._view_workers = None if view_workers is None else max(1, int(view_workers))
        self._view_pool = None
        self.view_cpu_s = 0.0   # CPU seconds of the lifter's steps in the view threads
        self._view_cpu_lock = threading.Lock()
        self._phase_lifters()
        self.adaptive = bool(adapt_lift_stride)
        self.max_lift_stride = max(int(lift_stride), min(int(max_lift_stride), lifter.window))
        self._conf_history: collections.deque = collections.deque(maxlen=self.max_lift_stride)  # (V, 17)
        self._body = [collections.deque(maxlen=window) for _ in range(num_views)]
        self.index = 0
        self._adapted_at = 0
        self.timings: dict[str, collections.deque] = {s: collections.deque(maxlen=TIMING_HISTORY)
                                                       for s in (*LIVE_STAGES, "total")}
        self.latency_s: collections.deque = collections.deque(maxlen=TIMING_HISTORY)
        # CPU seconds per pair of the calling thread and the view threads (pose model, lifter; onnxruntime's
        # own pool threads, with more than one thread per session, not included)
        self.cpu_s: collections.deque = collections.deque(maxlen=TIMING_HISTORY)
        self.done_at_s: collections.deque = collections.deque(maxlen=TIMING_HISTORY)
        self.skipped = [0] * num_views
        scheduled = self.detect_every > 1 or self.detect_every_s is not None
        self.background = (BackgroundDetector(detector) if background_detection and self.tracking
                           and scheduled else None)
        self.background_detect_s: collections.deque = collections.deque(maxlen=TIMING_HISTORY)

    def close(self) -> None:
        """Stop the background detector thread (if any), the views' threads and the stereo hook's work
        (its `close`, where it has one: `LiveStereo` starts no further estimate)."""
        if self.background is not None:
            self.background.close()
        if callable(getattr(self.stereo, "close", None)):
            self.stereo.close()
        if self._view_pool is not None:
            self._view_pool.shutdown()
            self._view_pool = None

    @property
    def view_workers(self) -> int:
        """Threads the views run side by side on (`threads.live_view_workers` unless given)."""
        if self._view_workers is None:
            self._view_workers = threads.live_view_workers(self.num_views)
            self._phase_lifters()
        return self._view_workers

    def _phase_lifters(self) -> None:
        """With a thread per view the views lift in the same pair, side by side; else spread their lifts
        over the stride (view v lifts v · stride / V pairs after view 0), so that one pair carries at most
        one view's lift where the stride allows."""
        apart = self._view_workers is not None and self._view_workers < self.num_views
        for v, live in enumerate(self.lifters):
            live.phase = v * live.stride // self.num_views if apart else 0

    def _lift(self, kp2d: np.ndarray, conf: np.ndarray, sizes) -> np.ndarray:
        """Every view's `LiveLifter.push`, side by side on `view_workers` threads → (V, 17, 3)."""
        V = self.num_views
        if self.view_workers < 2 or V < 2:
            return np.stack([self.lifters[v].push(kp2d[v], conf[v], sizes[v]) for v in range(V)])
        if self._view_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._view_pool = ThreadPoolExecutor(self.view_workers - 1, thread_name_prefix="live-view")
        others = [self._view_pool.submit(self._push_counted, v, kp2d[v], conf[v], sizes[v]) for v in range(1, V)]
        return np.stack([self.lifters[0].push(kp2d[0], conf[0], sizes[0])] + [f.result() for f in others])

    def _push_counted(self, v: int, kp2d: np.ndarray, conf: np.ndarray, size) -> np.ndarray:
        """View v's `LiveLifter.push` in a view thread; its CPU time goes to `view_cpu_s`."""
        start = time.thread_time()
        try:
            return self.lifters[v].push(kp2d, conf, size)
        finally:
            with self._view_cpu_lock:
                self.view_cpu_s += time.thread_time() - start

    @property
    def lift_stride(self) -> int:
        return self.lifters[0].stride if self.lifters else 1

    @property
    def delay(self) -> int:
        """Pairs the 3D lags the 2D (`lift_stride` − 1)."""
        return self.lift_stride - 1

    def reset(self) -> None:
        """Start over (a new take): trackers, lifter windows, body size and alignment are forgotten."""
        self.trackers = [None] * self.num_views
        for live in self.lifters:
            live.reset()
        for body in self._body:
            body.clear()
        self._conf_history.clear()
        self.alignment.reset()
        self.index = 0
        self._adapted_at = 0

    def pick_athlete(self, view: int, x: float, y: float) -> int:
        """Follow the person under pixel (x, y) of the last frame of `view`; returns the track id."""
        if self.trackers[view] is None:
            raise ValueError(f"view {view} has not seen a frame yet")
        return self.trackers[view].pick(x, y)

    def _tracker(self, v: int, image: np.ndarray):
        if self.trackers[v] is None:
            from mvcapture.detect.tracking import AthleteTracker, KeypointTracker

            size = image.shape[1], image.shape[0]
            phase = v * self.detect_every // self.num_views   # the views' detector runs in different pairs
            phase_s = v * (self.detect_every_s or 0.0) / self.num_views
            self.trackers[v] = (KeypointTracker(size, detect_every=self.detect_every, phase=phase,
                                                detect_every_s=self.detect_every_s, phase_s=phase_s)
                                if self.tracking else AthleteTracker(size))
        return self.trackers[v]

    def _detect_every_frame(self, images, timings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`detect` on every view's frame; the athlete by the box tracker."""
        V = self.num_views
        kp, conf = np.zeros((V, 17, 2)), np.zeros((V, 17))
        t = time.perf_counter()
        for v, image in enumerate(images):
            athlete = self._tracker(v, image).update(self.detector.detect(image))
            if athlete is not None:
                kp[v], conf[v] = athlete.keypoints, athlete.scores
        timings["detect"], timings["pose"] = time.perf_counter() - t, 0.0
        return kp, conf, np.ones(V, bool)

    def _find(self, v: int, image: np.ndarray) -> np.ndarray | None:
        boxes, scores = self.detector.detect_boxes(image)
        return self.trackers[v].detected(boxes, scores)

    def _detect_tracked(self, images, timings, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Person detector where the tracker asks for it, else the box of the last keypoints; every view's
        box through the pose model in one call; a view whose tracking fails is re-detected at once."""
        V = self.num_views
        kp, conf, detected = np.zeros((V, 17, 2)), np.zeros((V, 17)), np.zeros(V, bool)
        start = time.perf_counter()
        detect_s = 0.0
        boxes: dict[int, np.ndarray] = {}
        if self.background is not None:
            for v, found, scores, generation, seconds in self.background.finished():
                self.trackers[v].detected_late(found, scores, generation)
                self.background_detect_s.append(seconds)
        for v, image in enumerate(images):
            self._tracker(v, image).at(t_s)
        if self.background is not None:
            # the due view that waited longest gets the detector (a run longer than the interval must not
            # leave it to the first view for ever); the others keep tracking and wait
            due = sorted((v for v in range(V) if self.trackers[v].detection_due),
                         key=lambda v: -self.trackers[v].overdue)
            for v in due:
                tracker = self.trackers[v]
                if v == due[0] and self.background.submit(v, images[v], tracker.generation):
                    tracker.detecting_in_background()
                else:
                    tracker.postpone_detection()
        for v, image in enumerate(images):
            tracker = self.trackers[v]
            box = tracker.plan()
            if box is None:
                t = time.perf_counter()
                box = self._find(v, image)
                detect_s += time.perf_counter() - t
                detected[v] = True
            if box is not None:
                boxes[v] = box
        while boxes:
            views = list(boxes)
            found_kp, found_conf = self.detector.pose_in_boxes([images[v] for v in views],
                                                               np.stack([boxes[v] for v in views]),
                                                               workers=self.view_workers)
            boxes = {}
            for i, v in enumerate(views):
                kp[v], conf[v] = found_kp[i], found_conf[i]
                if self.trackers[v].update(found_kp[i], found_conf[i], bool(detected[v])) or detected[v]:
                    continue
                # tracking lost the athlete in this very frame: look for them again now
                kp[v], conf[v] = 0.0, 0.0
                self.trackers[v].plan()
                t = time.perf_counter()
                box = self._find(v, images[v])
                detect_s += time.perf_counter() - t
                detected[v] = True
                if box is not None:
                    boxes[v] = box
        timings["detect"] = detect_s
        timings["pose"] = time.perf_counter() - start - detect_s
        return kp, conf, detected

    def process(self, images: Sequence[np.ndarray], t_ns: Sequence[int] | None = None) -> LiveFrameResult:
        """Process one frame per view (BGR uint8 images, same instant); returns and reports the result."""
        if len(images) != self.num_views:
            raise ValueError(f"expected {self.num_views} images, got {len(images)}")
        threads.live_heartbeat()  # live threads budget; background training yields while this runs
        V = self.num_views
        timings: dict[str, float] = {}
        start, cpu = time.perf_counter(), time.thread_time()
        worker_cpu = getattr(self.detector, "worker_cpu_s", 0.0) + self.view_cpu_s
        sizes = [(image.shape[1], image.shape[0]) for image in images]
        if self.tracking:
            t_s = int(np.min(t_ns)) / 1e9 if t_ns is not None else time.monotonic()
            kp_coco, conf_coco, detected = self._detect_tracked(images, timings, t_s)
        else:
            kp_coco, conf_coco, detected = self._detect_every_frame(images, timings)
        kp2d, conf = coco_to_h36m(kp_coco.astype(np.float32), conf_coco.astype(np.float32))
        kp2d, conf = kp2d.astype(np.float32), conf.astype(np.float32)

        t = time.perf_counter()
        fused = None
        if self.stereo is not None and V >= 2:
            fused = self.stereo(kp2d[0], conf[0], kp2d[1], conf[1])
            fused = None if fused is None else np.asarray(fused, np.float32).reshape(17, 3)
        timings["stereo"] = time.perf_counter() - t

        t = time.perf_counter()
        pose_norm = self._lift(kp2d, conf, sizes)
        self._conf_history.append(conf)
        delay = self.delay
        # confidences of the (delayed) pair the 3D belongs to
        pose_conf = self._conf_history[-1 - delay] if len(self._conf_history) > delay else self._conf_history[0]
        timings["lift"] = time.perf_counter() - t

        t = time.perf_counter()
        pose_m = np.zeros((V, 17, 3))
        for v in range(V):
            if pose_conf[v].any():
                self._body[v].append(float(height_proxy(pose_norm[v].astype(np.float64))))
            size = float(np.median(self._body[v])) if self._body[v] else 1.0
            pose_m[v] = pose_norm[v] * (HEIGHT_PROXY_RATIO * self.height_m / max(size, 1e-6))
        timings["metres"] = time.perf_counter() - t

        t = time.perf_counter()
        aligned, residual = self.alignment.push(pose_m, pose_conf)
        timings["align"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - start
        self.cpu_s.append(time.thread_time() - cpu + getattr(self.detector, "worker_cpu_s", 0.0) + self.view_cpu_s
                          - worker_cpu)

        for stage, seconds in timings.items():
            self.timings[stage].append(seconds)
        result = LiveFrameResult(
            index=self.index, t_ns=np.asarray(t_ns if t_ns is not None else [0] * V, np.int64), kp2d_px=kp2d,
            conf=conf, pose3d_m=pose_m.astype(np.float32), aligned_m=aligned.astype(np.float32),
            residual_mm=residual.astype(np.float32), angle_deg=self.alignment.angle_deg.copy(),
            axis_angle_deg=self.alignment.axis_angle_deg.copy(),
            fitted=self.alignment.fitted, timings_s=timings, pose_index=max(self.index - delay, 0),
            fused_m=fused, detected=detected, lift_stride=self.lift_stride)
        self.index += 1
        if t_ns is not None:
            self.latency_s.append((time.monotonic_ns() - int(np.min(t_ns))) / 1e9)
        self.done_at_s.append(time.monotonic())
        if self.on_frame is not None:
            self.on_frame(result)
        return result

    def adapt_lift_stride(self, period_s: float) -> int:
        """Keep up with cameras delivering a pair every `period_s` s (with `adapt_lift_stride`): every
        `ADAPT_EVERY` pairs, double the stride while the recent pairs took longer than the period, halve
        it when the pairs would still take under `ADAPT_LOW` of the period at half the stride (the lifter's
        share per pair doubles). Returns the stride."""
        stride = self.lift_stride
        if not self.adaptive or self.index - self._adapted_at < ADAPT_EVERY or len(self.timings["total"]) < ADAPT_EVERY:
            return stride
        self._adapted_at = self.index
        recent = list(self.timings["total"])[-ADAPT_EVERY:]
        lift = float(np.mean(list(self.timings["lift"])[-ADAPT_EVERY:]))
        per_pair = float(np.mean(recent))
        if per_pair > ADAPT_HIGH * period_s and stride * 2 <= self.max_lift_stride:
            new = stride * 2
        elif stride > 1 and per_pair + lift < ADAPT_LOW * period_s:   # half the stride: the lifting doubles
            new = stride // 2
        else:
            return stride
        log.info("live lift stride %d → %d (%.1f ms per pair, frame period %.1f ms)", stride, new,
                 per_pair * 1e3, period_s * 1e3)
        for live in self.lifters:
            live.stride = new
        self._phase_lifters()
        return new

    def run(self, sources: Sequence, stop: threading.Event | None = None, max_frames: int | None = None,
            timeout_s: float = 5.0) -> int:
        """Pull frames from live sources (`mvcapture.capture` FrameSources; started here when idle) until
        the first one ends, `stop` is set or `max_frames` pairs are done; returns the pairs processed.

        Latest frame wins: each pair takes the newest frame of source 0 (older buffered frames are skipped,
        counted in `skipped`) and the frame of every other source captured closest in time to it. With
        `adapt_lift_stride` the lift stride follows source 0's frame rate.
        """
        if len(sources) != self.num_views:
            raise ValueError(f"expected {self.num_views} sources, got {len(sources)}")
        for src in sources:
            if src.status == "idle":
                src.start()
        period_s = 1.0 / float(sources[0].fps or 30.0)
        for live in self.lifters:
            live.sides_fps = 1.0 / period_s
        done = 0
        while (stop is None or not stop.is_set()) and (max_frames is None or done < max_frames):
            first, skipped = _newest(sources[0], timeout_s)
            if first is None:
                break
            self.skipped[0] += skipped
            frames = [first]
            for i in range(1, len(sources)):
                frame, skipped = _closest(sources[i], first.t_ns, timeout_s)
                if frame is None:
                    return done
                self.skipped[i] += skipped
                frames.append(frame)
            self.process([f.image for f in frames], [f.t_ns for f in frames])
            self.adapt_lift_stride(period_s)
            done += 1
        return done

    def timing_summary(self, skip: int = 0) -> dict[str, dict[str, float]]:
        """Per stage: mean and median milliseconds per frame pair over the last `TIMING_HISTORY` pairs
        (the first `skip` of them left out)."""
        out = {}
        for stage, values in self.timings.items():
            v = np.asarray(list(values)[skip:], np.float64) * 1e3
            if len(v):
                out[stage] = {"mean_ms": float(v.mean()), "median_ms": float(np.median(v))}
        return out

    def live_stats(self, skip: int = 0) -> dict:
        """Rates and counters over the last `TIMING_HISTORY` pairs (the first `skip` left out): pairs,
        sustained pairs/s (pairs done per second of wall time), capture-to-result latency p50/p95 ms (from
        the older frame's capture to the result), frames skipped per view, detector runs per view and why."""
        done = np.asarray(list(self.done_at_s)[skip:], np.float64)
        latency = np.asarray(list(self.latency_s)[skip:], np.float64) * 1e3
        rate = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else None
        detections = [dict(t.reasons) if hasattr(t, "reasons") else None for t in self.trackers]
        return {"pairs": int(len(done)), "pairs_per_s": rate,
                "latency_p50_ms": float(np.percentile(latency, 50)) if len(latency) else None,
                "latency_p95_ms": float(np.percentile(latency, 95)) if len(latency) else None,
                "skipped": list(self.skipped), "detector_runs": detections, "lift_stride": self.lift_stride}


def _newest(source, timeout_s: float):
    """(the newest frame of `source`, waiting up to `timeout_s` for one; frames passed over) — (None, n)
    when the source has ended."""
    frame = source.read(timeout_s)
    skipped = 0
    while frame is not None and source.buffered:
        nxt = source.read(0)
        if nxt is None:
            break
        frame, skipped = nxt, skipped + 1
    return frame, skipped


def _closest(source, t_ns: int, timeout_s: float):
    """(the next frame of `source` not older than half a frame period before `t_ns`, frames passed over);
    older ones are skipped; (None, n) when the source has ended."""
    period_ns = 1e9 / float(source.fps or 30.0)
    frame = source.read(timeout_s)
    skipped = 0
    while frame is not None and frame.t_ns < t_ns - period_ns / 2:
        nxt = source.read(timeout_s)
        if nxt is None:
            break
        frame, skipped = nxt, skipped + 1
    return frame, skipped
