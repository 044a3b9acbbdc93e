"""Main window: browser, problems panel, drag-and-drop, the screenshot command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage
from pydicom.data import get_testdata_file

pytestmark = pytest.mark.ui


def test_browser_lists_series_with_thumbnail_and_counts(window, qtbot):
    qtbot.waitUntil(lambda: not window._pending_thumbs, timeout=20_000)
    browser = window.browser
    patient = browser.topLevelItem(0)
    assert "PHANTOM" in patient.text(0) and "DEMO-0003" in patient.text(0)
    study = patient.child(0)
    assert "CT CHEST DEMO" in study.text(0)
    series = study.child(0)
    assert series.text(0).splitlines() == ["2  Chest CT phantom 2.5 mm", "CT · 40 images"]
    icon = series.icon(0).pixmap(72, 72).toImage()
    assert not icon.isNull() and icon.width() > 40
    grey = [QImage.pixelColor(icon, x, icon.height() // 2).value() for x in range(icon.width())]
    assert max(grey) - min(grey) > 100  # a real picture: body brighter than the air around it


def test_bad_files_are_listed_and_good_ones_open(qtbot, small_study, tmp_path):
    from workstation.ui.main_window import MainWindow

    folder = tmp_path / "mixed"
    shutil.copytree(small_study.directory, folder / "ct")
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.dcm").write_bytes(b"")
    good = sorted((folder / "ct").glob("*.dcm"))[0]
    data = good.read_bytes()
    (folder / "truncated.dcm").write_bytes(data[: len(data) // 2])
    shutil.copy(get_testdata_file("test-SR.dcm", download=False), folder / "report.dcm")

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.seriesLoaded, timeout=30_000):
        win.open_paths([str(folder)])
    rows = {win.problems.topLevelItem(i).text(0): win.problems.topLevelItem(i).text(1) for i in range(win.problems.count())}
    assert "not a DICOM" in rows[str(folder / "notes.txt")]
    assert "not a DICOM file" in rows[str(folder / "empty.dcm")]
    assert "truncated" in rows[str(folder / "truncated.dcm")]
    assert "no pixel data" in rows[str(folder / "report.dcm")]
    assert win.problems_dock.windowTitle() == "Problems (4)"
    assert win.status_label.text() == "Loaded 40/40 frames"
    assert win.viewer.volume.frame_count == 40  # the truncated copy of a slice is skipped; the intact one is used
    assert win.viewer.volume.fully_loaded


def test_drop_opens_files(qtbot, small_study):
    from workstation.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(small_study.directory))])
    event = QDropEvent(QPoint(10, 10).toPointF(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(win.seriesLoaded, timeout=30_000):
        win.dropEvent(event)
    assert event.isAccepted()
    assert win.viewer.volume.frame_count == 40


def test_opening_the_same_folder_twice_adds_nothing(window, qtbot, small_study):
    with qtbot.waitSignal(window.library_signals.catalogChanged, timeout=30_000):
        window.open_paths([str(small_study.directory)])
    assert len(window.catalog.display_sets) == 1
    assert len(window.catalog.headers) == 40


def test_screenshot_command_renders_the_demo(tmp_path):
    """`workstation --demo --screenshot` as IT would run it: a fresh process, offscreen."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["WORKSTATION_CACHE_DIR"] = str(tmp_path / "cache")
    shot = tmp_path / "demo.png"
    done = subprocess.run([sys.executable, "-m", "workstation", "--demo", "--screenshot", str(shot)],
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    image = QImage(str(shot))
    assert image.width() == 1400 and image.height() == 900
    # The viewer's centre shows the chest: a wide spread of grey levels, not a blank or loading screen.
    values = np.array([[image.pixelColor(x, y).value() for x in range(600, 1100, 10)] for y in range(250, 650, 10)])
    assert values.std() > 40
    assert (values < 30).mean() > 0.05 and (values > 120).mean() > 0.05
    assert (tmp_path / "cache").exists()


def test_screenshot_of_a_folder_with_nothing_readable(tmp_path):
    (tmp_path / "junk.txt").write_text("hello")
    shot = tmp_path / "x.png"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([sys.executable, "-m", "workstation", str(tmp_path / "junk.txt"), "--screenshot", str(shot)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert shot.exists() and "Traceback" not in done.stderr


def _open(qtbot, paths):
    from workstation.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.seriesLoaded, timeout=30_000):
        win.open_paths([str(p) for p in paths])
    return win


def test_monochrome1_radiograph_is_displayed_inverted(qtbot):
    win = _open(qtbot, [get_testdata_file("RG1_UNCR.dcm", download=False)])
    viewer = win.viewer
    frame = viewer.volume.array[0]
    image = viewer.current_image()
    low, high = np.unravel_index(np.argmin(frame), frame.shape), np.unravel_index(np.argmax(frame), frame.shape)
    assert image[low] > image[high]  # MONOCHROME1: the lowest value is the brightest
    assert viewer.display_set.first.pixel.inverted
    assert "pixel spacing unknown" in viewer.corners["br"].text()  # its PixelSpacing is 0\\0


def test_multiframe_object_scrolls_through_its_frames(qtbot):
    win = _open(qtbot, [get_testdata_file("emri_small.dcm", download=False)])
    viewer = win.viewer
    assert viewer.volume.frame_count == 10 and viewer.slider.maximum() == 9
    viewer.show_frame(0)
    first = viewer.current_image().copy()
    qtbot.keyClick(viewer, Qt.Key.Key_Down)
    assert viewer.frame_index == 1 and not np.array_equal(first, viewer.current_image())
    assert "Im 2/10" in viewer.corners["bl"].text()


def test_a_growing_series_is_reloaded_keeping_the_slice_shown(qtbot, small_study, tmp_path):
    """As during a retrieval: half the slices first, the rest arrive later."""
    from workstation.ui.main_window import MainWindow

    first_half = small_study.files[::2]  # every other slice, spread over the whole series
    win = _open(qtbot, first_half)
    viewer = win.viewer
    assert viewer.volume.frame_count == 20
    viewer.show_frame(7)
    shown = viewer.display_set.frames[7].instance.sop_instance_uid
    viewer.set_window(viewer.initial_window.dragged(100, 50))
    window_before = viewer.window
    qtbot.waitUntil(lambda: not win._pending_thumbs, timeout=20_000)
    with qtbot.waitSignal(win.seriesLoaded, timeout=30_000):
        win.library.add_files([str(p) for p in small_study.files[1::2]])
    qtbot.waitUntil(lambda: viewer.volume.frame_count == 40 and viewer.volume.fully_loaded, timeout=30_000)
    assert viewer.display_set.frames[viewer.frame_index].instance.sop_instance_uid == shown
    assert viewer.frame_index == 14  # the same slice, now with its neighbours in between
    assert viewer.window == window_before
    assert win.browser.topLevelItem(0).child(0).child(0).text(0).endswith("CT · 40 images")
    assert not win.browser.topLevelItem(0).child(0).child(0).icon(0).isNull()  # the preview survived the rebuild
