"""The fast canonical encoder (core.sync.canonical) writes exactly the bytes of core.audit.canonical_json: every
stored item, entry hash and record digest depends on it. Compared on a large random corpus of JSON values
(every float bit pattern, floats of every magnitude and rounding, 64-bit and larger integers, control
characters, BMP and astral text, private-use keys that sort after ASCII, nesting), plus real sync items."""

from __future__ import annotations

import math
import random
import struct

import pytest
from server_helpers import fill

from workstation.core.audit import canonical_json, digest
from workstation.core.sync import canonical, entry_hash, orjson, payload_digest

CORPUS = 20_000


def _float(r: random.Random) -> float:
    k = r.random()
    if k < 0.3:
        value = struct.unpack("<d", struct.pack("<Q", r.getrandbits(64)))[0]  # any bit pattern
        return value if math.isfinite(value) else 0.5
    if k < 0.5:
        return r.uniform(-1e6, 1e6)
    if k < 0.7:
        return round(r.uniform(-1000, 1000), r.randint(0, 6))
    if k < 0.8:
        return r.choice((0.0, -0.0, 1e-4, 1e-5, 9.99e-5, 1e16, 1e15, 5e-324, 1.7976931348623157e308, 0.1 + 0.2))
    return r.choice((1, -1)) * 10.0 ** r.randint(-30, 30) * r.random()


def _text(r: random.Random) -> str:
    out = []
    for _ in range(r.randint(0, 12)):
        k = r.random()
        if k < 0.5:
            out.append(chr(r.randint(32, 126)))
        elif k < 0.6:
            out.append(chr(r.randint(0, 31)))
        elif k < 0.9:
            out.append(chr(r.randint(127, 0xD7FF)))
        else:
            out.append(chr(r.choice((r.randint(0xE000, 0xFFFF), r.randint(0x10000, 0x10FFFF)))))
    return "".join(out)


def _value(r: random.Random, depth: int = 0):
    k = r.random()
    if depth < 4 and k < 0.15:
        return {_text(r): _value(r, depth + 1) for _ in range(r.randint(0, 5))}
    if depth < 4 and k < 0.25:
        return [_value(r, depth + 1) for _ in range(r.randint(0, 5))]
    if k < 0.45:
        return _float(r)
    if k < 0.6:
        return r.choice((r.randint(-2**63, 2**64 - 1), r.randint(-1000, 1000), r.randint(-2**80, 2**80)))
    if k < 0.65:
        return r.choice((True, False, None))
    return _text(r)


def test_the_encoder_is_the_fast_one():
    assert orjson is not None, "orjson (the server extra) is not installed: the server would use the slow encoder"


def test_the_fast_encoder_writes_the_same_bytes_on_a_random_corpus():
    r = random.Random(13)
    differ = []
    for _ in range(CORPUS):
        value = {_text(r): _value(r) for _ in range(r.randint(0, 6))}
        if canonical(value) != canonical_json(value):
            differ.append(value)
    assert differ == []


@pytest.mark.parametrize("value", [{"a": "\ud800"}, {"x": [1, "\udfff"]}])
def test_what_the_stdlib_refuses_the_fast_encoder_refuses(value):
    with pytest.raises(ValueError):
        canonical_json(value)
    with pytest.raises(ValueError):
        canonical(value)


def test_hashes_and_digests_of_real_items_are_the_stores(make_store):
    items = fill(make_store("ws-canonical"), 20)
    for item in items:
        assert entry_hash(item.entry) == item.entry.computed_hash() == item.entry.hash
        assert canonical(item.to_wire()) == canonical_json(item.to_wire())
        if item.record is not None:
            assert payload_digest(item.record.payload) == digest(item.record.payload)


def test_only_numbers_with_a_short_negative_exponent_take_the_slow_encoder(monkeypatch):
    """orjson's 2.5e-7 (the stdlib's 2.5e-07) sends a value to the stdlib encoder; "4e-4a" inside a UUID must not
    (it sent most pushed items there: every entry id is a UUID)."""
    import workstation.core.sync as sync

    used = []
    monkeypatch.setattr(sync, "canonical_json", lambda data: used.append(data) or canonical_json(data))
    uuid_like = {"entry_id": "12345678-1234-4e4e-8e4a-1234567890ab", "n": 1.5, "m": 1e-10, "big": 1e16}
    assert sync.canonical(uuid_like) == canonical_json(uuid_like) and used == []
    for value in ({"a": -2.5e-7}, [3e-9], 1e-5, {"x": [0.00005]}):
        assert sync.canonical(value) == canonical_json(value)
        assert used and used[-1] == value
