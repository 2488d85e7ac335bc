"""The main window: Capture / Review / Fine-tune / Library tabs, menus, shortcuts, remembered layout."""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from mvcapture.gui import processing
from mvcapture.gui.review import ReviewTab
from mvcapture.gui.source import ANALYSIS_FILE, ReviewSource, load_review_source
from mvcapture.gui.theme import apply_theme, restyle_plots
from mvcapture.gui.workers import prefer_gui_thread, run_task
from mvcapture.paths import data_dir

log = logging.getLogger(__name__)

TAB_NAMES = ("Capture", "Review", "Fine-tune", "Library")


def layer_available(*modules: str) -> bool:
    """Whether the lower layers a tab needs are installed (they land one by one)."""
    return all(importlib.util.find_spec(m) is not None for m in modules)


def app_settings() -> QtCore.QSettings:
    """The GUI's remembered settings (window layout, last session), kept in the user data dir."""
    return QtCore.QSettings(str(data_dir() / "gui.ini"), QtCore.QSettings.Format.IniFormat)


class MessageBar(QtWidgets.QFrame):
    """A dismissable line at the top of the window for errors and notices (never a modal dialog)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("message_bar")
        self.label = QtWidgets.QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QtWidgets.QToolButton(self)
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(8, 4, 4, 4)
        row.addWidget(self.label, 1)
        row.addWidget(close)
        self.hide()

    def show_message(self, text: str, error: bool = True) -> None:
        color = "rgba(220, 60, 60, 70)" if error else "rgba(60, 140, 220, 60)"
        self.setStyleSheet(f"#message_bar {{ background: {color}; border-radius: 4px; }}")
        self.label.setText(text)
        self.show()


class PendingTab(QtWidgets.QLabel):
    """A tab whose lower layer has not landed yet: says what it will offer."""

    def __init__(self, text: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)


class MainWindow(QtWidgets.QMainWindow):
    """The app window. `open_path()` loads a session or analysis in a worker and shows it in Review."""

    source_opened = QtCore.Signal(object)  # ReviewSource
    export_progress = QtCore.Signal(int, int)  # frames done, frames in all (MP4), from the export worker

    def __init__(self, settings: QtCore.QSettings | None = None, finetune_config: str | None = None) -> None:
        super().__init__()
        self.setObjectName("mvcapture_main")
        self.setWindowTitle("mvcapture")
        self.settings = settings if settings is not None else app_settings()
        app = QtWidgets.QApplication.instance()
        prefer_gui_thread()
        self.theme = apply_theme(app)

        self.tabs = QtWidgets.QTabWidget(self)
        self.tabs.setObjectName("tabs")
        self.tabs.setDocumentMode(True)
        if layer_available("mvcapture.capture", "mvcapture.session"):
            from mvcapture.gui.capture import CaptureTab

            self.capture_tab = CaptureTab()
            self.capture_tab.message.connect(self.show_message)
            self.capture_tab.recorded.connect(self._on_recorded)
            self.capture_tab.imported.connect(self._on_recorded)
        else:
            self.capture_tab = PendingTab("Capture: pick two cameras, live previews, record.\n"
                                          "(needs mvcapture.capture and mvcapture.session, not installed)")
        self.review_tab = ReviewTab()
        if layer_available("mvcapture.train", "mvcapture.session"):
            from mvcapture.gui.finetune import FinetuneTab

            self.finetune_tab = FinetuneTab(base_config=finetune_config)
            self.finetune_tab.message.connect(self.show_message)
        else:
            self.finetune_tab = PendingTab("Fine-tune: choose sessions, loss variant and epochs; start, cancel, "
                                           "live curves.\n(needs mvcapture.train and mvcapture.session, not installed)")
        if layer_available("mvcapture.session"):
            from mvcapture.gui.library import LibraryTab

            self.library_tab = LibraryTab()
            self.library_tab.message.connect(self.show_message)
            self.library_tab.open_requested.connect(self.open_path)
        else:
            self.library_tab = PendingTab("Library: sessions and model versions.\n"
                                          "(needs mvcapture.session, not installed)")
        if hasattr(self.finetune_tab, "versions_changed") and hasattr(self.library_tab, "refresh_versions"):
            self.finetune_tab.versions_changed.connect(self.library_tab.refresh_versions)
        for tab, name in zip((self.capture_tab, self.review_tab, self.finetune_tab, self.library_tab), TAB_NAMES):
            self.tabs.addTab(tab, name)
        self.tabs.setCurrentWidget(self.review_tab)
        self.message_bar = MessageBar()
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.review_tab.set_theme(self.theme)
        if hasattr(self.capture_tab, "set_theme"):
            self.capture_tab.set_theme(self.theme)
        self.review_tab.offset_changed.connect(self._on_offset_changed)
        self.review_tab.offset_save_requested.connect(self.save_manual_offset)

        self.processor = processing.SessionProcessor(self)
        self.processor.progress.connect(self._on_process_progress)
        self.processor.finished.connect(self._on_processed)
        self.process_bar = QtWidgets.QProgressBar()
        self.process_bar.setMaximumWidth(220)
        self.process_bar.setRange(0, 100)
        self.process_cancel = QtWidgets.QToolButton()
        self.process_cancel.setText("Cancel")
        self.process_cancel.clicked.connect(self.processor.cancel)
        self.process_label = QtWidgets.QLabel()
        for w in (self.process_label, self.process_bar, self.process_cancel):
            self.statusBar().addPermanentWidget(w)
            w.hide()
        self.export_bar = QtWidgets.QProgressBar()
        self.export_bar.setMaximumWidth(220)
        self.export_bar.setRange(0, 1000)
        self.export_cancel = QtWidgets.QToolButton()
        self.export_cancel.setText("Cancel export")
        self.export_cancel.clicked.connect(self.cancel_export)
        self._export_cancel = threading.Event()
        self.export_progress.connect(self._on_export_progress)
        for w in (self.export_bar, self.export_cancel):
            self.statusBar().addPermanentWidget(w)
            w.hide()
        if hasattr(self.library_tab, "process_requested"):
            self.library_tab.process_requested.connect(self.process_session)

        self._make_actions()
        self.statusBar().showMessage("Ready")
        self._loading: Path | None = None
        app.styleHints().colorSchemeChanged.connect(self.set_color_scheme)
        self.restore_layout()

    # -- actions and shortcuts ---------------------------------------------------------------------
    def _action(self, text: str, shortcut: QtGui.QKeySequence | str | None, slot, menu: QtWidgets.QMenu,
                tip: str = "") -> QtGui.QAction:
        action = QtGui.QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QtGui.QKeySequence(shortcut))
        action.setStatusTip(tip or text)
        action.triggered.connect(slot)
        menu.addAction(action)
        self.addAction(action)  # shortcuts work even with the menu bar hidden
        return action

    def _make_actions(self) -> None:
        SK = QtGui.QKeySequence.StandardKey
        K = QtCore.Qt.Key
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = self._action("&Open session…", SK.Open, self.open_dialog, file_menu,
                                        "open a session folder or an analysis.npz")
        export_menu = file_menu.addMenu("&Export")
        self.export_actions = {}
        for formats, label, shortcut in ((("csv", "json", "trc", "bvh"), "&Tables and motion (CSV, JSON, TRC, BVH)",
                                          "Ctrl+E"), (("mp4",), "&Video with overlay (MP4)", "Ctrl+Shift+E")):
            self.export_actions[formats] = self._action(
                label, shortcut, lambda _=False, f=formats: self.export_current(f), export_menu,
                "export the open session into its exports/ folder")
        self.intrinsics_action = self._action("Set lens &intrinsics…", None, self.set_intrinsics_dialog, file_menu,
                                              "give a view of the open session its camera's lens intrinsics "
                                              "(a CAM.json from mvcapture calibrate-intrinsics)")
        file_menu.addSeparator()
        self.quit_action = self._action("&Quit", "Ctrl+Q", self.close, file_menu)
        play_menu = self.menuBar().addMenu("&Playback")
        self.play_action = self._action("Play / pause", QtGui.QKeySequence(K.Key_Space),
                                        lambda: self._with_state(lambda s: s.toggle_play()), play_menu)
        self.step_back_action = self._action("Previous frame", QtGui.QKeySequence(K.Key_Left),
                                             lambda: self._with_state(lambda s: s.step(-1)), play_menu)
        self.step_forward_action = self._action("Next frame", QtGui.QKeySequence(K.Key_Right),
                                                lambda: self._with_state(lambda s: s.step(1)), play_menu)
        self.first_action = self._action("First frame", QtGui.QKeySequence(K.Key_Home),
                                         lambda: self._with_state(lambda s: s.first()), play_menu)
        self.last_action = self._action("Last frame", QtGui.QKeySequence(K.Key_End),
                                        lambda: self._with_state(lambda s: s.last()), play_menu)
        capture_menu = self.menuBar().addMenu("&Capture")
        self.record_action = self._action("&Record / stop", QtGui.QKeySequence(K.Key_R), self._on_record,
                                          capture_menu, "start or stop recording (Capture tab)")
        self.record_action.setEnabled(hasattr(self.capture_tab, "toggle_record"))
        view_menu = self.menuBar().addMenu("&View")
        self.fused_action = self._action("Two-view 3D skeleton", QtGui.QKeySequence(K.Key_F),
                                         lambda: self._with_state(lambda s: s.toggle_fused()), view_menu,
                                         "show or hide the skeleton triangulated from both cameras (Review)")
        for i, name in enumerate(TAB_NAMES):
            self._action(name, f"Ctrl+{i + 1}", lambda i=i: self.tabs.setCurrentIndex(i), view_menu)

    def _with_state(self, fn) -> None:
        """Playback keys act on the Review tab's recording (and only while it is shown)."""
        state = self.review_tab.state
        if state is not None and self.tabs.currentWidget() is self.review_tab:
            fn(state)

    def _on_record(self) -> None:
        """R: start / stop recording, while the Capture tab is shown."""
        if self.tabs.currentWidget() is self.capture_tab and hasattr(self.capture_tab, "toggle_record"):
            self.capture_tab.toggle_record()

    def show_message(self, text: str, error: bool = True) -> None:
        if error:
            self.message_bar.show_message(text, error=True)
        else:
            self.statusBar().showMessage(text, 8000)

    def _on_recorded(self, session_path: Path) -> None:
        """A new session (recorded or imported): process it, then open it in Review."""
        if hasattr(self.library_tab, "refresh"):
            self.library_tab.refresh()
        if (Path(session_path) / ANALYSIS_FILE).is_file():
            self.open_path(session_path)
            return
        self.message_bar.show_message(f"Session {Path(session_path).name} saved; processing it for the review…",
                                      error=False)
        self.process_session(session_path)

    # -- processing (`mvcapture process` in a child process) ------------------------------------------
    def process_session(self, session_path: Path) -> None:
        if self.processor.running:
            self.message_bar.show_message("another session is being processed: wait for it or cancel it")
            return
        self.process_label.setText(f"processing {Path(session_path).name}")
        self.process_bar.setValue(0)
        for w in (self.process_label, self.process_bar, self.process_cancel):
            w.show()
        self.processor.start(session_path, processing.process_command(session_path))

    def _on_process_progress(self, percent: int, label: str) -> None:
        self.process_bar.setValue(percent)
        if label:
            self.process_label.setText(f"processing: {label}")

    def _on_processed(self, session_path: Path, ok: bool, message: str) -> None:
        for w in (self.process_label, self.process_bar, self.process_cancel):
            w.hide()
        if hasattr(self.library_tab, "refresh"):
            self.library_tab.refresh()
        if ok:
            self.message_bar.hide()
            self.open_path(session_path)
        else:
            name = Path(session_path).name
            self.message_bar.show_message(f"Session {name} was not processed: {message}. "
                                          f"(From a terminal: mvcapture process {name})")

    def _on_offset_changed(self, view: int, offset_s: float) -> None:
        self.statusBar().showMessage(
            f"sync offset of view {view} set to {offset_s:+.3f} s (video preview only; re-process to update 3D)")

    def save_manual_offset(self, view: int, offset_s: float) -> None:
        """Store the offset as the open session's manual alignment of `view` (in a worker)."""
        review = self.review_tab.view
        if review is None or review.source.folder is None:
            return
        folder = review.source.folder

        def save() -> None:
            from mvcapture.session import Session
            from mvcapture.sync import manual_offset

            Session.open(folder, repair=False).save_sync(
                manual_offset(offset_s, note="set in the review").to_dict(), view)

        run_task(save, on_done=lambda _: self.show_message(
            f"offset of view {view} kept ({offset_s:+.3f} s, manual); re-process the session to update the 3D",
            error=False), on_error=self.show_message, owner=self)

    def set_intrinsics_dialog(self) -> None:
        """File → Set lens intrinsics…: pick a view of the open session, then its CAM.json."""
        review = self.review_tab.view
        if review is None or review.source.folder is None:
            self.message_bar.show_message("open a session first (File → Open session…) to set its lens intrinsics")
            return
        views = [f"view {v}" for v in range(review.source.analysis.num_views)]
        choice, ok = QtWidgets.QInputDialog.getItem(self, "Set lens intrinsics", "Camera of", views, 0, False)
        if not ok:
            return
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, f"Lens intrinsics of {choice}", str(self.settings.value("last_intrinsics", str(data_dir()))),
            "Lens intrinsics (*.json)")
        if path:
            self.settings.setValue("last_intrinsics", str(Path(path).parent))
            self.set_view_intrinsics(views.index(choice), Path(path))

    def set_view_intrinsics(self, view: int, path: Path) -> None:
        """Store `path` (a CAM.json) as the lens intrinsics of `view` of the open session (in a worker); the
        session layer validates it, errors show in the message bar."""
        review = self.review_tab.view
        if review is None or review.source.folder is None:
            return
        folder = review.source.folder

        def store() -> dict:
            from mvcapture.session import Session

            session = Session.open(folder, repair=False)
            session.set_intrinsics(view, path)
            return session.intrinsics(view)

        run_task(store, on_done=lambda lens: self.show_message(
            f"view {view}: lens intrinsics from {Path(path).name} set (fx {lens['fx']:.0f} px); re-process the "
            f"session to use them", error=False), on_error=self.show_message, owner=self)

    # -- opening -----------------------------------------------------------------------------------
    def export_current(self, formats: tuple[str, ...]) -> None:
        """Export the session open in Review (in a worker); the files go to SESSION/exports/."""
        review = self.review_tab.view
        folder = None if review is None else review.source.folder
        if folder is None:
            self.message_bar.show_message("open a processed session first (File → Open session…) to export it")
            return
        from mvcapture.export import export_session

        self.statusBar().showMessage(f"exporting {Path(folder).name} ({', '.join(formats)}) …")
        self._export_cancel.clear()
        self.export_bar.setValue(0)
        for w in (self.export_bar, self.export_cancel):
            w.setVisible("mp4" in formats)  # the tables take a moment; the video takes minutes
        self.export_cancel.setEnabled(True)
        run_task(export_session, folder, formats, progress=self.export_progress.emit, cancel=self._export_cancel,
                 on_done=self._exported, on_error=self._export_failed, owner=self)

    def cancel_export(self) -> None:
        """Stop a running MP4 export (the tables already written stay)."""
        self._export_cancel.set()
        self.export_cancel.setEnabled(False)
        self.statusBar().showMessage("cancelling the export …")

    def _on_export_progress(self, done: int, total: int) -> None:
        self.export_bar.setValue(round(1000 * done / max(total, 1)))
        self.export_bar.setFormat(f"MP4 {done}/{total}")

    def _export_failed(self, message: str) -> None:
        for w in (self.export_bar, self.export_cancel):
            w.hide()
        if self._export_cancel.is_set():
            self.statusBar().showMessage("export cancelled", 15000)
        else:
            self.message_bar.show_message(f"export failed: {message}")

    def _exported(self, files) -> None:
        for w in (self.export_bar, self.export_cancel):
            w.hide()
        self.exported_files = list(files)
        where = Path(self.exported_files[0]).parent if self.exported_files else "?"
        self.message_bar.show_message(f"exported {len(self.exported_files)} file(s) to {where}", error=False)
        self.statusBar().showMessage(f"exported {len(self.exported_files)} file(s) to {where}", 15000)

    def open_dialog(self) -> None:
        start = self.settings.value("last_session", str(data_dir()))
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open a processed session", str(start), f"Session analysis ({ANALYSIS_FILE} *.npz)")
        if path:
            p = Path(path)
            self.open_path(p.parent if p.name == ANALYSIS_FILE else p)

    def open_path(self, path: Path | str, videos: list[Path] | None = None) -> None:
        """Load in a worker; the Review tab shows it when ready, errors show in the message bar."""
        path = Path(path)
        self._loading = path
        self.statusBar().showMessage(f"opening {path} …")
        run_task(load_review_source, path, videos, on_done=self.show_source,
                 on_error=lambda msg: self._open_failed(path, msg), owner=self)

    def _open_failed(self, path: Path, message: str) -> None:
        self._loading = None
        self.statusBar().showMessage(f"could not open {path}")
        self.message_bar.show_message(message)

    def show_source(self, source: ReviewSource) -> None:
        path = self._loading
        self._loading = None
        self.review_tab.show_source(source)
        view = self.review_tab.view
        splitter = self.settings.value("review/splitter")
        if splitter is not None and view is not None:
            view.splitter.restoreState(splitter)
        if view is not None:
            view.state.set_show_fused(str(self.settings.value("review/show_fused", "true")).lower() == "true")
            view.state.events.show_fused.connect(lambda show: self.settings.setValue("review/show_fused", show))
        self.tabs.setCurrentWidget(self.review_tab)
        self.setWindowTitle(f"{source.name} — mvcapture")
        self.message_bar.hide()
        self.statusBar().showMessage(f"opened {source.name}: {source.analysis.num_frames} frames, "
                                     f"{source.analysis.num_views} views", 5000)
        if path is not None:
            self.settings.setValue("last_session", str(path))
        self.source_opened.emit(source)

    def restore_last_session(self) -> bool:
        """Reopen the session of the last run, when it still exists."""
        last = self.settings.value("last_session")
        if last and Path(str(last)).exists():
            self.open_path(Path(str(last)))
            return True
        return False

    # -- theme and layout --------------------------------------------------------------------------
    def set_color_scheme(self, scheme: QtCore.Qt.ColorScheme | None = None) -> None:
        """Restyle for `scheme` (called when the system switches between light and dark)."""
        self.theme = apply_theme(QtWidgets.QApplication.instance(), scheme)
        self.review_tab.set_theme(self.theme)
        if hasattr(self.capture_tab, "set_theme"):
            self.capture_tab.set_theme(self.theme)
        restyle_plots(self, self.theme)

    def restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        tab = self.settings.value("window/tab")
        if tab is not None and 0 <= int(tab) < self.tabs.count():
            self.tabs.setCurrentIndex(int(tab))

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/tab", self.tabs.currentIndex())
        view = self.review_tab.view
        if view is not None:  # the Review tab's split between videos + 3D and the plots
            self.settings.setValue("review/splitter", view.splitter.saveState())
        self.settings.sync()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.save_layout()
        self.review_tab.close_view()
        for tab in (self.capture_tab, self.finetune_tab):
            if hasattr(tab, "shutdown"):
                tab.shutdown()
        self.processor.cancel()
        super().closeEvent(event)
