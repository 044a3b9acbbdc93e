"""The sync protocol (version 1) between a workstation and the central server: what travels, and the checks
both sides make on it. No I/O here; the server (workstation.server) and the client (services.sync) use it.

One item = one audit entry of the workstation's hash chain, with the feedback entry or inference record it
binds (by id and SHA-256 digest in its details), if any. The server accepts a workstation's items only in
sequence: the next item must have seq = last accepted seq + 1 and prev_hash = the last accepted hash, and its
own hash must match its content. An item it already holds (same entry_id) is a duplicate when identical and a
conflict otherwise. See README "Central server and sync" for the endpoints.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from operator import attrgetter
from collections.abc import Callable
from typing import Any

from workstation.core.audit import AuditEntry, canonical_json

try:  # a C encoder (the server extra installs it); without it the stdlib's, same bytes
    import orjson
except ImportError:  # pragma: no cover - the workstation without the server extra
    orjson = None

API_PREFIX = "/api/v1"
MAX_BATCH = 500  # items per push
MAX_BODY_BYTES = 8 * 1024 * 1024
# Bounds of the free-form parts of an item (an entry's details, a record's payload): the server refuses more
# (422, nothing written), so one hostile entry can neither exhaust it nor make its stored items unreadable.
MAX_DEPTH = 16  # nested objects/arrays below the field itself (a review session's deepest is 4)
MAX_CONTAINER = 10_000  # members of one object or array
MAX_STRING = 65_536  # characters of one string (keys: MAX_KEY)
MAX_KEY = 256
MAX_INT = 2**63 - 1  # integers: signed 64-bit; floats: finite
RECORD_KINDS = {"feedback": ("feedback_entry_id", "feedback_sha256"), "inference": ("run_id", "record_sha256")}
ENTRY_FIELDS = tuple(f.name for f in fields(AuditEntry))
HASHED_FIELDS = tuple(name for name in ENTRY_FIELDS if name not in ("seq", "hash"))  # as AuditEntry.canonical
_hashed_values = attrgetter(*HASHED_FIELDS)
# where orjson's floats differ: below 1e-4 the stdlib writes 8.3e-05 and 1e-06, orjson 0.000083 and 1e-6 (a
# one-digit negative exponent followed by a delimiter or the end). A UUID's "4e-4a" is no such number and must
# not send every item with a UUID to the slow encoder; "e-7," inside a string only costs speed.
_SHORT_EXPONENT = re.compile(rb"e-[0-9](?:[,}\]]|$)")


def canonical(data: Any) -> bytes:
    """Exactly `core.audit.canonical_json(data)`, about 10x faster, for data whose numbers are finite (orjson
    writes NaN as null where the stdlib raises; free_form_problem refuses non-finite numbers first).

    orjson with sorted keys writes the same bytes as json.dumps(sort_keys, compact, ensure_ascii=False) - keys
    in code point order, the same escapes, the same shortest float digits - except for floats
    below 1e-4 (orjson 0.000083 and 1e-6, stdlib 8.3e-05 and 1e-06): those (or anything that looks like them,
    in a string too), integers beyond 64 bits and strings that are not UTF-8 (lone surrogates)
    go to the stdlib encoder, which also raises what it raised before. tests/server/test_canonical.py compares
    both on a large random corpus."""
    if orjson is None:
        return canonical_json(data)
    try:
        text = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return canonical_json(data)
    if b"0.0000" in text or _SHORT_EXPONENT.search(text) is not None:
        return canonical_json(data)
    return text


def entry_hash(entry: AuditEntry) -> str:
    """`entry.computed_hash()`, with the fast encoder."""
    data = dict(zip(HASHED_FIELDS, _hashed_values(entry)))  # one C call, not a getattr per field
    return hashlib.sha256(entry.prev_hash.encode("ascii") + b"\n" + canonical(data)).hexdigest()


def payload_digest(payload: Any) -> str:
    """`core.audit.digest(payload)`, with the fast encoder."""
    return hashlib.sha256(canonical(payload)).hexdigest()
# An inference record's payload: v1 has no "record_format"; v2 adds "threshold", "score_scale" and "acquisition"
# (manufacturer, manufacturer_model_name, convolution_kernel, slice_thickness_mm) for monitoring. Both are accepted.
INFERENCE_RECORD_FORMAT = "workstation.inference-record/2"


@dataclass(frozen=True)
class Record:
    kind: str  # "feedback" or "inference"
    id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class SyncItem:
    entry: AuditEntry
    record: Record | None = None

    def to_wire(self) -> dict[str, Any]:
        data = self.entry.to_dict()
        data["record"] = None if self.record is None else {"kind": self.record.kind, "id": self.record.id,
                                                           "payload": self.record.payload}
        return data

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> SyncItem:
        entry = AuditEntry(**{name: data[name] for name in ENTRY_FIELDS})
        record = data.get("record")
        return cls(entry, None if record is None else Record(record["kind"], record["id"], record["payload"]))

    def problem(self) -> str | None:
        """What is wrong with this item on its own (hash, record binding); None when it is sound."""
        return own_problem(self.entry, self.record, entry_hash(self.entry), payload_digest)


def own_problem(entry: AuditEntry, record: Record | None, computed_hash: str,
                digest_of: Callable[[Any], str]) -> str | None:
    """SyncItem.problem, given the entry's hash as computed and how to digest a record's payload (the server's
    decoder has both from the canonical pieces it encoded once)."""
    if computed_hash != entry.hash:
        return f"entry {entry.seq} ({entry.entry_id}): its hash does not match its content"
    if record is None:
        bound = next((kind for kind, keys in RECORD_KINDS.items() if keys[0] in entry.details), None)
        if bound is not None:
            return f"entry {entry.seq} ({entry.entry_id}): its {bound} record is missing"
        return None
    if record.kind not in RECORD_KINDS:
        return f"entry {entry.seq}: unknown record kind {record.kind!r}"
    id_key, sha_key = RECORD_KINDS[record.kind]
    if entry.details.get(id_key) != record.id:
        return f"entry {entry.seq} ({entry.entry_id}): the record {record.id} is not the one it binds"
    if entry.details.get(sha_key) != digest_of(record.payload):
        return f"entry {entry.seq} ({entry.entry_id}): the record's content does not match its digest"
    return None


def free_form_problem(value: Any, where: str) -> str | None:
    """Why `value` (parsed JSON: an entry's details, a record's payload) is refused, naming the place; None when
    it stays within the bounds above and holds JSON types only. (Scalars are checked where they stand and a
    place is spelled out only for the answer: this runs on every pushed item.)"""
    stack: list[tuple[Any, Any, int]] = [(value, (None, where), 0)]
    push, pop = stack.append, stack.pop
    while stack:
        node, place, depth = pop()
        if depth > MAX_DEPTH:
            return f"{_place(place)}: nested deeper than {MAX_DEPTH} levels"
        if type(node) is dict:
            if len(node) > MAX_CONTAINER:
                return f"{_place(place)}: an object of {len(node)} members (at most {MAX_CONTAINER})"
            members = node.items()
        else:
            if len(node) > MAX_CONTAINER:
                return f"{_place(place)}: an array of {len(node)} elements (at most {MAX_CONTAINER})"
            members = enumerate(node)
        for key, member in members:
            kind = type(member)
            if kind is str:
                if len(member) > MAX_STRING:
                    return f"{_place((place, key))}: a string of {len(member)} characters (at most {MAX_STRING})"
            elif kind is dict or kind is list:
                push((member, (place, key), depth + 1))
            elif kind is float:
                if member - member != 0:  # inf - inf and nan - nan are nan
                    return f"{_place((place, key))}: a number that is not finite"
            elif kind is int:
                if not -MAX_INT - 1 <= member <= MAX_INT:
                    return f"{_place((place, key))}: an integer outside the signed 64-bit range"
            elif member is not None and kind is not bool:
                return f"{_place((place, key))}: a value of type {kind.__name__} (JSON types only)"
            if type(key) is not str and type(node) is dict or type(key) is str and len(key) > MAX_KEY:
                return f"{_place(place)}: a key that is not text of at most {MAX_KEY} characters"
    return None


def _place(place: Any) -> str:
    """details.a[3].b from the (parent, key) links free_form_problem keeps."""
    parts = []
    while place is not None:
        place, key = place
        parts.append(f"[{key}]" if type(key) is int else key if place is None else f".{key}")
    return "".join(reversed(parts))


_UNCHECKED = object()


def continuation_problem(head_seq: int, head_hash: str, item: SyncItem, own_problem: Any = _UNCHECKED) -> str | None:
    """Whether `item` may follow the accepted chain head (seq, hash); None when it does. `own_problem`: its
    `item.problem()` when the caller made it already (the server does, before it takes the write lock)."""
    entry = item.entry
    if entry.seq != head_seq + 1:
        return (f"gap: expected entry {head_seq + 1}, got {entry.seq}" if entry.seq > head_seq + 1
                else f"entry {entry.seq} is already accepted with other content")
    if entry.prev_hash != head_hash:
        return f"entry {entry.seq} does not link to the last accepted entry {head_seq} (chain rewritten?)"
    return item.problem() if own_problem is _UNCHECKED else own_problem
