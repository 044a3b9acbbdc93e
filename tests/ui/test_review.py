"""Reviewing AI findings in the real window against a real encrypted store (file keyring under tmp_path)."""

from __future__ import annotations

import json

import pytest
from keyring.backends import fail
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QToolButton

from review_helpers import MODEL, CannedInference, drag, open_window, run_canned_model, site_config, view_pos
from workstation.core.review import Action, State
from workstation.store.database import Store
from workstation.ui.app import open_work_session
from workstation.ui.review_style import BOX_COLOURS, ROW_TINTS

pytestmark = pytest.mark.ui


def feedback(session, win):
    return session.store.feedback(win.viewer.display_set.series.series_instance_uid)


def row(win, finding_id):
    panel = win.ai_panel.findings
    return next(panel.topLevelItem(i) for i in range(panel.topLevelItemCount())
                if panel.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole).finding_id == finding_id)


def button(win, action) -> QToolButton:
    return next(b for b in win.ai_panel.review.findChildren(QToolButton) if b.defaultAction() is action)


def test_accept_with_key_a_and_reject_with_the_button_are_stored_entries(reviewing, qtbot):
    win, session = reviewing("carol", "radiologist")
    viewer, panel = win.viewer, win.ai_panel.findings
    assert [panel.topLevelItem(i).text(4) for i in range(3)] == ["pending"] * 3
    assert [panel.topLevelItem(0).text(c) for c in range(4)] == ["1", "nodule", "0.93", "21"]

    viewer.setFocus()
    qtbot.keyClick(viewer, Qt.Key.Key_N)  # first finding, shown in the viewer
    assert panel.selected_id() == "f-a" and viewer.frame_index == 20
    win.ai_panel.review.comment_edit.setText("typical solid nodule")
    qtbot.keyClick(viewer, Qt.Key.Key_A)  # the viewer has the focus: the key still decides
    assert panel.selected_id() == "f-b"  # and the selection moved on to the next pending finding
    qtbot.mouseClick(button(win, win.ai_panel.review.reject_action), Qt.MouseButton.LeftButton)

    accept, reject = feedback(session, win)
    assert (accept.action, accept.finding_id, accept.comment) == (Action.ACCEPT, "f-a", "typical solid nodule")
    assert (reject.action, reject.finding_id, reject.comment) == (Action.REJECT, "f-b", "")
    assert {(e.user, e.role, e.workstation_id, e.model_name, e.model_version) for e in (accept, reject)} == \
        {("carol", "radiologist", "ws-test", MODEL.name, MODEL.version)}
    assert accept.sop_instance_uid == win.viewer.display_set.frames[20].instance.sop_instance_uid
    assert win.ai_panel.review.comment_edit.text() == ""  # the comment went with the accept

    assert (row(win, "f-a").text(4), row(win, "f-a").text(5)) == ("accepted", "carol (radiologist)")
    assert row(win, "f-b").text(4) == "rejected"
    assert row(win, "f-a").background(0).color() == ROW_TINTS[State.ACCEPTED]
    assert panel.selected_id() == "f-c" and viewer.frame_index == 12  # advanced to the last pending one
    viewer.show_frame(20)
    pens = {item.finding_id: item.pen() for item in viewer.box_items()}
    assert pens["f-a"].color() == BOX_COLOURS[State.ACCEPTED]
    assert pens["f-b"].color() == BOX_COLOURS[State.REJECTED] and pens["f-b"].style() == Qt.PenStyle.DashLine


def image_x(viewer, viewport_point: QPoint) -> float:
    return viewer.viewbox.mapSceneToView(viewer.view.mapToScene(viewport_point)).x()


def test_a_comment_alone_and_a_decision_without_selection(reviewing, qtbot):
    win, session = reviewing("carol", "radiologist")
    review = win.ai_panel.review
    assert not review.accept_action.isEnabled()  # nothing selected yet
    win.review.accept()
    assert "Select a finding first" in review.message.text() and feedback(session, win) == []
    win.review.select("f-c", jump=True)
    assert win.viewer.frame_index == 12
    review.comment_edit.setText("check on the prior")
    qtbot.mouseClick(button(win, review.comment_action), Qt.MouseButton.LeftButton)
    (entry,) = feedback(session, win)
    assert (entry.action, entry.finding_id, entry.comment) == (Action.COMMENT, "f-c", "check on the prior")
    assert row(win, "f-c").text(4) == "pending"  # a comment decides nothing

    qtbot.keyClicks(review.comment_edit, "ra n")  # letters typed in the comment are text, not keys
    assert review.comment_edit.text() == "ra n" and len(feedback(session, win)) == 1
    win.ai_panel.findings.setFocus()
    qtbot.keyClick(win.ai_panel.findings, Qt.Key.Key_R)  # the list has the focus: R still rejects
    assert [e.action for e in feedback(session, win)] == [Action.COMMENT, Action.REJECT]
    assert feedback(session, win)[1].comment == "ra n"


def test_reviewer_drags_resizes_relabels_deletes_and_draws(reviewing, qtbot):
    win, session = reviewing("bob", "reviewer")
    viewer, review = win.viewer, win.ai_panel.review
    row_mm, col_mm = viewer.volume.pixel_spacing
    qtbot.keyClick(viewer, Qt.Key.Key_N)
    editor = viewer.overlay.editor
    assert editor is not None and editor.finding_id == "f-a"

    # drag the box by its middle: a MOVE with the old and new geometry
    port = viewer.view.viewport()
    start = view_pos(viewer, editor.mapToScene(QPointF(editor.size().x() / 2, editor.size().y() / 2)))
    drag(qtbot, port, start, QPoint(30, 16))
    qtbot.waitUntil(lambda: len(feedback(session, win)) == 1, timeout=5000)
    (move,) = feedback(session, win)
    dx = (image_x(viewer, start + QPoint(30, 16)) - image_x(viewer, start)) / col_mm
    assert move.action is Action.MOVE and move.finding_id == "f-a"
    assert move.before.box_px == (100.0, 60.0, 130.0, 90.0) and move.before.frame_index == 20
    c0, r0, c1, r1 = move.after.box_px
    assert c0 - 100 == pytest.approx(dx, abs=1.0) and c0 > 105 and r0 > 62
    assert (c1 - c0, r1 - r0) == pytest.approx((30.0, 30.0), abs=0.02)
    assert (move.user, move.role) == ("bob", "reviewer")
    assert row(win, "f-a").text(4) == "edited" and row(win, "f-a").text(5) == "bob (reviewer)"

    # pull the bottom-right handle: a RESIZE
    editor = viewer.overlay.editor
    handle = next(h for h in editor.getHandles() if h.pos().x() > 0 and h.pos().y() > 0)
    drag(qtbot, port, view_pos(viewer, handle.scenePos()), QPoint(20, 24))
    qtbot.waitUntil(lambda: len(feedback(session, win)) == 2, timeout=5000)
    resize = feedback(session, win)[1]
    assert resize.action is Action.RESIZE and resize.before == move.after
    assert resize.after.box_px[:2] == move.after.box_px[:2] and resize.after.box_px[2] > move.after.box_px[2] + 3
    assert viewer.overlay.editor.pen.color() == BOX_COLOURS[State.EDITED]

    # relabel with the combo of the run's labels, delete with Del
    win.review.select("f-b")
    review.label_box.setCurrentText("mass")
    review.relabel_action.trigger()
    win.review.select("f-c")
    asked = []
    win.review.confirm = lambda title, text: asked.append(text) or True  # the dialog, answered Yes
    qtbot.keyClick(viewer, Qt.Key.Key_Delete)
    assert "Delete finding #3 mass" in asked[0] and "Undo" in asked[0]
    relabel, delete = feedback(session, win)[2:]
    assert (relabel.action, relabel.finding_id, relabel.label) == (Action.RELABEL, "f-b", "mass")
    assert (delete.action, delete.finding_id, delete.before.box_px) == (Action.DELETE, "f-c", (60.0, 150.0, 90.0, 180.0))
    assert [s.finding_id for s in win.ai_panel.findings.states()] == ["f-a", "f-b"]  # deleted: gone
    viewer.show_frame(12)
    assert viewer.box_items() == []  # and not drawn

    # B: draw a missed finding on this slice
    qtbot.keyClick(viewer, Qt.Key.Key_B)
    assert review.draw_action.isChecked() and viewer.viewbox.draw_mode
    review.label_box.setCurrentText("nodule")
    corner = view_pos(viewer, viewer.viewbox.mapViewToScene(QPointF(40 * col_mm, 40 * row_mm)))
    drag(qtbot, port, corner, QPoint(40, 30))
    qtbot.waitUntil(lambda: len(feedback(session, win)) == 5, timeout=5000)
    add = feedback(session, win)[4]
    assert (add.action, add.label, add.after.frame_index) == (Action.ADD, "nodule", 12)
    a0, b0, a1, b1 = add.after.box_px
    assert (a0, b0) == pytest.approx((40, 40), abs=1.0) and a1 - a0 > 10 and b1 - b0 > 8
    assert not review.draw_action.isChecked()  # one box per B
    added = row(win, add.finding_id)
    assert (added.text(2), added.text(4)) == ("", "added")  # no score for a reviewer's box


def test_a_radiologist_cannot_edit_and_the_store_refuses_anyway(reviewing, qtbot):
    win, session = reviewing("carol", "radiologist")
    viewer, review = win.viewer, win.ai_panel.review
    qtbot.keyClick(viewer, Qt.Key.Key_N)
    assert review.accept_action.isEnabled()
    assert not any(a.isEnabled() for a in review.reviewer_actions()) and not review.label_box.isEnabled()
    assert viewer.overlay.editor is None and not viewer.editable  # no handles on the box
    assert "Reviewers only" in review.delete_action.toolTip()
    qtbot.keyClick(viewer, Qt.Key.Key_Delete)  # disabled: nothing happens
    qtbot.keyClick(viewer, Qt.Key.Key_B)
    assert not viewer.viewbox.draw_mode

    win.review.edit_box("f-a", (101.0, 61.0, 131.0, 91.0))  # as if the UI had let it through
    assert "Not allowed" in review.message.text() and "may not review.edit" in review.message.text()
    win.review.add_box(20, (5.0, 5.0, 25.0, 25.0))
    assert "may not review.add" in review.message.text()
    assert feedback(session, win) == []
    denied = [e for e in session.store.audit_entries() if e.kind == "access.denied"]
    assert [e.details["permission"] for e in denied] == ["review.edit", "review.add"]
    assert row(win, "f-a").text(4) == "pending"


def test_saved_states_come_back_after_closing_and_reopening(reviewing, start_session, qtbot, small_study):
    win, session = reviewing("bob", "reviewer")
    review = win.review
    review.select("f-a")
    review.accept()
    review.select("f-b")
    review.reject()
    review.edit_box("f-c", (62.0, 150.0, 92.0, 180.0))
    series_uid = win.viewer.display_set.series.series_instance_uid
    win.close()
    with pytest.raises(RuntimeError):  # ended on close: the store is closed
        session.store.feedback(series_uid)

    again = start_session("dora", "radiologist")
    win2 = open_window(qtbot, small_study.directory, again)  # the plain service: no live result, nothing re-run
    assert win2.viewer.result is None and not win2.viewer.heat_item.isVisible()
    states = {s.finding_id: s for s in win2.ai_panel.findings.states()}
    assert {k: s.state for k, s in states.items()} == {"f-a": State.ACCEPTED, "f-b": State.REJECTED, "f-c": State.EDITED}
    assert states["f-c"].geometry.box_px == (62.0, 150.0, 92.0, 180.0)
    assert row(win2, "f-a").text(5) == "bob (reviewer)"
    assert "Heatmap not saved" in win2.ai_panel.device_label.text()
    win2.viewer.show_frame(20)
    colours = {item.finding_id: item.pen().color() for item in win2.viewer.box_items()}
    assert colours == {"f-a": BOX_COLOURS[State.ACCEPTED], "f-b": BOX_COLOURS[State.REJECTED]}
    assert f"AI {MODEL}: 3 finding(s), 2 on this slice" in win2.viewer.corners["bl"].text()
    win2.review.select("f-c")
    win2.review.accept()  # the next reader decides on the reopened findings
    assert row(win2, "f-c").text(4) == "accepted, box edited" and row(win2, "f-c").text(5) == "dora (radiologist)"


def test_session_audit_study_opened_run_kept_and_end_on_close(reviewing, backend):
    win, session = reviewing("bob", "reviewer")
    display_set = win.viewer.display_set
    kinds = [e.kind for e in session.store.audit_entries()]
    assert kinds[:3] == ["application.start", "session.start", "study.opened"] and "inference.run" in kinds
    opened = next(e for e in session.store.audit_entries() if e.kind == "study.opened")
    assert opened.study_instance_uid == display_set.series.study.study_instance_uid
    assert opened.details == {"series_instance_uid": display_set.series.series_instance_uid, "modality": "CT",
                              "instances": 40}
    entry_text = json.dumps([e.details for e in session.store.audit_entries()])
    assert "PHANTOM" not in entry_text and display_set.series.study.patient.name not in entry_text
    (run,) = session.store.inference_runs(display_set.series.series_instance_uid)
    assert run.model == MODEL and [f.finding_id for f in run.findings] == ["f-a", "f-b", "f-c"]
    win.close()
    assert win.work is None
    with Store.open(session.store.path, session.store.identity, backend) as store:
        assert [e.kind for e in store.audit_entries()][-2:] == ["session.end", "application.stop"]
        assert store.verify().ok


def test_a_locked_store_disables_review_but_not_viewing(qtbot, small_study, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSTATION_DATA_DIR", str(tmp_path))
    session, problem = open_work_session(site_config("bob", "reviewer"), fail.Keyring())
    assert session is None and "keyring" in problem
    win = open_window(qtbot, small_study.directory, None, CannedInference(), review_problem=problem)
    note = win.ai_panel.review.note
    assert note.isVisible() and note.text().startswith("Review disabled: ") and "keyring" in note.text()
    assert win.review_status.text().startswith("Review disabled: ")
    assert win.viewer.volume.fully_loaded  # viewing works
    result = run_canned_model(qtbot, win)  # and the model runs; its findings are listed, not reviewable
    assert result is not None and len(win.ai_panel.findings.states()) == 3
    win.review.select("f-a")
    assert not win.ai_panel.review.accept_action.isEnabled()
    win.review.accept()
    assert win.ai_panel.review.message.text().startswith("Review disabled: ")
    win.close()  # no session to end: no error


def test_demo_uses_the_demo_site_where_everyone_reviews(monkeypatch):
    from workstation.cli import demo_config
    from workstation.services.config import load_site_config

    monkeypatch.delenv("WORKSTATION_CONFIG", raising=False)
    path = demo_config()
    assert path is not None and path.endswith("resources/demo-site.toml")
    assert load_site_config(path).users.default_role == "reviewer"
    monkeypatch.setenv("WORKSTATION_CONFIG", "/etc/site.toml")
    assert demo_config() is None  # a configured site wins over the demo
