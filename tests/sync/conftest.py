"""Fixtures of the sync tests: a file keyring under tmp_path (passed explicitly, or chosen through
PYTHON_KEYRING_BACKEND + XDG_DATA_HOME for subprocesses: the same file), a real encrypted store, and the real
central server process (tests/netpeers/central.py) on 127.0.0.1."""

from __future__ import annotations

import pytest
from keyrings.alt.file import PlaintextKeyring
from netpeers.central import central, central_factory  # noqa: F401 - fixtures
from sync_helpers import WS, open_store

from netpeers.postgres import postgres_cluster, postgres_url  # noqa: F401 - PostgreSQL as the server's database


@pytest.fixture
def xdg(tmp_path):
    return tmp_path / "xdg"


@pytest.fixture
def backend(xdg) -> PlaintextKeyring:
    keyring = PlaintextKeyring()
    keyring.file_path = str(xdg / "python_keyring" / "keyring_pass.cfg")
    return keyring


@pytest.fixture
def store_path(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    return folder / "store.sqlite"


@pytest.fixture
def store(store_path, backend):
    opened = open_store(store_path, backend, WS)
    yield opened
    opened.close()


@pytest.fixture
def keyring_env(monkeypatch, xdg):
    """The CLI (in this process or a child) uses the same file keyring as `backend`."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(xdg))
    monkeypatch.setenv("WS_SYNC_LOGIN", "rita")
