"""Review of AI findings as immutable feedback entries; a finding's state is derived from them.

Nothing is overwritten: moving a box twice is two entries, and the state the
viewer shows is a fold over the entries in order (`derive_states`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any

from workstation.core.findings import Finding
from workstation.core.roles import Permission


class Action(str, Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    COMMENT = "comment"
    MOVE = "move"  # same size, new place
    RESIZE = "resize"
    RELABEL = "relabel"
    DELETE = "delete"
    ADD = "add"  # a finding the model missed

    @property
    def permission(self) -> Permission:
        return _PERMISSION[self]


_PERMISSION = {
    Action.ACCEPT: Permission.DECIDE, Action.REJECT: Permission.DECIDE, Action.COMMENT: Permission.COMMENT,
    Action.MOVE: Permission.EDIT, Action.RESIZE: Permission.EDIT, Action.RELABEL: Permission.EDIT,
    Action.DELETE: Permission.EDIT, Action.ADD: Permission.ADD,
}


class State(str, Enum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EDITED = "edited"
    ADDED = "added"
    DELETED = "deleted"


@dataclass(frozen=True)
class BoxGeometry:
    """A box on one frame: pixel edges (column0, row0, column1, row1) and, when known, the instance."""

    frame_index: int
    box_px: tuple[float, float, float, float]
    sop_instance_uid: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"frame_index": self.frame_index, "box_px": [round(float(v), 2) for v in self.box_px],
                "sop_instance_uid": self.sop_instance_uid}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BoxGeometry:
        return cls(int(data["frame_index"]), tuple(float(v) for v in data["box_px"]), data.get("sop_instance_uid", ""))

    @classmethod
    def of(cls, finding: Finding) -> BoxGeometry:
        return cls(finding.frame_index, tuple(float(v) for v in finding.box_px), finding.sop_instance_uid)


@dataclass(frozen=True)
class FeedbackEntry:
    """One review action, as written; `entry_id` is a UUID, time is UTC ISO 8601."""

    entry_id: str
    action: Action
    finding_id: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    model_name: str
    model_version: str
    user: str
    role: str
    workstation_id: str
    at_utc: str
    before: BoxGeometry | None = None
    after: BoxGeometry | None = None
    label: str = ""  # the new label (relabel, add)
    comment: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = self.action.value
        data["before"] = self.before.to_dict() if self.before else None
        data["after"] = self.after.to_dict() if self.after else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeedbackEntry:
        values = dict(data)
        values["action"] = Action(values["action"])
        values["before"] = BoxGeometry.from_dict(values["before"]) if values.get("before") else None
        values["after"] = BoxGeometry.from_dict(values["after"]) if values.get("after") else None
        return cls(**values)


@dataclass(frozen=True)
class FindingState:
    """What the reader sees now for one finding (AI or added)."""

    finding_id: str
    label: str
    geometry: BoxGeometry
    state: State = State.PENDING
    score: float | None = None  # None for findings a reviewer added
    by: str = ""  # who made the last state-changing action
    role: str = ""
    at_utc: str = ""
    comments: tuple[str, ...] = ()
    edited: bool = False  # geometry or label differ from the model's
    history: tuple[str, ...] = field(default=())  # entry ids, in order

    @property
    def visible(self) -> bool:
        return self.state is not State.DELETED


_DECISIONS = {Action.ACCEPT: State.ACCEPTED, Action.REJECT: State.REJECTED}


def derive_states(findings: list[Finding], entries: list[FeedbackEntry]) -> dict[str, FindingState]:
    """Fold the entries (in write order) over the model's findings; unknown ids come from ADD entries."""
    states = {f.finding_id: FindingState(f.finding_id, f.label, BoxGeometry.of(f), score=f.score) for f in findings}
    for entry in entries:
        current = states.get(entry.finding_id)
        if current is None:
            if entry.action is not Action.ADD or entry.after is None:
                continue  # an entry about a finding of another model run
            states[entry.finding_id] = FindingState(
                entry.finding_id, entry.label, entry.after, State.ADDED, None,
                entry.user, entry.role, entry.at_utc, history=(entry.entry_id,))
            continue
        states[entry.finding_id] = _apply(current, entry)
    return states


def _apply(state: FindingState, entry: FeedbackEntry) -> FindingState:
    who = {"by": entry.user, "role": entry.role, "at_utc": entry.at_utc, "history": state.history + (entry.entry_id,)}
    if entry.action is Action.COMMENT:
        return replace(state, comments=state.comments + (entry.comment,), history=who["history"])
    comments = state.comments + ((entry.comment,) if entry.comment else ())
    if entry.action in _DECISIONS:
        return replace(state, state=_DECISIONS[entry.action], comments=comments, **who)
    if entry.action is Action.DELETE:
        return replace(state, state=State.DELETED, comments=comments, **who)
    if entry.action in (Action.MOVE, Action.RESIZE) and entry.after is not None:
        return replace(state, geometry=entry.after, state=_edited(state), edited=True, comments=comments, **who)
    if entry.action is Action.RELABEL and entry.label:
        return replace(state, label=entry.label, state=_edited(state), edited=True, comments=comments, **who)
    return state


def _edited(state: FindingState) -> State:
    """An added finding stays "added" when adjusted; an AI finding becomes "edited" (until decided again)."""
    return State.ADDED if state.state is State.ADDED else State.EDITED
