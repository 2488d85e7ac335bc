"""A dial for the angle between the two cameras: a half circle from 0° to 180° with the placement zones
(green around 90°, orange, red towards 0° and 180°) and a needle at the live angle."""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui, QtWidgets

# (from °, to °, colour) of the zones; the same thresholds as gui.state.placement_advice
ZONES = ((0, 30, (220, 60, 50)), (30, 60, (235, 150, 40)), (60, 120, (60, 170, 80)),
         (120, 150, (235, 150, 40)), (150, 180, (220, 60, 50)))


class AngleGauge(QtWidgets.QWidget):
    """Half-circle gauge of the camera angle (degrees, 0..180); `set_angle(None)` shows no needle."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.angle_deg: float | None = None
        self.setMinimumSize(160, 90)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Fixed)
        self.setToolTip("angle between the two cameras: about 90° (green) works best")

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(220, 110)

    def set_angle(self, angle_deg: float | None) -> None:
        self.angle_deg = None if angle_deg is None else float(min(max(angle_deg, 0.0), 180.0))
        self.update()

    def _geometry(self) -> tuple[QtCore.QPointF, float]:
        """Centre of the dial (middle of its bottom edge) and its radius, in widget pixels."""
        w, h = self.width(), self.height()
        radius = max(10.0, min(w / 2.0, h - 14.0) - 6.0)
        return QtCore.QPointF(w / 2.0, h - 8.0), radius

    def point_at(self, angle_deg: float, fraction: float = 1.0) -> QtCore.QPointF:
        """Widget point on the dial at `angle_deg` (0° left, 90° up, 180° right), `fraction` of the radius out."""
        centre, radius = self._geometry()
        a = math.radians(180.0 - angle_deg)
        return QtCore.QPointF(centre.x() + fraction * radius * math.cos(a),
                              centre.y() - fraction * radius * math.sin(a))

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        centre, radius = self._geometry()
        band = max(6.0, radius * 0.18)
        rect = QtCore.QRectF(centre.x() - radius + band / 2, centre.y() - radius + band / 2,
                             2 * radius - band, 2 * radius - band)
        for start, stop, rgb in ZONES:
            pen = QtGui.QPen(QtGui.QColor(*rgb), band)
            pen.setCapStyle(QtCore.Qt.PenCapStyle.FlatCap)
            painter.setPen(pen)
            # Qt: angles in 1/16 °, counter-clockwise from 3 o'clock; our 0° is 9 o'clock
            painter.drawArc(rect, int((180 - stop) * 16), int((stop - start) * 16))
        text_colour = self.palette().color(QtGui.QPalette.ColorRole.WindowText)
        if self.angle_deg is not None:
            painter.setPen(QtGui.QPen(text_colour, 3))
            painter.drawLine(centre, self.point_at(self.angle_deg, 0.92))
            painter.setBrush(text_colour)
            painter.drawEllipse(centre, 4, 4)
        font = painter.font()
        font.setBold(True)
        font.setPointSizeF(max(8.0, radius / 6.0))
        painter.setFont(font)
        painter.setPen(text_colour)
        label = "–" if self.angle_deg is None else f"{self.angle_deg:.0f}°"
        box = painter.fontMetrics().boundingRect(label).adjusted(-5, -2, 5, 2)
        box.moveCenter(QtCore.QPoint(round(centre.x()), round(centre.y() - radius * 0.42)))
        painter.setBrush(self.palette().color(QtGui.QPalette.ColorRole.Window))  # the needle passes behind
        painter.setPen(QtCore.Qt.PenStyle.NoPen)
        painter.drawRoundedRect(box, 4, 4)
        painter.setPen(text_colour)
        painter.drawText(box, QtCore.Qt.AlignmentFlag.AlignCenter, label)
        painter.end()
