"""The sync outbox: unsynced entries in seq order with their records; they leave it only when marked."""

from __future__ import annotations

from store_helpers import feedback_entry, raw_connect, raw_key, study_event

from workstation.core.audit import digest
from workstation.core.review import Action


def test_outbox_lists_unsynced_entries_with_their_records_in_order(open_store, db_path, backend):
    store = open_store()
    store.append(study_event(1))
    entry = feedback_entry(store.identity.user, Action.ACCEPT)
    store.record_feedback(entry)
    store.append(study_event(2))
    items = store.outbox()
    assert [i.entry.seq for i in items] == [1, 2, 3] and store.pending_count() == 3
    record = items[1].record
    assert (record.kind, record.id) == ("feedback", entry.entry_id)
    assert items[1].entry.details["feedback_sha256"] == digest(record.payload)
    assert all(item.problem() is None for item in items)  # each item is sound as the server will check it
    assert items[0].record is None and items[2].record is None
    assert [i.entry.seq for i in store.outbox(limit=2)] == [1, 2]


def test_only_acknowledged_entries_leave_the_outbox_and_the_chain_still_verifies(open_store, db_path, backend):
    store = open_store()
    for i in range(5):
        store.append(study_event(i))
    first = store.outbox(limit=2)
    assert store.mark_synced([i.entry.entry_id for i in first]) == 2
    assert store.mark_synced([first[0].entry.entry_id, "unknown-id"]) == 0  # again, or unknown: nothing changes
    assert [i.entry.seq for i in store.outbox()] == [3, 4, 5] and store.pending_count() == 3
    assert store.verify().ok  # the sync flag is outside the hashed content
    store.close()
    db = raw_connect(db_path, raw_key(backend))
    assert db.execute("SELECT seq FROM audit WHERE synced = 1 ORDER BY seq").fetchall() == [(1,), (2,)]
    db.close()
