"""The Fine-tune tab: choose processed sessions, loss variant, λ and epochs; start, cancel, resume a job;
live loss and validation curves with ETA; activate the new lifter version or roll back.

Training runs in its own process (`mvcapture.train.jobs`); a follower thread reads its JSON-line events
into a queue that a GUI timer drains, so nothing here waits on the job.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from mvcapture.gui.training import TrainingProgress, format_eta
from mvcapture.gui.workers import BACKGROUND_NICE, run_task

log = logging.getLogger(__name__)

LOSS_COLORS = [(120, 170, 255), (255, 140, 0), (80, 200, 120), (230, 70, 200), (200, 200, 80), (150, 150, 150)]
# Variants offered for sessions (they have no 3D ground truth, so no `l3d`/`l3d_con`; `l3d_stereo` makes its
# own from the two views), and what they mean.
SESSION_VARIANTS = {
    "l2d_con": "2D reprojection + sequence consistency (recommended)",
    "l2d_con_frame": "2D reprojection + per-frame consistency",
    "l2d": "2D reprojection only (baseline)",
    "l3d_stereo": "the two views' own 3D as pseudo-labels + consistency (sessions with a confident two-view geometry)",
}


def lower_process_priority(process) -> None:
    """Run the training process below the GUI's priority, so it cannot starve the window of CPU
    (POSIX; its threads start after this, during the torch import, and inherit it)."""
    if process is None or not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, process.pid, BACKGROUND_NICE)
    except OSError:
        log.debug("could not lower the priority of training process %s", process.pid, exc_info=True)


class JobFollower:
    """Reads a job's events in a daemon thread into a queue (`drain()` from the GUI thread)."""

    def __init__(self, job) -> None:
        self.job = job
        self.events: queue.Queue[dict] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="job-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self.job.events(poll_s=0.2):
                self.events.put(event)
        except Exception as exc:  # a broken stream must reach the user as a failed job
            log.exception("following job %s failed", self.job.job_dir)
            self.events.put({"event": "failed", "error": f"lost the job's progress stream: {exc}"})

    def drain(self) -> list[dict]:
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out


class FinetuneTab(QtWidgets.QWidget):
    """Fine-tuning from the GUI.

    Args:
        base_config: start from a fresh network of this lifter config instead of the active version
            (tests and pretraining experiments); None = fine-tune the active lifter.

    Signals: `message(text, error)`, `versions_changed()` after a version was activated.
    """

    message = QtCore.Signal(str, bool)
    versions_changed = QtCore.Signal()
    progress_changed = QtCore.Signal(object)  # TrainingProgress

    def __init__(self, base_config: str | None = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.base_config = base_config
        self.job = None
        self.follower: JobFollower | None = None
        self.progress = TrainingProgress()
        self.previous_active: str | None = None
        self.resumable: Path | None = None  # an unfinished job found on disk (no job started here yet)
        self._session_rows: list[dict] = []

        self.sessions = QtWidgets.QListWidget()
        self.sessions.setToolTip("processed sessions to learn from (tick at least one)")
        self.held_out = QtWidgets.QListWidget()
        self.held_out.setToolTip("processed sessions never trained on: their consistency before and after "
                                 "fine-tuning tells whether the new version generalises beyond its training")
        self.variant = QtWidgets.QComboBox()
        self.variant.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.variant.setMinimumContentsLength(18)
        for name, text in SESSION_VARIANTS.items():
            self.variant.addItem(f"{name} — {text}", name)
        self.lambda_con = QtWidgets.QDoubleSpinBox()
        self.lambda_con.setRange(0.0, 10.0)
        self.lambda_con.setSingleStep(0.05)
        self.lambda_con.setDecimals(3)
        self.lambda_con.setToolTip("weight of the consistency loss λ_con")
        self.epochs = QtWidgets.QSpinBox()
        self.epochs.setRange(0, 500)
        self.epochs.setSpecialValueText("auto")  # 0
        self.epochs.setValue(0)
        self.epochs.setToolTip("auto: the paper's 30 epochs, more on a short recording so that training runs "
                               "at least 100 steps")
        self.time_limit = QtWidgets.QSpinBox()
        self.time_limit.setRange(0, 24 * 60)
        self.time_limit.setSingleStep(5)
        self.time_limit.setSuffix(" min")
        self.time_limit.setSpecialValueText("none")  # 0
        self.time_limit.setValue(0)
        self.time_limit.setToolTip("stop after this many minutes of training and keep the best epoch so far "
                                   "(e.g. over a lunch break on a laptop); none: train all epochs")
        self.activate_when_done = QtWidgets.QCheckBox("make the new version active when done")
        self.start_button = QtWidgets.QPushButton("Start")
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.resume_button = QtWidgets.QPushButton("Resume")
        self.bar = QtWidgets.QProgressBar()
        self.bar.setRange(0, 1000)
        self.status = QtWidgets.QLabel("idle")
        self.loss_plot = pg.PlotWidget(title="training losses (per step)")
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.addLegend(offset=(-10, 5), labelTextSize="8pt")
        self.loss_plot.setMenuEnabled(False)
        self.val_plot = pg.PlotWidget()
        self.val_plot.setLabel("bottom", "epoch")
        self.val_plot.addLegend(offset=(-10, 5), labelTextSize="8pt")
        self.val_plot.setMenuEnabled(False)
        self.compare_label = QtWidgets.QLabel()
        self.compare = QtWidgets.QTableWidget(0, 3)
        self.compare.setHorizontalHeaderLabels(["metric", "before", "after (best epoch)"])
        self.compare.verticalHeader().setVisible(False)
        self.compare.horizontalHeader().setStretchLastSection(True)
        self.compare.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.log_view = QtWidgets.QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(500)
        self.activate_button = QtWidgets.QPushButton("Activate new version")
        self.rollback_button = QtWidgets.QPushButton("Roll back")
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._val_curves: dict[str, pg.PlotDataItem] = {}
        self._build_layout()
        self._show_validation_set(True)

        self.variant.currentIndexChanged.connect(self._on_variant)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button.clicked.connect(self.resume)
        self.activate_button.clicked.connect(self.activate_result)
        self.rollback_button.clicked.connect(self.roll_back)
        self._poll = QtCore.QTimer(self)
        self._poll.setInterval(200)
        self._poll.timeout.connect(self._drain)
        self._on_variant()
        self._update_buttons()

    def _build_layout(self) -> None:
        form = QtWidgets.QFormLayout()
        form.addRow("loss variant", self.variant)
        form.addRow("λ consistency", self.lambda_con)
        # epochs and the time limit share a row: the tab's minimum height sets the main window's
        length = QtWidgets.QHBoxLayout()
        length.setContentsMargins(0, 0, 0, 0)
        length.addWidget(self.epochs, 1)
        length.addWidget(QtWidgets.QLabel("time limit"))
        length.addWidget(self.time_limit, 1)
        form.addRow("epochs", length)
        form.addRow("", self.activate_when_done)
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(b)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(QtWidgets.QLabel("<b>Sessions</b> (processed ones can be used)"))
        left.addWidget(self.sessions, 2)
        left.addWidget(QtWidgets.QLabel("<b>Held out</b> (evaluated before/after, not trained on)"))
        left.addWidget(self.held_out, 1)
        left.addLayout(form)
        left.addLayout(buttons)
        left.addWidget(self.bar)
        left.addWidget(self.status)
        left.addWidget(self.log_view, 1)
        left_box = QtWidgets.QWidget()
        left_box.setLayout(left)
        result_buttons = QtWidgets.QHBoxLayout()
        result_buttons.addWidget(self.activate_button)
        result_buttons.addWidget(self.rollback_button)
        right = QtWidgets.QVBoxLayout()
        right.addWidget(self.loss_plot, 3)
        right.addWidget(self.val_plot, 2)
        right.addWidget(self.compare_label)
        right.addWidget(self.compare, 1)
        right.addLayout(result_buttons)
        right_box = QtWidgets.QWidget()
        right_box.setLayout(right)
        splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        splitter.addWidget(left_box)
        splitter.addWidget(right_box)
        splitter.setSizes([900, 1600])
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

    # -- choices -----------------------------------------------------------------------------------
    def _on_variant(self) -> None:
        from mvcapture.train.variants import DEFAULT_LAMBDA_CON, VARIANTS

        variant = self.variant.currentData()
        self.lambda_con.setValue(DEFAULT_LAMBDA_CON.get(variant, 0.0))
        self.lambda_con.setEnabled(VARIANTS[variant]["con"] is not None)

    def refresh_sessions(self) -> None:
        """List the catalog's sessions; those with an analysis can be ticked (read in a worker)."""
        def load() -> list[dict]:
            from mvcapture.session import Catalog, Session

            rows = []
            for row in Catalog().list():
                session = Session.open(row["path"], repair=False)
                analysis = session.path_for("analysis")
                rows.append({**row, "analysis": str(analysis) if analysis.is_file() else None})
            return rows

        run_task(load, on_done=self._show_sessions, on_error=lambda msg: self.message.emit(msg, True),
                 owner=self)

    def _show_sessions(self, rows: list[dict]) -> None:
        self._session_rows = rows
        for widget in (self.sessions, self.held_out):
            checked = set(_checked(widget))
            widget.clear()
            for row in rows:
                text = f"{row['name']}  ({row.get('athlete') or 'no athlete'}, {row.get('n_views')} views)"
                item = QtWidgets.QListWidgetItem(text if row["analysis"] else text + " — not processed yet")
                item.setData(QtCore.Qt.ItemDataRole.UserRole, row["analysis"])
                if row["analysis"]:
                    item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
                    item.setCheckState(QtCore.Qt.CheckState.Checked if row["analysis"] in checked
                                       else QtCore.Qt.CheckState.Unchecked)
                else:
                    item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsEnabled)
                widget.addItem(item)

    def checked_analyses(self) -> list[str]:
        """Analysis files of the sessions ticked for training."""
        return _checked(self.sessions)

    def held_out_analyses(self) -> list[str]:
        """Analysis files of the sessions ticked as held out."""
        return _checked(self.held_out)

    def job_spec(self, clips: list[str]) -> dict:
        """The job the current choices describe (JobSpec fields)."""
        from mvcapture.train.finetune import auto_epochs

        train = {"variant": self.variant.currentData(), **auto_epochs(int(self.epochs.value()) or None)}
        if self.lambda_con.isEnabled():
            train["lambda_con"] = float(self.lambda_con.value())
        if self.time_limit.value():
            train["time_budget_s"] = 60.0 * self.time_limit.value()
        return {"clips": clips, "train": train, "config": self.base_config,
                "activate": self.activate_when_done.isChecked(), "held_out": self.held_out_analyses(),
                "name": f"{train['variant']} fine-tune on {len(clips)} session(s)"}

    # -- job control -------------------------------------------------------------------------------
    def start(self, clips: list[str] | None = None) -> None:
        """Start a job on the ticked sessions (or on `clips`, analysis/clip files)."""
        clips = clips if clips else self.checked_analyses()
        if not clips:
            self.message.emit("tick at least one processed session to fine-tune on", True)
            return
        both = set(map(str, clips)) & set(self.held_out_analyses())
        if both:
            self.message.emit(f"{len(both)} session(s) are ticked both for training and as held out: a held-out "
                              "session must not be trained on; untick one of the two", True)
            return
        from mvcapture.train.jobs import start_job

        spec = self.job_spec([str(c) for c in clips])
        self._begin(TrainingProgress(status="starting"))
        run_task(start_job, spec, on_done=self._follow, on_error=self._start_failed, owner=self)

    def resume(self) -> None:
        """Continue the cancelled or failed job of this tab, or else the newest unfinished job found on
        disk (cancelled in an earlier run of the app, or stopped by a crash), from its checkpoint."""
        from mvcapture.train.jobs import job_events, resume_job

        if self.job is not None:
            job_dir = self.job.job_dir
            progress = self.progress
        elif self.resumable is not None:
            job_dir = self.resumable
            progress = TrainingProgress()
            for event in job_events(job_dir):  # the curves so far
                progress.feed(event)
            progress.log.append(f"resuming job {job_dir.name} from its last checkpoint")
            self.resumable = None
        else:
            return
        progress.status = "starting"
        self._begin(progress)
        run_task(resume_job, job_dir, on_done=self._follow, on_error=self._start_failed, owner=self)

    def find_resumable(self) -> None:
        """Look for an unfinished fine-tuning job on disk (in a worker); Resume then continues it."""
        if self.job is not None:
            return
        from mvcapture.train.jobs import unfinished_jobs

        def found(jobs: list) -> None:
            if self.job is not None:
                return
            self.resumable = jobs[0] if jobs else None
            self.resume_button.setToolTip(f"continue job {self.resumable.name} from its last checkpoint"
                                          if self.resumable else "continue a cancelled job")
            self._update_buttons()

        run_task(unfinished_jobs, on_done=found, on_error=lambda msg: None, owner=self)

    def cancel(self) -> None:
        """Ask the job to checkpoint and stop (it ends after its current step)."""
        if self.job is not None and not self.progress.finished:
            self.job.cancel()
            self.status.setText("cancelling… (the job writes a checkpoint first)")
            self.cancel_button.setEnabled(False)

    def _begin(self, progress: TrainingProgress) -> None:
        self.progress = progress
        self._update_buttons()
        self._render()

    def _follow(self, job) -> None:
        self.job = job
        lower_process_priority(job.process)
        self.follower = JobFollower(job)
        self._poll.start()
        self._update_buttons()  # cancellable from now on, even before the worker reports its first event
        self.status.setText(f"job {job.job_dir.name} started")

    def _start_failed(self, message: str) -> None:
        self.progress.status = "failed"
        self.progress.error = message
        self.progress.log.append(f"could not start: {message}")
        self._update_buttons()
        self._render()
        self.message.emit(message, True)

    def _drain(self) -> None:
        if self.follower is None:
            return
        events = self.follower.drain()
        if not events:
            return
        for event in events:
            self.progress.feed(event)
        if self.progress.finished:
            self._poll.stop()
            if self.progress.status == "done" and self.progress.result.get("activated"):
                self.versions_changed.emit()
            if self.progress.status == "failed":
                self.message.emit(f"fine-tuning failed: {self.progress.error}", True)
        self._update_buttons()
        self._render()
        self.progress_changed.emit(self.progress)

    # -- results -----------------------------------------------------------------------------------
    def activate_result(self) -> None:
        result = self.progress.result or {}
        version = result.get("version")
        if not version:
            return
        from mvcapture.lifter import store

        self.previous_active = store.active_version()
        run_task(store.activate, version, on_done=lambda _: self._activated(version),
                 on_error=lambda msg: self.message.emit(msg, True), owner=self)

    def roll_back(self) -> None:
        if not self.previous_active:
            return
        from mvcapture.lifter import store

        version = self.previous_active
        run_task(store.activate, version, on_done=lambda _: self._activated(version, rolled_back=True),
                 on_error=lambda msg: self.message.emit(msg, True), owner=self)

    def _activated(self, version: str, rolled_back: bool = False) -> None:
        if rolled_back:
            self.previous_active = None
        self.message.emit(f"lifter {version} is now active" + (" (rolled back)" if rolled_back else ""), False)
        self.versions_changed.emit()
        self._update_buttons()

    # -- drawing -----------------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        p = self.progress
        busy = p.status in ("starting", "running")
        self.start_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy and self.job is not None)
        self.resume_button.setEnabled(not busy and (
            (self.job is not None and p.status in ("cancelled", "failed"))
            or (self.job is None and self.resumable is not None)))
        done = p.status == "done" and bool((p.result or {}).get("version"))
        self.activate_button.setEnabled(done and not (p.result or {}).get("activated"))
        self.rollback_button.setEnabled(self.previous_active is not None)

    def _render(self) -> None:
        p = self.progress
        self.bar.setValue(int(1000 * p.fraction))
        text = {"idle": "idle", "starting": "starting the training process…"}.get(p.status)
        if text is None:
            text = (f"{p.status}: epoch {p.epoch}/{p.epochs}, step {p.global_step}/{p.total_steps}, "
                    f"ETA {format_eta(p.eta_s)}")
            if p.time_budget_s > 0:
                text += f", time limit {format_eta(p.time_budget_s)}"
            if p.status == "done":
                text = f"done: new version {(p.result or {}).get('version')}"
            elif p.status == "failed":
                text = f"failed: {p.error}"
        self.status.setText(text)
        self.log_view.setPlainText("\n".join(p.log))
        self._show_validation_set(p.validation_held_out)
        x = np.asarray(p.step_x, float)
        for i, (name, values) in enumerate(p.losses.items()):
            if name not in self._curves:
                self._curves[name] = self.loss_plot.plot(pen=pg.mkPen(LOSS_COLORS[i % len(LOSS_COLORS)], width=1.5),
                                                         name=name)
            self._curves[name].setData(x, np.asarray(values, float))
        ex = np.asarray(p.epoch_x, float)
        shown = [k for k in p.validation if k not in ("body_size",)][:5]
        for i, name in enumerate(shown):
            if name not in self._val_curves:
                self._val_curves[name] = self.val_plot.plot(pen=pg.mkPen(LOSS_COLORS[i % len(LOSS_COLORS)], width=2),
                                                            symbol="o", symbolSize=5, name=name)
            self._val_curves[name].setData(ex, np.asarray(p.validation[name], float))
        self._render_comparison()

    def _show_validation_set(self, held_out: bool) -> None:
        where = "held-out frames" if held_out else "the training windows (clips too short to hold any out)"
        self.val_plot.setTitle(f"validation on {where} (per epoch; 0 = before)")
        self.compare_label.setText(f"<b>Before / after</b> on {where}"
                                   + (" and on the held-out sessions" if self.progress.held_out else ""))

    def _render_comparison(self) -> None:
        p = self.progress
        rows = []
        if p.held_out:  # first: the sessions never trained on say most about the new version
            for name, before in p.held_out["before"].items():
                if name in p.held_out["after"]:
                    rows.append((f"held-out sessions: {name}", before, p.held_out["after"][name]))
        if p.epoch_x and p.epoch_x[0] == 0:
            best = p.epoch_x.index(p.best_epoch) if p.best_epoch in p.epoch_x else len(p.epoch_x) - 1
            for name, values in p.validation.items():
                if len(values) > best and best > 0:
                    rows.append((name, values[0], values[best]))
        self.compare.setRowCount(len(rows))
        for r, (name, before, after) in enumerate(rows):
            for c, text in enumerate((name, f"{before:.4g}", f"{after:.4g}")):
                self.compare.setItem(r, c, QtWidgets.QTableWidgetItem(text))
        self.compare.resizeColumnsToContents()

    def showEvent(self, event) -> None:
        self.refresh_sessions()
        self.find_resumable()
        super().showEvent(event)

    def shutdown(self) -> None:
        """Stop following (the job process keeps running; the CLI or the next start can resume it)."""
        self._poll.stop()


def _checked(widget: QtWidgets.QListWidget) -> list[str]:
    out = []
    for i in range(widget.count()):
        item = widget.item(i)
        if item.checkState() == QtCore.Qt.CheckState.Checked:
            out.append(item.data(QtCore.Qt.ItemDataRole.UserRole))
    return out
