"""The compiled one-pass push decoder (push_decoder, behind PushRequest.decoded) only vouches for bodies the exact
path (fastjson.loads + PushRequest: wire.check_items) accepts, with the same items, canonical texts and verdicts
on each item's hash; anything else it leaves to the exact path, which answers as it always did."""

from __future__ import annotations

import copy
import json
import random

import orjson
import pytest
from pydantic import ValidationError
from server_helpers import fill
from test_fastjson import _value
from test_wire import MUTATIONS

from workstation.core.audit import AuditEntry, digest
from workstation.core.sync import ENTRY_FIELDS, MAX_DEPTH, RECORD_KINDS
from workstation.server import push_decoder
from workstation.server.push_decoder import FAST_DEPTH
from workstation.server.fastjson import loads
from workstation.server.models import PushRequest


@pytest.fixture(scope="module")
def real_items(tmp_path_factory):
    from server_helpers import open_store

    store = open_store(tmp_path_factory.mktemp("decoder"), "ws-decoder")
    try:
        return [i.to_wire() for i in fill(store, 12)]
    finally:
        store.close()


def _body(items, workstation_id="ws-decoder") -> bytes:
    return json.dumps({"workstation_id": workstation_id, "items": items}, ensure_ascii=False).encode("utf-8",
                                                                                                  "surrogatepass")


def _exact(body: bytes):
    """The exact path's verdict: (workstation id, [(SyncItem, text)], [problem]) or None when refused."""
    try:
        request = PushRequest.model_validate(loads(body))
    except (ValueError, RecursionError, ValidationError):
        return None
    return request.workstation_id, request.checked, request.own_problems()


def _fast(body: bytes):
    request = PushRequest.decoded(body)
    if request is None:
        return None
    return request.workstation_id, request.checked, request.own_problems()


def _agree(body: bytes) -> bool:
    """What the fast path accepts, the exact path accepts identically; returns whether the fast path accepted."""
    fast = _fast(body)
    if fast is not None:
        assert fast == _exact(body), body[:300]
    return fast is not None


def test_real_items_take_the_fast_path_with_the_exact_paths_items_texts_and_hashes(real_items):
    body = _body(real_items)
    fast = _fast(body)
    assert fast is not None and fast == _exact(body)
    assert [item.to_wire() for item, _ in fast[1]] == real_items
    assert fast[2] == [None] * len(real_items)  # every hash and record digest checks out


@pytest.mark.parametrize("field, value", MUTATIONS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(MUTATIONS)])
def test_each_wrong_field_is_refused_or_read_as_the_exact_path_reads_it(real_items, field, value):
    items = copy.deepcopy(real_items[:3])
    items[2][field] = value
    accepted = _agree(_body(items))
    if _exact(_body(items)) is None:
        assert not accepted


@pytest.mark.parametrize("field", ["entry_id", "workstation_id", "kind", "prev_hash", "hash"])
def test_a_field_holding_another_items_line_is_refused(real_items, field):
    """The five patterned fields are matched for the whole body at once, a line per item: a field that carries
    the separators and a whole line of its own must not pass for two valid items."""
    items = copy.deepcopy(real_items[:2])
    first = items[0]
    line = "\t".join(first[name] for name in ("entry_id", "workstation_id", "kind", "prev_hash", "hash"))
    for forged in (f"{line}\n{first[field]}", f"{first[field]}\t", f"{first[field]}\n"):
        items[1][field] = forged
        assert push_decoder.decode(_body(items)) is None
        assert _exact(_body(items)) is None


@pytest.mark.parametrize("value", ["\u00e9" * 256, "\U0001f600" * 256, "u" * 256])
def test_lengths_count_characters_as_the_exact_path_does(real_items, value):
    items = copy.deepcopy(real_items[:2])
    items[1]["user"] = value
    assert _agree(_body(items))  # 256 characters: within the limit, however many bytes
    items[1]["user"] = value + value[0]
    assert not _agree(_body(items)) and _exact(_body(items)) is None


def test_small_floats_keep_the_stdlib_text(real_items):
    items = copy.deepcopy(real_items[:2])
    items[1]["details"] = {**items[1]["details"], "tiny": 8.3e-05, "tinier": -2.5e-07}
    fast = _fast(_body(items))
    assert fast is not None and fast == _exact(_body(items))
    assert '"tiny":8.3e-05' in fast[1][1][1] and '"tinier":-2.5e-07' in fast[1][1][1]
    assert fast[2][1] is not None  # the details changed under the hash: the item is reported altered


def test_random_free_form_values_get_the_exact_paths_verdict(real_items):
    rng = random.Random(20261205)
    accepted = 0
    for _ in range(400):
        items = copy.deepcopy(real_items[:2])
        target = items[1]["details"] if rng.random() < 0.5 or items[1]["record"] is None else items[1]["record"]["payload"]
        target[str(_value(rng, 9))[:300]] = _value(rng)
        accepted += _agree(_body(items))
    assert accepted > 100  # most random values are valid JSON within the bounds: the fast path took them


def _rehashed(item: dict) -> dict:
    """`item` made sound again after a change, with the standard library's canonical JSON (core.audit): its
    record digest in its details, then its own hash."""
    if item["record"] is not None:
        sha_key = RECORD_KINDS[item["record"]["kind"]][1]
        item["details"][sha_key] = digest(item["record"]["payload"])
    fields = {name: item[name] for name in ENTRY_FIELDS}
    item["hash"] = AuditEntry(**fields).computed_hash()
    return item


def test_sound_items_with_random_texts_and_values_are_hashed_from_pieces_exactly(real_items):
    """The decoder writes each item's canonical text and the text its hash covers from pieces encoded once; on
    items re-hashed with the standard library after random changes (odd strings in every free text field, random
    values in details and payload) both paths agree on the text and find every hash and digest sound."""
    rng = random.Random(20261206)
    odd = "abc \"\\/\u00e9\u4e2d\U0001f600\n\t\r\b\f\x00\x01\x1f\x7f\u2028\u2029 e-5, 0.00001"
    checked = 0
    for _ in range(300):
        items = copy.deepcopy(real_items[:4])
        for item in items:
            for name, high in (("user", 256), ("role", 32), ("study_instance_uid", 128), ("outcome_text", 4096)):
                item[name] = "".join(rng.choice(odd) for _ in range(rng.randrange(min(high, 40))))
            item["at_utc"] = "".join(rng.choice(odd) for _ in range(rng.randint(1, 40)))
            item["details"][str(_value(rng, 9))[:200]] = _value(rng, 3)
            if item["record"] is not None:
                item["record"]["payload"][str(_value(rng, 9))[:200]] = _value(rng, 3)
                item["record"]["id"] = "".join(rng.choice(odd) for _ in range(rng.randint(1, 64)))
                item["details"][RECORD_KINDS[item["record"]["kind"]][0]] = item["record"]["id"]
        try:
            items = [_rehashed(item) for item in items]
        except (ValueError, TypeError):  # a value beyond JSON (an integer beyond 64 bits, say): no sound item
            continue
        fast, exact = _fast(_body(items)), _exact(_body(items))
        assert fast == exact
        if fast is not None:
            assert fast[2] == [None] * len(items)
            checked += 1
    assert checked > 100


def test_corrupted_bodies_are_refused_or_read_as_the_exact_path_reads_them(real_items):
    rng = random.Random(7)
    body = orjson.dumps({"workstation_id": "ws-decoder", "items": real_items[:3]})
    for _ in range(600):
        corrupted = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            corrupted[rng.randrange(len(corrupted))] = rng.choice(b'0123456789"{}[],:\\ -.eEa\n\x00\xff')
        _agree(bytes(corrupted))


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"\xef\xbb\xbf{}", b'{"workstation_id":"ws","items":{}}',
                                  b'{"workstation_id":"ws\\n","items":[]}', b'{"workstation_id":"ws","items":[],"x":1}',
                                  b"[" * 3000 + b"]" * 3000, b'{"workstation_id":"ws","items":[{"seq":1e400}]}'])
def test_malformed_bodies_go_to_the_exact_path(body):
    assert push_decoder.decode(body) is None


def test_the_push_route_decodes_valid_bodies_in_one_pass(real_items, monkeypatch, tmp_path):
    """Through the app: a valid push never reaches the exact path's item check; a refused one still gets its
    documented answer from it."""
    from fastapi.testclient import TestClient

    from workstation.server import auth, db, models
    from workstation.server.app import create_app

    calls = []
    exact_check = models.check_items
    monkeypatch.setattr(models, "check_items", lambda items: calls.append(len(items)) or exact_check(items))
    app = create_app(f"sqlite:///{tmp_path / 'central.sqlite'}")
    with db.write(app.state.engine) as conn:
        code, _ = auth.issue_code(conn, "ws-decoder", 1)
    with TestClient(app) as client:
        token = client.post("/api/v1/enrol", json={"code": code, "workstation_id": "ws-decoder"}).json()["token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        answer = client.post("/api/v1/entries", content=_body(real_items[:6]), headers=headers)
        assert answer.status_code == 200 and answer.json()["accepted"] == 6
        assert calls == []
        bad = copy.deepcopy(real_items[6:8])
        bad[1]["seq"] = 0
        answer = client.post("/api/v1/entries", content=_body(bad), headers=headers)
        assert answer.status_code == 422 and answer.json()["detail"]["message"].startswith("items.1.seq: ")
        assert calls == [2]
        answer = client.post("/api/v1/entries", content=_body(real_items[6:]), headers=headers)
        assert answer.status_code == 200 and answer.json()["head"]["seq"] == real_items[-1]["seq"]


def _nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_deep_items_are_left_to_the_exact_path_which_allows_max_depth(real_items):
    items = copy.deepcopy(real_items[:2])
    for depth, fast, exact in ((FAST_DEPTH, True, True), (FAST_DEPTH + 1, False, True), (MAX_DEPTH, False, True),
                               (MAX_DEPTH + 1, False, False)):
        items[1]["details"] = {**real_items[1]["details"], "x": _nested(depth)}
        assert _agree(_body(items)) is fast and (_exact(_body(items)) is not None) is exact, depth


@pytest.mark.parametrize("within, beyond", [
    (_nested(FAST_DEPTH), _nested(MAX_DEPTH + 1)),  # containers nested below details
    ({"k" * 256: 1}, {"k" * 257: 1}), ("s" * 65536, "s" * 65537), (2**63 - 1, 2**63), (-2**63, -2**63 - 1),
    (list(range(10_000)), list(range(10_001))), ({str(i): i for i in range(10_000)}, {str(i): i for i in range(10_001)}),
])
def test_the_free_form_bounds_are_core_syncs(real_items, within, beyond):
    items = copy.deepcopy(real_items[:2])
    items[1]["details"] = {**items[1]["details"], "x": within}
    assert _agree(_body(items)) and _exact(_body(items)) is not None
    items[1]["details"]["x"] = beyond
    assert not _agree(_body(items)) and _exact(_body(items)) is None


def test_a_deferred_body_resolves_on_the_route_as_fastapi_would_have_decided(real_items):
    """The route decodes on its worker thread (PushRequest.deferred -> resolved): a valid body gives the exact
    path's items; a body that is not JSON, or has a wrong field, raises the RequestValidationError FastAPI raised."""
    from fastapi.exceptions import RequestValidationError

    resolved = PushRequest.deferred(_body(real_items[:4])).resolved()
    assert resolved.checked == _exact(_body(real_items[:4]))[1]
    with pytest.raises(RequestValidationError) as refused:
        PushRequest.deferred(b'{"workstation_id": "ws", "items": [').resolved()
    assert refused.value.errors()[0]["type"] == "json_invalid"
    items = copy.deepcopy(real_items[:2])
    items[1]["hash"] = "0" * 63
    with pytest.raises(RequestValidationError) as refused:
        PushRequest.deferred(_body(items)).resolved()
    assert refused.value.errors()[0]["loc"] == ("body",) and "items.1.hash" in refused.value.errors()[0]["msg"]
