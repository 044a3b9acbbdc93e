"""Review of AI findings as immutable feedback entries; a finding's state is derived from them.

Nothing is overwritten: moving a box twice is two entries, and the state the
viewer shows is a fold over the entries in order (`derive_states`). Undo and
redo are entries too (naming the entry they revert), so history is never
rewritten; the fold simply leaves reverted entries out.
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
    UNDO = "undo"  # reverts one earlier entry of the same user (`reverts`)
    REDO = "redo"  # reverts an undo (`reverts` names the undo entry)
    SIGNOFF = "signoff"  # the run's review is complete for this reader (`details` holds the final states)
    REOPEN = "reopen"  # a reviewer reopens a signed-off review (`reverts` names the sign-off)

    @property
    def permission(self) -> Permission:
        return _PERMISSION[self]

    @property
    def audit_kind(self) -> str:
        return f"review.{self.value}" if self in (Action.SIGNOFF, Action.REOPEN) else f"finding.{self.value}"

    @property
    def reversible(self) -> bool:
        """Actions on a finding that Undo may revert (sign-off and reopen are deliberate and final)."""
        return self not in (Action.UNDO, Action.REDO, Action.SIGNOFF, Action.REOPEN)


_PERMISSION = {
    Action.ACCEPT: Permission.DECIDE, Action.REJECT: Permission.DECIDE, Action.COMMENT: Permission.COMMENT,
    Action.MOVE: Permission.EDIT, Action.RESIZE: Permission.EDIT, Action.RELABEL: Permission.EDIT,
    Action.DELETE: Permission.EDIT, Action.ADD: Permission.ADD,
    # undo/redo only ever revert the user's own entries (checked by the service and the store)
    Action.UNDO: Permission.DECIDE, Action.REDO: Permission.DECIDE,
    Action.SIGNOFF: Permission.DECIDE, Action.REOPEN: Permission.EDIT,
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
    reverts: str = ""  # undo / redo / reopen: the entry id it reverts
    details: dict[str, Any] | None = None  # sign-off: the run and the final state of every finding

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = self.action.value
        data["before"] = self.before.to_dict() if self.before else None
        data["after"] = self.after.to_dict() if self.after else None
        for optional in ("reverts", "details"):  # entries written before these existed keep their exact bytes
            if not data[optional]:
                del data[optional]
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
    history: tuple[str, ...] = field(default=())  # ids of every entry about this finding, in order (undone too)
    number: int = 0  # fixed for the life of the run: by score at run time, then added ones in order
    box_edited: bool = False  # the box was moved or resized (a decision made before is kept)
    relabelled: bool = False

    @property
    def visible(self) -> bool:
        return self.state is not State.DELETED

    @property
    def pending(self) -> bool:
        return self.state is State.PENDING


@dataclass(frozen=True)
class SignOff:
    """The run's review marked complete: who, when, and the entry that did it."""

    entry_id: str
    by: str
    role: str
    at_utc: str


_DECISIONS = {Action.ACCEPT: State.ACCEPTED, Action.REJECT: State.REJECTED}


def effective_entries(entries: list[FeedbackEntry]) -> list[FeedbackEntry]:
    """The finding actions still in force: undo takes one out, redo of that undo puts it back."""
    by_id = {e.entry_id: e for e in entries}
    undone: set[str] = set()
    for entry in entries:
        if entry.action is Action.UNDO:
            undone.add(entry.reverts)
        elif entry.action is Action.REDO and entry.reverts in by_id:
            undone.discard(by_id[entry.reverts].reverts)
    return [e for e in entries if e.action.reversible and e.entry_id not in undone]


def undone_ids(entries: list[FeedbackEntry]) -> set[str]:
    """Entries currently reverted by an undo (shown struck through in a finding's history)."""
    kept = {e.entry_id for e in effective_entries(entries)}
    return {e.entry_id for e in entries if e.action.reversible and e.entry_id not in kept}


def undo_redo_targets(entries: list[FeedbackEntry], user: str) -> tuple[FeedbackEntry | None, FeedbackEntry | None]:
    """(the entry Undo would revert, the undo Redo would revert) for `user`: their own stacks.

    A new action of the user clears the redo stack; a sign-off or reopen clears both
    (what was signed off is not undone behind the sign-off's back).
    """
    by_id = {e.entry_id: e for e in entries}
    done: list[FeedbackEntry] = []
    redo: list[FeedbackEntry] = []
    for entry in entries:
        if entry.action in (Action.SIGNOFF, Action.REOPEN):
            done, redo = [], []
        elif entry.user != user:
            continue
        elif entry.action.reversible:
            done.append(entry)
            redo = []
        elif entry.action is Action.UNDO:
            done = [e for e in done if e.entry_id != entry.reverts]
            redo.append(entry)
        elif entry.action is Action.REDO:
            redo = [e for e in redo if e.entry_id != entry.reverts]
            undo = by_id.get(entry.reverts)
            if undo is not None and undo.reverts in by_id:
                done.append(by_id[undo.reverts])
    return (done[-1] if done else None, redo[-1] if redo else None)


def sign_off_of(entries: list[FeedbackEntry], finding_ids: set[str]) -> SignOff | None:
    """The sign-off in force for a run whose findings are `finding_ids` (a reopen ends it)."""
    current: SignOff | None = None
    for entry in entries:
        if entry.action is Action.SIGNOFF:
            covered = {f.get("finding_id") for f in (entry.details or {}).get("findings", [])}
            if finding_ids <= covered:
                current = SignOff(entry.entry_id, entry.user, entry.role, entry.at_utc)
        elif entry.action is Action.REOPEN and current is not None and entry.reverts == current.entry_id:
            current = None
    return current


def derive_states(findings: list[Finding], entries: list[FeedbackEntry]) -> dict[str, FindingState]:
    """Fold the entries in force (in write order) over the model's findings; unknown ids come from ADD entries."""
    ranked = sorted(findings, key=lambda f: (-f.score, f.frame_index, f.finding_id))
    states = {f.finding_id: FindingState(f.finding_id, f.label, BoxGeometry.of(f), score=f.score, number=n)
              for n, f in enumerate(ranked, start=1)}
    history: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        history[entry.finding_id] = history.get(entry.finding_id, ()) + (entry.entry_id,)
    numbers = {e.finding_id: None for e in entries if e.action is Action.ADD}  # every add keeps its number
    for n, finding_id in enumerate(numbers, start=len(states) + 1):
        numbers[finding_id] = n
    for entry in effective_entries(entries):
        current = states.get(entry.finding_id)
        if current is None:
            if entry.action is not Action.ADD or entry.after is None:
                continue  # an entry about a finding of another model run
            states[entry.finding_id] = FindingState(
                entry.finding_id, entry.label, entry.after, State.ADDED, None,
                entry.user, entry.role, entry.at_utc, number=numbers[entry.finding_id])
            continue
        states[entry.finding_id] = _apply(current, entry)
    return {fid: replace(state, history=history.get(fid, ())) for fid, state in states.items()}


def _apply(state: FindingState, entry: FeedbackEntry) -> FindingState:
    who = {"by": entry.user, "role": entry.role, "at_utc": entry.at_utc}
    if entry.action is Action.COMMENT:
        return replace(state, comments=state.comments + (entry.comment,))
    comments = state.comments + ((entry.comment,) if entry.comment else ())
    if entry.action in _DECISIONS:
        return replace(state, state=_DECISIONS[entry.action], comments=comments, **who)
    if entry.action is Action.DELETE:
        return replace(state, state=State.DELETED, comments=comments, **who)
    if entry.action in (Action.MOVE, Action.RESIZE) and entry.after is not None:
        return replace(state, geometry=entry.after, state=_edited(state), edited=True, box_edited=True,
                       comments=comments, **who)
    if entry.action is Action.RELABEL and entry.label:
        return replace(state, label=entry.label, state=_edited(state), edited=True, relabelled=True,
                       comments=comments, **who)
    return state


def _edited(state: FindingState) -> State:
    """A pending AI finding becomes "edited"; a decision already made is kept (the edit is shown beside it)."""
    return State.EDITED if state.state is State.PENDING else state.state


def state_summary(state: FindingState) -> str:
    """'rejected, box edited', 'accepted, relabelled', 'pending': the verdict never hides an edit."""
    text = state.state.value
    if state.state is not State.EDITED:
        if state.box_edited:
            text += ", box edited"
        if state.relabelled:
            text += ", relabelled"
    return text


_VERB = {Action.ACCEPT: "accepted", Action.REJECT: "rejected", Action.COMMENT: "commented on", Action.MOVE: "moved",
         Action.RESIZE: "resized", Action.RELABEL: "relabelled", Action.DELETE: "deleted", Action.ADD: "added"}


def entry_refusal(entries: list[FeedbackEntry], entry: FeedbackEntry) -> str | None:
    """Why `entry` must not be written after the series' `entries` (write order), or None.

    The store asks this inside its write transaction, so the rules hold whoever
    writes: nothing in a signed-off run changes until a reopen names that
    sign-off; undo and redo revert only the writer's own entries of this series,
    never across a sign-off or reopen, and never under another reader's later
    decision on the same finding (it would change what that reader saw).
    """
    run = [e for e in entries if (e.model_name, e.model_version) == (entry.model_name, entry.model_version)]
    signed: FeedbackEntry | None = None
    for e in run:
        if e.action is Action.SIGNOFF:
            signed = e
        elif e.action is Action.REOPEN and signed is not None and e.reverts == signed.entry_id:
            signed = None
    if entry.action is Action.REOPEN:
        return None if signed is not None and entry.reverts == signed.entry_id else "only the sign-off in force can be reopened"
    if signed is not None:
        covered = {f.get("finding_id") for f in (signed.details or {}).get("findings", [])}
        if entry.action in (Action.SIGNOFF, Action.ADD) or entry.finding_id in covered:
            return (f"signed off by {signed.user} at {signed.at_utc[:16].replace('T', ' ')} UTC: "
                    "a reviewer must reopen it before anything changes")
    if entry.action in (Action.UNDO, Action.REDO):
        return _revert_refusal(entries, entry)
    return None


def _revert_refusal(entries: list[FeedbackEntry], entry: FeedbackEntry) -> str | None:
    by_id = {e.entry_id: e for e in entries}
    target = by_id.get(entry.reverts)
    if target is None or target.user != entry.user or target.series_instance_uid != entry.series_instance_uid:
        return "only your own entries of this series can be undone or redone"
    if entry.finding_id != target.finding_id:
        return "the entry names another finding than the one it reverts"
    if entry.action is Action.REDO:
        if target.action is not Action.UNDO or target.reverts not in by_id:
            return "redo reverts an undo"
        original = by_id[target.reverts]
    elif not target.action.reversible:
        return f"a {target.action.value} cannot be undone"
    else:
        original = target
    undone = undone_ids(entries)
    if entry.action is Action.UNDO and original.entry_id in undone:
        return "already undone"
    if entry.action is Action.REDO and original.entry_id not in undone:
        return "nothing undone to redo"
    after = entries[entries.index(original) + 1:]
    if any(e.action in (Action.SIGNOFF, Action.REOPEN) for e in after):
        return "it was made before a sign-off"
    in_force = {e.entry_id for e in effective_entries(entries)}
    later = [e for e in after if e.finding_id == original.finding_id and e.user != entry.user
             and e.action.reversible and e.entry_id in in_force]
    if later:
        return f"{later[-1].user} has since {_VERB.get(later[-1].action, later[-1].action.value)} this finding"
    return None
