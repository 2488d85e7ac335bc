"""Two-view 3D while capturing: the cameras' geometry is found from the athlete's keypoints of the last
frame pairs (`geometry.stereo.self_calibrate`, in a background thread, refreshed every few seconds), and
each new frame pair is triangulated with the current estimate (`geometry.stereo.StereoRig`).

A `LiveStereo` is the `stereo` hook of `pipeline.live.LivePipeline`: it is called once per processed pair
with both views' H36M-17 keypoints and answers the fused 3D of that instant, or None while no confident
estimate exists. Its `angle_deg` / `status` feed the Capture tab's camera-angle dial.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np

log = logging.getLogger(__name__)

MIN_PAIRS = 90            # pairs (with the athlete seen by both views) before the first estimate
HISTORY_PAIRS = 900       # the estimate uses at most this many recent pairs
REFIT_S = 5.0             # a new estimate is started this often (seconds) while capturing


class LiveStereo:
    """The `stereo` hook of the live pipeline (views 0 and 1).

    Args:
        image_sizes: ((w, h), (w, h)) of the two cameras' frames, or None: `resolve()` gives them (and the
            lenses and the rate) when the first estimate starts, once the cameras are open.
        intrinsics: a FORMATS.md lens dict per camera, or None (unknown: the estimate then stays uncertain
            and no fused 3D is shown, only the angle's interval).
        height_m: the athlete's height (metres of the fused 3D).
        fps: the cameras' rate (the estimate's bootstrap blocks).
        background: run the estimate in a thread (False: in the calling thread, for tests).
    """

    def __init__(self, image_sizes, intrinsics=(None, None), height_m: float = 1.75, fps: float = 30.0,
                 background: bool = True, min_pairs: int = MIN_PAIRS, refit_s: float = REFIT_S, resolve=None):
        self.image_sizes = None if image_sizes is None else [tuple(int(x) for x in s) for s in image_sizes]
        self._resolve = resolve
        self.intrinsics = list(intrinsics)
        self.height_m = float(height_m)
        self.fps = float(fps)
        self.background = background
        self.min_pairs = int(min_pairs)
        self.refit_s = float(refit_s)
        self._history: deque = deque(maxlen=HISTORY_PAIRS)
        self._lock = threading.Lock()
        self._rig = None
        self._estimate = None
        self._worker: threading.Thread | None = None
        self._closed = False
        self._last_fit = -np.inf
        self.fits = 0

    # -- what the Capture tab shows -------------------------------------------------------------------------
    @property
    def estimate(self):
        """The latest `StereoEstimate` (any status), or None before the first."""
        with self._lock:
            return self._estimate

    @property
    def status(self) -> str | None:
        est = self.estimate
        return None if est is None else est.status

    @property
    def angle_deg(self) -> float | None:
        """The optical-axes angle when the estimate is confident, else None."""
        est = self.estimate
        return float(est.axis_angle_deg) if est is not None and est.usable else None

    # -- the hook ---------------------------------------------------------------------------------------------
    def __call__(self, kp2d_a: np.ndarray, conf_a: np.ndarray, kp2d_b: np.ndarray, conf_b: np.ndarray
                 ) -> np.ndarray | None:
        """One pair: (17, 2) px + (17,) of views a and b (H36M-17) → (17, 3) m in view a's frame, or None."""
        kp_a, kp_b = np.asarray(kp2d_a, np.float64), np.asarray(kp2d_b, np.float64)
        c_a, c_b = np.asarray(conf_a, np.float64), np.asarray(conf_b, np.float64)
        if (c_a > 0).sum() >= 6 and (c_b > 0).sum() >= 6:
            self._history.append((kp_a, c_a, kp_b, c_b))
        self._maybe_refit()
        with self._lock:
            rig = self._rig
        if rig is None:
            return None
        return rig.triangulate_frame(kp_a, c_a, kp_b, c_b)

    def _maybe_refit(self) -> None:
        now = time.monotonic()
        if len(self._history) < self.min_pairs or now - self._last_fit < self.refit_s:
            return
        if self._closed or (self._worker is not None and self._worker.is_alive()):
            return
        self._last_fit = now
        data = list(self._history)
        if self.background:
            # not a daemon: an estimate in flight at interpreter exit finishes (a few seconds) instead of being
            # killed inside OpenCV, which aborts the process ("FATAL: exception not rethrown")
            self._worker = threading.Thread(target=self._fit, args=(data,), name="live-stereo", daemon=False)
            self._worker.start()
        else:
            self._fit(data)

    def _fit(self, data: list) -> None:
        from mvcapture.geometry.stereo import StereoRig, self_calibrate

        if self.image_sizes is None and self._resolve is not None:
            sizes, lenses, fps = self._resolve()
            self.image_sizes, self.intrinsics, self.fps = [tuple(int(x) for x in s) for s in sizes], list(lenses), fps
        kp_a, c_a, kp_b, c_b = (np.stack(x) for x in zip(*data))
        try:
            est = self_calibrate(kp_a, c_a, kp_b, c_b, self.image_sizes[0], self.image_sizes[1],
                                 self.intrinsics[0], self.intrinsics[1], fps=self.fps, layout="h36m17")
        except Exception:  # a live view must not die of a failed estimate; the next one may succeed
            log.exception("live stereo estimate failed")
            return
        rig = (StereoRig(est, self.image_sizes[0], self.image_sizes[1], self.intrinsics[0], self.intrinsics[1],
                         height_m=self.height_m, layout="h36m17") if est.usable else None)
        with self._lock:
            self._estimate = est
            self._rig = rig
        self.fits += 1
        self._last_fit = time.monotonic()  # the next estimate REFIT_S after this one ended
        log.info("live stereo: %s, %.0f° apart (%d pairs)", est.status, est.axis_angle_deg, len(data))

    def join(self, timeout: float | None = None) -> None:
        """Wait for an estimate in flight (tests, shutdown)."""
        if self._worker is not None:
            self._worker.join(timeout)

    def close(self, timeout: float | None = 0.0) -> None:
        """Start no further estimate; wait at most `timeout` s (default: not at all, so stopping live mode does
        not wait for it) for the one in flight, which otherwise ends in its own thread (about a second per
        1,000 pairs with known lenses; unknown ones add the focal-length search, ~1.6 s per 1,000 pairs and a
        few seconds more). The last estimate stays readable. `LivePipeline.close` calls it when capture stops."""
        self._closed = True
        self.join(timeout)


def live_stereo_for(sources, height_m: float = 1.75) -> LiveStereo:
    """A `LiveStereo` for two capture sources (`capture.sources`): their frame sizes and rate once open, and
    each webcam's lens where one was remembered for it (`session.lenses`, set with `Session.set_intrinsics`
    on one of its recordings); a camera without a known lens leaves the estimate uncertain (angle interval
    only, no fused 3D)."""
    from mvcapture.errors import MvcaptureError
    from mvcapture.geometry.intrinsics import load_intrinsics
    from mvcapture.session.lenses import remembered_lens

    def resolve():
        sizes = [(int(s.width or 0), int(s.height or 0)) for s in sources[:2]]
        lenses = []
        for source, size in zip(sources[:2], sizes):
            identity = getattr(source, "identity", None)
            lens = remembered_lens(identity) if identity else None
            try:
                lenses.append(load_intrinsics(lens).scaled_to(size).to_dict() if lens else None)
            except MvcaptureError as exc:
                log.warning("camera %s: remembered lens not used live: %s", identity, exc)
                lenses.append(None)
        return sizes, lenses, float(sources[0].fps or 30.0)

    return LiveStereo(None, height_m=height_m, resolve=resolve)
