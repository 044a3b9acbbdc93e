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
