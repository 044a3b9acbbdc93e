"""`workstation audit verify|export` on a real encrypted store, with the keyring chosen explicitly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import keyring.core
import pytest
from sqlcipher3 import dbapi2 as sqlcipher

from workstation.cli import main
from workstation.core.audit import AuditEvent, Outcome
from workstation.core.roles import User
from workstation.services.audit_export import load_json
from workstation.store import keys
from workstation.store.database import Identity, Store

STUDY = "1.2.826.0.1.3680043.8.498.77"


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site where `ada` is admin and `rob` radiologist (login from $WS_LOGIN), a file keyring under tmp_path."""
    config = tmp_path / "site.toml"
    config.write_text(f"""
[workstation]
id = "ws-audit"
ae_title = "WS-AUDIT"

[store]
path = "{tmp_path / 'store.sqlite'}"

[users]
login_variable = "WS_LOGIN"
roles = {{ ada = "admin", rob = "radiologist" }}
""", encoding="utf-8")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("WS_LOGIN", "ada")
    return config


def run(site, *argv, login="ada"):
    os.environ["WS_LOGIN"] = login  # restored by the fixture's monkeypatch
    return main(["audit", *argv, "--config", str(site)])


def open_store(site) -> Store:
    backend = keyring.core.load_env()  # the same file keyring the CLI used
    return Store.open(site.parent / "store.sqlite", Identity(User("tester", None), "ws-test"), backend)


def seed(site, events) -> None:
    with open_store(site) as store:
        for event in events:
            store.append(event)


def kinds(site) -> list[str]:
    with open_store(site) as store:
        return [e.kind for e in store.audit_entries()]


def test_verify_ok_on_a_fresh_store_with_entries(site, capsys):
    seed(site, [AuditEvent("study.opened", "2025-01-01T10:00:00.000+00:00", {"series_count": 1}, STUDY),
                AuditEvent("pacs.query", "2025-01-01T10:01:00.000+00:00", {"node": "MAIN", "keys": ["patient_id"], "matches": 1})])
    assert run(site, "verify") == 0
    out = capsys.readouterr().out
    with open_store(site) as store:
        entries = store.audit_entries()
    # verified: the 2 seeded entries plus this run's application.start and session.start
    verified = entries[:4]
    assert f"audit trail OK: 4 entries, head {verified[-1].hash}" in out
    assert "store integrity: ok" in out
    assert [e.kind for e in entries] == ["study.opened", "pacs.query", "application.start", "session.start",
                                         "audit.verify", "session.end", "application.stop"]
    recorded = entries[4]
    assert (recorded.user, recorded.role, recorded.outcome) == ("ada", "admin", 0)
    assert recorded.details == {"entries": 4, "head": verified[-1].hash, "integrity": "ok"}


def test_verify_names_the_tampered_entry(site, capsys):
    seed(site, [AuditEvent("study.opened", "2025-01-01T10:00:00.000+00:00", {"series_count": 1}, STUDY),
                AuditEvent("finding.comment", "2025-01-01T10:02:00.000+00:00", {"finding_id": "a"}, STUDY),
                AuditEvent("study.opened", "2025-01-01T10:03:00.000+00:00", {"series_count": 2}, STUDY)])
    with open_store(site) as store:
        tampered = store.audit_entries()[1]
    key = keys.read_key(keyring.core.load_env())  # the hex key, through the keyring API
    db = sqlcipher.connect(str(site.parent / "store.sqlite"))
    db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    db.execute("DROP TRIGGER audit_append_only_update")
    db.execute("UPDATE audit SET details = ? WHERE seq = 2", (json.dumps({"finding_id": "b"}),))
    db.commit()
    db.close()

    assert run(site, "verify") == 1
    out = capsys.readouterr().out
    assert "audit trail BROKEN" in out
    assert f"first problem at entry 2 (entry id {tampered.entry_id}): altered: entry 2 was altered" in out
    assert "store integrity: ok" in out
    with open_store(site) as store:
        (recorded,) = [e for e in store.audit_entries() if e.kind == "audit.verify"]
    assert recorded.outcome == Outcome.SERIOUS_FAILURE and "entry 2 was altered" in recorded.outcome_text
    assert (recorded.details["problem_seq"], recorded.details["problem_entry_id"]) == (2, tampered.entry_id)


def test_export_json_by_admin_with_since(site, tmp_path, capsys):
    seed(site, [AuditEvent("study.opened", "2024-06-01T10:00:00.000+00:00", {"series_count": 1}, STUDY),
                AuditEvent("pacs.retrieve", "2024-06-02T10:00:00.000+00:00",
                           {"node": "MAIN", "method": "get", "series_count": 0, "instances_stored": 30}, STUDY)])
    out_file = tmp_path / "trail.json"
    assert run(site, "export", "--format", "json", "--output", str(out_file)) == 0
    header, entries = load_json(out_file.read_text(encoding="utf-8"))
    assert (header["workstation_id"], header["count"]) == ("ws-audit", 4)
    assert [e.kind for e in entries] == ["study.opened", "pacs.retrieve", "application.start", "session.start"]
    assert header["chain"] == {"entries": 4, "head": entries[-1].hash, "ok": True}
    assert oct(out_file.stat().st_mode & 0o777) == "0o600"
    assert "exported 4 audit entries (json)" in capsys.readouterr().err

    # --since: only what happened at or after it (the seeded entries are dated 2024-06-01 and -02)
    assert run(site, "export", "--since", "2024-06-02") == 0
    header, entries = load_json(capsys.readouterr().out)
    assert entries[0].kind == "pacs.retrieve" and "study.opened" not in [e.kind for e in entries]
    assert header["since"] == "2024-06-02T00:00:00.000+00:00"
    assert header["chain"]["head"] == entries[-1].hash  # nothing after the collected entries but this run's own
    with open_store(site) as store:
        exports = [e for e in store.audit_entries() if e.kind == "audit.export"]
    first, second = exports
    assert first.details["count"] == 4 and first.details["format"] == "json" and first.details["since"] == ""
    assert first.details["destination"] == "file"
    assert second.details["since"] == "2024-06-02T00:00:00.000+00:00" and second.details["count"] == len(entries)
    # the export entry is written after the entries were collected: it is not in its own export
    assert second.entry_id not in [e.entry_id for e in entries]


def test_export_dicom_xml_by_admin(site, capsys):
    seed(site, [AuditEvent("pacs.retrieve", "2024-06-02T10:00:00.000+00:00",
                           {"node": "MAIN", "method": "move", "series_count": 1, "instances_stored": 30}, STUDY),
                AuditEvent("finding.accept", "2024-06-03T10:00:00.000+00:00", {"finding_id": "a"}, STUDY)])
    assert run(site, "export", "--format", "dicom-xml", "--since", "2024-06-02T12:00:00Z") == 0
    root = ET.fromstring(capsys.readouterr().out.encode("utf-8"))
    messages = root.findall("AuditMessage")
    assert root.get("count") == str(len(messages)) == "3"  # finding.accept, application.start, session.start
    event = messages[0].find("EventIdentification")
    assert (event.find("EventID").get("csd-code"), event.get("EventActionCode")) == ("110103", "U")
    assert messages[0].find("ActiveParticipant").get("UserID") == "tester"
    assert [m.find("ActiveParticipant").get("UserID") for m in messages[1:]] == ["ada", "ada"]
    assert messages[1].find("AuditSourceIdentification").get("AuditSourceID") == "ws-audit"
    assert messages[1].findall("ActiveParticipant")[1].get("AlternativeUserID") == "AETITLES=WS-AUDIT"
    with open_store(site) as store:
        (recorded,) = [e for e in store.audit_entries() if e.kind == "audit.export"]
    assert recorded.details["format"] == "dicom-xml" and recorded.details["count"] == 3


def test_export_refused_for_a_radiologist_and_recorded(site, tmp_path, capsys):
    out_file = tmp_path / "trail.json"
    assert run(site, "export", "--output", str(out_file), login="rob") == 2
    err = capsys.readouterr().err
    assert "rob (radiologist) may not export the audit trail" in err and "admin" in err
    assert not out_file.exists()
    with open_store(site) as store:
        entries = store.audit_entries()
    assert "audit.export" not in [e.kind for e in entries]
    (denied,) = [e for e in entries if e.kind == "access.denied"]
    assert (denied.user, denied.role, denied.outcome) == ("rob", "radiologist", Outcome.MINOR_FAILURE)
    assert denied.details == {"permission": "admin.export-audit", "reason": "audit export refused"}


def test_a_locked_store_says_why_and_exits_3(site, capsys):
    seed(site, [AuditEvent("study.opened", "2024-06-01T10:00:00.000+00:00", {}, STUDY)])
    keyring_file = keyring.core.load_env().file_path
    os.remove(keyring_file)  # the key is gone: the store must stay shut and untouched
    before = (site.parent / "store.sqlite").read_bytes()
    assert run(site, "verify") == 3
    err = capsys.readouterr().err
    assert "cannot be opened" in err and "holds no key" in err and "Traceback" not in err
    assert (site.parent / "store.sqlite").read_bytes() == before


def test_bad_since_is_a_usage_error(site, capsys):
    assert run(site, "export", "--since", "yesterday") == 2
    assert "--since" in capsys.readouterr().err


def test_the_entry_point_runs_verify(site, tmp_path):
    env = {**os.environ, "WS_LOGIN": "rob"}
    done = subprocess.run([sys.executable, "-m", "workstation", "audit", "--config", str(site), "verify"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("audit trail OK: 2 entries, head ")
    assert kinds(site) == ["application.start", "session.start", "audit.verify", "session.end", "application.stop"]
