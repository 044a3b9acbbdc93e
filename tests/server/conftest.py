"""Fixtures of the central server tests: real server processes (uvicorn) on SQLite and PostgreSQL.

``server`` is one server per test module and backend (tests use their own workstation ids, so they do not
see each other's entries); ``central`` / ``central_factory`` give a test its own server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from netpeers.central import CentralServer, central, central_factory  # noqa: F401 - fixtures
from netpeers.postgres import postgres_cluster, postgres_url  # noqa: F401 - fixtures

from server_helpers import open_store

BACKENDS = ["sqlite", "postgresql"]
_ids = itertools.count(1)


def database_for(request, backend: str) -> str | None:
    """None (the server's own SQLite file) or a fresh PostgreSQL database."""
    if backend == "sqlite":
        return None
    return request.getfixturevalue("postgres_cluster").create_database()


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory) -> Iterator[CentralServer]:
    """A started server shared by a module's tests, on each backend."""
    url = database_for(request, request.param)
    central_server = CentralServer(tmp_path_factory.mktemp(f"central-{request.param}"), url).start()
    yield central_server
    central_server.stop()


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory) -> Iterator[CentralServer]:
    """A started SQLite server shared by a module's tests (checks that do not depend on the database)."""
    central_server = CentralServer(tmp_path_factory.mktemp("central-sqlite")).start()
    yield central_server
    central_server.stop()


@pytest.fixture(params=BACKENDS)
def backend_url(request) -> str | None:
    """For tests that start their own server: None (SQLite) or a fresh PostgreSQL database URL."""
    return database_for(request, request.param)


@pytest.fixture
def workstation_id() -> str:
    return f"ws-{next(_ids):03d}"


@pytest.fixture
def make_store(tmp_path):
    """make_store(workstation_id) -> a real encrypted Store of that workstation; all closed at the end."""
    stores = []

    def make(workstation_id: str, **kwargs):
        store = open_store(tmp_path / f"store-{workstation_id}-{len(stores)}", workstation_id, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
