"""MPR in the window (offscreen Qt): three linked planes, crosshair by click and wheel, one window, AI boxes and
heatmap in every plane, thick-slab MIP, refusal with the reason; screenshot resources/screenshots/mpr.png."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication
from review_helpers import canned_result

from workstation.core.windowing import CT_PRESETS
from workstation.render.windowing import WindowRenderer

pytestmark = pytest.mark.ui
SCREENSHOTS = Path(__file__).resolve().parents[2] / "resources" / "screenshots"


@pytest.fixture
def mpr_window(window):
    viewer = window.viewer
    result = canned_result(viewer.display_set, viewer.volume.array.shape[:3])
    viewer.set_result(result)  # the canned AI run: finding f-a spans frames 18-22, heatmap over its box
    assert window.layouts.show_mpr()
    return window, result


def _widget_pos(pane, x_mm, y_mm) -> QPoint:
    scene = pane.viewbox.mapViewToScene(QPointF(x_mm, y_mm))
    return pane.view.mapFromScene(scene)


def _wheel(widget, delta: int):
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(0, 0), QPoint(0, delta), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_three_planes_with_the_ai_box_and_heatmap_in_each(mpr_window, qtbot):
    window, result = mpr_window
    mpr, volume = window.layouts.mpr, window.viewer.volume
    assert window.layouts.stack.currentWidget() is mpr
    finding = result.findings[0]
    c0, r0, c1, r1 = finding.box_px
    mpr.set_point(volume.index_to_patient((c0 + c1) / 2, (r0 + r1) / 2, finding.frame_index))
    letters = {n: (p.annotations.markers["left"].text(), p.annotations.markers["top"].text()) for n, p in mpr.panes.items()}
    assert letters == {"axial": ("R", "A"), "coronal": ("R", "H"), "sagittal": ("A", "H")}
    row_mm, col_mm = volume.pixel_spacing
    slice_mm = abs(volume.frame_origins[1][2] - volume.frame_origins[0][2])
    for name, pane in mpr.panes.items():
        boxes = [item for item in pane.box_items if item.data(0) == finding.finding_id]
        assert len(boxes) == 1, name
        rect = boxes[0].rect()
        width = {"axial": (c1 - c0) * col_mm, "coronal": (c1 - c0) * col_mm, "sagittal": (r1 - r0) * row_mm}[name]
        height = {"axial": (r1 - r0) * row_mm, "coronal": 5 * slice_mm, "sagittal": 5 * slice_mm}[name]
        assert rect.width() == pytest.approx(width, abs=1e-6) and rect.height() == pytest.approx(height, abs=1e-6)
        # the heatmap is reformatted too: opaque over the box centre, transparent far from it
        heat = pane.heat_item.image
        assert pane.heat_item.isVisible() and heat.shape[:2] == pane.plane.shape
        x, y, _ = pane.plane.coords(mpr.point)
        s = pane.plane.spacing
        assert heat[int(round(y / s)), int(round(x / s)), 3] > 0
        assert heat[0, 0, 3] == 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    window.resize(1500, 950)
    mpr.slab_box.setCurrentIndex(mpr.slab_box.findData(10.0))  # as a reader searching nodules would
    QApplication.processEvents()
    for pane in mpr.panes.values():
        pane.viewbox.autoRange(padding=0.0, items=[pane.image_item])
    window.grab().save(str(SCREENSHOTS / "mpr.png"))


def test_click_moves_the_other_planes_and_wheel_scrolls_one(mpr_window, qtbot):
    window, _ = mpr_window
    mpr, volume = window.layouts.mpr, window.viewer.volume
    axial, coronal = mpr.panes["axial"], mpr.panes["coronal"]
    before = mpr.point.copy()
    target = volume.index_to_patient(60, 150, window.viewer.frame_index)
    x, y, _ = axial.plane.coords(target)
    qtbot.mouseClick(axial.view.viewport(), Qt.MouseButton.LeftButton, pos=_widget_pos(axial, x, y))
    moved = mpr.point
    assert moved[2] == pytest.approx(before[2])  # the axial plane stays where it is
    assert moved[0] == pytest.approx(target[0], abs=2 * axial.plane.spacing)
    assert moved[1] == pytest.approx(target[1], abs=2 * axial.plane.spacing)
    # the coronal and sagittal views now pass through the new point, and their lines cross there
    assert abs(mpr.panes["coronal"].plane.coords(moved)[2]) < 1e-6
    assert abs(mpr.panes["sagittal"].plane.coords(moved)[2]) < 1e-6
    assert coronal.lines["sagittal"].value() == pytest.approx(coronal.plane.coords(moved)[0])
    assert coronal.lines["axial"].value() == pytest.approx(coronal.plane.coords(moved)[1])
    _wheel(coronal.view.viewport(), -120)  # one step down: one native pixel posterior
    assert mpr.point[1] == pytest.approx(moved[1] + volume.pixel_spacing[0])
    assert mpr.point[0] == pytest.approx(moved[0]) and mpr.point[2] == pytest.approx(moved[2])
    # the main viewer follows the crosshair's slice, so leaving the MPR shows it
    assert window.viewer.frame_index == int(round(volume.patient_to_index(tuple(mpr.point))[2]))


def test_one_window_in_all_planes_and_the_viewer(mpr_window, qtbot):
    window, _ = mpr_window
    mpr = window.layouts.mpr
    mpr.setFocus()
    qtbot.keyClick(mpr, Qt.Key.Key_1)
    assert mpr.window == CT_PRESETS[0] and window.viewer.window == CT_PRESETS[0]
    renderer = WindowRenderer(window.viewer.volume.array.dtype)
    for pane in mpr.panes.values():
        np.testing.assert_array_equal(pane.image_item.image[..., 0], renderer.render(pane.image, CT_PRESETS[0]))
    window.viewer.set_window(CT_PRESETS[3])  # and the other way round
    assert mpr.window == CT_PRESETS[3]
    axial = mpr.panes["axial"]
    axial.viewbox.scaleBy((6, 6))  # zoomed far out: a screen pixel covers several voxels, sampled coarser
    qtbot.waitUntil(lambda: axial.plane.spacing > 1.5 * mpr.geometry.spacing, timeout=5000)
    assert axial.image.shape == axial.plane.shape
    axial.viewbox.scaleBy((1 / 6, 1 / 6))  # and back: the full grid again
    qtbot.waitUntil(lambda: axial.plane.spacing == pytest.approx(mpr.geometry.spacing), timeout=5000)
    qtbot.keyClick(mpr, Qt.Key.Key_F)  # F fits every view
    (x0, x1), (y0, y1) = axial.viewbox.viewRange()
    nv, nu = axial.plane.shape
    spare = (x1 - x0 - nu * axial.plane.spacing, y1 - y0 - nv * axial.plane.spacing)  # the aspect lock pads one side
    assert min(spare) == pytest.approx(0, abs=1) and max(spare) > -1


def test_thick_slab_mip(mpr_window):
    window, _ = mpr_window
    mpr = window.layouts.mpr
    thin = mpr.panes["coronal"].image.copy()
    mpr.slab_box.setCurrentIndex(mpr.slab_box.findData(10.0))
    assert mpr.slab_mm == 10.0
    slab = mpr.panes["coronal"].image
    assert slab.shape == thin.shape and np.all(slab >= thin - 1) and (slab > thin).mean() > 0.05
    assert "MIP 10 mm" in mpr.panes["coronal"].corners["bl"].text()


def test_refused_with_the_reason_for_a_single_slice(window, qtbot):
    with qtbot.waitSignal(window.library_signals.catalogChanged, timeout=30_000):
        window.open_paths([get_testdata_file("CT_small.dcm")])
    key = next(d.key for d in window.catalog.display_sets if len(d.frames) == 1)
    with qtbot.waitSignal(window.seriesLoaded, timeout=30_000):
        window.open_display_set(key)
    assert window.layouts.show_mpr() is False
    assert window.layouts.stack.currentWidget() is window.layouts.grid
    assert "MPR not available: 1 frame(s): MPR needs a stack of at least 3 slices" in window.statusBar().currentMessage()


def test_selecting_a_finding_brings_the_three_planes_to_its_box(mpr_window):
    window, result = mpr_window
    mpr, viewer = window.layouts.mpr, window.viewer
    finding = next(f for f in result.findings if f.finding_id == "f-c")  # on frame 12, far from the start point
    viewer.select_finding("f-c")
    c0, r0, c1, r1 = finding.box_px
    centre = viewer.volume.index_to_patient((c0 + c1) / 2 - 0.5, (r0 + r1) / 2 - 0.5, finding.frame_index)
    np.testing.assert_allclose(mpr.point, centre, atol=1e-6)
    for name, pane in mpr.panes.items():
        assert any(item.data(0) == "f-c" and item.pen().width() == 3 for item in pane.box_items), name  # selected: thick
    viewer.show_frame(30)  # the review moves the viewer (N / P): the axial plane follows, x and y kept
    assert viewer.volume.patient_to_index(tuple(mpr.point))[2] == pytest.approx(30)
    assert mpr.point[0] == pytest.approx(centre[0]) and mpr.point[1] == pytest.approx(centre[1])


def test_another_series_in_the_viewer_leaves_an_mpr_it_cannot_show(mpr_window, qtbot):
    window, _ = mpr_window
    with qtbot.waitSignal(window.library_signals.catalogChanged, timeout=30_000):
        window.open_paths([get_testdata_file("CT_small.dcm")])
    key = next(d.key for d in window.catalog.display_sets if len(d.frames) == 1)
    window.open_display_set(key)
    assert window.layouts.stack.currentWidget() is window.layouts.grid
    assert not window.layouts.mpr_action.isChecked()
    assert "MPR not available" in window.statusBar().currentMessage()


def test_planes_wait_for_every_slice(window, qtbot):
    """An undecoded slice holds zeros (water in HU): the MPR says it is loading rather than show them."""
    viewer = window.viewer
    viewer.volume.loaded[5] = False  # as if slice 6 were still decoding
    try:
        assert window.layouts.show_mpr()
        mpr = window.layouts.mpr
        assert all(p.message.text().startswith("Loading 39/40 slices") and not p.image_item.isVisible()
                   for p in mpr.panes.values())
        viewer.volume.loaded[5] = True  # decoded now
        qtbot.waitUntil(lambda: all(p.image_item.isVisible() and not p.message.text() for p in mpr.panes.values()),
                        timeout=5000)
    finally:
        viewer.volume.loaded[5] = True


def test_value_under_the_mouse_in_hu(mpr_window):
    window, _ = mpr_window
    mpr, volume = window.layouts.mpr, window.viewer.volume
    point = volume.index_to_patient(100, 120, 20)  # a voxel centre: the axial plane passes through its slice
    mpr.set_point(point)
    axial = mpr.panes["axial"]
    x, y, _ = axial.plane.coords(point)
    pos = QPointF(_widget_pos(axial, x, y))
    event = QMouseEvent(QMouseEvent.Type.MouseMove, pos, axial.view.viewport().mapToGlobal(pos), Qt.MouseButton.NoButton,
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(axial.view.viewport(), event)
    assert axial.corners["tr"].text() == f"{volume.array[20, 120, 100]:g} HU"
