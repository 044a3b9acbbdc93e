"""Who is working where, and the encrypted store they write to.

The login is the OS user unless the site names an environment variable set by
its sign-on wrapper; the role comes only from the site configuration.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from pathlib import Path

import keyring.backend
from platformdirs import user_data_dir

from workstation.core.audit import AuditEvent, Outcome
from workstation.core.roles import Role, User
from workstation.core.site import SiteConfig
from workstation.store.database import Identity, Store, StoreLocked, now_utc

DATA_DIR_ENV = "WORKSTATION_DATA_DIR"
STORE_FILE = "store.sqlite"


def current_user(config: SiteConfig, environ: Mapping[str, str] = os.environ) -> User:
    users = config.users
    login = environ.get(users.login_variable, "") if users.login_variable else ""
    login = login.strip() or getpass.getuser()
    role = users.roles.get(login, users.default_role)
    return User(login, Role(role) if role else None)


def workstation_id(config: SiteConfig) -> str:
    return config.workstation_id or socket.gethostname().split(".")[0] or "workstation"


def store_path(config: SiteConfig, environ: Mapping[str, str] = os.environ) -> Path:
    if config.store.path:
        return Path(config.store.path).expanduser()
    if environ.get(DATA_DIR_ENV):
        return Path(environ[DATA_DIR_ENV]) / STORE_FILE
    return Path(user_data_dir("workstation", appauthor=False)) / STORE_FILE


def identity(config: SiteConfig) -> Identity:
    return Identity(current_user(config), workstation_id(config))


def open_store(config: SiteConfig, backend: keyring.backend.KeyringBackend | None = None) -> Store:
    """The store for this user and workstation; StoreLocked says why it cannot be opened."""
    return Store.open(store_path(config), identity(config), backend)


class AuditTrail:
    """What services report, written to the store as chained audit entries (with who and where)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, kind: str, study_instance_uid: str = "", outcome: Outcome = Outcome.SUCCESS,
               outcome_text: str = "", **details) -> None:
        self.store.append(AuditEvent(kind, now_utc(), details, study_instance_uid, outcome, outcome_text))

    def event(self, event: AuditEvent) -> None:
        self.store.append(event)


__all__ = ["AuditTrail", "StoreLocked", "current_user", "identity", "open_store", "store_path", "workstation_id"]
