"""The server's request parser (orjson, falling back to json.loads) returns exactly what json.loads returns."""

from __future__ import annotations

import json
import random

import pytest

from workstation.server.fastjson import loads


def _value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 6 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:  # integers around every boundary orjson treats specially
        edge = rng.choice([0, 2**31, 2**53, 2**63, 2**64, 10**18, 10**19, 10**30])
        return rng.choice([1, -1]) * (edge + rng.randint(-3, 3))
    if kind == 2:
        return rng.choice([0.0, -0.0, 5e-324, 1e308, 0.1, 1 / 3]) * rng.choice([1, -1, 1e-10, 12345.678])
    if kind == 3:
        return rng.uniform(-1e20, 1e20)
    if kind in (4, 5):
        alphabet = "abc 123:,[]{}\"\\/\u00e9\u4e2d\U0001f600\n\t\x00"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(30)))
    if kind in (6, 7):
        return {str(_value(rng, 9)): _value(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [_value(rng, depth + 1) for _ in range(rng.randrange(5))]


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return a == b


def test_random_documents_parse_to_identical_values_and_types():
    rng = random.Random(20261205)
    for _ in range(3000):
        value = _value(rng)
        for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=rng.choice([None, 1]))):
            body = text.encode()
            assert _same(loads(body), json.loads(body)), text


@pytest.mark.parametrize("body", [b"18446744073709551616", b'{"big": 18446744073709551616}', b"[1, -9223372036854775809]",
                                  b'{"a":\n 123456789012345678901234567890}', b"[99999999999999999999.5]"])
def test_integers_beyond_64_bits_stay_integers(body):
    assert _same(loads(body), json.loads(body))  # orjson alone would turn them into floats


@pytest.mark.parametrize("body", [b"\xff\xfe{}", b'{"a": NaN}', b'"\\ud800"', b"[" * 2000 + b"]" * 2000,
                                  b"\xef\xbb\xbf{}", b"{", b""])
def test_what_orjson_refuses_behaves_as_json_loads_does(body):
    try:
        expected = ("value", json.loads(body))
    except (ValueError, RecursionError) as error:
        expected = ("error", type(error))
    try:
        got = ("value", loads(body))
    except (ValueError, RecursionError) as error:
        got = ("error", type(error))
    assert got[0] == expected[0] and (got[1] == expected[1] if got[0] == "error" else _same(got[1], expected[1]))
