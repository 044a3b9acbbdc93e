"""Schema versions: a fresh store is at the latest version; a store written by a newer version is refused
before anything is written to it."""

from __future__ import annotations

import pytest
from store_helpers import folder_bytes, raw_connect, raw_key, study_event, STORE_FILES

from workstation.core.review import Action
from workstation.core.roles import Role, User
from workstation.store import database
from workstation.store.database import Identity, Store, StoreError, StoreLocked
from workstation.store.schema import MIGRATIONS


def test_a_fresh_store_has_every_migration_applied(open_store, db_path, backend):
    open_store().close()
    db = raw_connect(db_path, raw_key(backend))
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"audit", "feedback", "inference_runs", "audit_append_only_update", "feedback_append_only_delete"} <= names
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with open_store() as store:  # reopening applies nothing twice
        store.append(study_event(1))
        assert store.verify().ok


def test_a_store_of_a_newer_schema_is_refused_and_left_unchanged(open_store, db_path, data_dir, backend):
    with open_store() as store:
        store.append(study_event(1))
    db = raw_connect(db_path, raw_key(backend))
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    before = folder_bytes(data_dir)
    assert set(before) == STORE_FILES
    for _ in range(2):
        known = len(MIGRATIONS)
        with pytest.raises(StoreError, match=rf"written by a newer version of the workstation \(schema {known + 1}, "
                                             rf"this version knows {known}\); it was left untouched - upgrade") as refused:
            open_store()
        assert not isinstance(refused.value, StoreLocked)  # not a key problem
        assert folder_bytes(data_dir) == before  # same bytes, no -wal/-shm, no failed-open note


def test_migrations_are_one_transaction_each(open_store, db_path, backend, monkeypatch):
    """A migration that fails half-way leaves the store as it was (no half-made schema, version unchanged)."""
    monkeypatch.setattr(database, "MIGRATIONS", (MIGRATIONS[0] + "\nCREATE TABLE audit (x);\n",))
    with pytest.raises(Exception, match="already exists"):
        Store.open(db_path, Identity(User("rita", Role.REVIEWER), "ws-test"), backend)
    monkeypatch.undo()
    db = raw_connect(db_path, raw_key(backend))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    db.close()
    with open_store() as store:  # and the next open applies it properly
        store.append(study_event(1))
        assert store.verify().ok


def test_a_version_1_store_is_upgraded_keeping_its_entries(open_store, db_path, backend, monkeypatch):
    """Stores written before the heatmap and results tables existed open, gain them, and still verify."""
    monkeypatch.setattr(database, "MIGRATIONS", MIGRATIONS[:1])
    with open_store() as store:
        store.append(study_event(1))
    monkeypatch.undo()
    with open_store() as store:
        assert store.count() == 1 and store.verify().ok
    db = raw_connect(db_path, raw_key(backend))
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert {"heatmaps", "result_objects"} <= {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    db.close()


def test_the_records_lose_their_unread_sync_flags_and_keep_everything_else(open_store, db_path, backend, monkeypatch):
    """A store from before the last migration, with records synced and pending, opens without the records' own
    flags (only the audit entry's says what is synced); its records, outbox and chain are as they were, and the
    record tables now take no update at all (the append-only trigger covers every column left)."""
    from store_helpers import feedback_entry

    monkeypatch.setattr(database, "MIGRATIONS", MIGRATIONS[:-1])
    with open_store() as store:
        for i in range(4):
            store.record_feedback(feedback_entry(store.identity.user, Action.ACCEPT, f"f{i}"))
        store.mark_batch_synced(store.outbox_batch(0, 2))
        before = [item.to_wire() for item in store.outbox(10)]
    monkeypatch.undo()
    db = raw_connect(db_path, raw_key(backend))
    assert "synced" in {row[1] for row in db.execute("PRAGMA table_info(feedback)")}
    db.close()
    with open_store() as store:
        assert [item.to_wire() for item in store.outbox(10)] == before and store.pending_count() == 2
        assert store.synced_through() == 2 and store.verify().ok
        store.mark_batch_synced(store.outbox_batch(0, 10))
        assert store.pending_count() == 0
    db = raw_connect(db_path, raw_key(backend))
    for table in ("feedback", "inference_runs"):
        assert "synced" not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    with pytest.raises(Exception, match="append-only"):
        db.execute("UPDATE feedback SET payload = '{}'")
    assert db.execute("SELECT count(*) FROM feedback").fetchone()[0] == 4
    db.close()
