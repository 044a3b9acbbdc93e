"""Fixtures of the monitoring tests: the real central server process on SQLite and on PostgreSQL, holding the
generated reading sessions of monitoring_data (pushed once per backend and test session through the real sync
client; the tests only read)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from monitoring_data import Plan, generate
from netpeers.central import CentralServer
from netpeers.postgres import postgres_cluster  # noqa: F401 - the fixture


def _monitored(url: str | None, root) -> Iterator[tuple[CentralServer, Plan]]:
    server = CentralServer(root / "server", url).start()
    try:
        yield server, generate(root / "stores", server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def monitored_sqlite(tmp_path_factory) -> Iterator[tuple[CentralServer, Plan]]:
    yield from _monitored(None, tmp_path_factory.mktemp("monitoring-sqlite"))


@pytest.fixture(scope="session")
def monitored_postgresql(postgres_cluster, tmp_path_factory) -> Iterator[tuple[CentralServer, Plan]]:
    yield from _monitored(postgres_cluster.create_database(), tmp_path_factory.mktemp("monitoring-postgresql"))


@pytest.fixture(params=["sqlite", "postgresql"])
def monitored(request) -> tuple[CentralServer, Plan]:
    """(server, plan): a started server holding the generated sessions, on each backend."""
    return request.getfixturevalue(f"monitored_{request.param}")
