"""The re-identification table of de-identified exports (a site choice, off by default): one migration."""

SCHEMA = """
CREATE TABLE deid_links (
    kind TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    original TEXT NOT NULL,
    export_id TEXT NOT NULL,
    at_utc TEXT NOT NULL,
    PRIMARY KEY (kind, pseudonym, original)
);
CREATE INDEX deid_links_pseudonym ON deid_links(pseudonym);
CREATE TRIGGER deid_links_append_only_delete BEFORE DELETE ON deid_links
BEGIN SELECT RAISE(ABORT, 'deid_links entries are append-only'); END;
CREATE TRIGGER deid_links_append_only_update BEFORE UPDATE ON deid_links
BEGIN SELECT RAISE(ABORT, 'deid_links entries are append-only'); END;
"""
