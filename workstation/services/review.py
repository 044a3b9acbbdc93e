"""Use case "review the AI findings of a series": every action becomes a stored feedback entry.

The session never keeps state of its own beyond the entries it wrote: the
states it reports are always derived from the store, so a reopened study shows
exactly what was saved. Roles are checked by the store when writing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from workstation.core.audit import AuditEvent
from workstation.core.events import Event
from workstation.core.findings import Finding, InferenceResult, ModelRef
from workstation.core.review import Action, BoxGeometry, FeedbackEntry, FindingState, State, derive_states
from workstation.core.roles import Permission, User
from workstation.core.study import DisplaySet
from workstation.store.database import Store, StoredRun, now_utc

MIN_BOX_PX = 2.0


@dataclass(frozen=True)
class SeriesKey:
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uids: tuple[str, ...]  # per display frame

    @classmethod
    def of(cls, display_set: DisplaySet) -> SeriesKey:
        series = display_set.series
        return cls(series.study.study_instance_uid, series.series_instance_uid,
                   tuple(frame.instance.sop_instance_uid for frame in display_set.frames))


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
        self.changed = Event()  # (FindingState) after each recorded action
        self._states = self._derive()

    @property
    def user(self) -> User:
        return self.store.identity.user

    def may(self, permission: Permission) -> bool:
        return self.user.may(permission)

    # ----- reading
    def states(self) -> list[FindingState]:
        """Visible findings: the model's strongest first, then the ones reviewers added."""
        visible = [s for s in self._states.values() if s.visible]
        return sorted(visible, key=lambda s: (s.score is None, -(s.score or 0.0), s.at_utc))

    def state(self, finding_id: str) -> FindingState:
        return self._states[finding_id]

    def counts(self) -> dict[State, int]:
        counts = {state: 0 for state in State}
        for state in self._states.values():
            counts[state.state] += 1
        return counts

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
        """Move (same size) or resize a box; a no-op edit writes nothing."""
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

    # ----- internals
    def _record(self, action: Action, finding_id: str, before: BoxGeometry | None = None,
                after: BoxGeometry | None = None, label: str = "", comment: str = "") -> FindingState:
        if action is not Action.ADD and finding_id not in self._states:
            raise KeyError(f"no finding {finding_id} in this review")
        user = self.user
        geometry = after or before or self._states[finding_id].geometry
        entry = FeedbackEntry(
            entry_id=str(uuid.uuid4()), action=action, finding_id=finding_id,
            study_instance_uid=self.key.study_instance_uid, series_instance_uid=self.key.series_instance_uid,
            sop_instance_uid=geometry.sop_instance_uid, model_name=self.model.name, model_version=self.model.version,
            user=user.login, role=user.role.value if user.role else "", workstation_id=self.store.identity.workstation_id,
            at_utc=now_utc(), before=before, after=after, label=label, comment=comment.strip(),
        )
        self.store.record_feedback(entry)
        self._states = self._derive()
        state = self._states[finding_id]
        self.changed.emit(state)
        return state

    def _derive(self) -> dict[str, FindingState]:
        own = {f.finding_id for f in self.findings}
        entries = [e for e in self.store.feedback(self.key.series_instance_uid)
                   if (e.model_name, e.model_version) == (self.model.name, self.model.version) or e.finding_id in own]
        return derive_states(self.findings, entries)

    def _geometry(self, frame_index: int, box_px: tuple[float, float, float, float]) -> BoxGeometry:
        frames = len(self.key.sop_instance_uids)
        if not 0 <= frame_index < frames:
            raise ValueError(f"frame {frame_index} is outside the series (0-{frames - 1})")
        c0, r0, c1, r1 = (round(float(v), 2) for v in box_px)
        c0, c1 = sorted((c0, c1))
        r0, r1 = sorted((r0, r1))
        if c1 - c0 < MIN_BOX_PX or r1 - r0 < MIN_BOX_PX:
            raise ValueError(f"a box must be at least {MIN_BOX_PX:g} pixels wide and high")
        return BoxGeometry(frame_index, (c0, r0, c1, r1), self.key.sop_instance_uids[frame_index])


def _size(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return (round(box[2] - box[0], 2), round(box[3] - box[1], 2))
