"""Dark / light theme that follows the system colour scheme (Qt 6.5+), for widgets and pyqtgraph views.

Colours with a meaning (one per camera view, the disagreement colour map) are defined here once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

# One colour per camera view (RGB 0-255): orange and blue stay apart for colour-blind users.
VIEW_COLORS = ((255, 140, 0), (30, 144, 255), (200, 60, 200), (60, 200, 90))
# The fused (two-view) skeleton: violet, apart from the views' colours and the disagreement scale; its joints
# that were not triangulated (filled from one view's lift) in a pale tint.
FUSED_COLOR = (140, 80, 235)
FUSED_FILLED_COLOR = (205, 185, 250)
# Joint disagreement colour map: low (green) -> high (red), in mm (values at/above the top are red).
DISAGREEMENT_STOPS_MM = (0.0, 50.0, 100.0)
_DISAGREEMENT_COLORS = np.array([(40, 200, 80), (250, 220, 40), (230, 30, 30)], float)


def view_color(view: int) -> tuple[int, int, int]:
    return VIEW_COLORS[view % len(VIEW_COLORS)]


def disagreement_rgba(residual_mm: np.ndarray) -> np.ndarray:
    """(...,) residuals in mm -> (..., 4) RGBA floats in [0, 1] on the green-yellow-red scale."""
    r = np.nan_to_num(np.asarray(residual_mm, float), nan=0.0)
    stops = np.asarray(DISAGREEMENT_STOPS_MM)
    rgb = np.stack([np.interp(r, stops, _DISAGREEMENT_COLORS[:, c]) for c in range(3)], axis=-1) / 255.0
    return np.concatenate([rgb, np.ones(r.shape + (1,))], axis=-1)


@dataclass(frozen=True)
class Theme:
    dark: bool
    background: tuple[int, int, int]
    foreground: tuple[int, int, int]
    view3d_background: tuple[int, int, int]
    grid: tuple[int, int, int, int]


DARK = Theme(True, (30, 31, 34), (220, 220, 220), (22, 23, 26), (110, 110, 120, 160))
LIGHT = Theme(False, (250, 250, 250), (30, 30, 30), (236, 238, 242), (120, 120, 130, 160))


def system_is_dark(app: QtGui.QGuiApplication, scheme: QtCore.Qt.ColorScheme | None = None) -> bool:
    """Whether to use the dark theme: the given or the system's scheme, else the platform palette."""
    scheme = app.styleHints().colorScheme() if scheme is None else scheme
    if scheme == QtCore.Qt.ColorScheme.Unknown:  # no hint from the platform: judge its palette
        return app.style().standardPalette().color(QtGui.QPalette.ColorRole.Window).lightness() < 128
    return scheme == QtCore.Qt.ColorScheme.Dark


def _dark_palette() -> QtGui.QPalette:
    p = QtGui.QPalette()
    C, R = QtGui.QColor, QtGui.QPalette.ColorRole
    for role, color in {
        R.Window: C(45, 46, 50), R.WindowText: C(220, 220, 220), R.Base: C(30, 31, 34),
        R.AlternateBase: C(52, 53, 58), R.ToolTipBase: C(60, 60, 64), R.ToolTipText: C(230, 230, 230),
        R.Text: C(220, 220, 220), R.Button: C(56, 57, 62), R.ButtonText: C(220, 220, 220),
        R.BrightText: C(255, 90, 90), R.Link: C(80, 160, 255), R.Highlight: C(50, 120, 210),
        R.HighlightedText: C(255, 255, 255), R.PlaceholderText: C(140, 140, 140),
    }.items():
        p.setColor(role, color)
    for role in (R.Text, R.WindowText, R.ButtonText):
        p.setColor(QtGui.QPalette.ColorGroup.Disabled, role, C(120, 120, 120))
    return p


def apply_theme(app: QtWidgets.QApplication, scheme: QtCore.Qt.ColorScheme | None = None) -> Theme:
    """Style the application after `scheme` (default: the system's); returns the theme for custom views."""
    theme = DARK if system_is_dark(app, scheme) else LIGHT
    app.setStyle("Fusion")
    app.setPalette(_dark_palette() if theme.dark else app.style().standardPalette())
    pg.setConfigOptions(background=theme.background, foreground=theme.foreground, antialias=False)
    return theme


def restyle_plots(root: QtWidgets.QWidget, theme: Theme) -> None:
    """Apply `theme` to every pyqtgraph plot under `root` (those made before a scheme switch)."""
    fg = pg.mkColor(theme.foreground)
    for view in root.findChildren(pg.GraphicsView):
        view.setBackground(theme.background)
    for plot in root.findChildren(pg.PlotWidget):
        item = plot.getPlotItem()
        for name in ("left", "bottom", "right", "top"):
            axis = item.getAxis(name)
            axis.setPen(fg)
            axis.setTextPen(fg)
        if item.titleLabel.text:
            item.titleLabel.setText(item.titleLabel.text, color=fg)
    for layout in root.findChildren(pg.GraphicsLayoutWidget):
        for item in layout.ci.items:
            if isinstance(item, pg.LabelItem):
                item.setText(item.text, color=fg)
