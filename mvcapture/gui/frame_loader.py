"""Decode the views' video frames in a worker thread; the GUI asks for a frame and gets it by signal.

Requests coalesce: while the decoder is busy only the newest request per view is kept, so scrubbing
never queues up stale work.
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

    Signals: `frame_ready(view, frame index in its file, rgb (H, W, 3) uint8 or None outside the
    video)`, `failed(view, message)`.
    """

    frame_ready = QtCore.Signal(int, int, object)
    failed = QtCore.Signal(int, str)

    def __init__(self, videos: list[Path | None], max_width: int = 960,
                 frame_times_s: list[np.ndarray | None] | None = None, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._paths = list(videos)
        self._frame_times = list(frame_times_s) if frame_times_s is not None else [None] * len(self._paths)
        self._max_width = max_width
        self._pending: dict[int, float] = {}
        self._wake = threading.Condition()
        self._stopping = False

    def request(self, view: int, time_s: float) -> None:
        """Ask for the frame of `view` at `time_s` seconds into its file (GUI thread; returns at once)."""
        if self._paths[view] is None:
            return
        with self._wake:
            self._pending[view] = time_s
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
                    while not self._pending and not self._stopping:
                        self._wake.wait()
                    if self._stopping:
                        return
                    view, time_s = self._pending.popitem()
                try:
                    if view not in readers:
                        readers[view] = VideoFrames(self._paths[view], max_width=self._max_width,
                                                    frame_times_s=self._frame_times[view])
                    index = readers[view].index_at(time_s)
                    frame: np.ndarray | None = readers[view].read(index)
                except MvcaptureError as exc:
                    self._paths[view] = None
                    self.failed.emit(view, str(exc))
                    continue
                except Exception as exc:  # a damaged file must not kill the thread
                    log.exception("decoding view %d at %.3f s failed", view, time_s)
                    self.failed.emit(view, f"cannot decode view {view}: {exc}")
                    continue
                self.frame_ready.emit(view, index, frame)
        finally:
            for reader in readers.values():
                reader.close()
