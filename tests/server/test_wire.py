"""wire.check_items (what the server runs) and the documented WireItem model (pydantic) give the same verdict
and the same canonical text on real items and on every kind of wrong field."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError
from server_helpers import fill

from workstation.server.models import WireItem
from workstation.server.wire import WireError, check_items


@pytest.fixture(scope="module")
def real_items(tmp_path_factory):
    from server_helpers import open_store

    store = open_store(tmp_path_factory.mktemp("wire"), "ws-wire")
    try:
        return [i.to_wire() for i in fill(store, 10)]
    finally:
        store.close()


MUTATIONS = [
    ("seq", "2"), ("seq", True), ("seq", 1.0), ("seq", 0), ("seq", 2**62), ("seq", 2**62 + 1), ("seq", None),
    ("entry_id", ""), ("entry_id", "a" * 64), ("entry_id", "a" * 65), ("entry_id", "ab\n"), ("entry_id", "a b"),
    ("entry_id", 5), ("workstation_id", "ws 1"), ("workstation_id", "w" * 129), ("workstation_id", "w" * 128),
    ("at_utc", ""), ("at_utc", "t" * 40), ("at_utc", "t" * 41), ("kind", "Finding.accept"), ("kind", "x" * 65),
    ("user", "u" * 256), ("user", "u" * 257), ("user", None), ("role", "r" * 33), ("study_instance_uid", "1" * 129),
    ("outcome", "0"), ("outcome", False), ("outcome", 2**63), ("outcome", -2**63), ("outcome", 4.0),
    ("outcome_text", "o" * 4097), ("details", []), ("details", {"deep": {"a": {"b": {}}}}), ("details", {"n": 1e-7}),
    ("details", {"n": float("nan")}), ("details", {"s": "\ud800"}), ("prev_hash", "A" * 64), ("hash", "0" * 63),
    ("record", {"kind": "feedback", "id": "x", "payload": {}}), ("record", {"kind": "other", "id": "x", "payload": {}}),
    ("record", {"kind": "feedback", "id": "", "payload": {}}), ("record", {"kind": "feedback", "id": "x"}),
    ("record", {"kind": "feedback", "id": "x", "payload": []}), ("record", []), ("record", None),
    ("extra", 1),
]


def _pydantic(item: dict) -> str | None:
    try:
        return WireItem.model_validate(item).canonical_text
    except ValidationError:
        return None


def _ours(item: dict) -> str | None:
    try:
        return check_items([item])[0][1]
    except WireError:
        return None


def test_real_items_pass_both_with_the_same_text(real_items):
    for item in real_items:
        assert _ours(item) == _pydantic(item) is not None
    items = check_items(real_items)
    assert [i.to_wire() for i, _ in items] == real_items


@pytest.mark.parametrize("field, value", MUTATIONS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(MUTATIONS)])
def test_each_wrong_field_gets_the_same_verdict(real_items, field, value):
    item = copy.deepcopy(real_items[2])
    item[field] = value
    assert _ours(item) == _pydantic(item)


@pytest.mark.parametrize("missing", ["seq", "hash", "details", "record"])
def test_a_missing_field_gets_the_same_verdict(real_items, missing):
    item = copy.deepcopy(real_items[1])
    del item[missing]
    assert _ours(item) == _pydantic(item)


def test_not_a_list_or_not_an_object_is_refused_with_its_place():
    with pytest.raises(WireError, match="items: Input should be a valid list"):
        check_items({"0": 1})
    with pytest.raises(WireError, match="items.0: Input should be a valid dictionary"):
        check_items([[1]])
