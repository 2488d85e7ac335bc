"""Measure how long the GUI event loop stalls: a fast heartbeat timer records its worst late tick.

Used by the responsiveness tests (the worst stall must stay under 100 ms while work runs) and by the
app in debug runs to log stalls.
"""

from __future__ import annotations

import logging

from PySide6 import QtCore

log = logging.getLogger(__name__)


class EventLoopMonitor(QtCore.QObject):
    """Heartbeat every `interval_ms`; a stall is the time between beats beyond the interval.

    Attributes after `start()`: `worst_stall_ms`, `beats`. With `log_above_ms`, each longer stall is
    logged as a warning.
    """

    def __init__(self, interval_ms: int = 10, log_above_ms: float | None = None,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.log_above_ms = log_above_ms
        self._timer = QtCore.QTimer(self)
        self._timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._beat)
        self._clock = QtCore.QElapsedTimer()
        self.worst_stall_ms = 0.0
        self.beats = 0
        self.stalls: list[tuple[float, float]] = []  # (seconds since start, stall ms) above 20 ms

    def start(self) -> None:
        self.worst_stall_ms = 0.0
        self.beats = 0
        self.stalls = []
        self._since = QtCore.QElapsedTimer()
        self._since.start()
        self._clock.start()
        self._timer.start()

    def stop(self) -> float:
        """Stop beating; returns the worst stall in ms."""
        self._timer.stop()
        self._beat()
        return self.worst_stall_ms

    def _beat(self) -> None:
        elapsed_ms = self._clock.nsecsElapsed() / 1e6
        self._clock.restart()
        self.beats += 1
        stall = max(0.0, elapsed_ms - self.interval_ms)
        if stall > self.worst_stall_ms:
            self.worst_stall_ms = stall
        if stall > 20:
            self.stalls.append((self._since.elapsed() / 1000, stall))
        if self.log_above_ms is not None and stall > self.log_above_ms:
            log.warning("GUI event loop stalled for %.0f ms", stall)
