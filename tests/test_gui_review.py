"""Drive the real main window under Xvfb: open a recording, scrub, play, 3D render, plot clicks, keys."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6 import QtCore, QtWidgets  # noqa: E402

from mvcapture.gui.app import destroy_now  # noqa: E402
from mvcapture.gui.heartbeat import EventLoopMonitor  # noqa: E402
from mvcapture.gui.main_window import MainWindow  # noqa: E402
from mvcapture.gui.synthetic import write_synthetic_session  # noqa: E402
from mvcapture.gui.theme import view_color  # noqa: E402
from mvcapture.gui.workers import run_task  # noqa: E402

K = QtCore.Qt.Key


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory):
    return write_synthetic_session(tmp_path_factory.mktemp("gui") / "walk", num_frames=60, image_size=(160, 120))


@pytest.fixture
def settings(tmp_path):
    return QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.resize(1100, 700)
    with qtbot.waitActive(w):  # window shortcuts need the active window
        w.show()
        w.activateWindow()
    yield w
    w.close()
    destroy_now(w)


def open_session(qtbot, window, path):
    with qtbot.waitSignal(window.source_opened, timeout=10_000):
        window.open_path(path)
    view = window.review_tab.view
    qtbot.waitUntil(lambda: all(p.image.image.shape[0] > 8 for p in view.panels), timeout=10_000)
    return view


def color_pixels(rgb: np.ndarray, color) -> int:
    return int((np.abs(rgb.astype(int) - np.array(color)).sum(axis=-1) < 40).sum())


def test_open_scrub_and_see_both_videos_and_overlays(qtbot, window, session_dir):
    view = open_session(qtbot, window, session_dir)
    assert window.tabs.currentWidget() is window.review_tab
    assert "walk" in window.windowTitle()
    view.timeline.slider.setValue(30)  # the user drags the slider
    assert view.state.frame == 30
    qtbot.waitUntil(lambda: view.presented_frame == 30, timeout=5000)  # drawn once its video frames are in
    xs, ys = view.panels[1].bones.getData()
    assert len(xs) == 32 and np.allclose(sorted(xs[:2]), sorted(view.analysis.kp2d[1, 30, [0, 1], 0]))
    first = view.panels[0].image.image.copy()
    view.state.seek(45)
    qtbot.waitUntil(lambda: np.abs(view.panels[0].image.image.astype(int) - first).mean() > 0.5, timeout=5000)
    assert "frame 45 / 59" in view.timeline.position.text()


def test_play_advances_and_pause_stops(qtbot, window, session_dir):
    view = open_session(qtbot, window, session_dir)
    view.timeline.play_button.click()
    assert view.state.playing
    qtbot.waitUntil(lambda: view.state.frame >= 5, timeout=5000)
    view.timeline.play_button.click()
    stopped_at = view.state.frame
    qtbot.wait(150)
    assert not view.state.playing and view.state.frame == stopped_at


def test_3d_view_renders_both_skeletons_in_their_colours(qtbot, window, session_dir):
    view = open_session(qtbot, window, session_dir)
    view.state.set_show_fused(False)  # the lifts aligned onto view 0, joints coloured by how far they disagree
    view.state.seek(10)
    qtbot.waitUntil(lambda: view.presented_frame == 10, timeout=5000)
    qtbot.wait(50)
    rgb = view.view3d.render_rgb()
    assert rgb.shape[0] > 100
    for v in range(2):
        assert color_pixels(rgb, view_color(v)) > 50, f"view {v}'s skeleton is not drawn"
    # the joints carry the disagreement colours (green = agree)
    assert color_pixels(rgb, (40, 200, 80)) + color_pixels(rgb, (250, 220, 40)) + color_pixels(rgb, (230, 30, 30)) > 20


def test_clicking_the_consistency_plot_jumps_to_that_frame(qtbot, window, session_dir):
    view = open_session(qtbot, window, session_dir)
    plot = view.frame_plot
    for target in (37, 12):
        scene_pos = plot.scene_pos_of_frame(target)
        widget_pos = plot.mapFromScene(scene_pos)
        qtbot.mouseClick(plot.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=widget_pos)
        qtbot.waitUntil(lambda: view.state.frame == target, timeout=2000)
    qtbot.waitUntil(lambda: view.presented_frame == 12, timeout=5000)
    assert plot.cursor.value() == 12
    assert view.joint_bars.bars.opts["height"][13] == pytest.approx(view.analysis.residual_mm[12, 13])


def test_clicking_a_joint_bar_selects_the_joint(qtbot, window, session_dir):
    view = open_session(qtbot, window, session_dir)
    bars = view.joint_bars
    pos = bars.mapFromScene(bars.getViewBox().mapViewToScene(QtCore.QPointF(13, 1.0)))
    qtbot.mouseClick(bars.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos)
    assert view.state.selected_joint == 13
    assert len(view.frame_plot.joint_curve.getData()[0]) == 60
    assert "l_wrist" in view.info.text()
    qtbot.mouseClick(bars.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos)
    assert view.state.selected_joint is None


def test_keyboard_shortcuts_step_seek_and_play(qtbot, window, session_dir):
    view = open_session(qtbot, window, session_dir)
    assert window.isActiveWindow(), "opening a recording must not lose the window's focus"
    qtbot.mouseClick(view.view3d, QtCore.Qt.MouseButton.LeftButton)  # clicking the 3D view keeps the keys
    qtbot.keyClick(window.focusWidget() or window, K.Key_Right)
    qtbot.keyClick(window.focusWidget() or window, K.Key_Right)
    assert view.state.frame == 2
    qtbot.keyClick(window, K.Key_Left)
    assert view.state.frame == 1
    qtbot.keyClick(window, K.Key_End)
    assert view.state.frame == 59
    qtbot.keyClick(window, K.Key_Home)
    assert view.state.frame == 0
    qtbot.keyClick(window, K.Key_Space)
    assert view.state.playing
    qtbot.keyClick(window, K.Key_Space)
    assert not view.state.playing
    window.tabs.setCurrentWidget(window.library_tab)
    qtbot.keyClick(window, K.Key_Right)
    assert view.state.frame == 0, "playback keys only act on the Review tab"


def test_sync_offset_spinbox_emits_intent_and_moves_the_video(qtbot, window, session_dir):
    view = open_session(qtbot, window, session_dir)
    view.state.seek(20)
    qtbot.waitUntil(lambda: view.panels[1].image.image.shape[0] > 8)
    before = view.panels[1].image.image.copy()
    with qtbot.waitSignal(window.review_tab.offset_changed) as blocker:
        view.offset_boxes[1].setValue(0.4)
    assert blocker.args == [1, pytest.approx(0.4)]
    assert view.state.offset_s(1) == pytest.approx(0.4)
    qtbot.waitUntil(lambda: np.abs(view.panels[1].image.image.astype(int) - before).mean() > 0.5, timeout=5000)
    assert "re-process" in window.statusBar().currentMessage()


def test_open_errors_show_a_message_not_a_crash(qtbot, window, tmp_path):
    window.open_path(tmp_path / "does-not-exist")
    qtbot.waitUntil(lambda: window.message_bar.isVisible(), timeout=5000)
    assert "nothing to open" in window.message_bar.label.text()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "analysis.npz").write_bytes(b"not a zip")
    window.open_path(tmp_path / "broken")
    qtbot.waitUntil(lambda: "re-run processing" in window.message_bar.label.text(), timeout=5000)
    assert window.review_tab.view is None


def test_layout_tab_and_last_session_are_remembered(qtbot, settings, session_dir):
    first = MainWindow(settings)
    qtbot.addWidget(first)
    first.resize(780, 560)  # inside the 800x600 Xvfb screen (restoring clamps to it)
    first.show()
    view = open_session(qtbot, first, session_dir)
    first.tabs.setCurrentIndex(2)
    first.tabs.setCurrentIndex(1)
    total = sum(view.splitter.sizes())
    view.splitter.setSizes([total // 4, total - total // 4])  # the user drags the plots up
    sizes = view.splitter.sizes()
    first.tabs.setCurrentIndex(3)
    first.close()
    second = MainWindow(settings)
    qtbot.addWidget(second)
    assert (second.width(), second.height()) == (780, 560)
    assert second.tabs.currentIndex() == 3
    second.show()
    with qtbot.waitSignal(second.source_opened, timeout=10_000):
        assert second.restore_last_session()
    assert second.review_tab.view.source.name == "walk"
    assert second.review_tab.view.splitter.sizes() == sizes, "the Review split is remembered"
    second.close()


def test_theme_follows_the_system_colour_scheme(qtbot, window):
    app = QtWidgets.QApplication.instance()
    hints = app.styleHints()  # Xvfb has no desktop theme: play the system announcing a switch
    try:
        hints.colorSchemeChanged.emit(QtCore.Qt.ColorScheme.Dark)
        assert window.theme.dark
        assert app.palette().color(app.palette().ColorRole.Window).lightness() < 100
        hints.colorSchemeChanged.emit(QtCore.Qt.ColorScheme.Light)
        assert not window.theme.dark
        assert app.palette().color(app.palette().ColorRole.Window).lightness() > 150
    finally:
        window.set_color_scheme()


def busy_cpu(seconds: float) -> int:
    """Pure-Python CPU work holding the GIL in short slices (like decoding, lifting glue code)."""
    import time

    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += sum(i * i for i in range(2000))
    return n


def measure_stalls(qtbot, drive, seconds: float = 1.5) -> EventLoopMonitor:
    """Run `drive()` on a timer while a worker thread burns CPU for `seconds`; returns the monitor."""
    monitor = EventLoopMonitor(interval_ms=10)
    done = []
    driver = QtCore.QTimer()
    driver.setInterval(80)  # a user holding an arrow key steps about 12 frames a second
    driver.timeout.connect(drive)
    monitor.start()
    run_task(busy_cpu, seconds, on_done=done.append)
    driver.start()
    qtbot.waitUntil(lambda: bool(done), timeout=10_000 + 1000 * seconds)
    driver.stop()
    monitor.stop()
    return monitor


def least_stalled(qtbot, drive, attempts: int = 3) -> EventLoopMonitor:
    """`measure_stalls` up to `attempts` times, stopping at the first run under 100 ms.

    The machine is shared: another process can take the CPU from the whole test for 100 ms and more.
    A GUI that blocks its own event loop fails every attempt; a load spike does not last through all.
    """
    runs = []
    for _ in range(attempts):
        runs.append(measure_stalls(qtbot, drive))
        if runs[-1].worst_stall_ms < 100:
            break
    print(f"\nworst stall per attempt: {[round(m.worst_stall_ms, 1) for m in runs]} ms")
    best = min(runs, key=lambda m: m.worst_stall_ms)
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    if best.worst_stall_ms >= 100 and load > 2:
        pytest.skip(f"machine overloaded (load {load:.1f} per core): worst stalls "
                    f"{[round(m.worst_stall_ms) for m in runs]} ms say nothing about the GUI")
    return best


def test_gui_stays_responsive_while_stepping_and_a_worker_computes(qtbot, window, session_dir, record_property):
    view = open_session(qtbot, window, session_dir)
    qtbot.wait(200)  # first paints done
    monitor = least_stalled(qtbot, lambda: view.state.step(1))
    record_property("worst_stall_ms", monitor.worst_stall_ms)
    print(f"\nworst GUI event-loop stall while stepping frames + worker CPU load: {monitor.worst_stall_ms:.1f} ms "
          f"({monitor.beats} beats); stalls > 20 ms at (s, ms): "
          f"{[(round(t, 2), round(ms)) for t, ms in monitor.stalls]}")
    assert view.state.frame >= 10, "the frames did not advance"
    assert monitor.beats > 10
    assert monitor.worst_stall_ms < 100, f"GUI thread stalled {monitor.worst_stall_ms:.0f} ms"


def test_gui_stays_responsive_while_playing_and_a_worker_computes(qtbot, window, session_dir, record_property):
    """Playback redraws everything 25 times a second, the worker burns CPU meanwhile."""
    view = open_session(qtbot, window, session_dir)
    qtbot.wait(200)
    view.state.play()
    monitor = least_stalled(qtbot, lambda: None)
    view.state.pause()
    record_property("worst_playback_stall_ms", monitor.worst_stall_ms)
    print(f"\nworst GUI event-loop stall while playing + worker CPU load: {monitor.worst_stall_ms:.1f} ms "
          f"({monitor.beats} beats, frame {view.state.frame})")
    assert view.state.frame > 10
    assert monitor.worst_stall_ms < 100, f"GUI thread stalled {monitor.worst_stall_ms:.0f} ms"


def test_the_installed_qt_binding_keeps_reference_counts_sound():
    from mvcapture.gui.qt_check import check_qt_binding, none_refcount_drift

    assert none_refcount_drift() == 0
    check_qt_binding()


def test_task_callbacks_skip_widgets_that_are_gone(qtbot):
    import time

    from PySide6 import QtWidgets

    widget = QtWidgets.QLabel()
    calls, ended = [], []
    task = run_task(lambda: time.sleep(0.3) or 1, on_done=calls.append, owner=widget)
    task.done.connect(lambda: ended.append(1))
    widget.deleteLater()
    qtbot.waitUntil(lambda: bool(ended), timeout=5000)
    assert calls == []
    run_task(lambda: 2, on_done=calls.append)
    qtbot.waitUntil(lambda: calls == [2], timeout=5000)


def test_an_unexpected_error_in_a_slot_is_shown_and_logged_not_lost(qtbot, window, tmp_path, caplog):
    """The app's sys.excepthook (installed by gui.app.run): Qt only prints a slot's exception to stderr."""
    from mvcapture.gui.app import report_unexpected_error

    try:
        raise ZeroDivisionError("division by zero in a slot")
    except ZeroDivisionError as exc:
        with caplog.at_level("ERROR", logger="mvcapture.gui.app"):
            report_unexpected_error(window, type(exc), exc, exc.__traceback__)
    assert window.message_bar.isVisible()
    text = window.message_bar.label.text()
    assert "Something went wrong: ZeroDivisionError: division by zero in a slot" in text and "mvcapture.log" in text
    assert caplog.records and caplog.records[-1].exc_info[0] is ZeroDivisionError


# -- the two-view (fused) skeleton -------------------------------------------------------------------------

def test_fused_skeleton_toggles_with_the_box_and_the_key_and_is_remembered(qtbot, window, session_dir, settings):
    from mvcapture.gui.theme import FUSED_COLOR

    view = open_session(qtbot, window, session_dir)
    view.state.seek(33)  # view 1's bad stretch: its lift is well off the fused skeleton
    qtbot.waitUntil(lambda: view.presented_frame == 33, timeout=5000)
    qtbot.wait(50)
    assert view.fused_box.isEnabled() and view.fused_box.isChecked() and not view.fused_hint.isVisible()
    shown = view.view3d.render_rgb()
    assert color_pixels(shown, FUSED_COLOR) > 30, "the fused skeleton is not drawn"
    for v in range(2):
        assert color_pixels(shown, view_color(v)) > 30, f"view {v}'s lift is not drawn beside it"
    assert "two-view 3D" in view.legend3d.text() and "joints off it" in view.legend3d.text()
    view.fused_box.click()
    assert not view.state.show_fused
    qtbot.wait(50)
    hidden = view.view3d.render_rgb()
    assert color_pixels(hidden, FUSED_COLOR) == 0 and color_pixels(hidden, view_color(1)) > 30
    assert "two-view 3D" not in view.legend3d.text()
    assert str(settings.value("review/show_fused")).lower() == "false"
    qtbot.keyClick(window, K.Key_F)
    assert view.state.show_fused and view.fused_box.isChecked()
    qtbot.wait(50)
    assert color_pixels(view.view3d.render_rgb(), FUSED_COLOR) > 30
    qtbot.keyClick(window, K.Key_F)
    assert not view.fused_box.isChecked()
    again = open_session(qtbot, window, session_dir)
    assert not again.state.show_fused and not again.fused_box.isChecked(), "the choice is remembered"


def test_plots_show_each_views_error_against_the_fused_track(qtbot, window, session_dir):
    view = open_session(qtbot, window, session_dir)
    a = view.analysis
    curves = view.frame_plot.fused_curves
    assert len(curves) == 2
    for v, curve in enumerate(curves):
        xs, ys = curve.getData()
        assert len(xs) == 60
        np.testing.assert_allclose(ys[5], np.nanmean(a.fused_error_mm[v, 5]), rtol=1e-5)
        assert curve.opts["pen"].color().getRgb()[:3] == view_color(v)
    assert np.nanmean(curves[1].getData()[1][30:37]) > 3 * np.nanmean(curves[0].getData()[1][30:37])
    view.state.seek(33)
    qtbot.waitUntil(lambda: view.presented_frame == 33, timeout=5000)
    for v, bars in enumerate(view.joint_bars.fused_bars):
        np.testing.assert_allclose(bars.opts["height"], np.nan_to_num(a.fused_error_mm[v, 33]), rtol=1e-5)
    assert view.joint_bars.bars.opts["height"][13] == pytest.approx(a.residual_mm[33, 13])
    assert "vs two-view 3D: view 0" in view.info.text()
    assert "(two-view geometry)" in view.angle_labels[0].text()


def test_a_session_processed_before_the_fused_track_still_opens(qtbot, window, tmp_path):
    from mvcapture.gui.state import FUSED_HINT
    from mvcapture.gui.theme import FUSED_COLOR

    old = write_synthetic_session(tmp_path / "old", num_frames=20, image_size=(160, 120), fused=False)
    view = open_session(qtbot, window, old)
    view.state.seek(5)
    qtbot.waitUntil(lambda: view.presented_frame == 5, timeout=5000)
    assert not view.scene.has_fused and not view.fused_box.isEnabled() and not view.fused_box.isChecked()
    assert view.fused_hint.isVisible() and FUSED_HINT in view.fused_hint.text()
    assert view.frame_plot.fused_curves == [] and view.joint_bars.fused_bars == []
    assert "(lifter)" in view.angle_labels[0].text()
    qtbot.keyClick(window, K.Key_F)  # no effect on what is drawn
    qtbot.wait(50)
    rgb = view.view3d.render_rgb()
    assert color_pixels(rgb, FUSED_COLOR) == 0
    for v in range(2):
        assert color_pixels(rgb, view_color(v)) > 50
