"""Measurement tools in the real window (offscreen): draw with the mouse, read the values, save, reopen, edit,
delete and undo; "Measure" on an AI box; no key of the window is bound twice."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QAction, QKeySequence, QMouseEvent
from review_helpers import drag, mouse, open_window, view_pos

from workstation.core.measure import roi_mask
from workstation.services.measurements import MeasurementService


def at(viewer, col: float, row: float) -> QPoint:
    """The viewport position of an image pixel coordinate."""
    row_mm, col_mm = viewer.volume.pixel_spacing
    return view_pos(viewer, viewer.viewbox.mapViewToScene(QPointF(col * col_mm, row * row_mm)))


def px(viewer, pos: QPoint) -> tuple[float, float]:
    row_mm, col_mm = viewer.volume.pixel_spacing
    point = viewer.viewbox.mapSceneToView(viewer.view.mapToScene(pos))
    return point.x() / col_mm, point.y() / row_mm


def draw(qtbot, win, key, start: QPoint, end: QPoint) -> None:
    qtbot.keyClick(win.viewer, key)
    drag(qtbot, win.viewer.view.viewport(), start, end - start)


def entries(win):
    measure = win.measure
    return measure.service._log.entries(measure.session.series.series_instance_uid)


def test_each_tool_draws_reads_saves_edits_deletes_undoes_and_reopens(start_session, qtbot, small_study):
    session = start_session("amy", "radiologist")
    win = open_window(qtbot, small_study.directory, session)
    viewer, measure = win.viewer, win.measure
    viewer.show_frame(20)
    row_mm, col_mm = viewer.volume.pixel_spacing
    port = viewer.view.viewport()

    # length: L, then a drag; the value is the distance in mm between where the drag started and ended
    start, end = at(viewer, 60, 60), at(viewer, 140, 100)
    draw(qtbot, win, Qt.Key.Key_L, start, end)
    qtbot.waitUntil(lambda: len(measure.session.measurements()) == 1, timeout=5000)
    (a, b) = px(viewer, start), px(viewer, end)
    expected = math.hypot((b[0] - a[0]) * col_mm, (b[1] - a[1]) * row_mm)
    length = measure.session.measurements()[0].measurement
    assert length.kind == "length" and length.values["length"] == pytest.approx(expected, abs=0.05)
    assert length.frame_index == 20 and measure.labels[length.measurement_id].text().startswith("#1 ")
    assert measure.panel.row_texts()[0][:4] == ["1", "Length", f"{length.values['length']:.1f} mm", "21"]

    # ellipse ROI: HU statistics over exactly the pixels numpy finds inside
    draw(qtbot, win, Qt.Key.Key_E, at(viewer, 100, 110), at(viewer, 140, 150))
    qtbot.waitUntil(lambda: len(measure.session.measurements()) == 2, timeout=5000)
    roi = measure.session.measurements()[1].measurement
    mask, (r0, c0) = roi_mask("ellipse", roi.points, viewer.volume.array.shape[1:3])
    values = viewer.volume.array[20, r0:r0 + mask.shape[0], c0:c0 + mask.shape[1]][mask].astype(float)
    assert roi.values["mean"] == pytest.approx(values.mean()) and roi.values["sd"] == pytest.approx(values.std())
    assert " HU" in roi.text and "mm²" in roi.text

    # rectangle, nodule diameter, angle (drag the first arm, click the end of the second)
    draw(qtbot, win, Qt.Key.Key_T, at(viewer, 30, 150), at(viewer, 60, 170))
    d0, d1 = at(viewer, 150, 60), at(viewer, 180, 60)
    draw(qtbot, win, Qt.Key.Key_D, d0, d1)
    draw(qtbot, win, Qt.Key.Key_G, at(viewer, 200, 40), at(viewer, 180, 80))
    assert measure.tool.drawing  # waiting for the second arm
    left = Qt.MouseButton.LeftButton
    end = at(viewer, 220, 80)
    mouse(port, QMouseEvent.Type.MouseButtonPress, end, left, left)
    mouse(port, QMouseEvent.Type.MouseButtonRelease, end, left, Qt.MouseButton.NoButton)  # a click
    qtbot.waitUntil(lambda: len(measure.session.measurements()) == 5, timeout=5000)
    kinds = {m.measurement.kind: m.measurement for m in measure.session.measurements()}
    assert kinds["rectangle"].values["pixels"] > 0
    diameter = kinds["diameter"].values
    drawn = math.hypot((px(viewer, d1)[0] - px(viewer, d0)[0]) * col_mm, (px(viewer, d1)[1] - px(viewer, d0)[1]) * row_mm)
    assert diameter["long"] == pytest.approx(drawn, abs=0.05) and diameter["short"] == pytest.approx(drawn / 2, abs=0.05)
    assert diameter["mean"] == round((diameter["long"] + diameter["short"]) / 2, 1)
    assert kinds["angle"].values["angle"] == pytest.approx(math.degrees(math.atan2(40, 20)), abs=1.0)

    # edit: drag the length's second handle; one edit entry, the value follows
    measure.choose_tool(None)
    item = measure.items[length.measurement_id]
    handle = item.getHandles()[1]
    drag(qtbot, port, view_pos(viewer, handle.scenePos()), QPoint(0, 40))
    qtbot.waitUntil(lambda: [e.action.value for e in entries(win)][-1] == "edit", timeout=5000)
    edited = measure.session.get(length.measurement_id).measurement
    assert edited.values["length"] != pytest.approx(length.values["length"], abs=0.5)

    # delete (Shift+Del) and undo (Ctrl+Alt+Z): entries both, the measurement is back
    measure.select(length.measurement_id)
    qtbot.keyClick(viewer, Qt.Key.Key_Delete, Qt.KeyboardModifier.ShiftModifier)
    assert length.measurement_id not in {m.measurement.measurement_id for m in measure.session.measurements()}
    qtbot.keyClick(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
    assert measure.session.get(length.measurement_id).measurement.values == edited.values
    assert [e.action.value for e in entries(win)][-3:] == ["edit", "delete", "undo"]
    kinds_audited = [e.kind for e in session.store.audit_entries() if e.kind.startswith("measurement.")]
    assert kinds_audited.count("measurement.add") == 5 and "measurement.undo" in kinds_audited
    # (win stays open: its session's store and the new one's are the same file, as two workstations' would be)

    again = start_session("bob", "reviewer")
    win2 = open_window(qtbot, small_study.directory, again)
    win2.viewer.show_frame(20)
    shown = win2.measure.session.measurements()
    assert [s.measurement.kind for s in shown] == ["length", "ellipse", "rectangle", "diameter", "angle"]
    assert shown[0].measurement.values == edited.values and shown[0].user == "amy"
    assert len(win2.measure.items) == 5 and not any(item.editable for item in win2.measure.items.values())
    assert [row[4] for row in win2.measure.panel.row_texts()] == ["amy"] * 5
    win2.measure.select(shown[0].measurement.measurement_id)
    assert not win2.measure.delete_action.isEnabled()  # another reader's measurement
    win2.viewer.show_frame(3)
    assert win2.measure.items == {}
    win2.measure.panel.measurementActivated.emit(shown[1].measurement.measurement_id)  # jump to its slice
    assert win2.viewer.frame_index == 20 and len(win2.measure.items) == 5


def test_measure_on_an_ai_box_proposes_the_axes_of_its_heatmap_region(reviewing, start_session, qtbot, small_study):
    win, session = reviewing("bob", "reviewer")
    viewer, measure = win.viewer, win.measure
    win.review.select("f-a", jump=True)
    qtbot.keyClick(viewer, Qt.Key.Key_M)
    (shown,) = measure.session.measurements()
    m = shown.measurement
    assert (m.kind, m.finding_id, m.frame_index) == ("diameter", "f-a", 20)
    col_mm = viewer.volume.pixel_spacing[1]
    # the canned heatmap is a 30 x 30 px square: both axes run along its diagonals, edge to edge
    assert m.values["long"] == pytest.approx(30 * math.sqrt(2) * col_mm, rel=0.06)
    assert m.values["short"] == pytest.approx(30 * math.sqrt(2) * col_mm, rel=0.12)
    assert "heatmap" in measure.panel.note.text()
    assert measure.panel.row_texts()[0][1] == "Nodule diameter (finding #1)"
    xs = [p[0] for p in m.points]
    assert 99 <= min(xs) and max(xs) <= 131  # inside the box
    qtbot.keyClick(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
    assert measure.session.measurements() == []

    # with a tool chosen, a drag inside the reviewer's editable box measures; the box stays where it was
    assert viewer.overlay.editor is not None and viewer.overlay.editor.finding_id == "f-a"
    draw(qtbot, win, Qt.Key.Key_L, at(viewer, 105, 70), at(viewer, 125, 80))
    qtbot.waitUntil(lambda: len(measure.session.measurements()) == 1, timeout=5000)
    assert session.store.feedback(viewer.display_set.series.series_instance_uid) == []
    qtbot.keyClick(viewer, Qt.Key.Key_B)  # the reviewer's Draw box puts the measuring tool down (one mode at a time)
    assert measure.tool.kind is None and viewer.viewbox.draw_mode and viewer.overlay.editor.isEnabled()
    qtbot.keyClick(viewer, Qt.Key.Key_L)
    assert measure.tool.kind == "length" and not viewer.viewbox.draw_mode
    qtbot.keyClick(viewer, Qt.Key.Key_L)  # the tool's key again: back to panning
    assert measure.tool.kind is None
    measure.undo()

    # a right click (no drag) on another box: its menu offers "Measure"
    box = next(item for item in viewer.box_items() if getattr(item, "finding_id", "") == "f-b")
    pos = view_pos(viewer, box.mapToScene(box.rect().center()))
    right, port = Qt.MouseButton.RightButton, viewer.view.viewport()
    mouse(port, QMouseEvent.Type.MouseButtonPress, pos, right, right)
    mouse(port, QMouseEvent.Type.MouseButtonRelease, pos, right, Qt.MouseButton.NoButton)
    qtbot.waitUntil(lambda: measure.context is not None, timeout=5000)
    (action,) = measure.context.actions()
    assert action.text() == "Measure finding #2" and viewer.selected_id == "f-b"
    measure.context.close()
    action.trigger()  # the canned heatmap is empty in this box: refused with the reason, nothing saved
    assert measure.session.measurements() == [] and "heatmap is empty inside this box" in measure.panel.note.text()

    # reopened (the run is not re-run): "Measure" uses the heatmap the store kept with the run
    win2 = open_window(qtbot, small_study.directory, start_session("bob", "reviewer"))
    assert win2.viewer.result is None
    win2.review.select("f-a", jump=True)
    qtbot.keyClick(win2.viewer, Qt.Key.Key_M)
    (again,) = win2.measure.session.measurements()
    assert again.measurement.values == pytest.approx(m.values) and "from the heatmap region" in win2.measure.panel.note.text()
    assert win2.measure.panel.row_texts()[0][1] == "Nodule diameter (finding #1)"


def test_without_a_store_tools_work_and_say_nothing_is_saved_and_no_key_is_bound_twice(window, qtbot):
    measure = window.measure
    assert not measure.service.saved and "Not saved" in measure.panel.note.text()
    draw(qtbot, window, Qt.Key.Key_L, at(window.viewer, 20, 20), at(window.viewer, 20, 120))
    qtbot.waitUntil(lambda: len(measure.session.measurements()) == 1, timeout=5000)
    assert "not saved" in measure.panel.note.text()
    seen: dict[str, str] = {}
    for action in window.findChildren(QAction):
        for key in action.shortcuts():
            text = key.toString(QKeySequence.SequenceFormat.PortableText)
            assert text not in seen or seen[text] == action.text(), f"{text}: {seen.get(text)} and {action.text()}"
            seen[text] = action.text()
    assert np.isfinite(measure.session.measurements()[0].measurement.values["length"])
    from workstation.ui.shortcuts_dialog import shortcut_rows

    rows = shortcut_rows(window.findChildren(QAction))  # Help > Keyboard shortcuts
    assert ("D", "Nodule diameter") in rows and ("Ctrl+Alt+Z", "Undo measurement add") in rows
