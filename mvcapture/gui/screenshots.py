"""Save a PNG of each tab of the app: `python -m mvcapture.gui.screenshots OUTDIR [--session PATH]`.

Without a session it renders a synthetic two-camera recording first. Run it under a display server
(Xvfb on CI: `xvfb-run -a python -m mvcapture.gui.screenshots docs/screenshots`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets


def wait_until(condition, timeout_s: float = 10.0) -> None:
    """Run the event loop until `condition()` is true (raises TimeoutError after `timeout_s`)."""
    app = QtWidgets.QApplication.instance()
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the app did not get ready in time")
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)


def settle(ms: int = 300) -> None:
    app = QtWidgets.QApplication.instance()
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)


def grab_window(window: QtWidgets.QWidget) -> QtGui.QPixmap:
    """The window as shown, with its native 3D views painted in (a widget grab leaves them blank)."""
    from mvcapture.gui.view3d import Skeleton3DView

    pixmap = window.grab()
    painter = QtGui.QPainter(pixmap)
    for view in window.findChildren(Skeleton3DView):
        if view.isVisible():
            painter.drawImage(view.mapTo(window, QtCore.QPoint(0, 0)), view.grab_image())
    painter.end()
    return pixmap


def take_screenshots(out_dir: Path, session: Path | None = None, size: tuple[int, int] = (1280, 800),
                     frame: int | None = None, joint: int | None = 13, dark: bool = False,
                     finetune: bool = False) -> list[Path]:
    """Open the app on `session` (synthetic when None) and save one PNG per tab; returns the paths.

    Without a session, everything happens in a throw-away data dir (MVCAPTURE_HOME) holding two
    synthetic sessions, so the Library and Fine-tune tabs have something to show; with `finetune` a
    short fine-tune of a tiny network runs on them first (about a minute on a CPU).
    """
    from mvcapture.gui.app import get_app
    from mvcapture.gui.main_window import TAB_NAMES, MainWindow, layer_available
    from mvcapture.gui.synthetic import create_synthetic_session, write_synthetic_session

    get_app()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        videos = None
        if session is None:
            os.environ["MVCAPTURE_HOME"] = str(Path(tmp) / "home")
            if layer_available("mvcapture.session"):
                create_synthetic_session("jump practice", athlete="Sam", tags=("jump",), num_frames=90, seed=3)
                created = create_synthetic_session("sprint start", athlete="Ann", tags=("sprint", "demo"),
                                                   num_frames=150)
                session = created.path
                videos = [v.media for v in created.views]
            else:
                session = write_synthetic_session(Path(tmp) / "synthetic walk", num_frames=150)
                videos = [session / "view0.mp4", session / "view1.mp4"]
        settings = QtCore.QSettings(str(Path(tmp) / "gui.ini"), QtCore.QSettings.Format.IniFormat)
        window = MainWindow(settings, finetune_config="tiny" if finetune else None)
        if dark:
            window.set_color_scheme(QtCore.Qt.ColorScheme.Dark)
        window.resize(*size)
        window.show()
        window.open_path(session)
        wait_until(lambda: window.review_tab.view is not None)
        view = window.review_tab.view
        state = view.state
        state.seek(frame if frame is not None else int(state.num_frames * 0.55))
        state.select_joint(joint)
        wait_until(lambda: all(p.image.image is not None and p.image.image.shape[0] > 8
                               for p, v in zip(view.panels, view.source.videos) if v is not None))
        settle()
        if videos and hasattr(window.capture_tab, "pickers"):
            for picker, video in zip(window.capture_tab.pickers, videos):
                picker.set_file(video)
            window.tabs.setCurrentWidget(window.capture_tab)
            window.capture_tab.start_preview()
            wait_until(lambda: all(p.image.image is not None and p.image.image.shape[0] > 8
                                   for p in window.capture_tab.panels))
            wait_until(lambda: "loading" not in window.capture_tab.live_status.text(), timeout_s=30)
        if finetune and hasattr(window.finetune_tab, "start"):
            tab = window.finetune_tab
            window.tabs.setCurrentWidget(tab)
            wait_until(lambda: tab.sessions.count() > 0)
            # train on the first session, hold the others out (before/after on sessions never trained on)
            tab.sessions.item(0).setCheckState(QtCore.Qt.CheckState.Checked)
            for i in range(1, tab.held_out.count()):
                tab.held_out.item(i).setCheckState(QtCore.Qt.CheckState.Checked)
            tab.epochs.setValue(4)
            tab.start()
            wait_until(lambda: tab.progress.finished, timeout_s=300)
            window.library_tab.refresh_versions()
        paths = []
        for i, name in enumerate(TAB_NAMES):
            window.tabs.setCurrentIndex(i)
            settle(600)
            path = out_dir / f"{name.lower().replace('-', '')}{'_dark' if dark else ''}.png"
            grab_window(window).save(str(path))
            paths.append(path)
        window.close()
        settle(300)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--session", type=Path, default=None, help="session folder or analysis.npz")
    parser.add_argument("--dark", action="store_true", help="force the dark colour scheme")
    parser.add_argument("--finetune", action="store_true", help="run a short tiny fine-tune first (synthetic data)")
    args = parser.parse_args(argv)
    for path in take_screenshots(args.out_dir, args.session, dark=args.dark, finetune=args.finetune):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
