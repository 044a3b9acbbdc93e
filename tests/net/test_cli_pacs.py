"""`workstation pacs echo|find|retrieve` as IT runs them: a real process, a site file, a real Orthanc."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from netpeers.process import LOCALHOST, free_port


@pytest.fixture
def site_file(tmp_path, ws_ae, loaded_orthanc):
    path = tmp_path / "site.toml"
    path.write_text(f"""
[workstation]
ae_title = "{ws_ae.aet}"
store_port = {ws_ae.port}
bind_address = "{LOCALHOST}"

[cache]
directory = "{tmp_path / 'cache'}"

[pacs.MAIN]
ae_title = "{loaded_orthanc.aet}"
host = "{LOCALHOST}"
port = {loaded_orthanc.port}
retries = 0

[pacs.DOWN]
ae_title = "NOBODY"
host = "{LOCALHOST}"
port = {free_port()}
retries = 0
timeout_s = 2
""")
    return path


def run(*args, config=None):
    env = {**os.environ}
    if config is not None:
        env["WORKSTATION_CONFIG"] = str(config)
    return subprocess.run([sys.executable, "-m", "workstation", "pacs", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_echo(site_file):
    done = run("echo", "MAIN", config=site_file)
    assert done.returncode == 0, done.stderr
    assert "C-ECHO MAIN (ORTHANC@127.0.0.1:" in done.stdout and "success" in done.stdout


def test_echo_failure_exits_non_zero_with_the_reason(site_file):
    done = run("echo", "DOWN", config=site_file)
    assert done.returncode == 1 and "refused" in done.stderr.lower() and "Traceback" not in done.stderr


def test_unknown_node_and_bad_config(site_file, tmp_path):
    done = run("echo", "NOPE", config=site_file)
    assert done.returncode == 2 and "pacs.NOPE: no such PACS node (known: DOWN, MAIN)" in done.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[pacs.MAIN]\nae_title = "X"\nhost = "h"\nport = 999999\n')
    done = run("--config", str(bad), "echo", "MAIN")
    assert done.returncode == 2 and "pacs.MAIN.port: must be an integer port number" in done.stderr


def test_find_json_studies_and_series(site_file, net_demo_study):
    done = run("find", "MAIN", "--patient-name", "DEMO*", "--date", "20240101-20240101", "--level", "series", "--json",
               config=site_file)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["format"] == "workstation.pacs-find/1" and report["level"] == "series"
    (study,) = report["studies"]
    assert study["study_instance_uid"] == net_demo_study.study_instance_uid and study["modalities"] == ["CT"]
    assert [s["series_instance_uid"] for s in study["series"]] == [net_demo_study.series_instance_uid]


def test_find_text_and_bad_date(site_file):
    done = run("find", "MAIN", "--modality", "CT", config=site_file)
    assert done.returncode == 0 and "DEMO^PHANTOM" in done.stdout and "stud" in done.stdout.splitlines()[0]
    done = run("find", "MAIN", "--date", "2024-01-01", config=site_file)
    assert done.returncode == 2 and "YYYYMMDD" in done.stderr


@pytest.mark.parametrize("method", ["move", "get"])
def test_retrieve(site_file, net_demo_study, method, tmp_path):
    done = run("retrieve", "MAIN", "--study", net_demo_study.study_instance_uid, "--method", method, config=site_file)
    assert done.returncode == 0, done.stderr
    assert "complete: 30 instance(s) in the cache (30 new), 0 failed" in done.stdout
    assert len(list((tmp_path / "cache").rglob("*.dcm"))) == 30
    again = run("retrieve", "MAIN", "--study", net_demo_study.study_instance_uid, "--series",
                net_demo_study.series_instance_uid, config=site_file)
    assert again.returncode == 0 and "30 instance(s) in the cache (0 new)" in again.stdout


def test_retrieve_failure_exits_non_zero(site_file):
    done = run("retrieve", "DOWN", "--study", "1.2.3", config=site_file)
    assert done.returncode == 1 and "cannot connect" in done.stderr and "Traceback" not in done.stderr


def test_find_and_retrieve_are_audited_in_the_store(site_file, net_demo_study, tmp_path):
    from keyrings.alt.file import PlaintextKeyring

    from workstation.core.roles import User
    from workstation.store.database import Identity, Store

    env = {**os.environ, "WORKSTATION_CONFIG": str(site_file), "WORKSTATION_DATA_DIR": str(tmp_path / "data"),
           "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring", "XDG_DATA_HOME": str(tmp_path / "xdg")}
    for args in (("find", "MAIN", "--patient-name", "DEMO*"), ("retrieve", "MAIN", "--study", net_demo_study.study_instance_uid)):
        done = subprocess.run([sys.executable, "-m", "workstation", "pacs", *args], capture_output=True, text=True,
                              env=env, timeout=120)
        assert done.returncode == 0 and "not recorded" not in done.stderr, done.stderr
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "xdg" / "python_keyring" / "keyring_pass.cfg")
    with Store.open(tmp_path / "data" / "store.sqlite", Identity(User("it", None), "ws"), backend) as store:
        entries = {e.kind: e for e in store.audit_entries()}
        assert entries["pacs.query"].details["node"] == "MAIN" and "DEMO" not in str(entries["pacs.query"].details)
        assert entries["pacs.retrieve"].study_instance_uid == net_demo_study.study_instance_uid
        assert store.verify().ok


def test_without_a_keyring_the_cli_works_and_says_it_is_not_audited(site_file):
    done = run("find", "MAIN", "--modality", "CT", config=site_file)
    assert done.returncode == 0 and "not recorded in the audit trail: no usable OS keyring" in done.stderr
