"""Process a session: detect 2D in each view → align the views in time → resample onto view 0's time base →
lift each view to 3D → metres → the two views' own geometry (self-calibrated stereo, triangulation, the
fused 3D track) → one similarity per sequence mapping each view onto view 0 → consistency residual and the
camera angle → `analysis.npz` + `metrics.json` in the session.

Each stage writes its output into the session folder and its input signature into `pipeline.json`; a stage
whose output exists with the same signature is skipped, so a re-run only redoes what changed (`force`
redoes everything, `from_stage` that stage and the ones after it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mvcapture.analysis import Analysis
from mvcapture.core.procrustes import optical_axis_angle_deg
from mvcapture.core.sides import MIN_CONF_2D, SPLIT_COST_2D_PER_S, SWAP_COST_2D_PER_S, repair_side_swaps
from mvcapture.core.skeleton import H36M17_JOINTS
from mvcapture.errors import ModelNotFoundError, MvcaptureError
from mvcapture.session.store import Session

log = logging.getLogger(__name__)

# Stages in the order they run; `from_stage` names one of them.
PIPELINE_STAGES = ("detections", "sync", "lift", "stereo", "analysis")
STEREO_FILE = "stereo"  # stereo.npz in the session: the fused track and the stereo estimate
STEREO_VERSION = 1      # bump when the stereo stage's algorithm changes (its cached output is redone)
STATE_FILE = "pipeline"  # pipeline.json in the session: signature of each stage's inputs
DETECTION_CACHE_DIR = "detections/cache"  # detect_video's resumable per-video cache inside the session
# progress(stage, fraction of that stage done in [0, 1], message)
ProgressCallback = Callable[[str, float, str], None]
MM_PER_M = 1000.0
# Below this depth-to-width spread of the poses (median over frames) a view's 3D counts as nearly flat: the
# fitted camera rotation then drifts towards the 180° mirror solution (real demo poses: 0.33-0.52).
FLAT_DEPTH_RATIO = 0.15


class PipelineCancelled(MvcaptureError):
    """Processing was cancelled; finished stages are kept and the next run resumes after them."""


@dataclass
class ViewTrack:
    """One view's athlete 2D track (H36M-17) on its own clock."""

    kp2d_px: np.ndarray   # (T, 17, 2)
    conf: np.ndarray      # (T, 17)
    times_s: np.ndarray   # (T,)
    image_size: np.ndarray  # (2,) width, height
    kp2d_coco_px: np.ndarray  # (T, 17, 2) as detected (for motion sync)
    conf_coco: np.ndarray


def cv2_error() -> type:
    """OpenCV's exception type (its numeric routines raise it on degenerate input)."""
    import cv2

    return cv2.error


def _signature(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_stamp(path: Path) -> list:
    stat = Path(path).stat()
    return [stat.st_size, stat.st_mtime_ns]


def resample_view(times_s: np.ndarray, kp2d_px: np.ndarray, conf: np.ndarray, query_s: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A view's 2D track at other times, by linear interpolation between its two nearest frames.

    Args:
        times_s: (T,) increasing frame times of the track. kp2d_px: (T, 17, 2). conf: (T, 17).
        query_s: (Q,) times (same clock) to sample at.

    Returns:
        kp2d (Q, 17, 2), conf (Q, 17): conf is 0 outside the track's time span, and where a joint is
        missing (conf 0) in either neighbouring frame (a query on a frame takes that frame alone).
    """
    times_s = np.asarray(times_s, np.float64)
    query_s = np.asarray(query_s, np.float64)
    T = len(times_s)
    if T == 0:
        return np.zeros((len(query_s), 17, 2), np.float32), np.zeros((len(query_s), 17), np.float32)
    eps = 1e-6 * max(float(np.median(np.diff(times_s))) if T > 1 else 1.0, 1e-9)
    inside = (query_s >= times_s[0] - eps) & (query_s <= times_s[-1] + eps)
    if T == 1:
        kp = np.repeat(kp2d_px[:1], len(query_s), 0)
        c = np.where(inside[:, None], conf[:1], 0.0)
        return kp.astype(np.float32), c.astype(np.float32)
    i0 = np.clip(np.searchsorted(times_s, query_s, side="right") - 1, 0, T - 2)
    i1 = i0 + 1
    w = np.clip((query_s - times_s[i0]) / (times_s[i1] - times_s[i0]), 0.0, 1.0)
    on0, on1 = w <= eps, w >= 1 - eps
    w = np.where(on0, 0.0, np.where(on1, 1.0, w))[:, None]
    kp = (1 - w[..., None]) * kp2d_px[i0] + w[..., None] * kp2d_px[i1]
    c0, c1 = conf[i0], conf[i1]
    both = (c0 > 0) & (c1 > 0)
    c = np.where(on0[:, None], c0, np.where(on1[:, None], c1, np.where(both, (1 - w) * c0 + w * c1, 0.0)))
    c = np.where(inside[:, None], c, 0.0)
    kp = np.where(c[..., None] > 0, kp, 0.0)
    return kp.astype(np.float32), c.astype(np.float32)


# The lifted 3D checks the time alignment over ± this many seconds; a minimum more than
# SYNC_CHECK_TOLERANCE_FRAMES frames away becomes a note (a lifter's own errors move it by a frame or two).
SYNC_CHECK_SEARCH_S = 0.25
SYNC_CHECK_TOLERANCE_FRAMES = 2.0


def depth_ratio(pose: np.ndarray, conf: np.ndarray | None = None) -> float:
    """Median over frames of (spread of the joints in depth) / (spread across the image), for (T, 17, 3)
    camera-frame poses; frames where the athlete is not seen (all conf 0) are left out."""
    pose = np.asarray(pose, np.float64)
    if conf is not None:
        pose = pose[np.asarray(conf).max(-1) > 0]
    if not len(pose):
        return float("nan")
    across = np.sqrt(pose[..., 0].var(-1) + pose[..., 1].var(-1))
    return float(np.median(pose[..., 2].std(-1) / np.maximum(across, 1e-9)))


def camera_angle_advice(angle_deg: float) -> str:
    """What a camera angle (degrees between the two viewing directions) means for the consistency check."""
    a = float(angle_deg)
    if a < 30:
        return (f"The cameras are only {a:.0f}° apart: they see the athlete from almost the same side, so "
                f"depth errors look the same in both and go unnoticed. Move one camera around the athlete "
                f"to about 90°.")
    if a < 60:
        return (f"The cameras are {a:.0f}° apart: usable, but depth is only partly checked. Placing them "
                f"about 90° apart works best.")
    if a <= 120:
        return f"The cameras are {a:.0f}° apart: good (about 90° apart works best)."
    if a <= 150:
        return (f"The cameras are {a:.0f}° apart: usable, though they start to face each other; about 90° "
                f"apart works best.")
    return (f"The cameras are {a:.0f}° apart, nearly facing each other: depth is checked, but the two views "
            f"are close to mirror images and left and right are easily confused. About 90° apart works best.")


def _load_model(model, device: str):
    """A Lifter: the given one, or the one a spec names ("default", a weights file, a store version).
    Without a spec: the model store's active version when the store exists, else the shipped default."""
    from mvcapture.lifter import load_lifter
    from mvcapture.lifter.runtime import Lifter

    if isinstance(model, Lifter):
        return model
    if model is None:
        import importlib.util

        try:
            has_store = importlib.util.find_spec("mvcapture.train.store") is not None
        except ModuleNotFoundError:
            has_store = False
        model = "active" if has_store else "default"
    return load_lifter(model, device=None if device == "auto" else device)


def _model_identity(lifter) -> dict:
    card = lifter.card or {}
    return {"name": card.get("name"), "version": card.get("version"), "sha256": card.get("sha256"),
            "config": lifter.config_name}


def _cached_video_detections(path: Path, video: Path, times_s: np.ndarray):
    """Detections shipped with a session (COCO-17 `keypoints` (T, 17, 2) px, `scores` (T, 17), `image_size`,
    `fps`) as `VideoDetections` of one athlete track (box = the keypoints' bounding box)."""
    from mvcapture.detect.video import VideoDetections

    try:
        with np.load(path, allow_pickle=False) as data:
            kp = np.asarray(data["keypoints"], np.float32)
            scores = np.asarray(data["scores"], np.float32)
            image_size = np.asarray(data["image_size"], np.int32)
            fps = float(data["fps"])
    except (OSError, KeyError, ValueError) as exc:
        raise MvcaptureError(f"{path}: cached detections are unreadable ({exc})") from exc
    T = len(kp)
    if len(times_s) != T:
        times_s = np.arange(T) / fps
    seen = scores > 0
    lo = np.where(seen[..., None], kp, np.inf).min(1)
    hi = np.where(seen[..., None], kp, -np.inf).max(1)
    frames = np.flatnonzero(seen.any(1))
    boxes = np.zeros((T, 4), np.float32)
    boxes[frames] = np.concatenate([lo[frames], hi[frames]], 1)
    box_score = np.where(seen.any(1), scores.max(1, initial=0.0), 0.0).astype(np.float32)
    return VideoDetections(
        video=str(video), model_id=f"cached:{path.name}", image_size=image_size, fps=fps,
        frame_times_s=np.asarray(times_s, np.float64), person_frame=frames.astype(np.int64),
        person_box=boxes[frames], person_box_score=box_score[frames], person_keypoints=kp[frames],
        person_scores=scores[frames], track_id=np.zeros(len(frames), np.int64), athlete_id=0,
        kp2d_px=np.where(seen[..., None], kp, 0.0).astype(np.float32), conf=scores, boxes=boxes,
        box_score=box_score)


class SessionPipeline:
    """The processing of one session; `run()` returns the `Analysis` (also saved in the session).

    Args:
        session: a `Session`, or a session folder / id / name.
        model: lifter spec ("default", a weights file, a model directory or store version) or a loaded
            `Lifter`; None = the active model (the shipped default until a fine-tuned one is activated).
        detector_mode: rtmlib mode ("lightweight", "balanced", "performance", "rtmo").
        detector: a ready `PoseDetector` (wins over `detector_mode`).
        model_dir: folder with the detector's ONNX files, searched before rtmlib's cache.
        device: "auto", "cpu" or "cuda" (detector and lifter).
        height_m: athlete height in metres (default: the session's `athlete_height_m`, else 1.75).
        progress: called as progress(stage, fraction, message).
        cancel: set it to stop; raises `PipelineCancelled` (finished stages are kept; detection resumes).
        force: redo every stage (detection included: its cache is dropped).
        from_stage: redo this stage and the ones after it (one of PIPELINE_STAGES).
        flip: flip test-time augmentation in the lifter.

    After `run()`: `metrics` (what metrics.json holds), `notes` (what the user must know: cached
    detections used, uncertain time alignment...), `ran` / `skipped` (stage keys).
    """

    def __init__(self, session: Session | Path | str, model=None, detector_mode: str = "balanced",
                 detector=None, model_dir: Path | str | None = None, device: str = "auto",
                 height_m: float | None = None, progress: ProgressCallback | None = None,
                 cancel: threading.Event | None = None, force: bool = False, from_stage: str | None = None,
                 flip: bool = True):
        if from_stage is not None and from_stage not in PIPELINE_STAGES:
            raise MvcaptureError(f"unknown stage {from_stage!r}; stages are {', '.join(PIPELINE_STAGES)}")
        self.session = session if isinstance(session, Session) else Session.open(session)
        self.model_spec = model
        self.detector_mode = detector_mode
        self._detector = detector
        self._detector_error: ModelNotFoundError | None = None
        self.model_dir = model_dir
        self.device = device
        from mvcapture.core.normalize import DEFAULT_ATHLETE_HEIGHT_M

        self.height_m = float(height_m or self.session.meta.get("athlete_height_m") or DEFAULT_ATHLETE_HEIGHT_M)
        self._progress_cb = progress
        self.cancel = cancel
        self.force = force
        self.from_stage = from_stage
        self.flip = flip
        self.notes: list[str] = []
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self.metrics: dict[str, Any] = {}
        self.lifter = None
        self._state = self._load_state()

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def _load_state(self) -> dict:
        path = self.session.path / f"{STATE_FILE}.json"
        if not path.exists():
            return {"stages": {}}
        try:
            state = json.loads(path.read_text())
            return state if isinstance(state.get("stages"), dict) else {"stages": {}}
        except (ValueError, OSError):
            log.warning("%s is unreadable; every stage runs again", path)
            return {"stages": {}}

    def _record(self, key: str, signature: str, **info: Any) -> None:
        self._state["stages"][key] = {"signature": signature, **info}
        self.session.save_json(STATE_FILE, self._state)
        self.ran.append(key)

    def _up_to_date(self, stage: str, key: str, signature: str, outputs: list[Path]) -> dict | None:
        """The stored record when `key` need not run again, else None."""
        if self.force or (self.from_stage is not None
                          and PIPELINE_STAGES.index(stage) >= PIPELINE_STAGES.index(self.from_stage)):
            return None
        record = self._state["stages"].get(key)
        if record and record.get("signature") == signature and all(p.exists() for p in outputs):
            self.skipped.append(key)
            return record
        return None

    def _progress(self, stage: str, fraction: float, message: str = "") -> None:
        if self._progress_cb is not None:
            self._progress_cb(stage, float(min(max(fraction, 0.0), 1.0)), message)

    def _note(self, stage: str, message: str) -> None:
        """Something the user must know: logged, reported through progress, kept in `notes`/metrics."""
        if message not in self.notes:
            self.notes.append(message)
            log.info("session %s: %s", self.session.id, message)
            self._progress(stage, 1.0, message)

    def _check_cancel(self, where: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise PipelineCancelled(f"processing of session {self.session.id} cancelled during {where}; "
                                    f"finished stages are kept, run it again to resume")

    # -- run -----------------------------------------------------------------------------------------------
    def run(self) -> Analysis:
        views = self.session.views
        if len(views) < 2:
            raise MvcaptureError(f"session {self.session.id} has {len(views)} view(s); 3D consistency needs two "
                                 f"cameras: import or record the second view")
        tracks, det_sigs = self._detect_all()
        self._check_cancel("time alignment")
        sync = self._sync(tracks)
        self._check_cancel("lifting")
        lifted, lift_sigs = self._lift_all(tracks, det_sigs, sync)
        self._check_cancel("two-view geometry")
        stereo, stereo_sig = self._stereo(tracks, sync, lifted, det_sigs, lift_sigs)
        self._check_cancel("alignment")
        return self._analyse(tracks, sync, lifted, lift_sigs, stereo, stereo_sig)

    # -- detection -----------------------------------------------------------------------------------------
    def _detector_key(self) -> str:
        return self._detector.model_id if self._detector is not None else f"mode={self.detector_mode}"

    def _get_detector(self):
        """The detector, created on first use; None when its weights cannot be had (error kept)."""
        if self._detector is None and self._detector_error is None:
            from mvcapture.detect.backends import create_detector

            self._progress("detections", 0.0, f"loading the {self.detector_mode} detector")
            try:
                self._detector = create_detector(self.detector_mode, model_dir=self.model_dir, device=self.device)
            except ModelNotFoundError as exc:
                self._detector_error = exc
        return self._detector

    def _detect_all(self) -> tuple[list[ViewTrack], list[str]]:
        from mvcapture.detect.video import VideoDetections

        views = self.session.views
        key_id = self._detector_key()
        tracks, sigs = [], []
        for view in views:
            key = f"detections/view{view.index}"
            out = self.session.path_for("detections", view.index)
            if not view.media.exists():
                raise MvcaptureError(f"session {self.session.id}: the video of view {view.index} ({view.media}) "
                                     f"is missing; put it back or re-import the session")
            sig = _signature({"detector": key_id, "video": _file_stamp(view.media)})
            record = self._up_to_date("detections", key, sig, [out])
            if record is not None:
                det = VideoDetections.load(out)
                if record.get("source") == "cached":
                    self._note("detections", f"view {view.index}: using the detections shipped with the session "
                                             f"({record.get('model_id')}), not a detector run")
                self._progress("detections", (view.index + 1) / len(views),
                               f"view {view.index}: detections up to date")
            else:
                det = self._detect_view(view, out, sig, len(views))
            tracks.append(self._track(view, det))
            sigs.append(sig)
        return tracks, sigs

    def _detect_view(self, view, out: Path, sig: str, n_views: int):
        from mvcapture.detect.video import DetectionCancelled, cache_path, detect_video

        key = f"detections/view{view.index}"
        detector = self._get_detector()
        times = view.frame_times()
        if detector is None:
            cached = self.session.meta["views"][view.index].get("cached_detections")
            if not cached:
                raise self._detector_error
            det = _cached_video_detections(self.session.path / cached, view.media, times)
            reason = str(self._detector_error).splitlines()[0].rstrip(" :")
            log.info("detector unavailable: %s", self._detector_error)
            self._note("detections", f"view {view.index}: no detector weights could be had ({reason}); using "
                                     f"the detections shipped with the session ({Path(cached).name})")
            source = "cached"
        else:
            cache_dir = self.session.path / DETECTION_CACHE_DIR
            if self.force:
                cache_path(view.media, detector.model_id, cache_dir).unlink(missing_ok=True)

            def progress(done: int, total: int | None) -> None:
                frac = done / total if total else 0.0
                self._progress("detections", (view.index + frac) / n_views,
                               f"view {view.index}: frame {done}/{total or '?'}")

            try:
                det = detect_video(view.media, detector, progress=progress, cancel=self.cancel,
                                   cache_dir=cache_dir)
            except DetectionCancelled as exc:
                raise PipelineCancelled(f"{exc} (session {self.session.id})") from exc
            source = "detector"
        det.save(out)
        self._record(key, sig, source=source, model_id=det.model_id)
        self.session.record_model("detections", det.model_id, source)
        self._progress("detections", (view.index + 1) / n_views, f"view {view.index}: detections done ({source})")
        return det

    @staticmethod
    def _track(view, det) -> ViewTrack:
        kp, conf = det.h36m()
        times = np.asarray(det.frame_times_s, np.float64)
        try:
            table = view.frame_times()
            if len(table) == len(times):
                times = np.asarray(table, np.float64)  # presentation times (VFR-exact) of the session
        except (MvcaptureError, OSError):
            pass
        return ViewTrack(kp, conf, times, np.asarray(det.image_size, np.int64),
                         np.asarray(det.kp2d_px, np.float32), np.asarray(det.conf, np.float32))

    # -- time alignment ------------------------------------------------------------------------------------
    def _sync(self, tracks: list[ViewTrack]) -> list[dict]:
        """Per view: the alignment against view 0 ({offset_s, drift_ppm, confidence, low_confidence,
        method, reason, ...}); view 0 is the reference."""
        results = [{"offset_s": 0.0, "drift_ppm": 0.0, "confidence": 1.0, "low_confidence": False,
                    "method": "reference"}]
        n = len(tracks)
        for v in range(1, n):
            self._progress("sync", (v - 1) / (n - 1), f"view {v}: time alignment")
            stored = self.session.load_sync(v)
            redo = self.force or self.from_stage in ("detections", "sync")
            if stored is not None and (not redo or stored.get("method") == "manual"):
                result = dict(stored)
                self.skipped.append(f"sync/view{v}")
                how = f"stored ({result.get('method', '?')})"
            else:
                result = self._estimate_sync(v, tracks)
                if result.get("method") != "assumed":
                    self.session.save_sync(result, view=v)
                self.ran.append(f"sync/view{v}")
                how = f"estimated ({result.get('method')})"
            if result.get("low_confidence"):
                self._note("sync", f"view {v}: the time alignment is uncertain and was used anyway "
                                   f"(offset {float(result['offset_s']):+.3f} s, {result.get('method')}): "
                                   f"{result.get('reason') or 'low confidence'} -- check it, or set it with "
                                   f"`mvcapture sync {self.session.id} --manual-offset SECONDS`")
            results.append(result)
            self._progress("sync", v / (n - 1),
                           f"view {v}: offset {float(result['offset_s']):+.4f} s, {how}")
        return results

    def _estimate_sync(self, v: int, tracks: list[ViewTrack]) -> dict:
        if self.session.meta.get("kind") == "recording":
            return {"offset_s": 0.0, "drift_ppm": 0.0, "confidence": 1.0, "low_confidence": False,
                    "method": "clock", "reason": "",
                    "details": {"note": "both views were timestamped by this computer's clock while recording"}}
        from mvcapture.sync import RecordingSignals, estimate_offset

        def signals(i: int):
            view = self.session.views[i]
            audio, rate = (self.session.load_audio(i) if view.has_audio else (None, None))
            t = tracks[i]
            return RecordingSignals(audio=audio, audio_rate_hz=rate, kp2d_px=t.kp2d_coco_px, conf=t.conf_coco,
                                    frame_times_s=t.times_s, skeleton="coco17")

        self._progress("sync", 0.0, f"view {v}: estimating the time offset")
        try:
            return estimate_offset(signals(0), signals(v)).to_dict()
        except MvcaptureError as exc:
            return {"offset_s": 0.0, "drift_ppm": 0.0, "confidence": 0.0, "low_confidence": True,
                    "method": "assumed", "reason": f"{exc}; the videos are assumed to start together"}

    # -- lifting -------------------------------------------------------------------------------------------
    def _common_time_base(self, tracks: list[ViewTrack]) -> tuple[np.ndarray, float]:
        times = tracks[0].times_s
        fps = 1.0 / float(np.median(np.diff(times))) if len(times) > 1 else 0.0
        return times, fps

    def _lift_all(self, tracks: list[ViewTrack], det_sigs: list[str], sync: list[dict]
                  ) -> tuple[list[dict], list[str]]:
        from mvcapture.lifter.runtime import to_metres

        self.lifter = _load_model(self.model_spec, self.device)
        model_id = _model_identity(self.lifter)
        times0, fps0 = self._common_time_base(tracks)
        results, sigs = [], []
        n = len(tracks)
        for v, track in enumerate(tracks):
            key = f"lift/view{v}"
            out = self.session.path_for("lift", v)
            s = sync[v]
            sig = _signature({"det": det_sigs[v], "time_base": det_sigs[0], "offset_s": float(s["offset_s"]),
                              "drift_ppm": float(s.get("drift_ppm", 0.0)), "model": model_id,
                              "height_m": self.height_m, "flip": self.flip,
                              # every setting of the side repair changes what is lifted
                              "side_repair": [SWAP_COST_2D_PER_S, SPLIT_COST_2D_PER_S, MIN_CONF_2D]})
            sigs.append(sig)
            if self._up_to_date("lift", key, sig, [out]) is not None:
                results.append(self.session.load_array(f"lift/view{v}"))
                self._progress("lift", (v + 1) / n, f"view {v}: 3D up to date")
                continue
            query = (1.0 + float(s.get("drift_ppm", 0.0)) * 1e-6) * times0 + float(s["offset_s"])
            kp, conf = resample_view(track.times_s, track.kp2d_px, track.conf, query)
            if not (conf > 0).any():
                raise MvcaptureError(
                    f"view {v} has no detected athlete within view 0's time span (offset "
                    f"{float(s['offset_s']):+.3f} s); check the time alignment with `mvcapture sync`")
            # the lifter mirrors its 3D wherever the detector exchanged left and right: undo those swaps first
            kp, conf, side_order = repair_side_swaps(kp, conf, fps0 or 30.0, swap_cost_per_s=SWAP_COST_2D_PER_S,
                                                     split_cost_per_s=SPLIT_COST_2D_PER_S)

            def progress(done: int, total: int, v=v) -> None:
                self._check_cancel("lifting")
                self._progress("lift", (v + done / max(total, 1)) / n, f"view {v}: window {done}/{total}")

            pose_norm = self.lifter.lift_clip(kp, conf, track.image_size, flip=self.flip, progress=progress)
            pose_m = to_metres(pose_norm, track.image_size, height_m=self.height_m)
            arrays = {"pose_norm": pose_norm, "pose3d_m": pose_m, "kp2d_px": kp, "conf": conf, "times_s": times0,
                      "image_size": track.image_size, "side_order": side_order}
            self.session.save_array(f"lift/view{v}", **arrays)
            self._record(key, sig, model=model_id)
            results.append(arrays)
            self._progress("lift", (v + 1) / n, f"view {v}: lifted with {self.lifter.name}")
        if any(k.startswith("lift/") for k in self.ran):
            version = model_id["version"] or (model_id["sha256"] or "untracked")[:12]
            self.session.record_model("lift", str(model_id["name"]), str(version))
        return results, sigs

    # -- two-view geometry -----------------------------------------------------------------------------------
    def _view_lens(self, v: int, image_size) -> tuple[dict | None, float | None, str]:
        """View v's lens: its intrinsics (session), else a focal length from the video's metadata, else none."""
        from mvcapture.geometry.intrinsics import focal_from_metadata, load_intrinsics

        intr = self.session.intrinsics(v)
        if intr is not None:
            return load_intrinsics(intr).scaled_to(tuple(int(x) for x in image_size)).to_dict(), None, "intrinsics"
        try:
            focal = focal_from_metadata(self.session.views[v].media)
        except (MvcaptureError, OSError, ValueError) as exc:
            log.info("view %d: no focal length in the video's metadata (%s)", v, exc)
            focal = None
        return None, focal, ("metadata" if focal else "unknown")

    def _stereo(self, tracks: list[ViewTrack], sync: list[dict], lifted: list[dict], det_sigs: list[str],
                lift_sigs: list[str]) -> tuple[dict, str]:
        """Views 0 and 1: the relative pose and focal lengths from the athlete's keypoints
        (`geometry.stereo.self_calibrate`), the triangulated track and the fused 3D (`geometry.fusion`),
        saved as stereo.npz. Returns {"estimate": the metrics.json `stereo` object, "fused3d": (T, 17, 3),
        "fused_source": (T, 17)} and the stage's signature."""
        from mvcapture.geometry.fusion import fuse_tracks
        from mvcapture.geometry.stereo import (StereoEstimate, despike, self_calibrate, smooth_track,
                                              triangulate_tracks)

        times0, fps = self._common_time_base(tracks)
        lenses = [self._view_lens(v, tracks[v].image_size) for v in (0, 1)]
        s = sync[1]
        sig = _signature({"version": STEREO_VERSION, "det": det_sigs[:2], "lift": lift_sigs[:2],
                          "offset_s": float(s["offset_s"]), "drift_ppm": float(s.get("drift_ppm", 0.0)),
                          "lenses": [[lens[0], lens[1]] for lens in lenses], "height_m": self.height_m})
        path = self.session.path / f"{STEREO_FILE}.npz"
        if self._up_to_date("stereo", "stereo", sig, [path]) is not None:
            data = self.session.load_array(STEREO_FILE)
            estimate = json.loads(str(data["estimate_json"]))
            self._progress("stereo", 1.0, "two-view geometry up to date")
            self._stereo_notes(estimate)
            return {"estimate": estimate, "fused3d": data["fused3d"], "fused_source": data["fused_source"]}, sig
        self._progress("stereo", 0.0, "finding the cameras' geometry from the athlete's keypoints")
        query = (1.0 + float(s.get("drift_ppm", 0.0)) * 1e-6) * times0 + float(s["offset_s"])
        kp_a, conf_a = tracks[0].kp2d_coco_px.astype(np.float64), tracks[0].conf_coco.astype(np.float64)
        if len(tracks[0].times_s) != len(times0):
            kp_a, conf_a = resample_view(tracks[0].times_s, kp_a, conf_a, times0)
        kp_b, conf_b = resample_view(tracks[1].times_s, tracks[1].kp2d_coco_px, tracks[1].conf_coco, query)
        (intr_a, focal_a, how_a), (intr_b, focal_b, how_b) = lenses
        size_a, size_b = tracks[0].image_size, tracks[1].image_size
        try:
            est = self_calibrate(kp_a, conf_a, kp_b, conf_b, size_a, size_b, intr_a, intr_b,
                                 focal_hint_px=(focal_a, focal_b), fps=fps or 30.0)
        except (ValueError, np.linalg.LinAlgError, cv2_error()) as exc:  # the lifter's 3D still stands
            log.exception("stereo stage of session %s failed", self.session.id)
            est = StereoEstimate(status="degenerate", notes=[f"the two views' geometry could not be computed ({exc})"])
        self._progress("stereo", 0.7, "triangulating the athlete")
        lifts = np.stack([np.asarray(lifted[v]["pose3d_m"], np.float64) for v in (0, 1)])
        lift_conf = np.stack([np.asarray(lifted[v]["conf"], np.float64) for v in (0, 1)])
        estimate = est.to_json()
        estimate["lens"] = [how_a, how_b]
        if est.status == "degenerate":
            fused = np.full(lifts.shape[1:], np.nan, np.float32)
            source = np.zeros(lifts.shape[1:3], np.int8)
            estimate["metres_per_unit"] = None
        else:
            X, conf, _ = triangulate_tracks(est, kp_a, conf_a, kp_b, conf_b, size_a, size_b, intr_a, intr_b)
            fused, source, scale = fuse_tracks(smooth_track(despike(X), fps or 30.0), conf, lifts, lift_conf, est.R,
                                               self.height_m)
            estimate["metres_per_unit"] = scale
            estimate["triangulated_share"] = float((source == 1).mean())
        self.session.save_array(STEREO_FILE, fused3d=fused, fused_source=source,
                                estimate_json=np.array(json.dumps(estimate)))
        self._record("stereo", sig, status=est.status)
        self._stereo_notes(estimate)
        self._progress("stereo", 1.0, "two-view geometry not available (see the notes)" if est.status == "degenerate"
                       else f"cameras {est.axis_angle_deg:.0f}° apart ({est.status}, from the athlete's keypoints)")
        return {"estimate": estimate, "fused3d": fused, "fused_source": source}, sig

    def _stereo_notes(self, estimate: dict) -> None:
        status = estimate.get("status")
        for note in estimate.get("notes", []):
            if status == "degenerate":
                self._note("stereo", f"two-view 3D not available: {note}; the 3D and the camera angle come from "
                                     f"the lifter alone")
            else:
                self._note("stereo", f"two-view 3D: {note}")

    # -- alignment and scores ------------------------------------------------------------------------------
    def _analyse(self, tracks: list[ViewTrack], sync: list[dict], lifted: list[dict], lift_sigs: list[str],
                 stereo: dict | None = None, stereo_sig: str = "") -> Analysis:
        from mvcapture.core.procrustes import procrustes, rotation_angle_deg

        sig = _signature({"lift": lift_sigs, "stereo": stereo_sig})
        analysis_path = self.session.path_for("analysis")
        metrics_path = self.session.path_for("metrics")
        if self._up_to_date("analysis", "analysis", sig, [analysis_path, metrics_path]) is not None:
            self._progress("analysis", 1.0, "alignment and scores up to date")
            self.metrics = self.session.load_json("metrics")
            for note in self.metrics.get("notes", []):
                if note not in self.notes:
                    self.notes.append(note)
            return Analysis.load(analysis_path)
        self._progress("analysis", 0.0, "aligning the views")
        pose3d = np.stack([np.asarray(r["pose3d_m"], np.float64) for r in lifted])
        conf = np.stack([np.asarray(r["conf"], np.float64) for r in lifted])
        kp2d = np.stack([np.asarray(r["kp2d_px"], np.float32) for r in lifted])
        V, T = pose3d.shape[:2]
        aligned = pose3d.copy()
        angle = np.zeros(V)
        axis_angle = np.zeros(V)
        scale = np.ones(V)
        for v in range(1, V):
            w = conf[v] * conf[0]
            if not (w > 0).any():
                raise MvcaptureError(f"views 0 and {v} never see the athlete at the same time; check the time "
                                     f"alignment (`mvcapture sync`) and the detections")
            fit = procrustes(pose3d[v], pose3d[0], w, mode="sequence")
            aligned[v] = fit.aligned
            angle[v] = float(rotation_angle_deg(fit.R))
            axis_angle[v] = optical_axis_angle_deg(fit.R)
            scale[v] = float(fit.s)
        residual_sum = np.zeros((T, 17))
        weight_sum = np.zeros((T, 17))
        for a in range(V):
            for b in range(a + 1, V):
                w = conf[a] * conf[b]
                residual_sum += w * np.linalg.norm(aligned[a] - aligned[b], axis=-1) * MM_PER_M
                weight_sum += w
        seen = weight_sum > 0
        residual_mm = np.where(seen, residual_sum / np.where(seen, weight_sum, 1.0), np.nan)
        times0, fps = self._common_time_base(tracks)
        estimate = (stereo or {}).get("estimate") or {}
        stereo_axis = np.full(V, np.nan)
        stereo_rot = np.full(V, np.nan)
        stereo_focal = np.full(V, np.nan)
        stereo_axis[0] = stereo_rot[0] = 0.0
        if estimate.get("status") == "ok":
            stereo_axis[1] = float(estimate["axis_angle_deg"])
            stereo_rot[1] = float(estimate["rotation_deg"])
            stereo_focal[:2] = [float(f) for f in estimate["focal_px"]]
        fused = None if stereo is None else np.asarray(stereo["fused3d"], np.float32)
        fused_error = None
        if fused is not None and np.isfinite(fused).any():
            fused_error = self._lift_errors(pose3d, conf, fused)
        analysis = Analysis(kp2d=kp2d, conf=conf.astype(np.float32), pose3d=pose3d.astype(np.float32),
                            aligned=aligned.astype(np.float32), residual_mm=residual_mm.astype(np.float32),
                            angle_deg=angle, axis_angle_deg=axis_angle, image_size=np.stack([t.image_size for t in tracks]).astype(np.int32),
                            times_s=np.asarray(times0, np.float64), fps=float(fps),
                            offset_s=np.array([float(s["offset_s"]) for s in sync]),
                            fused3d=fused, fused_source=None if stereo is None else stereo["fused_source"],
                            fused_error_mm=fused_error, stereo_axis_angle_deg=stereo_axis,
                            stereo_angle_deg=stereo_rot, stereo_focal_px=stereo_focal)
        self._progress("analysis", 0.7, "scoring")
        depth = [depth_ratio(pose3d[v], conf[v]) for v in range(V)]
        for v, ratio in enumerate(depth):
            if ratio < FLAT_DEPTH_RATIO:
                command = f"mvcapture finetune {shlex.quote(str(self.session.path))}"
                self._note("analysis", f"view {v}: the lifter's 3D is nearly flat (depth spread {ratio:.2f} of the "
                                       f"width, real poses 0.3-0.5); the camera angle is then biased towards "
                                       f"180° and depth is barely checked -- fine-tune on this session (Fine-tune "
                                       f"tab, or `{command}`) or use a better trained model")
        sync_check = {str(v): self._check_sync_in_3d(v, pose3d[0], pose3d[v], conf[0] * conf[v], times0, sync[v])
                      for v in range(1, V)}
        self.metrics = self._metrics(analysis, weight_sum, axis_angle, scale, sync)
        self.metrics["depth_ratio"] = depth
        if estimate:
            self.metrics["stereo"] = estimate
            if fused_error is not None:
                self.metrics["lift_error_vs_fused_mm"] = [
                    float(np.nanmean(fused_error[v])) if np.isfinite(fused_error[v]).any() else None
                    for v in range(V)]
        self.metrics["sync_check_3d"] = sync_check
        analysis.save(analysis_path)
        self.session.save_json("metrics", self.metrics)
        self._record("analysis", sig)
        self._progress("analysis", 1.0, f"residual {self.metrics['residual_mean_mm']:.1f} mm, cameras "
                                        f"{self.metrics['camera_angle_deg']:.0f}° apart "
                                        f"({self.metrics['camera_angle_source']})")
        return analysis

    @staticmethod
    def _lift_errors(pose3d: np.ndarray, conf: np.ndarray, fused: np.ndarray) -> np.ndarray:
        """(V, T, 17) mm: each view's lift, mapped onto the fused track by one similarity per sequence, against
        it (NaN where either is unknown): how far each camera's monocular 3D is from the two-view 3D."""
        from mvcapture.geometry.fusion import lifts_onto_fused

        return lifts_onto_fused(pose3d, conf, fused)[1]

    def _check_sync_in_3d(self, v: int, pose_0: np.ndarray, pose_v: np.ndarray, weight: np.ndarray,
                          times_s: np.ndarray, sync: dict) -> dict:
        """Check the time alignment of view `v` with the lifted 3D (`sync.check_with_consistency`): the two
        views' 3D, both on the common time base, should agree best with no extra shift. A minimum more
        than SYNC_CHECK_TOLERANCE_FRAMES frames away, inside ±SYNC_CHECK_SEARCH_S, is a note for the user
        with the offset to try (the alignment is kept: a lifter's errors can move the minimum too).
        Returns the check for metrics.json (`sync_check_3d`)."""
        from mvcapture.sync import SyncResult
        from mvcapture.sync.consistency import check_with_consistency

        used = SyncResult(offset_s=0.0, confidence=1.0, method=str(sync.get("method", "offset")))
        seen = weight.sum(1) > 0
        if seen.sum() < 10:  # too little overlap to say anything
            return {"checked": False}
        frames = np.flatnonzero(seen)
        span = slice(frames[0], frames[-1] + 1)
        frame_s = float(np.median(np.diff(times_s)))
        search = max(3.0, round(SYNC_CHECK_SEARCH_S / frame_s))
        checked = check_with_consistency(used, pose_0[span], times_s[span], pose_v[span], times_s[span],
                                         search_frames=search, tolerance_frames=SYNC_CHECK_TOLERANCE_FRAMES)
        curve = checked.details["consistency"]
        gap = float(checked.details["consistency_gap_frames"])
        best_shift_s = float(curve["best_offset_s"])
        # flagged: a clear disagreement (sync's own rule); hint: a shallow minimum that is still inside the
        # searched range (on the demo it found a wrong offset's error within a frame or two)
        hint = bool(curve["interior"]) and gap > SYNC_CHECK_TOLERANCE_FRAMES
        if checked.low_confidence or hint:
            offset = float(sync.get("offset_s", 0.0))
            self._note("analysis", f"view {v}: the two views' 3D agree best {best_shift_s * 1000:+.0f} ms "
                                   f"({gap:.1f} frames) from the offset used ({offset:+.3f} s"
                                   f"{', ' + str(sync.get('method')) if sync.get('method') else ''}); if the "
                                   f"videos look out of step, try {offset + best_shift_s:+.3f} s in Review "
                                   f"(sync offset) or `mvcapture sync SESSION --manual-offset`")
        return {"checked": True, "flagged": bool(checked.low_confidence), "hint": hint,
                "best_shift_s": best_shift_s, "suggested_offset_s": float(sync.get("offset_s", 0.0)) + best_shift_s,
                "gap_frames": gap, "contrast": float(curve["contrast"]), "interior": bool(curve["interior"]),
                "reason": checked.reason}

    def _metrics(self, a: Analysis, weight: np.ndarray, axis_angle: np.ndarray, scale: np.ndarray,
                 sync: list[dict]) -> dict[str, Any]:
        res = np.nan_to_num(a.residual_mm.astype(np.float64))
        total = float(weight.sum())
        per_joint = (res * weight).sum(0) / np.maximum(weight.sum(0), 1e-12)
        per_frame = np.where(weight.sum(1) > 0, (res * weight).sum(1) / np.maximum(weight.sum(1), 1e-12), np.nan)
        stereo_angle = float(np.asarray(a.stereo_axis_angle_deg, np.float64)[1]) \
            if a.stereo_axis_angle_deg is not None else float("nan")
        pair_angle = stereo_angle if np.isfinite(stereo_angle) else float(axis_angle[1])
        detections = [self._state["stages"].get(f"detections/view{v}", {}) for v in range(a.num_views)]
        model = _model_identity(self.lifter)
        return {
            "session": self.session.id,
            "views": a.num_views,
            "frames": a.num_frames,
            "frames_seen_by_all_views": int((weight.sum(1) > 0).sum()),
            "fps": a.fps,
            "residual_mean_mm": float((res * weight).sum() / max(total, 1e-12)),
            "residual_median_mm": float(np.nanmedian(a.residual_mm)) if np.isfinite(a.residual_mm).any() else None,
            "residual_per_joint_mm": {name: float(x) for name, x in zip(H36M17_JOINTS, per_joint)},
            "residual_per_frame_mm": [None if not np.isfinite(x) else float(x) for x in per_frame],
            "camera_rotation_deg": [float(x) for x in a.angle_deg],
            "camera_axis_angle_deg": [float(x) for x in axis_angle],
            "camera_angle_deg": pair_angle,
            "camera_angle_source": "stereo" if np.isfinite(stereo_angle) else "lifter",
            "camera_angle_advice": camera_angle_advice(pair_angle),
            "scale": [float(x) for x in scale],
            "offset_s": [float(x) for x in a.offset_s],
            "sync": sync,
            "sync_low_confidence": any(bool(s.get("low_confidence")) for s in sync),
            "detections": [{"view": v, "source": d.get("source"), "model_id": d.get("model_id")}
                           for v, d in enumerate(detections)],
            "model": model,
            "height_m": self.height_m,
            "notes": list(self.notes),
        }


def process_session(session_or_path: Session | Path | str, model=None, detector_mode: str = "balanced",
                    progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
                    force: bool = False, **options: Any) -> Analysis:
    """Process a session end to end (see `SessionPipeline` for the options) and return its `Analysis`.

    Each stage is skipped when its output is up to date; the results are saved in the session
    (detections/, lift/, analysis.npz, metrics.json) and the lifter version is recorded in the catalog.
    """
    return SessionPipeline(session_or_path, model=model, detector_mode=detector_mode, progress=progress,
                           cancel=cancel, force=force, **options).run()

