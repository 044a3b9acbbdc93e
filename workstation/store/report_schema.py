"""Tables of report versions (append-only) and their deliveries (see store.report_store)."""

SCHEMA = """
CREATE TABLE report_versions (
    version_id TEXT PRIMARY KEY,
    audit_seq INTEGER NOT NULL UNIQUE REFERENCES audit(seq),
    study_instance_uid TEXT NOT NULL,
    series_instance_uid TEXT NOT NULL,
    run_id TEXT NOT NULL,
    signoff_entry_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    structured TEXT NOT NULL,
    identifiers TEXT NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    at_utc TEXT NOT NULL
);
CREATE INDEX report_versions_study ON report_versions(study_instance_uid, audit_seq);
CREATE TRIGGER report_versions_append_only_delete BEFORE DELETE ON report_versions
BEGIN SELECT RAISE(ABORT, 'report_versions entries are append-only'); END;
CREATE TRIGGER report_versions_append_only_update BEFORE UPDATE ON report_versions
BEGIN SELECT RAISE(ABORT, 'report_versions entries are append-only'); END;
CREATE TABLE report_sends (
    send_id TEXT PRIMARY KEY,
    version_id TEXT NOT NULL REFERENCES report_versions(version_id),
    study_instance_uid TEXT NOT NULL,
    format TEXT NOT NULL,
    destination TEXT NOT NULL,
    control_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    answer TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    created_utc TEXT NOT NULL,
    updated_utc TEXT NOT NULL,
    next_attempt_utc TEXT NOT NULL DEFAULT '',
    data BLOB NOT NULL
);
CREATE UNIQUE INDEX report_sends_once ON report_sends(version_id, format, destination);
CREATE INDEX report_sends_state ON report_sends(state, next_attempt_utc);
"""
