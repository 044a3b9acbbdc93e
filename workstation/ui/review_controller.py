"""Connects a review session (services) to the findings list, the review panel and the viewer.

The controller keeps no review state of its own: after every action the
session derives the states from the store and list and boxes are redrawn from
them, so what is shown is what was saved. A refused action (role, invalid
box, signed-off review, store failure) becomes a message in the panel and the
status bar, never an exception escaping a slot. Deleting asks first; undo and
redo are stored entries too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox

from workstation.core.findings import Finding, ModelRef
from workstation.core.review import FindingState, derive_states
from workstation.core.roles import Permission, PermissionDenied
from workstation.core.study import DisplaySet
from workstation.ui.finding_history import FindingHistory
from workstation.ui.findings_panel import FindingsPanel
from workstation.ui.review_panel import ReviewPanel
from workstation.ui.review_style import score_text
from workstation.ui.viewer import SliceViewer

if TYPE_CHECKING:  # the review service (and the store under it) loads with the work session, not with the window
    from workstation.services.review import ReviewService, ReviewSession

log = logging.getLogger(__name__)

NO_SELECTION = "Select a finding first: click it in the list or on the image, or press N."


def ask(parent, title: str, text: str) -> bool:
    """A yes/no question with No as the default (Enter on a stray dialog must not delete)."""
    answer = QMessageBox.question(parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def describe(entry, labels) -> str:
    """services.review's words for a review entry (imported on first use: only a session has entries)."""
    from workstation.services.review import describe as describe_entry

    return describe_entry(entry, labels)


class ReviewController(QObject):
    statesChanged = Signal()  # the list and boxes were redrawn (after an action, or a new run)
    signedOff = Signal()  # a review was signed off just now (results may go to the PACS)

    def __init__(self, panel: ReviewPanel, table: FindingsPanel, viewer: SliceViewer,
                 service: ReviewService | None, disabled_reason: str = "",
                 notify: Callable[[str], None] = lambda _text: None, parent: QObject | None = None,
                 history: FindingHistory | None = None, auto_advance: bool = True,
                 confirm: Callable[[str, str], bool] | None = None) -> None:
        super().__init__(parent)
        self.panel, self.table, self.viewer, self.service = panel, table, viewer, service
        self.history = history
        self.auto_advance = auto_advance
        self.confirm = confirm or (lambda title, text: ask(viewer.window(), title, text))
        self.disabled_reason = disabled_reason
        self.notify = notify
        self.review: ReviewSession | None = None
        self.findings: list[Finding] = []
        self._marks_read: set[str] = set()
        self._foreign: list[FindingState] | None = None  # read-only findings from stored result objects
        self._connect()
        self._show_user()
        self._update_controls()

    def _connect(self) -> None:
        panel = self.panel
        panel.accept_action.triggered.connect(self.accept)
        panel.reject_action.triggered.connect(self.reject)
        panel.comment_action.triggered.connect(self.comment)
        panel.delete_action.triggered.connect(self.delete)
        panel.relabel_action.triggered.connect(self.relabel)
        panel.next_action.triggered.connect(lambda: self.step(1, pending_only=True))
        panel.previous_action.triggered.connect(lambda: self.step(-1, pending_only=True))
        panel.next_any_action.triggered.connect(lambda: self.step(1))
        panel.previous_any_action.triggered.connect(lambda: self.step(-1))
        panel.undo_action.triggered.connect(self.undo)
        panel.redo_action.triggered.connect(self.redo)
        panel.signoff_action.triggered.connect(self.sign_off)
        panel.reopen_action.triggered.connect(self.reopen)
        panel.draw_action.toggled.connect(self.viewer.set_draw_mode)
        self.table.findingActivated.connect(lambda state: self.select(state.finding_id, jump=True))
        self.table.selectionMoved.connect(lambda state: self.select(state.finding_id if state else None, jump=True))
        self.viewer.findingClicked.connect(lambda finding_id: self.select(finding_id, jump=False))
        self.viewer.boxEdited.connect(self.edit_box)
        self.viewer.boxDrawn.connect(self.add_box)

    # ----- which findings are under review
    def begin(self, display_set: DisplaySet, model: ModelRef, findings: list[Finding], labels: tuple[str, ...] = ()) -> None:
        """Review one model run's findings on the series (a live result or the stored run)."""
        self._detach()
        self.panel.draw_action.setChecked(False)
        self.findings = list(findings)
        if self.service is not None:
            try:
                self.review = self.service.session(display_set, model, self.findings, labels)
            except Exception as exc:  # noqa: BLE001 - a store that fails to read: show the findings, disable review
                log.exception("review session could not be opened")
                self._error(f"Review disabled: the saved review could not be read ({exc})")
            else:
                self.review.changed.connect(self._session_changed)
        self.panel.set_labels(self.review.labels if self.review else tuple(labels) or
                              tuple(dict.fromkeys(f.label for f in findings)) or ("finding",))
        self.viewer.set_findings(str(model), self.findings, self.states())
        self._refresh()

    def reopen_saved(self, display_set: DisplaySet, labels_for: Callable[[ModelRef], tuple[str, ...]]):
        """The series' last stored run under review again (states from the store); returns it, or None."""
        run = None
        if self.service is not None:
            try:
                run = self.service.last_run(display_set.series.series_instance_uid)
            except Exception as exc:  # noqa: BLE001 - the viewer stays usable
                log.exception("stored runs could not be read")
                self._error(f"Saved AI findings could not be read: {exc}")
        here = [f.instance.sop_instance_uid for f in display_set.frames]
        if run is None or any(f.frame_index >= len(here) or (f.sop_instance_uid and here[f.frame_index] != f.sop_instance_uid)
                              for f in run.findings):
            self.clear()  # none, or made for another version or another part of this series
            return None
        self.begin(display_set, run.model, run.findings, labels_for(run.model))
        return run

    def show_foreign(self, findings: list[Finding], states: list[FindingState], model_text: str, reason: str) -> None:
        """Findings read from stored result objects (an SR from the PACS): listed and drawn, never reviewable here."""
        self._detach()
        self.panel.draw_action.setChecked(False)
        self.findings = list(findings)
        self._foreign = list(states)
        self.viewer.set_findings(model_text, self.findings, self._foreign)
        self._refresh()
        self.panel.set_disabled_reason(reason)
        self.panel.set_signoff("")

    def clear(self) -> None:
        """No findings (another series, or none yet)."""
        self._detach()
        self.findings = []
        self.panel.draw_action.setChecked(False)
        self._refresh()

    def states(self) -> list[FindingState]:
        if self.review is not None:
            return self.review.states()
        if self._foreign is not None:
            return [s for s in self._foreign if s.visible]
        return sorted(derive_states(self.findings, []).values(), key=lambda s: s.number)

    def stored_marks(self, display_sets: list[DisplaySet]) -> dict[str, str]:
        """Study browser marks of series signed off earlier (read from the store when studies are opened)."""
        marks = {}
        for display_set in display_sets if self.service is not None else ():
            if display_set.key in self._marks_read:
                continue  # a retrieval in progress changes the catalog often: each series is read once
            self._marks_read.add(display_set.key)
            try:
                signoff = self.service.latest_signoff(display_set.series.series_instance_uid)
            except Exception:  # noqa: BLE001 - a mark is a convenience; the viewer stays usable
                log.exception("sign-off of a series could not be read")
                continue
            if signoff is not None:
                marks[display_set.key] = _mark(signoff)
        return marks

    def review_mark(self) -> str:
        """The study browser's mark for the series under review ('' when not signed off)."""
        signoff = self.review.signoff if self.review is not None else None
        return _mark(signoff) if signoff else ""

    def may(self, permission: Permission) -> bool:
        return self.review is not None and self.review.may(permission)

    # ----- selection
    def select(self, finding_id: str | None, jump: bool = False) -> None:
        state = next((s for s in self.states() if s.finding_id == finding_id), None) if finding_id else None
        if self.table.selected_id() != (state.finding_id if state else None):
            self.table.blockSignals(True)
            self.table.select(state.finding_id if state else None)
            self.table.blockSignals(False)
        self.viewer.select_finding(state.finding_id if state else None)
        if state is not None and jump:
            self.viewer.focus_box(state.geometry.frame_index, state.geometry.box_px)
        self._show_history()
        self._update_controls()

    def step(self, delta: int, pending_only: bool = False) -> None:
        """N / P: the next or previous pending finding (Shift: any finding), shown in the viewer."""
        state = self.table.neighbour(delta, pending_only)
        if state is not None:
            self.select(state.finding_id, jump=True)
        elif pending_only and self.table.topLevelItemCount():
            self._info("No finding is pending" + (": Sign off (Ctrl+Enter) completes the review."
                                                  if self.review is not None and self.review.signoff is None else "."))

    # ----- actions (each is one stored entry)
    def accept(self) -> None:
        if self._decide("accepted", lambda review, fid, text: review.accept(fid, comment=text)):
            self._advance()

    def reject(self) -> None:
        if self._decide("rejected", lambda review, fid, text: review.reject(fid, comment=text)):
            self._advance()

    def _advance(self) -> None:
        """After a verdict, on to the next pending finding (a site may turn this off)."""
        if self.auto_advance:
            state = self.table.neighbour(1, pending_only=True)
            if state is not None:
                self.select(state.finding_id, jump=True)

    def comment(self) -> None:
        text = self.panel.comment_edit.text().strip()
        if not text:
            self._error("Type the comment first, then press Comment (or Accept / Reject to attach it).")
            return
        self._decide("commented", lambda review, fid, _text: review.comment(fid, text))

    def delete(self) -> None:
        """Asks first (No is the default); Ctrl+Z brings the finding back."""
        state = self.table.selected()
        if state is None:
            self._error(NO_SELECTION)
            return
        score = "" if state.score is None else f" (score {score_text(state.score)})"
        if not self.confirm("Delete finding", f"Delete finding #{state.number} {state.label}{score} on slice "
                            f"{state.geometry.frame_index + 1}?\n\nIt disappears from the list and the image; "
                            "Review > Undo (Ctrl+Z) brings it back, and the deletion stays in the audit trail."):
            self._info("Not deleted.")
            return
        self._decide("deleted", lambda review, fid, text: review.delete(fid, comment=text))

    def undo(self) -> None:
        self._revert("Undone", lambda review: review.undo_target(), lambda review: review.undo())

    def redo(self) -> None:
        self._revert("Redone", lambda review: review.redo_target(), lambda review: review.redo())

    def _revert(self, done: str, target, call) -> None:
        entry = target(self.review) if self.review is not None else None
        what = f"{describe(entry, {})} #{self.review.number(entry.finding_id)}" if entry is not None else ""
        state = self._attempt(call)
        if state is self._FAILED:
            return
        self._info(f"{done}: {what}" if what else done)
        if state is not None and state.visible:
            self.select(state.finding_id, jump=True)

    def sign_off(self) -> None:
        """Ctrl+Enter: the review of this run is complete for this reader (refused while findings are pending)."""
        signoff = self._attempt(lambda review: review.sign_off(self.panel.comment_edit.text()))
        if signoff is not self._FAILED:
            self.panel.comment_edit.clear()
            self._info(f"Review signed off by {signoff.by} at {_when(signoff.at_utc)}")
            self.signedOff.emit()

    def reopen(self) -> None:
        if self.review is None or self.review.signoff is None:
            self._error("This review is not signed off.")
            return
        if not self.confirm("Reopen review", f"Reopen the review signed off by {self.review.signoff.by}? "
                            "Decisions can then change; the reopening is recorded."):
            return
        if self._attempt(lambda review: review.reopen(self.panel.comment_edit.text())) is not self._FAILED:
            self.panel.comment_edit.clear()
            self._info("Review reopened: decisions can change; sign off again when done.")

    def relabel(self) -> None:
        label = self.panel.label_box.currentText()
        self._on_selected("relabelled", lambda review, fid: review.relabel(fid, label))

    def edit_box(self, finding_id: str, box_px) -> None:
        """A reviewer released a dragged or resized box (pixel edges on the finding's frame)."""
        self._act("box changed", lambda review: review.edit_box(finding_id, tuple(box_px)))

    def add_box(self, frame_index: int, box_px) -> None:
        """A box drawn in draw mode: a finding the model missed, with the label chosen in the panel."""
        self.panel.draw_action.setChecked(False)
        label = self.panel.label_box.currentText()
        added = self._act("box added", lambda review: review.add(frame_index, tuple(box_px), label))
        if added is not None:
            self.select(added.finding_id)

    def _decide(self, done: str, call: Callable[[ReviewSession, str, str], FindingState]) -> bool:
        text = self.panel.comment_edit.text().strip()
        if self._on_selected(done, lambda review, fid: call(review, fid, text)) is not None:
            self.panel.comment_edit.clear()
            return True
        return False

    def _on_selected(self, done: str, call: Callable[[ReviewSession, str], FindingState]) -> FindingState | None:
        finding_id = self.table.selected_id()
        if finding_id is None:
            self._error(NO_SELECTION)
            return None
        return self._act(done, lambda review: call(review, finding_id))

    _FAILED = object()

    def _act(self, done: str, call: Callable[[ReviewSession], FindingState]) -> FindingState | None:
        state = self._attempt(call)
        if state is self._FAILED or state is None:
            return None
        self._info(f"#{state.number} {state.label} {done} by {state.by or self.review.user.login}")
        return state

    def _attempt(self, call: Callable[[ReviewSession], object]):
        """Run one review action; a refusal becomes a message and `_FAILED` is returned."""
        if self.review is None:
            self._error(self.disabled_reason or "Review disabled: no findings under review.")
            return self._FAILED
        from workstation.services.review import SavedButUnread  # loaded already: a review comes from the service

        try:
            return call(self.review)
        except PermissionDenied as exc:
            self._error(f"Not allowed: {exc}. Nothing was saved.")
        except SavedButUnread as exc:
            log.exception("review re-read failed")
            self._error(f"Saved. {str(exc)[7:].capitalize()}; reopen the series to see it.")
        except (ValueError, KeyError) as exc:
            self._error(f"Not saved: {exc}")
        except Exception as exc:  # noqa: BLE001 - a store failure: say so, keep the window
            log.exception("review action failed")
            self._error(f"Not saved: the store could not write it ({exc})")
        self._refresh()  # put an edited box back where the store has it
        return self._FAILED

    # ----- showing
    def _session_changed(self, _state: FindingState) -> None:
        self._refresh()

    def _refresh(self) -> None:
        states = self.states()
        self.table.show_states(states, self.findings)
        self.viewer.set_states(states)
        self.viewer.select_finding(self.table.selected_id())
        self.panel.set_progress(sum(s.pending for s in states), len(states))
        signoff = self.review.signoff if self.review is not None else None
        self.panel.set_signoff(f"✔ Signed off by {signoff.by} ({signoff.role}) at {_when(signoff.at_utc)}" if signoff
                               else "Not signed off yet" if self.review is not None and states else "")
        self._show_history()
        self._update_controls()
        self.statesChanged.emit()

    def _show_history(self) -> None:
        if self.history is None:
            return
        finding_id = self.table.selected_id()
        if self.review is None or finding_id is None:
            self.history.show_lines(None, [])
        else:
            self.history.show_lines(self.review.number(finding_id), self.review.history(finding_id))

    def _update_controls(self) -> None:
        panel, chosen = self.panel, self.table.selected_id() is not None
        signed = self.review is not None and self.review.signoff is not None
        decide, comment = self.may(Permission.DECIDE) and not signed, self.may(Permission.COMMENT) and not signed
        edit, add = self.may(Permission.EDIT) and not signed, self.may(Permission.ADD) and not signed
        undo = self.review.undo_target() if self.review is not None and not signed else None
        redo = self.review.redo_target() if self.review is not None and not signed else None
        panel.undo_action.setEnabled(undo is not None)
        panel.undo_action.setText(f"&Undo {describe(undo, {})} #{self.review.number(undo.finding_id)}" if undo else "&Undo")
        panel.redo_action.setEnabled(redo is not None)
        panel.redo_action.setText(f"Re&do {describe(redo, {})} #{self.review.number(redo.finding_id)}" if redo else "Re&do")
        panel.signoff_action.setEnabled(self.may(Permission.DECIDE) and not signed)
        panel.reopen_action.setEnabled(signed and self.may(Permission.EDIT))
        panel.accept_action.setEnabled(chosen and decide)
        panel.reject_action.setEnabled(chosen and decide)
        panel.comment_action.setEnabled(chosen and comment)
        panel.comment_edit.setEnabled(decide or comment)
        panel.delete_action.setEnabled(chosen and edit)
        panel.relabel_action.setEnabled(chosen and edit)
        panel.draw_action.setEnabled(add)
        panel.label_box.setEnabled(edit or add)
        has_rows = self.table.topLevelItemCount() > 0
        for action in (panel.next_action, panel.previous_action, panel.next_any_action, panel.previous_any_action):
            action.setEnabled(has_rows)
        self.viewer.set_editable(edit)

    def _show_user(self) -> None:
        if self.service is None:
            self.panel.set_user("", False)
            self.panel.set_disabled_reason(self.disabled_reason or "Review disabled")
            return
        user = self.service.user
        role = user.role.value if user.role else "no role"
        self.panel.set_user(f"Signed in as {user.login} ({role})", user.may(Permission.EDIT))
        if user.role is None:
            self.panel.set_disabled_reason(
                f"Review disabled: {user.login} has no role in the site configuration (viewing only).")
        else:
            self.panel.set_disabled_reason("")

    def _detach(self) -> None:
        if self.review is not None:
            self.review.changed.disconnect(self._session_changed)
        self.review = None
        if self._foreign is not None:
            self._foreign = None
            self._show_user()  # the read-only note goes

    def _error(self, text: str) -> None:
        self.panel.show_message(text, error=True)
        self.notify(text)

    def _info(self, text: str) -> None:
        self.panel.show_message(text)
        self.notify(text)


def _when(at_utc: str) -> str:
    return at_utc[:16].replace("T", " ") + " UTC"


def _mark(signoff) -> str:
    return f"✔ reviewed by {signoff.by}\n   at {_when(signoff.at_utc)}"
