"""Refuse to run on a Qt binding that corrupts Python's reference counts, with a message saying why.

PySide6 6.12.0 on Python < 3.12 returns None from void methods without a reference; None's count falls
by one per call until the interpreter aborts ("deallocating None"), seconds into playback.
"""

from __future__ import annotations

import sys

from mvcapture.errors import MvcaptureError


def none_refcount_drift(calls: int = 50) -> int:
    """How much None's reference count changes over `calls` void Qt calls (0 on a sound binding)."""
    from PySide6 import QtCore

    timer = QtCore.QTimer()
    before = sys.getrefcount(None)
    for _ in range(calls):
        timer.setInterval(5)
    return sys.getrefcount(None) - before


def check_qt_binding() -> None:
    """Raise MvcaptureError when the installed PySide6 would crash the app."""
    import PySide6

    if none_refcount_drift() <= -40:
        raise MvcaptureError(
            f"PySide6 {PySide6.__version__} is broken on Python {sys.version.split()[0]} (it crashes the app "
            "within minutes); install another release: pip install 'PySide6-Essentials!=6.12.0'")
