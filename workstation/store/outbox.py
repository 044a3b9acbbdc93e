"""The sync outbox as wire bytes: a batch of unsynced entries read straight into the push's JSON.

Why not `Store.outbox()` (entries and records as Python objects, then encoded): parsing every stored `details`
and record payload only to write them out again was a third of the client's time per entry. Here SQLite
(its JSON functions, in C) writes each entry's scalar fields as a JSON object, and the stored `details` and
payload texts (canonical JSON, written by the store itself) are spliced in as they are. The server parses,
checks and hashes every item before it acknowledges anything, so nothing here is trusted more than before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

SELECT_BATCH = """
SELECT a.seq, a.entry_id,
       json_object('seq', a.seq, 'entry_id', a.entry_id, 'workstation_id', a.workstation_id, 'at_utc', a.at_utc,
                   'kind', a.kind, 'user', a.user, 'role', a.role, 'study_instance_uid', a.study_instance_uid,
                   'outcome', a.outcome, 'outcome_text', a.outcome_text, 'prev_hash', a.prev_hash, 'hash', a.hash),
       a.details,
       CASE WHEN r.run_id IS NOT NULL THEN json_object('kind', 'inference', 'id', r.run_id)
            WHEN f.entry_id IS NOT NULL THEN json_object('kind', 'feedback', 'id', f.entry_id) END,
       coalesce(r.payload, f.payload)
FROM audit a
LEFT JOIN feedback f ON f.audit_seq = a.seq
LEFT JOIN inference_runs r ON r.audit_seq = a.seq
WHERE a.synced = 0 AND a.seq > ?
ORDER BY a.seq
LIMIT ?"""


@dataclass(frozen=True)
class OutboxBatch:
    """Unsynced entries in seq order: their seqs, ids and each one's wire item as JSON text."""

    seqs: tuple[int, ...]
    entry_ids: tuple[str, ...]
    items: tuple[str, ...]

    @property
    def first(self) -> int:
        return self.seqs[0]

    @property
    def last(self) -> int:
        return self.seqs[-1]

    def __len__(self) -> int:
        return len(self.seqs)

    def head(self, count: int) -> OutboxBatch:
        return OutboxBatch(self.seqs[:count], self.entry_ids[:count], self.items[:count])

    def body(self, workstation_id: str) -> bytes:
        """The push request: {"workstation_id": ..., "items": [...]}."""
        return (f'{{"workstation_id":{json.dumps(workstation_id)},"items":[{",".join(self.items)}]}}').encode("utf-8")


def read_batch(rows: list[tuple]) -> OutboxBatch | None:
    """The batch made of `SELECT_BATCH`'s rows (None when there are none)."""
    if not rows:
        return None
    seqs, ids, items = [], [], []
    for seq, entry_id, scalars, details, record, payload in rows:
        seqs.append(seq)
        ids.append(entry_id)
        wire_record = "null" if record is None else f'{record[:-1]},"payload":{payload}}}'
        items.append(f'{scalars[:-1]},"details":{details},"record":{wire_record}}}')
    return OutboxBatch(tuple(seqs), tuple(ids), tuple(items))

