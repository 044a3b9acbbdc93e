"""Malformed, mistyped, unknown-field and oversized requests: a clear 4xx, nothing written."""

from __future__ import annotations

import json

import pytest
from server_helpers import fill, push, stored_ids

from workstation.core.sync import API_PREFIX, MAX_BATCH, MAX_BODY_BYTES


@pytest.fixture
def server(sqlite_server):
    """Validation happens before the database is touched: SQLite is enough here."""
    return sqlite_server


@pytest.fixture
def pushing(server, make_store, workstation_id):
    """(http client with the workstation's token, its first 3 wire items)."""
    items = [i.to_wire() for i in fill(make_store(workstation_id), 3)]
    with server.client(server.enrol(workstation_id)) as http:
        yield http, items


def _post(http, body: bytes | str):
    return http.post(f"{API_PREFIX}/entries", content=body, headers={"content-type": "application/json"})


def test_malformed_json_is_400(server, pushing, workstation_id):
    http, items = pushing
    response = _post(http, '{"workstation_id": "%s", "items": [' % workstation_id)
    assert response.status_code == 400 and response.json()["detail"]["error"] == "invalid-json"
    assert stored_ids(server, workstation_id) == []


@pytest.mark.parametrize("change, where", [
    (lambda b: b["items"][1].update(seq="2"), "items.1.seq"),
    (lambda b: b["items"][0].update(outcome=None), "items.0.outcome"),
    (lambda b: b["items"][2].update(details=["not", "a", "dict"]), "items.2.details"),
    (lambda b: b["items"][0].update(extra_field=1), "items.0.extra_field"),
    (lambda b: b.update(items={"0": 1}), "items"),
    (lambda b: b.update(unexpected=True), "unexpected"),
    (lambda b: b["items"][0].pop("hash"), "items.0.hash"),
    (lambda b: b["items"][0].update(hash="XYZ"), "items.0.hash"),
    (lambda b: b["items"][0].update(record={"kind": "feedback", "id": "x", "payload": {}, "more": 1}), "items.0.record"),
    (lambda b: b.pop("workstation_id"), "workstation_id"),
    (lambda b: b["items"][0].update(entry_id="abc\x00def"), "items.0.entry_id"),
    (lambda b: b["items"][0].update(user="\ud800"), "items.0"),
])
def test_wrong_types_and_unknown_fields_are_422_and_nothing_is_written(server, pushing, workstation_id, change, where):
    http, items = pushing
    body = {"workstation_id": workstation_id, "items": items}
    change(body)
    response = _post(http, json.dumps(body))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail["error"] == "invalid" and where in detail["message"], detail
    assert stored_ids(server, workstation_id) == []


def test_non_finite_numbers_are_refused(server, pushing, workstation_id):
    http, items = pushing
    text = json.dumps({"workstation_id": workstation_id, "items": items}).replace('"instances": 0', '"instances": NaN')
    assert "NaN" in text
    response = _post(http, text)
    assert response.status_code == 422 and "finite" in response.json()["detail"]["message"]
    assert stored_ids(server, workstation_id) == []


def test_too_many_items_or_too_many_bytes_is_413(server, pushing, workstation_id):
    http, items = pushing
    many = push(http, workstation_id, [items[0]] * (MAX_BATCH + 1))
    assert many.status_code == 413 and f"at most {MAX_BATCH}" in many.json()["detail"]["message"]
    padded = dict(items[0], outcome_text="x" * 4000)
    big = json.dumps({"workstation_id": workstation_id, "items": [padded] * (MAX_BODY_BYTES // 4000 + 10)})
    assert len(big) > MAX_BODY_BYTES
    response = _post(http, big)
    assert response.status_code == 413 and response.json()["detail"]["error"] == "too-large"
    assert stored_ids(server, workstation_id) == []
    assert push(http, workstation_id, items).json()["accepted"] == 3  # the server is fine afterwards
