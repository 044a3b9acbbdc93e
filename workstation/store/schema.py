"""Schema migrations of the local store, applied in order; `PRAGMA user_version` counts them.

Entries are append-only: triggers refuse UPDATE (except of the sync flag) and
DELETE, so a bug cannot rewrite history. Someone with the key can drop the
triggers, which is why the audit chain exists (see core.audit).
"""

from __future__ import annotations

_APPEND_ONLY = """
CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} entries are append-only'); END;
CREATE TRIGGER {table}_append_only_update BEFORE UPDATE OF {columns} ON {table}
BEGIN SELECT RAISE(ABORT, '{table} entries are append-only'); END;
"""

_V1 = """
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    entry_id TEXT NOT NULL UNIQUE,
    workstation_id TEXT NOT NULL,
    at_utc TEXT NOT NULL,
    kind TEXT NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    study_instance_uid TEXT NOT NULL,
    outcome INTEGER NOT NULL,
    outcome_text TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX audit_unsynced ON audit(synced, seq);
CREATE TABLE feedback (
    entry_id TEXT PRIMARY KEY,
    audit_seq INTEGER NOT NULL UNIQUE REFERENCES audit(seq),
    series_instance_uid TEXT NOT NULL,
    finding_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX feedback_series ON feedback(series_instance_uid, audit_seq);
CREATE TABLE inference_runs (
    run_id TEXT PRIMARY KEY,
    audit_seq INTEGER NOT NULL UNIQUE REFERENCES audit(seq),
    series_instance_uid TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    payload TEXT NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX inference_series ON inference_runs(series_instance_uid, audit_seq);
""" + "".join(_APPEND_ONLY.format(table=t, columns=c) for t, c in (
    ("audit", "seq, entry_id, workstation_id, at_utc, kind, user, role, study_instance_uid, outcome, outcome_text, details, prev_hash, hash"),
    ("feedback", "entry_id, audit_seq, series_instance_uid, finding_id, payload"),
    ("inference_runs", "run_id, audit_seq, series_instance_uid, model, version, payload"),
))

MIGRATIONS: tuple[str, ...] = (_V1,)
