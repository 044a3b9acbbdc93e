"""Pushing entries: accepted once each, in chain order, all or nothing; queried back by QA with filters."""

from __future__ import annotations

from dataclasses import replace

from server_helpers import MODEL, OTHER_MODEL, fill, push, stored_ids, wire

from workstation.core.audit import GENESIS
from workstation.core.sync import API_PREFIX, Record


def test_push_is_stored_once_and_shown_in_status_and_queries(server, make_store, workstation_id):
    store = make_store(workstation_id)
    items = fill(store, 10)
    token = server.enrol(workstation_id)
    with server.client(token) as http:
        first = push(http, workstation_id, items[:6])
        assert first.status_code == 200, first.text
        body = first.json()
        assert (body["accepted"], body["duplicates"]) == (6, 0)
        assert body["acknowledged"] == [i.entry.entry_id for i in items[:6]]
        assert body["head"] == {"seq": 6, "hash": items[5].entry.hash}
        second = push(http, workstation_id, items[6:]).json()
        assert (second["accepted"], second["duplicates"], second["head"]["seq"]) == (4, 0, 10)
        own = http.get(f"{API_PREFIX}/workstations/{workstation_id}/status")
        assert own.status_code == 200 and own.json()["entries"] == 10

    stored = server.entries(workstation_id)
    assert [{k: v for k, v in s.items() if k != "received_utc"} for s in stored] == wire(items)
    assert all(s["received_utc"] for s in stored)
    status = server.status(workstation_id)
    assert status["entries"] == 10 and status["head"] == {"seq": 10, "hash": items[-1].entry.hash}
    assert status["last_push_utc"] and status["incidents"] == []

    # filters: kind, action, model and version (from the entry's details), time, paging
    kinds = [i.entry.kind for i in items]
    assert [s["kind"] for s in server.entries(workstation_id, kind="inference.run")] == ["inference.run"] * kinds.count("inference.run")
    accepted = server.entries(workstation_id, action="accept")
    assert accepted and {s["kind"] for s in accepted} == {"finding.accept"}
    assert all(s["record"]["kind"] == "feedback" and s["record"]["payload"]["action"] == "accept" for s in accepted)
    by_model = server.entries(workstation_id, model=MODEL.name, model_version=OTHER_MODEL.version)
    assert [s["entry_id"] for s in by_model] == [i.entry.entry_id for i in items
                                                 if i.entry.details.get("version") == OTHER_MODEL.version]
    middle = items[4].entry.at_utc
    assert [s["seq"] for s in server.entries(workstation_id, since=middle)] == [i.entry.seq for i in items if i.entry.at_utc >= middle]
    assert [s["seq"] for s in server.entries(workstation_id, until=middle)] == [i.entry.seq for i in items if i.entry.at_utc < middle]
    with server.client(server.qa_token) as http:
        pages, after = [], None
        while True:
            page = http.get(f"{API_PREFIX}/entries", params={"workstation_id": workstation_id, "limit": 3,
                                                             **({"after": after} if after else {})}).json()
            pages.append([s["seq"] for s in page["items"]])
            after = page["next"]
            if after is None:
                break
        assert pages == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
        assert http.get(f"{API_PREFIX}/entries", params={"limit": 1001}).status_code == 422
        assert http.get(f"{API_PREFIX}/entries", params={"since": "yesterday"}).status_code == 422
        everyone = http.get(f"{API_PREFIX}/status").json()["workstations"]
        assert workstation_id in [w["workstation_id"] for w in everyone]


def test_the_same_batch_twice_is_all_duplicates_and_stored_once(server, make_store, workstation_id):
    items = fill(make_store(workstation_id), 7)
    with server.client(server.enrol(workstation_id)) as http:
        assert push(http, workstation_id, items[:4]).json()["accepted"] == 4
        again = push(http, workstation_id, items[:4]).json()
        assert (again["accepted"], again["duplicates"]) == (0, 4)
        assert again["acknowledged"] == [i.entry.entry_id for i in items[:4]]
        overlap = push(http, workstation_id, items).json()  # a resend that goes on past the head
        assert (overlap["accepted"], overlap["duplicates"], overlap["head"]["seq"]) == (3, 4, 7)
        assert push(http, workstation_id, []).json()["head"]["seq"] == 7
    assert stored_ids(server, workstation_id) == [i.entry.entry_id for i in items]
    assert server.status(workstation_id)["entries"] == 7


def _rejected(server, http, workstation_id, items, error, kind, seq, before):
    response = push(http, workstation_id, items)
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    assert detail["error"] == error and detail["seq"] == seq, detail
    assert stored_ids(server, workstation_id) == before  # nothing of the batch was written
    incident = server.status(workstation_id)["incidents"][-1]
    assert incident["kind"] == kind and incident["seq"] == seq and incident["message"] == detail["message"]
    return detail


def test_same_uuid_with_other_content_is_a_conflict_and_nothing_is_written(server, make_store, workstation_id):
    items = fill(make_store(workstation_id), 6)
    with server.client(server.enrol(workstation_id)) as http:
        assert push(http, workstation_id, items[:3]).status_code == 200
        before = stored_ids(server, workstation_id)
        record = items[2].record
        assert record is not None and record.kind == "feedback"
        changed = replace(items[2], record=Record(record.kind, record.id, {**record.payload, "comment": "changed"}))
        detail = _rejected(server, http, workstation_id, [changed, *items[3:]], "conflict", "conflict", 3, before)
        assert detail["entry_id"] == items[2].entry.entry_id and "other content" in detail["message"]
        # a different entry (another UUID) claiming an accepted seq
        impostor = replace(items[1], entry=replace(items[1].entry, entry_id="11111111-2222-3333-4444-555555555555"))
        _rejected(server, http, workstation_id, [impostor], "conflict", "conflict", 2, before)
        assert server.status(workstation_id)["head"]["seq"] == 3
        # and the genuine continuation still goes through
        assert push(http, workstation_id, items[3:]).json()["accepted"] == 3


def test_gap_broken_link_and_altered_entries_are_refused_with_an_incident(server, make_store, workstation_id):
    items = fill(make_store(workstation_id), 8)
    with server.client(server.enrol(workstation_id)) as http:
        assert push(http, workstation_id, items[:2]).status_code == 200
        before = stored_ids(server, workstation_id)
        # gap: entry 3 is missing (the batch is rejected as a whole, entry 4 included)
        detail = _rejected(server, http, workstation_id, items[3:5], "chain", "gap", 4, before)
        assert detail["message"].startswith("gap")
        # broken link: entry 3 rewritten and re-hashed, so its content is sound but it links elsewhere
        e3 = items[2].entry
        relinked = replace(e3, prev_hash="f" * 64)
        relinked = replace(items[2], entry=replace(relinked, hash=relinked.computed_hash()))
        _rejected(server, http, workstation_id, [relinked, *items[3:5]], "chain", "broken-link", 3, before)
        # altered: content changed after hashing (user, then a tampered record payload, then a bad hash)
        forged = replace(items[2], entry=replace(e3, user="mallory"))
        _rejected(server, http, workstation_id, [forged], "chain", "altered", 3, before)
        record_item = next(i for i in items[2:] if i.record is not None)
        tampered = replace(record_item, record=replace(record_item.record, payload={**record_item.record.payload, "x": 1}))
        batch = [i for i in items[2:] if i.entry.seq < record_item.entry.seq] + [tampered]
        _rejected(server, http, workstation_id, batch, "chain", "altered", record_item.entry.seq, before)
        unbound = replace(record_item, record=None)
        batch = [i for i in items[2:] if i.entry.seq < record_item.entry.seq] + [unbound]
        _rejected(server, http, workstation_id, batch, "chain", "altered", record_item.entry.seq, before)
        rehashed = replace(items[2], entry=replace(e3, hash="0" * 64))
        _rejected(server, http, workstation_id, [rehashed], "chain", "altered", 3, before)
        assert [i["kind"] for i in server.status(workstation_id)["incidents"]] == [
            "gap", "broken-link", "altered", "altered", "altered", "altered"]
        ok = push(http, workstation_id, items[2:]).json()
        assert (ok["accepted"], ok["head"]["seq"]) == (6, 8)
    assert stored_ids(server, workstation_id) == [i.entry.entry_id for i in items]


def test_a_first_push_must_start_at_the_genesis(server, make_store, workstation_id):
    items = fill(make_store(workstation_id), 3)
    with server.client(server.enrol(workstation_id)) as http:
        response = push(http, workstation_id, items[1:])
        assert response.status_code == 409 and response.json()["detail"]["error"] == "chain"
    status = server.status(workstation_id)
    assert status["head"] == {"seq": 0, "hash": GENESIS} and status["entries"] == 0
