"""Monitoring facts kept beside the stored entries, so that every figure is an SQL aggregate over small tables.

Stored entries are canonical JSON (what was pushed, byte for byte). Reading each one back to answer a
dashboard request would not scale to millions, so ``refresh`` reads the entries that arrived since its last
pass (per workstation, in seq order: a workstation's entries are always committed as a prefix of its chain),
once each, and keeps:

* ``monitor_runs`` / ``monitor_findings``: one row per inference run and per finding of it, with the state the
  run's sign-off in force gives each finding (a reopen makes them undecided again, the next sign-off decides);
* ``monitor_cells``: counts per model version and week, in three grains: by score bin (histogram, operating
  points, score drift), by workstation and by scanner (manufacturer, model, kernel), each holding run and
  finding counts; a sign-off or reopen moves a run's findings between the counts by subtracting what the run
  contributed before and adding what it contributes now;
* ``monitor_versions``: each model version's sha256, threshold, first and last week (its predecessor is the
  version of the same model seen first before it).

Only ``inference.run`` (with its inference record) and ``review.signoff`` / ``review.reopen`` (with their
feedback entries) matter here. Nothing patient-related is kept beyond the series UID that links a sign-off to
its run (never shown).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (BigInteger, Column, Connection, Engine, Float, Index, Integer, MetaData, String, Table,
                        UniqueConstraint, and_, select, text, update)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from .. import db

log = logging.getLogger(__name__)

try:  # the server extra brings orjson (core.sync uses it too): parsing stored items is most of a pass
    from orjson import loads as _loads
except ModuleNotFoundError:  # pragma: no cover - without it, the stdlib
    _loads = json.loads

KINDS = ("inference.run", "review.signoff", "review.reopen")
BINS = 20  # score bins of 0.05
DECIDED = ("accepted", "edited", "rejected", "deleted")
STATES = ("pending",) + DECIDED
MEASURES = ("runs", "signed_runs", "added", "decision_s", "findings", "pending", "accepted", "edited", "rejected",
            "deleted", "kept")
_STATE_INDEX = {state: MEASURES.index(state) for state in STATES}
CELL_KEYS = ("grain", "model", "version", "week", "workstation_id", "manufacturer", "scanner_model", "kernel",
             "score_bin")
EPOCH = date(1970, 1, 1)
CHUNK = 5000

metadata = MetaData()

monitor_progress = Table(
    "monitor_progress", metadata,
    Column("workstation_id", String(128), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

monitor_versions = Table(
    "monitor_versions", metadata,
    Column("model", String(128), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("sha256", String(64), nullable=False, default=""),
    Column("threshold", Float),
    Column("score_scale", String(16), nullable=False, default=""),
    Column("first_week", Integer, nullable=False),
    Column("last_week", Integer, nullable=False),
    Column("first_utc", String(40), nullable=False),
)

monitor_runs = Table(
    "monitor_runs", metadata,
    Column("workstation_id", String(128), primary_key=True),
    Column("run_id", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("series_uid", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("device", String(32), nullable=False),
    Column("manufacturer", String(64), nullable=False),
    Column("scanner_model", String(64), nullable=False),
    Column("kernel", String(64), nullable=False),
    Column("slice_thickness", Float),
    Column("threshold", Float),
    Column("record_format", String(64), nullable=False),
    Column("started_utc", String(40), nullable=False),
    Column("week", Integer, nullable=False),
    Column("signoff_id", String(64), nullable=False, default=""),  # the feedback entry of the sign-off in force
    Column("decided_utc", String(40)),
    Column("added", Integer, nullable=False, default=0),
)
Index("ix_monitor_runs_series", monitor_runs.c.workstation_id, monitor_runs.c.series_uid, monitor_runs.c.model,
      monitor_runs.c.version)
Index("ix_monitor_runs_signoff", monitor_runs.c.workstation_id, monitor_runs.c.signoff_id)

monitor_findings = Table(
    "monitor_findings", metadata,
    Column("workstation_id", String(128), primary_key=True),
    Column("run_id", String(64), primary_key=True),
    Column("finding_id", String(64), primary_key=True),
    Column("label", String(64), nullable=False),
    Column("score", Float, nullable=False),
    Column("state", String(16), nullable=False),
    Column("kept", Integer, nullable=False, default=0),
)

monitor_cells = Table(
    "monitor_cells", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("grain", String(8), nullable=False),  # bin, ws, scanner
    Column("model", String(128), nullable=False),
    Column("version", String(64), nullable=False),
    Column("week", Integer, nullable=False),  # days from 1970-01-01 to the week's Monday (UTC)
    Column("workstation_id", String(128), nullable=False),
    Column("manufacturer", String(64), nullable=False),
    Column("scanner_model", String(64), nullable=False),
    Column("kernel", String(64), nullable=False),
    Column("score_bin", Integer, nullable=False),
    *(Column(name, Float if name == "decision_s" else BigInteger, nullable=False, default=0) for name in MEASURES),
    UniqueConstraint(*CELL_KEYS, name="uq_monitor_cells"),
)
Index("ix_monitor_cells_version", monitor_cells.c.grain, monitor_cells.c.model, monitor_cells.c.version,
      monitor_cells.c.week)
Index("ix_monitor_cells_week", monitor_cells.c.grain, monitor_cells.c.week)


_created: set[int] = set()


def create_tables(engine: Engine) -> None:
    if id(engine) not in _created:
        metadata.create_all(engine)
        _created.add(id(engine))


def week_of(moment: str) -> int:
    """The Monday (days since 1970-01-01, UTC) of the week holding an ISO 8601 time."""
    day = datetime.fromisoformat(db.normalise_time(moment)).date()
    return (day - EPOCH).days - day.weekday()


def week_date(week: int) -> date:
    return date.fromordinal(EPOCH.toordinal() + week)


def score_bin(score: float) -> int:
    return min(BINS - 1, max(0, int(score * BINS)))


@dataclass
class Run:
    key: tuple[str, str]  # (workstation_id, run_id)
    row: dict[str, Any]
    findings: dict[str, list[Any]]  # finding_id -> [label, score, state, kept]
    new: bool = False
    dirty: bool = False
    changed_findings: set[str] = field(default_factory=set)


def _seconds(start: str, end: str | None) -> float:
    if not end:
        return 0.0
    return (datetime.fromisoformat(db.normalise_time(end)) - datetime.fromisoformat(db.normalise_time(start))).total_seconds()


class Pass:
    """One refresh: runs touched are held here; cell deltas add up; everything is written at the end."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.runs: dict[tuple[str, str], Run] = {}
        self.series_index: dict[tuple[str, str, str, str], list[tuple[int, str]]] = {}
        self.deltas: dict[tuple, list[float]] = defaultdict(lambda: [0.0] * len(MEASURES))
        self.versions: dict[tuple[str, str], dict[str, Any]] = {}
        self.fetched: set[tuple[str, str]] = set()  # (workstation, series) whose stored runs are in series_index

    # -- entries -------------------------------------------------------------------------------------
    def apply(self, workstation_id: str, seq: int, kind: str, item: dict[str, Any]) -> None:
        record = item.get("record")
        payload = record.get("payload") if isinstance(record, dict) else None
        if not isinstance(payload, dict):
            return
        try:
            if kind == "inference.run" and record.get("kind") == "inference":
                self._run(workstation_id, seq, item, payload)
            elif kind == "review.signoff" and record.get("kind") == "feedback":
                self._signoff(workstation_id, payload)
            elif kind == "review.reopen" and record.get("kind") == "feedback":
                self._reopen(workstation_id, payload)
        except (KeyError, TypeError, ValueError) as exc:  # a record we cannot read is left out, never fatal
            log.warning("monitoring: entry %s of workstation %s left out (%s)", seq, workstation_id, type(exc).__name__)

    def _run(self, workstation_id: str, seq: int, item: dict[str, Any], payload: dict[str, Any]) -> None:
        model = payload["model"]
        acquisition = payload.get("acquisition") or {}
        started = db.normalise_time(str(payload.get("started_utc") or item["at_utc"]))
        threshold = payload.get("threshold")
        row = {
            "workstation_id": workstation_id, "run_id": _cut(payload["run_id"], 64), "seq": seq,
            "series_uid": _cut(payload.get("series_instance_uid", ""), 128), "model": _cut(model["name"], 128),
            "version": _cut(model["version"], 64), "sha256": _cut(model.get("sha256", ""), 64),
            "device": _cut(payload.get("device", ""), 32),
            "manufacturer": _cut(acquisition.get("manufacturer") or "", 64),
            "scanner_model": _cut(acquisition.get("manufacturer_model_name") or "", 64),
            "kernel": _cut(acquisition.get("convolution_kernel") or "", 64),
            "slice_thickness": _number(acquisition.get("slice_thickness_mm")),
            "threshold": _number(threshold), "record_format": _cut(payload.get("record_format", ""), 64),
            "started_utc": started, "week": week_of(started), "signoff_id": "", "decided_utc": None, "added": 0,
        }
        findings = {}
        for finding in payload.get("findings", []):
            score = _number(finding.get("score"))
            if score is None:
                continue
            findings[_cut(finding["finding_id"], 64)] = [_cut(finding.get("label", ""), 64), score, "pending", 0]
        key = (workstation_id, row["run_id"])
        if key in self.runs:
            return  # the same run twice: counted once (against stored runs: checked in write)
        run = Run(key, row, findings, new=True)
        self.runs[key] = run
        self._index(workstation_id, row).append((seq, row["run_id"]))
        self._count(run, 1)
        version = self.versions.setdefault((row["model"], row["version"]), {})
        version.update(sha256=row["sha256"], threshold=row["threshold"],
                       score_scale=payload.get("score_scale", "") if isinstance(payload.get("score_scale"), str) else "")
        version["first"] = min(version.get("first", started), started)
        version["last_week"] = max(version.get("last_week", row["week"]), row["week"])

    def _signoff(self, workstation_id: str, payload: dict[str, Any]) -> None:
        details = payload.get("details") or {}
        finals = [f for f in details.get("findings", []) if isinstance(f, dict)]
        covered = {f.get("finding_id") for f in finals}
        run = self._run_for(workstation_id, payload, covered)
        if run is None:
            return
        self._count(run, -1)
        for finding in finals:
            state = finding.get("state")
            fid = finding.get("finding_id")
            if fid in run.findings and state in STATES:
                kept = int(state in ("accepted", "edited") and not finding.get("relabelled"))
                run.findings[fid][2:4] = [state, kept]
                run.changed_findings.add(fid)
        run.row.update(signoff_id=_cut(payload["entry_id"], 64), decided_utc=db.normalise_time(payload["at_utc"]),
                       added=sum(1 for f in finals if f.get("state") == "added"))
        run.dirty = True
        self._count(run, 1)

    def _reopen(self, workstation_id: str, payload: dict[str, Any]) -> None:
        reverts = payload.get("reverts") or ""
        run = next((r for r in self.runs.values() if r.key[0] == workstation_id and r.row["signoff_id"] == reverts), None)
        if run is None:
            found = self.conn.execute(select(monitor_runs.c.run_id).where(
                monitor_runs.c.workstation_id == workstation_id, monitor_runs.c.signoff_id == reverts)).first()
            run = self._load((workstation_id, found.run_id)) if found else None
        if run is None:
            return
        self._count(run, -1)
        for fid, values in run.findings.items():
            values[2:4] = ["pending", 0]
            run.changed_findings.add(fid)
        run.row.update(signoff_id="", decided_utc=None, added=0)
        run.dirty = True
        self._count(run, 1)

    # -- runs ----------------------------------------------------------------------------------------
    def prefetch(self, workstation_id: str, series_uids: set[str]) -> None:
        """Load the stored runs of these series at once (one query per 500 series, not one per sign-off)."""
        wanted = sorted(uid for uid in series_uids if (workstation_id, uid) not in self.fetched)
        r = monitor_runs.c
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            for s in self.conn.execute(select(r.seq, r.run_id, r.series_uid, r.model, r.version).where(
                    r.workstation_id == workstation_id, r.series_uid.in_(chunk))):
                self.series_index.setdefault((workstation_id, s.series_uid, s.model, s.version), []).append((s.seq, s.run_id))
            self.fetched.update((workstation_id, uid) for uid in chunk)
        for key in self.series_index:
            self.series_index[key].sort()

    def _index(self, workstation_id: str, row: dict[str, Any]) -> list[tuple[int, str]]:
        if (workstation_id, row["series_uid"]) not in self.fetched:
            self.prefetch(workstation_id, {row["series_uid"]})
        return self.series_index.setdefault((workstation_id, row["series_uid"], row["model"], row["version"]), [])

    def _run_for(self, workstation_id: str, payload: dict[str, Any], covered: set) -> Run | None:
        """The newest run of the series and model version whose findings the sign-off covers."""
        probe = {"series_uid": _cut(payload.get("series_instance_uid", ""), 128),
                 "model": _cut(payload.get("model_name", ""), 128), "version": _cut(payload.get("model_version", ""), 64)}
        for _seq, run_id in reversed(self._index(workstation_id, probe)):
            run = self.runs.get((workstation_id, run_id)) or self._load((workstation_id, run_id))
            if run is not None and set(run.findings) <= covered:
                return run
        return None

    def _load(self, key: tuple[str, str]) -> Run | None:
        if key in self.runs:
            return self.runs[key]
        row = self.conn.execute(select(monitor_runs).where(
            monitor_runs.c.workstation_id == key[0], monitor_runs.c.run_id == key[1])).mappings().first()
        if row is None:
            return None
        f = monitor_findings.c
        findings = {r.finding_id: [r.label, r.score, r.state, r.kept] for r in self.conn.execute(
            select(f.finding_id, f.label, f.score, f.state, f.kept).where(f.workstation_id == key[0], f.run_id == key[1]))}
        run = Run(key, dict(row), findings)
        self.runs[key] = run
        return run

    def _count(self, run: Run, sign: int) -> None:
        """Add (sign 1) or take away (-1) what `run` contributes to the cells (hot: no intermediate structures)."""
        row, deltas = run.row, self.deltas
        base = (row["model"], row["version"], row["week"])
        by_ws = deltas[("ws", *base, row["workstation_id"], "", "", "", -1)]
        by_scanner = deltas[("scanner", *base, "", row["manufacturer"], row["scanner_model"], row["kernel"], -1)]
        signed = bool(row["signoff_id"])
        for cell in (by_ws, by_scanner):
            cell[0] += sign
            if signed:
                cell[1] += sign
                cell[2] += sign * row["added"]
                cell[3] += sign * max(0.0, _seconds(row["started_utc"], row["decided_utc"]))
        for _label, score, state, kept in run.findings.values():
            index = _STATE_INDEX[state]
            for cell in (by_ws, by_scanner, deltas[("bin", *base, "", "", "", "", score_bin(score))]):
                cell[4] += sign
                cell[index] += sign
                cell[10] += sign * kept

    # -- writing -------------------------------------------------------------------------------------
    def write(self) -> None:
        conn = self.conn
        new = [r for r in self.runs.values() if r.new]
        by_workstation: dict[str, list[Run]] = defaultdict(list)
        for run in new:
            by_workstation[run.key[0]].append(run)
        for workstation_id, runs in by_workstation.items():  # a run id already stored (a hostile repeat): left out
            for start in range(0, len(runs), 500):
                ids = [r.key[1] for r in runs[start:start + 500]]
                for held in conn.execute(select(monitor_runs.c.run_id).where(
                        monitor_runs.c.workstation_id == workstation_id, monitor_runs.c.run_id.in_(ids))):
                    run = self.runs[(workstation_id, held.run_id)]
                    self._count(run, -1)
                    run.new = False
                    log.warning("monitoring: run %s of workstation %s repeated; counted once", held.run_id, workstation_id)
        new = [r for r in new if r.new]
        for start in range(0, len(new), 1000):
            batch = new[start:start + 1000]
            conn.execute(monitor_runs.insert(), [r.row for r in batch])
            findings = [{"workstation_id": r.key[0], "run_id": r.key[1], "finding_id": fid, "label": v[0],
                         "score": v[1], "state": v[2], "kept": v[3]} for r in batch for fid, v in r.findings.items()]
            if findings:
                conn.execute(monitor_findings.insert(), findings)
        changed = [r for r in self.runs.values() if r.dirty and not r.new]
        for run in changed:
            conn.execute(update(monitor_runs).where(monitor_runs.c.workstation_id == run.key[0],
                                                    monitor_runs.c.run_id == run.key[1])
                         .values(signoff_id=run.row["signoff_id"], decided_utc=run.row["decided_utc"],
                                 added=run.row["added"]))
        f = monitor_findings.c
        states = [{"w": r.key[0], "r": r.key[1], "f": fid, "s": r.findings[fid][2], "k": r.findings[fid][3]}
                  for r in changed for fid in r.changed_findings]
        if states:
            from sqlalchemy import bindparam
            conn.execute(update(monitor_findings).where(
                and_(f.workstation_id == bindparam("w"), f.run_id == bindparam("r"), f.finding_id == bindparam("f")))
                .values(state=bindparam("s"), kept=bindparam("k")), states)
        self._write_cells()
        self._write_versions()

    def _write_cells(self) -> None:
        rows = [dict(zip(CELL_KEYS, key), **dict(zip(MEASURES, values)))
                for key, values in self.deltas.items() if any(values)]
        if not rows:
            return
        insert = (pg_dialect.insert if self.conn.dialect.name == "postgresql" else sqlite_dialect.insert)(monitor_cells)
        statement = insert.on_conflict_do_update(
            index_elements=list(CELL_KEYS),
            set_={name: monitor_cells.c[name] + insert.excluded[name] for name in MEASURES})
        for start in range(0, len(rows), 1000):
            self.conn.execute(statement, rows[start:start + 1000])

    def _write_versions(self) -> None:
        v = monitor_versions.c
        for (model, version), values in self.versions.items():
            first_week = week_of(values["first"])
            held = self.conn.execute(select(v.first_utc, v.last_week).where(v.model == model, v.version == version)).first()
            fields = {"sha256": values["sha256"], "threshold": values["threshold"], "score_scale": values["score_scale"]}
            if held is None:
                self.conn.execute(monitor_versions.insert().values(model=model, version=version, first_week=first_week,
                                                                   last_week=values["last_week"], first_utc=values["first"],
                                                                   **fields))
            else:
                first = min(held.first_utc, values["first"])
                self.conn.execute(update(monitor_versions).where(v.model == model, v.version == version).values(
                    first_utc=first, first_week=week_of(first), last_week=max(held.last_week, values["last_week"]),
                    **fields))


def _cut(value: Any, size: int) -> str:
    return str(value).replace("\x00", "")[:size]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def _item(text_: str) -> dict[str, Any]:
    try:
        item = _loads(text_)
    except ValueError:  # orjson refuses integers beyond 64 bits, which the stdlib reads
        try:
            item = json.loads(text_)
        except ValueError:
            return {}
    return item if isinstance(item, dict) else {}


def _series(item: dict[str, Any]) -> str:
    payload = (item.get("record") or {}).get("payload") if isinstance(item.get("record"), dict) else None
    uid = payload.get("series_instance_uid", "") if isinstance(payload, dict) else ""
    return _cut(uid, 128) if isinstance(uid, str) else ""


def refresh(engine: Engine) -> int:
    """Read the entries that arrived since the last pass into the monitoring tables; how many were read.
    One write transaction (serialised: SQLite BEGIN IMMEDIATE, PostgreSQL an advisory lock)."""
    create_tables(engine)
    with db.read(engine) as conn:  # the common case: nothing new, no write lock taken
        done = dict(conn.execute(select(monitor_progress.c.workstation_id, monitor_progress.c.seq)).all())
        heads = conn.execute(select(db.workstations.c.id, db.workstations.c.head_seq)).all()
    if all(head == done.get(workstation_id, 0) for workstation_id, head in heads) and len(done) <= len(heads):
        return 0
    read = 0
    with db.write(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(16016)"))
        done = dict(conn.execute(select(monitor_progress.c.workstation_id, monitor_progress.c.seq)).all())
        heads = conn.execute(select(db.workstations.c.id, db.workstations.c.head_seq)).all()
        known = {workstation_id for workstation_id, _head in heads}
        if any(head < done.get(workstation_id, 0) for workstation_id, head in heads) or set(done) - known:
            # entries this pass had read are gone (the database restored from an older backup without the
            # monitoring tables, or rows removed by hand): read everything again rather than count ghosts
            log.warning("monitoring: stored entries went back behind what was read; reading them all again")
            for table in (monitor_cells, monitor_findings, monitor_runs, monitor_versions, monitor_progress):
                conn.execute(table.delete())
            done = {}
        work = Pass(conn)
        e = db.entries.c
        for workstation_id, head in heads:
            start = done.get(workstation_id, 0)
            if head <= start:
                continue
            while start < head:
                stop = min(head, start + CHUNK * 4)
                rows = conn.execute(select(e.seq, e.kind, e.item).where(
                    e.workstation_id == workstation_id, e.seq > start, e.seq <= stop, e.kind.in_(KINDS))
                    .order_by(e.seq)).all()
                items = [(row.seq, row.kind, _item(row.item)) for row in rows]
                work.prefetch(workstation_id, {_series(item) for _seq, _kind, item in items} - {""})
                for seq, kind, item in items:
                    work.apply(workstation_id, seq, kind, item)
                read += len(rows)
                start = stop
            if workstation_id in done:
                conn.execute(update(monitor_progress).where(monitor_progress.c.workstation_id == workstation_id)
                             .values(seq=head))
            else:
                conn.execute(monitor_progress.insert().values(workstation_id=workstation_id, seq=head))
        work.write()
    return read
