"""Audit events, their DICOM audit codes (PS3.15 A.5, CID 400/401/403) and the hash chain over them.

Each stored entry carries the SHA-256 of its predecessor, computed over a
canonical serialisation, so an entry that is edited, deleted or slipped in is
found by `verify_chain`, which names the first such entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from enum import IntEnum
from typing import Any

GENESIS = "0" * 64


class Outcome(IntEnum):
    """EventOutcomeIndicator of PS3.15 A.5."""

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


@dataclass(frozen=True)
class Code:
    value: str
    meaning: str
    scheme: str = "DCM"


@dataclass(frozen=True)
class EventKind:
    event_id: Code
    action: str  # EventActionCode: C, R, U, D, E
    event_type: Code | None = None


APPLICATION_ACTIVITY = Code("110100", "Application Activity")
AUDIT_LOG_USED = Code("110101", "Audit Log Used")
INSTANCES_ACCESSED = Code("110103", "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = Code("110104", "DICOM Instances Transferred")
EXPORT = Code("110106", "Export")
QUERY = Code("110112", "Query")
SECURITY_ALERT = Code("110113", "Security Alert")
USER_AUTHENTICATION = Code("110114", "User Authentication")

KINDS: dict[str, EventKind] = {
    "application.start": EventKind(APPLICATION_ACTIVITY, "E", Code("110120", "Application Start")),
    "application.stop": EventKind(APPLICATION_ACTIVITY, "E", Code("110121", "Application Stop")),
    "session.start": EventKind(USER_AUTHENTICATION, "E", Code("110122", "Login")),
    "session.end": EventKind(USER_AUTHENTICATION, "E", Code("110123", "Logout")),
    "study.opened": EventKind(INSTANCES_ACCESSED, "R"),
    "pacs.query": EventKind(QUERY, "E"),
    "pacs.retrieve": EventKind(INSTANCES_TRANSFERRED, "C"),
    "receiver.association": EventKind(INSTANCES_TRANSFERRED, "C"),  # an association our C-STORE receiver accepted
    "receiver.conflict": EventKind(INSTANCES_TRANSFERRED, "C"),  # a held SOP Instance UID arrived with other content
    "receiver.refused": EventKind(SECURITY_ALERT, "E", Code("110126", "Node Authentication")),
    "inference.run": EventKind(INSTANCES_ACCESSED, "E"),
    "finding.accept": EventKind(INSTANCES_ACCESSED, "U"),
    "finding.reject": EventKind(INSTANCES_ACCESSED, "U"),
    "finding.comment": EventKind(INSTANCES_ACCESSED, "U"),
    "finding.move": EventKind(INSTANCES_ACCESSED, "U"),
    "finding.resize": EventKind(INSTANCES_ACCESSED, "U"),
    "finding.relabel": EventKind(INSTANCES_ACCESSED, "U"),
    "finding.delete": EventKind(INSTANCES_ACCESSED, "D"),
    "finding.add": EventKind(INSTANCES_ACCESSED, "C"),
    "finding.undo": EventKind(INSTANCES_ACCESSED, "U"),
    "finding.redo": EventKind(INSTANCES_ACCESSED, "U"),
    "review.signoff": EventKind(INSTANCES_ACCESSED, "U"),
    "review.reopen": EventKind(INSTANCES_ACCESSED, "U"),
    "measurement.add": EventKind(INSTANCES_ACCESSED, "C"),
    "measurement.edit": EventKind(INSTANCES_ACCESSED, "U"),
    "measurement.delete": EventKind(INSTANCES_ACCESSED, "D"),
    "measurement.undo": EventKind(INSTANCES_ACCESSED, "U"),
    "measurement.redo": EventKind(INSTANCES_ACCESSED, "U"),
    "report.draft": EventKind(INSTANCES_ACCESSED, "C"),
    "report.edit": EventKind(INSTANCES_ACCESSED, "U"),
    "report.final": EventKind(INSTANCES_ACCESSED, "U"),
    "report.send": EventKind(EXPORT, "R"),
    "export": EventKind(EXPORT, "R"),
    "export.reidentify": EventKind(QUERY, "E"),  # an admin read the re-identification table
    "audit.export": EventKind(AUDIT_LOG_USED, "R"),
    "audit.verify": EventKind(AUDIT_LOG_USED, "R"),
    "config.change": EventKind(SECURITY_ALERT, "E", Code("110131", "Software Configuration")),
    "access.denied": EventKind(SECURITY_ALERT, "E", Code("110132", "Use of Restricted Function")),
    "store.open-failed": EventKind(SECURITY_ALERT, "E", Code("110129", "Security Configuration")),
    "workstation.enrol": EventKind(SECURITY_ALERT, "E", Code("110126", "Node Authentication")),
    "software.install": EventKind(SECURITY_ALERT, "E", Code("110131", "Software Configuration")),
    "software.upgrade": EventKind(SECURITY_ALERT, "E", Code("110131", "Software Configuration")),
    "software.uninstall": EventKind(SECURITY_ALERT, "E", Code("110131", "Software Configuration")),
}


@dataclass(frozen=True)
class AuditEvent:
    """Something the audit trail must keep, as a service reports it; the store adds who/where/chain."""

    kind: str
    at_utc: str
    details: dict[str, Any] = field(default_factory=dict)  # no patient names: UIDs, counts, node names
    study_instance_uid: str = ""
    outcome: Outcome = Outcome.SUCCESS
    outcome_text: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown audit event kind {self.kind!r}")


@dataclass(frozen=True)
class AuditEntry:
    """A stored, chained audit entry. `seq` counts this workstation's entries from 1."""

    seq: int
    entry_id: str
    workstation_id: str
    at_utc: str
    kind: str
    user: str
    role: str
    study_instance_uid: str
    outcome: int
    outcome_text: str
    details: dict[str, Any]
    prev_hash: str
    hash: str = ""

    @classmethod
    def of_checked(cls, *values: Any) -> AuditEntry:
        """The entry of `values` (every field, in order) that the caller has checked already (the server's push
        decoder): a frozen dataclass's __init__ sets each field through object.__setattr__, twice the time."""
        entry = object.__new__(cls)
        entry.__dict__.update(zip(_FIELDS, values, strict=True))
        return entry

    @property
    def event(self) -> EventKind:
        return KINDS[self.kind]

    def canonical(self) -> bytes:
        """What the hash covers: every field except `seq` (checked separately) and `hash` itself."""
        data = {name: getattr(self, name) for name in _HASHED_FIELDS}  # not asdict: no deep copy per entry
        return canonical_json(data)

    def computed_hash(self) -> str:
        return hashlib.sha256(self.prev_hash.encode("ascii") + b"\n" + self.canonical()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (shallow: `details` is shared, not copied - entries are never changed in place)."""
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(f.name for f in fields(AuditEntry))
_HASHED_FIELDS = tuple(name for name in _FIELDS if name not in ("seq", "hash"))


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def digest(data: Any) -> str:
    """SHA-256 of the canonical JSON of `data` (links a feedback entry to its audit entry)."""
    return hashlib.sha256(canonical_json(data)).hexdigest()


@dataclass(frozen=True)
class ChainProblem:
    kind: str  # "altered", "inserted", "deleted", "broken-link"
    seq: int
    entry_id: str
    message: str


@dataclass(frozen=True)
class ChainReport:
    entries: int
    head: str  # hash of the last entry (GENESIS when empty)
    problem: ChainProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_chain(entries: Sequence[AuditEntry]) -> ChainReport:
    """Check sequence, links and hashes in seq order; report the first entry that does not fit."""
    rows = sorted(entries, key=lambda e: e.seq)
    expected_prev, before_prev, expected_seq = GENESIS, None, 1
    for i, row in enumerate(rows):
        if row.seq != expected_seq:
            missing = f"{expected_seq}" if row.seq == expected_seq + 1 else f"{expected_seq}-{row.seq - 1}"
            return _report(rows, i, ChainProblem("deleted", expected_seq, "", f"entry {missing} deleted: the sequence jumps from {expected_seq - 1} to {row.seq}"))
        self_ok = row.computed_hash() == row.hash
        link_ok = row.prev_hash == expected_prev
        if not (self_ok and link_ok):
            following = rows[i + 1] if i + 1 < len(rows) else None
            if following is not None and following.prev_hash == expected_prev:
                return _report(rows, i, _problem("inserted", row, f"entry {row.seq} was inserted: entry {following.seq} links past it to entry {row.seq - 1}"))
            if not link_ok and before_prev is not None and row.prev_hash == before_prev:
                previous = rows[i - 1]
                return _report(rows, i, _problem("inserted", previous, f"entry {previous.seq} was inserted: entry {row.seq} links past it"))
            if not self_ok:
                return _report(rows, i, _problem("altered", row, f"entry {row.seq} was altered: its content no longer matches its hash"))
            return _report(rows, i, _problem("broken-link", row, f"entry {row.seq} does not link to entry {row.seq - 1}: that entry was altered (and re-hashed) or entries between them were deleted"))
        before_prev, expected_prev, expected_seq = expected_prev, row.hash, expected_seq + 1
    return ChainReport(len(rows), expected_prev)


def _problem(kind: str, row: AuditEntry, message: str) -> ChainProblem:
    return ChainProblem(kind, row.seq, row.entry_id, message)


def _report(rows: list[AuditEntry], index: int, problem: ChainProblem) -> ChainReport:
    head = rows[-1].hash if rows else GENESIS
    return ChainReport(len(rows), head, problem)


def chain_entry(seq: int, entry_id: str, workstation_id: str, user: str, role: str,
                event: AuditEvent, prev_hash: str) -> AuditEntry:
    """Build the next entry of the chain with its hash."""
    study = event.study_instance_uid or str(event.details.get("study_instance_uid", ""))
    entry = AuditEntry(seq, entry_id, workstation_id, event.at_utc, event.kind, user, role, study,
                       int(event.outcome), event.outcome_text, dict(event.details), prev_hash)
    return replace(entry, hash=entry.computed_hash())
