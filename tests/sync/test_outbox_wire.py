"""The worker's outbox path (store/outbox.py: SQLite writes the wire items, stored JSON spliced in) sends exactly
what the object path (Store.outbox -> SyncItem.to_wire) would, and marking a batch touches only that batch."""

from __future__ import annotations

import json

from sync_helpers import populate

from workstation.core.sync import SyncItem


def test_wire_batches_equal_the_object_path_item_for_item(store):
    populate(store, 90)
    objects = [item.to_wire() for item in store.outbox(10_000)]
    wire, after = [], 0
    while (batch := store.outbox_batch(after, 17)) is not None:
        assert list(batch.seqs) == sorted(batch.seqs) and batch.first > after
        wire.extend(json.loads(text) for text in batch.items)
        after = batch.last
    assert wire == objects
    assert {w["record"]["kind"] for w in wire if w["record"]} == {"feedback", "inference"}
    assert any(w["record"] is None for w in wire)
    body = json.loads(store.outbox_batch(0, 5).body("ws-sync-01"))
    assert body["workstation_id"] == "ws-sync-01" and body["items"] == objects[:5]
    for data in wire:  # each parses back into a sound item (hash and record binding)
        assert SyncItem.from_wire(data).problem() is None


def test_marking_a_batch_leaves_the_rest_in_the_outbox(store):
    populate(store, 40)
    first = store.outbox_batch(0, 10)
    second = store.outbox_batch(first.last, 10)
    assert store.mark_batch_synced(second) == 10
    assert [i.entry.seq for i in store.outbox(10_000)] == [*first.seqs, *range(second.last + 1, store.count() + 1)]
    assert store.outbox_batch(0, 100).seqs[:10] == first.seqs
    assert store.mark_batch_synced(second) == 0  # already synced: nothing changes


def test_marking_does_not_wait_for_the_disk_but_every_other_write_still_does(store):
    """A batch's marks commit with synchronous=NORMAL (lost in a power cut, the batch is resent and acknowledged as
    duplicates); the connection is back at FULL afterwards, also when the marking fails."""
    populate(store, 12)
    seen = []
    store._db.set_trace_callback(lambda sql: seen.append(sql.strip()))
    batch = store.outbox_batch(0, 5)
    assert store.mark_batch_synced(batch) == 5
    assert seen.index("PRAGMA synchronous = NORMAL") < seen.index("BEGIN IMMEDIATE") < seen.index("COMMIT") \
        < seen.index("PRAGMA synchronous = FULL")
    store._db.set_trace_callback(None)
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store._db.execute("CREATE TEMP TRIGGER refuse BEFORE UPDATE OF synced ON audit BEGIN SELECT RAISE(ABORT, 'no'); END")
    try:
        store.mark_batch_synced(store.outbox_batch(batch.last, 5))
    except Exception:  # noqa: BLE001 - the marking fails; what matters is the mode afterwards
        pass
    else:
        raise AssertionError("the trigger should have refused the marks")
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert store.pending_count() == 7
