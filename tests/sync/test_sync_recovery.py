"""Recovery after the central server's database is restored from a backup, against the real server process on
SQLite and PostgreSQL: push 1,000, snapshot the server's database (sqlite3 backup API / pg_dump), push 1,000
more, restore the snapshot (server stopped, file replaced / pg_restore --clean), sync: the server again holds
all entries exactly once, and its incidents say "rolled back, recovered 1000 entries".

Before this, every push after the restore got 409 "gap" for ever and the entries already marked synced were
never sent again.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from netpeers.postgres import postgres_bin_dir
from sync_helpers import WS, assert_server_holds_exactly, populate, site_toml

from workstation.cli import main
from workstation.core.audit import AuditEvent
from workstation.core.site import ServerSettings
from workstation.core.sync import API_PREFIX
from workstation.services.sync import ChainMismatch, SyncClient, SyncWorker
from workstation.store.database import now_utc


def bulk(store, count: int) -> None:
    """`count` more plain entries in one transaction (fast; the chain is the store's own)."""
    with store._transaction() as db:
        for i in range(count):
            store._append(db, AuditEvent("study.opened", now_utc(), {"series_instance_uid": "1.2.3", "n": i}, "1.2.9"))


@pytest.fixture(params=["sqlite", "postgres"])
def server(request, central_factory):
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    made = central_factory(url)
    made.qa_token, made.admin_token  # issued before any snapshot, so that the restored database knows them
    return made


def snapshot(server, folder: Path) -> Path:
    """A backup of the server's database as an operator would take it, the server running."""
    if server.database_url.startswith("sqlite"):
        target = folder / "backup.sqlite"
        # closed here, not by `with` (which only commits): a connection left open keeps the server's WAL alive
        # past its stop, and closing it after the restore wrote the newer pages back over the restored file
        source, copy = sqlite3.connect(server.database_url.removeprefix("sqlite:///")), sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        return target
    target = folder / "backup.dump"
    subprocess.run([str(postgres_bin_dir() / "pg_dump"), "-Fc", "-f", str(target), "--dbname", server.database_url],
                   check=True, capture_output=True, timeout=120)
    return target


def restore(server, backup: Path) -> None:
    """Stop the server, put the backup in place of its database, start it again."""
    server.stop()
    if server.database_url.startswith("sqlite"):
        path = Path(server.database_url.removeprefix("sqlite:///"))
        for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            extra.unlink(missing_ok=True)
        shutil.copyfile(backup, path)
    else:
        subprocess.run([str(postgres_bin_dir() / "pg_restore"), "--clean", "--if-exists", "--single-transaction",
                        "--dbname", server.database_url, str(backup)], check=True, capture_output=True, timeout=120)
    server.start()


def incidents(server, kind: str) -> list[dict]:
    with server.client(server.qa_token) as http:
        items = http.get(f"{API_PREFIX}/workstations/{WS}/incidents", params={"limit": 1000}).json()["items"]
    return [i for i in items if i["kind"] == kind]


def make_worker(server, store, backend) -> SyncWorker:
    settings = ServerSettings(url=server.url, batch_size=500)
    client = SyncClient(settings, WS, backend)
    if not client.has_token():
        client.enrol(server.issue_code(WS))
    return SyncWorker(store, client, settings)


def test_a_restored_server_gets_every_entry_again_exactly_once(server, store, backend, tmp_path):
    populate(store, 40)  # reviews with their feedback and inference records, then plain entries
    bulk(store, 1000 - store.count())
    worker = make_worker(server, store, backend)
    try:
        assert worker.sync_once().complete
        backup = snapshot(server, tmp_path)
        bulk(store, 1000)
        assert worker.sync_once().complete and store.synced_through() == 2000
        restore(server, backup)
        assert server.status(WS)["head"]["seq"] == 1000  # the server went back; the workstation had 2000 acknowledged
        bulk(store, 5)  # the next push (2001-2005) meets a gap: the 409 carries the server's head
        result = worker.sync_once()
        assert result.complete, result
        assert result.pushed == 1005
    finally:
        worker.client.close()
    assert_server_holds_exactly(server, store)  # all 2,005 once: same ids, seqs, hashes and records
    rolled = incidents(server, "rolled-back")
    assert [i["seq"] for i in rolled] == [1000, 1000]
    assert "sends the 1000 missing entries again" in rolled[0]["message"]
    assert rolled[1]["message"].startswith("rolled back, recovered 1000 entries")
    assert "1001-2000" in rolled[1]["message"]
    status = store.sync_status()
    assert status["last_outcome"] == "ok" and "server rolled back to entry 1000" in status["last_recovery"]


def test_a_restore_is_noticed_with_nothing_to_push(central, store, backend, tmp_path, keyring_env, capsys):
    central.qa_token
    bulk(store, 30)
    worker = make_worker(central, store, backend)
    assert worker.sync_once().complete
    backup = snapshot(central, tmp_path)
    bulk(store, 20)
    assert worker.sync_once().complete
    worker.client.close()
    restore(central, backup)
    assert store.pending_count() == 0
    from sync_helpers import site_config

    from workstation.services import doctor

    check = doctor.check_sync(site_config(store.path, central.url), backend)  # doctor no longer says "ready" blindly
    assert check.verdict == doctor.WARN
    assert "the server holds entries up to 30 only, though it acknowledged 50" in check.detail
    assert "workstation sync --once" in check.hint
    capsys.readouterr()  # `workstation sync --once` (a new worker: it compares heads first, as the window at start)
    assert main(["sync", "--once", "--config", str(site_toml(tmp_path / "site.toml", store.path, central.url))]) == 0
    out = capsys.readouterr().out
    assert "sync: server rolled back to entry 30 at " in out and ": 20 entries (31-50) sent again" in out
    assert "20 entries sent; nothing pending" in out
    assert_server_holds_exactly(central, store)
    assert incidents(central, "rolled-back")[-1]["message"].startswith("rolled back, recovered 20 entries")


def test_a_server_chain_that_is_not_ours_stops_sync_for_it(central, store, store_path, backend, tmp_path):
    """A restored server whose entry at its head has another hash than ours (not a prefix of our chain) is never
    'recovered': sync stops with a message for IT and nothing is marked or sent."""
    central.qa_token
    bulk(store, 30)
    worker = make_worker(central, store, backend)
    assert worker.sync_once().complete
    central.stop()  # someone rewrote the server's copy of entry 30 (and its head) while it was down
    path = central.database_url.removeprefix("sqlite:///")
    db = sqlite3.connect(path)
    with db:  # commits
        db.execute("UPDATE workstations SET head_hash = ? WHERE id = ?", ("f" * 64, WS))
    db.close()  # and closed before the server opens the file again
    central.start()
    bulk(store, 3)
    result = worker.sync_once()
    worker.client.close()
    assert isinstance(result.error, ChainMismatch) and result.error.halts
    text = str(result.error)
    assert text.startswith("the central server holds another trail for ws-sync-01: tell IT. Its entry 30 is not this")
    assert "IT:" in text and "--replace" in text
    assert store.pending_count() == 3 and store.synced_through() == 30  # nothing reset, nothing sent
    assert store.sync_status()["last_outcome"] == "mismatch"
    assert central.status(WS)["entries"] == 30


def test_head_and_recovery_answer_only_their_own_workstation(central, store, backend):
    """Another workstation's token may neither read the head nor announce a recovery (403); a stale head, nothing
    to recover, or a malformed body is refused (409 / 422) and records nothing."""
    from workstation.store import keys

    bulk(store, 5)
    worker = make_worker(central, store, backend)
    assert worker.sync_once().complete
    worker.client.close()
    head = {"seq": 5, "hash": store.entry_hash(5)}
    with central.client(central.enrol("ws-other")) as http:
        assert http.get(f"{API_PREFIX}/workstations/{WS}/head").status_code == 403
        refused = http.post(f"{API_PREFIX}/workstations/{WS}/recovery", json={"head": head, "acknowledged_seq": 9})
        assert refused.status_code == 403 and refused.json()["detail"]["error"] == "forbidden"
    with central.client(keys.read_token(backend)) as http:
        assert http.get(f"{API_PREFIX}/workstations/{WS}/head").json() == {"workstation_id": WS, **head, "entries": 5}
        stale = http.post(f"{API_PREFIX}/workstations/{WS}/recovery",
                          json={"head": {"seq": 3, "hash": store.entry_hash(3)}, "acknowledged_seq": 9})
        assert stale.status_code == 409 and stale.json()["detail"]["kind"] == "stale-head"
        assert stale.json()["detail"]["head"] == head
        nothing = http.post(f"{API_PREFIX}/workstations/{WS}/recovery", json={"head": head, "acknowledged_seq": 5})
        assert nothing.status_code == 409 and nothing.json()["detail"]["kind"] == "nothing-to-recover"
        extra = http.post(f"{API_PREFIX}/workstations/{WS}/recovery",
                          json={"head": head, "acknowledged_seq": 9, "entries": []})
        assert extra.status_code == 422 and extra.json()["detail"]["error"] == "invalid"
    with central.client(central.qa_token) as http:
        assert http.get(f"{API_PREFIX}/workstations/{WS}/head").json()["seq"] == 5
    assert incidents(central, "rolled-back") == []
