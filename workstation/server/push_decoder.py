"""A push's body decoded and checked in one pass of compiled code (msgspec), for bodies that are valid.

Why: parsing the body into dicts and then checking each item's fields in Python (wire.check_items) was a third
of the server's CPU per entry. msgspec reads the JSON straight into typed structs and checks the fixed fields'
types, ranges, lengths and patterns as it goes, and the free-form parts (details, a record's payload) against
core.sync's bounds: `FreeForm` spells them as types (containers of at most MAX_CONTAINER members, keys of at
most MAX_KEY characters, strings of at most MAX_STRING, 64-bit integers; msgspec refuses non-finite numbers),
so no Python walks them. Nesting: at most FAST_DEPTH levels here; a deeper item goes to the exact path, which
allows MAX_DEPTH.

This path only vouches for bodies: `decode` returns None for anything it does not accept (malformed JSON, a
wrong field, an item out of bounds), and the caller then takes the exact path (fastjson.loads + PushRequest:
wire.check_items), which gives the answer and error message it always gave. So a body is accepted here only
when the exact path accepts it too, with the same items and texts; tests/server/test_push_decoder.py holds the
two to that on real items, every wrong field of test_wire.py and random bodies.

The rules are WireItem's (models.py). Patterns end with \\Z, not $: Python's $ also matches before a final
newline, and the exact path refuses "ab\\n" as an entry id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta, Struct

from workstation.core.audit import AuditEntry
from workstation.core.sync import (MAX_CONTAINER, MAX_DEPTH, MAX_INT, MAX_KEY, MAX_STRING, Record, SyncItem, canonical,
                                   canonical_plain, canonical_vouched)

from .wire import MAX_SEQ, TEXTS


def _text(name: str) -> Any:
    low, high = TEXTS[name]
    return Annotated[str, Meta(min_length=low, max_length=high)]


def _free_form(depth: int) -> Any:
    """A JSON object within core.sync's bounds, as a type: free_form_problem's rules, checked while decoding,
    with containers nested at most `depth` levels below it. Building the type and its decoder walks it once per
    path through it, 2^depth times: 16 levels took seconds, 6 take a millisecond."""
    key = Annotated[str, Meta(max_length=MAX_KEY)]
    scalars = (Annotated[str, Meta(max_length=MAX_STRING)], Annotated[int, Meta(ge=-MAX_INT - 1, le=MAX_INT)],
               float, bool, None)
    level: Any = Union[scalars]  # below the deepest container allowed: scalars only
    for _ in range(depth):
        level = Union[(Annotated[dict[key, level], Meta(max_length=MAX_CONTAINER)],
                       Annotated[list[level], Meta(max_length=MAX_CONTAINER)], *scalars)]
    return Annotated[dict[key, level], Meta(max_length=MAX_CONTAINER)]


# A review session nests details 4 levels deep; deeper items (up to MAX_DEPTH, 16) are valid but rare, and a body
# holding one takes the exact path.
FAST_DEPTH = 6
assert FAST_DEPTH <= MAX_DEPTH
FreeForm = _free_form(FAST_DEPTH)
Hash = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}\Z")]
WorkstationId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,128}\Z")]


class _Record(Struct, forbid_unknown_fields=True):
    kind: Literal["feedback", "inference"]
    id: Annotated[str, Meta(min_length=1, max_length=64)]
    payload: FreeForm


class _Item(Struct, forbid_unknown_fields=True):
    seq: Annotated[int, Meta(ge=1, le=MAX_SEQ)]
    entry_id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9._:-]{1,64}\Z")]
    workstation_id: WorkstationId
    at_utc: _text("at_utc")
    kind: Annotated[str, Meta(pattern=r"^[a-z0-9._-]{1,64}\Z")]
    user: _text("user")
    role: _text("role")
    study_instance_uid: _text("study_instance_uid")
    outcome: Annotated[int, Meta(ge=-MAX_INT - 1, le=MAX_INT)]
    outcome_text: _text("outcome_text")
    details: FreeForm
    prev_hash: Hash
    hash: Hash
    record: _Record | None = None


class _Body(Struct, forbid_unknown_fields=True):
    workstation_id: WorkstationId
    items: list[_Item]


_DECODER = msgspec.json.Decoder(_Body)


class Decoded:
    """A valid push body: its workstation id, each item as (SyncItem, canonical JSON text), and for each the
    encoder its hash and record digest may be computed with (canonical_plain where canonical_vouched vouched
    for the item's text)."""

    __slots__ = ("workstation_id", "checked", "encoders")

    def __init__(self, workstation_id: str, checked: list[tuple[SyncItem, str]],
                 encoders: list[Callable[[Any], bytes]]) -> None:
        self.workstation_id, self.checked, self.encoders = workstation_id, checked, encoders


def decode(body: bytes) -> Decoded | None:
    """The body's items when it is valid; None when the exact path must answer (also for a valid body this path
    cannot vouch for)."""
    try:
        push = _DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, MemoryError):
        return None
    checked, encoders = [], []
    for item in push.items:
        record = item.record
        wire_record = None if record is None else {"kind": record.kind, "id": record.id, "payload": record.payload}
        data = {"at_utc": item.at_utc, "details": item.details, "entry_id": item.entry_id, "hash": item.hash,
                "kind": item.kind, "outcome": item.outcome, "outcome_text": item.outcome_text,
                "prev_hash": item.prev_hash, "record": wire_record, "role": item.role, "seq": item.seq,
                "study_instance_uid": item.study_instance_uid, "user": item.user,
                "workstation_id": item.workstation_id}
        try:
            encoded, vouched = canonical_vouched(data)
            text = encoded.decode("utf-8")
        except (ValueError, TypeError):  # a lone surrogate: the exact path says so
            return None
        entry = AuditEntry(item.seq, item.entry_id, item.workstation_id, item.at_utc, item.kind, item.user,
                           item.role, item.study_instance_uid, item.outcome, item.outcome_text, item.details,
                           item.prev_hash, item.hash)
        checked.append((SyncItem(entry, None if record is None else Record(record.kind, record.id, record.payload)),
                        text))
        encoders.append(canonical_plain if vouched else canonical)
    return Decoded(push.workstation_id, checked, encoders)
