"""The viewer driven as a user would: keys, wheel, right-drag, presets, zoom (offscreen Qt)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from workstation.core.windowing import CT_PRESETS, WindowLevel
from workstation.render.windowing import WindowRenderer

pytestmark = pytest.mark.ui


def rendered_expected(window, k):
    viewer = window.viewer
    return WindowRenderer(viewer.volume.array.dtype).render(viewer.volume.array[k], viewer.window)


def test_opens_first_series_at_its_own_window_with_hu(window, small_study):
    viewer = window.viewer
    assert viewer.volume.fully_loaded
    np.testing.assert_array_equal(viewer.volume.array, small_study.phantom.hu)
    # the images' own first WindowCenter/Width (mediastinum 40/400) opens the series
    assert (viewer.window.center, viewer.window.width) == (40, 400)
    assert viewer.frame_index == 20  # the middle slice
    np.testing.assert_array_equal(viewer.current_image(), rendered_expected(window, 20))
    assert "Im 21/40" in viewer.corners["bl"].text()
    assert "W 400  L 40" in viewer.corners["br"].text()
    assert "PHANTOM" in viewer.corners["tl"].text()


def test_keys_scroll_and_presets(window, qtbot):
    viewer = window.viewer
    qtbot.keyClick(viewer, Qt.Key.Key_Down)
    assert viewer.frame_index == 21
    qtbot.keyClick(viewer, Qt.Key.Key_PageDown)
    assert viewer.frame_index == 31
    qtbot.keyClick(viewer, Qt.Key.Key_PageDown)
    assert viewer.frame_index == 39  # clamped at the last slice
    qtbot.keyClick(viewer, Qt.Key.Key_Home)
    assert viewer.frame_index == 0 and viewer.slider.value() == 0
    qtbot.keyClick(viewer, Qt.Key.Key_Up)
    assert viewer.frame_index == 0
    for number, preset in enumerate(CT_PRESETS, start=1):
        qtbot.keyClick(viewer, getattr(Qt.Key, f"Key_{number}"))
        assert viewer.window == preset
        np.testing.assert_array_equal(viewer.current_image(), rendered_expected(window, 0))
    qtbot.keyClick(viewer, Qt.Key.Key_0)
    assert viewer.window == viewer.initial_window


def test_slider_and_preset_box(window):
    viewer = window.viewer
    viewer.slider.setValue(5)
    assert viewer.frame_index == 5
    names = [viewer.preset_box.itemText(i) for i in range(viewer.preset_box.count())]
    assert names[0].startswith("MEDIASTINUM") and names[1].startswith("LUNG")
    assert [n.split("  ")[0] for n in names[2:]] == [p.name for p in CT_PRESETS]
    viewer.preset_box.activated.emit(1)
    assert (viewer.window.center, viewer.window.width) == (-600, 1500)


def _wheel(widget, delta: int, modifiers=Qt.KeyboardModifier.NoModifier):
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(0, 0), QPoint(0, delta),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_wheel_scrolls_and_ctrl_wheel_zooms(window):
    viewer = window.viewer
    start = viewer.frame_index
    _wheel(viewer.view.viewport(), -120)
    assert viewer.frame_index == start + 1
    _wheel(viewer.view.viewport(), 120)
    _wheel(viewer.view.viewport(), 120)
    assert viewer.frame_index == start - 1
    zoom = viewer.zoom()
    _wheel(viewer.view.viewport(), 120, Qt.KeyboardModifier.ControlModifier)
    assert viewer.zoom() > zoom * 1.05
    assert viewer.frame_index == start - 1


def _mouse(widget, kind, pos, button, buttons):
    event = QMouseEvent(kind, QPointF(pos), widget.mapToGlobal(QPointF(pos)), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def _drag(qtbot, widget, start, delta, button):
    """Press, move in ten steps (pyqtgraph rate-limits moves), release."""
    _mouse(widget, QMouseEvent.Type.MouseButtonPress, start, button, button)
    for step in range(1, 11):
        _mouse(widget, QMouseEvent.Type.MouseMove, start + delta * step / 10, Qt.MouseButton.NoButton, button)
        qtbot.wait(5)
    _mouse(widget, QMouseEvent.Type.MouseButtonRelease, start + delta, button, Qt.MouseButton.NoButton)


def test_right_drag_changes_window_left_drag_pans(window, qtbot):
    viewer = window.viewer
    port = viewer.view.viewport()
    before = viewer.window
    image_before = viewer.current_image().copy()
    start = QPoint(port.width() // 2, port.height() // 2)
    _drag(qtbot, port, start, QPoint(80, 40), Qt.MouseButton.RightButton)
    assert viewer.window.width > before.width  # dragged right: wider
    assert viewer.window.center > before.center  # dragged down: higher level
    assert not np.array_equal(viewer.current_image(), image_before)
    assert f"W {viewer.window.width:.0f}" in viewer.corners["br"].text()

    x_range = viewer.viewbox.viewRange()[0]
    _drag(qtbot, port, start, QPoint(100, 0), Qt.MouseButton.LeftButton)
    moved = viewer.viewbox.viewRange()[0]
    assert moved[0] < x_range[0] - 10  # panned: the view moved left in mm
    assert viewer.window.width > before.width  # left drag did not touch the window


def test_zoom_keys_fit_and_reset(window, qtbot):
    viewer = window.viewer
    viewer.fit()
    fitted = viewer.zoom()
    qtbot.keyClick(viewer, Qt.Key.Key_Plus)
    assert viewer.zoom() == pytest.approx(fitted * 1.25, rel=0.02)
    assert f"Zoom {viewer.zoom():.2f}x" in viewer.corners["br"].text()
    qtbot.keyClick(viewer, Qt.Key.Key_Minus)
    qtbot.keyClick(viewer, Qt.Key.Key_Minus)
    assert viewer.zoom() < fitted
    viewer.set_window(WindowLevel(300, 50))
    qtbot.keyClick(viewer, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)  # R rejects a finding now
    assert viewer.zoom() == pytest.approx(fitted, rel=0.02)
    assert viewer.window == viewer.initial_window


def test_pixel_aspect_follows_pixel_spacing(window):
    """The image item spans columns*col_spacing by rows*row_spacing mm, so pixels are not assumed square."""
    viewer = window.viewer
    rect = viewer.image_item.mapRectToParent(viewer.image_item.boundingRect())
    rows, cols = viewer.volume.array.shape[1:]
    row_mm, col_mm = viewer.volume.pixel_spacing
    assert rect.width() == pytest.approx(cols * col_mm)
    assert rect.height() == pytest.approx(rows * row_mm)


@pytest.fixture
def held_window(qtbot, small_study, monkeypatch):
    """A window whose decoding pauses after each instance until `gate` is set (a slow disk, on demand)."""
    import workstation.ui.main_window as main_window
    from workstation.services.loading import SeriesLoad

    gate = threading.Event()

    class HeldLoad(SeriesLoad):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.progress.connect(lambda _done, _total: gate.wait(20))  # after frames_ready reached the UI

    monkeypatch.setattr(main_window, "SeriesLoad", HeldLoad)
    win = main_window.MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.open_paths([str(small_study.directory)])
    qtbot.waitUntil(lambda: win.viewer.volume is not None and win.viewer.window is not None, timeout=20_000)
    yield win, gate
    gate.set()


def test_first_slice_is_shown_before_the_rest_is_decoded(qtbot, held_window):
    """Decoding is held after the first instance: the start slice must already be on screen."""
    win, gate = held_window
    viewer = win.viewer
    assert int(viewer.volume.loaded.sum()) == 1
    assert viewer.current_image().max() > 0  # a real slice, not the blank placeholder
    assert "loaded 1/40" in viewer.corners["bl"].text()
    assert win.progress.isVisible() and win.cancel_button.isVisible()
    qtbot.keyClick(viewer, Qt.Key.Key_Down)  # the UI answers while decoding waits
    assert viewer.frame_index == 21 and viewer.message.text() == "Loading…"
    gate.set()
    # the volume is filled on the loading thread; the viewer hears of it through a queued signal
    qtbot.waitUntil(lambda: viewer.volume.fully_loaded and viewer.message.text() == "", timeout=20_000)
    assert viewer.current_image().max() > 0 and viewer.frame_index == 21


def test_cancel_stops_decoding_and_keeps_what_was_decoded(qtbot, held_window):
    win, gate = held_window
    with qtbot.waitSignal(win.seriesLoaded, timeout=20_000):
        win.cancel_button.click()
        gate.set()
    assert 1 <= int(win.viewer.volume.loaded.sum()) < 40
    assert "cancelled" in win.status_label.text()
    assert not win.progress.isVisible()


def test_clicking_the_image_gives_the_viewer_the_keyboard(window, qtbot):
    window.browser.setFocus()
    qtbot.waitUntil(lambda: window.browser.hasFocus(), timeout=2000)
    port = window.viewer.view.viewport()
    qtbot.mouseClick(port, Qt.MouseButton.LeftButton, pos=QPoint(port.width() // 2, port.height() // 2))
    assert window.viewer.hasFocus()
    start = window.viewer.frame_index
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Down)
    assert window.viewer.frame_index == start + 1
