"""A push's body decoded and checked in one pass of compiled code (msgspec), for bodies that are valid.

Why: parsing the body into dicts and then checking each item's fields in Python (wire.check_items) was a third
of the server's CPU per entry. msgspec reads the JSON straight into typed structs and checks the fixed fields'
types, ranges and lengths as it goes (the ids' and hashes' patterns: one match for the whole body), and the
free-form parts (details, a record's payload) against core.sync's bounds: `FreeForm` spells them as types
(containers of at most MAX_CONTAINER members, keys of at most MAX_KEY characters, strings of at most MAX_STRING,
64-bit integers; msgspec refuses non-finite numbers), so no Python walks them. Nesting: at most FAST_DEPTH
levels here; a deeper item goes to the exact path, which allows MAX_DEPTH.

This path only vouches for bodies: `decode` returns None for anything it does not accept (malformed JSON, a
wrong field, an item out of bounds), and the caller then takes the exact path (fastjson.loads + PushRequest:
wire.check_items), which gives the answer and error message it always gave. So a body is accepted here only
when the exact path accepts it too, with the same items and texts; tests/server/test_push_decoder.py holds the
two to that on real items, every wrong field of test_wire.py and random bodies.

Each item's canonical JSON (stored), the text its hash covers and its record's digest are written from pieces,
each value encoded once (they were three encodings of the same details and payload).

The rules are WireItem's (models.py). Patterns are matched whole (\\Z, fullmatch), not up to $: Python's $ also
matches before a final newline, and the exact path refuses "ab\\n" as an entry id.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal, Union

import msgspec
import orjson
from msgspec import Meta, Struct

from workstation.core.audit import AuditEntry
from workstation.core.sync import (MAX_CONTAINER, MAX_DEPTH, MAX_INT, MAX_KEY, MAX_STRING, Record, SyncItem,
                                   canonical, own_problem)

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
WorkstationId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,128}\Z")]


class _Record(Struct, forbid_unknown_fields=True):
    kind: Literal["feedback", "inference"]
    id: Annotated[str, Meta(min_length=1, max_length=64)]
    payload: FreeForm


class _Item(Struct, forbid_unknown_fields=True):
    """An item; the patterns of its ids, kind and hashes are checked for the whole body at once (_PATTERNED)."""

    seq: Annotated[int, Meta(ge=1, le=MAX_SEQ)]
    entry_id: str
    workstation_id: str
    at_utc: _text("at_utc")
    kind: str
    user: _text("user")
    role: _text("role")
    study_instance_uid: _text("study_instance_uid")
    outcome: Annotated[int, Meta(ge=-MAX_INT - 1, le=MAX_INT)]
    outcome_text: _text("outcome_text")
    details: FreeForm
    prev_hash: str
    hash: str
    record: _Record | None = None


class _Body(Struct, forbid_unknown_fields=True):
    workstation_id: WorkstationId
    items: list[_Item]


# Each item's entry_id, workstation_id, kind, prev_hash and hash as one line, tab-separated: one match for the whole
# body instead of five per item (msgspec's per-field patterns were a sixth of the decoding). Tab and newline are
# in none of the classes: with as many lines as items (no field slipped in a newline of its own), each line holds
# exactly one item's five fields, and matches only when every field matches its own pattern.
_PATTERNED = re.compile(r"(?:[A-Za-z0-9._:-]{1,64}\t[A-Za-z0-9_.-]{1,128}\t[a-z0-9._-]{1,64}"
                        r"\t[0-9a-f]{64}\t[0-9a-f]{64}\n)*")


def _patterns_hold(items: list[_Item]) -> bool:
    lines = "".join([f"{i.entry_id}\t{i.workstation_id}\t{i.kind}\t{i.prev_hash}\t{i.hash}\n" for i in items])
    return lines.count("\n") == len(items) and _PATTERNED.fullmatch(lines) is not None


_DECODER = msgspec.json.Decoder(_Body)


# An item's canonical JSON and the text its hash covers (prev_hash, a newline, the hashed fields), from pieces: keys
# in code point order (core.audit.canonical_json sorts them so), each value encoded once. Pattern-checked fields
# (ids, kind, hashes) hold no character JSON escapes and are written as they are.
_ITEM = (b'{"at_utc":%b,"details":%b,"entry_id":"%b","hash":"%b","kind":"%b","outcome":%d,"outcome_text":%b,'
         b'"prev_hash":"%b","record":%b,"role":%b,"seq":%d,"study_instance_uid":%b,"user":%b,"workstation_id":"%b"}')
_HASHED = (b'%b\n{"at_utc":%b,"details":%b,"entry_id":"%b","kind":"%b","outcome":%d,"outcome_text":%b,'
           b'"prev_hash":"%b","role":%b,"study_instance_uid":%b,"user":%b,"workstation_id":"%b"}')
_RECORD = b'{"id":%b,"kind":"%b","payload":%b}'


class Decoded:
    """A valid push body: its workstation id, each item as (SyncItem, canonical JSON text), and each item's own
    problem (SyncItem.problem: hash, record binding; None when sound)."""

    __slots__ = ("workstation_id", "checked", "problems")

    def __init__(self, workstation_id: str, checked: list[tuple[SyncItem, str]], problems: list[str | None]) -> None:
        self.workstation_id, self.checked, self.problems = workstation_id, checked, problems


def decode(body: bytes) -> Decoded | None:
    """The body's items when it is valid; None when the exact path must answer (also for a valid body this path
    cannot vouch for). Each item's canonical text, hash and record digest come from pieces encoded once: the
    details and payload (the bulk of an item) are not encoded three times over."""
    try:
        push = _DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, MemoryError):
        return None
    if not _patterns_hold(push.items):
        return None
    checked, problems = [], []
    dumps, sha256, null = orjson.dumps, hashlib.sha256, b"null"
    for item in push.items:
        try:  # a lone surrogate cannot be encoded: the exact path says so
            details = canonical(item.details)  # orjson's where exact, else the stdlib's
            texts = (dumps(item.at_utc), dumps(item.outcome_text), dumps(item.role),
                     dumps(item.study_instance_uid), dumps(item.user))
            record = item.record
            if record is None:
                wire_record, payload, sync_record = null, b"", None
            else:
                payload = canonical(record.payload)
                wire_record = _RECORD % (dumps(record.id), record.kind.encode(), payload)
                sync_record = Record(record.kind, record.id, record.payload)
        except (orjson.JSONEncodeError, ValueError, TypeError):
            return None
        at_utc, outcome_text, role, study, user = texts
        entry_id, kind, prev_hash = item.entry_id.encode(), item.kind.encode(), item.prev_hash.encode()
        workstation_id = item.workstation_id.encode()
        text = _ITEM % (at_utc, details, entry_id, item.hash.encode(), kind, item.outcome, outcome_text, prev_hash,
                        wire_record, role, item.seq, study, user, workstation_id)
        hashed = _HASHED % (prev_hash, at_utc, details, entry_id, kind, item.outcome, outcome_text, prev_hash, role,
                            study, user, workstation_id)
        entry = AuditEntry.of_checked(item.seq, item.entry_id, item.workstation_id, item.at_utc, item.kind,
                                      item.user, item.role, item.study_instance_uid, item.outcome, item.outcome_text,
                                      item.details, item.prev_hash, item.hash)
        problems.append(own_problem(entry, sync_record, sha256(hashed).hexdigest(),
                                    lambda _payload, payload=payload: sha256(payload).hexdigest()))
        checked.append((SyncItem(entry, sync_record), text.decode("utf-8")))
    return Decoded(push.workstation_id, checked, problems)
