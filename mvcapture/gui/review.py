"""The Review tab: both videos with 2D overlay, the aligned skeletons in 3D (with the fused two-view skeleton
when the session has one), consistency plots, timeline.

Everything observes one `ReviewState`; user actions (clicks, keys, the slider) call its methods. What is
drawn comes from a `ReviewScene` (plain Python). Video frames are decoded by a `FrameLoader` thread; the GUI
thread only draws.
"""

from __future__ import annotations

import html
import logging

import numpy as np
from PySide6 import QtCore, QtWidgets

from mvcapture.core.skeleton import H36M17_JOINTS
from mvcapture.gui.frame_loader import FrameLoader
from mvcapture.gui.plots import FramePlot, JointBars
from mvcapture.gui.source import ReviewSource
from mvcapture.gui.state import ReviewScene, ReviewState, placement_advice
from mvcapture.gui.theme import DISAGREEMENT_STOPS_MM, FUSED_COLOR, Theme, view_color
from mvcapture.gui.timeline import Timeline
from mvcapture.gui.video_panel import VideoPanel
from mvcapture.gui.view3d import Skeleton3DView

log = logging.getLogger(__name__)

# How long a frame waits for its video images before the pose data is shown without them (ms).
VIDEO_WAIT_MS = 150


def _swatch(rgb: tuple[int, int, int], text: str) -> str:
    return f'<span style="color: rgb{tuple(rgb)}">&#9632;</span> {text}'


class ReviewView(QtWidgets.QWidget):
    """Review of one processed recording.

    Signals: `offset_changed(view, offset_s)` -- the user corrected a view's sync offset (the video
    preview follows at once); `offset_save_requested(view, offset_s)` -- keep it as the session's manual
    alignment (then re-process).
    """

    offset_changed = QtCore.Signal(int, float)
    offset_save_requested = QtCore.Signal(int, float)

    def __init__(self, source: ReviewSource, theme: Theme | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = source
        a = source.analysis
        self.analysis = a
        self.scene = ReviewScene(a, source.stereo)
        self.state = ReviewState(a.num_frames, a.fps, offset_s=[float(o) for o in a.offset_s])

        self.panels = [VideoPanel(f"View {v}", tuple(a.image_size[v]), view_color(v)) for v in range(a.num_views)]
        for v, video in enumerate(source.videos):
            self.panels[v].set_title(f"View {v}: {video.name if video else 'no video'}")
            if video is None:
                self.panels[v].set_frame(None, "no video")
        self.view3d = Skeleton3DView(a.num_views, floor_m=Skeleton3DView.floor_height(self.scene.floor_poses_m))
        self.legend3d = QtWidgets.QLabel()
        self.legend3d.setToolTip("3D view: drag to orbit, wheel to zoom, middle-drag to pan")
        # a long legend is cut, not allowed to widen the window
        self.legend3d.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.fused_box = QtWidgets.QCheckBox("two-view 3D (F)")
        self.fused_box.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.fused_box.setChecked(self.state.show_fused and self.scene.has_fused)
        self.fused_box.setEnabled(self.scene.has_fused)
        self.fused_box.setToolTip(
            "show the skeleton triangulated from both cameras (violet; pale joints were seen by one camera "
            "only and come from its lift), with each view's lift placed onto it by one similarity for the "
            "whole recording: its joints are coloured by their distance to it" if self.scene.has_fused else
            f"this session was processed before the two-view 3D existed: {self.scene.fused_hint}")
        self.fused_box.toggled.connect(self.state.set_show_fused)
        self.fused_hint = QtWidgets.QLabel(f"<span style='color: gray'>{self.scene.fused_hint}</span>")
        self.fused_hint.setVisible(not self.scene.has_fused)
        self.frame_plot = FramePlot(a.residual_mm, a.fps, self.scene.fused_error_per_frame_mm())
        self.joint_bars = JointBars(a.residual_mm, self.scene.fused_error_mm)
        self.timeline = Timeline(self.state)
        self.info = QtWidgets.QLabel()
        # text changing every frame must not re-layout the window
        self.info.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed)
        self.info.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.offset_boxes: dict[int, QtWidgets.QDoubleSpinBox] = {}
        self._build_layout()

        self.loader = FrameLoader(source.videos, frame_times_s=source.frame_times_s, parent=self)
        self.loader.frames_ready.connect(self._on_frames_ready)
        self.loader.failed.connect(self._on_video_failed)
        self.loader.start()
        self.presented_frame: int | None = None  # the frame all views currently show
        self._wanted: int | None = None  # the frame the state asks for
        self._in_flight: int | None = None  # the frame whose video images are being decoded
        self._video_timeout = QtCore.QTimer(self)
        self._video_timeout.setSingleShot(True)
        self._video_timeout.setInterval(VIDEO_WAIT_MS)
        self._video_timeout.timeout.connect(self._on_video_timeout)

        self._play_timer = QtCore.QTimer(self)
        self._play_timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self._play_timer.setInterval(max(5, min(33, int(500 / a.fps))))
        self._play_timer.timeout.connect(self._on_play_tick)
        self._play_clock = QtCore.QElapsedTimer()

        self.state.events.frame.connect(self._show_frame)
        self.state.events.playing.connect(self._on_playing)
        self.state.events.selected_joint.connect(self._on_selected_joint)
        self.state.events.offset_s.connect(self._on_offset)
        self.state.events.show_fused.connect(self._on_show_fused)
        self.frame_plot.frame_clicked.connect(self.state.seek)
        self.joint_bars.joint_clicked.connect(self.state.select_joint)
        if theme is not None:
            self.set_theme(theme)
        self._show_frame(self.state.frame)

    def _build_layout(self) -> None:
        a = self.analysis
        view3d_box = QtWidgets.QWidget()
        box = QtWidgets.QVBoxLayout(view3d_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.legend3d)
        box.addWidget(self.view3d, 1)
        top = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        for panel in self.panels:
            top.addWidget(panel)
        top.addWidget(view3d_box)
        top.setSizes([1000] * top.count())  # equal widths: both videos and the 3D view
        bottom = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        bottom.addWidget(self.frame_plot)
        bottom.addWidget(self.joint_bars)
        bottom.setSizes([1500, 1000])
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.splitter.setObjectName("review_splitter")
        self.splitter.addWidget(top)
        self.splitter.addWidget(bottom)
        self.splitter.setSizes([1500, 1000])

        info_row = QtWidgets.QHBoxLayout()
        self.angle_labels: list[QtWidgets.QLabel] = []
        for v in range(1, a.num_views):
            angle = float(a.camera_angle_deg[v])
            label = QtWidgets.QLabel(f"<b>angle view 0–{v}: {html.escape(self.scene.angle_text(v))}</b> — "
                                     f"{placement_advice(angle)}")
            label.setToolTip(self.scene.angle_tooltip(v))
            label.setMinimumWidth(120)  # a narrow window cuts the advice instead of growing
            self.angle_labels.append(label)
            info_row.addWidget(label)
        info_row.addWidget(self.fused_box)
        info_row.addWidget(self.fused_hint)
        info_row.addStretch(1)
        for v in range(1, a.num_views):
            box = QtWidgets.QDoubleSpinBox()
            box.setRange(-30.0, 30.0)
            box.setDecimals(3)
            box.setSingleStep(1.0 / a.fps)
            box.setSuffix(" s")
            box.setValue(float(a.offset_s[v]))
            box.setToolTip(f"time offset of view {v} against view 0 (one step = one frame); "
                           "changing it previews the video and asks to re-process")
            box.valueChanged.connect(lambda value, v=v: self.state.set_offset_s(v, value))
            self.offset_boxes[v] = box
            info_row.addWidget(QtWidgets.QLabel(f"sync offset view {v}:"))
            info_row.addWidget(box)
            sync = self.source.sync[v]
            if sync:
                flag = sync.get("low_confidence")
                text = (f"{'⚠ ' if flag else ''}{sync.get('method', '?')}, confidence "
                        f"{float(sync.get('confidence', 0)):.2f}")
                label = QtWidgets.QLabel(f"<span style='color: {'rgb(220,120,0)' if flag else 'gray'}'>{text}</span>")
                label.setToolTip(sync.get("reason") or "time alignment stored in the session")
                info_row.addWidget(label)
            if self.source.folder is not None:
                save = QtWidgets.QPushButton("Keep offset")
                save.setToolTip("store this offset as the session's manual time alignment (then re-process)")
                save.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
                save.clicked.connect(lambda _=False, v=v: self.offset_save_requested.emit(v, self.state.offset_s(v)))
                info_row.addWidget(save)

        # what processing said the user must know (flat depth, uncertain sync, stand-in detections, ...)
        self.notes = QtWidgets.QLabel("<br>".join(f"⚠ {html.escape(n)}" for n in self.source.notes))
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: rgb(220,120,0)")
        self.notes.setVisible(bool(self.source.notes))

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(info_row)
        layout.addWidget(self.notes)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.info)
        layout.addWidget(self.timeline)

    # -- reactions to the state --------------------------------------------------------------------
    def _show_frame(self, frame: int) -> None:
        """Show `frame`: everything is drawn together once its video images are decoded (one repaint),
        and while a decode is in flight newer frames only replace the wish (playback drops frames)."""
        self._wanted = frame
        if not any(v is not None for v in self.source.videos):
            self._present(frame, {})
        elif self._in_flight is None:
            self._request(frame)

    def _request(self, frame: int) -> None:
        self._in_flight = frame
        self._video_timeout.start()
        self.loader.request(frame, {v: self.source.video_time_s(v, frame, self.state.offset_s(v))
                                    for v, video in enumerate(self.source.videos) if video is not None})

    def _on_frames_ready(self, frame: int, images: dict) -> None:
        if frame != self._in_flight:
            return  # a late answer to a request given up on
        self._in_flight = None
        self._video_timeout.stop()
        self._present(frame, images)
        if self._wanted is not None and self._wanted != frame:
            self._request(self._wanted)

    def _on_video_timeout(self) -> None:
        """Decoding is slow: show the pose data now, the videos follow when they arrive."""
        self._in_flight = None
        self._present(self._wanted, {})
        self._request(self._wanted)

    def _present(self, frame: int, images: dict) -> None:
        a = self.analysis
        for v, (index, rgb) in images.items():
            self.panels[v].set_frame(rgb, "" if rgb is not None else f"outside the video (frame {index})")
        for v, panel in enumerate(self.panels):
            panel.set_keypoints(a.kp2d[v, frame], a.conf[v, frame])
        self._draw_3d(frame)
        self.frame_plot.set_frame(frame)
        self.joint_bars.set_frame(frame)
        self._update_info(frame)
        self.presented_frame = frame

    def _draw_3d(self, frame: int) -> None:
        show_fused = self.state.show_fused
        lifts, joint_mm, fused = self.scene.poses(frame, show_fused)
        joint = self.state.selected_joint
        self.view3d.set_poses(lifts, joint_mm, joint)
        self.view3d.set_fused(fused, None if fused is None else self.scene.fused_from_stereo[frame], joint)
        self._update_legend(fused is not None)

    def _update_legend(self, fused_shown: bool) -> None:
        a = self.analysis
        legend = "   ".join(_swatch(view_color(v), f"view {v}") for v in range(a.num_views))
        if fused_shown:
            legend += "   " + _swatch(FUSED_COLOR, "two-view 3D")
        lo, mid, hi = DISAGREEMENT_STOPS_MM
        what = "joints off it" if fused_shown else "joints apart"
        self.legend3d.setText(
            f"{legend} &nbsp; {what}: <span style='color:rgb(40,200,80)'>{lo:g}</span>–"
            f"<span style='color:rgb(250,220,40)'>{mid:g}</span>–"
            f"<span style='color:rgb(230,30,30)'>{hi:g}+</span> mm")

    def _update_info(self, frame: int) -> None:
        r = self.analysis.residual_mm
        text = (f"disagreement: this frame {np.nanmean(r[frame]):.0f} mm, "
                f"whole recording {np.nanmean(r):.0f} mm")
        per_frame = self.scene.fused_error_per_frame_mm()
        if per_frame is not None:
            text += "   |   vs two-view 3D: " + ", ".join(
                f"view {v} " + (f"{per_frame[v, frame]:.0f} mm" if np.isfinite(per_frame[v, frame]) else "—")
                for v in range(len(per_frame)))
        joint = self.state.selected_joint
        if joint is not None:
            text += f"   |   {H36M17_JOINTS[joint]}: {r[frame, joint]:.0f} mm (mean {np.nanmean(r[:, joint]):.0f} mm)"
        self.info.setText(text)

    def _on_video_failed(self, view: int, message: str) -> None:
        self.panels[view].set_frame(None, message)
        log.warning("view %d: %s", view, message)

    def _on_playing(self, playing: bool) -> None:
        if playing:
            self._play_clock.start()
            self._play_timer.start()
        else:
            self._play_timer.stop()

    def _on_play_tick(self) -> None:
        dt_s = self._play_clock.nsecsElapsed() / 1e9
        self._play_clock.restart()
        self.state.advance(dt_s)

    def _on_selected_joint(self, joint: int | None) -> None:
        self.frame_plot.set_selected_joint(joint)
        self.joint_bars.set_selected_joint(joint)
        frame = self.presented_frame if self.presented_frame is not None else self.state.frame
        self._draw_3d(frame)
        self._update_info(frame)

    def _on_show_fused(self, show: bool) -> None:
        if self.scene.has_fused and self.fused_box.isChecked() != show:
            self.fused_box.blockSignals(True)
            self.fused_box.setChecked(show)
            self.fused_box.blockSignals(False)
        self._draw_3d(self.presented_frame if self.presented_frame is not None else self.state.frame)

    def _on_offset(self, view: int, offset_s: float) -> None:
        box = self.offset_boxes.get(view)
        if box is not None and abs(box.value() - offset_s) > 1e-9:
            box.blockSignals(True)
            box.setValue(offset_s)
            box.blockSignals(False)
        self.offset_changed.emit(view, offset_s)
        self._in_flight = None
        self._show_frame(self.state.frame)

    # -- housekeeping ------------------------------------------------------------------------------
    def set_theme(self, theme: Theme) -> None:
        self.view3d.set_theme(theme)
        for widget in (self.frame_plot, self.joint_bars, *self.panels):
            widget.setBackground(theme.background)

    def close_view(self) -> None:
        """Stop playback and the decoder thread (before the widget goes away)."""
        self.state.pause()
        self.loader.stop()


class ReviewTab(QtWidgets.QStackedWidget):
    """Holds the review of the open recording, or a hint how to open one."""

    offset_changed = QtCore.Signal(int, float)
    offset_save_requested = QtCore.Signal(int, float)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.empty = QtWidgets.QLabel("No recording open.\n\nOpen a processed session with File ▸ Open (Ctrl+O).")
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.addWidget(self.empty)
        self.view: ReviewView | None = None
        self._theme: Theme | None = None

    @property
    def state(self) -> ReviewState | None:
        return self.view.state if self.view is not None else None

    def show_source(self, source: ReviewSource) -> ReviewView:
        self.close_view()
        self.view = ReviewView(source, self._theme)
        self.view.offset_changed.connect(self.offset_changed)
        self.view.offset_save_requested.connect(self.offset_save_requested)
        self.addWidget(self.view)
        self.setCurrentWidget(self.view)
        return self.view

    def close_view(self) -> None:
        if self.view is not None:
            self.view.close_view()
            self.removeWidget(self.view)
            self.view.deleteLater()
            self.view = None
        self.setCurrentWidget(self.empty)

    def set_theme(self, theme: Theme) -> None:
        self._theme = theme
        if self.view is not None:
            self.view.set_theme(theme)
