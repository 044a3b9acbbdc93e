"""Someone with the key edits the file with SQLCipher directly: the append-only triggers stop plain edits,
and once they are dropped `Store.verify()` names the first entry that does not fit, and how."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from sqlcipher3 import dbapi2 as sqlcipher
from store_helpers import FINDINGS, MODEL, SERIES, STUDY, feedback_entry, raw_connect, raw_key, study_event

from workstation.core.audit import AuditEvent, chain_entry
from workstation.core.findings import InferenceResult
from workstation.core.review import Action
from workstation.core.roles import Role, User
from workstation.store.database import now_utc

# seq: 1-4 plain, 5 accept (feedback), 6-7 plain, 8 comment (feedback), 9 inference run, 10-12 plain
PLAIN = 4


@pytest.fixture
def filled(open_store, db_path, backend):
    """A closed store of 12 entries; returns (db_path, key hex, {seq: entry}, feedback entries)."""
    store = open_store()
    user = store.identity.user
    for i in range(4):
        store.append(study_event(i))
    store.record_feedback(feedback_entry(user, Action.ACCEPT, "a"))
    store.append(study_event(5))
    store.append(study_event(6))
    store.record_feedback(feedback_entry(user, Action.COMMENT, "b", comment="see prior"))
    result = InferenceResult(MODEL, "cpu", STUDY, SERIES, FINDINGS, np.zeros((1, 1, 1), np.uint8), 0.3, now_utc())
    store.record_inference(result, AuditEvent("inference.run", now_utc(), {"model": str(MODEL)}, STUDY))
    for i in range(3):
        store.append(study_event(10 + i))
    entries = {e.seq: e for e in store.audit_entries()}
    assert len(entries) == 12 and store.verify().ok
    assert [entries[s].kind for s in (5, 8, 9)] == ["finding.accept", "finding.comment", "inference.run"]
    feedback = store.feedback(SERIES)
    store.close()
    return db_path, raw_key(backend), entries, feedback


def verify(open_store):
    store = open_store()
    try:
        return store.verify()
    finally:
        store.close()


def test_the_append_only_triggers_refuse_edits_and_deletes(filled):
    db_path, key, _, _ = filled
    db = raw_connect(db_path, key)
    for sql in ("UPDATE audit SET user = 'mallory' WHERE seq = 4", "DELETE FROM audit WHERE seq = 4",
                "UPDATE feedback SET payload = '{}'", "DELETE FROM inference_runs"):
        with pytest.raises(sqlcipher.DatabaseError, match="append-only"):
            db.execute(sql)
    db.execute("UPDATE audit SET synced = 1 WHERE seq <= 3")  # the sync flag is the one thing that may change
    db.close()


@pytest.mark.parametrize("seq", [1, PLAIN, 12])
@pytest.mark.parametrize("column, value", [
    ("user", "mallory"), ("at_utc", "2020-01-01T00:00:00.000+00:00"), ("outcome", 12),
    ("study_instance_uid", "1.2.999"), ("details", json.dumps({"instances": 1})), ("hash", "0" * 64),
])
def test_an_edited_audit_column_is_named_as_altered(filled, open_store, seq, column, value):
    db_path, key, entries, _ = filled
    db = raw_connect(db_path, key, drop_triggers=True)
    db.execute(f"UPDATE audit SET {column} = ? WHERE seq = ?", (value, seq))
    db.close()
    problem = verify(open_store).first_problem
    assert (problem.kind, problem.seq, problem.entry_id) == ("altered", seq, entries[seq].entry_id)
    assert f"entry {seq} was altered" in problem.message


def test_an_edited_and_rehashed_entry_breaks_the_next_link(filled, open_store):
    db_path, key, entries, _ = filled
    forged = chain_entry(PLAIN, entries[PLAIN].entry_id, entries[PLAIN].workstation_id, "mallory", "reviewer",
                         study_event(3), entries[PLAIN].prev_hash)
    db = raw_connect(db_path, key, drop_triggers=True)
    db.execute("UPDATE audit SET user = ?, at_utc = ?, details = ?, hash = ? WHERE seq = ?",
               (forged.user, forged.at_utc, json.dumps(forged.details), forged.hash, PLAIN))
    db.close()
    problem = verify(open_store).first_problem
    assert (problem.kind, problem.seq) == ("broken-link", PLAIN + 1)


@pytest.mark.parametrize("seq", [2, PLAIN, 7])
def test_a_deleted_audit_row_is_named(filled, open_store, seq):
    db_path, key, _, _ = filled
    db = raw_connect(db_path, key, drop_triggers=True)
    db.execute("DELETE FROM audit WHERE seq = ?", (seq,))
    db.close()
    problem = verify(open_store).first_problem
    assert (problem.kind, problem.seq) == ("deleted", seq)


@pytest.mark.parametrize("valid_looking", [True, False], ids=["rehashed", "garbage-hash"])
@pytest.mark.parametrize("k", [1, PLAIN, 7])
def test_an_inserted_row_is_named(filled, open_store, k, valid_looking):
    """Rows seq >= k are renumbered (from the top down) with their feedback/inference links, then a row goes in at k."""
    db_path, key, entries, _ = filled
    prev = entries[k - 1].hash if k > 1 else "0" * 64
    forged = chain_entry(k, str(uuid.uuid4()), "ws-test", "mallory", "reviewer", study_event(99), prev)
    db = raw_connect(db_path, key, drop_triggers=True)
    db.execute("BEGIN")
    for seq in sorted((s for s in entries if s >= k), reverse=True):
        db.execute("UPDATE audit SET seq = seq + 1 WHERE seq = ?", (seq,))
        for table in ("feedback", "inference_runs"):
            db.execute(f"UPDATE {table} SET audit_seq = audit_seq + 1 WHERE audit_seq = ?", (seq,))
    db.execute(
        "INSERT INTO audit (seq, entry_id, workstation_id, at_utc, kind, user, role, study_instance_uid, outcome,"
        " outcome_text, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (k, forged.entry_id, forged.workstation_id, forged.at_utc, forged.kind, forged.user, forged.role,
         forged.study_instance_uid, forged.outcome, forged.outcome_text, json.dumps(forged.details),
         forged.prev_hash, forged.hash if valid_looking else "f" * 64))
    db.execute("COMMIT")
    db.close()
    report = verify(open_store)
    assert report.record_problem is None  # the links were renumbered too: only the chain shows it
    problem = report.first_problem
    assert (problem.kind, problem.seq, problem.entry_id) == ("inserted", k, forged.entry_id)


def test_an_edited_feedback_payload_is_named_as_altered(filled, open_store):
    db_path, key, entries, feedback = filled
    comment = feedback[1]
    payload = {**comment.to_dict(), "comment": "see prior - no change"}
    db = raw_connect(db_path, key, drop_triggers=True)
    db.execute("UPDATE feedback SET payload = ? WHERE entry_id = ?", (json.dumps(payload), comment.entry_id))
    db.close()
    report = verify(open_store)
    assert report.chain.ok and not report.ok
    problem = report.first_problem
    assert (problem.kind, problem.seq, problem.entry_id) == ("altered", 8, comment.entry_id)
    assert "feedback row" in problem.message


def test_an_edited_inference_record_is_named_as_altered(filled, open_store):
    db_path, key, entries, _ = filled
    db = raw_connect(db_path, key, drop_triggers=True)
    (payload,) = db.execute("SELECT payload FROM inference_runs").fetchone()
    data = json.loads(payload)
    data["findings"] = data["findings"][1:]  # hide the strongest finding
    db.execute("UPDATE inference_runs SET payload = ?", (json.dumps(data),))
    db.close()
    problem = verify(open_store).first_problem
    assert (problem.kind, problem.seq) == ("altered", 9)
    assert "inference_runs row" in problem.message


def test_a_deleted_feedback_row_is_named(filled, open_store):
    db_path, key, entries, feedback = filled
    db = raw_connect(db_path, key, drop_triggers=True)
    db.execute("DELETE FROM feedback WHERE entry_id = ?", (feedback[0].entry_id,))
    db.close()
    problem = verify(open_store).first_problem
    assert (problem.kind, problem.seq, problem.entry_id) == ("deleted", 5, feedback[0].entry_id)


def test_a_feedback_row_without_its_own_audit_entry_is_named(filled, open_store):
    db_path, key, entries, feedback = filled
    extra = feedback_entry(User(entries[5].user, Role(entries[5].role)), Action.REJECT, "c")
    db = raw_connect(db_path, key, drop_triggers=True)
    db.execute("INSERT INTO feedback (entry_id, audit_seq, series_instance_uid, finding_id, payload) VALUES (?,?,?,?,?)",
               (extra.entry_id, 6, SERIES, "c", json.dumps(extra.to_dict())))
    db.close()
    problem = verify(open_store).first_problem
    assert (problem.kind, problem.seq, problem.entry_id) == ("inserted", 6, extra.entry_id)


@pytest.mark.parametrize("table, column, value, seq", [
    ("feedback", "series_instance_uid", "1.2.other", 8),  # hides the comment from its series
    ("feedback", "finding_id", "c", 5),
    ("feedback", "payload", "{not json", 5),
    ("inference_runs", "version", "0.9.0", 9),
    ("inference_runs", "series_instance_uid", "1.2.other", 9),
])
def test_an_edited_lookup_column_of_a_record_is_named_as_altered(filled, open_store, table, column, value, seq):
    db_path, key, _, _ = filled
    db = raw_connect(db_path, key, drop_triggers=True)
    db.execute(f"UPDATE {table} SET {column} = ? WHERE audit_seq = ?", (value, seq))
    db.close()
    report = verify(open_store)
    assert report.chain.ok
    problem = report.first_problem
    assert (problem.kind, problem.seq) == ("altered", seq)
