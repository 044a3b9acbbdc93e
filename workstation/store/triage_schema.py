"""The SQL of the triage tables (inference queue, local studies): one migration in store.schema."""

SCHEMA = """
CREATE TABLE triage_jobs (
    seq INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    study_instance_uid TEXT NOT NULL,
    series_instance_uid TEXT NOT NULL,
    model TEXT NOT NULL,
    rule TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    calling_ae TEXT NOT NULL DEFAULT '',
    instances INTEGER NOT NULL DEFAULT 0,
    folder TEXT NOT NULL DEFAULT '',
    created_utc TEXT NOT NULL,
    updated_utc TEXT NOT NULL,
    started_utc TEXT NOT NULL DEFAULT '',
    finished_utc TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    run_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX triage_jobs_state ON triage_jobs(state, priority, seq);
CREATE INDEX triage_jobs_series ON triage_jobs(series_instance_uid);
CREATE TABLE local_studies (
    study_instance_uid TEXT PRIMARY KEY,
    patient_name TEXT NOT NULL DEFAULT '',
    patient_id TEXT NOT NULL DEFAULT '',
    study_date TEXT NOT NULL DEFAULT '',
    study_time TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    modalities TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    folder TEXT NOT NULL DEFAULT '',
    series TEXT NOT NULL DEFAULT '{}',
    arrived_utc TEXT NOT NULL,
    updated_utc TEXT NOT NULL
);
"""
