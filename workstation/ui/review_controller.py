"""Connects a review session (services) to the findings list, the review panel and the viewer.

The controller keeps no review state of its own: after every action the
session derives the states from the store and list and boxes are redrawn from
them, so what is shown is what was saved. A refused action (role, invalid
box, store failure) becomes a message in the panel and the status bar, never
an exception escaping a slot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from workstation.core.findings import Finding, ModelRef
from workstation.core.review import FindingState, derive_states
from workstation.core.roles import Permission, PermissionDenied
from workstation.core.study import DisplaySet
from workstation.services.review import ReviewService, ReviewSession
from workstation.ui.findings_panel import FindingsPanel
from workstation.ui.review_panel import ReviewPanel
from workstation.ui.viewer import SliceViewer

log = logging.getLogger(__name__)

NO_SELECTION = "Select a finding first: click it in the list or on the image, or press N."


class ReviewController(QObject):
    statesChanged = Signal()  # the list and boxes were redrawn (after an action, or a new run)

    def __init__(self, panel: ReviewPanel, table: FindingsPanel, viewer: SliceViewer,
                 service: ReviewService | None, disabled_reason: str = "",
                 notify: Callable[[str], None] = lambda _text: None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.panel, self.table, self.viewer, self.service = panel, table, viewer, service
        self.disabled_reason = disabled_reason
        self.notify = notify
        self.review: ReviewSession | None = None
        self.findings: list[Finding] = []
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
        panel.next_action.triggered.connect(lambda: self.step(1))
        panel.previous_action.triggered.connect(lambda: self.step(-1))
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
        if run is None or any(f.frame_index >= len(display_set.frames) for f in run.findings):
            self.clear()  # none, or made for another version of this series
            return None
        self.begin(display_set, run.model, run.findings, labels_for(run.model))
        return run

    def clear(self) -> None:
        """No findings (another series, or none yet)."""
        self._detach()
        self.findings = []
        self.panel.draw_action.setChecked(False)
        self._refresh()

    def states(self) -> list[FindingState]:
        if self.review is not None:
            return self.review.states()
        return sorted(derive_states(self.findings, []).values(), key=lambda s: -(s.score or 0.0))

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
        self._update_controls()

    def step(self, delta: int) -> None:
        """N / P: the next or previous finding in the list, shown in the viewer."""
        state = self.table.neighbour(delta)
        if state is not None:
            self.select(state.finding_id, jump=True)

    # ----- actions (each is one stored entry)
    def accept(self) -> None:
        self._decide("accepted", lambda review, fid, text: review.accept(fid, comment=text))

    def reject(self) -> None:
        self._decide("rejected", lambda review, fid, text: review.reject(fid, comment=text))

    def comment(self) -> None:
        text = self.panel.comment_edit.text().strip()
        if not text:
            self._error("Type the comment first, then press Comment (or Accept / Reject to attach it).")
            return
        self._decide("commented", lambda review, fid, _text: review.comment(fid, text))

    def delete(self) -> None:
        self._decide("deleted", lambda review, fid, text: review.delete(fid, comment=text))

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

    def _decide(self, done: str, call: Callable[[ReviewSession, str, str], FindingState]) -> None:
        text = self.panel.comment_edit.text().strip()
        if self._on_selected(done, lambda review, fid: call(review, fid, text)) is not None:
            self.panel.comment_edit.clear()

    def _on_selected(self, done: str, call: Callable[[ReviewSession, str], FindingState]) -> FindingState | None:
        finding_id = self.table.selected_id()
        if finding_id is None:
            self._error(NO_SELECTION)
            return None
        return self._act(done, lambda review: call(review, finding_id))

    def _act(self, done: str, call: Callable[[ReviewSession], FindingState]) -> FindingState | None:
        if self.review is None:
            self._error(self.disabled_reason or "Review disabled: no findings under review.")
            return None
        try:
            state = call(self.review)
        except PermissionDenied as exc:
            self._error(f"Not allowed: {exc}. Nothing was saved.")
        except (ValueError, KeyError) as exc:
            self._error(f"Not saved: {exc}")
        except Exception as exc:  # noqa: BLE001 - a store failure: say so, keep the window
            log.exception("review action failed")
            self._error(f"Not saved: the store could not write it ({exc})")
        else:
            self._info(f"{state.label} {done} by {state.by or self.review.user.login}")
            return state
        self._refresh()  # put an edited box back where the store has it
        return None

    # ----- showing
    def _session_changed(self, _state: FindingState) -> None:
        self._refresh()

    def _refresh(self) -> None:
        states = self.states()
        self.table.show_states(states, self.findings)
        self.viewer.set_states(states)
        self.viewer.select_finding(self.table.selected_id())
        self._update_controls()
        self.statesChanged.emit()

    def _update_controls(self) -> None:
        panel, chosen = self.panel, self.table.selected_id() is not None
        decide, comment = self.may(Permission.DECIDE), self.may(Permission.COMMENT)
        edit, add = self.may(Permission.EDIT), self.may(Permission.ADD)
        panel.accept_action.setEnabled(chosen and decide)
        panel.reject_action.setEnabled(chosen and decide)
        panel.comment_action.setEnabled(chosen and comment)
        panel.comment_edit.setEnabled(decide or comment)
        panel.delete_action.setEnabled(chosen and edit)
        panel.relabel_action.setEnabled(chosen and edit)
        panel.draw_action.setEnabled(add)
        panel.label_box.setEnabled(edit or add)
        has_rows = self.table.topLevelItemCount() > 0
        panel.next_action.setEnabled(has_rows)
        panel.previous_action.setEnabled(has_rows)
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

    def _error(self, text: str) -> None:
        self.panel.show_message(text, error=True)
        self.notify(text)

    def _info(self, text: str) -> None:
        self.panel.show_message(text)
        self.notify(text)
