"""Run a detector over a whole video: every person per frame, their tracks, and the athlete's 2D track.

Results are cached per video and model (key: file size, mtime, a hash of its first and last MiB, and
the detector's model id) and written every few frames, atomically, so an interrupted or cancelled run
resumes where it stopped. Tracking and the athlete choice are re-done from the cache in no time.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from mvcapture.core.skeleton import coco_to_h36m
from mvcapture.detect.backends import Person, PoseDetector
from mvcapture.detect.smoothing import smooth_keypoints
from mvcapture.detect.tracking import AthleteChoice, choose_athlete, track_people
from mvcapture.errors import MvcaptureError
from mvcapture.io.atomic import atomic_save_npz
from mvcapture.paths import data_dir

log = logging.getLogger(__name__)

CACHE_VERSION = 1
_HASH_BYTES = 1 << 20

# progress(frames_done, frames_total or None)
ProgressCallback = Callable[[int, "int | None"], None]


class DetectionCancelled(MvcaptureError):
    """The user cancelled detection; what was done is cached and the next run resumes from there."""


@dataclass
class VideoDetections:
    """Everyone found in a video, their tracks, and the athlete's keypoints (COCO-17 order, pixels).

    Per detection (N = all people in all frames): `person_frame` (N,) frame index, `person_box` (N, 4)
    x1 y1 x2 y2 px, `person_box_score` (N,), `person_keypoints` (N, 17, 2) px, `person_scores` (N, 17),
    `track_id` (N,).
    Per frame (T): `frame_times_s` (T,) seconds from the video's timestamps, and for the athlete
    `kp2d_px` (T, 17, 2), `conf` (T, 17), `boxes` (T, 4), `box_score` (T,) -- all 0 in frames where the
    athlete was not detected (never a guess).
    `athlete_id` is the athlete's track id (-1: nobody detected); `image_size` (2,) width, height px.
    """

    video: str
    model_id: str
    image_size: np.ndarray
    fps: float
    frame_times_s: np.ndarray
    person_frame: np.ndarray
    person_box: np.ndarray
    person_box_score: np.ndarray
    person_keypoints: np.ndarray
    person_scores: np.ndarray
    track_id: np.ndarray
    athlete_id: int
    kp2d_px: np.ndarray
    conf: np.ndarray
    boxes: np.ndarray
    box_score: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.frame_times_s)

    def boxes_per_frame(self) -> list[np.ndarray]:
        return _split(self.person_box, self.person_frame, self.num_frames)

    def ids_per_frame(self) -> list[np.ndarray]:
        return _split(self.track_id, self.person_frame, self.num_frames)

    def select_athlete(self, athlete: AthleteChoice) -> "VideoDetections":
        """The same detections with another athlete: a track id or a (frame, x, y) click point."""
        athlete_id = choose_athlete(self.boxes_per_frame(), self.ids_per_frame(), self.image_size, athlete)
        return replace(self, **_athlete_arrays(self, athlete_id))

    def h36m(self, smooth: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The athlete in H36M-17 order: (T, 17, 2) px and (T, 17) conf; optional One-Euro smoothing."""
        kp, conf = self.kp2d_px, self.conf
        if smooth:
            kp = smooth_keypoints(kp, conf, self.frame_times_s)
        kp_h36m, conf_h36m = coco_to_h36m(kp, conf)
        return kp_h36m.astype(np.float32), conf_h36m.astype(np.float32)

    def save(self, path: Path | str, smooth: bool = False) -> None:
        """Write as `.npz`: all fields above, plus the athlete in H36M-17 order, `kp2d_h36m` (T, 17, 2)
        px (One-Euro smoothed when `smooth`) and `conf_h36m` (T, 17)."""
        kp_h36m, conf_h36m = self.h36m(smooth)
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        atomic_save_npz(path, **arrays, kp2d_h36m=kp_h36m, conf_h36m=conf_h36m)

    @classmethod
    def load(cls, path: Path | str) -> "VideoDetections":
        try:
            with np.load(path, allow_pickle=False) as data:
                values = {f.name: data[f.name] for f in fields(cls)}
        except (OSError, KeyError, ValueError) as exc:
            raise MvcaptureError(f"{path}: not a readable detections file ({exc}); run detection again") from exc
        values["video"], values["model_id"] = str(values["video"]), str(values["model_id"])
        values["fps"], values["athlete_id"] = float(values["fps"]), int(values["athlete_id"])
        return cls(**values)


def _split(values: np.ndarray, frame: np.ndarray, num_frames: int) -> list[np.ndarray]:
    bounds = np.searchsorted(frame, np.arange(num_frames + 1))
    return [values[bounds[t]:bounds[t + 1]] for t in range(num_frames)]


def _athlete_arrays(det: VideoDetections, athlete_id: int | None) -> dict[str, object]:
    T = det.num_frames
    kp = np.zeros((T, 17, 2), np.float32)
    conf = np.zeros((T, 17), np.float32)
    boxes = np.zeros((T, 4), np.float32)
    box_score = np.zeros(T, np.float32)
    athlete_id = -1 if athlete_id is None else int(athlete_id)
    rows = np.flatnonzero(det.track_id == athlete_id)
    frames = det.person_frame[rows]
    kp[frames] = det.person_keypoints[rows]
    conf[frames] = det.person_scores[rows]
    boxes[frames] = det.person_box[rows]
    box_score[frames] = det.person_box_score[rows]
    return {"athlete_id": athlete_id, "kp2d_px": kp, "conf": conf, "boxes": boxes, "box_score": box_score}


# --- video decoding (OpenCV until mvcapture.io.video lands; only these two functions touch the file) ---

def _video_info(path: Path) -> tuple[float, int | None]:
    """(fps, frame count or None when unknown)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise MvcaptureError(f"cannot read video {path} (missing, or a format OpenCV cannot decode)")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        return float(cap.get(cv2.CAP_PROP_FPS) or 0.0), (count if count > 0 else None)
    finally:
        cap.release()


def _decode_frames(path: Path, start: int = 0) -> Iterator[tuple[float, np.ndarray]]:
    """(time_s, BGR frame) for each frame from index `start` on (earlier frames are skipped, not decoded
    to images)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        for _ in range(start):
            if not cap.grab():
                return
        index = start
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            yield (msec / 1000.0 if (msec > 0 or index == 0 or fps <= 0) else index / fps), frame
            index += 1
    finally:
        cap.release()


# --- cache ---

def video_cache_key(path: Path | str, model_id: str) -> str:
    """Hex key of (video size, mtime, first and last MiB, model id)."""
    path = Path(path)
    stat = path.stat()
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{stat.st_size}|{stat.st_mtime_ns}|{model_id}|".encode())
    with open(path, "rb") as f:
        digest.update(f.read(_HASH_BYTES))
        if stat.st_size > 2 * _HASH_BYTES:
            f.seek(-_HASH_BYTES, 2)
            digest.update(f.read(_HASH_BYTES))
    return digest.hexdigest()


def cache_path(video: Path | str, model_id: str, cache_dir: Path | str | None = None) -> Path:
    """Where `detect_video` keeps the detections of this video and model (default: user data dir)."""
    folder = Path(cache_dir) if cache_dir is not None else data_dir() / "cache" / "detections"
    return folder / f"{Path(video).stem}.{video_cache_key(video, model_id)[:16]}.npz"


class _RawDetections:
    """Growing per-frame lists of people; saved as flat arrays."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.people: list[list[Person]] = []
        self.image_size: tuple[int, int] | None = None  # (width, height) of the decoded frames

    def arrays(self) -> dict[str, np.ndarray]:
        flat = [(t, p) for t, people in enumerate(self.people) for p in people]
        return {
            "frame_times_s": np.asarray(self.times, np.float64),
            "person_frame": np.asarray([t for t, _ in flat], np.int64),
            "person_box": np.asarray([p.box for _, p in flat], np.float32).reshape(-1, 4),
            "person_box_score": np.asarray([p.box_score for _, p in flat], np.float32),
            "person_keypoints": np.asarray([p.keypoints for _, p in flat], np.float32).reshape(-1, 17, 2),
            "person_scores": np.asarray([p.scores for _, p in flat], np.float32).reshape(-1, 17),
        }

    @classmethod
    def from_arrays(cls, data) -> "_RawDetections":
        raw = cls()
        raw.times = [float(t) for t in data["frame_times_s"]]
        raw.image_size = tuple(int(v) for v in data["image_size"])
        raw.people = [[] for _ in raw.times]
        for t, box, score, kp, sc in zip(data["person_frame"], data["person_box"], data["person_box_score"],
                                         data["person_keypoints"], data["person_scores"]):
            raw.people[int(t)].append(Person(box, float(score), kp, sc))
        return raw


def _load_cache(path: Path, model_id: str) -> tuple[_RawDetections, bool]:
    if not path.is_file():
        return _RawDetections(), False
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["model_id"]) != model_id:
                return _RawDetections(), False
            return _RawDetections.from_arrays(data), bool(data["complete"])
    except (OSError, KeyError, ValueError) as exc:
        log.warning("ignoring unreadable detection cache %s (%s)", path, exc)
        return _RawDetections(), False


def _save_cache(path: Path, raw: _RawDetections, complete: bool, model_id: str, fps: float, video: Path) -> None:
    atomic_save_npz(path, **raw.arrays(), complete=np.bool_(complete), model_id=np.str_(model_id),
                    fps=np.float64(fps), image_size=np.asarray(raw.image_size, np.int32),
                    video=np.str_(str(video)))


def detect_video(path: Path | str, detector: PoseDetector, athlete: AthleteChoice = None,
                 progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
                 cache_dir: Path | str | None = None, checkpoint_every: int = 100,
                 max_gap_s: float = 0.5) -> VideoDetections:
    """Detect everyone in every frame, track them, and pick the athlete.

    Args:
        path: the video file.
        detector: a `PoseDetector` (see `create_detector`).
        athlete: None = the most prominent person; a track id; or a (frame, x, y) click point.
        progress: called as progress(frames_done, frames_total or None) after each frame.
        cancel: when set, detection stops, the work done is cached, and `DetectionCancelled` is raised.
        cache_dir: folder for the per-video cache (default: the user data dir; the session pipeline
            passes the session's folder).
        checkpoint_every: frames between atomic cache writes.
        max_gap_s: seconds a person may go undetected (occluded, missed) and still keep their track.

    Returns:
        `VideoDetections` (COCO-17 pixels; frames without the athlete have conf 0).
    """
    path = Path(path)
    if not path.is_file():
        raise MvcaptureError(f"video {path} does not exist")
    fps, total = _video_info(path)
    store = cache_path(path, detector.model_id, cache_dir)
    raw, complete = _load_cache(store, detector.model_id)
    if raw.times and not complete:
        log.info("resuming detection of %s at frame %d (cache %s)", path.name, len(raw.times), store)
    if not complete:
        done_at_last_save = len(raw.times)
        if progress is not None:
            progress(done_at_last_save, total)
        try:
            for time_s, frame in _decode_frames(path, start=len(raw.times)):
                raw.image_size = (frame.shape[1], frame.shape[0])  # as decoded (rotation metadata applied)
                if cancel is not None and cancel.is_set():
                    raise DetectionCancelled(f"detection of {path.name} cancelled at frame {len(raw.times)}; "
                                             "run it again to resume")
                raw.people.append(detector.detect(frame))
                raw.times.append(time_s)
                if len(raw.times) - done_at_last_save >= checkpoint_every:
                    _save_cache(store, raw, False, detector.model_id, fps, path)
                    done_at_last_save = len(raw.times)
                if progress is not None:
                    progress(len(raw.times), total)
        except BaseException:
            if len(raw.times) > done_at_last_save:
                _save_cache(store, raw, False, detector.model_id, fps, path)
            raise
        if not raw.times:
            raise MvcaptureError(f"no frames could be decoded from {path}")
        _save_cache(store, raw, True, detector.model_id, fps, path)
    image_size = raw.image_size
    arrays = raw.arrays()
    boxes = _split(arrays["person_box"], arrays["person_frame"], len(raw.times))
    ids = track_people(boxes, max_gap=max(1, round(max_gap_s * (fps or 30.0))))
    track_id = np.concatenate([np.zeros(0, np.int64)] + ids)
    result = VideoDetections(video=str(path), model_id=detector.model_id,
                             image_size=np.asarray(image_size, np.int32), fps=fps, **arrays,
                             track_id=track_id, athlete_id=-1, kp2d_px=None, conf=None, boxes=None,
                             box_score=None)
    athlete_id = choose_athlete(boxes, ids, image_size, athlete)
    return replace(result, **_athlete_arrays(result, athlete_id))
