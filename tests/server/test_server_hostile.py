"""Probed as an attacker would: hostile free-form fields, bad parameters and bodies, junk already stored.

Every refusal comes in the documented body {"detail": {"error", "message"}}, nothing is written, and nothing
answers 500 with a traceback.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import pytest
from server_helpers import fill, push, stored_ids
from sqlalchemy import insert

from workstation.core.audit import AuditEvent
from workstation.core.sync import API_PREFIX, SyncItem
from workstation.store.database import now_utc


def _deep(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"x": value}
    return value


def _documented(response, status: int, error: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    detail = response.json()["detail"]
    assert detail["error"] == error and isinstance(detail["message"], str) and detail["message"], detail
    assert "Traceback" not in response.text and 'File "' not in response.text
    return detail


HOSTILE_DETAILS = [
    (_deep(300), "nested deeper than 16 levels"),
    (_deep(18), "nested deeper than 16 levels"),
    ({"note": "x" * 70_000}, "a string of 70000 characters"),
    ({"many": list(range(10_001))}, "an array of 10001 elements"),
    ({"big": 2**64}, "outside the signed 64-bit range"),
    ({"k" * 300: 1}, "a key that is not text of at most 256"),
]


def test_hostile_details_and_payloads_are_422_and_nothing_is_written(server, make_store, workstation_id):
    store = make_store(workstation_id)
    token = server.enrol(workstation_id)
    good = fill(store, 3)  # seq 1-3 sound; then hostile entries, each genuine (hashed and chained by a real store)
    with server.client(token) as http:
        assert push(http, workstation_id, good).json()["accepted"] == 3
        for details, reason in HOSTILE_DETAILS:
            store.append(AuditEvent("study.opened", now_utc(), details))
            hostile = store.outbox(limit=10_000)[-1]
            assert hostile.entry.computed_hash() == hostile.entry.hash  # nothing but its shape is wrong
            detail = _documented(push(http, workstation_id, [hostile]), 422, "invalid")
            assert detail["message"].startswith("items.0: details") and reason in detail["message"], detail
        # a record payload nested too deep is refused the same way (before its digest is even looked at)
        record_item = next(i for i in good if i.record is not None).to_wire()
        record_item["record"]["payload"]["geometry"] = _deep(40)
        detail = _documented(push(http, workstation_id, [record_item]), 422, "invalid")
        assert "record.payload" in detail["message"] and "nested deeper" in detail["message"]
    assert stored_ids(server, workstation_id) == [i.entry.entry_id for i in good]
    assert server.status(workstation_id)["entries"] == 3


def test_an_entry_id_reused_at_a_new_seq_is_a_conflict(server, make_store, workstation_id):
    items = fill(make_store(workstation_id), 3)
    with server.client(server.enrol(workstation_id)) as http:
        assert push(http, workstation_id, items).json()["accepted"] == 3
        plain = items[0].entry  # study.opened: binds no record
        reuse = replace(plain, seq=4, entry_id=items[1].entry.entry_id, prev_hash=items[-1].entry.hash, hash="")
        reuse = replace(reuse, hash=reuse.computed_hash())  # a sound link: only the id is wrong
        detail = _documented(push(http, workstation_id, [SyncItem(reuse)]), 409, "conflict")
        assert detail["seq"] == 4 and detail["entry_id"] == items[1].entry.entry_id and "reuses the id" in detail["message"]
    assert stored_ids(server, workstation_id) == [i.entry.entry_id for i in items]
    assert server.status(workstation_id)["incidents"][-1]["kind"] == "conflict"


def test_items_stored_before_the_bounds_existed_are_read_back_not_500(server, make_store, workstation_id):
    """A server of an earlier version accepted a 300-level entry: every page holding it answered 500."""
    from workstation.server import db

    items = fill(make_store(workstation_id), 2)
    with server.client(server.enrol(workstation_id)) as http:
        assert push(http, workstation_id, items).json()["accepted"] == 2
    deep = {**items[0].to_wire(), "seq": 3, "entry_id": "deep-one", "details": _deep(300)}
    engine = db.make_engine(server.database_url)
    try:
        with db.write(engine) as conn:  # what the earlier server wrote (its canonical JSON), and junk beside it
            conn.execute(insert(db.entries), [
                {"workstation_id": workstation_id, "seq": 3, "entry_id": "deep-one", "kind": "study.opened",
                 "at_utc": now_utc(), "received_utc": now_utc(), "item": json.dumps(deep, sort_keys=True)},
                {"workstation_id": workstation_id, "seq": 4, "entry_id": "junk", "kind": "study.opened",
                 "at_utc": now_utc(), "received_utc": now_utc(), "item": '{"cut": "in the midd'}])
    finally:
        engine.dispose()
    with server.client(server.qa_token) as http:
        page = http.get(f"{API_PREFIX}/entries", params={"workstation_id": workstation_id})
        assert page.status_code == 200, page.text
        stored = page.json()["items"]
        assert http.get(f"{API_PREFIX}/status").status_code == 200
        assert http.get(f"{API_PREFIX}/workstations/{workstation_id}/status").status_code == 200
    assert [s.get("entry_id") for s in stored[:3]] == [items[0].entry.entry_id, items[1].entry.entry_id, "deep-one"]
    assert {k: v for k, v in stored[2].items() if k != "received_utc"} == deep  # as it was pushed
    assert stored[3]["unreadable"] == "the stored item is not a JSON object" and stored[3]["received_utc"]


@pytest.mark.parametrize("params, needle", [
    ({"after": "9223372036854775808"}, "after"),
    ({"after": "-1"}, "after"),
    ({"since": "9999-12-31T23:59:59-14:00"}, "since"),  # overflows when turned to UTC
    ({"until": "0001-01-01T00:00:00+14:00"}, "until"),
    ({"since": "yesterday"}, "since"),
    ({"workstation_id": "ws\x00x"}, "workstation_id: a NUL"),
    ({"kind": "finding.accept\x00"}, "kind: a NUL"),
    ({"action": "\x00"}, "action: a NUL"),
    ({"model": "nodule\x00"}, "model: a NUL"),
    ({"model_version": "1\x00"}, "model_version: a NUL"),
    ({"model": "m" * 300}, "model"),
    ({"limit": "0"}, "limit"),
])
def test_bad_query_parameters_are_422_in_the_documented_body(server, params, needle):
    with server.client(server.qa_token) as http:
        detail = _documented(http.get(f"{API_PREFIX}/entries", params=params), 422, "invalid")
        assert needle in detail["message"], detail
        assert http.get(f"{API_PREFIX}/entries").status_code == 200  # the server is fine afterwards


def test_incident_paging_parameters_are_checked_too(server, workstation_id):
    server.enrol(workstation_id)
    with server.client(server.qa_token) as http:
        url = f"{API_PREFIX}/workstations/{workstation_id}/incidents"
        _documented(http.get(url, params={"after": str(2**63)}), 422, "invalid")
        _documented(http.get(url, params={"limit": "1001"}), 422, "invalid")
        _documented(http.get(f"{API_PREFIX}/workstations/nobody-here/incidents"), 404, "not-found")


def test_unparsable_bodies_unknown_routes_and_methods_answer_in_the_documented_body(sqlite_server, workstation_id):
    server = sqlite_server
    token = server.enrol(workstation_id)
    with server.client(token) as http:
        headers = {"content-type": "application/json"}
        not_utf8 = b'{"workstation_id": "' + workstation_id.encode() + b'", "items": [], "x": "\xff\xfe"}'
        _documented(http.post(f"{API_PREFIX}/entries", content=not_utf8, headers=headers), 400, "invalid-json")
        nested = b"[" * 100_000 + b"]" * 100_000
        _documented(http.post(f"{API_PREFIX}/entries", content=nested, headers=headers), 400, "invalid-json")
        _documented(http.post(f"{API_PREFIX}/enrol", content=b"\xc3\x28", headers=headers), 400, "invalid-json")
        _documented(http.get(f"{API_PREFIX}/no-such-thing"), 404, "not-found")
        _documented(http.delete(f"{API_PREFIX}/entries"), 405, "method-not-allowed")
        _documented(http.get(f"{API_PREFIX}/entries"), 403, "forbidden")
    assert stored_ids(server, workstation_id) == []


def test_an_unexpected_failure_is_500_in_the_documented_body_without_a_traceback(central_factory, workstation_id):
    server = central_factory()
    server.enrol(workstation_id)
    qa = server.qa_token  # before the damage: the CLI would create the missing table again
    database = sqlite3.connect(server.database_url.removeprefix("sqlite:///"))
    try:  # a damaged database (a table lost): nothing the code can answer from
        database.execute("DROP TABLE incidents")
        database.commit()
    finally:
        database.close()
    with server.client(qa) as http:
        response = http.get(f"{API_PREFIX}/workstations/{workstation_id}/status")
        detail = _documented(response, 500, "internal")
        assert "incidents" not in response.text and "sqlite" not in response.text.lower()
        assert "log" in detail["message"]
        assert http.get(f"{API_PREFIX}/health").status_code == 200  # and it goes on serving
    assert "unexpected OperationalError on GET" in server.output_path.read_text()  # the log says what failed
