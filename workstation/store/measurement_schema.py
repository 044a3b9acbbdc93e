"""The SQL of the measurements table (issue 15): one migration in store.schema."""

SCHEMA = """
CREATE TABLE measurements (
    entry_id TEXT PRIMARY KEY,
    audit_seq INTEGER NOT NULL UNIQUE REFERENCES audit(seq),
    series_instance_uid TEXT NOT NULL,
    measurement_id TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX measurements_series ON measurements(series_instance_uid, audit_seq);
CREATE TRIGGER measurements_append_only_delete BEFORE DELETE ON measurements
BEGIN SELECT RAISE(ABORT, 'measurements entries are append-only'); END;
CREATE TRIGGER measurements_append_only_update BEFORE UPDATE ON measurements
BEGIN SELECT RAISE(ABORT, 'measurements entries are append-only'); END;
"""
