"""What the review shows, found from a path: a processed `Analysis` and the videos of its views.

Plain Python (no Qt). Accepts a session (folder, id or name; through `mvcapture.session`), an
`analysis.npz` (videos passed alongside) or a plain folder holding one with its videos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import importlib.util

import numpy as np

from mvcapture.analysis import Analysis
from mvcapture.errors import MvcaptureError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm")
ANALYSIS_FILE = "analysis.npz"


@dataclass
class ReviewSource:
    """A processed recording ready to review.

    Attributes:
        name: shown in the window title.
        analysis: the processed result (2D, 3D per view, alignment, residuals).
        videos: one video path per view, or None where a view has no video (overlay on blank).
        folder: the session folder when opened from one, else None.
        frame_times_s: per view, the time of each video frame in its file (s), or None (constant rate).
        sync: per view, the session's stored time alignment against view 0 (sync.SyncResult as a dict:
            offset_s, drift_ppm, confidence, method, low_confidence, reason), or None.
        notes: what processing said the user must know (the session's metrics "notes"), shown in Review.
        stereo: the two-view geometry estimate (metrics.json "stereo": status, axis_angle_deg,
            axis_angle_interval_deg, focal_px, ...), or None for sessions processed before it existed.
    """

    name: str
    analysis: Analysis
    videos: list[Path | None] = field(default_factory=list)
    folder: Path | None = None
    frame_times_s: list[np.ndarray | None] = field(default_factory=list)
    sync: list[dict | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stereo: dict | None = None

    def __post_init__(self) -> None:
        views = self.analysis.num_views
        self.videos = list(self.videos)[:views] + [None] * max(0, views - len(self.videos))
        self.frame_times_s = list(self.frame_times_s)[:views] + [None] * max(0, views - len(self.frame_times_s))
        self.sync = list(self.sync)[:views] + [None] * max(0, views - len(self.sync))

    def video_time_s(self, view: int, frame: int, offset_s: float) -> float:
        """Time into `view`'s video file of common-time-base `frame`, given that view's offset (s).

        Convention (mvcapture.sync): a moment at common time t appears in view v's file at
        (1 + drift) t + offset_s[v], drift from the session's stored alignment (0 without one).
        """
        drift = float((self.sync[view] or {}).get("drift_ppm", 0.0)) * 1e-6
        return (1.0 + drift) * float(self.analysis.times_s[frame]) + offset_s


def _videos_in(folder: Path) -> list[Path]:
    found = []
    for sub in (folder, folder / "videos"):
        if sub.is_dir():
            found += sorted(p for p in sub.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    return found


def _session_api_available() -> bool:
    return importlib.util.find_spec("mvcapture.session") is not None


def _is_session(path: Path) -> bool:
    return (path / "session.json").is_file()


def load_session_source(key: Path | str) -> ReviewSource:
    """A processed session (folder, id or name) with its views' videos and frame times."""
    from mvcapture.session import Session

    session = Session.open(key, repair=False)
    analysis_path = session.path_for("analysis")
    if not analysis_path.is_file():
        raise MvcaptureError(f"session '{session.name}' is not processed yet: run `mvcapture process "
                             f"{session.id}` (or Process in the Capture tab), then open it again")
    videos, times = [], []
    sync = [None] + [session.load_sync(v) for v in range(1, len(session.views))]
    for view in session.views:
        ok = view.media.is_file()
        videos.append(view.media if ok else None)
        times.append(view.frame_times() if ok and view.timestamps.is_file() else None)
    try:
        metrics = session.load_json("metrics")
    except MvcaptureError:  # not written (older sessions) or damaged: Review works without it
        metrics = {}
    return ReviewSource(name=session.name, analysis=Analysis.load(analysis_path), videos=videos,
                        folder=session.path, frame_times_s=times, sync=sync,
                        notes=[str(n) for n in metrics.get("notes", [])], stereo=_stereo_of(metrics))


def _stereo_of(metrics: dict) -> dict | None:
    stereo = metrics.get("stereo")
    return stereo if isinstance(stereo, dict) else None


def _metrics_beside(analysis_path: Path) -> dict:
    """metrics.json next to an analysis.npz (the demo's output folder), or {} when absent or unreadable."""
    import json

    try:
        metrics = json.loads((analysis_path.parent / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


def load_review_source(path: Path | str, videos: list[Path | str] | None = None) -> ReviewSource:
    """Open a session, an `analysis.npz`, or a folder with `analysis.npz` and its view videos (name order)."""
    path = Path(path).expanduser()
    if not videos and _session_api_available() and (_is_session(path) or not path.exists()):
        if path.exists() or len(path.parts) == 1:  # a session folder, or an id / name from the catalog
            return load_session_source(path)
    if path.is_dir():
        analysis_path = path / ANALYSIS_FILE
        if not analysis_path.is_file():
            raise MvcaptureError(f"{path} has no {ANALYSIS_FILE}: process the session first")
        folder, name = path, path.name
        found = [Path(v) for v in videos] if videos else _videos_in(path)
    elif path.is_file():
        analysis_path, folder = path, None
        name = path.parent.name if path.name == ANALYSIS_FILE else path.stem
        found = [Path(v) for v in videos] if videos else []
    else:
        raise MvcaptureError(f"nothing to open at {path}: give a session folder or an analysis.npz")
    for video in found:
        if not video.is_file():
            raise MvcaptureError(f"video not found: {video}")
    metrics = _metrics_beside(analysis_path)
    return ReviewSource(name=name, analysis=Analysis.load(analysis_path), videos=found, folder=folder,
                        notes=[str(n) for n in metrics.get("notes", [])], stereo=_stereo_of(metrics))
