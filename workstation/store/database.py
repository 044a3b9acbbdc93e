"""The encrypted local store: one SQLCipher file for feedback entries, inference records and the audit chain.

Durable by construction: WAL with synchronous=FULL, and every write is one
transaction that appends the payload row and its chained audit entry together.
A wrong or missing key leaves the file untouched (checked read-only first).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import threading
import uuid
import zlib
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import keyring.backend
import numpy as np
from sqlcipher3 import dbapi2 as sqlcipher

from workstation.core.audit import (
    GENESIS, AuditEntry, AuditEvent, ChainProblem, ChainReport, Outcome, digest, verify_chain, chain_entry,
)
from workstation.core.findings import Acquisition, Finding, InferenceResult, ModelRef
from workstation.core.review import Action, FeedbackEntry, entry_refusal
from workstation.core.roles import Permission, PermissionDenied, User
from workstation.core.sync import INFERENCE_RECORD_FORMAT, Record, SyncItem
from workstation.store import keys
from workstation.store.high_water import HighWater, HighWaterDamaged
from workstation.store.outbox import SELECT_BATCH, OutboxBatch, read_batch
from workstation.store.schema import MIGRATIONS

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000


class StoreError(RuntimeError):
    """The store cannot be used; the message says why and what to do."""


class _Refused(Exception):
    """Internal: a review entry the rules refuse (rolls the write transaction back)."""


class StoreLocked(StoreError):
    """Wrong or missing key, or no keyring: the file was not touched."""


@dataclass(frozen=True)
class Identity:
    """Who writes: the user (with role) at this workstation."""

    user: User
    workstation_id: str


@dataclass(frozen=True)
class StoredRun:
    run_id: str
    model: ModelRef
    device: str
    study_instance_uid: str
    series_instance_uid: str
    started_utc: str
    findings: list[Finding]


@dataclass(frozen=True)
class StoreReport:
    """`audit verify`: the chain, the links from feedback/inference rows to their audit entries, the pages."""

    chain: ChainReport
    record_problem: ChainProblem | None
    integrity: str  # "ok" or what SQLCipher/SQLite found
    tail_problem: ChainProblem | None = None  # the high-water mark: newest entries deleted, or the mark forged
    damage: str = ""  # the file's pages failed their HMAC: which pages and which entries cannot be read

    @property
    def ok(self) -> bool:
        return (self.chain.ok and self.record_problem is None and self.integrity == "ok" and self.tail_problem is None
                and not self.damage)

    @property
    def first_problem(self) -> ChainProblem | None:
        problems = [p for p in (self.chain.problem, self.record_problem, self.tail_problem) if p is not None]
        return min(problems, key=lambda p: p.seq) if problems else None


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Store:
    """Open with `Store.open`; every write method is atomic and durable when it returns."""

    def __init__(self, path: Path, connection, identity: Identity, key: bytes | None = None) -> None:
        self.path, self._db, self.identity = path, connection, identity
        self._lock = threading.RLock()
        self._key = key  # to open a second connection when the first one meets damaged pages (verify)
        self._high_water = HighWater(path, key) if key is not None else None
        self._written: tuple[int, str] | None = None  # the newest entry of the transaction in progress
        self._mark_stuck = False  # the mark names an entry the trail no longer holds (said once)

    # ----- opening
    @classmethod
    def open(cls, path: str | os.PathLike, identity: Identity,
             backend: keyring.backend.KeyringBackend | None = None, key_name: str = keys.STORE_KEY) -> Store:
        path, version = Path(path), 0
        try:
            chosen = keys.usable_backend(backend)
            key = keys.read_key(chosen, key_name)
            if key is None:
                if path.exists():
                    raise keys.KeyMissing(
                        f"the store {path} exists but the OS keyring holds no key for it; restore the keyring "
                        "(or its backup) - the store was left untouched")
                key = keys.create_key(chosen, key_name)
            elif path.exists():
                version = _check_key(path, key)
        except (keys.KeyringUnavailable, keys.KeyMissing, StoreLocked) as exc:
            _remember_failure(path, identity, str(exc))
            raise StoreLocked(str(exc)) from exc
        if path.exists() and version > len(MIGRATIONS):  # refused before anything is written (WAL, -shm)
            raise _too_new(path, version)
        _private_file(path)
        store = cls(path, _connect(path, key), identity, key)
        try:
            store._migrate()
            store._import_failures()
            store._mark_high_water()
        except BaseException:
            store.close()
            raise
        return store

    def _mark_high_water(self) -> None:
        """A store without a mark (new, or made before marks existed) gets one from its head now."""
        try:
            if self._high_water is not None and self._high_water.read() is None:
                self._high_water.advance(*self.head())
        except HighWaterDamaged:
            pass  # verify reports it; never overwritten silently here
        except OSError as exc:
            log.warning("the audit trail's high-water mark cannot be written beside %s: %s", self.path, exc)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- writes
    def append(self, event: AuditEvent) -> AuditEntry:
        """One audit entry, chained and durable."""
        with self._transaction() as db:
            return self._append(db, event)

    def record_feedback(self, entry: FeedbackEntry) -> AuditEntry:
        """A review action and its audit entry in one transaction; the role is checked here."""
        user = self.identity.user
        if entry.user != user.login or entry.role != (user.role.value if user.role else ""):
            self._deny(entry.action.permission, entry.study_instance_uid,
                       f"entry claims user {entry.user!r} ({entry.role}) but {user.login} is signed in")
            raise PermissionDenied(user, entry.action.permission)
        if entry.workstation_id != self.identity.workstation_id:
            self._deny(entry.action.permission, entry.study_instance_uid,
                       f"entry claims workstation {entry.workstation_id!r} but this is {self.identity.workstation_id!r}")
            raise PermissionDenied(user, entry.action.permission)
        if not user.may(entry.action.permission):
            self._deny(entry.action.permission, entry.study_instance_uid, f"{entry.action.value} refused")
            raise PermissionDenied(user, entry.action.permission)
        payload = entry.to_dict()
        details = {
            "feedback_entry_id": entry.entry_id,
            "feedback_sha256": digest(payload),
            "finding_id": entry.finding_id,
            "series_instance_uid": entry.series_instance_uid,
            "sop_instance_uid": entry.sop_instance_uid,
            "model": entry.model_name,
            "version": entry.model_version,
        }
        if entry.reverts:
            details["reverts"] = entry.reverts
        if entry.action is Action.SIGNOFF:  # the final verdicts in the audit trail itself (ids and states only)
            findings = (entry.details or {}).get("findings", [])
            details["final_states"] = {str(f.get("number")): f.get("state") for f in findings}
        event = AuditEvent(entry.action.audit_kind, entry.at_utc, details, study_instance_uid=entry.study_instance_uid)
        try:
            with self._transaction() as db:  # the rules are checked against what is stored now, inside the write
                rows = db.execute("SELECT payload FROM feedback WHERE series_instance_uid = ? ORDER BY audit_seq",
                                  (entry.series_instance_uid,)).fetchall()
                refusal = entry_refusal([FeedbackEntry.from_dict(json.loads(p)) for (p,) in rows], entry)
                if refusal:
                    raise _Refused(refusal)
                audit = self._append(db, event)
                db.execute("INSERT INTO feedback (entry_id, audit_seq, series_instance_uid, finding_id, payload) "
                           "VALUES (?,?,?,?,?)",
                           (entry.entry_id, audit.seq, entry.series_instance_uid, entry.finding_id, _json(payload)))
        except _Refused as refused:
            self._deny(entry.action.permission, entry.study_instance_uid, f"{entry.action.value} refused: {refused}")
            raise PermissionDenied(user, entry.action.permission) from None
        return audit

    def record_inference(self, result: InferenceResult, event: AuditEvent) -> str:
        """The findings of a run (so a reopened study shows them) with its audit entry; returns the run id."""
        run_id = str(uuid.uuid4())
        payload = {
            "run_id": run_id, "model": {"name": result.model.name, "version": result.model.version, "sha256": result.model.sha256},
            "device": result.device, "study_instance_uid": result.study_instance_uid,
            "series_instance_uid": result.series_instance_uid, "started_utc": result.started_utc,
            "findings": [_finding_dict(f) for f in result.findings],
        }
        if result.acquisition is not None or result.threshold is not None:  # record v2; v1 payloads keep their bytes
            payload.update(record_format=INFERENCE_RECORD_FORMAT, threshold=result.threshold,
                           score_scale="calibrated" if result.calibrated else "raw",
                           acquisition=(result.acquisition or Acquisition()).to_dict())
        event = AuditEvent(event.kind, event.at_utc, {**event.details, "run_id": run_id, "record_sha256": digest(payload)},
                           result.study_instance_uid, event.outcome, event.outcome_text)
        with self._transaction() as db:
            audit = self._append(db, event)
            db.execute("INSERT INTO inference_runs (run_id, audit_seq, series_instance_uid, model, version, payload) VALUES (?,?,?,?,?,?)",
                       (run_id, audit.seq, result.series_instance_uid, result.model.name, result.model.version, _json(payload)))
            heat = result.heatmap
            if isinstance(heat, np.ndarray) and heat.ndim == 3 and heat.dtype == np.uint8:
                db.execute("INSERT INTO heatmaps (run_id, frames, rows, columns, data) VALUES (?,?,?,?,?)",
                           (run_id, *heat.shape, zlib.compress(np.ascontiguousarray(heat).tobytes(), 6)))
        return run_id

    def heatmap(self, run_id: str) -> np.ndarray | None:
        """The run's heatmap (frames, rows, columns) uint8 = probability x 255, or None when it was not kept."""
        rows = self._query("SELECT frames, rows, columns, data FROM heatmaps WHERE run_id = ?", (run_id,))
        if not rows:
            return None
        frames, height, width, data = rows[0]
        raw = zlib.decompress(data, bufsize=frames * height * width)
        if len(raw) != frames * height * width:
            raise StoreError(f"the heatmap of run {run_id} is damaged ({len(raw)} bytes for {frames}x{height}x{width})")
        return np.frombuffer(raw, np.uint8).reshape(frames, height, width)

    def _deny(self, permission: Permission, study_uid: str, reason: str) -> None:
        self.append(AuditEvent("access.denied", now_utc(), {"permission": permission.value, "reason": reason},
                               study_uid, Outcome.MINOR_FAILURE, reason))

    def _append(self, db, event: AuditEvent) -> AuditEntry:
        row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
        user = self.identity.user
        entry = chain_entry(seq, str(uuid.uuid4()), self.identity.workstation_id, user.login,
                            user.role.value if user.role else "", event, prev)
        db.execute(
            "INSERT INTO audit (seq, entry_id, workstation_id, at_utc, kind, user, role, study_instance_uid, outcome,"
            " outcome_text, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (entry.seq, entry.entry_id, entry.workstation_id, entry.at_utc, entry.kind, entry.user, entry.role,
             entry.study_instance_uid, entry.outcome, entry.outcome_text, _json(entry.details), entry.prev_hash, entry.hash))
        self._written = (entry.seq, entry.hash)
        return entry

    @contextmanager
    def _transaction(self, flush: bool = True) -> Iterator:
        """One write transaction. `flush=False`: its commit does not wait for the disk (synchronous=NORMAL: still
        atomic, and on disk with the next flushed commit or checkpoint) - for writes whose loss in a power cut
        costs nothing but a repeat, never for audit entries."""
        with self._lock:
            if self._db is None:
                raise StoreError("the store is closed")
            if not flush:
                self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("BEGIN IMMEDIATE")
            self._written = None
            try:
                yield self._db
                self._db.execute("COMMIT")
                if self._written is not None:
                    self._raise_high_water(*self._written)
            except BaseException:
                if self._db.in_transaction:  # also when COMMIT failed (disk full): the store stays usable
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlcipher.Error:
                        log.exception("rollback failed")
                raise
            finally:
                if not flush:
                    self._db.execute("PRAGMA synchronous = FULL")

    # ----- reads
    def feedback(self, series_instance_uid: str) -> list[FeedbackEntry]:
        """The series' review entries in write order."""
        rows = self._query("SELECT payload FROM feedback WHERE series_instance_uid = ? ORDER BY audit_seq", (series_instance_uid,))
        return [FeedbackEntry.from_dict(json.loads(payload)) for (payload,) in rows]

    def inference_runs(self, series_instance_uid: str) -> list[StoredRun]:
        """Stored runs of a series, newest first."""
        rows = self._query("SELECT payload FROM inference_runs WHERE series_instance_uid = ? ORDER BY audit_seq DESC", (series_instance_uid,))
        return [_stored_run(json.loads(payload)) for (payload,) in rows]

    def study_runs(self, study_instance_uid: str) -> list[StoredRun]:
        """Stored runs of every series of a study, oldest first (the study is only inside the encrypted payload)."""
        runs = [_stored_run(json.loads(payload)) for (payload,) in
                self._query("SELECT payload FROM inference_runs ORDER BY audit_seq")]
        return [run for run in runs if run.study_instance_uid == study_instance_uid]

    def audit_entries(self, since_utc: str | None = None) -> list[AuditEntry]:
        rows = self._query(_SELECT_AUDIT + (" WHERE at_utc >= ? ORDER BY seq" if since_utc else " ORDER BY seq"),
                           (since_utc,) if since_utc else ())
        return [_audit_entry(row) for row in rows]

    def last_entry(self, kind: str) -> AuditEntry | None:
        """The newest audit entry of `kind`, without reading the whole trail (start-up asks this)."""
        rows = self._query(_SELECT_AUDIT + " WHERE kind = ? ORDER BY seq DESC LIMIT 1", (kind,))
        return _audit_entry(rows[0]) if rows else None

    # ----- sync outbox (entries not yet acknowledged by the central server)
    def outbox(self, limit: int = 500) -> list[SyncItem]:
        """The oldest unsynced audit entries in seq order, each with the feedback or inference record it binds."""
        with self._lock:
            entries = [_audit_entry(row) for row in self._query(_SELECT_AUDIT + " WHERE synced = 0 ORDER BY seq LIMIT ?", (limit,))]
            if not entries:
                return []
            first, last = entries[0].seq, entries[-1].seq
            records: dict[int, Record] = {}
            for kind, table, id_column in (("feedback", "feedback", "entry_id"), ("inference", "inference_runs", "run_id")):
                for seq, rid, payload in self._query(
                        f"SELECT audit_seq, {id_column}, payload FROM {table} WHERE audit_seq BETWEEN ? AND ?", (first, last)):
                    records[seq] = Record(kind, rid, json.loads(payload))
        return [SyncItem(entry, records.get(entry.seq)) for entry in entries]

    def outbox_batch(self, after_seq: int, limit: int) -> OutboxBatch | None:
        """Up to `limit` unsynced entries after `after_seq`, as the push's wire items (store/outbox.py)."""
        return read_batch(self._query(SELECT_BATCH, (after_seq, limit)))

    def mark_batch_synced(self, batch: OutboxBatch) -> int:
        """The server acknowledged every entry of `batch`: they leave the outbox (one transaction). The unsynced
        entries between its first and last seq are exactly the batch (it was read in seq order)."""
        span = (batch.first, batch.last)
        with self._transaction(flush=False) as db:  # a mark lost in a power cut: the batch is resent, duplicates
            changed = db.execute("UPDATE audit SET synced = 1 WHERE seq BETWEEN ? AND ? AND synced = 0", span).rowcount
        return changed

    def pending_count(self) -> int:
        return self._query("SELECT count(*) FROM audit WHERE synced = 0")[0][0]

    def mark_synced(self, entry_ids: list[str]) -> int:
        """After the server acknowledged their commit: the entries leave the outbox (one transaction)."""
        if not entry_ids:
            return 0
        changed = 0
        with self._transaction() as db:
            for chunk in range(0, len(entry_ids), 500):
                ids = entry_ids[chunk:chunk + 500]
                marks = ",".join("?" * len(ids))
                changed += db.execute(f"UPDATE audit SET synced = 1 WHERE entry_id IN ({marks}) AND synced = 0",
                                      ids).rowcount
        return changed

    # ----- sync recovery (a server restored from a backup) and the sync worker's last outcome
    def synced_through(self) -> int:
        """The highest seq the central server acknowledged (0: none)."""
        return self._query("SELECT coalesce(max(seq), 0) FROM audit WHERE synced = 1")[0][0]

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest entry; (0, GENESIS) for an empty trail."""
        rows = self._query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        return (rows[0][0], rows[0][1]) if rows else (0, GENESIS)

    def entry_hash(self, seq: int) -> str | None:
        """The hash of entry `seq` (GENESIS for 0), None when this trail has no such entry."""
        if seq == 0:
            return GENESIS
        rows = self._query("SELECT hash FROM audit WHERE seq = ?", (seq,))
        return rows[0][0] if rows else None

    def reset_synced_after(self, seq: int) -> int:
        """The entries after `seq` go back into the outbox (the server lost them: restored from a backup). Only
        the sync flag changes, which the append-only triggers allow; returns how many were marked synced."""
        with self._transaction() as db:
            changed = db.execute("UPDATE audit SET synced = 0 WHERE seq > ? AND synced = 1", (seq,)).rowcount
        return changed

    def oldest_pending(self) -> tuple[int, str] | None:
        """(seq, at_utc) of the oldest entry not yet on the central server, None when the outbox is empty."""
        rows = self._query("SELECT seq, at_utc FROM audit WHERE synced = 0 ORDER BY seq LIMIT 1")
        return (rows[0][0], rows[0][1]) if rows else None

    def sync_status(self) -> dict[str, str]:
        """What the sync worker last recorded (key -> value), e.g. last_outcome, last_message, last_push_utc."""
        return {key: value for key, value in self._query("SELECT key, value FROM sync_status")}

    def set_sync_status(self, values: dict[str, str]) -> None:
        """Record the sync worker's outcome (no audit entry: each would be one more to push)."""
        now = now_utc()
        with self._transaction() as db:
            for key, value in values.items():
                db.execute("INSERT INTO sync_status (key, value, updated_utc) VALUES (?,?,?) ON CONFLICT(key) DO "
                           "UPDATE SET value = excluded.value, updated_utc = excluded.updated_utc", (key, str(value), now))

    def count(self, table: str = "audit") -> int:
        if table not in ("audit", "feedback", "inference_runs"):
            raise ValueError(table)
        return self._query(f"SELECT count(*) FROM {table}")[0][0]

    def _raise_high_water(self, seq: int, head: str) -> None:
        """After a commit that appended entries (never fails the write: the entries are in)."""
        if self._high_water is None:
            return
        def holds(mark_seq: int, mark_hash: str) -> bool:
            if mark_seq == 0:
                return mark_hash == GENESIS
            row = self._db.execute("SELECT hash FROM audit WHERE seq = ?", (mark_seq,)).fetchone()
            return row is not None and row[0] == mark_hash

        try:
            if not self._high_water.advance(seq, head, holds) and not self._mark_stuck:
                self._mark_stuck = True
                log.error("the audit trail no longer holds the entry its high-water mark names: entries were deleted"
                          " (the mark is kept as evidence; 'workstation audit verify' reports it)")
        except OSError as exc:
            log.warning("the audit trail's high-water mark was not raised to %d: %s", seq, exc)

    def verify(self) -> StoreReport:
        """Chain, record links, the high-water mark and page integrity; names the first entry that does not fit.
        A file whose pages fail their HMAC (a flipped byte) is reported with the damaged pages and entries."""
        try:
            entries = self.audit_entries()
            chain = verify_chain(entries)
            records = self._check_records(entries)
            integrity = self._integrity()
        except sqlcipher.DatabaseError as exc:
            return self._damage_report(exc)
        return StoreReport(chain, records, integrity, self._check_tail(entries))

    def _check_tail(self, entries: list[AuditEntry]) -> ChainProblem | None:
        """The newest entries against the high-water mark: fewer than it says means the tail was deleted."""
        if self._high_water is None:
            return None
        try:
            mark = self._high_water.read()
        except HighWaterDamaged as exc:
            return ChainProblem("high-water", (entries[-1].seq if entries else 0) + 1, "",
                                f"the high-water mark cannot be trusted: {exc}; the newest entries may have been deleted")
        except OSError as exc:
            return ChainProblem("high-water", (entries[-1].seq if entries else 0) + 1, "",
                                f"the high-water mark cannot be read: {exc}")
        if mark is None:
            return None
        seq, head = mark
        last = entries[-1].seq if entries else 0
        if seq > last:
            missing = f"{seq}" if seq == last + 1 else f"{last + 1}-{seq}"
            return ChainProblem("deleted", last + 1, "",
                                f"entr{'y' if seq == last + 1 else 'ies'} {missing} deleted from the end of the trail:"
                                f" the high-water mark beside the store says {seq} were written, the trail ends at {last}")
        held = next((e for e in reversed(entries) if e.seq == seq), None)
        if held is not None and held.hash != head:
            return ChainProblem("altered", seq, held.entry_id,
                                f"entry {seq} is not the one written (the high-water mark holds another hash): the"
                                f" trail was rewritten from there or before")
        return None

    def _damage_report(self, exc: Exception) -> StoreReport:
        """The pages that fail SQLCipher's HMAC and the audit entries that cannot be read because of them, each
        found on a fresh connection (one that met a bad page refuses further reads)."""
        pages: list[str] = []
        try:
            with closing(_connect(self.path, self._key)) as db:
                pages = [r[0] for r in db.execute("PRAGMA cipher_integrity_check").fetchall()]
        except (sqlcipher.DatabaseError, StoreLocked, TypeError) as failure:
            pages = [f"integrity check failed: {failure}"]
        bad, readable, last = self._unreadable_entries()
        ranges = _ranges(bad)
        text = "; ".join(pages[:20]) + (f" (and {len(pages) - 20} more)" if len(pages) > 20 else "") or str(exc)
        entries = (f"audit entries that cannot be read: {ranges}" if bad else
                   "every audit entry reads back: the damage is in another table or an index")
        damage = f"the store file is damaged ({text}); {entries}; {readable} entries read, the newest is {last}"
        first = bad[0] if bad else (last + 1)
        problem = ChainProblem("damaged", first, "", f"the store file is damaged: {entries}")
        return StoreReport(ChainReport(readable, "", problem), None, "; ".join(pages) or str(exc), damage=damage)

    def _unreadable_entries(self, chunk: int = 256) -> tuple[list[int], int, int]:
        """(seqs that cannot be read, how many can, the highest seq known) by reading in seq ranges, halving a
        range that fails down to single entries; a connection that failed is replaced."""
        state = {"db": _connect(self.path, self._key)}

        def read(low: int, high: int) -> int | None:
            try:
                return len(state["db"].execute(_SELECT_AUDIT + " WHERE seq BETWEEN ? AND ?", (low, high)).fetchall())
            except sqlcipher.DatabaseError:
                state["db"].close()
                state["db"] = _connect(self.path, self._key)
                return None

        try:
            try:
                top = state["db"].execute("SELECT max(seq) FROM audit").fetchone()[0] or 0
            except sqlcipher.DatabaseError:
                state["db"].close()
                state["db"] = _connect(self.path, self._key)
                top = 0
            try:
                mark = self._high_water.read() if self._high_water is not None else None
            except (HighWaterDamaged, OSError):
                mark = None
            top = max(top, mark[0] if mark else 0)
            bad: list[int] = []
            readable = 0
            pending = [(low, min(low + chunk - 1, top)) for low in range(1, top + 1, chunk)]
            while pending:
                low, high = pending.pop(0)
                count = read(low, high)
                if count is not None:
                    readable += count
                elif low == high:
                    bad.append(low)
                else:
                    middle = (low + high) // 2
                    pending[:0] = [(low, middle), (middle + 1, high)]
            return bad, readable, top
        finally:
            state["db"].close()

    def _check_records(self, entries: list[AuditEntry]) -> ChainProblem | None:
        """Each feedback/inference row against its audit entry: the id, the payload's digest, and the columns
        the store looks rows up by (series, finding, model), which must say what the payload says."""
        by_seq = {e.seq: e for e in entries}
        problems: list[ChainProblem] = []
        for table, id_column, id_key, sha_key, kinds, columns in _RECORD_TABLES:
            rows = {}
            for rid, seq, text, *values in self._query(f"SELECT {id_column}, audit_seq, payload, {', '.join(columns)} FROM {table}"):
                rows[seq] = rid
                audit = by_seq.get(seq)
                if audit is None or audit.details.get(id_key) != rid:
                    problems.append(ChainProblem("inserted", seq, rid, f"{table} row {rid} has no audit entry of its own (inserted)"))
                    continue
                try:
                    payload = json.loads(text)
                    intact = audit.details.get(sha_key) == digest(payload) and list(values) == [
                        _record_column(payload, column) for column in columns]
                except (ValueError, TypeError, KeyError):
                    intact = False
                if not intact:
                    problems.append(ChainProblem("altered", seq, rid, f"{table} row {rid} (audit entry {seq}) was altered"))
            for entry in entries:
                if entry.kind.startswith(kinds) and id_key in entry.details and entry.seq not in rows:
                    problems.append(ChainProblem("deleted", entry.seq, entry.details[id_key],
                                                 f"{table} row of audit entry {entry.seq} was deleted"))
        return min(problems, key=lambda p: p.seq) if problems else None

    def _integrity(self) -> str:
        cipher = [r[0] for r in self._query("PRAGMA cipher_integrity_check")]
        pages = [r[0] for r in self._query("PRAGMA integrity_check")]
        found = cipher + [p for p in pages if p != "ok"]
        return "ok" if not found else "; ".join(found)

    def _query(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        with self._lock:
            if self._db is None:
                raise StoreError("the store is closed")
            return self._db.execute(sql, parameters).fetchall()

    # ----- schema and failed opens
    def _migrate(self) -> None:
        """Pending migrations, each in one transaction; the version is read inside it, so two
        processes opening the same store at once do not both apply a migration."""
        while True:
            with self._transaction() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > len(MIGRATIONS):
                    raise _too_new(self.path, version)
                if version == len(MIGRATIONS):
                    return
                for statement in _statements(MIGRATIONS[version]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version + 1}")

    def _import_failures(self) -> None:
        """Failed opens were noted beside the store (no PHI); now that it is open they join the chain.

        The notes file is first renamed to a name of our own, so a note written meanwhile by another
        failing open starts a new file and is not lost; each note has an id, so a note is imported once
        even when a crash left a claimed file behind or two processes import at once.
        """
        pending = _failures_path(self.path)
        if pending.exists():
            try:
                os.replace(pending, pending.with_name(f"{pending.name}.{uuid.uuid4().hex}.importing"))
            except FileNotFoundError:
                pass  # another process claimed it
        claimed = sorted(pending.parent.glob(glob.escape(pending.name) + ".*.importing"))
        if not claimed:
            return
        notes = []
        for file in claimed:
            try:
                lines = file.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                continue  # imported and removed by another process just now
            for line in lines:
                try:
                    note = json.loads(line)
                    notes.append((str(note.get("note_id", "")), AuditEvent(
                        "store.open-failed", note["at_utc"],
                        {"user": note["user"], "reason": note["reason"][:500], "note_id": note.get("note_id", "")},
                        outcome=Outcome.SERIOUS_FAILURE, outcome_text="store refused to open")))
                except (ValueError, KeyError, TypeError, AttributeError):
                    log.warning("unreadable line in %s skipped", file)
        with self._transaction() as db:  # all or none; the ids already in the chain are read inside it
            known = {json.loads(details).get("note_id") for (details,) in
                     db.execute("SELECT details FROM audit WHERE kind = 'store.open-failed'")}
            for note_id, event in notes:
                if not (note_id and note_id in known):
                    self._append(db, event)
                    known.add(note_id)
        for file in claimed:
            file.unlink(missing_ok=True)


def _connect(path: Path, key: bytes, read_only: bool = False, immutable: bool = False):
    """A connection with the key proven; read_only writes nothing, immutable also creates no -wal/-shm files
    (it reads the main file without locks, ignoring a WAL: enough to prove the key, not to read entries)."""
    uri = path.resolve().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro" if read_only else "")
    db = sqlcipher.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        db.execute("PRAGMA cipher_log_level = NONE")  # a wrong key is reported by us, not on stderr
    except sqlcipher.DatabaseError:
        pass
    db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher.DatabaseError as exc:
        db.close()
        raise StoreLocked(f"the store {path} cannot be opened with the key in the OS keyring ({exc}); "
                          "it was left untouched - restore the matching keyring entry (if the key is the right one, the file's "
                          "first page is damaged: restore the store from its backup)") from None
    if not (read_only or immutable):
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return db


def _check_key(path: Path, key: bytes) -> int:
    """Prove the key without writing or creating anything beside the store; returns the schema version.

    The immutable read takes no lock, so it could meet page 1 half-rewritten by another process's
    checkpoint: a failure is confirmed with a locking read-only open (which, with a wrong key, fails on
    page 1 before it creates a -wal/-shm). The version may be stale when a migration sits in another
    process's WAL; `_migrate` checks again inside its transaction.
    """
    try:
        db = _connect(path, key, immutable=True)
    except StoreLocked:
        db = _connect(path, key, read_only=True)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def _private_file(path: Path) -> None:
    """The store's folders (the missing ones, 0700) and file (0600) before SQLCipher opens it: it holds patient
    data and the audit trail. SQLite gives its -wal and -shm files the mode of the main file."""
    missing = [p for p in path.parents if not p.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
    if not path.exists():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass


def _ranges(seqs: list[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9" (at most 20 ranges named)."""
    parts: list[str] = []
    for seq in sorted(seqs):
        if parts and parts[-1][1] == seq - 1:
            parts[-1][1] = seq
        else:
            parts.append([seq, seq])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in parts[:20])
    return text + (f" (and {len(parts) - 20} more ranges)" if len(parts) > 20 else "")


def _too_new(path: Path, version: int) -> StoreError:
    return StoreError(f"the store {path} was written by a newer version of the workstation (schema {version}, "
                      f"this version knows {len(MIGRATIONS)}); it was left untouched - upgrade the workstation")


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script (triggers hold ';' inside BEGIN ... END)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlcipher.complete_statement(pending):
            if pending.strip():
                yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete statement in a migration: {pending.strip()[:80]}")


def _failures_path(path: Path) -> Path:
    return path.with_name(path.name + ".failed-opens.jsonl")


def _remember_failure(path: Path, identity: Identity, reason: str) -> None:
    try:
        if path.parent.exists():
            fd = os.open(_failures_path(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with open(fd, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"note_id": str(uuid.uuid4()), "at_utc": now_utc(), "user": identity.user.login,
                                         "reason": reason}) + "\n")
    except OSError:
        log.warning("could not note the failed store open beside %s", path)


# table, id column, audit detail naming the row, audit detail with its digest, audit kinds, lookup columns
_RECORD_TABLES = (
    ("feedback", "entry_id", "feedback_entry_id", "feedback_sha256", ("finding.", "review."), ("series_instance_uid", "finding_id")),
    ("inference_runs", "run_id", "run_id", "record_sha256", ("inference.run",), ("series_instance_uid", "model", "version")),
    ("measurements", "entry_id", "measurement_entry_id", "measurement_sha256", ("measurement.",),
     ("series_instance_uid", "measurement_id")),
)


def _record_column(payload: dict, column: str):
    """What a lookup column of a feedback/inference row must hold, from the row's payload."""
    if column in ("model", "version"):
        return payload["model"]["name" if column == "model" else "version"]
    return payload[column]


def _json(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_SELECT_AUDIT = ("SELECT seq, entry_id, workstation_id, at_utc, kind, user, role, study_instance_uid, outcome,"
                 " outcome_text, details, prev_hash, hash FROM audit")


def _audit_entry(row: tuple) -> AuditEntry:
    values = list(row)
    values[10] = json.loads(values[10])
    return AuditEntry(*values)


def _finding_dict(finding: Finding) -> dict:
    return {"finding_id": finding.finding_id, "label": finding.label, "score": finding.score,
            "frame_index": finding.frame_index, "box_px": list(finding.box_px),
            "box_mm": [list(c) for c in finding.box_mm], "center_mm": list(finding.center_mm),
            "frames": list(finding.frames), "sop_instance_uid": finding.sop_instance_uid}


def _stored_run(payload: dict) -> StoredRun:
    findings = [Finding(f["finding_id"], f["label"], f["score"], f["frame_index"], tuple(f["box_px"]),
                        tuple(tuple(c) for c in f["box_mm"]), tuple(f["center_mm"]), tuple(f["frames"]),
                        f.get("sop_instance_uid", "")) for f in payload["findings"]]
    model = payload["model"]
    return StoredRun(payload["run_id"], ModelRef(model["name"], model["version"], model["sha256"]), payload["device"],
                     payload["study_instance_uid"], payload["series_instance_uid"], payload["started_utc"], findings)
