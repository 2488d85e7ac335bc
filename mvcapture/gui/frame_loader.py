"""Decode the views' video frames in a worker thread; the GUI asks for one moment and gets all views by signal.

Requests coalesce: while the decoder is busy only the newest request is kept, so scrubbing never queues
up stale work, and the frames of all views arrive together (one repaint per displayed moment).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
from PySide6 import QtCore

from mvcapture.errors import MvcaptureError
from mvcapture.gui.workers import lower_thread_priority
from mvcapture.io.frames import VideoFrames

log = logging.getLogger(__name__)


class FrameLoader(QtCore.QThread):
    """Owns one `VideoFrames` per view (None = no video) inside its thread.

    Signals: `frames_ready(key, {view: (frame index in its file, rgb (H, W, 3) uint8 or None outside the
    video)})` for each handled request, `failed(view, message)` when a view's video cannot be read.
    """

    frames_ready = QtCore.Signal(object, object)
    failed = QtCore.Signal(int, str)

    def __init__(self, videos: list[Path | None], max_width: int = 960,
                 frame_times_s: list[np.ndarray | None] | None = None, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._paths = list(videos)
        self._frame_times = list(frame_times_s) if frame_times_s is not None else [None] * len(self._paths)
        self._max_width = max_width
        self._pending: tuple[object, dict[int, float]] | None = None
        self._wake = threading.Condition()
        self._stopping = False

    def request(self, key: object, times_s: dict[int, float]) -> None:
        """Ask for each view's frame at `times_s[view]` seconds into its file (GUI thread; returns at once).

        `key` comes back with the frames (the review passes the frame number).
        """
        times_s = {v: t for v, t in times_s.items() if self._paths[v] is not None}
        with self._wake:
            self._pending = (key, times_s)
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self.wait()

    def run(self) -> None:
        readers: dict[int, VideoFrames] = {}
        lower_thread_priority()
        try:
            while True:
                with self._wake:
                    while self._pending is None and not self._stopping:
                        self._wake.wait()
                    if self._stopping:
                        return
                    key, times_s = self._pending
                    self._pending = None
                frames = {}
                for view, time_s in times_s.items():
                    frame = self._decode(readers, view, time_s)
                    if frame is not None:
                        frames[view] = frame
                self.frames_ready.emit(key, frames)
        finally:
            for reader in readers.values():
                reader.close()

    def _decode(self, readers: dict[int, VideoFrames], view: int, time_s: float):
        if self._paths[view] is None:
            return None
        try:
            if view not in readers:
                readers[view] = VideoFrames(self._paths[view], max_width=self._max_width,
                                            frame_times_s=self._frame_times[view])
            index = readers[view].index_at(time_s)
            return index, readers[view].read(index)
        except MvcaptureError as exc:
            self._paths[view] = None
            self.failed.emit(view, str(exc))
        except Exception as exc:  # a damaged file must not kill the thread
            log.exception("decoding view %d at %.3f s failed", view, time_s)
            self.failed.emit(view, f"cannot decode view {view}: {exc}")
        return None
