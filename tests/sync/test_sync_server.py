"""The sync client against the real central server process (tests/netpeers/central.py) on 127.0.0.1, with a
real encrypted store holding a reading session's entries (session events, studies opened, a model run with its
findings, review actions with their feedback records).

Each case ends with: the server holds exactly this workstation's entries (same ids, seqs, hashes, records),
none lost, none duplicated, and the outbox is empty (or, for a refusal, exactly what was refused is left).
The main cases run on SQLite and, where PostgreSQL is installed, on PostgreSQL as the server's database.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sync_helpers import STUDY, WS, assert_server_holds_exactly, open_store, populate, site_toml

from workstation.core.site import ServerSettings
from workstation.services.sync import (
    TOKEN_REJECTED, Refused, SyncClient, SyncWorker, TokenRejected, Unreachable,
)
from workstation.store import keys

ROOT = Path(__file__).resolve().parents[2]
DATABASES = ["sqlite", "postgres"]  # postgres: skipped (with the reason) where PostgreSQL is not installed


@pytest.fixture(params=DATABASES)
def server(request, central_factory):
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    return central_factory(url)


@pytest.fixture
def workers():
    """make(server, store, backend, enrol=True, **server settings) -> SyncWorker (stopped and closed at teardown)."""
    made: list[SyncWorker] = []

    def make(server, store, backend, enrol: bool = True, rng=random.random, **settings) -> SyncWorker:
        config = ServerSettings(url=server.url, **settings)
        client = SyncClient(config, WS, backend)
        if enrol:
            client.enrol(server.issue_code(WS))
        worker = SyncWorker(store, client, config, base_backoff_s=0.05, rng=rng)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop()
        worker.client.close()


def wait_for(predicate, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.01)


def synced_ids(store) -> set[str]:
    pending = {item.entry.entry_id for item in store.outbox(1_000_000)}
    return {e.entry_id for e in store.audit_entries()} - pending


def test_everything_pending_is_pushed_in_batches_and_only_new_entries_next_time(server, store, backend, workers):
    populate(store, 130)
    worker = workers(server, store, backend, batch_size=25)
    assert store.pending_count() == 130
    result = worker.sync_once()
    assert result.complete and result.pushed == 130 and result.pending == 0
    assert_server_holds_exactly(server, store)
    assert worker.state.last_success_utc and not worker.state.last_error and worker.state.pending == 0
    populate(store, 150)
    before = server.status(WS)["entries"]
    result = worker.sync_once()
    assert result.complete and result.pushed == 20 and before == 130
    assert_server_holds_exactly(server, store)


def test_server_down_at_start_then_up(server, store, backend, workers, caplog):
    populate(store, 120)
    draws: list[float] = []
    worker = workers(server, store, backend, batch_size=50, max_backoff_s=0.4,
                     rng=lambda: draws.append(random.random()) or draws[-1])
    server.stop()
    entries = store.count()
    errors: list[str] = []
    worker.state_changed.connect(lambda s: errors.append(s.next_attempt_utc) if s.last_error and s.next_attempt_utc else None)
    with caplog.at_level(logging.INFO, logger="workstation.services.sync"):
        worker.start()
        wait_for(lambda: len(set(errors)) >= 5, what="five scheduled retries")
        state = worker.state
        assert state.last_error == "server unreachable" and state.running and state.pending == 120
        assert store.count() == entries and store.pending_count() == 120  # failures are logged, never audited
        server.start()
        wait_for(lambda: worker.state.pending == 0 and not worker.state.last_error, what="the push after restart")
    assert_server_holds_exactly(server, store)
    assert worker.state.running and worker.state.next_attempt_utc  # back to the idle poll
    ceilings = [min(0.4, 0.05 * 2 ** n) for n in range(len(draws))]
    assert len(draws) >= 5 and ceilings[:4] == [0.05, 0.1, 0.2, 0.4]  # retried with growing (jittered) waits
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "server unreachable" in warnings[0].getMessage()  # a persisting failure: logged once
    assert STUDY not in caplog.text and "rita" not in caplog.text  # counts and seqs only


def test_server_killed_mid_push_and_restarted(server, store, backend, workers):
    populate(store, 1500)
    worker = workers(server, store, backend, batch_size=20, max_backoff_s=0.3)
    errors: set[str] = set()
    worker.state_changed.connect(lambda s: errors.add(s.last_error))
    worker.start()
    for left in (1300, 800):  # killed twice while batches are flowing
        wait_for(lambda: worker.state.pending <= left, what=f"{left} pending")
        server.kill()
        wait_for(lambda: worker.state.last_error != "", what="the failure")
        assert worker.state.running and worker.state.pending > 0
        server.start()
    wait_for(lambda: worker.state.pending == 0 and not worker.state.last_error, timeout=30, what="completion")
    assert_server_holds_exactly(server, store)
    # the kill cut a request in flight (then the restart was awaited): whatever the server had committed of
    # that batch was acknowledged as duplicates when it was sent again
    assert {"connection to the server lost", "server unreachable"} <= errors, errors


def test_the_same_batch_sent_twice_is_acknowledged_once_stored(server, store, backend, workers):
    populate(store, 90)
    worker = workers(server, store, backend, batch_size=200)
    batch = store.outbox(40)
    ids = tuple(item.entry.entry_id for item in batch)
    first, second = worker.client.push(batch), worker.client.push(batch)
    assert (first.accepted, first.duplicates, first.acknowledged) == (40, 0, ids)
    assert (second.accepted, second.duplicates, second.acknowledged) == (0, 40, ids)
    overlapping = worker.client.push(store.outbox(60))  # 40 held + 20 new
    assert (overlapping.accepted, overlapping.duplicates, overlapping.head_seq) == (20, 40, 60)
    assert store.pending_count() == 90  # nothing marked: pushed by hand, not by the worker
    result = worker.sync_once()  # sends all 90 again: 60 duplicates, 30 new, all acknowledged
    assert result.complete and result.pushed == 90
    assert_server_holds_exactly(server, store)


def test_client_killed_mid_sync_then_rerun(central, store_path, backend, keyring_env, tmp_path):
    site = site_toml(tmp_path / "site.toml", store_path, central.url, batch_size=5)
    with open_store(store_path, backend) as store:
        populate(store, 600)
    total = 600
    from workstation.cli import main

    assert main(["enrol", "--code", central.issue_code(WS), "--config", str(site)]) == 0
    central.qa_token  # noqa: B018 - issued now, not while racing the child
    command = [sys.executable, "-m", "workstation", "sync", "--once", "--config", str(site)]
    child = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: child.poll() is not None or central.status(WS)["entries"] >= 150, timeout=60,
                 what="the child pushing")
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL, f"the sync ended before it was killed: {out!r} {err!r}"
    with open_store(store_path, backend) as store:
        held = {item["entry_id"] for item in central.entries(WS)}
        marked = synced_ids(store)
        assert marked <= held  # whatever the killed client marked synced, the server holds
        assert 0 < len(held) < total and store.pending_count() > 0
    done = subprocess.run(command, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "nothing pending" in done.stdout
    with open_store(store_path, backend) as store:
        assert_server_holds_exactly(central, store)


@pytest.mark.parametrize("how", ["wrong token", "revoked"])
def test_a_rejected_token_stops_the_worker_and_marks_nothing(server, store, backend, workers, how):
    populate(store, 30)
    worker = workers(server, store, backend, batch_size=10)
    if how == "wrong token":
        keys.write_token("not-the-token", backend)
        worker.client.forget_token()
    else:
        assert worker.sync_once().complete
        server.revoke(WS)
        populate(store, 50)
    pending, held = store.pending_count(), server.status(WS)["entries"]
    worker.start()
    wait_for(lambda: worker.state.halted, what="the halt")
    state = worker.state
    assert (state.last_error, state.running, state.next_attempt_utc, state.pending) == (TOKEN_REJECTED, False, None, pending)
    time.sleep(0.3)  # stopped: no further attempts
    assert worker.state == state and store.pending_count() == pending and server.status(WS)["entries"] == held
    with pytest.raises(TokenRejected):
        worker.client.push(store.outbox(1))
    SyncClient(ServerSettings(url=server.url), WS, backend).enrol(server.issue_code(WS))  # IT issues a new code
    worker.sync_now()
    wait_for(lambda: worker.state.pending == 0 and not worker.state.last_error, what="the push after enrolment")
    assert worker.state.running and not worker.state.halted
    assert_server_holds_exactly(server, store)


def test_a_tampered_entry_is_refused_and_stays_in_the_outbox(server, store, store_path, backend, workers):
    from sqlcipher3 import dbapi2 as sqlcipher

    populate(store, 40)
    worker = workers(server, store, backend, batch_size=10, max_backoff_s=30.0)
    assert worker.sync_once().complete
    populate(store, 80)
    db = sqlcipher.connect(str(store_path), isolation_level=None)  # someone with the key edits entry 65
    db.execute(f"PRAGMA key = \"x'{backend.get_password(keys.SERVICE, keys.STORE_KEY)}'\"")
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
    db.execute("UPDATE audit SET user = 'mallory' WHERE seq = 65")
    db.close()
    result = worker.sync_once()
    refused = result.error
    assert isinstance(refused, Refused) and (refused.status, refused.error, refused.seq) == (409, "chain", 65)
    assert str(refused).startswith("server refused entry 65 (altered): ") and "hash does not match" in str(refused)
    assert refused.kind == "altered" and refused.head == (60, store.entry_hash(60))  # the 409 says the server's head
    assert result.pushed == 20 and result.pending == 20  # 41-60 went; the batch 61-70 was refused whole
    assert [i.entry.seq for i in store.outbox(100)] == list(range(61, 81))
    held = server.entries(WS)
    assert [(h["seq"], h["entry_id"]) for h in held] == [(e.seq, e.entry_id) for e in store.audit_entries()[:60]]
    incidents = server.status(WS)["incidents"]
    assert [(i["seq"], i["kind"]) for i in incidents] == [(65, "altered")]
    worker.start()  # the worker reports it and waits the longest backoff; the entries stay
    wait_for(lambda: worker.state.last_error.startswith("server refused entry 65") and worker.state.next_attempt_utc,
             what="the refusal")
    state = worker.state
    assert state.running and not state.halted and state.pending == 20
    from datetime import datetime, timezone

    wait = (datetime.fromisoformat(state.next_attempt_utc) - datetime.now(timezone.utc)).total_seconds()
    assert 25 < wait <= 30
    assert store.pending_count() == 20


def test_tls_is_verified_with_the_sites_ca_file(central_factory, store, backend, workers, tmp_path):
    from netpeers.certs import make_tls_certs

    certs = make_tls_certs(tmp_path / "certs")
    server = central_factory(certs=certs)
    populate(store, 25)
    code = server.issue_code(WS)
    with SyncClient(ServerSettings(url=server.url), WS, backend) as untrusting:  # system CAs only
        with pytest.raises(Unreachable, match="certificate not trusted"):
            untrusting.enrol(code)
    assert keys.read_token(backend) is None
    settings = ServerSettings(url=server.url, ca_file=str(certs.ca_cert), batch_size=10)
    client = SyncClient(settings, WS, backend)
    client.enrol(code)  # the code was not spent by the refused handshake
    worker = SyncWorker(store, client, settings)
    try:
        assert worker.sync_once().complete
    finally:
        client.close()
    assert_server_holds_exactly(server, store)
    wrong = ServerSettings(url=server.url, ca_file=str(certs.wrong_ca_cert))
    with SyncClient(wrong, WS, backend) as c, pytest.raises(Unreachable, match="certificate not trusted"):
        c.status()
