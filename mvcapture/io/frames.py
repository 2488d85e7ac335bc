"""Random-access reading of video frames for display (OpenCV), with a fast path for sequential reads.

Used by the review views (in a worker thread) to show the recorded videos; frames come back as RGB
uint8, optionally shrunk to a maximum width so the GUI never has to move full-HD images around.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from mvcapture.errors import MvcaptureError

log = logging.getLogger(__name__)


class VideoFrames:
    """Frames of one video file by index or time.

    Args:
        path: a video file OpenCV can read (mp4, avi, mov, mkv ...).
        max_width: frames wider than this are shrunk (keeping the aspect); None keeps full size.
        frame_times_s: (N,) time of each frame in the file, seconds (variable frame rate videos, e.g. from
            the session's timestamp table); None = constant rate from the container's fps.
    """

    def __init__(self, path: Path | str, max_width: int | None = None,
                 frame_times_s: np.ndarray | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise MvcaptureError(f"video not found: {self.path}")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise MvcaptureError(f"cannot open video {self.path}: unsupported or damaged file")
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS)) or 30.0
        self.num_frames = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.max_width = max_width
        self.frame_times_s = None if frame_times_s is None else np.asarray(frame_times_s, float)
        self._next = 0  # index the decoder will return on the next plain read

    @property
    def scale(self) -> float:
        """Factor from the video's pixels to the returned frames' pixels (<= 1)."""
        if self.max_width is None or self.size[0] <= self.max_width:
            return 1.0
        return self.max_width / self.size[0]

    def index_at(self, time_s: float) -> int:
        """Nearest frame index at `time_s` seconds into the file (may be out of range)."""
        times = self.frame_times_s
        if times is None or len(times) == 0:
            return int(round(time_s * self.fps))
        step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / self.fps
        if time_s < times[0] - step / 2:
            return -1
        if time_s > times[-1] + step / 2:
            return len(times)
        i = int(np.searchsorted(times, time_s))
        if i > 0 and (i == len(times) or time_s - times[i - 1] <= times[i] - time_s):
            i -= 1
        return i

    def read(self, index: int) -> np.ndarray | None:
        """Frame `index` as RGB uint8 (H, W, 3); None when the index lies outside the video."""
        if index < 0 or (self.num_frames and index >= self.num_frames):
            return None
        if index != self._next:
            if 0 < index - self._next <= 8:  # a short skip forward: grabbing is cheaper than seeking
                while self._next < index:
                    if not self._cap.grab():
                        return None
                    self._next += 1
            else:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
                self._next = index
        ok, bgr = self._cap.read()
        if not ok:
            self._next = -1
            return None
        self._next = index + 1
        scale = self.scale
        if scale < 1.0:
            bgr = cv2.resize(bgr, (round(self.size[0] * scale), round(self.size[1] * scale)),
                             interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> "VideoFrames":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
