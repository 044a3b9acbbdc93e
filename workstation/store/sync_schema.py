"""The sync worker's last outcome, kept in the store so that `workstation doctor` (another process) and the
window after a restart can say how sync stands: last push, its result, refusals. Rows change (key/value); the
audit trail itself is never touched by it."""

SCHEMA = """
CREATE TABLE sync_status (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_utc TEXT NOT NULL
);
"""
