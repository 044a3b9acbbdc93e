"""What the encrypted file meets outside the application: a flipped byte (one page fails SQLCipher's HMAC), the
newest entries deleted by someone holding the key (tail truncation: a shorter chain that still verifies), and
who may read the files.

Before: a flipped byte made `workstation audit verify` die with a traceback; deleting the newest entries left a
trail that verified "OK"; the store, its WAL and the site file were created 0644.
"""

from __future__ import annotations

import json
import stat

import pytest
from store_helpers import raw_connect, raw_key

from workstation.cli import main
from workstation.core.audit import AuditEvent
from workstation.core.site import parse_site_config
from workstation.services import doctor
from workstation.store.database import now_utc

PAGE = 4096


def fill(store, count: int) -> None:
    with store._transaction() as db:  # one transaction: fast, and the mark is raised once at its commit
        for i in range(count):
            store._append(db, AuditEvent("study.opened", now_utc(), {"n": i, "note": "x" * 200}, "1.2.9"))


@pytest.fixture
def site(tmp_path, db_path, monkeypatch):
    """A site file for the CLI on the same store, keyring (the file backend of `backend`) and an admin user."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("WS_DAMAGE_LOGIN", "ada")
    path = tmp_path / "site.toml"
    path.write_text(f'[workstation]\nid = "ws-test"\n[store]\npath = "{db_path}"\n'
                    f'[users]\nlogin_variable = "WS_DAMAGE_LOGIN"\nroles = {{ ada = "admin" }}\n', encoding="utf-8")
    return path


@pytest.fixture
def cli_backend(tmp_path):
    from keyrings.alt.file import PlaintextKeyring

    keyring = PlaintextKeyring()
    keyring.file_path = str(tmp_path / "xdg" / "python_keyring" / "keyring_pass.cfg")
    return keyring


def verify(capsys, site) -> tuple[int, str, str]:
    code = main(["audit", "--config", str(site), "verify"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_a_flipped_byte_names_the_damaged_page_and_entries(tmp_path, db_path, site, cli_backend, capsys):
    from workstation.core.roles import Role, User
    from workstation.store.database import Identity, Store

    with Store.open(db_path, Identity(User("ada", Role.ADMIN), "ws-test"), cli_backend) as store:
        fill(store, 600)
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db_path.read_bytes())
    pages = len(data) // PAGE
    damaged = pages // 2
    data[(damaged - 1) * PAGE + 1000] ^= 0x04  # one bit of one page in the middle of the audit table
    db_path.write_bytes(data)

    code, out, err = verify(capsys, site)
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith("audit trail DAMAGED: the store file is damaged (HMAC verification failed for page "
                            f"{damaged});")
    assert "audit entries that cannot be read: " in first and "the newest is 600" in first
    unreadable = first.split("audit entries that cannot be read: ")[1].split(";")[0]
    low, _, high = unreadable.partition("-")
    assert 1 < int(low) <= int(high or low) < 600 and int(high or low) - int(low) < 40  # one page's worth
    assert "restore the store from its backup" in out
    assert "could not be recorded in the audit trail" in err

    check = doctor.check_store(parse_site_config({"store": {"path": str(db_path)}}), cli_backend)
    assert check.verdict == doctor.FAIL and "HMAC verification failed" in check.detail and "cannot be read" in check.detail


def test_deleting_the_newest_entries_is_detected_by_the_high_water_mark(tmp_path, db_path, site, cli_backend, capsys):
    from workstation.core.roles import Role, User
    from workstation.store.database import Identity, Store

    with Store.open(db_path, Identity(User("ada", Role.ADMIN), "ws-test"), cli_backend) as store:
        fill(store, 40)
        assert store.verify().ok
    mark = json.loads((tmp_path / "data" / "store.sqlite.hwm").read_text())
    assert mark["seq"] == 40 and set(mark) == {"format", "seq", "hash", "mac"}  # no entry content in it
    db = raw_connect(db_path, raw_key(cli_backend), drop_triggers=True)  # someone with the key removes 36-40
    db.execute("DELETE FROM audit WHERE seq > 35")
    db.close()

    with Store.open(db_path, Identity(User("ada", Role.ADMIN), "ws-test"), cli_backend) as store:
        problem = store.verify().first_problem
        assert (problem.kind, problem.seq) == ("deleted", 36)
        assert problem.message == ("entries 36-40 deleted from the end of the trail: the high-water mark beside the "
                                   "store says 40 were written, the trail ends at 35")
        fill(store, 10)  # writing on (new entries take the deleted numbers) does not raise the mark past them
        problem = store.verify().first_problem
        assert (problem.kind, problem.seq) == ("altered", 40) and "not the one written" in problem.message
    assert json.loads((tmp_path / "data" / "store.sqlite.hwm").read_text()) == mark
    code, out, _ = verify(capsys, site)
    assert code == 1 and "first problem at entry 40 (entry id " in out and "altered: entry 40 is not the one written" in out

    # the mark cannot be lowered without the key: an edited mark is not trusted
    forged = dict(mark, seq=35)
    (tmp_path / "data" / "store.sqlite.hwm").write_text(json.dumps(forged).ljust(255) + "\n")
    code, out, _ = verify(capsys, site)
    assert code == 1 and "high-water: the high-water mark cannot be trusted" in out and "edited or replaced" in out

    # the limit, as the README says: deleting the mark with the entries goes unnoticed locally (made again at open)
    (tmp_path / "data" / "store.sqlite.hwm").unlink()
    code, out, _ = verify(capsys, site)
    assert code == 0 and out.startswith("audit trail OK: ")


def test_the_store_its_wal_and_its_folder_are_private_and_doctor_warns_about_loose_modes(tmp_path, open_store, db_path):
    path = tmp_path / "fresh" / "deeper" / "store.sqlite"
    store = open_store(path=path)
    fill(store, 3)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for suffix in ("-wal", "-shm", ".hwm"):  # SQLite gives the WAL and shared memory the mode of the file
        assert stat.S_IMODE(path.with_name(path.name + suffix).stat().st_mode) == 0o600, suffix
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o700
    store.close()

    config = parse_site_config({"store": {"path": str(path)}})
    assert doctor.check_permissions(config) == []
    path.chmod(0o644)  # a store made by an older version, or copied by hand
    path.parent.chmod(0o777)
    site_file = tmp_path / "site.toml"
    site_file.write_text("")
    site_file.chmod(0o666)
    checks = doctor.check_permissions(config, site_file)
    assert [c.verdict for c in checks] == [doctor.WARN, doctor.WARN]
    assert f"{path} is 0644 (others can read it; expected 0600)" in checks[0].detail
    assert "others can add or replace files in it" in checks[0].detail and "chmod" in checks[0].hint
    assert f"{site_file} is 0666: others can change the site configuration" in checks[1].detail
    path.parent.chmod(0o700)
