"""Review safety in the real window on a real encrypted store: nothing lost by one key, every decision visible,
a review that ends in a sign-off (issue 11)."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QAction

from review_helpers import MODEL_REF, CannedInference, drag, open_window, run_canned_model, site_config, view_pos
from workstation.core.review import Action, State
from workstation.core.site import ReviewSettings
from workstation.ui.review_style import BOX_COLOURS
from workstation.ui.shortcuts_dialog import ShortcutsDialog

pytestmark = pytest.mark.ui

CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier


def entries(session, win):
    return session.store.feedback(win.viewer.display_set.series.series_instance_uid)


def numbers(win) -> dict[str, str]:
    panel = win.ai_panel.findings
    return {panel.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole).finding_id: panel.topLevelItem(i).text(0)
            for i in range(panel.topLevelItemCount())}


def text_of(win, finding_id: str, column: int) -> str:
    panel = win.ai_panel.findings
    return next(panel.topLevelItem(i).text(column) for i in range(panel.topLevelItemCount())
                if panel.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole).finding_id == finding_id)


def test_delete_asks_first_and_ctrl_z_brings_the_finding_back_as_a_new_entry(reviewing, qtbot):
    win, session = reviewing("bob", "reviewer")
    viewer, review = win.viewer, win.ai_panel.review
    answers = []
    win.review.confirm = lambda title, text: answers.pop(0)
    win.review.select("f-a", jump=True)
    answers.append(False)  # "No": nothing happens
    qtbot.keyClick(viewer, Qt.Key.Key_Delete)
    assert entries(session, win) == [] and "f-a" in numbers(win) and review.message.text() == "Not deleted."

    answers.append(True)
    qtbot.keyClick(viewer, Qt.Key.Key_Delete)
    assert "f-a" not in numbers(win)
    assert review.undo_action.isEnabled() and review.undo_action.text() == "&Undo deleted #1"
    qtbot.keyClick(viewer, Qt.Key.Key_Z, CTRL)
    assert numbers(win)["f-a"] == "1" and text_of(win, "f-a", 4) == "pending"
    assert win.ai_panel.findings.selected_id() == "f-a" and "Undone: deleted #1" in review.message.text()
    qtbot.keyClick(viewer, Qt.Key.Key_Z, CTRL | SHIFT)  # redo: deleted again
    assert "f-a" not in numbers(win)
    delete, undo, redo = entries(session, win)
    assert (delete.action, undo.action, redo.action) == (Action.DELETE, Action.UNDO, Action.REDO)
    assert undo.reverts == delete.entry_id and redo.reverts == undo.entry_id
    kinds = [e.kind for e in session.store.audit_entries() if e.kind.startswith("finding.")]
    assert kinds == ["finding.delete", "finding.undo", "finding.redo"]
    assert session.store.verify().ok


def test_dragging_a_rejected_box_keeps_the_verdict_and_shows_the_edit(reviewing, qtbot):
    win, session = reviewing("bob", "reviewer")
    viewer = win.viewer
    win.review.select("f-a", jump=True)
    win.review.reject()
    win.review.select("f-a", jump=True)  # auto-advance moved on: back to the rejected one
    editor = viewer.overlay.editor
    start = view_pos(viewer, editor.mapToScene(QPointF(editor.size().x() / 2, editor.size().y() / 2)))
    drag(qtbot, viewer.view.viewport(), start, QPoint(25, 10))
    qtbot.waitUntil(lambda: len(entries(session, win)) == 2, timeout=5000)
    assert [e.action for e in entries(session, win)] == [Action.REJECT, Action.MOVE]
    assert text_of(win, "f-a", 4) == "rejected, box edited"
    viewer.select_finding(None)
    assert {b.finding_id: b.pen().color() for b in viewer.box_items()}["f-a"] == BOX_COLOURS[State.REJECTED]


def test_a_corner_dragged_onto_its_opposite_is_refused_with_a_message_and_nothing_is_written(reviewing, qtbot):
    win, session = reviewing("bob", "reviewer")
    viewer = win.viewer
    win.review.select("f-b", jump=True)
    editor = viewer.overlay.editor
    top_left = next(h for h in editor.getHandles() if h.pos().x() == 0 and h.pos().y() == 0)
    bottom_right = next(h for h in editor.getHandles() if h.pos().x() > 0 and h.pos().y() > 0)
    start, end = view_pos(viewer, bottom_right.scenePos()), view_pos(viewer, top_left.scenePos())
    drag(qtbot, viewer.view.viewport(), start, end - start + QPoint(1, 1))
    qtbot.waitUntil(lambda: "too small" in win.ai_panel.review.message.text(), timeout=5000)
    assert "nothing was saved" in win.ai_panel.review.message.text()
    assert entries(session, win) == []
    assert viewer.overlay.editor.size().x() > 10  # put back where the store has it
    win.review.edit_box("f-b", (180.0, 150.0, 150.0, 120.0))  # corners in the wrong order are normalised
    assert entries(session, win)[-1].after.box_px == (150.0, 120.0, 180.0, 150.0)


def test_numbers_are_fixed_for_the_run_and_sorting_does_not_renumber(reviewing, qtbot):
    win, session = reviewing("bob", "reviewer")
    before = numbers(win)
    assert before == {"f-a": "1", "f-b": "2", "f-c": "3"}
    win.review.select("f-a")
    win.review.reject()
    win.review.select("f-c")
    win.review.accept()
    assert numbers(win) == before
    panel = win.ai_panel.findings
    panel.sortByColumn(2, Qt.SortOrder.AscendingOrder)  # by score, weakest first: a view choice
    assert [panel.topLevelItem(i).text(0) for i in range(3)] == ["3", "2", "1"] and numbers(win) == before
    win.review.add_box(5, (10.0, 10.0, 40.0, 40.0))
    assert sorted(numbers(win).values()) == ["1", "2", "3", "4"]


def test_comments_are_shown_in_the_list_and_in_the_findings_history(reviewing, qtbot):
    win, session = reviewing("carol", "radiologist")
    review, history = win.ai_panel.review, win.ai_panel.history
    win.review.select("f-b")
    review.comment_edit.setText("check the prior")
    review.comment_action.trigger()
    review.comment_edit.setText("vessel, not a nodule")
    review.reject_action.trigger()
    assert text_of(win, "f-b", 6) == "vessel, not a nodule"
    assert "comment: check the prior" in win.ai_panel.findings.topLevelItem(1).toolTip(6)
    win.review.select("f-b")
    rows = history.texts()
    assert [r[1:] for r in rows] == [["carol (radiologist)", "commented", "check the prior"],
                                     ["carol (radiologist)", "rejected", "vessel, not a nodule"]]
    assert rows[0][0][2:3] == " " and history.headerItem().text(0) == "History of #2"
    win.review.undo()
    win.review.select("f-b")
    rows = history.texts()
    assert rows[1][2] == "rejected  (undone)" and rows[2][2] == "undo: rejected"
    assert history.topLevelItem(1).font(2).strikeOut()
    assert text_of(win, "f-b", 4) == "pending"


def test_pending_count_n_and_p_step_through_pending_findings_shift_through_all(reviewing, qtbot):
    win, session = reviewing("carol", "radiologist")
    viewer, review, panel = win.viewer, win.ai_panel.review, win.ai_panel.findings
    assert review.progress_label.text() == "3 of 3 pending"
    win.review.select("f-b", jump=True)
    qtbot.keyClick(viewer, Qt.Key.Key_A)
    assert review.progress_label.text() == "2 of 3 pending" and panel.selected_id() == "f-c"  # advanced
    qtbot.keyClick(viewer, Qt.Key.Key_N)  # pending only: f-b is skipped, wrapping round to f-a
    assert panel.selected_id() == "f-a"
    qtbot.keyClick(viewer, Qt.Key.Key_N, SHIFT)  # any state: f-b
    assert panel.selected_id() == "f-b"
    qtbot.keyClick(viewer, Qt.Key.Key_P)
    assert panel.selected_id() == "f-a"
    win.review.select("f-a")
    qtbot.keyClick(viewer, Qt.Key.Key_R)
    win.review.select("f-c")
    qtbot.keyClick(viewer, Qt.Key.Key_R)
    assert review.progress_label.text() == "All 3 decided"
    qtbot.keyClick(viewer, Qt.Key.Key_N)
    assert "No finding is pending" in review.message.text() and "Sign off" in review.message.text()


def test_a_site_may_turn_auto_advance_off(start_session, qtbot, small_study):
    session = start_session("carol", "radiologist")
    config = site_config("carol", "radiologist")
    config = type(config)(users=config.users, workstation_id=config.workstation_id,
                          review=ReviewSettings(auto_advance=False))
    win = open_window(qtbot, small_study.directory, session, CannedInference(), config=config)
    run_canned_model(qtbot, win)
    win.review.select("f-a")
    qtbot.keyClick(win.viewer, Qt.Key.Key_A)
    assert win.ai_panel.findings.selected_id() == "f-a"


def test_sign_off_is_refused_while_pending_then_marks_the_study_and_a_reviewer_may_reopen(
        reviewing, start_session, qtbot, small_study):
    win, session = reviewing("carol", "radiologist")
    viewer, review = win.viewer, win.ai_panel.review
    assert review.signoff_label.text() == "Not signed off yet"
    qtbot.keyClick(viewer, Qt.Key.Key_Return, CTRL)
    assert "3 finding(s) still pending (#1, #2, #3)" in review.message.text() and entries(session, win) == []
    for key in (Qt.Key.Key_A, Qt.Key.Key_R, Qt.Key.Key_A):  # N selects #1; each verdict advances to the next
        if win.ai_panel.findings.selected_id() is None:
            qtbot.keyClick(viewer, Qt.Key.Key_N)
        qtbot.keyClick(viewer, key)
    assert review.progress_label.text() == "All 3 decided"
    qtbot.keyClick(viewer, Qt.Key.Key_Enter, CTRL)  # the keypad's Enter works too
    signoff = entries(session, win)[-1]
    assert signoff.action is Action.SIGNOFF
    assert {f["finding_id"]: f["state"] for f in signoff.details["findings"]} == {
        "f-a": "accepted", "f-b": "rejected", "f-c": "accepted"}
    assert session.store.audit_entries()[-1].kind == "review.signoff"
    assert review.signoff_label.text().startswith("✔ Signed off by carol (radiologist) at ")
    key = win.viewer.display_set.key
    assert win.browser.review_mark(key).startswith("✔ reviewed by carol\n   at 20")
    assert "reviewed by carol" in win.browser._items[key].text(0)
    assert not review.accept_action.isEnabled() and not review.undo_action.isEnabled()
    win.review.select("f-b")
    win.review.accept()  # as if the key got through: refused, nothing written
    assert "signed off by carol" in review.message.text() and entries(session, win)[-1] == signoff
    assert not review.reopen_action.isEnabled()  # radiologists do not reopen
    win.close()

    again = start_session("bob", "reviewer")  # later, a reviewer opens the study: the mark comes from the store
    win2 = open_window(qtbot, small_study.directory, again)
    key = win2.viewer.display_set.key
    assert win2.browser.review_mark(key).startswith("✔ reviewed by carol")
    assert win2.ai_panel.review.signoff_label.text().startswith("✔ Signed off by carol")
    win2.review.confirm = lambda title, text: True
    win2.ai_panel.review.comment_edit.setText("second opinion on #2")
    win2.ai_panel.review.reopen_action.trigger()
    assert win2.browser.review_mark(key) == "" and win2.ai_panel.review.signoff_label.text() == "Not signed off yet"
    reopen = again.store.feedback(win2.viewer.display_set.series.series_instance_uid)[-1]
    assert (reopen.action, reopen.reverts, reopen.comment) == (Action.REOPEN, signoff.entry_id, "second opinion on #2")
    assert win2.ai_panel.review.accept_action.isEnabled() is False  # nothing selected yet, but allowed again:
    win2.review.select("f-b")
    assert win2.ai_panel.review.accept_action.isEnabled()


def test_help_lists_every_shortcut(reviewing):
    win, _session = reviewing("bob", "reviewer")
    help_action = next(a for a in win.findChildren(QAction) if a.text() == "&Keyboard shortcuts")
    assert help_action.shortcut().toString() == "F1"
    rows = dict(ShortcutsDialog(win.findChildren(QAction)).rows())
    assert rows["Ctrl+Z"] == "Undo" and rows["Ctrl+Shift+Z"] == "Redo"
    assert rows["Ctrl+Return, Ctrl+Enter"] == "Sign off review"
    assert rows["N"] == "Next pending finding" and rows["Shift+N"] == "Next finding (any state)"
    assert rows["Del"] == "Delete finding" and rows["1 2 3 4 5"].startswith("CT presets")


class SlowInference(CannedInference):
    """Holds the run until released, so a second Run AI arrives while the first is in progress."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def run(self, *args, **kwargs):
        self.release.wait(10)
        return super().run(*args, **kwargs)


def test_a_second_run_ai_during_a_run_is_refused_and_said(start_session, qtbot, small_study):
    session = start_session("bob", "reviewer")
    slow = SlowInference()
    win = open_window(qtbot, small_study.directory, session, slow)
    win.run_model(MODEL_REF)
    assert win.ai_panel.run_button.text() == "Running…" and not win.ai_panel.run_button.isEnabled()
    win.run_model(MODEL_REF)
    assert "already running" in win.statusBar().currentMessage()
    with qtbot.waitSignal(win.inferenceFinished, timeout=10_000):
        slow.release.set()
    assert win.ai_panel.run_button.text() == "Run AI"
    runs = session.store.inference_runs(win.viewer.display_set.series.series_instance_uid)
    assert len(runs) == 1  # one run, not a queued second one
