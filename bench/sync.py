#!/usr/bin/env python
"""Benchmark: entries synced per second to the central server, against the server's raw insert rate.

OURS      what `workstation sync --once` runs: `make_worker(config, store, backend).sync_once()` on a real
          encrypted Store (SQLCipher, PlaintextKeyring file chosen explicitly) pre-filled with --entries
          entries (audit events, inference runs and feedback entries with their records, as a reading
          session writes them): outbox -> HTTP POST /api/v1/entries in batches of --batch-size (the default
          `server.batch_size`) -> the real `workstation-server serve` process (uvicorn, FastAPI, pydantic,
          chain-checked ingest, commit) -> acknowledgement -> `mark_synced` in the encrypted store, until the
          outbox is empty. The clock runs from `sync_once()` to its return; opening the store, enrolment
          (SyncClient.enrol: token into the keyring) and starting the server are outside it.
          1 workstation, then 8 workstations (8 ids, each enrolled, each its own store) syncing at once
          from 8 PROCESSES (a persistent pool, so each client has its own GIL); the server is one process.
BASELINE  the same rows the server stores (every column of its `entries` table: canonical JSON of the wire
          item, kind, model, times...) inserted directly into a fresh database of the same kind with the
          server's own schema and engine (`workstation.server.db`: metadata, make_engine -> WAL +
          synchronous=FULL + BEGIN IMMEDIATE on SQLite), SQLAlchemy Core `insert(entries)` executemany
          in one transaction per --batch-size rows: no HTTP, no validation, no chain checks, no head update.
          1 writer, then 8 writer processes (8 workstation ids) at once.

Each run of either side gets a fresh database (and, for ours, a freshly started server and fresh copies of
the pre-filled stores). Ours and baseline are interleaved, best and median of --repeats after --warmup.
After every run of ours the server must hold exactly --entries entries per workstation (status endpoint:
count and head; database: every seq, entry_id and stored item identical to what the store sent), the sync
must report the outbox empty and nothing may be left unsynced in the store: a lost entry stops the benchmark.

SQLite: a file in a temp dir. PostgreSQL: a throw-away cluster (Debian package `postgresql`, started as the
`postgres` OS user when root) on 127.0.0.1 with PostgreSQL's default durability (fsync on; `--pg-fsync off`
for the test suite's setting); skipped with the reason when it cannot be started, or with --skip-postgres.
Servers and the cluster listen on 127.0.0.1 only and are stopped at exit (also on Ctrl+C / SIGTERM).

Each database also runs 1 and 8 workstations against `serve --workers N` (--workers, default 2; 1 skips it) and
prints the scaling beside the 1-process runs and the insert of as many writers. A workstation keeps two pushes in
flight (services/sync_push.py), so even one workstation keeps two worker processes busy.

    .venv/bin/python bench/sync.py [--entries 2000] [--repeats 3] [--batch-size 500] [--skip-postgres]
                                   [--pg-fsync on|off] [--workers 2] [--dir DIR] [--profile]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path

import _common as C

sys.path.insert(0, str(C.REPO / "tests"))  # netpeers: the central server and PostgreSQL as real processes

from workstation.core.audit import AuditEvent  # noqa: E402
from workstation.core.findings import Finding, InferenceResult, ModelRef  # noqa: E402
from workstation.core.review import Action, BoxGeometry, FeedbackEntry  # noqa: E402
from workstation.core.roles import Role, User  # noqa: E402
from workstation.core.site import ServerSettings  # noqa: E402
from workstation.store.database import Identity, Store, now_utc  # noqa: E402

WORKSTATIONS = 8
LOGIN = "rita"
STUDY = "1.2.826.0.1.3680043.8.498.10"
SERIES = "1.2.826.0.1.3680043.8.498.11"
SOPS = tuple(f"1.2.826.0.1.3680043.8.498.12.{i}" for i in range(40))
MODEL = ModelRef("nodule-detector", "1.0.0", "ab" * 32)


def workstation_ids() -> list[str]:
    return [f"ws-bench-{i:02d}" for i in range(1, WORKSTATIONS + 1)]


# ----------------------------------------------------------------- the entries (as a reading session writes them)

def _findings(i: int) -> list[Finding]:
    return [Finding(f"f{i}-{k}", ("nodule", "mass")[k % 2], round(0.5 + 0.1 * k, 3), 3 + k,
                    (10.0 + k, 10.0, 20.0 + k, 20.0), ((0.0, 0.0, 0.0), (5.0, 5.0, 2.5)), (2.5, 2.5, 1.25),
                    (2 + k, 4 + k), SOPS[(3 + k) % len(SOPS)]) for k in range(3)]


def _feedback(store: Store, i: int, action: Action) -> FeedbackEntry:
    user = store.identity.user
    sop = SOPS[i % len(SOPS)]
    before = BoxGeometry(3, (10.0, 10.0, 20.0, 20.0), sop) if action in (Action.MOVE, Action.RESIZE) else None
    after = (BoxGeometry(3, (12.0, 11.0, 22.0 + i % 5, 21.0), sop) if action in (Action.MOVE, Action.RESIZE, Action.ADD)
             else None)
    return FeedbackEntry(
        entry_id=str(uuid.uuid4()), action=action, finding_id=f"f{i}-{i % 3}", study_instance_uid=STUDY,
        series_instance_uid=SERIES, sop_instance_uid=sop, model_name=MODEL.name, model_version=MODEL.version,
        user=user.login, role=user.role.value, workstation_id=store.identity.workstation_id, at_utc=now_utc(),
        before=before, after=after, label="nodule" if action is Action.ADD else "",
        comment=f"note {i}: calcified granuloma" if action in (Action.COMMENT, Action.REJECT) else "")


CYCLE = ("study.opened", "inference.run", Action.ACCEPT, Action.REJECT, Action.MOVE, Action.COMMENT,
         "pacs.query", Action.RESIZE, Action.ACCEPT, Action.ADD)


def fill(store: Store, n: int) -> None:
    """`n` entries: per 10, a study opened, a model run (its findings as the record), 7 review actions with their
    feedback records, a PACS query; so 8 of 10 entries carry a record, like a review session."""
    for i in range(n):
        step = CYCLE[i % len(CYCLE)]
        if step == "study.opened":
            store.append(AuditEvent("study.opened", now_utc(), {"series_instance_uid": SERIES, "modality": "CT",
                                                                "instances": 120 + i, "source": "cache"}, STUDY))
        elif step == "pacs.query":
            store.append(AuditEvent("pacs.query", now_utc(), {"node": "MAIN", "level": "STUDY", "matches": i % 17,
                                                              "filters": ["PatientID", "StudyDate"]}))
        elif step == "inference.run":
            result = InferenceResult(MODEL, "cpu", STUDY, SERIES, _findings(i), None, 1.5, now_utc())
            store.record_inference(result, AuditEvent("inference.run", result.started_utc, {
                "series_instance_uid": SERIES, "model": MODEL.name, "version": MODEL.version, "findings": 3}))
        else:
            store.record_feedback(_feedback(store, i, step))


def open_store(folder: Path, workstation_id: str) -> tuple[Store, object]:
    from keyrings.alt.file import PlaintextKeyring

    backend = PlaintextKeyring()
    backend.file_path = str(folder / "keyring.cfg")
    identity = Identity(User(LOGIN, Role.REVIEWER), workstation_id)
    return Store.open(folder / "store.sqlite", identity, backend), backend


# ----------------------------------------------------------------- the worker processes

def _fill_template(state: dict, folder: str, workstation_id: str, n: int) -> dict:
    """Write the pre-filled store of one workstation once; keep the rows the server will store (baseline)."""
    from workstation.server import db
    from workstation.server.ingest import _row, canonical_item

    folder_ = Path(folder)
    folder_.mkdir(parents=True)
    start = time.perf_counter()
    store, _ = open_store(folder_, workstation_id)
    try:
        fill(store, n)
        items = store.outbox(limit=n + 1)
    finally:
        store.close()  # checkpoints the WAL into the file: the template is one file (+ the keyring)
    assert len(items) == n, f"{workstation_id}: {len(items)} entries in the outbox, expected {n}"
    received = db.now_utc()
    rows = [_row(workstation_id, item, canonical_item(item), received) for item in items]
    state["rows"] = rows
    return {"seconds": time.perf_counter() - start, "head": (items[-1].entry.seq, items[-1].entry.hash),
            "items": {row["entry_id"]: (row["seq"], row["item"]) for row in rows},
            "records": sum(1 for item in items if item.record is not None)}


def _prepare_ours(state: dict, template: str, run_folder: str, workstation_id: str, url: str, code: str,
                  batch_size: int) -> dict:
    from workstation.core.site import SiteConfig
    from workstation.services.sync import SyncClient, make_worker

    folder = Path(run_folder)
    shutil.copytree(template, folder)
    store, backend = open_store(folder, workstation_id)
    settings = ServerSettings(url=url, batch_size=batch_size)
    with SyncClient(settings, workstation_id, backend) as client:
        client.enrol(code)  # as `workstation enrol --code`: the token goes into the (file) keyring
    worker = make_worker(SiteConfig(workstation_id=workstation_id, server=settings), store, backend)
    state["job"] = ("ours", store, worker)
    return {"pending": worker.state.pending}


def _prepare_baseline(state: dict, url: str, batch_size: int) -> dict:
    from sqlalchemy import select

    from workstation.server import db

    engine = db.make_engine(url)
    with db.read(engine) as conn:  # the pool holds a live connection, as the running server's does
        conn.execute(select(1))
    state["job"] = ("baseline", engine, batch_size)
    return {"rows": len(state["rows"])}


def _go(state: dict) -> dict:
    job = state.pop("job")
    if job[0] == "ours":
        _, store, worker = job
        try:
            cpu, start = time.process_time(), time.perf_counter()
            result = worker.sync_once()
            end, cpu = time.perf_counter(), time.process_time() - cpu
            left = store.pending_count()
        finally:
            worker.client.close()
            store.close()
        error = str(result.error) if result.error else ("cancelled" if result.cancelled else "")
        return {"start": start, "end": end, "cpu": cpu, "count": result.pushed, "pending": result.pending, "left": left,
                "error": error}
    _, engine, batch_size = job
    from sqlalchemy import insert

    from workstation.server import db

    rows = state["rows"]
    try:
        cpu, start = time.process_time(), time.perf_counter()
        for first in range(0, len(rows), batch_size):
            batch = rows[first:first + batch_size]
            with db.write(engine) as conn:
                for chunk in range(0, len(batch), 200):  # as ingest() inserts: executemany of up to 200 rows
                    conn.execute(insert(db.entries), batch[chunk:chunk + 200])
        end, cpu = time.perf_counter(), time.process_time() - cpu
    finally:
        state["release"] = engine  # disposed on "release": its PostgreSQL backend is measured first
    return {"start": start, "end": end, "cpu": cpu, "count": len(rows), "error": ""}


def _release(state: dict) -> dict:
    engine = state.pop("release", None)
    if engine is not None:
        engine.dispose()
    return {}


HANDLERS = {"fill": _fill_template, "prepare_ours": _prepare_ours, "prepare_baseline": _prepare_baseline,
            "go": _go, "release": _release}


def _worker_main(conn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle; it ends us
    state: dict = {}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "quit":
            return
        try:
            reply = ("ok", HANDLERS[message[0]](state, *message[1:]))
        except BaseException as exc:  # noqa: BLE001 - sent to the parent, which stops the benchmark
            reply = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        conn.send(reply)


class Pool:
    """WORKSTATIONS persistent processes (forked before any server starts), one per workstation id."""

    def __init__(self, size: int) -> None:
        context = mp.get_context("fork")
        self.conns, self.procs = [], []
        for i in range(size):
            mine, theirs = context.Pipe()
            proc = context.Process(target=_worker_main, args=(theirs,), name=f"bench-sync-{i}", daemon=True)
            proc.start()
            theirs.close()
            self.conns.append(mine)
            self.procs.append(proc)

    def call(self, messages: dict[int, tuple]) -> dict[int, dict]:
        """Send each worker its message, then collect every reply (they work in parallel)."""
        for i, message in messages.items():
            self.conns[i].send(message)
        return {i: self._reply(i) for i in messages}

    def go(self, workers: list[int]) -> tuple[float, dict[int, dict]]:
        """Start the prepared jobs at once; seconds from the start signal to the last reply."""
        start = time.perf_counter()
        for i in workers:
            self.conns[i].send(("go",))
        replies = {i: self._reply(i) for i in workers}
        return time.perf_counter() - start, replies

    def _reply(self, i: int) -> dict:
        status, value = self.conns[i].recv()
        if status != "ok":
            raise RuntimeError(f"worker {i} failed: {value}")
        return value

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("quit",))
            except (OSError, ValueError):
                pass
        for proc in self.procs:
            proc.join(2)
            if proc.is_alive():
                proc.terminate()
                proc.join(2)


# ----------------------------------------------------------------- databases

class SqliteDatabases:
    kind = "SQLite"

    postmaster = None  # SQLite runs inside the server / writer processes

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def describe(self) -> str:
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL), files in {self.folder}"

    def fresh(self, tag: str) -> str:
        self.count += 1
        return f"sqlite:///{self.folder / f'{tag}-{self.count}.sqlite'}"

    def drop(self, url: str) -> None:
        path = url.removeprefix("sqlite:///")
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)

    def stop(self) -> None:
        pass


class PostgresDatabases:
    kind = "PostgreSQL"

    def __init__(self, fsync: bool) -> None:
        from netpeers.postgres import PostgresCluster

        self.fsync = fsync
        self.cluster = PostgresCluster()
        try:
            _start_cluster(self.cluster, fsync)
        except BaseException:
            self.cluster.stop()  # also removes its directory
            raise
        self.postmaster = self.cluster.proc.pid  # setpriv execs postgres: this is the postmaster
        self.count = 0

    def describe(self) -> str:
        import psycopg

        with psycopg.connect(self.cluster.url(), autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            fsync = conn.execute("SHOW fsync").fetchone()[0]
            commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
        return (f"PostgreSQL {version} (fsync={fsync}, synchronous_commit={commit}) on 127.0.0.1:{self.cluster.port},"
                f" data in {self.cluster.directory}")

    def fresh(self, tag: str) -> str:
        self.count += 1
        return self.cluster.create_database(f"bench_{tag.replace('-', '_')}_{self.count}")

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.cluster._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        self.cluster.stop()


def _start_cluster(cluster, fsync: bool, timeout: float = 60):
    """PostgresCluster.start (tests/netpeers/postgres.py: initdb and postgres as the `postgres` OS user, 127.0.0.1,
    a private unix socket directory, trust on loopback) with PostgreSQL's default durability unless fsync=False
    (the test suite's fsync=off, full_page_writes=off)."""
    import pwd
    import subprocess

    from netpeers.postgres import OS_USER, PeerError
    from netpeers.process import LOCALHOST

    if os.geteuid() == 0:
        owner = pwd.getpwnam(OS_USER)
        os.chown(cluster.directory, owner.pw_uid, owner.pw_gid)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C", "LANG": "C"}
    done = subprocess.run(cluster._as_owner([str(cluster.bin_dir / "initdb"), "-D", str(cluster.data), "-U", "postgres",
                                             "--auth=trust", "-E", "UTF8", "--no-instructions"]),
                          capture_output=True, text=True, env=env, cwd=cluster.directory, timeout=120)
    if done.returncode != 0:
        raise PeerError(f"initdb failed ({done.returncode}): {done.stderr[-3000:]}")
    cluster._log = open(cluster.log_path, "ab")
    settings = ["max_connections=200"] + ([] if fsync else ["fsync=off", "full_page_writes=off"])
    argv = [str(cluster.bin_dir / "postgres"), "-D", str(cluster.data), "-h", LOCALHOST, "-p", str(cluster.port),
            "-k", str(cluster.directory), *[part for s in settings for part in ("-c", s)]]
    cluster.proc = subprocess.Popen(cluster._as_owner(argv, pdeathsig=True), stdin=subprocess.DEVNULL,
                                    stdout=cluster._log, stderr=subprocess.STDOUT, env=env, cwd=cluster.directory,
                                    start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        if cluster.proc.poll() is not None:
            raise PeerError(f"postgres exited with {cluster.proc.returncode}: {cluster.log_tail()}")
        try:
            cluster._execute("SELECT 1")
            return cluster
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            if time.monotonic() > deadline:
                cluster.stop()
                raise PeerError(f"postgres not ready after {timeout:.0f} s ({exc!r}): {cluster.log_tail()}") from None
            time.sleep(0.1)


# ----------------------------------------------------------------- the benchmark

def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system, all threads) used so far by these processes; 0 for one that is gone."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


def children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return found


class Bench:
    def __init__(self, pool: Pool, folder: Path, entries: int, batch_size: int, templates: dict[str, dict]) -> None:
        self.pool, self.folder, self.entries, self.batch_size = pool, folder, entries, batch_size
        self.templates = templates
        self.ids = workstation_ids()
        self.runs = 0
        self.cpu: dict[tuple[str, str], list[dict[str, float]]] = {}  # (database, case) -> CPU s per run

    def _database_cpu(self, dbs) -> tuple[list[int], float]:
        """PostgreSQL: the postmaster's children (backends, WAL writer, checkpointer...); SQLite: in-process."""
        pids = children(dbs.postmaster) if getattr(dbs, "postmaster", None) else []
        return pids, process_cpu(pids)

    def ours(self, dbs, k: int, workers: int = 1) -> C.Timed:
        from netpeers.central import CentralServer

        from workstation.server import auth, db

        self.runs += 1
        ids = self.ids[:k]
        url = dbs.fresh("ours")
        engine = db.make_engine(url)
        try:  # the operator's steps (as `workstation-server issue-token / issue-code` do them), before the server
            db.create_schema(engine)
            with db.write(engine) as conn:
                admin = auth.issue_token(conn, "admin", "bench-admin")
                codes = {ws: auth.issue_code(conn, ws, 1.0)[0] for ws in ids}
        finally:
            engine.dispose()
        run = self.folder / f"run-{self.runs}"
        server = CentralServer(run / "server", url, serve_args=("--workers", str(workers))).start()
        try:
            ready = self.pool.call({i: ("prepare_ours", str(self.templates[ws]["folder"]), str(run / ws), ws, server.url,
                                        codes[ws], self.batch_size) for i, ws in enumerate(ids)})
            for i, ws in enumerate(ids):
                assert ready[i]["pending"] == self.entries, f"{ws}: {ready[i]['pending']} pending before the sync"
            db_pids, db_cpu = self._database_cpu(dbs)
            server_pids = [server.proc.pid, *children(server.proc.pid)]  # --workers N: the worker processes
            server_cpu = process_cpu(server_pids)
            elapsed, replies = self.pool.go(list(range(k)))
            server_cpu = process_cpu(server_pids) - server_cpu
            db_cpu = process_cpu(sorted(set(db_pids) | set(self._database_cpu(dbs)[0]))) - db_cpu
            for i, ws in enumerate(ids):
                r = replies[i]
                if r["error"] or r["count"] != self.entries or r["pending"] or r["left"]:
                    raise RuntimeError(f"sync of {ws} incomplete: {r['count']} of {self.entries} acknowledged, "
                                       f"{r['left']} left in the outbox, error {r['error']!r}\n{server.log_tail()}")
            self._verify(server, url, ids, admin)
        finally:
            server.stop()
            dbs.drop(url)
        shutil.rmtree(run, ignore_errors=True)
        self.cpu.setdefault((dbs.kind, f"ours {k}" + (f" workers {workers}" if workers > 1 else "")), []).append(
            {"clients": sum(r["cpu"] for r in replies.values()), "server": server_cpu, "database": db_cpu,
             "wall": elapsed})
        return C.Timed(k * self.entries, elapsed)

    def _verify(self, server, url: str, ids: list[str], admin: str) -> None:
        """The server holds exactly what each store sent: status (count, head, no incidents) and every stored row."""
        from sqlalchemy import select

        from workstation.server import db

        with server.client(admin) as http:
            for ws in ids:
                response = http.get(f"/api/v1/workstations/{ws}/status")
                response.raise_for_status()
                status = response.json()
                head = self.templates[ws]["head"]
                if (status["entries"] != self.entries or (status["head"]["seq"], status["head"]["hash"]) != head
                        or status["incidents"]):
                    raise RuntimeError(f"the server's status of {ws} is wrong: {status['entries']} entries "
                                       f"(expected {self.entries}), head {status['head']} (expected {head}), "
                                       f"incidents {status['incidents']}")
        engine = db.make_engine(url)
        try:
            with db.read(engine) as conn:
                rows = conn.execute(select(db.entries.c.workstation_id, db.entries.c.seq, db.entries.c.entry_id,
                                           db.entries.c.item)).all()
        finally:
            engine.dispose()
        held: dict[str, dict[str, tuple[int, str]]] = {ws: {} for ws in ids}
        for row in rows:
            held.setdefault(row.workstation_id, {})[row.entry_id] = (row.seq, row.item)
        for ws in ids:
            if held[ws] != self.templates[ws]["items"]:
                expected = self.templates[ws]["items"]
                missing = len(set(expected) - set(held[ws]))
                differ = sum(1 for k, v in held[ws].items() if expected.get(k) not in (None, v))
                raise RuntimeError(f"the server holds {len(held[ws])} entries of {ws} (expected {len(expected)}): "
                                   f"{missing} missing, {differ} different")
        if len(rows) != len(ids) * self.entries:
            raise RuntimeError(f"the server holds {len(rows)} entries, expected {len(ids) * self.entries}")

    def baseline(self, dbs, k: int) -> C.Timed:
        from sqlalchemy import func, select

        from workstation.server import auth, db

        ids = self.ids[:k]
        url = dbs.fresh("baseline")
        engine = db.make_engine(url)
        try:
            db.create_schema(engine)
            with db.write(engine) as conn:  # the rows' foreign key
                for ws in ids:
                    auth.ensure_workstation(conn, ws)
            self.pool.call({i: ("prepare_baseline", url, self.batch_size) for i in range(k)})
            db_pids, db_cpu = self._database_cpu(dbs)
            try:
                elapsed, replies = self.pool.go(list(range(k)))
                db_cpu = process_cpu(sorted(set(db_pids) | set(self._database_cpu(dbs)[0]))) - db_cpu
            finally:
                self.pool.call({i: ("release",) for i in range(k)})
            with db.read(engine) as conn:
                counts = dict(conn.execute(select(db.entries.c.workstation_id, func.count())
                                           .group_by(db.entries.c.workstation_id)).all())
            if counts != {ws: self.entries for ws in ids}:
                raise RuntimeError(f"baseline inserted {counts}, expected {self.entries} per workstation")
        finally:
            engine.dispose()
            dbs.drop(url)
        self.cpu.setdefault((dbs.kind, f"baseline {k}"), []).append(
            {"clients": sum(r["cpu"] for r in replies.values()), "server": 0.0, "database": db_cpu, "wall": elapsed})
        return C.Timed(k * self.entries, elapsed)


def environment() -> str:
    import fastapi
    import httpx
    import psycopg
    import pydantic
    import sqlalchemy
    import uvicorn
    from sqlcipher3 import dbapi2 as sqlcipher

    probe = sqlcipher.connect(":memory:")
    cipher = probe.execute("PRAGMA cipher_version").fetchone()
    probe.close()
    return (f"python {platform.python_version()}, FastAPI {fastapi.__version__}, uvicorn {uvicorn.__version__}, "
            f"pydantic {pydantic.__version__}, SQLAlchemy {sqlalchemy.__version__}, psycopg {psycopg.__version__}, "
            f"httpx {httpx.__version__}, SQLCipher {cipher[0] if cipher else '?'}; {os.cpu_count()} CPUs")


def report(kind: str, timings: dict[str, C.Timings], cpu: dict, entries: int, batch_size: int) -> bool:
    rows, met = [], True
    for k in (1, WORKSTATIONS):
        ours, base = timings[f"ours {k}"], timings[f"baseline {k}"]
        total = k * entries
        ratio_best, ratio_median = base.best / ours.best, base.median / ours.median
        met = met and ratio_best >= 0.5
        label = "1 workstation" if k == 1 else f"{k} workstations"
        rows.append([label, f"{total}", f"{total / ours.best:.0f}", f"{total / ours.median:.0f}",
                     f"{total / base.best:.0f}", f"{total / base.median:.0f}", f"{ratio_best:.2f}", f"{ratio_median:.2f}"])
    print(f"{kind}: entries per second (ours: sync_once -> HTTP -> server process -> mark_synced; baseline: "
          f"SQLAlchemy Core insert of the same rows, {batch_size} per transaction)")
    print(C.table(["workstations", "entries", "ours best", "ours median", "baseline best", "baseline median",
                   "ratio best", "ratio median"], rows))
    print(f"ratio ours/baseline (entries/s) target >= 0.5: {'met' if met else 'NOT met'}")
    rows = []
    for case in ("ours 1", "baseline 1", f"ours {WORKSTATIONS}", f"baseline {WORKSTATIONS}"):
        runs = cpu[(kind, case)]
        total = int(case.split()[1]) * entries
        med = {key: statistics.median(r[key] for r in runs) * 1e6 / total for key in runs[0]}
        busy = med["clients"] + med["server"] + med["database"]
        rows.append([case, f"{med['wall']:.0f}", f"{med['clients']:.0f}", f"{med['server']:.0f}" if case[0] == "o" else "-",
                     f"{med['database']:.0f}" if kind != "SQLite" else "(in-process)", f"{busy:.0f}",
                     f"{busy / med['wall'] / (os.cpu_count() or 1) * 100:.0f}%"])
    print(f"{kind}: microseconds per entry, median of the runs (CPU = user + system time of the processes)")
    print(C.table(["case", "wall", "CPU clients / writers", "CPU server", "CPU database", "CPU total",
                   "CPUs busy"], rows))
    return met


def report_workers(kind: str, timings: dict[str, C.Timings], cpu: dict, entries: int, workers: int) -> None:
    """1 and 8 workstations against 1 and N API worker processes, beside the bare insert of as many writers. One
    workstation keeps two pushes in flight (services/sync_push.py): with N workers both are worked on at once."""
    rows, scaling = [], []
    for k in (1, WORKSTATIONS):
        total = k * entries
        base = timings[f"baseline {k}"]
        for n, case in ((1, f"ours {k}"), (workers, f"ours {k} workers {workers}")):
            ours = timings[case]
            runs = cpu[(kind, case)]
            server = statistics.median(r["server"] for r in runs) * 1e6 / total
            rows.append([f"{k}", f"{n}", f"{total / ours.best:.0f}", f"{total / ours.median:.0f}",
                         f"{total / base.best:.0f}", f"{base.best / ours.best:.2f}", f"{base.median / ours.median:.2f}",
                         f"{server:.0f}"])
        first, last = timings[f"ours {k}"], timings[f"ours {k} workers {workers}"]
        scaling.append(f"{k} workstation{'s' if k > 1 else ''} {first.best / last.best:.2f}x (best), "
                       f"{first.median / last.median:.2f}x (median)")
    print(f"{kind}: against `workstation-server serve --workers N` (every entry verified before it is acknowledged)")
    print(C.table(["workstations", "API workers", "ours best", "ours median", "baseline best (as many writers)",
                   "ratio best", "ratio median", "server CPU us/entry"], rows))
    print(f"scaling {workers} workers / 1 worker on {os.cpu_count()} CPUs: {'; '.join(scaling)}")


STAGES = (
    ("client", "outbox_batch: SELECT straight into wire JSON (store.outbox)"),
    ("client", "the request body (OutboxBatch.body)"),
    ("client", "  not run: items parsed and encoded again (store.outbox + SyncClient.encode)"),
    ("server", "decode + check the body in one pass (PushRequest.decoded: msgspec, canonical JSON)"),
    ("server", "  not run by a valid push: the exact path (json.loads + PushRequest: wire.check_items)"),
    ("server", "each item's own problem (hash, record digest: PushRequest.own_problems)"),
    ("server", "ingest: continuation_problem (chain)"),
    ("server", "ingest: the rest (lock head, held ids, rows, insert, update, commit)"),
    ("client", "mark_batch_synced + pending_count"),
    ("baseline", "insert + commit of the same rows"),
)


def stage_breakdown(template: Path, workstation_id: str, entries: int, batch_size: int, folder: Path,
                    passes: int = 3) -> None:
    """The client's and the server's steps of a sync, run one after the other in this process (no HTTP) on a copy
    of a pre-filled store and a fresh SQLite server database; microseconds per entry, best of `passes` per step."""
    best: dict[str, float] = {}
    for n in range(passes):
        spent = _stage_pass(template, workstation_id, batch_size, folder / f"stages-{n}")
        best = {name: min(best.get(name, spent[name]), spent[name]) for name in spent}
    sides = {side: sum(best[name] for s, name in STAGES if s == side and not name.startswith(" ")) for side, _ in STAGES}
    rows = [[f"{side}: {name}", f"{best[name] * 1e6 / entries:.0f}"] for side, name in STAGES]
    rows += [[f"sum {side}", f"{total * 1e6 / entries:.0f}"] for side, total in sides.items()]
    print(C.table([f"step (batches of {batch_size}, in the order a sync runs them; best of {passes})", "us per entry"],
                  rows))


def _stage_pass(template: Path, workstation_id: str, batch_size: int, work: Path) -> dict[str, float]:
    import json as json_

    from sqlalchemy import insert

    from workstation.core.audit import GENESIS
    from workstation.core.sync import continuation_problem
    from workstation.server import auth, db
    from workstation.server.ingest import _row, ingest
    from workstation.server.models import PushRequest
    from workstation.services.sync import SyncClient

    shutil.copytree(template, work / "store")
    store, _ = open_store(work / "store", workstation_id)
    client = SyncClient(ServerSettings(url="http://127.0.0.1:9"), workstation_id, token="unused")
    engines = []
    for name in ("server", "baseline"):
        engine = db.make_engine(f"sqlite:///{work / name}.sqlite")
        db.create_schema(engine)
        with db.write(engine) as conn:
            auth.ensure_workstation(conn, workstation_id)
        engines.append(engine)
    server_engine, baseline_engine = engines
    spent = {name: 0.0 for _, name in STAGES}

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        spent[name] += time.perf_counter() - start
        return out

    head = (0, GENESIS)
    try:
        while True:
            batch = timed(STAGES[0][1], lambda: store.outbox_batch(head[0], batch_size))
            if batch is None:
                break
            body = timed(STAGES[1][1], lambda: batch.body(workstation_id))
            timed(STAGES[2][1], lambda: client.encode(store.outbox(batch_size)))
            request = timed(STAGES[3][1], lambda: PushRequest.decoded(body))
            exact = timed(STAGES[4][1], lambda: PushRequest.model_validate(json_.loads(body)))
            assert request is not None and request.checked == exact.checked
            own = timed(STAGES[5][1], request.own_problems)
            sync_items, texts = [i for i, _ in request.checked], [t for _, t in request.checked]
            before = spent[STAGES[6][1]]

            def check():
                seq, hash_ = head
                for item, problem in zip(sync_items, own):
                    assert continuation_problem(seq, hash_, item, problem) is None
                    seq, hash_ = item.entry.seq, item.entry.hash
            timed(STAGES[6][1], check)
            checks = spent[STAGES[6][1]] - before

            def server_ingest():  # runs the chain checks again: the rest of its time is rows and SQL
                with db.write(server_engine) as conn:
                    return ingest(conn, workstation_id, sync_items, db.now_utc(), texts, own)
            outcome = timed(STAGES[7][1], server_ingest)
            spent[STAGES[7][1]] -= checks
            head = (outcome.head_seq, outcome.head_hash)
            timed(STAGES[8][1], lambda: (store.mark_batch_synced(batch), store.pending_count()))
            rows = [_row(workstation_id, i, t, db.now_utc()) for i, t in zip(sync_items, texts)]

            def baseline():
                with db.write(baseline_engine) as conn:
                    conn.execute(insert(db.entries), rows)
            timed(STAGES[9][1], baseline)
    finally:
        store.close()
        client.close()
        for engine in engines:
            engine.dispose()
    assert store is not None and head[0] > 0
    shutil.rmtree(work, ignore_errors=True)
    return spent


def _on_sigterm(signum, frame):  # noqa: ANN001 - signal handler
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=2000, help="entries per workstation (default 2000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=ServerSettings.batch_size,
                        help="entries per push and per baseline transaction (default: server.batch_size's default, "
                             "%(default)s)")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--pg-fsync", choices=("on", "off"), default="on",
                        help="PostgreSQL fsync (default on, as in production; the test suite runs with off)")
    parser.add_argument("--dir", type=Path, default=None, help="where stores and databases go (default: a temp dir)")
    parser.add_argument("--workers", type=int, default=2,
                        help="also run 1 and 8 workstations against `serve --workers N` (default 2; 1: skip)")
    parser.add_argument("--profile", action="store_true",
                        help="also time each step of a sync in one process (client and server code, no HTTP)")
    args = parser.parse_args()
    from workstation.core.sync import MAX_BATCH

    if not 1 <= args.batch_size <= MAX_BATCH:
        parser.error(f"--batch-size must be from 1 to {MAX_BATCH}")

    pool = Pool(WORKSTATIONS)  # forked first: no server, connection or thread exists yet
    signal.signal(signal.SIGTERM, _on_sigterm)
    tmp = None
    if args.dir is None:
        tmp = tempfile.mkdtemp(prefix="ws-bench-sync-")
        folder = Path(tmp)
    else:
        folder = args.dir.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        if any(folder.iterdir()):
            parser.error(f"--dir {folder} is not empty")
    postgres = None
    ok = True  # False when interrupted; a failed check raises
    try:
        print(f"sync: {environment()}")
        print(f"{args.entries} entries per workstation, batches of {args.batch_size}; best and median of "
              f"{args.repeats} after {args.warmup} warm-up, ours and baseline interleaved; a fresh database per run")
        start = time.perf_counter()
        ids = workstation_ids()
        filled = pool.call({i: ("fill", str(folder / "templates" / ws), ws, args.entries) for i, ws in enumerate(ids)})
        templates = {ws: {**filled[i], "folder": folder / "templates" / ws} for i, ws in enumerate(ids)}
        sample = templates[ids[0]]
        size = (folder / "templates" / ids[0] / "store.sqlite").stat().st_size
        item_bytes = sum(len(text) for _, text in sample["items"].values()) / args.entries
        print(f"{WORKSTATIONS} encrypted stores filled in {time.perf_counter() - start:.1f} s (in parallel; each "
              f"{size / 1e6:.1f} MB, {sample['records']} of {args.entries} entries with a feedback/inference record, "
              f"{item_bytes:.0f} bytes of canonical JSON per item)")

        databases: list = [SqliteDatabases(folder / "sqlite")]
        (folder / "sqlite").mkdir()
        if args.skip_postgres:
            print("PostgreSQL: skipped (--skip-postgres)")
        else:
            from netpeers.postgres import missing_reason

            reason = missing_reason()
            if reason is None:
                try:
                    postgres = PostgresDatabases(fsync=args.pg_fsync == "on")
                    databases.append(postgres)
                except Exception as exc:  # noqa: BLE001 - reported, SQLite still runs
                    reason = f"the cluster did not start: {exc}"
            if reason is not None:
                print(f"PostgreSQL: skipped ({reason})")

        bench = Bench(pool, folder, args.entries, args.batch_size, templates)
        for dbs in databases:
            print()
            print(dbs.describe())
            cases = {"ours 1": lambda d=dbs: bench.ours(d, 1), "baseline 1": lambda d=dbs: bench.baseline(d, 1),
                     f"ours {WORKSTATIONS}": lambda d=dbs: bench.ours(d, WORKSTATIONS),
                     f"baseline {WORKSTATIONS}": lambda d=dbs: bench.baseline(d, WORKSTATIONS)}
            scaling = args.workers > 1
            if scaling:
                for k in (1, WORKSTATIONS):
                    cases[f"ours {k} workers {args.workers}"] = lambda d=dbs, k=k: bench.ours(d, k, args.workers)
            started = time.perf_counter()
            timings, _ = C.interleaved(cases, args.repeats, args.warmup)
            report(dbs.kind, timings, bench.cpu, args.entries, args.batch_size)
            if scaling:
                report_workers(dbs.kind, timings, bench.cpu, args.entries, args.workers)
            print(f"({time.perf_counter() - started:.0f} s for {dbs.kind}; every run of ours verified: "
                  f"{args.entries} entries per workstation on the server, identical, outbox empty)")
        if args.profile:
            print(f"\nThe steps of one sync of {args.entries} entries, one after the other in this process (the "
                  "server's code on a fresh SQLite file, no HTTP):")
            stage_breakdown(templates[ids[0]]["folder"], ids[0], args.entries, args.batch_size, folder)
        print(f"\ntotal {time.perf_counter() - start:.0f} s")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping servers and workers", file=sys.stderr)
        ok = False
    finally:
        pool.close()
        if postgres is not None:
            postgres.stop()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
