"""The central sync server (``workstation-server``) as a real process for tests.

``CentralServer(workdir)`` runs ``python -m workstation.server.cli serve`` on 127.0.0.1 and a free port,
with a SQLite file in ``workdir`` unless another database URL is given (e.g. a PostgreSQL one from
``netpeers.postgres``). Admin work (enrolment codes, qa/admin tokens, revocation) goes through the same CLI
against the same database, exactly as an operator would do it. The process is in its own process group
and gets SIGKILL when the test process dies (``setpriv --pdeathsig KILL``); fixtures stop it at teardown.

Fixtures (import them into a conftest: ``from netpeers.central import central, central_factory``):

* ``central_factory(database_url=None, *, certs=None, start=True) -> CentralServer`` (stopped at teardown)
* ``central``: one started server on SQLite.

Interface kept stable for the sync client's tests: ``url``, ``database_url``, ``start()``, ``kill()``,
``stop()``, ``restart()``, ``issue_code()``, ``issue_token()``, ``revoke()``, ``entries()``, ``status()``;
plus ``enrol()``, ``client()``, ``verify`` (httpx ``verify=`` value) and ``ca_file`` for TLS.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .certs import TlsCerts
from .process import LOCALHOST, PeerError, PeerProcess, _running, free_port, peer_env

API = "/api/v1"


class CentralServer(PeerProcess):
    """The central server process; see the module docstring."""

    name = "central"
    graceful_stop = True

    def __init__(self, workdir: Path, database_url: str | None = None, *, certs: TlsCerts | None = None,
                 port: int | None = None, serve_args: tuple[str, ...] = ()):
        super().__init__(workdir)
        self.serve_args = tuple(serve_args)  # more `serve` options, e.g. ("--workers", "2")
        self.database_url = database_url or f"sqlite:///{self.workdir / 'central.sqlite'}"
        self.port = port or free_port()
        self.certs = certs
        self.url = f"{'https' if certs else 'http'}://{LOCALHOST}:{self.port}"
        self._qa_token: str | None = None
        self._admin_token: str | None = None
        self._context: ssl.SSLContext | None = None
        self._tokens = 0

    # -- TLS ---------------------------------------------------------------------------------------
    @property
    def ca_file(self) -> Path | None:
        """The CA that signed the server certificate (None without TLS)."""
        return self.certs.ca_cert if self.certs else None

    @property
    def verify(self) -> ssl.SSLContext:
        """What to pass as httpx's ``verify=``: a context trusting the test CA under TLS (made once: loading
        CA files for each client costs tens of milliseconds)."""
        if self._context is None:
            self._context = ssl.create_default_context(cafile=str(self.certs.ca_cert) if self.certs else None)
        return self._context

    # -- lifecycle -------------------------------------------------------------------------------
    def _spawn(self, argv: list[str], cwd: Path | None = None) -> None:
        # binds 127.0.0.1 only, so unlike the DICOM peers it needs no private network namespace
        setpriv = shutil.which("setpriv")
        if setpriv:
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
        self._out = open(self.output_path, "ab")
        self.proc = subprocess.Popen(argv, cwd=cwd or self.workdir, env=peer_env(), stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)
        _running.add(self)

    def start(self, timeout: float = 30) -> CentralServer:
        if self.running:
            return self
        argv = [sys.executable, "-m", "workstation.server.cli", "serve", "--database", self.database_url,
                "--host", LOCALHOST, "--port", str(self.port)]
        if self.certs:
            argv += ["--tls-cert", str(self.certs.server_cert), "--tls-key", str(self.certs.server_key)]
        self._spawn(argv + list(self.serve_args))
        self._wait_ready(self._healthy, timeout, f"GET {self.url}{API}/health")
        return self

    def _healthy(self) -> bool:
        return httpx.get(f"{self.url}{API}/health", verify=self.verify, timeout=2).status_code == 200

    def kill(self) -> None:
        """SIGKILL, no warning (a crash or power loss as the server sees it)."""
        self.stop(graceful=False)

    def restart(self, timeout: float = 30) -> CentralServer:
        """Stop (if running) and start again on the same port and database."""
        self.stop()
        return self.start(timeout)

    # -- operator commands (the CLI against the same database) -----------------------------------------
    def cli(self, *args: str) -> str:
        """``workstation-server ARGS --database URL``; its stdout (stripped). Raises PeerError on failure."""
        argv = [sys.executable, "-m", "workstation.server.cli", *args, "--database", self.database_url]
        done = subprocess.run(argv, capture_output=True, text=True, env=peer_env(), cwd=self.workdir, timeout=60)
        if done.returncode != 0:
            raise PeerError(f"workstation-server {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip()

    def issue_code(self, workstation_id: str, ttl_hours: float | None = None, replace: bool = False) -> str:
        args = ["issue-code", workstation_id] + (["--ttl-hours", str(ttl_hours)] if ttl_hours is not None else [])
        return self.cli(*args, *(["--replace"] if replace else []))

    def issue_token(self, role: str = "qa", name: str | None = None) -> str:
        self._tokens += 1
        return self.cli("issue-token", "--role", role, "--name", name or f"{role}-tests-{self._tokens}")

    def revoke(self, workstation_id: str) -> None:
        self.cli("revoke", workstation_id)

    # -- API helpers ---------------------------------------------------------------------------------
    def client(self, token: str | None = None, timeout: float = 30) -> httpx.Client:
        """An httpx client on the server (CA-verified under TLS), with a bearer token when given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, verify=self.verify, timeout=timeout)

    @property
    def admin_token(self) -> str:
        if self._admin_token is None:
            self._admin_token = self.issue_token("admin", "central-fixture-admin")
        return self._admin_token

    def enrol(self, workstation_id: str, replace: bool = False) -> str:
        """Issue a code (admin API; `replace`: one that takes over an id with entries) and enrol with it; the
        workstation's token."""
        with self.client(self.admin_token) as http:
            issued = http.post(f"{API}/admin/enrolment-codes", json={"workstation_id": workstation_id,
                                                                     **({"replace": True} if replace else {})})
            if issued.status_code != 201:
                raise PeerError(f"no enrolment code for {workstation_id}: {issued.status_code} {issued.text}")
            code = issued.json()["code"]
        with self.client() as http:
            response = http.post(f"{API}/enrol", json={"code": code, "workstation_id": workstation_id})
        if response.status_code != 201:
            raise PeerError(f"enrolment of {workstation_id} failed: {response.status_code} {response.text}")
        return response.json()["token"]

    @property
    def qa_token(self) -> str:
        if self._qa_token is None:
            self._qa_token = self.issue_token("qa", "central-fixture-qa")
        return self._qa_token

    def entries(self, workstation_id: str, **filters: Any) -> list[dict]:
        """Everything the server holds for the workstation (wire items + received_utc), in seq order, all pages."""
        items: list[dict] = []
        after = None
        with self.client(self.qa_token) as http:
            while True:
                params = {"workstation_id": workstation_id, "limit": 1000, **filters}
                if after is not None:
                    params["after"] = after
                response = http.get(f"{API}/entries", params=params)
                response.raise_for_status()
                page = response.json()
                items += page["items"]
                after = page["next"]
                if after is None:
                    return items

    def status(self, workstation_id: str) -> dict:
        with self.client(self.qa_token) as http:
            response = http.get(f"{API}/workstations/{workstation_id}/status")
        response.raise_for_status()
        return response.json()


@pytest.fixture
def central_factory(tmp_path) -> Iterator[Callable[..., CentralServer]]:
    """central_factory(database_url=None, *, certs=None, start=True, name="central") -> CentralServer."""
    servers: list[CentralServer] = []

    def make(database_url: str | None = None, *, certs: TlsCerts | None = None, start: bool = True,
             name: str = "central") -> CentralServer:
        server = CentralServer(tmp_path / f"{name}-{len(servers)}", database_url, certs=certs)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def central(central_factory) -> CentralServer:
    """A started central server on a fresh SQLite database."""
    return central_factory()
