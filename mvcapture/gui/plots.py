"""Consistency plots: residual per frame (click or drag to seek) and per joint at the current frame."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from mvcapture.core.skeleton import H36M17_JOINTS
from mvcapture.gui.theme import disagreement_rgba

# Short joint names for the bar axis (the full names are in tooltips / the info line).
JOINT_LABELS = ("pel", "rhp", "rkn", "rak", "lhp", "lkn", "lak", "spn", "thx", "nck", "hd",
                "lsh", "lel", "lwr", "rsh", "rel", "rwr")
SELECTED_JOINT_COLOR = (230, 70, 200)


class FramePlot(pg.PlotWidget):
    """Mean residual over joints per frame (mm), the selected joint's residual, and a frame cursor.

    Signals: `frame_clicked(frame)` when the user clicks the plot or drags the cursor.
    """

    frame_clicked = QtCore.Signal(int)

    def __init__(self, residual_mm: np.ndarray, fps: float, parent=None) -> None:
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
        self.mean_curve = self.plot(frames, np.nanmean(self.residual_mm, axis=1),
                                    pen=pg.mkPen((120, 170, 255), width=1.5), name="mean over joints")
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
    """Residual per joint at the current frame (bars coloured like the 3D joints) and its sequence mean.

    Signals: `joint_clicked(joint or None)` (clicking the selected bar again clears the selection).
    """

    joint_clicked = QtCore.Signal(object)

    def __init__(self, residual_mm: np.ndarray, parent=None) -> None:
        super().__init__(parent)
        self.residual_mm = np.asarray(residual_mm, float)
        self.setMinimumHeight(110)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setTitle("per joint, this frame (dash: recording mean; click to select)", size="9pt")
        self.setLabel("left", "mm")
        x = np.arange(17)
        self.bars = pg.BarGraphItem(x=x, height=np.zeros(17), width=0.7)
        self.addItem(self.bars)
        self.mean_marks = pg.ScatterPlotItem(x=x, y=np.nanmean(self.residual_mm, axis=0), symbol="_", size=18,
                                             pen=pg.mkPen((150, 150, 150), width=2))
        self.addItem(self.mean_marks)
        self.getAxis("bottom").setTicks([[(i, JOINT_LABELS[i]) for i in range(17)]])
        top = float(np.nanpercentile(self.residual_mm, 99)) if self.residual_mm.size else 1.0
        self.setYRange(0, max(top, 1.0) * 1.1, padding=0)
        self.setXRange(-0.6, 16.6, padding=0)
        self._selected: int | None = None
        self.scene().sigMouseClicked.connect(self._on_scene_click)

    def set_frame(self, frame: int) -> None:
        heights = self.residual_mm[frame]
        brushes = [pg.mkBrush(*(255 * c[:3]).astype(int)) for c in disagreement_rgba(heights)]
        pens = [pg.mkPen(SELECTED_JOINT_COLOR, width=3) if j == self._selected else pg.mkPen(None) for j in range(17)]
        self.bars.setOpts(height=np.nan_to_num(heights), brushes=brushes, pens=pens)
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
