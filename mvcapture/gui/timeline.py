"""Transport bar of a review: first / step back / play-pause / step / last, a scrub slider, speed, loop."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from mvcapture.gui.state import PLAY_SPEEDS, ReviewState

# Transport symbols as polygons on a 16x16 grid: bars (x, y, w, h) and triangles (3 points).
_SHAPES = {
    "first": ([(2, 3, 2, 10)], [((13, 3), (13, 13), (5, 8))]),
    "back": ([(2, 3, 2, 10)], [((12, 3), (12, 13), (5, 8))]),
    "play": ([], [((4, 2), (4, 14), (13, 8))]),
    "pause": ([(4, 3, 3, 10), (9, 3, 3, 10)], []),
    "forward": ([(12, 3, 2, 10)], [((4, 3), (4, 13), (11, 8))]),
    "last": ([(12, 3, 2, 10)], [((3, 3), (3, 13), (11, 8))]),
}


def transport_icon(kind: str, color: QtGui.QColor) -> QtGui.QIcon:
    """A crisp media icon in the palette's text colour (the style's own are dark on dark themes)."""
    pixmap = QtGui.QPixmap(32, 32)
    pixmap.fill(QtCore.Qt.GlobalColor.transparent)
    painter = QtGui.QPainter(pixmap)
    painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
    painter.scale(2, 2)
    painter.setPen(QtCore.Qt.PenStyle.NoPen)
    painter.setBrush(color)
    bars, triangles = _SHAPES[kind]
    for x, y, w, h in bars:
        painter.drawRect(QtCore.QRectF(x, y, w, h))
    for tri in triangles:
        painter.drawPolygon(QtGui.QPolygonF([QtCore.QPointF(*p) for p in tri]))
    painter.end()
    return QtGui.QIcon(pixmap)


def _button(widget: QtWidgets.QWidget, kind: str, tip: str) -> QtWidgets.QToolButton:
    button = QtWidgets.QToolButton(widget)
    button.setProperty("icon_kind", kind)
    button.setToolTip(tip)
    button.setAutoRaise(True)
    button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)  # keys belong to the window's shortcuts
    return button


class Timeline(QtWidgets.QWidget):
    """Observes a `ReviewState` and drives it; owns no playback logic itself."""

    def __init__(self, state: ReviewState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.first_button = _button(self, "first", "first frame (Home)")
        self.back_button = _button(self, "back", "previous frame (Left)")
        self.play_button = _button(self, "play", "play / pause (Space)")
        self.forward_button = _button(self, "forward", "next frame (Right)")
        self.last_button = _button(self, "last", "last frame (End)")
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, state.last_frame)
        self.slider.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.slider.setToolTip("drag to scrub")
        self.position = QtWidgets.QLabel(self)
        widest = "frame 000000 / 000000   00000.00 s"
        self.position.setFixedWidth(self.position.fontMetrics().horizontalAdvance(widest) + 8)
        self.position.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        self.speed = QtWidgets.QComboBox(self)
        self.speed.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.speed.setToolTip("play speed")
        for s in PLAY_SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(PLAY_SPEEDS.index(1.0))
        self.loop = QtWidgets.QCheckBox("loop", self)
        self.loop.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.loop.setChecked(state.loop)

        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(4, 2, 4, 2)
        for w in (self.first_button, self.back_button, self.play_button, self.forward_button, self.last_button):
            row.addWidget(w)
        row.addWidget(self.slider, 1)
        row.addWidget(self.position)
        row.addWidget(self.speed)
        row.addWidget(self.loop)

        self.first_button.clicked.connect(state.first)
        self.back_button.clicked.connect(lambda: state.step(-1))
        self.play_button.clicked.connect(state.toggle_play)
        self.forward_button.clicked.connect(lambda: state.step(1))
        self.last_button.clicked.connect(state.last)
        self.slider.valueChanged.connect(state.seek)
        self.speed.currentIndexChanged.connect(lambda i: state.set_speed(self.speed.itemData(i)))
        self.loop.toggled.connect(state.set_loop)
        state.events.frame.connect(self._on_frame)
        state.events.playing.connect(self._on_playing)
        state.events.loop.connect(self.loop.setChecked)
        self._on_frame(state.frame)
        self._update_icons()

    def _on_frame(self, frame: int) -> None:
        if self.slider.value() != frame:
            self.slider.blockSignals(True)
            self.slider.setValue(frame)
            self.slider.blockSignals(False)
        seconds = frame / self.state.fps
        self.position.setText(f"frame {frame} / {self.state.last_frame}   {seconds:6.2f} s")

    def _on_playing(self, playing: bool) -> None:
        self.play_button.setProperty("icon_kind", "pause" if playing else "play")
        self._update_icons()

    def _update_icons(self) -> None:
        color = self.palette().color(QtGui.QPalette.ColorRole.ButtonText)
        for button in (self.first_button, self.back_button, self.play_button, self.forward_button,
                       self.last_button):
            button.setIcon(transport_icon(button.property("icon_kind"), color))

    def changeEvent(self, event: QtCore.QEvent) -> None:
        if event.type() == QtCore.QEvent.Type.PaletteChange:
            self._update_icons()
        super().changeEvent(event)
