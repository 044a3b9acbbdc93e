"""Fixtures for the de-identification tests: the planted corpus (built once), a store and work session per role."""

from __future__ import annotations

import pytest
from keyrings.alt.file import PlaintextKeyring

from deid.corpus import build_corpus
from workstation.core.roles import Role, User
from workstation.core.site import parse_site_config
from workstation.services.session import WorkSession
from workstation.store.database import Identity, Store

SECRET = bytes(range(32))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("deid-corpus"))


def site(**deid) -> dict:
    return {"workstation": {"id": "ws-deid", "ae_title": "WSDEID"}, "deid": deid}


def open_session(folder, role: Role | None, data: dict | None = None) -> WorkSession:
    backend = PlaintextKeyring()
    backend.file_path = str(folder / "keyring.cfg")
    store = Store.open(folder / "store.sqlite", Identity(User(f"user-{role.value if role else 'none'}", role), "ws-deid"),
                       backend)
    return WorkSession(parse_site_config(data or site()), store)


@pytest.fixture(scope="module")
def reviewer(tmp_path_factory):
    session = open_session(tmp_path_factory.mktemp("reviewer"), Role.REVIEWER)
    yield session
    session.store.close()
