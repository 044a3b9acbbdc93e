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

# v2: the heatmap of each run (for the Parametric Map sent to the PACS; never synced: it is image-derived),
# and the results sent to the PACS: each built object's bytes (so a retry sends the same object, never a new
# one) with its delivery state, which changes as sends are attempted (the audit trail keeps the history).
_V2 = """
CREATE TABLE heatmaps (
    run_id TEXT PRIMARY KEY REFERENCES inference_runs(run_id),
    frames INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    columns INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE result_objects (
    sop_instance_uid TEXT PRIMARY KEY,
    study_instance_uid TEXT NOT NULL,
    series_instance_uid TEXT NOT NULL,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    content_key TEXT NOT NULL,
    node TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    created_utc TEXT NOT NULL,
    updated_utc TEXT NOT NULL,
    next_attempt_utc TEXT NOT NULL DEFAULT '',
    signoff_entry_id TEXT NOT NULL DEFAULT '',
    data BLOB NOT NULL
);
CREATE UNIQUE INDEX result_objects_content ON result_objects(run_id, kind, content_key, node);
CREATE INDEX result_objects_study ON result_objects(study_instance_uid, state);
""" + _APPEND_ONLY.format(table="heatmaps", columns="run_id, frames, rows, columns, data")

# triage (issue 19): the inference queue of routed series and the local studies of the worklist
# (rows change state; the audit trail keeps the history). The SQL lives with its module.
from workstation.store.triage_schema import SCHEMA as _TRIAGE  # noqa: E402

# measurements (issue 15): the reader's own measurements, append-only entries like feedback.
from workstation.store.measurement_schema import SCHEMA as _MEASUREMENTS  # noqa: E402

from workstation.store.report_schema import SCHEMA as _REPORTS  # noqa: E402

# sync (issue 13): the sync worker's last outcome, for doctor and the window (rows change; key/value).
from workstation.store.sync_schema import SCHEMA as _SYNC_STATUS  # noqa: E402

# de-identified export (issue 14): the re-identification table, kept only when the site chooses it.
from workstation.store.deid_schema import SCHEMA as _DEID_LINKS  # noqa: E402

# sync speed (issue 13): a feedback entry or inference record travels with the audit entry that binds it, and
# only the audit entry's flag says what is synced; the records' own flags were set with it and read nowhere, yet
# setting them rewrote (and re-encrypted) every page holding a record: 45% of marking a pushed batch synced.
# Without them, the record tables take no update at all.
_RECORD_FLAGS_DROPPED = """
ALTER TABLE feedback DROP COLUMN synced;
ALTER TABLE inference_runs DROP COLUMN synced;
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _TRIAGE, _MEASUREMENTS, _REPORTS, _SYNC_STATUS, _DEID_LINKS,
                               _RECORD_FLAGS_DROPPED)
