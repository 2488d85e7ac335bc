"""Run long work off the GUI thread: a function in a worker thread, its result or error back as signals.

The GUI thread only starts tasks and receives their outcome; it never waits for one.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6 import QtCore

from mvcapture.errors import MvcaptureError

log = logging.getLogger(__name__)

# Background threads run at a lower OS priority than the GUI thread (and so do the thread pools that
# numerical libraries start from them), so a busy worker cannot starve the event loop of CPU.
BACKGROUND_NICE = 10
# How often (s) Python hands the GIL between threads: short, so the GUI thread never waits long
# behind a worker running Python code: painting crosses into C++ and back hundreds of times per frame,
# and every crossing may wait one interval for the GIL (the default is 5 ms).
GIL_SWITCH_INTERVAL_S = 0.0002

_pool: QtCore.QThreadPool | None = None


def background_pool() -> QtCore.QThreadPool:
    """The thread pool of GUI-started work (separate from Qt's global pool)."""
    global _pool
    if _pool is None:
        _pool = QtCore.QThreadPool()
        _pool.setMaxThreadCount(max(2, (os.cpu_count() or 2) - 1))
    return _pool


def prefer_gui_thread() -> None:
    """Make the running process favour the GUI thread: short GIL hand-overs (call once, at start)."""
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))


def lower_thread_priority() -> None:
    """Lower the calling thread's scheduling priority (Linux: per-thread nice; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), BACKGROUND_NICE))
        except OSError:
            log.debug("could not lower the priority of worker thread", exc_info=True)


class Task(QtCore.QObject):
    """One call of `fn(*args, **kwargs)` in the background thread pool.

    Signals (delivered in the GUI thread): `finished(result)`, `failed(message)` where message is the
    user-facing text (the traceback goes to the log), and `done()` after either.
    """

    finished = QtCore.Signal(object)
    failed = QtCore.Signal(str)
    done = QtCore.Signal()

    _running: set["Task"] = set()  # keeps tasks alive until they report back

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._fn, self._args, self._kwargs = fn, args, kwargs

    def start(self) -> "Task":
        Task._running.add(self)
        self.done.connect(lambda: Task._running.discard(self))
        background_pool().start(self._run)
        return self

    def _run(self) -> None:
        lower_thread_priority()
        try:
            result = self._fn(*self._args, **self._kwargs)
        except MvcaptureError as exc:
            log.warning("task %s failed: %s", getattr(self._fn, "__name__", self._fn), exc)
            self.failed.emit(str(exc))
        except Exception as exc:
            log.error("task %s crashed:\n%s", getattr(self._fn, "__name__", self._fn), traceback.format_exc())
            self.failed.emit(f"unexpected error: {exc} (details in the log file)")
        else:
            self.finished.emit(result)
        self.done.emit()


def run_task(fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None] | None = None,
             on_error: Callable[[str], None] | None = None, owner: QtCore.QObject | None = None,
             **kwargs: Any) -> Task:
    """Start `fn(*args, **kwargs)` in a worker thread; callbacks run in the GUI thread.

    With `owner` (the widget that asked), the callbacks are skipped once that widget is gone (a window
    closed while its task still ran).
    """
    task = Task(fn, *args, **kwargs)

    def guarded(callback: Callable[[Any], None]) -> Callable[[Any], None]:
        return lambda value: callback(value) if owner is None or shiboken6.isValid(owner) else None

    if on_done is not None:
        task.finished.connect(guarded(on_done))
    if on_error is not None:
        task.failed.connect(guarded(on_error))
    return task.start()
