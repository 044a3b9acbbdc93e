"""`workstation results send|status` against a real Orthanc (and a dead node), with a real encrypted store."""

from __future__ import annotations

import json

import keyring.core
import pytest

from netpeers.process import LOCALHOST, free_port
from results_data import run_context
from workstation.cli import main
from workstation.core.audit import AuditEvent
from workstation.core.findings import InferenceResult
from workstation.core.roles import Role, User
from workstation.store.database import Identity, Store


def site_file(tmp_path, monkeypatch, ws_ae, port: int) -> str:
    config = tmp_path / "site.toml"
    config.write_text(f"""
[workstation]
id = "ws-cli"
ae_title = "{ws_ae.aet}"
[store]
path = "{tmp_path / 'store.sqlite'}"
[users]
login_variable = "WS_LOGIN"
roles = {{ carol = "radiologist" }}
[pacs.MAIN]
ae_title = "ORTHANC"
host = "{LOCALHOST}"
port = {port}
timeout_s = 3
retries = 0
[results]
node = "MAIN"
""", encoding="utf-8")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("WS_LOGIN", "carol")
    return str(config)


def store_run(tmp_path, study) -> None:
    run = run_context(study)
    series = str(run.sources[0].SeriesInstanceUID)
    result = InferenceResult(run.model, "cpu", study.study_instance_uid, series, run.findings, run.heatmap, 1.0,
                             run.started_utc)
    with Store.open(tmp_path / "store.sqlite", Identity(User("carol", Role.RADIOLOGIST), "ws-cli"),
                    keyring.core.load_env()) as store:
        store.record_inference(result, AuditEvent("inference.run", run.started_utc, {}))


def test_send_builds_queues_and_sends_then_status_says_sent(tmp_path, monkeypatch, ws_ae, orthanc, net_demo_study,
                                                            capsys):
    config = site_file(tmp_path, monkeypatch, ws_ae, orthanc.port)
    store_run(tmp_path, net_demo_study)
    uid = net_demo_study.study_instance_uid
    assert main(["results", "send", "--study", uid, str(net_demo_study.directory), "--config", config]) == 0
    out = capsys.readouterr().out
    assert "queued 3 object(s)" in out and "MAIN: 3 sent" in out and "Results: 3 sent to MAIN" in out
    assert orthanc.instance_count() == 3
    assert main(["results", "status", "--json", "--config", config]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "workstation.results-status/1"
    assert sorted(o["kind"] for o in document["objects"]) == ["ai-sr", "gsps", "pmap"]
    assert {o["state"] for o in document["objects"]} == {"sent"}
    assert main(["results", "send", "--study", uid, str(net_demo_study.directory), "--config", config]) == 0
    assert orthanc.instance_count() == 3  # nothing sent twice


def test_send_to_a_dead_pacs_exits_1_with_the_reason_and_keeps_the_objects(tmp_path, monkeypatch, ws_ae,
                                                                           net_demo_study, capsys):
    config = site_file(tmp_path, monkeypatch, ws_ae, free_port())
    store_run(tmp_path, net_demo_study)
    code = main(["results", "send", "--study", net_demo_study.study_instance_uid, str(net_demo_study.directory),
                 "--config", config])
    out = capsys.readouterr().out
    assert code == 1 and "3 to retry" in out and "waiting to retry" in out
    assert main(["results", "status", "--config", config]) == 1
    assert capsys.readouterr().out.count("retrying") == 3
