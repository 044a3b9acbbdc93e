"""Accepting a batch of a workstation's sync items: idempotent, in chain order, all or nothing.

For each item in turn, against the workstation's accepted head (last seq + hash) as the batch advances it:

* an item the server already holds (same entry_id, or seq not beyond the head) must be identical to the
  stored one (canonical JSON): a duplicate; otherwise a *conflict*;
* any other item must continue the chain (``continuation_problem``): the next seq (else a *gap*), linking to
  the head (else a *broken-link*), its own hash and record sound (else *altered*).

The first problem rejects the whole batch (the caller rolls back) and is returned for an incident.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import Response
from sqlalchemy import Connection, insert, select, update

from workstation.core.audit import canonical_json
from workstation.core.sync import SyncItem, continuation_problem

from . import db
from .limits import Window

log = logging.getLogger(__name__)


@dataclass
class Problem(Exception):  # not frozen: contextlib sets __traceback__ on exceptions it re-raises
    kind: str  # gap, broken-link, altered, conflict, forbidden
    seq: int | None
    entry_id: str | None
    message: str

    @property
    def error(self) -> str:
        return "conflict" if self.kind == "conflict" else "chain"


@dataclass
class Outcome:
    accepted: int = 0
    duplicates: int = 0
    acknowledged: list[str] = field(default_factory=list)
    head_seq: int = 0
    head_hash: str = ""


def canonical_item(item: SyncItem) -> str:
    return canonical_json(item.to_wire()).decode("utf-8")


def lock_head(conn: Connection, workstation_id: str) -> tuple[int, str]:
    """The workstation's accepted head, its row locked until the transaction ends (SQLite: BEGIN IMMEDIATE)."""
    query = select(db.workstations.c.head_seq, db.workstations.c.head_hash).where(db.workstations.c.id == workstation_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).one()
    return row.head_seq, row.head_hash


def ingest(conn: Connection, workstation_id: str, items: list[SyncItem], received_utc: str,
           texts: list[str] | None = None, own_problems: list[str | None] | None = None,
           prepared_rows: list[dict[str, Any]] | None = None) -> Outcome:
    """Check and insert `items` in the caller's write transaction; raises Problem on the first bad item.
    `texts` are the items' canonical JSON when the caller already made it (the request model does);
    `own_problems` each item's `problem()` (hash, record binding) and `prepared_rows` its table row (rows_for), made
    before the transaction so that the write lock is held for the chain checks and the insert only."""
    head_seq, head_hash = lock_head(conn, workstation_id)
    held_by_id: dict[str, tuple[int, str]] = {}
    held_by_seq: dict[int, str] = {}
    # Only an item at or below the head can be held already. When every item is beyond it (the usual push),
    # an entry id reused at a new seq is left to the unique index (IntegrityError -> conflict, in push()).
    resend = any(i.entry.seq <= head_seq for i in items)
    ids = sorted({i.entry.entry_id for i in items}) if resend else []
    seqs = sorted({i.entry.seq for i in items if i.entry.seq <= head_seq})
    for start in range(0, max(len(ids), len(seqs)), 500):
        rows = conn.execute(select(db.entries.c.entry_id, db.entries.c.seq, db.entries.c.item).where(
            db.entries.c.workstation_id == workstation_id,
            db.entries.c.entry_id.in_(ids[start:start + 500]) | db.entries.c.seq.in_(seqs[start:start + 500])))
        for row in rows:
            held_by_id[row.entry_id] = (row.seq, row.item)
            held_by_seq[row.seq] = row.entry_id

    outcome = Outcome(head_seq=head_seq, head_hash=head_hash)
    new_rows: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        entry = item.entry
        text = texts[index] if texts is not None else canonical_item(item)
        held = held_by_id.get(entry.entry_id)
        if held is not None or entry.seq <= outcome.head_seq:
            if held is None:
                raise Problem("conflict", entry.seq, entry.entry_id,
                              f"entry {entry.seq} is already held as {held_by_seq.get(entry.seq, 'another entry')};"
                              f" {entry.entry_id} differs from it")
            if held[1] != text:
                raise Problem("conflict", entry.seq, entry.entry_id,
                              f"entry {entry.entry_id} (seq {entry.seq}) is already held with other content")
            outcome.duplicates += 1
        else:
            own = own_problems[index] if own_problems is not None else item.problem()
            problem = continuation_problem(outcome.head_seq, outcome.head_hash, item, own)
            if problem is not None:
                raise Problem(_kind(outcome.head_seq, outcome.head_hash, item), entry.seq, entry.entry_id, problem)
            new_rows.append(prepared_rows[index] if prepared_rows is not None
                            else _row(workstation_id, item, text, received_utc))
            held_by_id[entry.entry_id] = (entry.seq, text)
            held_by_seq[entry.seq] = entry.entry_id
            outcome.head_seq, outcome.head_hash = entry.seq, entry.hash
            outcome.accepted += 1
        outcome.acknowledged.append(entry.entry_id)

    if new_rows:
        for start in range(0, len(new_rows), 200):
            conn.execute(insert(db.entries), new_rows[start:start + 200])
    values: dict[str, Any] = {"last_push_utc": received_utc}
    if outcome.accepted:
        values.update(head_seq=outcome.head_seq, head_hash=outcome.head_hash,
                      entries=db.workstations.c.entries + outcome.accepted)
    conn.execute(update(db.workstations).where(db.workstations.c.id == workstation_id).values(**values))
    return outcome


def reused_entry(conn: Connection, workstation_id: str, items: list[SyncItem]) -> Problem:
    """The conflict of a batch whose insert broke the unique entry id: the first item whose id is held."""
    ids = [i.entry.entry_id for i in items]
    held = dict(conn.execute(select(db.entries.c.entry_id, db.entries.c.seq).where(
        db.entries.c.workstation_id == workstation_id, db.entries.c.entry_id.in_(ids[:1000]))).all())
    item = next((i.entry for i in items if i.entry.entry_id in held), None)
    if item is None:  # not reproducible now (a concurrent change): refuse the batch all the same
        return Problem("conflict", None, None, "the batch conflicts with entries held (retry)")
    return Problem("conflict", item.seq, item.entry_id,
                   f"entry {item.seq} reuses the id {item.entry_id} of entry {held[item.entry_id]}")


def _kind(head_seq: int, head_hash: str, item: SyncItem) -> str:
    entry = item.entry
    if entry.seq > head_seq + 1:
        return "gap"
    if entry.seq <= head_seq:
        return "conflict"
    if entry.prev_hash != head_hash:
        return "broken-link"
    return "altered"


def rows_for(workstation_id: str, items: list[SyncItem], texts: list[str], received_utc: str) -> list[dict[str, Any]]:
    return [_row(workstation_id, item, text, received_utc) for item, text in zip(items, texts)]


def _row(workstation_id: str, item: SyncItem, text: str, received_utc: str) -> dict[str, Any]:
    """The entry's table row. Its entry_id and kind passed their patterns (wire checks): no NUL, within size."""
    entry = item.entry
    details = entry.details
    try:
        at = db.normalise_time(entry.at_utc)
    except ValueError:
        at = entry.at_utc
    return {"workstation_id": workstation_id, "seq": entry.seq, "entry_id": entry.entry_id, "kind": entry.kind,
            "model": _column(details.get("model", ""), 128), "model_version": _column(details.get("version", ""), 64),
            "at_utc": _column(at, 40), "received_utc": received_utc, "item": text}


def _column(value: Any, size: int) -> str:
    """A filter column's value: text, no NUL (PostgreSQL refuses it), cut to the column's size."""
    if type(value) is str and len(value) <= size and "\x00" not in value:  # the usual case, as it is
        return value
    return str(value).replace("\x00", "")[:size]


def record_incident(conn: Connection, workstation_id: str, problem: Problem, window: Window | None = None) -> None:
    """One incident row, unless it repeats the workstation's latest (then that row's count and last time grow),
    or the workstation already made `window`'s limit of rows this minute (then they are counted in one
    "flood" row): a hostile or broken workstation cannot fill the table or bury older incidents."""
    i = db.incidents
    now = db.now_utc()
    last = conn.execute(select(i.c.id, i.c.kind, i.c.seq, i.c.entry_id, i.c.message, i.c.occurrences)
                        .where(i.c.workstation_id == workstation_id).order_by(i.c.id.desc()).limit(1)).first()
    same = last is not None and (last.kind, last.seq, last.entry_id, last.message) == (
        problem.kind, problem.seq, problem.entry_id, problem.message)
    if not same and window is not None and not window.allow(workstation_id):
        if last is not None and last.kind == "flood":
            same = True
        else:
            problem = Problem("flood", problem.seq, problem.entry_id,
                              f"more than {window.limit} incidents a minute from this workstation; the next ones are"
                              f" counted here (the first: {problem.kind}: {problem.message})"[:4000])
    if same:
        conn.execute(update(i).where(i.c.id == last.id).values(occurrences=i.c.occurrences + 1, last_utc=now))
        log.debug("incident %s of workstation %s repeated", problem.kind, workstation_id)
        return
    conn.execute(insert(i).values(workstation_id=workstation_id, at_utc=now, kind=problem.kind, seq=problem.seq,
                                  entry_id=problem.entry_id, message=problem.message, occurrences=1))
    log.warning("incident %s for workstation %s at seq %s (%s)", problem.kind, workstation_id, problem.seq,
                problem.entry_id)


def _readable_object(text: Any) -> bool:
    if not isinstance(text, str) or len(text) < 3 or text[0] != "{" or text[-1] != "}":
        return False
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def entries_page(rows, next_id: int | None) -> Response:
    """GET /entries' body, made of the stored canonical texts as they are (no re-serialisation: an item stored
    before the bounds existed - say, nested 300 levels - is handed out as it was pushed instead of failing the
    page). A stored text that is not a readable JSON object is replaced by a note saying so."""
    parts = []
    for row in rows:
        text, received = row.item, json.dumps(row.received_utc)
        if _readable_object(text):
            parts.append(f'{text[:-1]},"received_utc":{received}}}')
        else:
            parts.append(json.dumps({"unreadable": "the stored item is not a JSON object", "row": row.id,
                                     "received_utc": row.received_utc}))
    return Response(f'{{"items":[{",".join(parts)}],"next":{json.dumps(next_id)}}}', media_type="application/json")
