"""Measurements in the encrypted store: each entry with its chained audit entry, in one transaction.

The table is append-only like feedback (triggers refuse UPDATE and DELETE of
its content); the rules (own measurements only, undo along one's own stack)
are checked against what is stored, inside the write transaction, so they
hold whoever writes. A refused write is itself recorded (`access.denied`).
"""

from __future__ import annotations

import json

from workstation.core.audit import AuditEntry, AuditEvent, digest
from workstation.core.measure_log import MeasurementEntry, refusal
from workstation.core.roles import Permission, PermissionDenied
from workstation.store.database import Store
from workstation.store.measurement_schema import SCHEMA  # noqa: F401 - the migration (store.schema appends it)

PERMISSION = Permission.COMMENT  # a measurement is the reader's own annotation: whoever may comment may measure



class MeasurementRefused(PermissionDenied):
    """The entry breaks a rule (another reader's measurement, nothing to undo); `reason` says which."""

    def __init__(self, user, reason: str) -> None:
        super().__init__(user, PERMISSION)
        self.reason = reason
        self.args = (f"{user.login}: {reason}",)


class MeasurementStore:
    """Measurement entries on an open Store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def entries(self, series_instance_uid: str) -> list[MeasurementEntry]:
        """The series' measurement entries in write order."""
        rows = self.store._query(  # noqa: SLF001 - one store, several modules
            "SELECT payload FROM measurements WHERE series_instance_uid = ? ORDER BY audit_seq", (series_instance_uid,))
        return [MeasurementEntry.from_dict(json.loads(payload)) for (payload,) in rows]

    def record(self, entry: MeasurementEntry) -> AuditEntry:
        """One entry and its audit entry; the writer, the role and the rules are checked here."""
        user, identity = self.store.identity.user, self.store.identity
        role = user.role.value if user.role else ""
        claim = ""
        if entry.user != user.login or entry.role != role:
            claim = f"entry claims user {entry.user!r} ({entry.role}) but {user.login} is signed in"
        elif entry.workstation_id != identity.workstation_id:
            claim = f"entry claims workstation {entry.workstation_id!r} but this is {identity.workstation_id!r}"
        elif not user.may(PERMISSION):
            claim = f"measurement {entry.action.value} refused"
        if claim:
            self.store._deny(PERMISSION, entry.study_instance_uid, claim)  # noqa: SLF001
            raise PermissionDenied(user, PERMISSION)
        payload = entry.to_dict()
        details = {"measurement_entry_id": entry.entry_id, "measurement_sha256": digest(payload),
                   "measurement_id": entry.measurement_id, "series_instance_uid": entry.series_instance_uid}
        if entry.measurement is not None:
            details.update(kind=entry.measurement.kind, sop_instance_uid=entry.measurement.sop_instance_uid)
        if entry.reverts:
            details["reverts"] = entry.reverts
        event = AuditEvent(entry.action.audit_kind, entry.at_utc, details, study_instance_uid=entry.study_instance_uid)
        reason = None
        with self.store._transaction() as db:  # noqa: SLF001
            rows = db.execute("SELECT payload FROM measurements WHERE series_instance_uid = ? ORDER BY audit_seq",
                              (entry.series_instance_uid,)).fetchall()
            reason = refusal([MeasurementEntry.from_dict(json.loads(p)) for (p,) in rows], entry)
            if reason is None:
                audit = self.store._append(db, event)  # noqa: SLF001
                db.execute("INSERT INTO measurements (entry_id, audit_seq, series_instance_uid, measurement_id, payload)"
                           " VALUES (?,?,?,?,?)", (entry.entry_id, audit.seq, entry.series_instance_uid,
                                                   entry.measurement_id, _json(payload)))
        if reason is not None:
            self.store._deny(PERMISSION, entry.study_instance_uid, f"measurement {entry.action.value} refused: {reason}")  # noqa: SLF001
            raise MeasurementRefused(user, reason)
        return audit


def _json(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
