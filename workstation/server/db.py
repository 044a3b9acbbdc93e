"""The server's tables (SQLAlchemy Core) and its engine: SQLite by default, PostgreSQL (psycopg 3) when asked.

SQLite runs in WAL mode with synchronous=FULL and a busy timeout; write transactions start with
BEGIN IMMEDIATE (so two pushes never interleave). PostgreSQL write transactions lock the workstation's
row FOR UPDATE instead (see ingest.py). Times are ISO 8601 strings in UTC with microseconds, so they
compare as text.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (BigInteger, Column, Connection, Engine, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, create_engine, event, select, update)
from sqlalchemy.engine import make_url

try:  # POSIX: the processes of `serve --workers N` take turns on an flock
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

SCHEMA_VERSION = 2
DEFAULT_DATABASE = "sqlite:///./workstation-server.sqlite"

metadata = MetaData()

schema_meta = Table(
    "schema_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

workstations = Table(
    "workstations", metadata,
    Column("id", String(128), primary_key=True),
    Column("token_hash", String(64), unique=True),  # NULL: not enrolled, or revoked
    Column("enrolled_utc", String(40)),
    Column("revoked_utc", String(40)),
    Column("head_seq", BigInteger, nullable=False, default=0),
    Column("head_hash", String(64), nullable=False),
    Column("entries", BigInteger, nullable=False, default=0),
    Column("last_push_utc", String(40)),
    Column("last_used_utc", String(40)),  # v2: its token, as for principals
)

enrolment_codes = Table(
    "enrolment_codes", metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("workstation_id", String(128), ForeignKey("workstations.id"), nullable=False, index=True),
    Column("issued_utc", String(40), nullable=False),
    Column("expires_utc", String(40), nullable=False),
    Column("used_utc", String(40)),  # also set when the workstation is revoked (unused codes die with it)
)

principals = Table(  # qa and admin tokens
    "principals", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_utc", String(40), nullable=False),
    Column("revoked_utc", String(40)),
    Column("last_used_utc", String(40)),  # v2; updated at most once a minute (auth.identify)
)

entries = Table(
    "entries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workstation_id", String(128), ForeignKey("workstations.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("entry_id", String(64), nullable=False),
    Column("kind", String(64), nullable=False, index=True),
    Column("model", String(128), nullable=False, default="", index=True),
    Column("model_version", String(64), nullable=False, default=""),
    Column("at_utc", String(40), nullable=False, index=True),
    Column("received_utc", String(40), nullable=False),
    Column("item", Text, nullable=False),  # canonical JSON of the wire item
    UniqueConstraint("workstation_id", "seq", name="uq_entries_workstation_seq"),
    UniqueConstraint("workstation_id", "entry_id", name="uq_entries_workstation_entry"),
)
Index("ix_entries_model_version", entries.c.model, entries.c.model_version)

incidents = Table(
    "incidents", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workstation_id", String(128), nullable=False, index=True),
    Column("at_utc", String(40), nullable=False),  # first seen
    Column("kind", String(32), nullable=False),  # gap, broken-link, altered, conflict, forbidden
    Column("seq", BigInteger),
    Column("entry_id", String(64)),
    Column("message", Text, nullable=False),
    Column("occurrences", Integer, nullable=False, default=1, server_default="1"),  # v2: repeats folded in
    Column("last_utc", String(40)),  # v2: last seen (NULL: seen once)
)

# Schema changes of an existing database, by the version they lead to (a new database gets the tables as
# declared above and the current version). Append; never change a step that has shipped.
MIGRATIONS: dict[int, list[str]] = {
    2: ["ALTER TABLE principals ADD COLUMN last_used_utc VARCHAR(40)",
        "ALTER TABLE workstations ADD COLUMN last_used_utc VARCHAR(40)",
        "ALTER TABLE incidents ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE incidents ADD COLUMN last_utc VARCHAR(40)"],
}


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def normalise_time(value: str) -> str:
    """ISO 8601 -> UTC with microseconds (naive means UTC); ValueError when it is not a time."""
    moment = datetime.fromisoformat(value)
    if len(value) == 29 and value[10] == "T" and value[19] == "." and value.endswith("+00:00") and value.isascii():
        return value[:23] + "000+00:00"  # a workstation's own form (milliseconds, UTC): the same text, sooner
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def engine_url(database_url: str) -> str:
    """postgresql:// (and postgres://) use psycopg 3; sqlite:// stays; anything else is refused."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        if url.drivername != "sqlite" or url.database in (None, "", ":memory:"):
            raise ValueError("SQLite needs a file: sqlite:///path/to/server.sqlite")
        return database_url
    raise ValueError(f"unsupported database {backend!r}: use sqlite:///FILE or postgresql://...")


def private_file(path: Path) -> None:
    """Create `path` (mode 0600) and its missing folders (0700) unless it exists: the server's SQLite file holds
    every workstation's audit trail; SQLite gives its -wal and -shm files the same mode."""
    if path.exists():
        return
    missing = [p for p in path.parents if not p.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass


def loose_mode(path: Path) -> str | None:
    """A warning when the database file can be read by others than its owner (made before v2, or by hand)."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    return f"{path} has mode {mode:04o}: others can read it; chmod 600 it" if mode & 0o077 else None


def sqlite_path(database_url: str) -> Path | None:
    url = make_url(database_url)
    return Path(url.database).resolve() if url.get_backend_name() == "sqlite" and url.database else None


_WRITE_TURNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # a SQLite engine's writers' turn (write())


def make_engine(database_url: str) -> Engine:
    url = engine_url(database_url)
    if url.startswith("sqlite"):
        private_file(sqlite_path(url))
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

        _WRITE_TURNS[engine] = _WriteTurn(sqlite_path(url))
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed when the block ends, rolled back when it raises.

    On SQLite the writers take their turn (_WriteTurn) before BEGIN IMMEDIATE: SQLite's own wait for its write
    lock sleeps 1, 2, 5 ... 100 ms between tries, so with several pushes at once the lock often sat free while a
    waiter slept; the turn is handed over at once."""
    turn = _WRITE_TURNS.get(engine) if engine.dialect.name == "sqlite" else None
    with turn if turn is not None else nullcontext():
        with engine.connect().execution_options(write=True) as conn:
            with conn.begin():
                yield conn


class _WriteTurn:
    """The turn of a SQLite database's writers: a lock for the threads of this process, then an flock on a file
    beside the database for the processes (`serve --workers N`), which the kernel hands to the next waiter at
    once. Where flock is missing (Windows), the thread lock alone."""

    def __init__(self, database: Path) -> None:
        self._threads = threading.RLock()
        self._path = database.with_name(database.name + ".write-turn")
        self._fd: int | None = None
        self._depth = 0

    def __enter__(self) -> None:
        self._threads.acquire()
        self._depth += 1
        if self._depth == 1 and fcntl is not None:
            try:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError:  # a read-only folder, say: SQLite's own wait still orders the processes
                pass

    def __exit__(self, *exc) -> None:
        try:
            if self._depth == 1 and fcntl is not None and self._fd is not None:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                except OSError:
                    pass
        finally:
            self._depth -= 1
            self._threads.release()


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        with conn.begin():
            yield conn


def create_schema(engine: Engine) -> None:
    """Create missing tables and the schema version row; refuse a database of a newer server."""
    metadata.create_all(engine)
    with write(engine) as conn:
        row = conn.execute(select(schema_meta.c.value).where(schema_meta.c.key == "schema_version")).first()
        if row is None:
            conn.execute(schema_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        elif int(row[0]) > SCHEMA_VERSION:
            raise RuntimeError(f"the database has schema version {row[0]}; this server knows up to {SCHEMA_VERSION}")
        elif int(row[0]) < SCHEMA_VERSION:
            if conn.dialect.name == "postgresql":  # one server process migrates; the others wait for it here
                conn.exec_driver_sql("LOCK TABLE schema_meta IN EXCLUSIVE MODE")
                row = conn.execute(select(schema_meta.c.value).where(schema_meta.c.key == "schema_version")).first()
            for version in range(int(row[0]) + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS.get(version, []):
                    conn.exec_driver_sql(statement)
            conn.execute(update(schema_meta).where(schema_meta.c.key == "schema_version")
                         .values(value=str(SCHEMA_VERSION)))


def dialect(engine: Engine) -> str:
    return "postgresql" if engine.dialect.name == "postgresql" else engine.dialect.name
