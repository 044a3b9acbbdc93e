"""Checking a push's items without building a pydantic model per item (that cost ~60 us an item, a third of the
server's time per entry). The rules are WireItem's (models.py, which documents them in OpenAPI);
tests/server/test_wire.py holds both to the same verdicts.

Each item comes out as the protocol's SyncItem with its canonical JSON text (stored, and compared for
duplicates), made once with the fast encoder.
"""

from __future__ import annotations

import re
from typing import Any

from workstation.core.audit import AuditEntry
from workstation.core.sync import MAX_INT, Record, SyncItem, canonical, free_form_problem

WORKSTATION_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
ENTRY_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
KIND = re.compile(r"[a-z0-9._-]{1,64}")
HASH = re.compile(r"[0-9a-f]{64}")
MAX_SEQ = 2**62
TEXTS = {"at_utc": (1, 40), "user": (0, 256), "role": (0, 32), "study_instance_uid": (0, 128),
         "outcome_text": (0, 4096)}
PATTERNS = {"entry_id": ENTRY_ID, "workstation_id": WORKSTATION_ID, "kind": KIND, "prev_hash": HASH, "hash": HASH}
REQUIRED = ("seq", "entry_id", "workstation_id", "at_utc", "kind", "user", "role", "study_instance_uid", "outcome",
            "outcome_text", "details", "prev_hash", "hash")
ALLOWED = frozenset((*REQUIRED, "record"))
RECORD_KEYS = frozenset(("kind", "id", "payload"))


class WireError(ValueError):
    """What is wrong with the first bad item, with its place (items.3.seq: ...)."""


def check_items(items: Any) -> list[tuple[SyncItem, str]]:
    """Each item as (SyncItem, canonical JSON text); raises WireError on the first bad one."""
    if type(items) is not list:
        raise WireError("items: Input should be a valid list")
    return [_item(item, f"items.{index}") for index, item in enumerate(items)]


def _item(item: Any, where: str) -> tuple[SyncItem, str]:
    if type(item) is not dict:
        raise WireError(f"{where}: Input should be a valid dictionary")
    keys = item.keys()
    if not keys <= ALLOWED:
        raise WireError(f"{where}.{sorted(keys - ALLOWED)[0]}: Extra inputs are not permitted")
    for name in REQUIRED:
        if name not in item:
            raise WireError(f"{where}.{name}: Field required")
    seq, outcome = item["seq"], item["outcome"]
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise WireError(f"{where}.seq: Input should be an integer from 1 to {MAX_SEQ}")
    if type(outcome) is not int or not -MAX_INT - 1 <= outcome <= MAX_INT:
        raise WireError(f"{where}.outcome: Input should be a 64-bit integer")
    for name, pattern in PATTERNS.items():
        value = item[name]
        if type(value) is not str or pattern.fullmatch(value) is None:
            raise WireError(f"{where}.{name}: String should match pattern '^{pattern.pattern}$'")
    for name, (low, high) in TEXTS.items():
        value = item[name]
        if type(value) is not str or not low <= len(value) <= high:
            raise WireError(f"{where}.{name}: Input should be a string of {low} to {high} characters")
    details = item["details"]
    if type(details) is not dict:
        raise WireError(f"{where}.details: Input should be a valid dictionary")
    problem = free_form_problem(details, "details")
    record = item.get("record")
    if record is not None:
        if type(record) is not dict or record.keys() != RECORD_KEYS:
            raise WireError(f"{where}.record: an object of exactly kind, id and payload")
        if record["kind"] not in ("feedback", "inference") or type(record["kind"]) is not str:
            raise WireError(f"{where}.record.kind: Input should be 'feedback' or 'inference'")
        if type(record["id"]) is not str or not 1 <= len(record["id"]) <= 64:
            raise WireError(f"{where}.record.id: Input should be a string of 1 to 64 characters")
        if type(record["payload"]) is not dict:
            raise WireError(f"{where}.record.payload: Input should be a valid dictionary")
        problem = problem or free_form_problem(record["payload"], "record.payload")
    if problem is not None:
        raise WireError(f"{where}: {problem}")
    data = item if "record" in item else {**item, "record": None}
    try:  # a lone surrogate in a string: cannot be hashed
        text = canonical(data).decode("utf-8")
    except (ValueError, TypeError) as exc:
        raise WireError(f"{where}: not canonical JSON ({exc}); text must be UTF-8") from None
    entry = AuditEntry(seq, item["entry_id"], item["workstation_id"], item["at_utc"], item["kind"], item["user"],
                       item["role"], item["study_instance_uid"], outcome, item["outcome_text"], details,
                       item["prev_hash"], item["hash"])
    return SyncItem(entry, None if record is None else Record(record["kind"], record["id"], record["payload"])), text
