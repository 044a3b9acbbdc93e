"""Crash safety: a writer killed with SIGKILL at arbitrary points loses no write it reported as done, and the
store it leaves behind opens, passes integrity_check and verifies; two writers at once make one valid chain."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from store_helpers import SERIES, feedback_entry, raw_connect, raw_key, study_event

from workstation.core.review import Action
from workstation.core.roles import Role

WRITER = Path(__file__).with_name("crash_writer.py")


def start_writer(db_path: Path, backend, login: str, count: int | None = None) -> subprocess.Popen:
    args = [sys.executable, str(WRITER), str(db_path), backend.file_path, login] + ([str(count), "2"] if count else [])
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=WRITER.parent)


def reported(lines: list[str]) -> tuple[set[str], set[str]]:
    audits, feedback = set(), set()
    for line in lines:
        kind, *ids = line.split()
        if kind == "F":
            feedback.add(ids[0])
        audits.add(ids[-1])
    return audits, feedback


def check_store(open_store, db_path: Path, backend, audits: set[str], feedback: set[str]) -> int:
    store = open_store()
    stored_audit = {e.entry_id for e in store.audit_entries()}
    assert audits <= stored_audit, f"{len(audits - stored_audit)} reported entries lost"
    assert feedback <= {e.entry_id for e in store.feedback(SERIES)}
    report = store.verify()
    assert report.ok, report.first_problem
    assert report.integrity == "ok" and report.chain.entries == len(stored_audit)
    count = store.count()
    store.close()
    raw = raw_connect(db_path, raw_key(backend))
    assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    raw.close()
    return count


def test_killed_writers_lose_nothing_they_reported(open_store, db_path, backend):
    with open_store() as store:  # the store exists (key made) before the writers start
        store.append(study_event(0))
    all_audits, all_feedback = set(), set()
    for kill_after in (120, 333, 251):
        writer = start_writer(db_path, backend, "rita")
        try:
            assert writer.stdout.readline().strip() == "open", writer.stderr.read()
            lines = [writer.stdout.readline().strip() for _ in range(kill_after)]
            writer.send_signal(signal.SIGKILL)  # mid-way through the next write, most likely
            writer.wait(timeout=10)
        finally:
            if writer.poll() is None:
                writer.kill()
        assert writer.returncode == -signal.SIGKILL
        assert all(lines), writer.stderr.read()
        audits, feedback = reported(lines)
        assert len(audits) == kill_after and len(feedback) == kill_after // 3
        all_audits |= audits
        all_feedback |= feedback
        count = check_store(open_store, db_path, backend, all_audits, all_feedback)
        assert count >= len(all_audits) + 1
    with open_store() as store:
        comments = [e for e in store.feedback(SERIES) if e.action is Action.COMMENT]
        assert len(comments) >= len(all_feedback)


def test_two_store_objects_on_one_file_make_one_chain(open_store, db_path):
    first, second = open_store(Role.REVIEWER, "rita"), open_store(Role.RADIOLOGIST, "carol", workstation="ws-2")
    for i in range(30):
        (first if i % 2 else second).append(study_event(i))
        if i % 7 == 0:
            (second if i % 2 else first).append(study_event(i, again=True))
    entries = first.audit_entries()
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1)) and len(entries) == 35
    assert {e.user for e in entries} == {"rita", "carol"}
    assert first.verify().ok and second.verify().ok
    assert second.audit_entries() == entries


def test_two_writer_processes_at_once_make_one_chain(open_store, db_path, backend):
    with open_store() as store:
        store.append(study_event(0))
    writers = [start_writer(db_path, backend, login, count=150) for login in ("rita", "rosa")]
    for writer in writers:  # both open, then both go
        assert writer.stdout.readline().strip() == "open", writer.stderr.read()
    for writer in writers:
        writer.stdin.write("go\n")
        writer.stdin.flush()
    outputs = []
    for writer in writers:
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        outputs.append(out.splitlines())
    audits, feedback = reported(outputs[0] + outputs[1])
    assert len(audits) == 300 and len(feedback) == 100
    store = open_store()
    entries = store.audit_entries()
    assert len(entries) == 301 and {e.entry_id for e in entries[1:]} == audits
    writers_in_order = [e.workstation_id for e in entries[1:]]
    assert set(writers_in_order) == {"ws-rita", "ws-rosa"}
    switches = sum(a != b for a, b in zip(writers_in_order, writers_in_order[1:]))
    # at least a few turns each way (how many depends on the scheduler of a loaded machine: 24-60 seen on 2 cores)
    assert switches >= 10, f"the writers hardly took turns ({switches} switches): not a concurrency test"
    assert store.verify().ok


class FailingCommit:
    """The store's connection, except that the next COMMIT fails as on a full disk (SQLite: roll back then)."""

    def __init__(self, db) -> None:
        self._db, self.armed = db, True

    def execute(self, sql, *args):
        if sql == "COMMIT" and self.armed:
            self.armed = False
            from sqlcipher3 import dbapi2 as sqlcipher

            raise sqlcipher.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_a_failed_commit_writes_nothing_and_the_store_stays_usable(open_store):
    store = open_store()
    store.append(study_event(0))
    store._db = FailingCommit(store._db)
    with pytest.raises(Exception, match="disk is full"):
        store.record_feedback(feedback_entry(store.identity.user, Action.ACCEPT))
    assert store.count() == 1 and store.count("feedback") == 0
    store.append(study_event(1))  # no transaction was left open
    assert store.count() == 2 and store.verify().ok
