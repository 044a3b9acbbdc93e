"""Use case "review the AI findings of a series": every action becomes a stored feedback entry.

The session never keeps state of its own beyond the entries it wrote: the
states it reports are always derived from the store, so a reopened study shows
exactly what was saved. Roles are checked by the store when writing. Undo,
redo, sign-off and reopen are entries like any other, so the audit trail
tells the whole story.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from workstation.core.audit import AuditEvent
from workstation.core.events import Event
from workstation.core.findings import Finding, InferenceResult, ModelRef
from workstation.core.review import (
    Action, BoxGeometry, FeedbackEntry, FindingState, SignOff, State, derive_states, entry_refusal, sign_off_of,
    undo_redo_targets, undone_ids,
)
from workstation.core.roles import Permission, User
from workstation.core.study import DisplaySet
from workstation.store.database import Store, StoredRun, now_utc

MIN_BOX_PX = 3.0  # a box smaller than this (or than MIN_BOX_MM where the spacing is known) is a slip
MIN_BOX_MM = 2.0


class SavedButUnread(RuntimeError):
    """The entry was written; reading the review back afterwards failed (the window must not say "not saved")."""


class ReviewRefused(ValueError):
    """An action the review's state does not allow (signed off, nothing to undo, findings pending)."""


@dataclass(frozen=True)
class SeriesKey:
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uids: tuple[str, ...]  # per display frame
    pixel_spacing: tuple[float, float] | None = None  # (row mm, column mm) of the frames, when calibrated

    @classmethod
    def of(cls, display_set: DisplaySet) -> SeriesKey:
        series = display_set.series
        spacing = display_set.frames[0].instance.pixel_spacing if display_set.frames else None
        return cls(series.study.study_instance_uid, series.series_instance_uid,
                   tuple(frame.instance.sop_instance_uid for frame in display_set.frames), spacing)


@dataclass(frozen=True)
class HistoryLine:
    """One entry about a finding, as the history view lists it."""

    entry: FeedbackEntry
    undone: bool  # reverted by an undo that is still in force
    text: str  # what happened, in words


class ReviewService:
    """Keeps inference runs and opens review sessions for the signed-in user."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def user(self) -> User:
        return self.store.identity.user

    def record_run(self, result: InferenceResult, event: AuditEvent) -> None:
        """Connected to InferenceService.run_recorded: the findings are kept so a reopened study shows them."""
        self.store.record_inference(result, event)

    def last_run(self, series_instance_uid: str) -> StoredRun | None:
        runs = self.store.inference_runs(series_instance_uid)
        return runs[0] if runs else None

    def latest_signoff(self, series_instance_uid: str) -> SignOff | None:
        """The sign-off of the series' newest stored run (the study browser's mark), or None."""
        runs = self.store.inference_runs(series_instance_uid)
        return run_signoff(self.store, runs[0]) if runs else None

    def session(self, display_set: DisplaySet, model: ModelRef, findings: list[Finding],
                labels: tuple[str, ...] = ()) -> ReviewSession:
        return ReviewSession(self.store, SeriesKey.of(display_set), model, findings, labels)


class ReviewSession:
    """The findings of one model run on one series, under review."""

    def __init__(self, store: Store, key: SeriesKey, model: ModelRef, findings: list[Finding],
                 labels: tuple[str, ...] = ()) -> None:
        self.store, self.key, self.model = store, key, model
        self.findings = list(findings)
        self.labels = tuple(labels) or tuple(dict.fromkeys(f.label for f in findings)) or ("finding",)
        self.changed = Event()  # (FindingState or None) after each recorded action
        self._entries: list[FeedbackEntry] = []
        self._states: dict[str, FindingState] = {}
        self._signoff: SignOff | None = None
        self._load()

    @property
    def user(self) -> User:
        return self.store.identity.user

    def may(self, permission: Permission) -> bool:
        return self.user.may(permission)

    # ----- reading
    def states(self) -> list[FindingState]:
        """Visible findings by their fixed number (the model's strongest first, then the ones reviewers added)."""
        return sorted((s for s in self._states.values() if s.visible), key=lambda s: s.number)

    def state(self, finding_id: str) -> FindingState:
        return self._states[finding_id]

    def all_states(self) -> list[FindingState]:
        """Every finding by number, deleted ones too (status reports list them as deleted)."""
        return sorted(self._states.values(), key=lambda s: s.number)

    def counts(self) -> dict[State, int]:
        counts = {state: 0 for state in State}
        for state in self._states.values():
            counts[state.state] += 1
        return counts

    def pending(self) -> list[FindingState]:
        return [s for s in self.states() if s.pending]

    @property
    def signoff(self) -> SignOff | None:
        return self._signoff

    def history(self, finding_id: str) -> list[HistoryLine]:
        """Every entry about the finding (undone ones too), oldest first."""
        undone = undone_ids(self._entries)
        by_id = {e.entry_id: e for e in self._entries}
        return [HistoryLine(e, e.entry_id in undone, describe(e, by_id)) for e in self._entries
                if e.finding_id == finding_id]

    def undo_target(self) -> FeedbackEntry | None:
        return undo_redo_targets(self._entries, self.user.login)[0]

    def redo_target(self) -> FeedbackEntry | None:
        """The entry Redo would put back in force (not the undo it reverts)."""
        undo = undo_redo_targets(self._entries, self.user.login)[1]
        return next((e for e in self._entries if undo is not None and e.entry_id == undo.reverts), None)

    def number(self, finding_id: str) -> int:
        state = self._states.get(finding_id)
        return state.number if state else 0

    # ----- actions (each one stored entry; PermissionDenied when the role does not allow it)
    def accept(self, finding_id: str, comment: str = "") -> FindingState:
        return self._record(Action.ACCEPT, finding_id, comment=comment)

    def reject(self, finding_id: str, comment: str = "") -> FindingState:
        return self._record(Action.REJECT, finding_id, comment=comment)

    def comment(self, finding_id: str, text: str) -> FindingState:
        text = text.strip()
        if not text:
            raise ValueError("an empty comment is not recorded")
        return self._record(Action.COMMENT, finding_id, comment=text)

    def edit_box(self, finding_id: str, box_px: tuple[float, float, float, float], frame_index: int | None = None) -> FindingState:
        """Move (same size) or resize a box; a no-op edit writes nothing. The verdict is never changed by it."""
        before = self._states[finding_id].geometry
        frame = before.frame_index if frame_index is None else frame_index
        after = self._geometry(frame, box_px)
        if after.box_px == before.box_px and after.frame_index == before.frame_index:
            return self._states[finding_id]
        same_size = _size(after.box_px) == _size(before.box_px)
        return self._record(Action.MOVE if same_size else Action.RESIZE, finding_id, before=before, after=after)

    def relabel(self, finding_id: str, label: str) -> FindingState:
        label = label.strip()
        if not label:
            raise ValueError("a label may not be empty")
        if label == self._states[finding_id].label:
            return self._states[finding_id]
        return self._record(Action.RELABEL, finding_id, label=label)

    def delete(self, finding_id: str, comment: str = "") -> FindingState:
        geometry = self._states[finding_id].geometry
        return self._record(Action.DELETE, finding_id, before=geometry, comment=comment)

    def add(self, frame_index: int, box_px: tuple[float, float, float, float], label: str) -> FindingState:
        """A finding the model missed; returns its state (with a new finding id)."""
        label = label.strip()
        if not label:
            raise ValueError("a label may not be empty")
        return self._record(Action.ADD, str(uuid.uuid4()), after=self._geometry(frame_index, box_px), label=label)

    def undo(self) -> FindingState:
        """Revert this user's last action in this run (a new entry naming it); returns the finding's state."""
        target = self.undo_target()
        if target is None:
            raise ReviewRefused("nothing of yours to undo in this review")
        return self._record(Action.UNDO, target.finding_id, reverts=target.entry_id, known=False)

    def redo(self) -> FindingState:
        undo = undo_redo_targets(self._entries, self.user.login)[1]
        if undo is None:
            raise ReviewRefused("nothing to redo")
        return self._record(Action.REDO, undo.finding_id, reverts=undo.entry_id, known=False)

    def sign_off(self, comment: str = "") -> SignOff:
        """Mark the run's review complete; refused while findings are pending or when it is signed off already."""
        if self._signoff is not None:
            raise ReviewRefused(f"already signed off by {self._signoff.by} at {self._signoff.at_utc[:16]}")
        pending = self.pending()
        if pending:
            numbers = ", ".join(f"#{s.number}" for s in pending)
            raise ReviewRefused(f"{len(pending)} finding(s) still pending ({numbers}): accept or reject each first")
        details = {
            "model": {"name": self.model.name, "version": self.model.version, "sha256": self.model.sha256},
            "counts": {state.value: n for state, n in self.counts().items() if n},
            "findings": [final_state(s) for s in sorted(self._states.values(), key=lambda s: s.number)],
        }
        self._record(Action.SIGNOFF, "", comment=comment, details=details)
        return self._signoff

    def reopen(self, comment: str = "") -> None:
        """A reviewer reopens a signed-off review (recorded); decisions can be changed again."""
        if self._signoff is None:
            raise ReviewRefused("this review is not signed off")
        self._record(Action.REOPEN, "", reverts=self._signoff.entry_id, comment=comment)

    # ----- internals
    def _record(self, action: Action, finding_id: str, before: BoxGeometry | None = None,
                after: BoxGeometry | None = None, label: str = "", comment: str = "", reverts: str = "",
                details: dict | None = None, known: bool = True) -> FindingState | None:
        if finding_id and known and action is not Action.ADD and finding_id not in self._states:
            raise KeyError(f"no finding {finding_id} in this review")
        if self._signoff is not None and action is not Action.REOPEN:
            raise ReviewRefused(f"signed off by {self._signoff.by} at {self._signoff.at_utc[:16].replace('T', ' ')}"
                                " UTC: a reviewer must reopen it before anything changes")
        user = self.user
        current = self._states.get(finding_id)
        geometry = after or before or (current.geometry if current else None)
        entry = FeedbackEntry(
            entry_id=str(uuid.uuid4()), action=action, finding_id=finding_id,
            study_instance_uid=self.key.study_instance_uid, series_instance_uid=self.key.series_instance_uid,
            sop_instance_uid=geometry.sop_instance_uid if geometry else "", model_name=self.model.name,
            model_version=self.model.version, user=user.login, role=user.role.value if user.role else "",
            workstation_id=self.store.identity.workstation_id, at_utc=now_utc(), before=before, after=after,
            label=label, comment=comment.strip(), reverts=reverts, details=details,
        )
        refusal = entry_refusal(self.store.feedback(self.key.series_instance_uid), entry)
        if refusal:  # said plainly here; the store would refuse it too (and record the attempt)
            raise ReviewRefused(f"not possible: {refusal}")
        self.store.record_feedback(entry)
        try:
            self._load()
        except Exception as exc:  # the entry is stored; only showing it failed - never say "not saved"
            raise SavedButUnread(f"saved, but the review could not be read back: {exc}") from exc
        state = self._states.get(finding_id)
        self.changed.emit(state)
        return state

    def _load(self) -> None:
        own = {f.finding_id for f in self.findings}
        self._entries = [e for e in self.store.feedback(self.key.series_instance_uid)
                         if (e.model_name, e.model_version) == (self.model.name, self.model.version)
                         or e.finding_id in own]
        self._states = derive_states(self.findings, self._entries)
        self._signoff = sign_off_of(self._entries, set(self._states))

    def _geometry(self, frame_index: int, box_px: tuple[float, float, float, float]) -> BoxGeometry:
        frames = len(self.key.sop_instance_uids)
        if not 0 <= frame_index < frames:
            raise ValueError(f"frame {frame_index} is outside the series (0-{frames - 1})")
        c0, r0, c1, r1 = (round(float(v), 2) for v in box_px)
        c0, c1 = sorted((c0, c1))
        r0, r1 = sorted((r0, r1))
        if c1 - c0 < MIN_BOX_PX or r1 - r0 < MIN_BOX_PX:
            raise ValueError(f"box too small ({c1 - c0:.0f} x {r1 - r0:.0f} px): at least {MIN_BOX_PX:g} pixels "
                             "wide and high; nothing was saved")
        if self.key.pixel_spacing:
            row_mm, col_mm = self.key.pixel_spacing
            width, height = (c1 - c0) * col_mm, (r1 - r0) * row_mm
            if width < MIN_BOX_MM or height < MIN_BOX_MM:
                raise ValueError(f"box too small ({width:.1f} x {height:.1f} mm): at least {MIN_BOX_MM:g} mm "
                                 "wide and high; nothing was saved")
        return BoxGeometry(frame_index, (c0, r0, c1, r1), self.key.sop_instance_uids[frame_index])


def run_signoff(store: Store, run: StoredRun) -> SignOff | None:
    """The sign-off in force for a stored run (a reopen ends it), folded from the store like the window does."""
    key = SeriesKey(run.study_instance_uid, run.series_instance_uid, ())
    return ReviewSession(store, key, run.model, run.findings).signoff


def final_state(state: FindingState) -> dict:
    """A finding as the sign-off records it: enough for SR/report building later, no patient data."""
    return {"finding_id": state.finding_id, "number": state.number, "label": state.label, "state": state.state.value,
            "score": state.score, "box_edited": state.box_edited, "relabelled": state.relabelled,
            "geometry": state.geometry.to_dict(), "by": state.by, "role": state.role, "at_utc": state.at_utc}


_VERBS = {Action.ACCEPT: "accepted", Action.REJECT: "rejected", Action.COMMENT: "commented",
          Action.MOVE: "moved the box", Action.RESIZE: "resized the box", Action.RELABEL: "relabelled",
          Action.DELETE: "deleted", Action.ADD: "added", Action.SIGNOFF: "signed off", Action.REOPEN: "reopened"}


def describe(entry: FeedbackEntry, by_id: dict[str, FeedbackEntry]) -> str:
    """An entry in words ('accepted', 'undid: rejected', 'relabelled as mass')."""
    if entry.action in (Action.UNDO, Action.REDO):
        target = by_id.get(entry.reverts)
        if entry.action is Action.REDO and target is not None:
            target = by_id.get(target.reverts)
        what = _VERBS.get(target.action, target.action.value) if target else "an unknown entry"
        return f"{entry.action.value}: {what}"
    text = _VERBS[entry.action]
    if entry.action in (Action.RELABEL, Action.ADD) and entry.label:
        text += f" as {entry.label}"
    if entry.action in (Action.MOVE, Action.RESIZE) and entry.after is not None:
        c0, r0, c1, r1 = entry.after.box_px
        text += f" to {c1 - c0:.0f} x {r1 - r0:.0f} px on slice {entry.after.frame_index + 1}"
    return text


def _size(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return (round(box[2] - box[0], 2), round(box[3] - box[1], 2))
