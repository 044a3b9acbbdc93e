"""`workstation doctor` without network peers: configuration, keyring, store, models, device, disk; exit codes,
the text lines and the JSON document. (PACS nodes and the central server: tests/net/test_doctor_pacs.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from workstation.cli import main
from workstation.core.site import parse_site_config
from workstation.inference.registry import default_root
from workstation.services import doctor
from workstation.services.doctor import FAIL, OK, SKIP, WARN, Check

ROOT = Path(__file__).resolve().parents[1]
GB = 1024**3


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A file keyring and data, config and cache folders under tmp_path (also for child processes)."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("WORKSTATION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "etc-xdg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-home"))
    monkeypatch.delenv("WORKSTATION_CONFIG", raising=False)
    monkeypatch.delenv("WORKSTATION_MODELS", raising=False)
    return tmp_path


def site(path: Path, body: str = "") -> Path:
    """A valid site file: its own store and cache under tmp, no PACS, no server (plus `body`)."""
    folder = path.parent
    path.write_text(f'[workstation]\nid = "ws-doc-01"\nae_title = "WS-01"\n\n'
                    f'[store]\npath = "{folder / "store" / "store.sqlite"}"\n\n'
                    f'[cache]\ndirectory = "{folder / "cache"}"\nmax_size_gb = 1\n\n{body}', encoding="utf-8")
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["doctor", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def line(out: str, name: str) -> str:
    """The report line of check `name`."""
    found = [text for text in out.splitlines() if text[7:].split("  ")[0].strip() == name]
    assert len(found) == 1, f"no single line for {name!r} in:\n{out}"
    return found[0]


def audit_count(store_file: Path) -> int:
    from workstation.core.roles import Role, User
    from workstation.store.database import Identity, Store

    with Store.open(store_file, Identity(User("it", Role.ADMIN), "ws-doc-01")) as store:
        return store.count()


def test_a_workstation_without_peers_passes_with_warnings_and_writes_nothing_to_the_audit_trail(capsys, env):
    config = site(env / "site.toml")
    store_file = env / "store" / "store.sqlite"
    code, out, err = run(capsys, "--config", str(config))
    assert code == 0, out + err
    assert line(out, "configuration").startswith("[ OK ]")
    assert f"{config} valid: 0 PACS nodes, no server, workstation ws-doc-01 (AE WS-01)" in line(out, "configuration")
    assert line(out, "keyring").startswith("[ OK ]") and "keyrings.alt.file.PlaintextKeyring usable" in out
    assert line(out, "store") == f"[ OK ] {'store':<21}  {store_file} created: 0 audit entries, chain and integrity ok, 0 waiting to sync"
    assert line(out, "pacs").startswith("[WARN]") and "no PACS nodes configured" in line(out, "pacs")
    assert line(out, "server").startswith("[WARN]") and "sync off" in line(out, "server") and "-> IT sets [server] url" in out
    model = line(out, "model nodule-detector")
    assert model.startswith("[ OK ]") and "1.1.0: weights.pt sha256" in model and "matches" in model
    assert line(out, "device") == f"[ OK ] {'device':<21}  cpu (no CUDA device)"
    assert line(out, "disk").startswith("[ OK ]") and f"cache {env / 'cache'}:" in line(out, "disk")
    assert out.splitlines()[-1] == "doctor: 0 failed, 2 warnings, 6 ok - ready"
    column = 7 + len("model nodule-detector") + 2  # "[ OK ] " + the longest name + two spaces
    assert all(text[column - 2:column] == "  " and text[column] != " " for text in out.splitlines()[:-1])
    assert not (env / "cache").exists()  # read-only: the cache folder is not made

    before = audit_count(store_file)
    code, out, _ = run(capsys, "--config", str(config))
    assert code == 0 and f"{store_file} opened: {before} audit entr" in line(out, "store")
    assert audit_count(store_file) == before  # the doctor itself records nothing


def test_no_configuration_file_is_a_warning(capsys, env):
    code, out, err = run(capsys)
    assert code == 0, out + err
    configuration = line(out, "configuration")
    assert configuration.startswith("[WARN]") and "no configuration file: defaults, no PACS nodes, no server" in configuration
    assert "site.toml" in configuration and "$WORKSTATION_CONFIG" in configuration  # where IT puts it
    assert line(out, "store").startswith("[ OK ]") and str(env / "data" / "store.sqlite") in line(out, "store")
    assert str(env / "cache-home") in line(out, "disk")  # the default cache folder


def test_an_invalid_configuration_fails_naming_the_key_and_skips_what_needs_it(env):
    bad = env / "bad.toml"
    bad.write_text('[pacs.MAIN]\nae_title = "ORTHANC"\nhost = "10.1.2.3"\nport = 99999\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "workstation", "doctor", "--config", str(bad)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=dict(os.environ))
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    configuration = line(out, "configuration")
    assert configuration.startswith("[FAIL]")
    assert f"invalid: {bad}: pacs.MAIN.port: must be an integer port number from 1 to 65535" in configuration
    assert f"-> correct pacs.MAIN.port in {bad}" in configuration
    for name in ("store", "pacs", "server", "disk"):
        assert line(out, name).startswith("[SKIP]") and "skipped: configuration invalid" in line(out, name)
    for name in ("keyring", "model nodule-detector", "device"):  # these do not need it
        assert line(out, name).startswith("[ OK ]")
    assert out.splitlines()[-1] == "doctor: 1 failed, 0 warnings, 3 ok, 4 skipped - NOT ready: fix the failed checks"
    assert not (env / "data").exists()  # nothing opened or created

    missing = subprocess.run([sys.executable, "-m", "workstation", "doctor", "--config", str(env / "nope.toml")],
                             capture_output=True, text=True, timeout=120, cwd=ROOT, env=dict(os.environ))
    assert missing.returncode == 1 and "configuration file not found" in line(missing.stdout, "configuration")


def test_no_keyring_fails_with_the_install_hint_and_leaves_the_store_alone(capsys, env, monkeypatch):
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    config = site(env / "site.toml")
    code, out, _ = run(capsys, "--config", str(config))
    assert code == 1
    keyring = line(out, "keyring")
    assert keyring.startswith("[FAIL]") and "no usable OS keyring" in keyring
    assert "-> on Linux install and unlock a Secret Service (gnome-keyring or KWallet with libsecret)" in keyring
    store = line(out, "store")
    assert store.startswith("[FAIL]") and "not opened: no usable OS keyring" in store
    assert not (env / "store").exists()  # not created, and no failure note beside it
    assert out.splitlines()[-1].startswith("doctor: 2 failed")


def test_a_store_whose_key_is_gone_is_locked(capsys, env):
    config = site(env / "site.toml")
    assert run(capsys, "--config", str(config))[0] == 0  # creates the store and its key
    (env / "xdg" / "python_keyring" / "keyring_pass.cfg").unlink()
    code, out, _ = run(capsys, "--config", str(config))
    assert code == 1
    assert line(out, "keyring").startswith("[ OK ]") and "holds no store key" in line(out, "keyring")
    store = line(out, "store")
    assert store.startswith("[FAIL]") and "locked:" in store and "holds no key for it" in store
    assert "-> restore the OS keyring entry" in store


def test_tampered_weights_fail(capsys, env, monkeypatch):
    models = env / "models"
    shutil.copytree(default_root() / "nodule-detector", models / "nodule-detector",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    weights = models / "nodule-detector" / "1.1.0" / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit flipped
    weights.write_bytes(bytes(data))
    monkeypatch.setenv("WORKSTATION_MODELS", str(models))
    code, out, _ = run(capsys, "--config", str(site(env / "site.toml")))
    assert code == 1
    model = line(out, "model nodule-detector")
    assert model.startswith("[FAIL]") and "nodule-detector:1.1.0: weights do not match their sha256" in model
    assert f"-> reinstall the model into {models / 'nodule-detector' / '1.1.0'}" in model

    (models / "broken" / "2.0.0").mkdir(parents=True)
    (models / "broken" / "2.0.0" / "manifest.json").write_text("{}", encoding="utf-8")
    checks = doctor.check_models()
    assert [c.verdict for c in checks] == [FAIL, FAIL] and "unusable manifest" in checks[1].detail


def test_no_models_installed_fails(capsys, env, monkeypatch):
    (env / "empty").mkdir()
    monkeypatch.setenv("WORKSTATION_MODELS", str(env / "empty"))
    code, out, _ = run(capsys, "--config", str(site(env / "site.toml")))
    assert code == 1
    models = line(out, "models")
    assert models.startswith("[FAIL]") and f"no AI models installed in {env / 'empty'}: AI unavailable" in models


def test_json_document(capsys, env):
    config = site(env / "site.toml", '[server]\nurl = "http://127.0.0.1:9"\n')  # discard port: nothing listens
    code, out, _ = run(capsys, "--config", str(config), "--json")
    assert code == 1
    report = json.loads(out)  # the document only: no text lines around it
    assert report["format"] == "workstation.doctor/1" and report["config"] == str(config) and report["ok"] is False
    names = [c["name"] for c in report["checks"]]
    assert names == ["configuration", "keyring", "store", "pacs", "server", "sync", "model nodule-detector", "device",
                     "disk"]
    assert all(set(c) == {"name", "verdict", "detail", "hint"} for c in report["checks"])
    assert report["counts"] == {"ok": 7, "warn": 1, "fail": 1, "skip": 0}
    sync = report["checks"][5]
    assert sync["verdict"] == "ok" and sync["detail"] == "no push recorded yet; 0 pending"  # the server check says why
    server = report["checks"][4]
    assert server["verdict"] == "fail" and server["detail"] == "http://127.0.0.1:9: server unreachable"
    assert "check server.url" in server["hint"]


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["doctor", "--no-such-option"])
    assert exit_.value.code == 2
    assert "usage: workstation doctor" in capsys.readouterr().err


def test_disk_verdicts(tmp_path):
    cache = tmp_path / "not-yet" / "ws-cache"  # measured where it will be: the nearest folder that exists
    config = parse_site_config({"cache": {"directory": str(cache), "max_size_gb": 20}})
    usage = namedtuple("usage", "total used free")

    def free(amount):
        return lambda path: usage(100 * GB, 0, amount)

    assert doctor.check_disk(config, free(0.5 * GB)).verdict == FAIL
    low = doctor.check_disk(config, free(5 * GB))
    assert low.verdict == WARN and "5.0 GB free, 0.0 GB used of 20.0 GB allowed" in low.detail
    assert "cache.max_size_gb" in low.hint
    assert doctor.check_disk(config, free(30 * GB)) == Check(
        "disk", OK, f"cache {cache}: 30.0 GB free, 0.0 GB used of 20.0 GB allowed")
    assert not cache.exists()


def test_what_the_cache_holds_counts_as_room(tmp_path):
    (tmp_path / "cache" / "studies").mkdir(parents=True)
    (tmp_path / "cache" / "studies" / "a.dcm").write_bytes(b"\0" * 4096)
    config = parse_site_config({"cache": {"directory": str(tmp_path / "cache"), "max_size_gb": 2}})
    usage = namedtuple("usage", "total used free")
    check = doctor.check_disk(config, lambda path: usage(10 * GB, 0, 2 * GB - 1024))
    assert check.verdict == OK and "2.0 GB free" in check.detail


def test_a_check_that_breaks_is_its_own_failure(env, monkeypatch):
    def broken(config, backend=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(doctor, "check_store", broken)
    seen = []
    report = doctor.run_checks(site(env / "site.toml"), on_check=seen.append)
    store = next(c for c in report.checks if c.name == "store")
    assert store.verdict == FAIL and store.detail == "unexpected error: RuntimeError: boom"
    assert seen == list(report.checks) and not report.ok
    assert {c.verdict for c in report.checks} <= {OK, WARN, FAIL, SKIP}


def test_sync_health_pending_age_and_last_outcome(env):
    """The sync line from what the store holds: pending count and the oldest entry's age (a warning after a day),
    the last push's outcome (a refusal fails); the server itself unreachable here (its own check says so)."""
    from datetime import datetime, timedelta, timezone

    from workstation.core.audit import AuditEvent
    from workstation.core.roles import Role, User
    from workstation.store.database import Identity, Store, now_utc

    config = parse_site_config({"workstation": {"id": "ws-doc-01"}, "store": {"path": str(env / "s" / "store.sqlite")},
                                "server": {"url": "http://127.0.0.1:9"}})
    with Store.open(env / "s" / "store.sqlite", Identity(User("it", Role.ADMIN), "ws-doc-01")) as store:
        for _ in range(3):
            store.append(AuditEvent("study.opened", now_utc(), {}))
        oldest = store.oldest_pending()
    check = doctor.check_sync(config)
    assert check.verdict == OK and check.detail.startswith("no push recorded yet; 3 pending; oldest from ")
    assert "(entry 1)" in check.detail
    later = datetime.now(timezone.utc) + timedelta(days=2)
    check = doctor.check_sync(config, now=later)
    assert check.verdict == WARN and "more than a day" in check.hint and "(2 days ago)" in check.detail
    with Store.open(env / "s" / "store.sqlite", Identity(User("it", Role.ADMIN), "ws-doc-01")) as store:
        store.set_sync_status({"last_outcome": "unreachable", "last_message": "server unreachable",
                               "last_push_utc": oldest[1]})
    check = doctor.check_sync(config)
    assert check.verdict == WARN and "last error: server unreachable" in check.detail
    with Store.open(env / "s" / "store.sqlite", Identity(User("it", Role.ADMIN), "ws-doc-01")) as store:
        store.set_sync_status({"last_outcome": "refused", "last_message": "server refused entry 2 (conflict): ..."})
    check = doctor.check_sync(config)
    assert check.verdict == FAIL and "refused: server refused entry 2 (conflict)" in check.detail
    assert "incidents" in check.hint
