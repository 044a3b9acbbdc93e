"""Fixtures of the store tests: a file keyring under tmp_path (passed explicitly), a data folder, opened stores.

No test here touches the user's keyring or keyring configuration: the backend is passed to
`Store.open`, and the keyring-policy tests replace what keyring would detect (see test_store_keys.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from keyrings.alt.file import PlaintextKeyring

from workstation.core.roles import Role, User
from workstation.store.database import Identity, Store


@pytest.fixture
def backend(tmp_path) -> PlaintextKeyring:
    """A keyring file outside the data folder, so scans of that folder never see the key file."""
    keyring = PlaintextKeyring()
    keyring.file_path = str(tmp_path / "keyring" / "keyring_pass.cfg")
    return keyring


@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def db_path(data_dir) -> Path:
    return data_dir / "store.sqlite"


@pytest.fixture
def open_store(db_path, backend) -> Iterator[Callable[..., Store]]:
    """open_store(role=REVIEWER, login="rita") -> a Store on db_path; every store opened is closed at the end."""
    opened: list[Store] = []

    def _open(role: Role | None = Role.REVIEWER, login: str = "rita", path: Path | None = None,
              workstation: str = "ws-test") -> Store:
        store = Store.open(path or db_path, Identity(User(login, role), workstation), backend)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()
