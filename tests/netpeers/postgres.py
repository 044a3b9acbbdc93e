"""A throw-away PostgreSQL cluster for tests (the Debian package ``postgresql``; CI installs it).

``PostgresCluster().start()`` runs ``initdb`` in a fresh directory under /tmp (as the ``postgres`` OS user
when we are root: PostgreSQL refuses to run as root), then the ``postgres`` server itself as a child
process listening on 127.0.0.1 and a free port, its unix socket in that directory, trust authentication
(loopback only, in the test's private network namespace). The server gets SIGKILL when the test process
dies (``setpriv --pdeathsig KILL``); ``stop()`` shuts it down and removes the directory.
``create_database()`` gives each test its own database and returns its ``postgresql://`` URL.

Fixtures (import them into a conftest: ``from netpeers.postgres import postgres_cluster, postgres_url``):

* ``postgres_cluster`` (session): the running cluster, one per session even when several conftests import
  the fixture; skips (with the reason) only when no PostgreSQL binaries are installed.
* ``postgres_url``: a fresh, empty database on it.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .process import LOCALHOST, PeerError, free_port

OS_USER = "postgres"


def postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and postgres, or None."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb") if Path(p).with_name("postgres").exists()]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def missing_reason() -> str | None:
    if postgres_bin_dir() is None:
        return "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            return f"running as root and there is no {OS_USER!r} OS user to run PostgreSQL as"
    return None


class PostgresCluster:
    def __init__(self, bin_dir: Path | None = None):
        self.bin_dir = bin_dir or postgres_bin_dir()
        if self.bin_dir is None:
            raise PeerError(missing_reason() or "PostgreSQL not found")
        self.directory = Path(tempfile.mkdtemp(prefix="ws-postgres-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.directory / "postgres.log"

    def _as_owner(self, argv: list[str], pdeathsig: bool = False) -> list[str]:
        setpriv = shutil.which("setpriv")
        prefix: list[str] = []
        if os.geteuid() == 0:
            if setpriv is None:
                raise PeerError("running as root needs setpriv (util-linux) to start PostgreSQL as 'postgres'")
            prefix = [setpriv, f"--reuid={OS_USER}", f"--regid={OS_USER}", "--init-groups"]
        if pdeathsig and setpriv:
            prefix = (prefix or [setpriv]) + ["--pdeathsig", "KILL"]
        return [*prefix, "--", *argv] if prefix else argv

    def start(self, timeout: float = 60) -> PostgresCluster:
        if os.geteuid() == 0:
            owner = pwd.getpwnam(OS_USER)
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C", "LANG": "C"}
        done = subprocess.run(self._as_owner([str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
                                              "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]),
                              capture_output=True, text=True, env=env, cwd=self.directory, timeout=120)
        if done.returncode != 0:
            raise PeerError(f"initdb failed ({done.returncode}): {done.stderr[-3000:]}")
        self._log = open(self.log_path, "ab")
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data), "-h", LOCALHOST, "-p", str(self.port),
                "-k", str(self.directory), "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200"]
        self.proc = subprocess.Popen(self._as_owner(argv, pdeathsig=True), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, cwd=self.directory, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise PeerError(f"postgres exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                self._execute("SELECT 1")
                return self
            except Exception as exc:  # noqa: BLE001
                if time.monotonic() > deadline:
                    self.stop()
                    raise PeerError(f"postgres not ready after {timeout:.0f} s ({exc!r}): {self.log_tail()}") from None
                time.sleep(0.1)

    def _execute(self, sql: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(host=LOCALHOST, port=self.port, user="postgres", dbname=dbname, autocommit=True,
                             connect_timeout=5) as conn:
            conn.execute(sql)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@{LOCALHOST}:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URL (postgresql://postgres@127.0.0.1:PORT/NAME)."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Fast shutdown (SIGKILL after 15 s), then the directory goes. Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)  # fast shutdown
                self.proc.wait(15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        log = getattr(self, "_log", None)
        if log is not None and not log.closed:
            log.close()
        shutil.rmtree(self.directory, ignore_errors=True)


_shared: PostgresCluster | None = None


def shared_cluster() -> PostgresCluster:
    """One cluster per test session, however many conftests import the fixture."""
    global _shared
    if _shared is None or _shared.proc is None or _shared.proc.poll() is not None:
        _shared = PostgresCluster().start()
    return _shared


@atexit.register
def _stop_shared() -> None:
    if _shared is not None:
        _shared.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    reason = missing_reason()
    if reason is not None:
        print(f"\nPostgreSQL tests skipped: {reason}")
        pytest.skip(reason)
    yield shared_cluster()
    _stop_shared()  # at session end (idempotent when several conftests use the fixture)


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """A fresh, empty database (postgresql://...) on the session's cluster."""
    return postgres_cluster.create_database()
