"""Transport bar of a review: first / step back / play-pause / step / last, a scrub slider, speed, loop."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from mvcapture.gui.state import PLAY_SPEEDS, ReviewState


def _button(widget: QtWidgets.QWidget, icon: QtWidgets.QStyle.StandardPixmap, tip: str) -> QtWidgets.QToolButton:
    button = QtWidgets.QToolButton(widget)
    button.setIcon(widget.style().standardIcon(icon))
    button.setToolTip(tip)
    button.setAutoRaise(True)
    button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)  # keys belong to the window's shortcuts
    return button


class Timeline(QtWidgets.QWidget):
    """Observes a `ReviewState` and drives it; owns no playback logic itself."""

    def __init__(self, state: ReviewState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        SP = QtWidgets.QStyle.StandardPixmap
        self.first_button = _button(self, SP.SP_MediaSkipBackward, "first frame (Home)")
        self.back_button = _button(self, SP.SP_MediaSeekBackward, "previous frame (Left)")
        self.play_button = _button(self, SP.SP_MediaPlay, "play / pause (Space)")
        self.forward_button = _button(self, SP.SP_MediaSeekForward, "next frame (Right)")
        self.last_button = _button(self, SP.SP_MediaSkipForward, "last frame (End)")
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, state.last_frame)
        self.slider.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.slider.setToolTip("drag to scrub")
        self.position = QtWidgets.QLabel(self)
        self.position.setFixedWidth(self.position.fontMetrics().horizontalAdvance("frame 000000 / 000000   00000.00 s") + 8)
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

    def _on_frame(self, frame: int) -> None:
        if self.slider.value() != frame:
            self.slider.blockSignals(True)
            self.slider.setValue(frame)
            self.slider.blockSignals(False)
        seconds = frame / self.state.fps
        self.position.setText(f"frame {frame} / {self.state.last_frame}   {seconds:6.2f} s")

    def _on_playing(self, playing: bool) -> None:
        SP = QtWidgets.QStyle.StandardPixmap
        self.play_button.setIcon(self.style().standardIcon(SP.SP_MediaPause if playing else SP.SP_MediaPlay))
