"""The results queue: DICOM objects built for a PACS node and their delivery state, in the encrypted store.

Unlike feedback and audit entries these rows change (queued -> retrying ->
sent or failed); what happened is kept by the `export` audit entries. Each
object's bytes are kept with it, so a retry sends the very same object.
"""

from __future__ import annotations

from dataclasses import dataclass

from workstation.store.database import Store, StoreError, now_utc


@dataclass(frozen=True)
class QueuedResult:
    """A built DICOM object on its way to a PACS node; `state` is queued, retrying, sent, failed or cancelled."""

    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str  # the source series
    run_id: str
    kind: str
    content_key: str
    node: str
    state: str
    attempts: int
    status: int | None  # the last C-STORE status, when the PACS answered
    reason: str
    created_utc: str
    updated_utc: str
    next_attempt_utc: str
    signoff_entry_id: str = ""  # objects made from a sign-off (review SR, reviewed GSPS) go only while it holds



class ResultQueue:
    """Queue operations on an open Store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, item: QueuedResult, data: bytes) -> QueuedResult:
        """Queue a built object unless one with the same run, kind, content and node exists: then that one
        (its SOP Instance UID, state and bytes) is returned, so building again never sends a second object."""
        with self.store._transaction() as db:  # noqa: SLF001 - one store, two modules
            row = db.execute(f"SELECT {_RESULT_COLUMNS} FROM result_objects WHERE run_id = ? AND kind = ? AND "
                             "content_key = ? AND node = ?", (item.run_id, item.kind, item.content_key, item.node)).fetchone()
            if row is not None:
                return QueuedResult(*row)
            db.execute(f"INSERT INTO result_objects ({_RESULT_COLUMNS}, data) VALUES ({', '.join('?' * 16)})",
                       (*_result_values(item), data))
        return item

    def items(self, study_instance_uid: str | None = None, states: tuple[str, ...] = ()) -> list[QueuedResult]:
        where, values = [], []
        if study_instance_uid:
            where.append("study_instance_uid = ?")
            values.append(study_instance_uid)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            values += list(states)
        sql = f"SELECT {_RESULT_COLUMNS} FROM result_objects" + (" WHERE " + " AND ".join(where) if where else "")
        return [QueuedResult(*row) for row in self.store._query(sql + " ORDER BY created_utc, kind", tuple(values))]

    def data(self, sop_instance_uid: str) -> bytes:
        rows = self.store._query("SELECT data FROM result_objects WHERE sop_instance_uid = ?", (sop_instance_uid,))
        if not rows:
            raise StoreError(f"no queued result {sop_instance_uid}")
        return bytes(rows[0][0])

    def update(self, sop_instance_uid: str, **changes) -> None:
        """Change a queued object's delivery state (state, attempts, status, reason, next_attempt_utc)."""
        allowed = {"state", "attempts", "status", "reason", "next_attempt_utc"}
        if not changes or set(changes) - allowed:
            raise ValueError(f"only {sorted(allowed)} may change")
        columns = ", ".join(f"{name} = ?" for name in changes)
        with self.store._transaction() as db:
            db.execute(f"UPDATE result_objects SET {columns}, updated_utc = ? WHERE sop_instance_uid = ?",
                       (*changes.values(), now_utc(), sop_instance_uid))


_RESULT_COLUMNS = ("sop_instance_uid, study_instance_uid, series_instance_uid, run_id, kind, content_key, node, state, "
                   "attempts, status, reason, created_utc, updated_utc, next_attempt_utc, signoff_entry_id")


def _result_values(item: QueuedResult) -> tuple:
    return (item.sop_instance_uid, item.study_instance_uid, item.series_instance_uid, item.run_id, item.kind,
            item.content_key, item.node, item.state, item.attempts, item.status, item.reason, item.created_utc,
            item.updated_utc, item.next_attempt_utc, item.signoff_entry_id)
