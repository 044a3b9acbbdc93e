"""The sync protocol's own checks on an item: hash, record binding, continuation of the accepted head."""

from __future__ import annotations

from dataclasses import replace

from workstation.core.audit import GENESIS, AuditEvent, chain_entry, digest
from workstation.core.sync import Record, SyncItem, continuation_problem


def item(seq: int = 1, prev: str = GENESIS, payload: dict | None = None) -> SyncItem:
    details = {"feedback_entry_id": "fb1", "feedback_sha256": digest(payload)} if payload is not None else {"n": seq}
    entry = chain_entry(seq, f"id{seq}", "ws1", "alice", "radiologist",
                        AuditEvent("finding.accept" if payload else "study.opened", "2026-01-01T00:00:00", details), prev)
    return SyncItem(entry, Record("feedback", "fb1", payload) if payload is not None else None)


def test_items_travel_as_plain_json_and_come_back_equal():
    original = item(payload={"action": "accept", "finding_id": "f"})
    assert SyncItem.from_wire(original.to_wire()) == original and original.problem() is None


def test_an_item_is_checked_on_its_own():
    sound = item(payload={"action": "accept"})
    assert replace(sound, record=None).problem().endswith("record is missing")
    assert "does not match its digest" in replace(sound, record=Record("feedback", "fb1", {"action": "reject"})).problem()
    assert "not the one it binds" in replace(sound, record=Record("feedback", "other", {"action": "accept"})).problem()
    assert "hash does not match" in replace(sound, entry=replace(sound.entry, user="mallory")).problem()


def test_continuation_needs_the_next_seq_and_the_accepted_head():
    first = item(1)
    second = item(2, first.entry.hash)
    assert continuation_problem(0, GENESIS, first) is None and continuation_problem(1, first.entry.hash, second) is None
    assert continuation_problem(0, GENESIS, second).startswith("gap")
    assert "already accepted" in continuation_problem(1, first.entry.hash, first)
    assert "does not link" in continuation_problem(1, "f" * 64, second)
