"""Start the desktop app: one QApplication, the main window, optionally a session to open."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from mvcapture import __version__

log = logging.getLogger(__name__)


def get_app() -> QtWidgets.QApplication:
    """The running QApplication, created on first use."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        # 3D views share GL resources (pyqtgraph's shader programs): must be asked before the app exists
        QtCore.QCoreApplication.setAttribute(QtCore.Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
        app = QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("mvcapture")
    app.setOrganizationName("mvcapture")
    app.setApplicationVersion(__version__)
    return app


def run(path: Path | None = None, videos: list[Path] | None = None) -> int:
    """Open the main window (and `path`, or else the last session) and run until it closes."""
    from mvcapture.gui.heartbeat import EventLoopMonitor
    from mvcapture.gui.main_window import MainWindow
    from mvcapture.gui.qt_check import check_qt_binding

    check_qt_binding()
    app = get_app()
    window = MainWindow()
    window.show()
    if path is not None:
        window.open_path(path, videos)
    else:
        window.restore_last_session()
    monitor = EventLoopMonitor(interval_ms=50, log_above_ms=200, parent=window)
    monitor.start()
    previous_hook = sys.excepthook
    sys.excepthook = lambda *exc: report_unexpected_error(window, *exc)
    try:
        return app.exec()
    finally:
        sys.excepthook = previous_hook
        monitor.stop()
        destroy_now(window)


def destroy_now(widget: QtWidgets.QWidget) -> None:
    """Destroy a closed window (and its OpenGL views) now, while the QApplication lives: left to Python's
    exit, the C++ side went after the application and the interpreter crashed there."""
    widget.deleteLater()
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete.value)


def report_unexpected_error(window, exc_type, exc, tb) -> None:
    """An exception nothing caught, raised in a Qt slot: logged with its traceback and shown in the window's
    message bar, and the app keeps running (Qt would only print it to a terminal nobody watches)."""
    from mvcapture.logs import setup_logging

    if issubclass(exc_type, KeyboardInterrupt):
        QtWidgets.QApplication.instance().quit()
        return
    log.error("unexpected error", exc_info=(exc_type, exc, tb))
    try:
        window.message_bar.show_message(f"Something went wrong: {exc_type.__name__}: {exc}. The app keeps "
                                        f"running; details in {setup_logging()}")
    except RuntimeError:  # the window is already gone
        pass
