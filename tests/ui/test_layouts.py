"""Layouts, drops from the study browser, compare with prior, cine and hanging protocols (offscreen Qt);
screenshot resources/screenshots/compare-prior.png."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from workstation.core.hanging import HangingProtocol, HangingViewport
from workstation.core.site import SiteConfig
from workstation.core.windowing import CT_PRESETS
from workstation.services import loading

pytestmark = pytest.mark.ui
SCREENSHOTS = Path(__file__).resolve().parents[2] / "resources" / "screenshots"
PRIOR_SHIFT_MM = 10.0  # the prior's table positions run 10 mm higher: same table, slightly different start
PRIOR_DATE = "20230301"


@pytest.fixture(scope="module")
def prior_study(small_study, tmp_path_factory):
    """The small study rewritten as the same patient's study of a year before (new UIDs, date, positions + 10 mm)."""
    folder = tmp_path_factory.mktemp("prior")
    study_uid, series_uid = generate_uid(), generate_uid()
    for path in small_study.files:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyDate = ds.SeriesDate = PRIOR_DATE
        ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], float(ds.ImagePositionPatient[2]) + PRIOR_SHIFT_MM]
        ds.save_as(folder / path.name)
    return folder


@pytest.fixture(scope="module")
def cine_file(tmp_path_factory):
    """A 10-frame MR with FrameTime 50 ms (20 frames per second)."""
    ds = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    ds.FrameTime = "50"
    path = tmp_path_factory.mktemp("cine") / "cine.dcm"
    ds.save_as(path)
    return path


def _drop(qtbot, window, viewport_index: int, key: str) -> None:
    """Drag the series' row of the study browser onto a viewport, as a reader does."""
    item = window.browser._items[key]
    mime = window.browser.mimeData([item])
    target = window.layouts.grid.viewers[viewport_index].view.viewport()
    pos = QPointF(target.width() / 2, target.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, drop)


def test_layout_keys_and_a_series_dropped_into_a_viewport(window, qtbot, cine_file):
    layouts = window.layouts
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert layouts.grid.layout_name == "2x2" and layouts.grid.visible_count() == 4
    assert all(v.isVisible() for v in layouts.grid.viewports)
    with qtbot.waitSignal(window.library_signals.catalogChanged, timeout=30_000):
        window.open_paths([str(cine_file)])
    mr = next(d for d in window.catalog.display_sets if d.series.modality == "MR")
    _drop(qtbot, window, 2, mr.key)
    viewer = layouts.grid.viewers[2]
    assert viewer.display_set.key == mr.key and layouts.grid.active == 2
    qtbot.waitUntil(lambda: viewer.volume.fully_loaded and viewer.window is not None, timeout=30_000)
    assert window.viewer.display_set.series.modality == "CT"  # the main viewport keeps its series
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert layouts.grid.layout_name == "1x2" and not layouts.grid.viewports[2].isVisible()
    assert layouts.grid.active == 0  # the active viewport was hidden: the main one is active again


def test_cine_plays_a_multi_frame_object_at_its_frame_time_and_loops(window, qtbot, cine_file):
    with qtbot.waitSignal(window.library_signals.catalogChanged, timeout=30_000):
        window.open_paths([str(cine_file)])
    mr = next(d for d in window.catalog.display_sets if d.series.modality == "MR")
    with qtbot.waitSignal(window.seriesLoaded, timeout=30_000):
        window.open_display_set(mr.key)
    cine, viewer = window.layouts.cine, window.viewer
    assert cine.isVisible()  # a multi-frame object gets the frame slider
    assert cine.fps.value() == pytest.approx(20.0) and cine.source.text() == "from the images"
    assert cine.interval_ms() == 50
    cine.slider.setValue(3)
    assert viewer.frame_index == 3
    viewer.show_frame(8)
    cine.tick()
    assert viewer.frame_index == 9 and cine.slider.value() == 9 and cine.label.text() == "frame 10/10"
    cine.tick()
    assert viewer.frame_index == 0  # loops
    cine.loop.setChecked(False)
    window.layouts.cine_action.trigger()  # Space: play
    assert cine.playing
    qtbot.waitUntil(lambda: not cine.playing, timeout=10_000)  # runs to the last frame and stops
    assert viewer.frame_index == 9
    cine.fps.setValue(5)
    assert cine.source.text() == "chosen" and cine.interval_ms() == 200


def test_compare_with_prior_side_by_side_scrolls_by_table_position(window, qtbot, prior_study):
    with qtbot.waitSignal(window.library_signals.catalogChanged, timeout=30_000):
        window.open_paths([str(prior_study)])
    patient = window.browser.topLevelItem(0)
    assert window.browser.topLevelItemCount() == 1 and patient.text(0).endswith("(2 studies)")
    assert patient.child(0).text(0).startswith("2024-01-01") and patient.child(1).text(0).startswith("2023-03-01")
    assert patient.child(1).text(0).endswith("(prior)")
    layouts = window.layouts
    assert layouts.compare_with_prior()
    prior_viewer = layouts.grid.viewers[1]
    assert layouts.grid.layout_name == "1x2" and prior_viewer.display_set.series.study.date == PRIOR_DATE
    qtbot.waitUntil(lambda: prior_viewer.volume.fully_loaded and prior_viewer.window is not None, timeout=30_000)
    sync = layouts.sync
    assert sync.alignment.offset_mm == 0.0  # the ranges overlap: same table positions
    current = window.viewer
    step = abs(sync.alignment.current_z[1] - sync.alignment.current_z[0])
    current.show_frame(20)
    # the prior's slice at the same z lies PRIOR_SHIFT_MM / step slices further towards its start
    expected = int(round(20 - PRIOR_SHIFT_MM / step)) if sync.alignment.prior_z[1] > sync.alignment.prior_z[0] else int(round(20 + PRIOR_SHIFT_MM / step))
    assert prior_viewer.frame_index == expected
    assert abs(sync.alignment.prior_z[prior_viewer.frame_index] - sync.alignment.current_z[20]) < step / 2
    prior_viewer.show_frame(expected + 3)  # scrolling the prior moves the current too
    assert current.frame_index == 23
    current.set_window(CT_PRESETS[0])  # one window
    assert prior_viewer.window == CT_PRESETS[0]
    layouts.compare_bar.offset.setValue(PRIOR_SHIFT_MM)  # the reader moves the prior by 10 mm
    assert prior_viewer.frame_index == 23
    layouts.compare_bar.linked.setChecked(False)  # unlink, put the prior two slices on, link again
    prior_viewer.show_frame(25)
    assert current.frame_index == 23
    layouts.compare_bar.linked.setChecked(True)
    assert sync.alignment.offset_mm == pytest.approx(sync.alignment.prior_z[25] - sync.alignment.current_z[23])
    assert layouts.compare_bar.offset.value() == pytest.approx(sync.alignment.offset_mm, abs=0.05)
    current.show_frame(10)
    assert prior_viewer.frame_index == 12
    layouts.compare_bar.offset.setValue(PRIOR_SHIFT_MM)  # the true shift: the same anatomy side by side
    current.show_frame(20)
    assert sync.alignment.prior_z[prior_viewer.frame_index] == pytest.approx(sync.alignment.current_z[20] + PRIOR_SHIFT_MM)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    window.resize(1500, 950)
    QApplication.processEvents()
    window.grab().save(str(SCREENSHOTS / "compare-prior.png"))
    layouts.set_layout("1x1")
    assert layouts.sync is None and not layouts.compare_bar.isVisible()


def test_compare_without_a_prior_says_so(window):
    assert window.layouts.compare_with_prior() is False
    assert "No prior study of this patient" in window.statusBar().currentMessage()


def test_hanging_protocol_lays_out_a_chest_ct(qtbot, small_study):
    from workstation.ui.main_window import MainWindow

    chest = HangingProtocol("CT", "1x2", "CHEST", (HangingViewport(window="lung"), HangingViewport(window="mediastinum")))
    win = MainWindow(config=SiteConfig(hanging=(chest,)))
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    with qtbot.waitSignal(win.seriesLoaded, timeout=30_000):
        win.open_paths([str(small_study.directory)])
    grid = win.layouts.grid
    right = grid.viewers[1]
    qtbot.waitUntil(lambda: right.window is not None and win.viewer.window is not None, timeout=30_000)
    assert grid.layout_name == "1x2"
    assert right.display_set.key == win.viewer.display_set.key
    assert right.volume is win.viewer.volume  # one decode shared by both viewports
    assert win.viewer.window == CT_PRESETS[0] and right.window == CT_PRESETS[1]


def test_hanging_protocol_puts_the_prior_beside_when_it_arrives(qtbot, small_study, prior_study):
    from workstation.ui.main_window import MainWindow

    chest = HangingProtocol("CT", "1x2", "CHEST", (HangingViewport(window="lung"),
                                                    HangingViewport(window="lung", study="prior")))
    win = MainWindow(config=SiteConfig(hanging=(chest,)))
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    with qtbot.waitSignal(win.seriesLoaded, timeout=30_000):
        win.open_paths([str(small_study.directory)])
    assert "the prior study is not open yet" in win.statusBar().currentMessage()
    assert win.layouts.sync is None
    with qtbot.waitSignal(win.library_signals.catalogChanged, timeout=30_000):
        win.open_paths([str(prior_study)])  # e.g. retrieved from the PACS meanwhile
    right = win.layouts.grid.viewers[1]
    assert right.display_set.series.study.date == PRIOR_DATE and win.layouts.sync is not None
    qtbot.waitUntil(lambda: right.volume.fully_loaded and right.window == CT_PRESETS[0], timeout=30_000)
    assert win.viewer.display_set.series.study.date != PRIOR_DATE and win.viewer.window == CT_PRESETS[0]


def test_the_newest_study_opens_first_when_both_come_together(qtbot, small_study, prior_study):
    from workstation.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    with qtbot.waitSignal(win.seriesLoaded, timeout=30_000):
        win.open_paths([str(prior_study), str(small_study.directory)])
    assert win.catalog.display_sets[0].series.study.date == PRIOR_DATE  # the catalog lists the oldest first...
    assert win.viewer.display_set.series.study.date != PRIOR_DATE  # ...the reader gets the current study


def test_esc_stops_the_other_viewports_decoding_and_a_drop_resumes(window, qtbot, prior_study, monkeypatch):
    """The prior's decoding is held after its first frame until Esc cancels it, so Esc always meets a running load
    (a small series would otherwise be decoded before Esc, and the check raced the load's finished signal)."""
    real_read_into, hold = loading.read_into, threading.Event()

    def held_read_into(volume, display_set, start_frame=0, cancel=None, on_frames=None):
        def frames_then_wait(indices):
            if on_frames is not None:
                on_frames(indices)
            if display_set.series.study.date == PRIOR_DATE and cancel is not None:
                deadline = time.monotonic() + 30
                while hold.is_set() and not cancel.cancelled and time.monotonic() < deadline:
                    time.sleep(0.005)
        return real_read_into(volume, display_set, start_frame, cancel, frames_then_wait)

    monkeypatch.setattr(loading, "read_into", held_read_into)
    with qtbot.waitSignal(window.library_signals.catalogChanged, timeout=30_000):
        window.open_paths([str(prior_study)])
    layouts = window.layouts
    layouts.set_layout("1x2")
    prior = next(d for d in window.catalog.display_sets if d.series.study.date == PRIOR_DATE)
    hold.set()
    layouts.put_series(1, prior.key)
    load = layouts.loads[1].load
    qtbot.waitUntil(lambda: load.volume.loaded_count >= 1, timeout=30_000)
    window.cancel()  # Esc
    viewer = layouts.grid.viewers[1]
    qtbot.waitUntil(lambda: not load.busy and not viewer.loading, timeout=30_000)
    assert not load.complete  # stopped half-way: frames are missing
    hold.clear()
    _drop(qtbot, window, 1, prior.key)  # the same series again
    assert layouts.loads[1].load is load  # resumed, not decoded again from the start
    qtbot.waitUntil(lambda: load.volume.fully_loaded, timeout=30_000)
