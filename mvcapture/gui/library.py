"""The Library tab: sessions from the catalog (thumbnail, search, tags) and the lifter's model versions.

Reads through `mvcapture.session` (Session, Catalog) and `mvcapture.lifter.store`; thumbnails are decoded in
a worker. The tab sends intent (open a session, activate a version) and never touches files itself.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from mvcapture.gui.workers import run_task

log = logging.getLogger(__name__)

THUMB_WIDTH = 112


def session_thumbnail(media: Path, width: int = THUMB_WIDTH) -> np.ndarray | None:
    """First frame of a video, shrunk to `width` px (RGB uint8); None when unreadable."""
    from mvcapture.errors import MvcaptureError
    from mvcapture.io.frames import VideoFrames

    try:
        with VideoFrames(media, max_width=width) as video:
            return video.read(0)
    except MvcaptureError:
        return None


def rgb_to_pixmap(rgb: np.ndarray) -> QtGui.QPixmap:
    h, w, _ = rgb.shape
    image = QtGui.QImage(np.ascontiguousarray(rgb).data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888)
    return QtGui.QPixmap.fromImage(image.copy())


def _duration(seconds) -> str:
    if seconds is None:
        return "–"
    seconds = float(seconds)
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


class SessionTable(QtWidgets.QTableWidget):
    """Sessions as rows: thumbnail + name, athlete, date, views, duration, state, tags."""

    COLUMNS = ("", "session", "athlete", "created", "views", "duration", "state", "tags")

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(0, len(self.COLUMNS), parent)
        self.setHorizontalHeaderLabels(self.COLUMNS)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setIconSize(QtCore.QSize(THUMB_WIDTH, THUMB_WIDTH * 3 // 4))
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(THUMB_WIDTH * 3 // 4 + 8)
        self.horizontalHeader().setStretchLastSection(True)
        self.setAlternatingRowColors(True)
        self.rows: list[dict] = []

    def set_rows(self, rows: list[dict], thumbnails: dict[str, QtGui.QPixmap]) -> None:
        self.rows = rows
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            thumb = QtWidgets.QTableWidgetItem()
            if row["id"] in thumbnails:
                thumb.setIcon(QtGui.QIcon(thumbnails[row["id"]]))
            self.setItem(r, 0, thumb)
            values = (row["name"], row.get("athlete") or "", (row.get("created") or "")[:16].replace("T", " "),
                      str(row.get("n_views", "")), _duration(row.get("duration_s")), row.get("state") or "",
                      ", ".join(row.get("tags", [])))
            for c, value in enumerate(values, start=1):
                item = QtWidgets.QTableWidgetItem(value)
                item.setToolTip(row["path"])
                self.setItem(r, c, item)
        self.resizeColumnsToContents()
        self.setColumnWidth(0, THUMB_WIDTH + 10)

    def set_thumbnail(self, session_id: str, pixmap: QtGui.QPixmap) -> None:
        for r, row in enumerate(self.rows):
            if row["id"] == session_id and self.item(r, 0) is not None:
                self.item(r, 0).setIcon(QtGui.QIcon(pixmap))

    def selected_row(self) -> dict | None:
        rows = self.selectionModel().selectedRows()
        return self.rows[rows[0].row()] if rows else None


def format_card(card: dict) -> str:
    """A model card as readable HTML (the fields a coach cares about first, then the rest)."""
    def text(value) -> str:
        return "–" if value is None or value == "" else html.escape(str(value))

    metrics = card.get("metrics") or {}
    losses = card.get("losses") or {}
    lines = [f"<h3>{text(card.get('name', 'lifter'))} <small>({text(card.get('version', '?'))})</small></h3>",
             f"<b>parent:</b> {text(card.get('parent_version'))} &nbsp; <b>date:</b> {text(card.get('date'))}",
             f"<br><b>losses:</b> {text(losses.get('variant'))} &nbsp; <b>epochs:</b> {text(card.get('epochs'))}"]
    if metrics:
        lines.append("<br><b>metrics</b> (" + text(metrics.get("eval_set")) + "):<ul>")
        for key, value in metrics.items():
            if key != "eval_set" and isinstance(value, (int, float)):
                lines.append(f"<li>{html.escape(key)}: {value:.4g}</li>")
        lines.append("</ul>")
    held = card.get("held_out")
    if isinstance(held, dict) and held.get("before") and held.get("after"):
        lines.append(f"<b>held-out sessions</b> ({len(held.get('clips', []))}, never trained on), before → after:<ul>")
        for key, before in held["before"].items():
            after = held["after"].get(key)
            if isinstance(before, (int, float)) and isinstance(after, (int, float)):
                lines.append(f"<li>{html.escape(key)}: {before:.4g} → {after:.4g}</li>")
        lines.append("</ul>")
    data = card.get("training_data")
    if data:
        lines.append(f"<b>training data:</b> {len(data) if isinstance(data, list) else text(data)} source(s)")
    lines.append("<pre style=\"font-size: small\">" + html.escape(json.dumps(card, indent=1, default=str)[:4000])
                 + "</pre>")
    return "\n".join(lines)


class LibraryTab(QtWidgets.QWidget):
    """Sessions (search, tag filter, tags, open) and model versions (cards, activate).

    Signals: `open_requested(path)` to open a session in Review; `message(text, error)` for the window.
    """

    open_requested = QtCore.Signal(object)
    process_requested = QtCore.Signal(object)
    message = QtCore.Signal(str, bool)
    versions_changed = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._thumbnails: dict[str, QtGui.QPixmap] = {}
        self._thumbs_pending: set[str] = set()

        self.search = QtWidgets.QLineEdit()
        self.search.setPlaceholderText("search name, athlete, tag…")
        self.search.setClearButtonEnabled(True)
        self.tag_filter = QtWidgets.QComboBox()
        self.tag_filter.setMinimumWidth(120)
        refresh = QtWidgets.QPushButton("Refresh")
        self.table = SessionTable()
        self.tags_edit = QtWidgets.QLineEdit()
        self.tags_edit.setPlaceholderText("tags of the selected session, comma separated (Enter saves)")
        self.open_button = QtWidgets.QPushButton("Open in Review")
        self.process_button = QtWidgets.QPushButton("Process")
        self.process_button.setToolTip("sync, detect, lift and align this session (again)")
        self.status = QtWidgets.QLabel()

        self.active_label = QtWidgets.QLabel()
        self.versions = QtWidgets.QListWidget()
        self.card = QtWidgets.QTextBrowser()
        self.activate_button = QtWidgets.QPushButton("Make active")
        self.activate_button.setToolTip("lift new sessions with this version (instant; nothing is overwritten)")

        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(QtWidgets.QLabel("tag:"))
        top.addWidget(self.tag_filter)
        top.addWidget(refresh)
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(QtWidgets.QLabel("tags:"))
        bottom.addWidget(self.tags_edit, 1)
        bottom.addWidget(self.process_button)
        bottom.addWidget(self.open_button)
        sessions = QtWidgets.QGroupBox("Sessions")
        box = QtWidgets.QVBoxLayout(sessions)
        box.addLayout(top)
        box.addWidget(self.table, 1)
        box.addLayout(bottom)
        box.addWidget(self.status)
        models = QtWidgets.QGroupBox("Lifter versions")
        mbox = QtWidgets.QVBoxLayout(models)
        mbox.addWidget(self.active_label)
        mbox.addWidget(self.versions, 1)
        mbox.addWidget(self.card, 2)
        mbox.addWidget(self.activate_button)
        splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        splitter.addWidget(sessions)
        splitter.addWidget(models)
        splitter.setSizes([1600, 1000])
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

        self._search_timer = QtCore.QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)
        self._search_timer.timeout.connect(self.refresh_sessions)
        self.search.textChanged.connect(lambda _: self._search_timer.start())
        self.tag_filter.currentIndexChanged.connect(lambda _: self.refresh_sessions())
        refresh.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.itemDoubleClicked.connect(lambda _: self._open_selected())
        self.open_button.clicked.connect(self._open_selected)
        self.process_button.clicked.connect(self._process_selected)
        self.tags_edit.returnPressed.connect(self._save_tags)
        self.versions.currentRowChanged.connect(self._show_card)
        self.activate_button.clicked.connect(self._activate_selected)
        self._version_list: list = []
        self.activate_button.setEnabled(False)
        self._on_selection()

    # -- sessions ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.refresh_sessions()
        self.refresh_versions()

    def refresh_sessions(self) -> None:
        try:
            from mvcapture.session import Catalog
        except ImportError:
            self.status.setText("the session catalog is not installed")
            return
        catalog = Catalog()
        text = self.search.text().strip()
        rows = catalog.search(text) if text else catalog.list()
        tag = self.tag_filter.currentData()
        if tag:
            rows = [r for r in rows if tag in r.get("tags", [])]
        self._update_tag_filter(catalog.list())
        self.table.set_rows(rows, self._thumbnails)
        self.status.setText(f"{len(rows)} session(s)" + (f" matching '{text}'" if text else ""))
        for row in rows:
            self._request_thumbnail(row)
        self._on_selection()

    def _update_tag_filter(self, all_rows: list[dict]) -> None:
        tags = sorted({t for r in all_rows for t in r.get("tags", [])})
        current = self.tag_filter.currentData()
        self.tag_filter.blockSignals(True)
        self.tag_filter.clear()
        self.tag_filter.addItem("all", None)
        for t in tags:
            self.tag_filter.addItem(t, t)
        index = self.tag_filter.findData(current)
        self.tag_filter.setCurrentIndex(max(index, 0))
        self.tag_filter.blockSignals(False)

    def _request_thumbnail(self, row: dict) -> None:
        session_id = row["id"]
        if session_id in self._thumbnails or session_id in self._thumbs_pending:
            return
        self._thumbs_pending.add(session_id)

        def load() -> np.ndarray | None:
            from mvcapture.session import Session

            session = Session.open(row["path"], repair=False)
            return session_thumbnail(session.views[0].media) if session.views else None

        def done(rgb) -> None:
            self._thumbs_pending.discard(session_id)
            if rgb is not None:
                self._thumbnails[session_id] = rgb_to_pixmap(rgb)
                self.table.set_thumbnail(session_id, self._thumbnails[session_id])

        run_task(load, on_done=done, on_error=lambda msg: self._thumbs_pending.discard(session_id), owner=self)

    def _on_selection(self) -> None:
        row = self.table.selected_row()
        self.open_button.setEnabled(row is not None)
        self.process_button.setEnabled(row is not None)
        self.tags_edit.setEnabled(row is not None)
        self.tags_edit.setText(", ".join(row.get("tags", [])) if row else "")

    def _open_selected(self) -> None:
        row = self.table.selected_row()
        if row is not None:
            self.open_requested.emit(Path(row["path"]))

    def _process_selected(self) -> None:
        row = self.table.selected_row()
        if row is not None:
            self.process_requested.emit(Path(row["path"]))

    def _save_tags(self) -> None:
        row = self.table.selected_row()
        if row is None:
            return
        wanted = {t.strip() for t in self.tags_edit.text().split(",") if t.strip()}

        def save() -> None:
            from mvcapture.session import Session

            session = Session.open(row["path"], repair=False)
            old = set(session.tags)
            if old - wanted:
                session.untag(*(old - wanted))
            if wanted - old:
                session.tag(*(wanted - old))

        run_task(save, on_done=lambda _: self.refresh_sessions(),
                 on_error=lambda msg: self.message.emit(msg, True), owner=self)

    # -- model versions ----------------------------------------------------------------------------
    def refresh_versions(self) -> None:
        try:
            from mvcapture.lifter import store
        except ImportError:
            self.card.setText("the model store is not installed")
            return
        self._version_list = store.list_versions()
        active = store.active_version()
        self.active_label.setText(f"active lifter: <b>{active}</b>"
                                  + ("" if any(v.version == active for v in self._version_list)
                                     else " (its weights are not installed)"))
        current = self.versions.currentRow()
        self.versions.clear()
        for v in self._version_list:
            label = f"{v.version} — {v.card.get('name', '')}" + ("   ✔ active" if v.version == active else "")
            item = QtWidgets.QListWidgetItem(label)
            if v.version == active:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            self.versions.addItem(item)
        if not self._version_list:
            self.card.setText("No lifter versions yet: the shipped default appears here once installed, "
                              "and every fine-tune adds one.")
        self.versions.setCurrentRow(min(max(current, 0), len(self._version_list) - 1))
        self.activate_button.setEnabled(bool(self._version_list))

    def _show_card(self, row: int) -> None:
        if 0 <= row < len(self._version_list):
            self.card.setHtml(format_card({"version": self._version_list[row].version,
                                           **self._version_list[row].card}))

    def _activate_selected(self) -> None:
        row = self.versions.currentRow()
        if not 0 <= row < len(self._version_list):
            return
        version = self._version_list[row].version
        from mvcapture.lifter import store

        def done(_) -> None:
            self.refresh_versions()
            self.versions_changed.emit()
            self.message.emit(f"lifter {version} is now active", False)

        run_task(store.activate, version, on_done=done, on_error=lambda msg: self.message.emit(msg, True),
                 owner=self)

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        self.refresh()
        super().showEvent(event)
