"""The key: a wrong or missing key leaves the store untouched and is audited at the next successful open;
the keyring policy fails closed (no fail/null backend, no insecure fallback unless chosen explicitly)."""

from __future__ import annotations

import json
import secrets

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.null
import keyring.core
import pytest
from keyrings.alt.file import PlaintextKeyring
from store_helpers import folder_bytes, study_event, STORE_FILES

from workstation.core.audit import Outcome
from workstation.core.roles import Role, User
from workstation.store import keys
from workstation.store.database import Identity, Store, StoreLocked

FAILURES = "store.sqlite.failed-opens.jsonl"
ALICE = Identity(User("alice", Role.REVIEWER), "ws-test")


def write_some(open_store, n: int = 5) -> None:
    store = open_store()
    for i in range(n):
        store.append(study_event(i))
    store.close()


def assert_untouched(data_dir, before: dict[str, bytes]) -> None:
    after = folder_bytes(data_dir)
    assert after["store.sqlite"] == before["store.sqlite"]
    assert set(after) - set(before) <= {FAILURES}, f"new files: {set(after) - set(before)}"
    assert not [name for name in after if name.endswith(("-wal", "-shm", "-journal"))]


def assert_failure_audited(open_store, data_dir, reason_has: str, attempts: int = 1) -> None:
    store = open_store()
    failed = [e for e in store.audit_entries() if e.kind == "store.open-failed"]
    assert len(failed) == attempts
    assert all(e.details["user"] == "alice" and reason_has in e.details["reason"] for e in failed)
    assert all(e.outcome == Outcome.SERIOUS_FAILURE and e.user == "rita" for e in failed)
    assert not [p for p in data_dir.iterdir() if "failed-opens" in p.name]  # imported once, not again
    assert store.verify().ok


def test_a_wrong_key_leaves_the_store_untouched_and_is_audited_later(open_store, db_path, data_dir, backend):
    write_some(open_store)
    right = backend.get_password(keys.SERVICE, keys.STORE_KEY)
    before = folder_bytes(data_dir)
    assert set(before) == STORE_FILES
    backend.set_password(keys.SERVICE, keys.STORE_KEY, secrets.token_hex(32))
    for _ in range(2):
        with pytest.raises(StoreLocked, match="cannot be opened with the key in the OS keyring") as locked:
            Store.open(db_path, ALICE, backend)
        assert "left untouched" in str(locked.value) and "restore the matching keyring entry" in str(locked.value)
        assert_untouched(data_dir, before)
    notes = [json.loads(line) for line in (data_dir / FAILURES).read_text().splitlines()]
    assert [n["user"] for n in notes] == ["alice", "alice"]
    backend.set_password(keys.SERVICE, keys.STORE_KEY, right)
    assert_failure_audited(open_store, data_dir, "cannot be opened with the key", attempts=2)
    assert open_store().count() == 5 + 2


def test_a_missing_key_leaves_the_store_untouched_and_no_new_key_is_made(open_store, db_path, data_dir, backend):
    write_some(open_store)
    right = backend.get_password(keys.SERVICE, keys.STORE_KEY)
    before = folder_bytes(data_dir)
    backend.delete_password(keys.SERVICE, keys.STORE_KEY)
    with pytest.raises(StoreLocked, match="exists but the OS keyring holds no key for it") as locked:
        Store.open(db_path, ALICE, backend)
    assert "left untouched" in str(locked.value)
    assert backend.get_password(keys.SERVICE, keys.STORE_KEY) is None  # fail closed: no fresh key over old data
    assert_untouched(data_dir, before)
    backend.set_password(keys.SERVICE, keys.STORE_KEY, right)
    assert_failure_audited(open_store, data_dir, "holds no key")


def test_a_keyring_entry_that_is_not_a_key_is_refused(open_store, db_path, data_dir, backend):
    write_some(open_store, 1)
    right = backend.get_password(keys.SERVICE, keys.STORE_KEY)
    before = folder_bytes(data_dir)
    backend.set_password(keys.SERVICE, keys.STORE_KEY, "not hex at all")
    with pytest.raises(StoreLocked, match="is not a store key"):
        Store.open(db_path, ALICE, backend)
    assert_untouched(data_dir, before)
    backend.set_password(keys.SERVICE, keys.STORE_KEY, right)
    assert_failure_audited(open_store, data_dir, "not a store key")


def test_an_unusable_keyring_is_audited_at_the_next_open(open_store, db_path, data_dir, monkeypatch):
    write_some(open_store, 1)
    before = folder_bytes(data_dir)
    detected(monkeypatch, keyring.backends.fail.Keyring())
    with pytest.raises(StoreLocked, match="install and unlock a Secret Service"):
        Store.open(db_path, ALICE)
    assert_untouched(data_dir, before)
    assert_failure_audited(open_store, data_dir, "no usable OS keyring")


# ----- keyring policy: what keyring would pick on its own is replaced, so the host's keyring never matters


def detected(monkeypatch, backend: keyring.backend.KeyringBackend | None, env: str | None = None) -> None:
    """As if keyring had auto-detected `backend`, with no keyringrc and PYTHON_KEYRING_BACKEND as given."""
    if env is None:
        monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    else:
        monkeypatch.setenv("PYTHON_KEYRING_BACKEND", env)
    monkeypatch.setattr(keyring.core, "load_config", lambda: None)
    if backend is not None:
        monkeypatch.setattr(keyring, "get_keyring", lambda: backend)


class StubBackend:
    """An in-memory keyring whose priority the test sets (stands in for a Secret Service or an odd fallback).

    Deliberately not a KeyringBackend subclass: those register themselves, and keyring's own detection
    would then pick this stub for the rest of the test session.
    """

    def __init__(self, priority: float = 5) -> None:
        self.priority, self.items = priority, {}

    def get_password(self, service, username):
        return self.items.get((service, username))

    def set_password(self, service, username, password):
        self.items[(service, username)] = password

    def delete_password(self, service, username):
        self.items.pop((service, username), None)


def chainer_of(monkeypatch, *backends) -> keyring.backend.KeyringBackend:
    monkeypatch.setattr(keyring.backends.chainer.ChainerBackend, "backends", list(backends))
    chainer = keyring.backends.chainer.ChainerBackend()
    assert chainer.priority == (10 if len(backends) > 1 else chainer.priority)  # 10 whatever it chains
    return chainer


@pytest.mark.parametrize("fail", [keyring.backends.fail.Keyring, keyring.backends.null.Keyring])
def test_a_fail_or_null_backend_is_refused_with_the_install_hint(monkeypatch, db_path, fail):
    detected(monkeypatch, fail())
    with pytest.raises(keys.KeyringUnavailable) as refused:
        keys.usable_backend()
    assert str(refused.value) == keys.INSTALL_HINT
    with pytest.raises(StoreLocked, match="install and unlock a Secret Service") as locked:
        Store.open(db_path, ALICE)
    assert "gnome-keyring" in str(locked.value) and "no plaintext key is ever used" in str(locked.value)
    assert not db_path.exists()


def test_a_fail_backend_is_refused_even_when_chosen_explicitly(monkeypatch):
    detected(monkeypatch, None, env="keyring.backends.fail.Keyring")
    with pytest.raises(keys.KeyringUnavailable, match="install and unlock"):
        keys.usable_backend()


def test_an_auto_selected_plaintext_keyring_is_refused(monkeypatch, tmp_path, db_path):
    plaintext = PlaintextKeyring()
    plaintext.file_path = str(tmp_path / "auto" / "keyring_pass.cfg")
    assert plaintext.priority < 1
    detected(monkeypatch, plaintext)
    with pytest.raises(StoreLocked, match=r"only the insecure fallback keyrings\.alt\.file\.PlaintextKeyring was found"):
        Store.open(db_path, ALICE)
    assert not (tmp_path / "auto").exists()  # no key was written to the plaintext file
    assert not db_path.exists()


def test_an_auto_selected_chain_is_judged_by_the_backend_it_writes_to(monkeypatch, tmp_path):
    plaintext = PlaintextKeyring()
    plaintext.file_path = str(tmp_path / "auto" / "keyring_pass.cfg")
    detected(monkeypatch, chainer_of(monkeypatch, plaintext, StubBackend(0.2)))
    with pytest.raises(keys.KeyringUnavailable, match="PlaintextKeyring"):
        keys.usable_backend()
    secure = StubBackend(5)
    detected(monkeypatch, chainer_of(monkeypatch, secure, plaintext))
    assert keys.usable_backend() is secure  # not the chain: it would read a key from the plaintext file too
    detected(monkeypatch, chainer_of(monkeypatch))
    with pytest.raises(keys.KeyringUnavailable):
        keys.usable_backend()


def test_an_auto_selected_secure_backend_is_used(monkeypatch, db_path):
    secure = StubBackend(5)
    detected(monkeypatch, secure)
    with Store.open(db_path, ALICE) as store:
        store.append(study_event(1))
    (value,) = secure.items.values()
    assert len(bytes.fromhex(value)) == keys.KEY_BYTES


def test_plaintext_chosen_in_python_keyring_backend_is_accepted(monkeypatch, tmp_path, db_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # where that PlaintextKeyring keeps its file
    detected(monkeypatch, keyring.backends.fail.Keyring(), env="keyrings.alt.file.PlaintextKeyring")
    chosen = keys.usable_backend()
    assert isinstance(chosen, PlaintextKeyring)
    with Store.open(db_path, ALICE) as store:
        store.append(study_event(1))
    assert (tmp_path / "xdg" / "python_keyring" / "keyring_pass.cfg").is_file()
    with Store.open(db_path, ALICE) as store:  # and the key read back from it opens the store
        assert store.count() == 1 and store.verify().ok


def test_plaintext_chosen_in_keyringrc_is_accepted(monkeypatch, tmp_path):
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    rc = tmp_path / "keyringrc.cfg"
    rc.write_text("[backend]\ndefault-keyring = keyrings.alt.file.PlaintextKeyring\n")
    monkeypatch.setattr(keyring.core, "_config_path", lambda: rc)
    monkeypatch.setattr(keyring, "get_keyring", lambda: keyring.backends.fail.Keyring())
    assert isinstance(keys.usable_backend(), PlaintextKeyring)


def test_a_backend_passed_in_is_used_as_given(backend, monkeypatch):
    detected(monkeypatch, keyring.backends.fail.Keyring())
    assert keys.usable_backend(backend) is backend


def test_failed_open_notes_are_imported_once(open_store, db_path, data_dir, backend):
    """A crash between importing the notes and removing their file, or two imports at once, adds no duplicates;
    a note written while another process imports is kept for the next open."""
    write_some(open_store, 1)
    right = backend.get_password(keys.SERVICE, keys.STORE_KEY)
    backend.delete_password(keys.SERVICE, keys.STORE_KEY)
    with pytest.raises(StoreLocked):
        Store.open(db_path, ALICE, backend)
    note = (data_dir / FAILURES).read_text()
    backend.set_password(keys.SERVICE, keys.STORE_KEY, right)
    open_store().close()
    (data_dir / f"{FAILURES}.0123.importing").write_text(note)  # as left by a crash before the file was removed
    (data_dir / FAILURES).write_text(note + "not json\n")  # and again, plus a torn line
    store = open_store()
    failed = [e for e in store.audit_entries() if e.kind == "store.open-failed"]
    assert len(failed) == 1 and failed[0].details["note_id"] == json.loads(note)["note_id"]
    assert [p.name for p in data_dir.iterdir() if "failed-opens" in p.name] == []
    assert store.verify().ok
