"""File → Set lens intrinsics… in the real window (pytest-qt under Xvfb): the GUI only hands the chosen
CAM.json to Session.set_intrinsics and shows what the session layer says."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")
from PySide6 import QtCore, QtWidgets  # noqa: E402

from mvcapture.geometry.intrinsics import save_intrinsics  # noqa: E402
from mvcapture.gui.app import destroy_now  # noqa: E402
from mvcapture.gui.main_window import MainWindow  # noqa: E402
from mvcapture.gui.synthetic import create_synthetic_session  # noqa: E402
from mvcapture.session import Session  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings, finetune_config="tiny")
    qtbot.addWidget(w)
    w.resize(1000, 650)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()
    destroy_now(w)


def test_set_lens_intrinsics_from_the_file_menu(qtbot, window, tmp_path, monkeypatch):
    window.intrinsics_action.trigger()  # nothing open yet: says what to do
    assert "open a session first" in window.message_bar.label.text() and window.message_bar.isVisible()
    session = create_synthetic_session("lenses", num_frames=30, image_size=(160, 120))
    with qtbot.waitSignal(window.source_opened, timeout=10_000):
        window.open_path(session.path)
    lens = save_intrinsics(tmp_path / "cam.json", {"fx": 140.0, "fy": 140.0, "cx": 80.0, "cy": 60.0,
                                                   "dist": [0.0] * 5, "image_size": [160, 120], "rms_px": 0.3})
    asked = []

    def get_item(parent, title, label, items, current, editable):
        asked.append(list(items))
        return "view 1", True

    monkeypatch.setattr(QtWidgets.QInputDialog, "getItem", staticmethod(get_item))
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(lens), "")))
    window.intrinsics_action.trigger()
    qtbot.waitUntil(lambda: Session.open(session.path).intrinsics(1) is not None, timeout=5000)
    assert asked == [["view 0", "view 1"]] and Session.open(session.path).intrinsics(0) is None
    qtbot.waitUntil(lambda: "lens intrinsics from cam.json set (fx 140 px)" in window.statusBar().currentMessage(),
                    timeout=3000)
    bad = tmp_path / "bad.json"
    bad.write_text('{"fx": 140}')
    window.message_bar.hide()
    window.set_view_intrinsics(0, bad)
    qtbot.waitUntil(lambda: window.message_bar.isVisible(), timeout=5000)
    assert "bad.json: missing key 'fy'" in window.message_bar.label.text()
    assert Session.open(session.path).intrinsics(0) is None
