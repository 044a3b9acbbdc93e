"""No patient data in clear on disk: a name planted in a comment and an audit detail is in none of the store's
files (db, -wal, -shm), while the same writes through the same code on plain SQLite show it (the control)."""

from __future__ import annotations

import sqlite3

import pytest
from store_helpers import SERIES, feedback_entry, raw_key, study_event, STORE_FILES

from workstation.core.review import Action
from workstation.core.roles import Role
from workstation.store import database

NAME = "ZZTOPSECRET^PATIENT"
FORMS = {"utf-8": NAME.encode("utf-8"), "utf-16-le": NAME.encode("utf-16-le"), "utf-16-be": NAME.encode("utf-16-be")}


def write_phi(store) -> None:
    user = store.identity.user
    store.append(study_event(1, patient_name=NAME))
    entry = feedback_entry(user, Action.COMMENT, comment=f"compare with {NAME} prior")
    store.record_feedback(entry)
    assert NAME in store.feedback(SERIES)[0].comment
    assert store.audit_entries()[0].details["patient_name"] == NAME


def found(folder) -> dict[str, list[str]]:
    hits = {}
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        forms = [form for form, needle in FORMS.items() if needle in data]
        if forms:
            hits[path.name] = forms
    return hits


def test_a_planted_name_is_in_no_store_file(open_store, data_dir, backend):
    store = open_store(Role.REVIEWER)
    write_phi(store)
    files = {p.name for p in data_dir.iterdir()}
    assert {"store.sqlite", "store.sqlite-wal", "store.sqlite-shm"} <= files  # checked while open, WAL in use
    assert found(data_dir) == {}
    store.close()
    assert found(data_dir) == {}
    assert {p.name for p in data_dir.iterdir()} == STORE_FILES
    head = (data_dir / "store.sqlite").read_bytes()[:16]
    assert head != b"SQLite format 3\x00"  # page 1 is encrypted too
    assert raw_key(backend).encode() not in (data_dir / "store.sqlite").read_bytes()


def test_the_control_on_plain_sqlite_shows_the_name(monkeypatch, open_store, data_dir):
    """The same Store code with the stdlib sqlite3 in place of SQLCipher: the scan above would have found it."""
    monkeypatch.setattr(database, "sqlcipher", sqlite3)  # PRAGMA key and cipher_* are no-ops there
    store = open_store(Role.REVIEWER)
    write_phi(store)
    while_open = found(data_dir)
    store.close()
    assert (data_dir / "store.sqlite").read_bytes()[:16] == b"SQLite format 3\x00"
    assert found(data_dir) == {"store.sqlite": ["utf-8"]}
    assert while_open and set(while_open) <= {"store.sqlite", "store.sqlite-wal"}


@pytest.mark.parametrize("form", ["utf-16-le", "utf-16-be"])
def test_the_scan_finds_utf16_text(tmp_path, form):
    """The UTF-16 needles are not dead code: a UTF-16 SQLite database shows the name in that form."""
    db = sqlite3.connect(tmp_path / "u16.sqlite")
    db.execute(f"PRAGMA encoding = '{form.replace('-le', 'le').replace('-be', 'be').upper()}'")
    db.execute("CREATE TABLE t (x TEXT)")
    db.execute("INSERT INTO t VALUES (?)", (NAME,))
    db.commit()
    db.close()
    assert found(tmp_path) == {"u16.sqlite": [form]}
