"""The Capture tab: pick two cameras (or video files standing in for them), live previews, record / stop
with per-view frame counters, and import of phone files into a new session.

Cameras, recording and sessions come from `mvcapture.capture` and `mvcapture.session`; opening devices,
stopping the recorder and importing run in workers. Previews poll each source's newest frame on a timer.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from PySide6 import QtCore, QtWidgets

from mvcapture.gui.gauge import AngleGauge
from mvcapture.gui.live import LivePose, LivePoseWorker, default_detector, default_lifter, default_stereo
from mvcapture.gui.state import placement_advice
from mvcapture.gui.theme import view_color
from mvcapture.gui.video_panel import VideoPanel
from mvcapture.gui.view3d import Skeleton3DView
from mvcapture.gui.workers import run_task

log = logging.getLogger(__name__)

PREVIEW_MAX_WIDTH = 640
PREVIEW_INTERVAL_MS = 40
# Live pairs drawn over which the Capture tab's pairs/s and capture-to-screen latency are measured.
LIVE_RATE_PAIRS = 60
# The live 3D view is redrawn at most this often (a GL repaint per camera frame costs the GUI thread more
# than the skeleton gains from it; the 2D overlay follows every live result).
LIVE_3D_INTERVAL_S = 0.1
# Source choices are stored in the combo box as strings (Qt compares them reliably): "camera:INDEX",
# "file:PATH", and "file:" for the entry that opens a file dialog.
CAMERA_PREFIX, FILE_PREFIX = "camera:", "file:"


def preview_image(bgr: np.ndarray, max_width: int = PREVIEW_MAX_WIDTH) -> np.ndarray:
    """A captured BGR frame as a small RGB image for display."""
    h, w = bgr.shape[:2]
    if w > max_width:
        bgr = cv2.resize(bgr, (max_width, round(h * max_width / w)), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class SourcePicker(QtWidgets.QWidget):
    """One view's source: a camera from the list, or a video file played as a live camera."""

    changed = QtCore.Signal()

    def __init__(self, view: int, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.combo = QtWidgets.QComboBox()
        self.combo.setMinimumWidth(180)
        self.mode = QtWidgets.QComboBox()
        self.mode.setToolTip("resolution and frame rate to ask the camera for (it may offer less)")
        self.file_path: Path | None = None
        self._cameras: dict[int, object] = {}
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QtWidgets.QLabel(f"View {view}:"))
        row.addWidget(self.combo, 1)
        row.addWidget(self.mode)
        self.combo.activated.connect(self._on_activated)
        self.combo.currentIndexChanged.connect(lambda _: self._update_modes())
        self._update_modes()

    def set_cameras(self, cameras: list) -> None:
        self._cameras = {cam.index: cam for cam in cameras}
        current = self.combo.currentData()
        self.combo.clear()
        for cam in cameras:
            self.combo.addItem(f"{cam.name} (#{cam.index})", f"{CAMERA_PREFIX}{cam.index}")
        self.combo.addItem("video file…", FILE_PREFIX)
        if self.file_path is not None:
            self.combo.insertItem(self.combo.count() - 1, f"file: {self.file_path.name}",
                                  f"{FILE_PREFIX}{self.file_path}")
        index = self.combo.findData(current) if current is not None else -1
        self.combo.setCurrentIndex(index if index >= 0 else min(self.view, max(0, len(cameras) - 1)))

    def set_file(self, path: Path) -> None:
        self.file_path = Path(path)
        item = f"{FILE_PREFIX}{self.file_path}"
        if self.combo.findData(item) < 0:
            self.combo.insertItem(self.combo.count() - 1, f"file: {self.file_path.name}", item)
        self.combo.setCurrentIndex(self.combo.findData(item))
        self.changed.emit()

    def _update_modes(self) -> None:
        """The chosen camera's modes as the OS lists them (hidden for files and cameras without a list)."""
        self.mode.clear()
        data = self.combo.currentData() or ""
        cam = self._cameras.get(int(data[len(CAMERA_PREFIX):])) if data.startswith(CAMERA_PREFIX) else None
        modes = list(getattr(cam, "modes", ()) or ())
        self.mode.addItem("camera default", None)
        for m in modes:
            rate = f" @ {m.fps:g} fps" if m.fps else ""
            self.mode.addItem(f"{m.width}×{m.height}{rate}" + (f" {m.pixel_format}" if m.pixel_format else ""),
                              (m.width, m.height, m.fps))
        self.mode.setVisible(bool(modes))

    def _on_activated(self, index: int) -> None:
        if self.combo.itemData(index) == FILE_PREFIX:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self, f"Video for view {self.view}", "",
                                                            "Videos (*.mp4 *.mov *.avi *.mkv *.m4v *.webm)")
            if path:
                self.set_file(Path(path))
            return
        self.changed.emit()

    def choice(self) -> str | None:
        """"camera:INDEX" or "file:PATH"; None when nothing usable is chosen."""
        data = self.combo.currentData()
        return data if data and data != FILE_PREFIX else None

    def make_source(self):
        """A new, not yet started source for the current choice (None when nothing is chosen)."""
        from mvcapture.capture import CameraSource, FileSource

        choice = self.choice()
        if choice is None:
            return None
        if choice.startswith(FILE_PREFIX):
            return FileSource(choice[len(FILE_PREFIX):], loop=True, name=f"view{self.view}")
        width, height, fps = self.mode.currentData() or (None, None, None)
        return CameraSource(int(choice[len(CAMERA_PREFIX):]), width=width, height=height, fps=fps,
                            name=f"view{self.view}")


class CaptureTab(QtWidgets.QWidget):
    """Live previews and recording of two views.

    Signals: `recorded(session_path)` after a recording was finalized, `imported(session_path)` after an
    import, `import_progress(fraction, message)` while importing, `message(text, error)`,
    `recording_changed(bool)`.
    """

    recorded = QtCore.Signal(object)
    imported = QtCore.Signal(object)
    import_progress = QtCore.Signal(float, str)
    message = QtCore.Signal(str, bool)
    recording_changed = QtCore.Signal(bool)

    def __init__(self, num_views: int = 2, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.make_detector = default_detector  # live pose models, built in the live worker
        self.make_lifter = default_lifter
        self.live: LivePoseWorker | None = None
        self.last_live: LivePose | None = None
        # two-view 3D for the live view: called with the started sources, returns a
        # `mvcapture.pipeline.live.StereoLift` (default: the self-calibrated `LiveStereo`) or None
        self.make_stereo = default_stereo
        self.live_shown = 0
        self._live_drawn_s: collections.deque = collections.deque(maxlen=LIVE_RATE_PAIRS)
        self._live_latency_ms: collections.deque = collections.deque(maxlen=LIVE_RATE_PAIRS)
        self._live_3d_drawn_s = 0.0
        self.pickers = [SourcePicker(v) for v in range(num_views)]
        self.panels = [VideoPanel(f"View {v}", (640, 480), view_color(v)) for v in range(num_views)]
        self.counters = [QtWidgets.QLabel("–") for _ in range(num_views)]
        self.sources: list = []
        self.recorder = None
        self.session = None
        self._busy = False
        self._last_index = [-1] * num_views

        self.refresh_button = QtWidgets.QPushButton("Find cameras")
        self.preview_button = QtWidgets.QPushButton("Start preview")
        self.record_button = QtWidgets.QPushButton("● Record")
        self.record_button.setToolTip("start / stop recording (R)")
        self.import_button = QtWidgets.QPushButton("Import phone videos…")
        self.import_bar = QtWidgets.QProgressBar()
        self.import_bar.setRange(0, 1000)
        self.import_bar.setMaximumWidth(220)
        self.import_bar.hide()
        self.import_cancel = QtWidgets.QPushButton("Cancel import")
        self.import_cancel.hide()
        self._import_cancel_requested = threading.Event()
        self.session_name = QtWidgets.QLineEdit()
        self.session_name.setPlaceholderText("session name (optional)")
        self.athlete = QtWidgets.QLineEdit()
        self.athlete.setPlaceholderText("athlete (optional)")
        self.state = QtWidgets.QLabel("not recording")
        self.live_check = QtWidgets.QCheckBox("live pose")
        self.live_check.setChecked(True)
        self.live_check.setToolTip("detect and lift both views while previewing / recording (2D overlay, 3D, angle)")
        self.view3d = Skeleton3DView(num_views)
        self.angle = QtWidgets.QLabel("camera angle: –")
        self.angle.setWordWrap(True)
        self.angle.setObjectName("angle_advice")
        self.gauge = AngleGauge()
        self.gauge.setObjectName("angle_gauge")
        self.live_status = QtWidgets.QLabel("")
        self.live_status.setWordWrap(True)

        pick_row = QtWidgets.QHBoxLayout()
        for p in self.pickers:
            pick_row.addWidget(p, 1)
        pick_row.addWidget(self.refresh_button)
        panels = QtWidgets.QHBoxLayout()
        for panel, counter in zip(self.panels, self.counters):
            col = QtWidgets.QVBoxLayout()
            col.addWidget(panel, 1)
            col.addWidget(counter)
            panels.addLayout(col, 1)
        live_col = QtWidgets.QVBoxLayout()
        angle_row = QtWidgets.QHBoxLayout()
        angle_row.addWidget(self.gauge)
        angle_row.addWidget(self.angle, 1)
        live_col.addLayout(angle_row)
        live_col.addWidget(self.view3d, 1)
        live_col.addWidget(self.live_status)
        panels.addLayout(live_col, 1)
        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(self.session_name)
        controls.addWidget(self.athlete)
        controls.addWidget(self.preview_button)
        controls.addWidget(self.record_button)
        controls.addWidget(self.live_check)
        controls.addWidget(self.state, 1)
        controls.addWidget(self.import_bar)
        controls.addWidget(self.import_cancel)
        controls.addWidget(self.import_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(pick_row)
        layout.addLayout(panels, 1)
        layout.addLayout(controls)

        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(PREVIEW_INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        self.refresh_button.clicked.connect(self.refresh_cameras)
        self.preview_button.clicked.connect(self.toggle_preview)
        self.record_button.clicked.connect(self.toggle_record)
        self.import_button.clicked.connect(self.import_dialog)
        self.import_progress.connect(self._on_import_progress)
        self.import_cancel.clicked.connect(self.cancel_import)
        for p in self.pickers:
            p.changed.connect(self._on_choice_changed)
        self.live_check.toggled.connect(self._on_live_toggled)
        self._cameras_listed = False
        self._update_controls()

    # -- cameras -----------------------------------------------------------------------------------
    def refresh_cameras(self) -> None:
        from mvcapture.capture import list_cameras

        self.refresh_button.setEnabled(False)

        def done(cameras) -> None:
            for p in self.pickers:
                p.set_cameras(cameras)
            self.refresh_button.setEnabled(True)
            if not cameras:
                self.message.emit("no cameras found: choose 'video file…' to use recorded videos instead", False)

        def failed(msg: str) -> None:
            self.refresh_button.setEnabled(True)
            self.message.emit(msg, True)

        run_task(list_cameras, on_done=done, on_error=failed, owner=self)

    def _on_choice_changed(self) -> None:
        if self.sources and self.recorder is None:
            self.stop_preview(restart=True)

    # -- preview -----------------------------------------------------------------------------------
    @property
    def previewing(self) -> bool:
        return bool(self.sources) and self.recorder is None

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def toggle_preview(self) -> None:
        if self.previewing:
            self.stop_preview()
        else:
            self.start_preview()

    def start_preview(self) -> None:
        sources = [p.make_source() for p in self.pickers]
        if any(s is None for s in sources):
            self.message.emit("choose a camera or a video file for every view first", True)
            return
        self._set_busy(True)

        def open_all() -> list:
            started = []
            try:
                for s in sources:
                    s.start()
                    started.append(s)
            except BaseException:
                for s in started:
                    s.stop()
                raise
            return started

        def done(started: list) -> None:
            self.sources = started
            self._last_index = [-1] * len(started)
            self._timer.start()
            self._set_busy(False)
            self._start_live()

        def failed(msg: str) -> None:
            self._set_busy(False)
            self.message.emit(msg, True)

        run_task(open_all, on_done=done, on_error=failed, owner=self)

    def stop_preview(self, restart: bool = False) -> None:
        self._stop_live()
        sources, self.sources = self.sources, []
        self._timer.stop()
        self._set_busy(True)

        def done(_) -> None:
            self._set_busy(False)
            if restart:
                self.start_preview()

        run_task(lambda: [s.stop() for s in sources], on_done=done, on_error=lambda m: self._set_busy(False),
                 owner=self)

    def _tick(self) -> None:
        for v, source in enumerate(self.sources):
            frame = source.latest()
            if frame is not None and frame.index != self._last_index[v]:
                self._last_index[v] = frame.index
                h, w = frame.image.shape[:2]
                if self.panels[v].image_size != (w, h):
                    self.panels[v].image_size = (w, h)
                    self.panels[v].view.setRange(QtCore.QRectF(0, 0, w, h), padding=0.0)
                self.panels[v].set_frame(preview_image(frame.image))
        self._update_counters()

    def _update_counters(self) -> None:
        stats = self.recorder.stats() if self.recorder is not None else [s.stats() for s in self.sources]
        for v, label in enumerate(self.counters):
            if v >= len(stats):
                label.setText("–")
                continue
            st = stats[v]
            text = f"{st.get('status')}  {st.get('width')}×{st.get('height')} @ {st.get('fps') or 0:.1f} fps"
            if self.recorder is not None:
                text += (f"   captured {st['frames_captured']} · written {st.get('frames_written', 0)}"
                         f" · dropped {st['frames_dropped']}")
            if st.get("error"):
                text += f"   ⚠ {st['error']}"
            label.setText(text)

    # -- recording ---------------------------------------------------------------------------------
    def toggle_record(self) -> None:
        if self._busy:
            return
        if self.recording:
            self.stop_recording()
        else:
            self.start_recording()

    def start_recording(self) -> None:
        from mvcapture.capture import Recorder
        from mvcapture.session import Session

        sources = [p.make_source() for p in self.pickers]
        if any(s is None for s in sources):
            self.message.emit("choose a camera or a video file for every view first", True)
            return
        self._stop_live()
        previews, self.sources = self.sources, []
        self._timer.stop()
        name = self.session_name.text().strip() or None
        athlete = self.athlete.text().strip() or None
        self._set_busy(True)

        def begin():
            for s in previews:
                s.stop()
            session = Session.create(name=name, athlete=athlete, kind="recording")
            recorder = Recorder(session, sources, on_event=self._on_source_event)
            try:
                recorder.start()
            except BaseException:
                session.discard()
                raise
            return session, recorder

        def done(result) -> None:
            self.session, self.recorder = result
            self.sources = self.recorder.sources
            self._last_index = [-1] * len(self.sources)
            self._timer.start()
            self._set_busy(False)
            self.recording_changed.emit(True)
            self.state.setText(f"● recording {self.session.id}")
            self._start_live()

        def failed(msg: str) -> None:
            self._set_busy(False)
            self.message.emit(msg, True)

        run_task(begin, on_done=done, on_error=failed, owner=self)

    def _on_source_event(self, event) -> None:
        """From capture threads: only log here; the counters show the status on the next tick."""
        if event.kind == "lost":
            log.warning("capture source %s lost: %s", event.source, event.message)

    def stop_recording(self) -> None:
        recorder, session = self.recorder, self.session
        if recorder is None:
            return
        self._stop_live()
        self._timer.stop()
        self._set_busy(True)
        self.state.setText("finishing the recording…")

        def done(stats) -> None:
            self.recorder, self.sources = None, []
            self._set_busy(False)
            self.recording_changed.emit(False)
            written = ", ".join(f"view {i}: {s['frames_written']} frames, {s['frames_dropped']} dropped"
                                for i, s in enumerate(stats))
            self.state.setText(f"recorded {session.id} ({written})")
            lost = [s for s in stats if s.get("status") == "lost"]
            if lost or session.problems:
                self.message.emit("; ".join([f"{s['name']} was lost: {s.get('error')}" for s in lost]
                                            + session.problems), True)
            self.recorded.emit(session.path)

        def failed(msg: str) -> None:
            self.recorder, self.sources = None, []
            self._set_busy(False)
            self.recording_changed.emit(False)
            self.message.emit(msg, True)

        run_task(recorder.stop, on_done=done, on_error=failed, owner=self)

    def set_theme(self, theme) -> None:
        self.view3d.set_theme(theme)

    # -- live pose ---------------------------------------------------------------------------------
    def _on_live_toggled(self, on: bool) -> None:
        if on:
            self._start_live()
        else:
            self._stop_live()

    def _start_live(self) -> None:
        if self.live is not None or not self.sources or not self.live_check.isChecked():
            return
        self.live_status.setText("live pose: loading the models…")
        stereo = self.make_stereo(self.sources) if self.make_stereo is not None else None
        self.live = LivePoseWorker(self.sources, self.make_detector, self.make_lifter, stereo=stereo, parent=self)
        self.live_shown = 0
        self._live_drawn_s.clear()
        self._live_latency_ms.clear()
        self.live.ready.connect(self._on_live_ready)
        self.live.failed.connect(self._on_live_failed)
        self.live.start()

    def _stop_live(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _on_live_failed(self, message: str) -> None:
        self.live_status.setText(message.splitlines()[0] + (" (details: hover)" if "\n" in message else ""))
        self.live_status.setToolTip(message)
        self.live_check.setChecked(False)

    def _on_live_ready(self) -> None:
        pose = self.live.take() if self.live is not None else None
        if pose is not None:
            self._on_live_pose(pose)

    def live_stats(self) -> dict:
        """Live pairs drawn per second (over the last `LIVE_RATE_PAIRS` pairs) and capture-to-screen
        latency p50/p95 ms (from the older frame's capture to its result drawn), or None before two pairs."""
        drawn, latency = np.asarray(self._live_drawn_s), np.asarray(self._live_latency_ms)
        rate = (len(drawn) - 1) / (drawn[-1] - drawn[0]) if len(drawn) > 1 and drawn[-1] > drawn[0] else None
        return {"pairs_per_s": rate, "shown": self.live_shown,
                "latency_p50_ms": float(np.percentile(latency, 50)) if len(latency) else None,
                "latency_p95_ms": float(np.percentile(latency, 95)) if len(latency) else None}

    def _on_live_pose(self, pose: LivePose) -> None:
        self.last_live = pose
        for v, panel in enumerate(self.panels):
            panel.set_keypoints(pose.kp2d[v], pose.conf[v])
        now_s = time.monotonic()
        if now_s - self._live_3d_drawn_s >= LIVE_3D_INTERVAL_S:   # the 2D follows the cameras, the 3D view less
            if pose.fused is not None:   # the two-view 3D, once confident, is the best 3D: shown alone
                self.view3d.set_poses(pose.fused[None], np.zeros(17))
                for skeleton in self.view3d.skeletons[1:]:
                    skeleton.setVisible(False)
                self._live_3d_drawn_s = now_s
            elif pose.aligned is not None:
                self.view3d.set_poses(pose.aligned, pose.residual_mm)
                self._live_3d_drawn_s = now_s
        if pose.angle_deg is not None:
            self.gauge.set_angle(pose.angle_deg)
            good = 60 <= pose.angle_deg <= 120
            color = "rgb(40, 170, 80)" if good else "rgb(220, 140, 0)"
            source = "two-view geometry" if pose.angle_source == "stereo" else "lifter"
            self.angle.setText(f"<span style='font-size: 16pt; color: {color}'><b>{pose.angle_deg:.0f}°</b></span>"
                               f" between the cameras ({source}) — {placement_advice(pose.angle_deg)}")
        now_ns = time.monotonic_ns()
        self.live_shown += 1
        self._live_drawn_s.append(now_ns / 1e9)
        if pose.t_ns is not None and len(pose.t_ns):
            self._live_latency_ms.append((now_ns - int(np.min(pose.t_ns))) / 1e6)
        stats = self.live_stats()
        rate = "–" if stats["pairs_per_s"] is None else f"{stats['pairs_per_s']:.1f}"
        latency = "–" if stats["latency_p50_ms"] is None else (f"{stats['latency_p50_ms']:.0f} ms "
                                                              f"(p95 {stats['latency_p95_ms']:.0f})")
        self.live_status.setText(f"live pose: {rate} pairs/s · capture → screen {latency} · shown "
                                 f"{self.live_shown}, skipped {sum(pose.skipped)}, dropped {pose.dropped} · 3D every "
                                 f"{pose.lift_stride} pair(s)")

    # -- import ------------------------------------------------------------------------------------
    def import_dialog(self) -> None:
        paths, _ = QtWidgets.QFileDialog.getOpenFileNames(
            self, "Import the videos of one take (one file per camera)", "",
            "Videos (*.mp4 *.mov *.avi *.mkv *.m4v *.webm *.3gp)")
        if paths:
            self.import_files([Path(p) for p in paths])

    def import_files(self, paths: list[Path]) -> None:
        """Create a session from video files of the same take (at least two), in a worker."""
        if len(paths) < 2:
            self.message.emit("choose at least two videos of the same take (one per camera)", True)
            return
        from mvcapture.session import Session

        name = self.session_name.text().strip() or paths[0].stem
        athlete = self.athlete.text().strip() or None
        self.state.setText(f"importing {len(paths)} videos…")
        self._set_busy(True)
        cancel = self._import_cancel_requested
        cancel.clear()
        self._show_import_progress(True)

        def work() -> Path:
            session = Session.create(name=name, athlete=athlete, kind="import")
            try:
                # from the worker thread: the signal is queued to the GUI thread
                session.import_videos(paths, progress=self.import_progress.emit, cancel=cancel.is_set)
            except BaseException:
                session.discard()  # nothing half-imported is left behind
                raise
            return session.path

        def done(path: Path) -> None:
            self._set_busy(False)
            self._show_import_progress(False)
            self.state.setText(f"imported into {path.name}")
            self.imported.emit(path)

        def failed(msg: str) -> None:
            self._set_busy(False)
            self._show_import_progress(False)
            if cancel.is_set():
                self.state.setText("import cancelled (nothing was kept)")
                return
            self.state.setText("import failed")
            self.message.emit(msg, True)

        run_task(work, on_done=done, on_error=failed, owner=self)

    def cancel_import(self) -> None:
        """Stop the running import (within one 8 MiB copy chunk); the new session is removed."""
        self._import_cancel_requested.set()
        self.import_cancel.setEnabled(False)
        self.state.setText("cancelling the import…")

    def _on_import_progress(self, fraction: float, message: str) -> None:
        self.import_bar.setValue(round(1000 * fraction))
        self.import_bar.setFormat(f"{fraction:.0%}")
        if not self._import_cancel_requested.is_set():
            self.state.setText(f"importing: {message}")

    def _show_import_progress(self, shown: bool) -> None:
        self.import_bar.setValue(0)
        self.import_bar.setVisible(shown)
        self.import_cancel.setVisible(shown)
        self.import_cancel.setEnabled(shown)

    # -- state -------------------------------------------------------------------------------------
    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self._update_controls()

    def _update_controls(self) -> None:
        idle = not self._busy
        self.preview_button.setEnabled(idle and not self.recording)
        self.preview_button.setText("Stop preview" if self.previewing else "Start preview")
        self.record_button.setEnabled(idle)
        self.record_button.setText("■ Stop" if self.recording else "● Record")
        self.import_button.setEnabled(idle and not self.recording)
        for p in self.pickers:
            p.setEnabled(idle and not self.recording)

    def showEvent(self, event) -> None:
        if not self._cameras_listed:
            self._cameras_listed = True
            self.refresh_cameras()
        super().showEvent(event)

    def shutdown(self) -> None:
        """Stop previews and finish a running recording (window closing): waits for the recorder."""
        self._stop_live()
        self._timer.stop()
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder = None
        for s in self.sources:
            s.stop()
        self.sources = []
