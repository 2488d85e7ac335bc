"""Consistency plots: residual per frame (click or drag to seek) and per joint at the current frame, with each
view's lift error against the fused (two-view) 3D beside it when the session has one."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from mvcapture.core.skeleton import H36M17_JOINTS
from mvcapture.gui.theme import disagreement_rgba, view_color

# Short joint names for the bar axis (the full names are in tooltips / the info line).
JOINT_LABELS = ("pel", "rhp", "rkn", "rak", "lhp", "lkn", "lak", "spn", "thx", "nck", "hd",
                "lsh", "lel", "lwr", "rsh", "rel", "rwr")
SELECTED_JOINT_COLOR = (230, 70, 200)


class FramePlot(pg.PlotWidget):
    """Mean residual over joints per frame (mm), the selected joint's residual, and a frame cursor; with a
    fused track, each view's mean lift error against it per frame (one curve per view, in its colour).

    Args:
        residual_mm: (T, 17) the views' disagreement.
        fps: frame rate.
        fused_error_mm: (V, T) each view's mean error against the fused track per frame, or None.

    Signals: `frame_clicked(frame)` when the user clicks the plot or drags the cursor.
    """

    frame_clicked = QtCore.Signal(int)

    def __init__(self, residual_mm: np.ndarray, fps: float, fused_error_mm: np.ndarray | None = None,
                 parent=None) -> None:
        super().__init__(parent)
        self.residual_mm = np.asarray(residual_mm, float)
        self.num_frames = self.residual_mm.shape[0]
        self.fps = fps
        self.setMinimumHeight(110)
        self.setMenuEnabled(False)
        self.setTitle("disagreement per frame (click to jump)", size="9pt")
        self.setLabel("left", "disagreement", units="mm")
        self.setLabel("bottom", "frame")
        self.showGrid(x=False, y=True, alpha=0.2)
        self.getViewBox().setMouseEnabled(x=True, y=False)
        frames = np.arange(self.num_frames)
        self.legend = self.addLegend(offset=(-10, 5), labelTextSize="8pt")
        # beside the views' curves (in the views' colours) the disagreement is neutral grey
        self.mean_curve = self.plot(frames, np.nanmean(self.residual_mm, axis=1),
                                    pen=pg.mkPen((120, 170, 255) if fused_error_mm is None else (128, 128, 128),
                                                 width=1.5), name="mean over joints")
        self.fused_curves = []
        if fused_error_mm is not None:
            self.setTitle("disagreement and each view's error vs the two-view 3D, per frame (click to jump)",
                          size="9pt")
            for v, curve in enumerate(np.asarray(fused_error_mm, float)):
                self.fused_curves.append(self.plot(frames, curve, pen=pg.mkPen(view_color(v), width=1.2),
                                                   name=f"view {v} vs two-view 3D", connect="finite"))
        self.joint_curve = self.plot([], [], pen=pg.mkPen(SELECTED_JOINT_COLOR, width=1.2))
        self.cursor = pg.InfiniteLine(pos=0, angle=90, movable=True, pen=pg.mkPen((255, 200, 0), width=2),
                                      hoverPen=pg.mkPen((255, 230, 120), width=3))
        self.addItem(self.cursor)
        self.cursor.sigDragged.connect(lambda line: self.frame_clicked.emit(self._clamp(line.value())))
        self.setXRange(0, max(1, self.num_frames - 1), padding=0.01)
        self.scene().sigMouseClicked.connect(self._on_scene_click)

    def _clamp(self, x: float) -> int:
        return int(min(max(round(x), 0), self.num_frames - 1))

    def frame_at_scene_pos(self, scene_pos: QtCore.QPointF) -> int | None:
        """The frame under a scene position, or None outside the plot area."""
        vb = self.getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            return None
        return self._clamp(vb.mapSceneToView(scene_pos).x())

    def scene_pos_of_frame(self, frame: int) -> QtCore.QPointF:
        """Scene position on the mean curve at `frame` (tests drive clicks with it)."""
        y = float(np.nanmean(self.residual_mm[frame]))
        return self.getViewBox().mapViewToScene(QtCore.QPointF(frame, y))

    def _on_scene_click(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        frame = self.frame_at_scene_pos(event.scenePos())
        if frame is not None:
            event.accept()
            self.frame_clicked.emit(frame)

    def set_frame(self, frame: int) -> None:
        self.cursor.setValue(frame)

    def set_selected_joint(self, joint: int | None) -> None:
        self.legend.removeItem(self.joint_curve)
        if joint is None:
            self.joint_curve.setData([], [])
        else:
            self.joint_curve.setData(np.arange(self.num_frames), self.residual_mm[:, joint])
            self.legend.addItem(self.joint_curve, H36M17_JOINTS[joint])


class JointBars(pg.PlotWidget):
    """Residual per joint at the current frame (bars coloured like the 3D joints) and its sequence mean; with a
    fused track, each view's error against it per joint beside them (thin bars in the view's colour).

    Args:
        residual_mm: (T, 17) the views' disagreement.
        fused_error_mm: (V, T, 17) each view's lift error against the fused track, or None.

    Signals: `joint_clicked(joint or None)` (clicking the selected bar again clears the selection).
    """

    joint_clicked = QtCore.Signal(object)

    def __init__(self, residual_mm: np.ndarray, fused_error_mm: np.ndarray | None = None, parent=None) -> None:
        super().__init__(parent)
        self.residual_mm = np.asarray(residual_mm, float)
        self.fused_error_mm = None if fused_error_mm is None else np.asarray(fused_error_mm, float)
        self.setMinimumHeight(110)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setTitle("per joint, this frame (dash: recording mean; click to select)", size="9pt")
        self.setLabel("left", "mm")
        x = np.arange(17)
        self.fused_bars = []
        if self.fused_error_mm is None:
            self.bars = pg.BarGraphItem(x=x, height=np.zeros(17), width=0.7)
        else:  # disagreement in the middle, each view's error vs the fused track to its sides
            self.setTitle("per joint: each view vs two-view 3D, disagreement between (dash: mean)", size="9pt")
            views = len(self.fused_error_mm)
            width = 0.8 / (views + 1)
            slots = list((np.arange(views + 1) - views / 2) * width)
            self.bars = pg.BarGraphItem(x=x + slots.pop(views // 2), height=np.zeros(17), width=width)
            for v, offset in enumerate(slots):
                bars = pg.BarGraphItem(x=x + offset, height=np.zeros(17), width=width * 0.9,
                                       brush=pg.mkBrush(*view_color(v)), pen=pg.mkPen(None))
                self.addItem(bars)
                self.fused_bars.append(bars)
        self.addItem(self.bars)
        self.mean_marks = pg.ScatterPlotItem(x=x, y=np.nanmean(self.residual_mm, axis=0), symbol="_", size=18,
                                             pen=pg.mkPen((150, 150, 150), width=2))
        self.addItem(self.mean_marks)
        self.getAxis("bottom").setTicks([[(i, JOINT_LABELS[i]) for i in range(17)]])
        shown = self.residual_mm if self.fused_error_mm is None else np.concatenate(
            [self.residual_mm.ravel(), self.fused_error_mm.ravel()])
        top = float(np.nanpercentile(shown, 99)) if np.isfinite(shown).any() else 1.0
        self.setYRange(0, max(top, 1.0) * 1.1, padding=0)
        self.setXRange(-0.6, 16.6, padding=0)
        self._selected: int | None = None
        self.scene().sigMouseClicked.connect(self._on_scene_click)

    def set_frame(self, frame: int) -> None:
        heights = self.residual_mm[frame]
        brushes = [pg.mkBrush(*(255 * c[:3]).astype(int)) for c in disagreement_rgba(heights)]
        pens = [pg.mkPen(SELECTED_JOINT_COLOR, width=3) if j == self._selected else pg.mkPen(None) for j in range(17)]
        self.bars.setOpts(height=np.nan_to_num(heights), brushes=brushes, pens=pens)
        for v, bars in enumerate(self.fused_bars):
            bars.setOpts(height=np.nan_to_num(self.fused_error_mm[v, frame]))
        self._frame = frame

    def set_selected_joint(self, joint: int | None) -> None:
        self._selected = joint
        self.set_frame(getattr(self, "_frame", 0))

    def _on_scene_click(self, event) -> None:
        vb = self.getViewBox()
        if event.button() != QtCore.Qt.MouseButton.LeftButton or not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        joint = int(round(vb.mapSceneToView(event.scenePos()).x()))
        if 0 <= joint < 17:
            event.accept()
            self.joint_clicked.emit(None if joint == self._selected else joint)
