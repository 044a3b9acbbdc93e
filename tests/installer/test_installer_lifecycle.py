"""Install the bundle with no network, against a real Orthanc and a real central server on loopback; upgrade it;
uninstall it keeping the data; reinstall over the kept data; uninstall purging it.

One IT "home" (installer_helpers.Sandbox: XDG directories, a private D-Bus session with gnome-keyring, login
it-admin) for the whole module; the tests run in file order, each on what the previous one left. The installs run
inside the session's loopback-only network namespace with `pip --no-index` from the bundle's wheels.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from installer_helpers import Sandbox, install_py, manifest, output
from netpeers.central import CentralServer
from netpeers.orthanc import OrthancPeer
from netpeers.process import LOCALHOST, PeerError, free_port, require_isolation

WS_ID = "ws-install-01"
WS_AET = "WSINSTALL"


@dataclass
class Installation:
    prefix: Path
    done: subprocess.CompletedProcess
    seconds: float

    @property
    def launcher(self) -> Path:
        return self.prefix / "bin" / "workstation"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    box = Sandbox(tmp_path_factory.mktemp("it-home")).start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    try:
        require_isolation()
    except PeerError as exc:
        pytest.fail(str(exc), pytrace=False)
    ws_port = free_port()
    orthanc = OrthancPeer(tmp_path_factory.mktemp("orthanc"), ws_aet=WS_AET, ws_port=ws_port)
    central = CentralServer(tmp_path_factory.mktemp("central"))
    try:
        orthanc.start()
        central.start()
        yield orthanc, central, ws_port
    finally:
        orthanc.stop()
        central.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory, peers) -> Path:
    orthanc, central, ws_port = peers
    wrong_port = free_port()  # nothing listens there: the doctor must say so
    path = tmp_path_factory.mktemp("site") / "site.toml"
    path.write_text(f"""
[workstation]
id = "{WS_ID}"
ae_title = "{WS_AET}"
store_port = {ws_port}
bind_address = "{LOCALHOST}"

[pacs.MAIN]
ae_title = "{orthanc.aet}"
host = "{LOCALHOST}"
port = {orthanc.port}
timeout_s = 5
retries = 0

[pacs.BROKEN]
ae_title = "{orthanc.aet}"
host = "{LOCALHOST}"
port = {wrong_port}
timeout_s = 2
retries = 0

[server]
url = "{central.url}"

[users]
default_role = "radiologist"
[users.roles]
"it-admin" = "admin"
""", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def installed(bundle, sandbox, site, peers) -> Installation:
    central = peers[1]
    code = central.issue_code(WS_ID)
    prefix = sandbox.root / "opt" / "workstation"
    started = time.monotonic()
    done = sandbox.run(install_py(bundle) + ["--site", site, "--enrol-code", code, "--prefix", prefix])
    seconds = time.monotonic() - started
    print(f"\ninstall took {seconds:.1f} s\n{done.stdout}\n{done.stderr}")
    return Installation(prefix, done, seconds)


def _app(sandbox: Sandbox, installation: Installation, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    return sandbox.run([installation.launcher, *args], timeout=timeout)


def _export(sandbox: Sandbox, argv: list, config: Path | None = None) -> list[dict]:
    """The audit trail as the admin (it-admin) exports it: entries in seq order."""
    out = sandbox.root / f"export-{time.monotonic_ns()}.json"
    done = sandbox.run([*argv, "audit", "export", "--format", "json", "--output", out]
                       + (["--config", config] if config else []), timeout=300)
    assert done.returncode == 0, output(done)
    return json.loads(out.read_text(encoding="utf-8"))["entries"]


def _dev_app() -> list[str]:
    """This checkout's workstation (same code), for looking at the data once the installed app is gone."""
    return [sys.executable, "-m", "workstation"]


def test_install_enrols_records_and_the_doctor_reports_the_wrong_pacs_port(installed, sandbox, peers):
    orthanc, central, _ = peers
    out = output(installed.done)
    assert installed.done.returncode == 3, out  # installed, but a doctor check failed: the wrong port, on purpose
    assert "pip --no-index: no network" in out and "the new version starts: workstation" in out
    assert f"enrolled: workstation {WS_ID} with {central.url}" in out
    assert "recorded in the audit trail" in out and "software.install" in out
    lines = [line for line in out.splitlines() if line.startswith("doctor: ")]
    broken = [line for line in lines if "pacs BROKEN" in line]
    assert len(broken) == 1 and "[FAIL]" in broken[0] and "refused" in broken[0].lower(), lines
    main = [line for line in lines if "pacs MAIN" in line]
    assert len(main) == 1 and "[ OK ]" in main[0], lines
    for name in ("configuration", "keyring", "store", "server", "model nodule-detector"):
        line = next(line for line in lines if line.split("]", 1)[-1].strip().startswith(name))
        assert "[ OK ]" in line, line
    assert "1 failed" in out and "exit 3" in out
    assert central.status(WS_ID)["enrolled"] is True
    # the token and the store key are in the OS keyring (the Secret Service), nowhere in a file
    token, key = sandbox.secret("server-token"), sandbox.secret("store-key")
    assert token and key
    for path in (p for p in sandbox.root.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000):
        if "keyrings" not in path.parts:  # gnome-keyring's own (encrypted) file
            content = path.read_bytes()
            assert token.encode() not in content and key.encode() not in content, path
    assert not list(sandbox.root.rglob("keyring_pass.cfg"))


def test_the_installed_app_starts_from_its_launcher_and_desktop_entry(installed, bundle, sandbox, site):
    version = manifest(bundle)["version"]
    done = _app(sandbox, installed, "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"workstation {version}", output(done)
    text = sandbox.desktop_file.read_text(encoding="utf-8")
    print(f"\n{sandbox.desktop_file}:\n{text}")
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read_string(text)
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Name"] == "Radiology Workstation"
    assert desktop["Exec"] == f"{installed.launcher} %F" and desktop["TryExec"] == str(installed.launcher)
    assert os.access(installed.launcher, os.X_OK) and Path(desktop["Icon"]).is_file()
    assert version in desktop["Comment"]
    assert sandbox.site_file.read_bytes() == site.read_bytes()
    state = json.loads((installed.prefix / "install.json").read_text(encoding="utf-8"))
    assert state["version"] == version and state["mode"] == "user"
    # the installed environment: the bundle's torch, the models beside it, no server or test packages
    probe = ("import importlib.metadata as m, importlib.util as u, json, workstation.inference.registry as r;"
             "print(json.dumps([m.version('torch'), str(r.default_root()),"
             " [n for n in ('fastapi', 'uvicorn', 'sqlalchemy', 'pytest', 'keyrings', 'pip') if u.find_spec(n)]]))")
    done = sandbox.run([installed.prefix / "current" / "bin" / "python", "-I", "-c", probe], timeout=120)
    torch_version, models_root, extras = json.loads(done.stdout)
    assert torch_version == "2.13.0+cpu" and extras == []
    assert Path(models_root).resolve() == (installed.prefix / "current" / "share" / "workstation" / "models").resolve()


def test_the_installation_is_in_the_audit_trail_and_reaches_the_central_server(installed, sandbox, peers):
    central = peers[1]
    done = _app(sandbox, installed, "audit", "verify")
    assert done.returncode == 0 and "audit trail OK" in done.stdout, output(done)
    kinds = [e["kind"] for e in _export(sandbox, [installed.launcher])]
    assert kinds[:4] == ["software.install", "application.start", "application.stop", "workstation.enrol"], kinds
    done = _app(sandbox, installed, "sync", "--once", timeout=120)
    assert done.returncode == 0, output(done)
    on_server = [item["kind"] for item in central.entries(WS_ID)]
    assert {"software.install", "workstation.enrol"} <= set(on_server), on_server
    assert central.status(WS_ID)["entries"] == len(on_server)


def test_the_installed_app_opens_its_window(installed, sandbox, tmp_path_factory):
    shot = tmp_path_factory.mktemp("screenshot") / "installed.png"
    # the site's configuration, not the demo's (whose workstation id would mix into this store's outbox)
    done = _app(sandbox, installed, "--demo", "--config", sandbox.site_file, "--screenshot", shot, timeout=300)
    assert done.returncode == 0 and shot.is_file(), output(done)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    if os.environ.get("WS_INSTALLER_SCREENSHOT"):  # keep it for a person to look at
        Path(os.environ["WS_INSTALLER_SCREENSHOT"]).write_bytes(shot.read_bytes())


def test_an_upgrade_keeps_configuration_store_keys_and_token(installed, upgrade_bundle, sandbox, peers):
    central = peers[1]
    old_version = json.loads((installed.prefix / "install.json").read_text(encoding="utf-8"))["version"]
    new_version = manifest(upgrade_bundle)["version"]
    before = _export(sandbox, [installed.launcher])
    store_inode, site_bytes = sandbox.store.stat().st_ino, sandbox.site_file.read_bytes()
    secrets = sandbox.secret("store-key"), sandbox.secret("server-token")

    started = time.monotonic()
    done = sandbox.run(install_py(upgrade_bundle) + ["--prefix", installed.prefix])  # no --site: keep the configuration
    print(f"\nupgrade took {time.monotonic() - started:.1f} s\n{done.stdout}\n{done.stderr}")
    out = output(done)
    assert done.returncode == 3, out  # still the broken node
    assert f"upgrade of workstation {new_version} (installed: {old_version})" in out
    assert "removed the previous version folder" in out

    assert _app(sandbox, installed, "--version").stdout.strip() == f"workstation {new_version}"
    assert [p.name.split("-")[0] for p in (installed.prefix / "versions").iterdir()] == [new_version]
    assert sandbox.store.stat().st_ino == store_inode and sandbox.site_file.read_bytes() == site_bytes
    assert (sandbox.secret("store-key"), sandbox.secret("server-token")) == secrets
    after = _export(sandbox, [installed.launcher])
    assert after[:len(before)] == before  # every entry intact
    upgrade = [e for e in after[len(before):] if e["kind"] == "software.upgrade"]
    assert len(upgrade) == 1
    assert upgrade[0]["details"]["previous_version"] == old_version and upgrade[0]["details"]["version"] == new_version
    done = _app(sandbox, installed, "audit", "verify")
    assert done.returncode == 0 and "audit trail OK" in done.stdout, output(done)
    assert "[ OK ] server" in out  # the token still works after the upgrade
    assert new_version in sandbox.desktop_file.read_text(encoding="utf-8")
    # the app's own upgrade detection at its next start finds nothing more to record
    _app(sandbox, installed, "audit", "verify")
    assert [e["kind"] for e in _export(sandbox, [installed.launcher])].count("software.upgrade") == 1
    assert central.status(WS_ID)["enrolled"] is True


def test_uninstall_keeps_the_store_unless_asked(installed, sandbox, site):
    done = sandbox.run(["python3", installed.prefix / "install.py", "--uninstall", "--prefix", installed.prefix,
                        "--purge-data"])
    assert done.returncode == 2 and "add --yes" in done.stderr, output(done)
    assert installed.launcher.exists() and sandbox.store.exists()

    store_inode = sandbox.store.stat().st_ino
    # the copy of install.py the installation keeps: uninstalling needs no bundle
    done = sandbox.run(["python3", installed.prefix / "install.py", "--uninstall", "--prefix", installed.prefix])
    out = output(done)
    assert done.returncode == 0, out
    assert f"kept: the encrypted store {sandbox.store}" in out
    assert not installed.prefix.exists() and not sandbox.desktop_file.exists()
    assert not sandbox.site_file.exists()  # unchanged since the installer wrote it: the installer's to remove
    assert sandbox.store.stat().st_ino == store_inode and sandbox.secret("store-key")
    entries = _export(sandbox, _dev_app(), config=site)
    assert "software.uninstall" in [e["kind"] for e in entries]  # recorded before the app was removed
    done = sandbox.run([*_dev_app(), "audit", "verify", "--config", site], timeout=300)
    assert done.returncode == 0 and "audit trail OK" in done.stdout, output(done)


def test_reinstall_over_the_kept_data_then_uninstall_purging_it(upgrade_bundle, sandbox, site, tmp_path):
    """Default prefix this time (~/.local/share/workstation/app) and a changed site file; the kept store is picked
    up (the installation and the configuration change are recorded in it), then purged."""
    store_inode = sandbox.store.stat().st_ino
    before = _export(sandbox, _dev_app(), config=site)
    changed = tmp_path / "site.toml"
    changed.write_text(site.read_text(encoding="utf-8") + '"dr.smith" = "reviewer"\n', encoding="utf-8")
    done = sandbox.run(install_py(upgrade_bundle) + ["--site", changed, "--no-doctor"])
    assert done.returncode == 0, output(done)
    assert "software.install, config.change" in done.stdout
    prefix = sandbox.data_home / "workstation" / "app"
    assert (prefix / "bin" / "workstation").exists() and sandbox.store.stat().st_ino == store_inode
    assert sandbox.site_file.read_bytes() == changed.read_bytes()
    after = _export(sandbox, [prefix / "bin" / "workstation"])
    assert after[:len(before)] == before
    new = [e for e in after[len(before):] if e["details"].get("by") == "installer"]
    assert [e["kind"] for e in new] == ["software.install", "config.change"], new
    assert new[1]["details"]["summary"]["roles"] == {"dr.smith": "reviewer", "it-admin": "admin"}

    done = sandbox.run(install_py(upgrade_bundle) + ["--uninstall", "--purge-data", "--yes"])
    out = output(done)
    assert done.returncode == 0, out
    assert f"deleted: {sandbox.store}" in out and "deleted from the OS keyring: radiology-workstation/store-key" in out
    assert not sandbox.store.exists() and not list(sandbox.store.parent.glob("store.sqlite*"))
    assert sandbox.secret("store-key") is None and sandbox.secret("server-token") is None
    assert not (sandbox.cache_home / "workstation").exists()
    assert not prefix.exists() and not sandbox.desktop_file.exists() and not sandbox.site_file.exists()
