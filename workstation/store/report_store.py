"""Report versions and their deliveries, in the encrypted store.

Versions are append-only (a draft, each edit, the final text: the history of
what the radiologist wrote); each is written with its audit entry in one
transaction. Deliveries change state (queued -> delivered, rejected, retrying)
and keep the exact message bytes, so a retry sends the very same message with
the same control ID: one report version is never sent under two IDs.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from workstation.core.audit import AuditEvent
from workstation.store.database import Store, StoreError, now_utc


KINDS = ("draft", "edit", "final")
QUEUED, RETRYING, DELIVERED, REJECTED, SUPERSEDED = "queued", "retrying", "delivered", "rejected", "superseded"


@dataclass(frozen=True)
class ReportVersion:
    version_id: str
    audit_seq: int
    study_instance_uid: str
    series_instance_uid: str
    run_id: str
    signoff_entry_id: str
    kind: str
    text: str
    structured: dict
    identifiers: dict
    user: str
    role: str
    at_utc: str


@dataclass(frozen=True)
class ReportSend:
    send_id: str
    version_id: str
    study_instance_uid: str
    format: str
    destination: str
    control_id: str
    state: str
    attempts: int
    answer: str  # the ACK code or HTTP status of the last answer
    reason: str
    created_utc: str
    updated_utc: str
    next_attempt_utc: str


_VERSION_COLUMNS = ("version_id, audit_seq, study_instance_uid, series_instance_uid, run_id, signoff_entry_id, kind, "
                    "text, structured, identifiers, user, role, at_utc")
_SEND_COLUMNS = ("send_id, version_id, study_instance_uid, format, destination, control_id, state, attempts, answer, "
                 "reason, created_utc, updated_utc, next_attempt_utc")


class ReportStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add_version(self, kind: str, study_uid: str, series_uid: str, run_id: str, signoff_entry_id: str, text: str,
                    structured: dict, identifiers: dict, event: AuditEvent) -> ReportVersion:
        """A new version and its audit entry (which carries the version id and a text digest, never the text)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        user = self.store.identity.user
        version_id = str(uuid.uuid4())
        event = AuditEvent(event.kind, event.at_utc, {**event.details, "report_version_id": version_id},
                           study_uid, event.outcome, event.outcome_text)
        with self.store._transaction() as db:  # noqa: SLF001 - one store, several modules
            audit = self.store._append(db, event)  # noqa: SLF001
            values = (version_id, audit.seq, study_uid, series_uid, run_id, signoff_entry_id, kind, text,
                      json.dumps(structured, sort_keys=True), json.dumps(identifiers, sort_keys=True), user.login,
                      user.role.value if user.role else "", event.at_utc)
            db.execute(f"INSERT INTO report_versions ({_VERSION_COLUMNS}) VALUES ({', '.join('?' * 13)})", values)
        return self.version(version_id)

    def versions(self, study_uid: str) -> list[ReportVersion]:
        rows = self.store._query(f"SELECT {_VERSION_COLUMNS} FROM report_versions WHERE study_instance_uid = ? "  # noqa: SLF001
                                 "ORDER BY audit_seq", (study_uid,))
        return [_version(row) for row in rows]

    def version(self, version_id: str) -> ReportVersion:
        rows = self.store._query(f"SELECT {_VERSION_COLUMNS} FROM report_versions WHERE version_id = ?", (version_id,))  # noqa: SLF001
        if not rows:
            raise StoreError(f"no report version {version_id}")
        return _version(rows[0])

    def queue(self, version: ReportVersion, fmt: str, destination: str, control_id: str, data: bytes) -> ReportSend:
        """Queue a version's message for a destination once: queueing it again returns the existing send.
        Older versions' sends to the same destination that have not gone yet are superseded."""
        now = now_utc()
        with self.store._transaction() as db:  # noqa: SLF001
            row = db.execute(f"SELECT {_SEND_COLUMNS} FROM report_sends WHERE version_id = ? AND format = ? AND "
                             "destination = ?", (version.version_id, fmt, destination)).fetchone()
            if row is not None:
                return ReportSend(*row)
            db.execute("UPDATE report_sends SET state = ?, updated_utc = ?, reason = ? WHERE study_instance_uid = ? "
                       "AND format = ? AND destination = ? AND state IN (?, ?, ?)",
                       (SUPERSEDED, now, "a newer report version was queued", version.study_instance_uid, fmt,
                        destination, QUEUED, RETRYING, REJECTED))
            send_id = str(uuid.uuid4())
            db.execute(f"INSERT INTO report_sends ({_SEND_COLUMNS}, data) VALUES ({', '.join('?' * 14)})",
                       (send_id, version.version_id, version.study_instance_uid, fmt, destination, control_id, QUEUED,
                        0, "", "", now, now, "", data))
        return self.send(send_id)

    def send(self, send_id: str) -> ReportSend:
        rows = self.store._query(f"SELECT {_SEND_COLUMNS} FROM report_sends WHERE send_id = ?", (send_id,))  # noqa: SLF001
        if not rows:
            raise StoreError(f"no report send {send_id}")
        return ReportSend(*rows[0])

    def sends(self, study_uid: str | None = None, states: tuple[str, ...] = ()) -> list[ReportSend]:
        where, values = [], []
        if study_uid:
            where.append("study_instance_uid = ?")
            values.append(study_uid)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            values += list(states)
        sql = f"SELECT {_SEND_COLUMNS} FROM report_sends" + (" WHERE " + " AND ".join(where) if where else "")
        return [ReportSend(*row) for row in self.store._query(sql + " ORDER BY created_utc", tuple(values))]  # noqa: SLF001

    def data(self, send_id: str) -> bytes:
        rows = self.store._query("SELECT data FROM report_sends WHERE send_id = ?", (send_id,))  # noqa: SLF001
        if not rows:
            raise StoreError(f"no report send {send_id}")
        return bytes(rows[0][0])

    def update(self, send_id: str, **changes) -> None:
        allowed = {"state", "attempts", "answer", "reason", "next_attempt_utc"}
        if not changes or set(changes) - allowed:
            raise ValueError(f"only {sorted(allowed)} may change")
        columns = ", ".join(f"{name} = ?" for name in changes)
        with self.store._transaction() as db:  # noqa: SLF001
            db.execute(f"UPDATE report_sends SET {columns}, updated_utc = ? WHERE send_id = ?",
                       (*changes.values(), now_utc(), send_id))


def _version(row: tuple) -> ReportVersion:
    values = list(row)
    values[8], values[9] = json.loads(values[8]), json.loads(values[9])
    return ReportVersion(*values)
