"""Pieces the report tests share (a module of its own: `conftest` is another module in every test folder)."""

from __future__ import annotations

from pathlib import Path

from keyrings.alt.file import PlaintextKeyring

from workstation.core.roles import Role, User
from workstation.store.database import Identity, Store


def keyring_in(folder: Path) -> PlaintextKeyring:
    backend = PlaintextKeyring()
    backend.file_path = str(folder / "keyring.cfg")
    return backend


def open_store(folder: Path, login: str = "bob", role: Role = Role.REVIEWER) -> Store:
    return Store.open(folder / "store.sqlite", Identity(User(login, role), "ws-reports"), keyring_in(folder))
