"""What the review shows, found from a path: a processed `Analysis` and the videos of its views.

Plain Python (no Qt). Accepts an `analysis.npz` (videos passed alongside) or a folder holding one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
    """

    name: str
    analysis: Analysis
    videos: list[Path | None] = field(default_factory=list)
    folder: Path | None = None

    def __post_init__(self) -> None:
        views = self.analysis.num_views
        self.videos = list(self.videos)[:views] + [None] * max(0, views - len(self.videos))

    def video_time_s(self, view: int, frame: int, offset_s: float) -> float:
        """Time into `view`'s video file of common-time-base `frame`, given that view's offset (s).

        Convention: a moment at common time t appears in view v's file at t + offset_s[v].
        """
        return float(self.analysis.times_s[frame]) + offset_s


def _videos_in(folder: Path) -> list[Path]:
    found = []
    for sub in (folder, folder / "videos"):
        if sub.is_dir():
            found += sorted(p for p in sub.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    return found


def load_review_source(path: Path | str, videos: list[Path | str] | None = None) -> ReviewSource:
    """Open an `analysis.npz`, or a folder with `analysis.npz` (and its view videos, in name order)."""
    path = Path(path).expanduser()
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
    return ReviewSource(name=name, analysis=Analysis.load(analysis_path), videos=found, folder=folder)
