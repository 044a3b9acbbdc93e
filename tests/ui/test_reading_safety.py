"""Issue 11, review safety: what the reader sees must be true (offscreen Qt, a real window).

The value under the cursor, the window box, readable corner text, orientation
markers, overlay planes, one zoom reading, resumable loading, zoom keys
anywhere, one decode count, and person names without empty components.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from overlay_files import overlay_bits, write_overlay_image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QLineEdit
from pydicom.data import get_testdata_file

from workstation.core.windowing import CT_PRESETS, WindowLevel
from workstation.demo import write_demo_study

pytestmark = pytest.mark.ui


# ----- helpers

def _send_mouse(widget, kind, pos: QPointF, button=Qt.MouseButton.NoButton, buttons=Qt.MouseButton.NoButton):
    event = QMouseEvent(kind, QPointF(pos), widget.mapToGlobal(QPointF(pos)), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def _wheel(widget, delta: int):
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(0, 0), QPoint(0, delta), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def _widget_pos(viewer, row: int, col: int) -> QPointF:
    """Where the centre of image pixel (row, col) is in the view's viewport."""
    row_mm, col_mm = viewer.volume.pixel_spacing
    scene = viewer.viewbox.mapViewToScene(QPointF((col + 0.5) * col_mm, (row + 0.5) * row_mm))
    return QPointF(viewer.view.mapFromScene(scene))


def _hover(viewer, row: int, col: int) -> None:
    _send_mouse(viewer.view.viewport(), QMouseEvent.Type.MouseMove, _widget_pos(viewer, row, col))


def _shown_value(viewer) -> str | None:
    lines = [line for line in viewer.corners["bl"].text().splitlines() if line.startswith("(")]
    return lines[0].split(": ", 1)[1] if lines else None


def _loaded_numbers(text: str) -> str:
    """'Decoding 7/40 frames…' or '... (loaded 7/40)' -> '7/40'."""
    import re

    found = re.search(r"(\d+/\d+)", text.split("loaded")[-1])
    return found.group(1) if found else ""


def _open(qtbot, paths, size=(1200, 800)):
    from workstation.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(*size)
    win.show()
    with qtbot.waitSignal(win.seriesLoaded, timeout=30_000):
        win.open_paths([str(p) for p in paths])
    return win


@pytest.fixture
def stepped_window(qtbot, small_study, monkeypatch):
    """A window whose decoding waits after each instance until the test lets one more through."""
    import workstation.ui.main_window as main_window
    from workstation.services.loading import SeriesLoad

    steps = threading.Semaphore(0)
    stop = threading.Event()

    class SteppedLoad(SeriesLoad):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.progress.connect(lambda _d, _t: stop.is_set() or steps.acquire(timeout=20))  # after framesReady went out

    monkeypatch.setattr(main_window, "SeriesLoad", SteppedLoad)
    win = main_window.MainWindow()
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    win.open_paths([str(small_study.directory)])
    qtbot.waitUntil(lambda: win.viewer.volume is not None and win.viewer.window is not None, timeout=20_000)
    yield win, steps
    stop.set()
    for _ in range(50):
        steps.release()


# ----- the value under the cursor

def test_value_under_a_still_mouse_follows_the_slice(window, qtbot):
    viewer = window.viewer
    volume = viewer.volume
    k = viewer.frame_index
    changing = np.argwhere(volume.array[k] != volume.array[k + 1])
    row, col = (int(v) for v in changing[len(changing) // 2])
    _hover(viewer, row, col)
    assert _shown_value(viewer) == f"{volume.array[k, row, col]:g} HU"
    _wheel(viewer.view.viewport(), -120)  # next slice, the mouse does not move
    assert viewer.frame_index == k + 1
    assert f"({col}, {row})" in viewer.corners["bl"].text()
    assert _shown_value(viewer) == f"{volume.array[k + 1, row, col]:g} HU"
    qtbot.keyClick(viewer, Qt.Key.Key_Up)
    assert _shown_value(viewer) == f"{volume.array[k, row, col]:g} HU"


def test_no_value_over_a_slice_not_yet_decoded(stepped_window, qtbot):
    win, steps = stepped_window
    viewer = win.viewer
    k = viewer.frame_index
    _hover(viewer, 128, 128)
    assert _shown_value(viewer) == f"{viewer.volume.array[k, 128, 128]:g} HU"
    qtbot.keyClick(viewer, Qt.Key.Key_Down)
    assert viewer.message.text() == "Loading…"
    assert _shown_value(viewer) is None and "HU" not in viewer.corners["bl"].text()
    # once that slice arrives, the value appears without moving the mouse
    for _ in range(40):
        if viewer.volume.loaded[k + 1]:
            break
        steps.release()
        qtbot.wait(10)
    qtbot.waitUntil(lambda: viewer.message.text() == "", timeout=5000)
    assert _shown_value(viewer) == f"{viewer.volume.array[k + 1, 128, 128]:g} HU"


# ----- one current window

def _drag(qtbot, widget, start: QPoint, delta: QPoint, button):
    _send_mouse(widget, QMouseEvent.Type.MouseButtonPress, QPointF(start), button, button)
    for step in range(1, 11):
        _send_mouse(widget, QMouseEvent.Type.MouseMove, QPointF(start + delta * step / 10), Qt.MouseButton.NoButton, button)
        qtbot.wait(5)
    _send_mouse(widget, QMouseEvent.Type.MouseButtonRelease, QPointF(start + delta), button, Qt.MouseButton.NoButton)


def test_window_box_names_the_window_on_screen(window, qtbot):
    viewer, box = window.viewer, window.viewer.preset_box
    assert box.currentText().startswith("MEDIASTINUM")
    for number, preset in enumerate(CT_PRESETS, start=1):
        qtbot.keyClick(viewer, getattr(Qt.Key, f"Key_{number}"))
        assert viewer.window == preset and box.currentData() == preset
        assert box.currentText().startswith(preset.name)
        assert f"L {preset.center:.0f}  {preset.name}" in viewer.corners["br"].text()
    qtbot.keyClick(viewer, Qt.Key.Key_0)
    assert box.currentText().startswith("MEDIASTINUM") and box.currentData() == viewer.initial_window

    port = viewer.view.viewport()
    _drag(qtbot, port, QPoint(port.width() // 2, port.height() // 2), QPoint(60, 30), Qt.MouseButton.RightButton)
    assert viewer.window != viewer.initial_window
    assert box.currentText().startswith("Custom") and box.currentData() == viewer.window
    assert f"W {viewer.window.width:g} / L {viewer.window.center:g}" in box.currentText()
    count = box.count()
    _drag(qtbot, port, QPoint(port.width() // 2, port.height() // 2), QPoint(20, 0), Qt.MouseButton.RightButton)
    assert box.count() == count and box.currentData() == viewer.window  # one custom entry, updated

    lung = next(i for i in range(box.count()) if box.itemText(i).startswith("LUNG"))
    box.activated.emit(lung)  # picked in the box
    assert viewer.window == box.currentData() and "LUNG" in viewer.corners["br"].text()
    assert not any(box.itemText(i).startswith("Custom") for i in range(box.count()))
    qtbot.keyClick(viewer, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert box.currentData() == viewer.window == viewer.initial_window


# ----- readable text on a bright image

def test_corner_text_has_a_dark_outline_on_a_bright_image(window, qtbot, tmp_path):
    viewer = window.viewer
    viewer.set_window(WindowLevel(-900, 10))  # everything but air is white
    viewer.zoom_by(3.0)  # the body fills the view, under every corner
    qtbot.wait(20)
    shot = viewer.view.grab()
    shot.save(str(tmp_path / "bright.png"))
    image = shot.toImage()
    label = viewer.corners["bl"]
    grey = np.array([[image.pixelColor(x, y).value() for x in range(label.x(), label.x() + label.width())]
                     for y in range(label.y(), label.y() + label.height())])
    # around the glyphs: white image, light text and a dark outline between them
    assert (grey > 200).mean() > 0.3
    assert (grey < 60).sum() > 150  # the outline (plain light text on white would have none)
    background = np.array([[image.pixelColor(x, y).value() for x in range(label.x(), label.x() + label.width())]
                           for y in range(label.y() - 30, label.y() - 10)])
    assert background.mean() > 200  # the text really sits on a bright part of the image


# ----- orientation markers

def test_orientation_markers_on_an_axial_ct(window):
    viewer = window.viewer
    markers = {edge: label.text() for edge, label in viewer.markers.items()}
    assert markers == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    w, h = viewer.view.width(), viewer.view.height()
    left, right, top, bottom = (viewer.markers[e].geometry() for e in ("left", "right", "top", "bottom"))
    assert left.x() < 20 and abs(left.center().y() - h / 2) <= 2
    assert right.right() > w - 20 and abs(right.center().y() - h / 2) <= 2
    assert top.y() < h / 4 and abs(top.center().x() - w / 2) <= 2
    assert bottom.bottom() > h * 3 / 4 and abs(bottom.center().x() - w / 2) <= 2
    assert all(m.isVisible() for m in viewer.markers.values())
    # never under the corner text (a narrow view moves the letter inwards rather than overlap)
    assert not any(m.geometry().intersects(c.geometry()) for m in viewer.markers.values() for c in viewer.corners.values())


def test_orientation_markers_of_a_radiograph_come_from_patient_orientation(qtbot):
    win = _open(qtbot, [get_testdata_file("RG1_UNCR.dcm", download=False)])  # PatientOrientation L \ F
    assert {e: m.text() for e, m in win.viewer.markers.items()} == {"left": "R", "right": "L", "top": "H", "bottom": "F"}


def test_no_markers_without_orientation(qtbot, tmp_path):
    from fixtures_data import write_image

    path = write_image(tmp_path / "sc.dcm", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    win = _open(qtbot, [path])
    assert all(m.text() == "" for m in win.viewer.markers.values())


# ----- overlay planes

def _pixel(viewer, row: int, col: int) -> tuple[int, int, int]:
    image = viewer.view.grab().toImage()
    pos = _widget_pos(viewer, row, col).toPoint()
    colour = image.pixelColor(pos)
    return colour.red(), colour.green(), colour.blue()


def test_overlay_planes_are_drawn_and_can_be_hidden(qtbot, tmp_path):
    pixels = np.full((64, 64), 100, np.uint16)  # a flat grey image
    bits = overlay_bits(64, 64, (20, 10, 30, 40))
    path = write_overlay_image(tmp_path / "ov.dcm", pixels, bits, WindowCenter="100", WindowWidth="400")
    win = _open(qtbot, [path])
    viewer = win.viewer
    assert 0 in viewer.volume.overlays
    qtbot.wait(20)
    red, green, blue = _pixel(viewer, 25, 25)  # inside the overlay
    assert red > 200 and blue > 200 and green < 120  # the overlay colour (magenta), not grey
    grey = _pixel(viewer, 45, 25)  # outside it
    assert grey[0] == grey[1] == grey[2]

    action = win.overlay_planes_action
    assert action.isCheckable() and action.isChecked()
    assert action in win.menuBar().actions()[1].menu().actions()  # View menu
    action.trigger()
    assert not viewer.planes_item.isVisible()
    red, green, blue = _pixel(viewer, 25, 25)
    assert red == green == blue  # the image itself again
    action.trigger()
    assert _pixel(viewer, 25, 25)[1] < 120


def test_siemens_mr_marked_lesion_overlay(qtbot, tmp_path):
    win = _open(qtbot, [get_testdata_file("MR-SIEMENS-DICOM-WithOverlays.dcm", download=False)])
    viewer = win.viewer
    plane = viewer.volume.overlays[0][0]
    rows, cols = np.nonzero(plane.bits)
    qtbot.wait(20)
    viewer.view.grab().save(str(tmp_path / "mr-overlay.png"))
    colours = [_pixel(viewer, plane.top + r, plane.left + c) for r, c in list(zip(rows, cols))[::40]]
    assert sum(1 for r, g, b in colours if r > 200 and b > 200 and g < 120) >= len(colours) // 2


# ----- one zoom reading

def test_zoom_reads_the_same_at_open_and_after_reset(window, qtbot):
    viewer = window.viewer
    qtbot.wait(50)
    zoom_text = [line for line in viewer.corners["br"].text().splitlines() if line.startswith("Zoom")]
    view_range = viewer.viewbox.viewRange()
    # the definition: screen pixels per image pixel
    image_pixels_across = (view_range[0][1] - view_range[0][0]) / viewer.volume.pixel_spacing[1]
    assert viewer.zoom() == pytest.approx(viewer.viewbox.width() / image_pixels_across)
    qtbot.keyClick(viewer, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    qtbot.wait(50)
    assert [line for line in viewer.corners["br"].text().splitlines() if line.startswith("Zoom")] == zoom_text
    np.testing.assert_allclose(viewer.viewbox.viewRange(), view_range)


def test_zoom_text_follows_a_resize(window, qtbot):
    viewer = window.viewer
    before = viewer.zoom()
    window.resize(1400, 900)
    qtbot.waitUntil(lambda: abs(viewer.zoom() - before) > 0.01, timeout=3000)
    assert f"Zoom {viewer.zoom():.2f}x" in viewer.corners["br"].text()


# ----- zoom keys anywhere in the window

def test_zoom_keys_work_with_the_findings_list_focused(window, qtbot):
    viewer = window.viewer
    tree = window.ai_panel.findings
    tree.setFocus()
    qtbot.waitUntil(tree.hasFocus, timeout=2000)
    zoom = viewer.zoom()
    qtbot.keyClick(tree, Qt.Key.Key_Plus)
    assert viewer.zoom() == pytest.approx(zoom * 1.25, rel=0.01)
    qtbot.keyClick(tree, Qt.Key.Key_Equal)
    assert viewer.zoom() == pytest.approx(zoom * 1.25 ** 2, rel=0.01)
    qtbot.keyClick(tree, Qt.Key.Key_Minus)
    assert viewer.zoom() == pytest.approx(zoom * 1.25, rel=0.01)
    qtbot.keyClick(viewer, Qt.Key.Key_Plus)  # the viewer itself: once, not twice
    assert viewer.zoom() == pytest.approx(zoom * 1.25 ** 2, rel=0.01)


def test_a_line_edit_keeps_its_plus_and_minus(window, qtbot):
    edit = window.ai_panel.review.comment_edit
    edit.setEnabled(True)
    edit.setFocus()
    qtbot.waitUntil(edit.hasFocus, timeout=2000)
    zoom = window.viewer.zoom()
    qtbot.keyClicks(edit, "a+b-c=")
    assert edit.text() == "a+b-c="
    assert window.viewer.zoom() == pytest.approx(zoom)
    assert isinstance(edit, QLineEdit)


# ----- one decode count

def test_status_bar_and_viewer_show_the_same_decode_count(stepped_window, qtbot):
    win, steps = stepped_window
    viewer = win.viewer
    seen = []
    for _ in range(6):
        shown = _loaded_numbers(viewer.corners["bl"].text())
        assert _loaded_numbers(win.status_label.text()) == shown, (win.status_label.text(), viewer.corners["bl"].text())
        assert f"{win.progress.value()}/{win.progress.maximum()}" == shown
        seen.append(shown)
        steps.release()
        qtbot.waitUntil(lambda s=shown: _loaded_numbers(viewer.corners["bl"].text()) != s, timeout=5000)
    assert seen == [f"{n}/40" for n in range(1, 7)]


# ----- cancel, then resume

@pytest.fixture(scope="module")
def long_study(tmp_path_factory):
    """120 slices: time enough to cancel half-way."""
    return write_demo_study(tmp_path_factory.mktemp("long-study"), seed=5, slices=120, size=256)


@pytest.fixture
def decodes(monkeypatch):
    """Counts instance decodes (by SOP Instance UID) and slows each a little, as a network disk would."""
    import time

    import workstation.dicom.volume_reader as volume_reader

    counted: dict[str, int] = {}
    real = volume_reader._decode_into

    def counting(volume, header, targets):
        counted[header.sop_instance_uid] = counted.get(header.sop_instance_uid, 0) + 1
        time.sleep(0.01)
        return real(volume, header, targets)

    monkeypatch.setattr(volume_reader, "_decode_into", counting)
    return counted


@pytest.mark.parametrize("how", ["browser click", "open again", "same folder again"])
def test_a_cancelled_load_resumes_with_what_is_missing(qtbot, long_study, decodes, how):
    from workstation.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    win.open_paths([str(long_study.directory)])
    qtbot.waitUntil(lambda: win.viewer.volume is not None and int(win.viewer.volume.loaded.sum()) >= 5, timeout=30_000)
    with qtbot.waitSignal(win.seriesLoaded, timeout=20_000):
        qtbot.keyClick(win, Qt.Key.Key_Escape)
    volume = win.viewer.volume
    kept = volume.loaded.copy()
    assert 5 <= kept.sum() < 120
    assert "cancelled" in win.status_label.text() and not win.progress.isVisible()
    missing = int(np.flatnonzero(~kept)[0])
    win.viewer.show_frame(missing)
    assert "resume" in win.viewer.message.text()  # not "Loading…" forever
    decoded_before = dict(decodes)

    with qtbot.waitSignal(win.seriesLoaded, timeout=30_000):
        if how == "browser click":
            item = win.browser.topLevelItem(0).child(0).child(0)
            rect = win.browser.visualItemRect(item)
            qtbot.mouseClick(win.browser.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        elif how == "open again":
            win.open_display_set(win.viewer.display_set.key)
        else:
            win.open_paths([str(long_study.directory)])
        qtbot.waitUntil(lambda: win.viewer.message.text() in ("", "Loading…"), timeout=5000)
    assert win.viewer.volume is volume and volume.fully_loaded
    np.testing.assert_array_equal(volume.array, long_study.phantom.hu)
    assert all(count == 1 for count in decodes.values()) and len(decodes) == 120  # nothing decoded twice
    assert set(decoded_before) <= set(decodes)
    assert win.viewer.message.text() == "" and win.status_label.text() == "Loaded 120/120 frames"


# ----- person names

def test_person_names_without_empty_components(qtbot, tmp_path):
    from fixtures_data import write_image

    path = write_image(tmp_path / "ob.dcm", np.zeros((32, 32), np.uint16), PatientName="OB^^^^", PatientID="X1")
    win = _open(qtbot, [path])
    assert win.viewer.corners["tl"].text().splitlines()[0] == "OB"
    assert win.browser.topLevelItem(0).text(0).startswith("OB   ID X1")


def test_a_long_corner_line_does_not_hide_a_marker(window):
    viewer = window.viewer
    viewer.corners["bl"].setText("Im 21/40\n" + "a long line of corner text " * 4)
    viewer._place_corners()
    bottom = viewer.markers["bottom"].geometry()
    assert not bottom.intersects(viewer.corners["bl"].geometry())
    assert bottom.bottom() < viewer.corners["bl"].geometry().top()
