"""`workstation enrol` and `workstation sync` with the real central server: exit codes and their reasons."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sync_helpers import WS, assert_server_holds_exactly, open_store, populate, site_toml

from workstation.cli import main
from workstation.store import keys

ROOT = Path(__file__).resolve().parents[2]


def _ctrl_c_as_at_a_terminal() -> None:
    """In the child before exec: Ctrl+C at its default. A test run started in the background by a
    non-interactive shell (`pytest &`) ignores SIGINT, children inherit an ignored signal, and Python then
    installs no KeyboardInterrupt handler: the command would rightly ignore Ctrl+C, as under nohup."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def site(tmp_path, store_path, keyring_env, central):
    return site_toml(tmp_path / "site.toml", store_path, central.url, batch_size=7)


def test_enrol_keeps_the_token_in_the_keyring(capsys, site, central, backend, store_path):
    code, out, err = run(capsys, "enrol", "--code", central.issue_code(WS), "--config", str(site))
    assert code == 0, err
    assert f"enrolled: workstation {WS} with {central.url}" in out
    token = keys.read_token(backend)
    assert token and token not in out + err + site.read_text()  # in the keyring only
    assert central.status(WS)["enrolled"]
    with open_store(store_path, backend) as store:  # the enrolment is in the audit trail (and syncs like any entry)
        (entry,) = [e for e in store.audit_entries() if e.kind == "workstation.enrol"]
        assert entry.outcome == 0 and entry.details["server"] == central.url and token not in str(entry.details)


def test_enrol_failures_say_why(capsys, tmp_path, store_path, keyring_env, central, backend):
    from netpeers.process import free_port

    none = site_toml(tmp_path / "none.toml", store_path, None)
    code, _, err = run(capsys, "enrol", "--code", "X", "--config", str(none))
    assert code == 2 and "no central server configured" in err and "[server] url" in err

    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nurl = "ftp://x"\n')
    code, _, err = run(capsys, "enrol", "--code", "X", "--config", str(bad))
    assert code == 2 and "server.url" in err

    site = site_toml(tmp_path / "site.toml", store_path, central.url)
    code, _, err = run(capsys, "enrol", "--code", "not-a-code", "--config", str(site))
    assert code == 1 and "enrolment code rejected (unknown enrolment code)" in err and "ask IT" in err

    other = central.issue_code("ws-other")
    code, _, err = run(capsys, "enrol", "--code", other, "--config", str(site))
    assert code == 1 and "issued for another workstation" in err

    down = site_toml(tmp_path / "down.toml", store_path, f"http://127.0.0.1:{free_port()}")
    code, _, err = run(capsys, "enrol", "--code", "X", "--config", str(down))
    assert code == 1 and "server unreachable" in err

    good = central.issue_code(WS)
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"  # restored by keyring_env's monkeypatch
    code, _, err = run(capsys, "enrol", "--code", good, "--config", str(site))
    assert code == 3 and "no usable OS keyring" in err
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    assert keys.read_token(backend) is None
    code, _, err = run(capsys, "enrol", "--code", good, "--config", str(site))  # the code was not spent
    assert code == 0, err


def test_sync_once(capsys, site, central, store_path, backend):
    with open_store(store_path, backend) as store:
        populate(store, 50)
    code, _, err = run(capsys, "sync", "--once", "--config", str(site))
    assert code == 2 and "not enrolled" in err and "workstation enrol --code" in err
    assert run(capsys, "enrol", "--code", central.issue_code(WS), "--config", str(site))[0] == 0
    code, out, err = run(capsys, "sync", "--once", "--config", str(site))  # 50 + the enrolment's audit entry
    assert code == 0 and "51 entries sent; nothing pending" in out, err
    code, out, _ = run(capsys, "sync", "--once", "--config", str(site))
    assert code == 0 and "0 entries sent; nothing pending" in out
    with open_store(store_path, backend) as store:
        assert_server_holds_exactly(central, store)
        populate(store, 64)
    central.stop()
    code, _, err = run(capsys, "sync", "--once", "--config", str(site))
    assert code == 1 and "0 of 13 sent; 13 still pending: server unreachable" in err
    central.start()
    central.revoke(WS)
    code, _, err = run(capsys, "sync", "--once", "--config", str(site))
    assert code == 1 and "13 still pending: token rejected: enrol again" in err


def test_sync_without_a_server_or_store(capsys, tmp_path, store_path, keyring_env):
    none = site_toml(tmp_path / "none.toml", store_path, None)
    code, _, err = run(capsys, "sync", "--once", "--config", str(none))
    assert code == 2 and "no central server configured" in err
    site = site_toml(tmp_path / "site.toml", store_path, "http://127.0.0.1:9")
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    code, _, err = run(capsys, "sync", "--once", "--config", str(site))
    assert code == 3 and "store cannot be opened" in err and "no usable OS keyring" in err


def test_sync_runs_until_interrupted_printing_its_state(site, central, store_path, backend):
    with open_store(store_path, backend) as store:
        populate(store, 30)
    assert main(["enrol", "--code", central.issue_code(WS), "--config", str(site)]) == 0
    child = subprocess.Popen([sys.executable, "-m", "workstation", "sync", "--config", str(site)], cwd=ROOT,
                             env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=_ctrl_c_as_at_a_terminal)
    try:
        lines = []
        for line in child.stdout:
            lines.append(line.strip())
            if line.startswith("Sync: up to date"):
                break
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert lines[0] == "Sync: 31 pending" and any("sending…" in line for line in lines), lines
    assert "sync: stopped" in err
    with open_store(store_path, backend) as store:
        assert_server_holds_exactly(central, store)
    central.revoke(WS)  # a rejected token ends it by itself
    with open_store(store_path, backend) as store:
        populate(store, 35)
    done = subprocess.run([sys.executable, "-m", "workstation", "sync", "--config", str(site)], cwd=ROOT,
                          env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "token rejected: enrol again" in done.stdout + done.stderr


def test_ctrl_c_during_a_push_the_server_never_answers_exits_at_once(tmp_path, store_path, backend, keyring_env):
    """The push in flight is abandoned (the server commits a batch whole; anything committed comes back as a
    duplicate): a stopping `workstation sync` does not wait for the request's 30 s timeout."""
    import http.server
    import json
    import threading
    import time

    from workstation.core.audit import GENESIS

    release = threading.Event()

    class Silent(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # the chain head: nothing held yet
            body = json.dumps({"seq": 0, "hash": GENESIS}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # a push: read, then never answer
            self.rfile.read(int(self.headers["Content-Length"]))
            release.wait(60)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with open_store(store_path, backend) as store:
            populate(store, 20)
        keys.write_token("t" * 43, backend)
        site = site_toml(tmp_path / "site.toml", store_path, f"http://127.0.0.1:{server.server_address[1]}")
        child = subprocess.Popen([sys.executable, "-m", "workstation", "sync", "--config", str(site)], cwd=ROOT,
                                 env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 preexec_fn=_ctrl_c_as_at_a_terminal)
        try:
            for line in child.stdout:
                if "sending…" in line:
                    break
            time.sleep(0.5)  # the push is on the wire, unanswered
            child.send_signal(signal.SIGINT)
            started = time.monotonic()
            _, err = child.communicate(timeout=20)
            took = time.monotonic() - started
        finally:
            if child.poll() is None:
                child.kill()
        assert child.returncode == 0 and "sync: stopped" in err, err
        assert took < 8, f"stopping took {took:.1f} s"
    finally:
        release.set()
        server.shutdown()
