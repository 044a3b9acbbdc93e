"""A reader's measurements as immutable entries; what is on screen is the fold of the entries in force.

Like the review (core.review): adding, editing and deleting a measurement are
entries, and undo / redo are entries naming the entry they revert, so nothing
is overwritten and a reopened study shows exactly what was saved. A reader
may undo only their own entries; another reader's measurements are shown but
edited by nobody else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from workstation.core.measure import KINDS, POINTS


class MeasureAction(str, Enum):
    ADD = "add"
    EDIT = "edit"
    DELETE = "delete"
    UNDO = "undo"
    REDO = "redo"

    @property
    def audit_kind(self) -> str:
        return f"measurement.{self.value}"

    @property
    def reversible(self) -> bool:
        return self in (MeasureAction.ADD, MeasureAction.EDIT, MeasureAction.DELETE)


@dataclass(frozen=True)
class Measurement:
    """One measurement on one frame: its points (pixel coordinates) and the values read when it was saved."""

    measurement_id: str
    kind: str
    frame_index: int
    points: tuple[tuple[float, float], ...]
    sop_instance_uid: str = ""
    values: dict[str, float] = field(default_factory=dict)
    unit: str = ""  # "mm" or "px"
    text: str = ""  # as shown on the image when saved
    finding_id: str = ""  # proposed from this AI / reviewer box ("Measure")

    def __post_init__(self) -> None:
        if self.kind not in KINDS or len(self.points) != POINTS[self.kind]:
            raise ValueError(f"a {self.kind!r} measurement with {len(self.points)} points")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["points"] = [[round(float(x), 3), round(float(y), 3)] for x, y in self.points]
        data["values"] = {k: round(float(v), 4) for k, v in self.values.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        values = dict(data)
        values["points"] = tuple((float(x), float(y)) for x, y in values["points"])
        values["frame_index"] = int(values["frame_index"])
        values["values"] = {str(k): float(v) for k, v in (values.get("values") or {}).items()}
        return cls(**values)


@dataclass(frozen=True)
class MeasurementEntry:
    """One action on a measurement, as written (entry id a UUID, time UTC ISO 8601)."""

    entry_id: str
    action: MeasureAction
    measurement_id: str
    study_instance_uid: str
    series_instance_uid: str
    user: str
    role: str
    workstation_id: str
    at_utc: str
    measurement: Measurement | None = None  # add / edit: the measurement as it is now
    reverts: str = ""  # undo / redo: the entry it reverts

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = self.action.value
        data["measurement"] = self.measurement.to_dict() if self.measurement else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeasurementEntry:
        values = dict(data)
        values["action"] = MeasureAction(values["action"])
        values["measurement"] = Measurement.from_dict(values["measurement"]) if values.get("measurement") else None
        return cls(**values)


@dataclass(frozen=True)
class Shown:
    """A measurement in force, with who made it last and the entries about it."""

    measurement: Measurement
    user: str
    role: str
    at_utc: str
    number: int  # fixed: the order in which measurements were added to the series


def _undone(entries: list[MeasurementEntry]) -> set[str]:
    by_id = {e.entry_id: e for e in entries}
    undone: set[str] = set()
    for entry in entries:
        if entry.action is MeasureAction.UNDO:
            undone.add(entry.reverts)
        elif entry.action is MeasureAction.REDO and entry.reverts in by_id:
            undone.discard(by_id[entry.reverts].reverts)
    return undone


def effective(entries: list[MeasurementEntry]) -> list[MeasurementEntry]:
    """The add / edit / delete entries still in force (an undo takes one out, a redo of the undo puts it back)."""
    undone = _undone(entries)
    return [e for e in entries if e.action.reversible and e.entry_id not in undone]


def current(entries: list[MeasurementEntry]) -> list[Shown]:
    """The measurements on the series now, by number."""
    numbers: dict[str, int] = {}
    for entry in entries:
        if entry.action is MeasureAction.ADD:
            numbers.setdefault(entry.measurement_id, len(numbers) + 1)
    shown: dict[str, Shown] = {}
    for entry in effective(entries):
        if entry.action is MeasureAction.DELETE:
            shown.pop(entry.measurement_id, None)
        elif entry.measurement is not None and (entry.action is MeasureAction.ADD or entry.measurement_id in shown):
            shown[entry.measurement_id] = Shown(entry.measurement, entry.user, entry.role, entry.at_utc,
                                                numbers.get(entry.measurement_id, 0))
    return sorted(shown.values(), key=lambda s: s.number)


def undo_redo_targets(entries: list[MeasurementEntry], user: str) -> tuple[MeasurementEntry | None, MeasurementEntry | None]:
    """(the entry Undo would revert, the undo Redo would revert) for `user`: their own stacks; a new action
    clears the redo stack."""
    by_id = {e.entry_id: e for e in entries}
    done: list[MeasurementEntry] = []
    redo: list[MeasurementEntry] = []
    for entry in entries:
        if entry.user != user:
            continue
        if entry.action.reversible:
            done.append(entry)
            redo = []
        elif entry.action is MeasureAction.UNDO:
            done = [e for e in done if e.entry_id != entry.reverts]
            redo.append(entry)
        elif entry.action is MeasureAction.REDO:
            redo = [e for e in redo if e.entry_id != entry.reverts]
            undo = by_id.get(entry.reverts)
            if undo is not None and undo.reverts in by_id:
                done.append(by_id[undo.reverts])
    return (done[-1] if done else None, redo[-1] if redo else None)


def refusal(entries: list[MeasurementEntry], entry: MeasurementEntry) -> str | None:
    """Why `entry` must not follow the series' `entries`, or None (the store asks inside its write).

    Readers edit and delete only their own measurements; undo and redo revert
    only the writer's own entries, and only along their own stacks.
    """
    if entry.action.reversible:
        if entry.measurement_id == "" or (entry.action is not MeasureAction.DELETE and entry.measurement is None):
            return f"a {entry.action.value} names its measurement"
        shown = {s.measurement.measurement_id: s for s in current(entries)}
        if entry.action is MeasureAction.ADD:
            return "that measurement exists already" if any(e.measurement_id == entry.measurement_id for e in entries) else None
        if entry.measurement_id not in shown:
            return "no such measurement on this series"
        if shown[entry.measurement_id].user != entry.user:
            return f"measurement #{shown[entry.measurement_id].number} is {shown[entry.measurement_id].user}'s"
        return None
    undo_target, redo_target = undo_redo_targets(entries, entry.user)
    target = undo_target if entry.action is MeasureAction.UNDO else redo_target
    if target is None or target.entry_id != entry.reverts:
        return f"nothing of yours to {entry.action.value} here"
    if target.measurement_id != entry.measurement_id:
        return "the entry names another measurement than the one it reverts"
    return None
