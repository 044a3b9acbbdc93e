"""`workstation receive` killed (SIGKILL) with one job running and two queued: after a restart each of the three
runs exactly once (the interrupted one again, the queued ones once), and the queue says so."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from netpeers.dcmtk import storescu
from netpeers.process import free_port
from triage_data import write_ct
from workstation.core.roles import Role, User
from workstation.store.database import Identity, Store
from workstation.store.triage_queue import DONE, QUEUED, RUNNING, TriageQueue

DEADLINE_S = 150


class Receiver:
    """`workstation receive` as a child process; its output lines are collected as they come."""

    def __init__(self, config: Path, env: dict) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.process = subprocess.Popen([sys.executable, "-m", "workstation", "receive", "--config", str(config)],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = DEADLINE_S) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if predicate(line):
                return line
        pytest.fail("receiver output so far:\n" + "\n".join(self.seen), pytrace=False)

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def test_sigkill_with_jobs_queued_and_running_then_each_runs_exactly_once(tmp_path, triage_studies, monkeypatch, capsys):
    extra = write_ct(tmp_path, 13, 1)
    port = free_port()
    config = tmp_path / "site.toml"
    config.write_text(f"""
[workstation]
ae_title = "WSTEST"
store_port = {port}
bind_address = "127.0.0.1"
id = "ws-restart"
[users]
default_role = "reviewer"
[store]
path = "{tmp_path / 'store.sqlite'}"
[cache]
directory = "{tmp_path / 'cache'}"
[pacs.SENDER]
ae_title = "STORESCU"
host = "127.0.0.1"
port = 104
[routing]
quiet_s = 3
[[routing.rules]]
name = "chest-ct"
calling_ae = ["STORESCU"]
modality = "CT"
models = ["nodule-detector"]
""")
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
           "XDG_DATA_HOME": str(tmp_path / "xdg")}
    first = Receiver(config, env)
    try:
        first.wait_for(lambda line: line.startswith("receiving as"))
        done = storescu(port, "WSTEST", [triage_studies["nodules"], triage_studies["clean"], extra])
        assert done.returncode == 0, done.stdout + done.stderr
        routed = 0
        while routed < 3:
            line = first.wait_for(lambda line: line.startswith(("routed:", "running:")))
            routed += line.startswith("routed:")
        if not any(line.startswith("running:") for line in first.seen):
            first.wait_for(lambda line: line.startswith("running:"))
    finally:
        first.stop(signal.SIGKILL)
    assert not any(line.startswith("done") for line in first.seen), "a job finished before the kill: " + "\n".join(first.seen)
    assert any(line.startswith("association accepted: STORESCU") for line in first.seen), "\n".join(first.seen)

    from keyrings.alt.file import PlaintextKeyring

    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "xdg" / "python_keyring" / "keyring_pass.cfg")
    identity = Identity(User("tester", Role.REVIEWER), "ws-restart")
    with Store.open(tmp_path / "store.sqlite", identity, backend) as store:
        states = sorted(j.state for j in TriageQueue(store).jobs())
    assert states == [QUEUED, QUEUED, RUNNING]

    second = Receiver(config, env)
    try:
        second.wait_for(lambda line: "interrupted earlier: queued again" in line)
        finished = 0
        while finished < 3:
            second.wait_for(lambda line: line.startswith("done: job"))
            finished += 1
    finally:
        assert second.stop() == 0, "\n".join(second.seen)
    with Store.open(tmp_path / "store.sqlite", identity, backend) as store:
        jobs = TriageQueue(store).jobs()
        runs = [e.details["triage_job_id"] for e in store.audit_entries() if e.kind == "inference.run"]
    assert [j.state for j in jobs] == [DONE] * 3
    assert sorted(runs) == sorted(j.job_id for j in jobs)  # each exactly once
    assert sorted(j.attempts for j in jobs) == [1, 1, 2]  # the interrupted one ran again

    # the command line shows the same queue and the worklist, most urgent first
    from workstation.cli import main

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    capsys.readouterr()
    assert main(["queue", "--json", "--config", str(config)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "workstation.queue/1" and [j["state"] for j in document["jobs"]] == ["done"] * 3
    assert main(["worklist", "--json", "--config", str(config)]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 3 and rows[0]["flagged"] and not rows[-1]["flagged"]
    assert rows[0]["models"][0]["threshold_source"] == "model threshold" and rows[0]["open_at"] is not None
    assert main(["worklist", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("! ")
