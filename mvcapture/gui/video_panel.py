"""One camera view: its video frame with the 2D skeleton drawn on top (pyqtgraph, image pixels)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from mvcapture.core.skeleton import H36M17_BONES

_BONE_PAIRS = np.array(H36M17_BONES).reshape(-1)
# Joints below this confidence are drawn hollow and their bones are left out.
MIN_CONF = 0.3


class VideoPanel(pg.GraphicsLayoutWidget):
    """Shows a frame (RGB uint8) in the view's full-resolution pixel coordinates and its keypoints.

    Args:
        title: e.g. "View 0".
        image_size: (width, height) of the view's video in pixels; keypoints are in these pixels.
        color: the view's RGB colour for the skeleton.
    """

    def __init__(self, title: str, image_size: tuple[int, int], color: tuple[int, int, int],
                 parent=None) -> None:
        super().__init__(parent)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.setMinimumSize(160, 120)
        self.ci.setContentsMargins(2, 2, 2, 2)
        self.title = self.addLabel(title, row=0, col=0)
        self.view = self.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMouse=True)
        self.view.setMenuEnabled(False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.bones = pg.PlotCurveItem(pen=pg.mkPen(color=color, width=3), connect="pairs")
        self.view.addItem(self.bones)
        # confident joints filled, unsure ones hollow: two items with fixed styles draw fastest
        self.joints = pg.ScatterPlotItem(size=7, pen=pg.mkPen((20, 20, 20), width=1), brush=pg.mkBrush(color))
        self.unsure_joints = pg.ScatterPlotItem(size=7, pen=pg.mkPen(color, width=1.5), brush=None)
        self.view.addItem(self.joints)
        self.view.addItem(self.unsure_joints)
        self.message = pg.TextItem("", color=(230, 230, 230), anchor=(0.5, 0.5))
        self.view.addItem(self.message)
        w, h = self.image_size
        self.message.setPos(w / 2, h / 2)
        self._blank = np.full((8, 8, 3), 40, np.uint8)
        self.set_frame(None)
        self.view.setRange(QtCore.QRectF(0, 0, w, h), padding=0.0)

    def set_frame(self, rgb: np.ndarray | None, note: str = "") -> None:
        """Show an RGB frame (any size: it is stretched over the view's pixel rect); None = blank."""
        self.image.setImage(self._blank if rgb is None else rgb, autoLevels=False, levels=(0, 255))
        self.image.setRect(QtCore.QRectF(0, 0, *self.image_size))
        self.message.setText(note if rgb is None else "")

    def set_keypoints(self, kp2d_px: np.ndarray, conf: np.ndarray) -> None:
        """(17, 2) pixels and (17,) confidences of the current frame."""
        ok = conf >= MIN_CONF
        pairs = _BONE_PAIRS.reshape(-1, 2)
        keep = ok[pairs[:, 0]] & ok[pairs[:, 1]]
        idx = pairs[keep].reshape(-1)
        self.bones.setData(kp2d_px[idx, 0], kp2d_px[idx, 1])
        self.joints.setData(pos=kp2d_px[ok])
        self.unsure_joints.setData(pos=kp2d_px[~ok])

    def set_title(self, text: str) -> None:
        self.title.setText(text)
