"""The monitoring projection on its own (the server's SQLite schema, no process): a reopen takes a run's decisions
back and the next sign-off counts instead; a repeated run id counts once; unreadable records are left out; the
rules' limits come from the configuration (and a bad key is named)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, update

from workstation.core.audit import GENESIS
from workstation.server import db
from workstation.server.monitoring import alerts, config, projection, queries

WS = "ws-proj"


class Entries:
    def __init__(self, tmp_path):
        self.engine = db.make_engine(f"sqlite:///{tmp_path / 'central.sqlite'}")
        db.create_schema(self.engine)
        with db.write(self.engine) as conn:
            conn.execute(insert(db.workstations).values(id=WS, head_seq=0, head_hash=GENESIS, entries=0))
        self.seq = 0

    def push(self, kind: str, record: dict | None, at: datetime | None = None) -> None:
        self.seq += 1
        when = (at or datetime.now(timezone.utc)).isoformat()
        item = {"seq": self.seq, "entry_id": str(uuid.uuid4()), "kind": kind, "at_utc": when, "record": record}
        with db.write(self.engine) as conn:
            conn.execute(insert(db.entries).values(workstation_id=WS, seq=self.seq, entry_id=item["entry_id"], kind=kind,
                                                   at_utc=when, received_utc=when, item=json.dumps(item)))
            conn.execute(update(db.workstations).values(head_seq=self.seq, entries=self.seq))

    def run(self, run_id: str, series: str, scores: list[float], at: datetime, version: str = "1.0.0") -> list[str]:
        ids = [f"{run_id}-{k}" for k in range(len(scores))]
        payload = {"run_id": run_id, "model": {"name": "m", "version": version, "sha256": "ab" * 32}, "device": "cpu",
                   "series_instance_uid": series, "started_utc": at.isoformat(),
                   "findings": [{"finding_id": i, "label": "nodule", "score": s} for i, s in zip(ids, scores)]}
        self.push("inference.run", {"kind": "inference", "id": run_id, "payload": payload}, at)
        return ids

    def signoff(self, series: str, states: dict[str, str], version: str = "1.0.0") -> str:
        entry_id = str(uuid.uuid4())
        payload = {"entry_id": entry_id, "action": "signoff", "series_instance_uid": series, "model_name": "m",
                   "model_version": version, "at_utc": datetime.now(timezone.utc).isoformat(),
                   "details": {"findings": [{"finding_id": f, "state": s} for f, s in states.items()]}}
        self.push("review.signoff", {"kind": "feedback", "id": entry_id, "payload": payload})
        return entry_id

    def reopen(self, series: str, signoff: str) -> None:
        entry_id = str(uuid.uuid4())
        payload = {"entry_id": entry_id, "action": "reopen", "series_instance_uid": series, "model_name": "m",
                   "model_version": "1.0.0", "reverts": signoff, "at_utc": datetime.now(timezone.utc).isoformat()}
        self.push("review.reopen", {"kind": "feedback", "id": entry_id, "payload": payload})

    def version(self) -> dict:
        projection.refresh(self.engine)
        with db.read(self.engine) as conn:
            (row,) = queries.versions(conn)
            return row


def test_reopen_takes_decisions_back_and_the_next_signoff_counts(tmp_path):
    e = Entries(tmp_path)
    at = datetime.now(timezone.utc) - timedelta(days=3)
    ids = e.run("r1", "1.2.3.4.5.1", [0.9, 0.8, 0.7, 0.6], at)
    first = e.signoff("1.2.3.4.5.1", {ids[0]: "accepted", ids[1]: "accepted", ids[2]: "accepted", ids[3]: "rejected",
                                      "added-1": "added"})
    row = e.version()
    assert (row["runs"], row["signed_runs"], row["decided"], row["acceptance"], row["added_per_run"]) == (1, 1, 4, 0.75, 1)
    e.reopen("1.2.3.4.5.1", first)
    row = e.version()
    assert (row["signed_runs"], row["decided"], row["pending"], row["acceptance"], row["added"]) == (0, 0, 4, None, 0)
    e.signoff("1.2.3.4.5.1", {ids[0]: "accepted", ids[1]: "rejected", ids[2]: "deleted", ids[3]: "rejected"})
    row = e.version()
    assert (row["signed_runs"], row["decided"], row["pending"], row["acceptance"], row["rejection_rate"]) == (
        1, 4, 0, 0.25, 0.75)
    with db.read(e.engine) as conn:
        bins = queries.score_bins(conn, "m", "1.0.0")
    assert [(b["bin"], b["accepted"], b["rejected"]) for b in bins if b["findings"]] == [
        (12, 0, 1), (14, 0, 1), (16, 0, 1), (18, 1, 0)]


def test_repeated_run_and_unreadable_records_are_left_out(tmp_path):
    e = Entries(tmp_path)
    at = datetime.now(timezone.utc) - timedelta(days=1)
    e.run("r1", "1.2.3.4.5.2", [0.9], at)
    assert e.version()["runs"] == 1
    e.run("r1", "1.2.3.4.5.2", [0.9, 0.8], at)  # the same run id again (a later pass): counted once
    e.push("inference.run", {"kind": "inference", "id": "x", "payload": {"model": "not a mapping"}})
    e.push("inference.run", {"kind": "inference", "id": "y", "payload": ["a", "list"]})
    e.push("review.signoff", {"kind": "feedback", "id": "z", "payload": {"series_instance_uid": "nothing"}})
    e.push("inference.run", None)
    row = e.version()
    assert (row["runs"], row["findings"]) == (1, 1)
    assert e.seq == 6 and projection.refresh(e.engine) == 0  # everything read once


def test_limits_from_the_configuration(tmp_path):
    e = Entries(tmp_path)
    now = datetime.now(timezone.utc)
    for week in range(6, 0, -1):  # 30 decided findings a week: 90 % for five weeks, then 40 %
        for k in range(3):
            series = f"1.2.3.4.6.{week}.{k}"
            ids = e.run(f"w{week}-{k}", series, [0.9] * 10, now - timedelta(weeks=week))
            rate = 9 if week > 1 else 4
            e.signoff(series, {f: ("accepted" if i < rate else "rejected") for i, f in enumerate(ids)})
    projection.refresh(e.engine)
    with db.read(e.engine) as conn:
        fired = alerts.evaluate(conn, config.MonitoringConfig())
        assert [a.rule for a in fired] == ["acceptance"] and fired[0].baseline == "own"
        assert alerts.evaluate(conn, config.parse({"monitoring": {"min_decided_week": 31}})) == []
        assert alerts.evaluate(conn, config.parse({"monitoring": {"baseline_days": 42}})) == []  # no week after it
    with pytest.raises(ValueError, match="monitoring.psi_limit: unknown key"):
        config.parse({"monitoring": {"psi_limit": 0.2}})
    with pytest.raises(ValueError, match="monitoring.confidence"):
        config.parse({"monitoring": {"confidence": 1.5}})
    with pytest.raises(ValueError, match="monitoring.new_input: must be true or false"):
        config.parse({"monitoring": {"new_input": 1}})


def test_refused_sign_ins_are_limited_per_address(tmp_path):
    from fastapi.testclient import TestClient

    from workstation.server.app import create_app

    with TestClient(create_app(f"sqlite:///{tmp_path / 'central.sqlite'}")) as client:
        codes = [client.post("/dashboard/sign-in", data={"token": f"guess-{i}"}).status_code for i in range(21)]
        assert codes == [401] * 20 + [429]
        refused = client.post("/dashboard/sign-in", data={"token": "another"})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "too many refused sign-ins" in refused.text


def test_entries_going_back_are_read_again(tmp_path):
    """A server database restored with entries older than what monitoring read: everything is read again."""
    e = Entries(tmp_path)
    at = datetime.now(timezone.utc) - timedelta(days=2)
    ids = e.run("r1", "1.2.3.4.7.1", [0.9, 0.8], at)
    e.signoff("1.2.3.4.7.1", {ids[0]: "accepted", ids[1]: "accepted"})
    assert e.version()["acceptance"] == 1.0
    with db.write(e.engine) as conn:  # back to before the sign-off, then another decision arrives
        conn.execute(db.entries.delete().where(db.entries.c.seq == 2))
        conn.execute(update(db.workstations).values(head_seq=1, entries=1))
    e.seq = 1
    row = e.version()
    assert (row["runs"], row["decided"], row["pending"]) == (1, 0, 2)
    e.signoff("1.2.3.4.7.1", {ids[0]: "rejected", ids[1]: "accepted"})
    row = e.version()
    assert (row["runs"], row["decided"], row["acceptance"]) == (1, 2, 0.5)


def test_monitor_command_reads_the_rules_from_the_configuration(tmp_path, capsys, monkeypatch):
    from workstation.server.cli import main

    e = Entries(tmp_path)
    now = datetime.now(timezone.utc)
    for week in range(6, 0, -1):
        series = f"1.2.3.4.8.{week}"
        ids = e.run(f"c{week}", series, [0.9] * 30, now - timedelta(weeks=week))
        e.signoff(series, {f: ("accepted" if i < (27 if week > 1 else 10) else "rejected") for i, f in enumerate(ids)})
    url = str(e.engine.url)
    monkeypatch.delenv("WORKSTATION_SERVER_CONFIG", raising=False)
    assert main(["monitor", "--database", url]) == 1  # an acceptance alert is open
    assert "m 1.0.0 acceptance since" in capsys.readouterr().out
    lenient = tmp_path / "lenient.toml"
    lenient.write_text("[monitoring]\nmin_decided_week = 100\n")
    assert main(["monitor", "--database", url, "--config", str(lenient)]) == 0
    assert "Open alerts: 0" in capsys.readouterr().out
    monkeypatch.setenv("WORKSTATION_SERVER_CONFIG", str(lenient))
    assert main(["monitor", "--database", url]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[monitoring]\nbaseline = 3\n")
    assert main(["monitor", "--database", url, "--config", str(bad)]) == 2
    assert "monitoring.baseline: unknown key" in capsys.readouterr().err


def test_score_shift_fires_the_score_rule(tmp_path):
    e = Entries(tmp_path)
    now = datetime.now(timezone.utc)
    for week in range(6, 0, -1):  # every finding accepted; scores around 0.9, then around 0.55 in the last week
        series = f"1.2.3.4.9.{week}"
        scores = [0.88 + 0.01 * (i % 5) for i in range(20)] if week > 1 else [0.53 + 0.01 * (i % 5) for i in range(20)]
        ids = e.run(f"s{week}", series, scores, now - timedelta(weeks=week))
        e.signoff(series, {f: "accepted" for f in ids})
    projection.refresh(e.engine)
    limits = config.parse({"monitoring": {"min_findings_week": 10, "min_decided_week": 10}})
    with db.read(e.engine) as conn:
        (fired,) = alerts.evaluate(conn, limits)
        assert fired.rule == "scores" and fired.weeks == 1 and fired.value > limits.psi_max
        assert "PSI" in fired.message and "KS D 1.00" in fired.message
        assert alerts.evaluate(conn, config.parse({"monitoring": {"min_findings_week": 10, "min_decided_week": 10,
                                                                  "psi_max": 100, "ks_alpha": 1e-300}})) == []
