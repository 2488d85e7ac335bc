"""Live mode: the pipeline's stages frame by frame for two (or more) live sources, each stage timed.

Per frame pair: 2D detection + athlete tracking per view → sliding-window lifter per view (lifting every
`lift_stride` pairs, the 3D that many pairs minus one late) → metres (running
body-size median) → running sequence alignment onto view 0 over the last frames (re-fitted every few
frames) → per-joint disagreement. No Qt: the GUI passes `on_frame` and runs `LivePipeline.run` in a worker.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from mvcapture import threads
from mvcapture.core.normalize import DEFAULT_ATHLETE_HEIGHT_M, HEIGHT_PROXY_RATIO, height_proxy
from mvcapture.core.skeleton import coco_to_h36m

log = logging.getLogger(__name__)

# Timed stages of one frame pair, in order ("total" is their sum plus bookkeeping).
LIVE_STAGES = ("detect", "lift", "metres", "align")
MM_PER_M = 1000.0


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


class LivePipeline:
    """Frame-by-frame processing of synchronized live views.

    Args:
        detector: a `PoseDetector` (rtmlib, or the tiny test models of `mvcapture.detect.testing`).
        lifter: a `Lifter` (one `LiveLifter` sliding window per view is made from it).
        num_views: number of sources.
        window: frames of the running alignment. refit_every: frames between re-fits.
        min_align_frames: frames with the athlete in both views before the first fit.
        height_m: athlete height for metres.
        lift_stride: lift every this many pairs (`LiveLifter` stride): the lifter's cost per pair falls
            by this factor and the 3D arrives `lift_stride` − 1 pairs late (2D stays current). Default 4:
            100 ms behind at 30 fps, a quarter of the lifting cost.
        on_frame: called with each `LiveFrameResult` (from the thread that runs `run`).
    """

    def __init__(self, detector, lifter, num_views: int = 2, window: int = 120, refit_every: int = 10,
                 min_align_frames: int = 15,
                 height_m: float = DEFAULT_ATHLETE_HEIGHT_M, flip: bool = False, lift_stride: int = 4,
                 on_frame: Callable[[LiveFrameResult], None] | None = None):
        from mvcapture.detect.tracking import AthleteTracker

        self.detector = detector
        self.lifter = lifter
        self.num_views = num_views
        self.height_m = float(height_m)
        self.flip = flip
        self.on_frame = on_frame
        self._tracker_cls = AthleteTracker
        self.alignment = RunningAlignment(num_views, window, refit_every, min_align_frames)
        self.trackers: list = [None] * num_views
        self.lifters = [lifter.live(flip=flip, stride=lift_stride) for _ in range(num_views)]
        self.delay = self.lifters[0].delay_frames if num_views else 0
        self._conf_history: collections.deque = collections.deque(maxlen=self.delay + 1)  # (V, 17) per pair
        self._body = [collections.deque(maxlen=window) for _ in range(num_views)]
        self.index = 0
        self.timings: dict[str, list[float]] = {s: [] for s in (*LIVE_STAGES, "total")}

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

    def pick_athlete(self, view: int, x: float, y: float) -> int:
        """Follow the person under pixel (x, y) of the last frame of `view`; returns the track id."""
        if self.trackers[view] is None:
            raise ValueError(f"view {view} has not seen a frame yet")
        return self.trackers[view].pick(x, y)

    def process(self, images: Sequence[np.ndarray], t_ns: Sequence[int] | None = None) -> LiveFrameResult:
        """Process one frame per view (BGR uint8 images, same instant); returns and reports the result."""
        if len(images) != self.num_views:
            raise ValueError(f"expected {self.num_views} images, got {len(images)}")
        threads.live_heartbeat()  # live threads budget; background training yields while this runs
        V = self.num_views
        timings: dict[str, float] = {}
        start = time.perf_counter()

        t = time.perf_counter()
        kp_coco = np.zeros((V, 17, 2), np.float32)
        conf_coco = np.zeros((V, 17), np.float32)
        sizes = []
        for v, image in enumerate(images):
            h, w = image.shape[:2]
            sizes.append((w, h))
            if self.trackers[v] is None:
                self.trackers[v] = self._tracker_cls((w, h))
            athlete = self.trackers[v].update(self.detector.detect(image))
            if athlete is not None:
                kp_coco[v], conf_coco[v] = athlete.keypoints, athlete.scores
        timings["detect"] = time.perf_counter() - t

        t = time.perf_counter()
        kp2d, conf = coco_to_h36m(kp_coco, conf_coco)
        kp2d, conf = kp2d.astype(np.float32), conf.astype(np.float32)
        pose_norm = np.stack([self.lifters[v].push(kp2d[v], conf[v], sizes[v]) for v in range(V)])
        self._conf_history.append(conf)
        pose_conf = self._conf_history[0]   # confidences of the (delayed) pair the 3D belongs to
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

        for stage, seconds in timings.items():
            self.timings[stage].append(seconds)
        result = LiveFrameResult(
            index=self.index, t_ns=np.asarray(t_ns if t_ns is not None else [0] * V, np.int64), kp2d_px=kp2d,
            conf=conf, pose3d_m=pose_m.astype(np.float32), aligned_m=aligned.astype(np.float32),
            residual_mm=residual.astype(np.float32), angle_deg=self.alignment.angle_deg.copy(),
            axis_angle_deg=self.alignment.axis_angle_deg.copy(),
            fitted=self.alignment.fitted, timings_s=timings, pose_index=max(self.index - self.delay, 0))
        self.index += 1
        if self.on_frame is not None:
            self.on_frame(result)
        return result

    def run(self, sources: Sequence, stop: threading.Event | None = None, max_frames: int | None = None,
            timeout_s: float = 5.0) -> int:
        """Pull frames from live sources (`mvcapture.capture` FrameSources; started here when idle) until
        the first one ends, `stop` is set or `max_frames` pairs are done; returns the pairs processed.

        Each frame of source 0 is paired with the frame of every other source captured closest in time.
        """
        if len(sources) != self.num_views:
            raise ValueError(f"expected {self.num_views} sources, got {len(sources)}")
        for src in sources:
            if src.status == "idle":
                src.start()
        done = 0
        while (stop is None or not stop.is_set()) and (max_frames is None or done < max_frames):
            first = sources[0].read(timeout_s)
            if first is None:
                break
            frames = [first]
            for i in range(1, len(sources)):
                frame = _closest(sources[i], first.t_ns, timeout_s)
                if frame is None:
                    return done
                frames.append(frame)
            self.process([f.image for f in frames], [f.t_ns for f in frames])
            done += 1
        return done

    def timing_summary(self, skip: int = 0) -> dict[str, dict[str, float]]:
        """Per stage: mean and median milliseconds per frame pair (the first `skip` pairs left out)."""
        out = {}
        for stage, values in self.timings.items():
            v = np.asarray(values[skip:], np.float64) * 1e3
            if len(v):
                out[stage] = {"mean_ms": float(v.mean()), "median_ms": float(np.median(v))}
        return out


def _closest(source, t_ns: int, timeout_s: float):
    """The next frame of `source` not older than half a frame period before `t_ns` (older ones are
    skipped); None when the source has ended."""
    period_ns = 1e9 / float(source.fps or 30.0)
    frame = source.read(timeout_s)
    while frame is not None and frame.t_ns < t_ns - period_ns / 2:
        nxt = source.read(timeout_s)
        if nxt is None:
            break
        frame = nxt
    return frame
