"""The hash chain over audit entries: each kind of tampering is named at the right entry."""

from __future__ import annotations

from dataclasses import replace

import pytest

from workstation.core.audit import GENESIS, KINDS, AuditEvent, chain_entry, verify_chain


def build(n: int) -> list:
    entries, prev = [], GENESIS
    for seq in range(1, n + 1):
        event = AuditEvent("study.opened", f"2026-01-01T00:00:{seq:02d}", {"instances": seq}, "1.2.3")
        entry = chain_entry(seq, f"id{seq}", "ws1", "alice", "radiologist", event, prev)
        entries.append(entry)
        prev = entry.hash
    return entries


def renumber(entries):
    return [replace(e, seq=i) for i, e in enumerate(entries, start=1)]


def test_an_untouched_chain_verifies_and_reports_its_head():
    entries = build(6)
    report = verify_chain(entries)
    assert report.ok and report.entries == 6 and report.head == entries[-1].hash
    assert verify_chain([]).ok and verify_chain([]).head == GENESIS


@pytest.mark.parametrize("position", [0, 3, 5])
def test_an_altered_field_is_named(position):
    entries = build(6)
    entries[position] = replace(entries[position], user="mallory")
    problem = verify_chain(entries).problem
    assert (problem.kind, problem.seq, problem.entry_id) == ("altered", position + 1, f"id{position + 1}")


def test_an_altered_and_rehashed_entry_breaks_the_next_link():
    entries = build(6)
    forged = replace(entries[2], details={"instances": 99})
    entries[2] = replace(forged, hash=forged.computed_hash())
    problem = verify_chain(entries).problem
    assert problem.kind == "broken-link" and problem.seq == 4 and "altered" in problem.message


def test_a_deleted_entry_is_named_by_the_gap():
    entries = build(6)
    del entries[3]
    problem = verify_chain(entries).problem
    assert (problem.kind, problem.seq) == ("deleted", 4)


def test_a_deleted_and_renumbered_entry_breaks_the_link():
    entries = build(6)
    del entries[3]
    problem = verify_chain(renumber(entries)).problem
    assert (problem.kind, problem.seq) == ("broken-link", 4)


def test_an_inserted_entry_is_named_even_when_well_formed():
    entries = build(6)
    event = AuditEvent("export", "2026-01-01T00:00:03", {"count": 1})
    fake = chain_entry(3, "fake", "ws1", "alice", "radiologist", event, entries[1].hash)  # links correctly backwards
    problem = verify_chain(renumber(entries[:2] + [fake] + entries[2:])).problem
    assert (problem.kind, problem.seq, problem.entry_id) == ("inserted", 3, "fake")


def test_an_inserted_entry_with_a_bogus_hash_is_named_inserted():
    entries = build(4)
    bogus = replace(entries[1], entry_id="bogus", hash="f" * 64, prev_hash="e" * 64)
    problem = verify_chain(renumber(entries[:2] + [bogus] + entries[2:])).problem
    assert (problem.kind, problem.entry_id) == ("inserted", "bogus")


def test_every_kind_has_a_dicom_event_id_and_action_code():
    for kind, spec in KINDS.items():
        assert spec.event_id.value.startswith("1101") and spec.event_id.scheme == "DCM", kind
        assert spec.action in "CRUDE"
    with pytest.raises(ValueError):
        AuditEvent("made.up", "2026-01-01T00:00:00")
