"""`workstation report draft|show|edit|send` on a real encrypted store, to a real MLLP listener."""

from __future__ import annotations

import json

import keyring.core
import pytest
from peers import MllpListener
from results_helpers import record_run, review_run

from workstation.cli import main
from workstation.core.roles import Role, User
from workstation.store.database import Identity, Store


def site_file(tmp_path, monkeypatch, port: int):
    config = tmp_path / "site.toml"
    config.write_text(f"""
[workstation]
id = "ws-reports"
[store]
path = "{tmp_path / 'store.sqlite'}"
[users]
login_variable = "WS_LOGIN"
roles = {{ bob = "reviewer" }}
[ris]
host = "127.0.0.1"
port = {port}
timeout_s = 2.0
""", encoding="utf-8")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("WS_LOGIN", "bob")
    return config


def test_draft_edit_send_and_show(tmp_path, monkeypatch, capsys, study, display_set):
    with MllpListener("AE") as ris:
        config = str(site_file(tmp_path, monkeypatch, ris.port))
        with Store.open(tmp_path / "store.sqlite", Identity(User("bob", Role.REVIEWER), "ws-reports"),
                        keyring.core.load_env()) as store:
            review_run(store, display_set, record_run(store, display_set))
        uid = display_set.series.study.study_instance_uid
        assert main(["report", "show", "--study", uid, "--config", config]) == 1  # nothing yet
        assert main(["report", "send", "--study", uid, "--config", config]) == 2  # no draft: refused
        assert "no report draft" in capsys.readouterr().err
        assert main(["report", "draft", str(study.directory), "--study", uid, "--config", config]) == 0
        assert "IMPRESSION:" in capsys.readouterr().out
        text = tmp_path / "report.txt"
        text.write_text("FINDINGS: a 5 mm nodule.\nIMPRESSION: follow-up CT in 12 months.\n", encoding="utf-8")
        assert main(["report", "edit", "--study", uid, "--file", str(text), "--config", config]) == 0
        capsys.readouterr()
        assert main(["report", "send", "--study", uid, "--format", "hl7", "--json", "--config", config]) == 1
        document = json.loads(capsys.readouterr().out)
        [delivery] = document["deliveries"]
        assert delivery["state"] == "rejected" and "no such order" in delivery["reason"]
        assert document["version"]["kind"] == "final" and "follow-up CT" in document["version"]["text"]
        ris.mode = "AA"
        assert main(["report", "send", "--study", uid, "--retry", "--config", config]) == 0
        assert "HL7 to mllp://127.0.0.1" in capsys.readouterr().out
    assert len({str(m.segment("MSH")[10]) for m in ris.received}) == 1 and len(ris.received) == 2


@pytest.mark.parametrize("bad, key", [('[ris]\nhost = "x"\nport = 0\n', "ris.port"),
                                      ('[fhir]\nurl = "http://ehr.example/fhir"\n', "fhir.url")])
def test_a_bad_delivery_setting_names_its_key(tmp_path, monkeypatch, capsys, bad, key):
    config = tmp_path / "bad.toml"
    config.write_text(bad, encoding="utf-8")
    assert main(["report", "show", "--study", "1.2.3", "--config", str(config)]) == 2
    assert key in capsys.readouterr().err
