"""server/peers.py: the worker processes of one `serve --workers N` tell each other of their commits over Unix
datagram sockets in a private folder; a malformed notice is ignored, a peer that is gone costs nothing. (Across
real worker processes: tests/sync/test_pipelined_push.py's --workers 2 sync.)"""

from __future__ import annotations

import os
import socket
import stat
import threading
import time

import pytest

from workstation.server.peers import Peers


class Inbox:
    def __init__(self):
        self.notices, self.arrived = [], threading.Event()

    def __call__(self, workstation_id, seq):
        self.notices.append((workstation_id, seq))
        self.arrived.set()

    def wait(self, count: int, timeout: float = 5.0) -> list:
        deadline = time.monotonic() + timeout
        while len(self.notices) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.notices


@pytest.fixture
def folder(tmp_path):
    made = tmp_path / "peers"
    made.mkdir(mode=0o700)
    return made


def test_a_commit_announced_by_one_worker_reaches_the_other(folder, monkeypatch):
    inbox_a, inbox_b = Inbox(), Inbox()
    a = Peers(folder, inbox_a)
    monkeypatch.setattr(os, "getpid", lambda: 999_999)  # a second worker's socket name
    b = Peers(folder, inbox_b)
    try:
        assert stat.S_IMODE(b.path.stat().st_mode) == 0o600
        a.announce("ws-rad-01", 500)
        b.announce("ws-rad-02", 1000)
        assert inbox_b.wait(1) == [("ws-rad-01", 500)]
        assert inbox_a.wait(1) == [("ws-rad-02", 1000)]
    finally:
        a.close()
        b.close()
    assert list(folder.iterdir()) == []  # each removed its socket


def test_a_malformed_notice_is_ignored_and_the_worker_listens_on(folder):
    inbox = Inbox()
    peers = Peers(folder, inbox)
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        for junk in (b"", b"ws-1", b"ws 1 2", b"ws\n 1", b"ws -1", b"w" * 129 + b" 1", b"ws 99999999999999999999",
                     b"\xff\xfe 1"):
            sender.sendto(junk, str(peers.path))
        sender.sendto(b"ws-ok 7", str(peers.path))
        assert inbox.wait(1) == [("ws-ok", 7)]
        time.sleep(0.1)
        assert inbox.notices == [("ws-ok", 7)]
    finally:
        sender.close()
        peers.close()


def test_announcing_to_a_worker_that_is_gone_costs_nothing(folder):
    inbox = Inbox()
    peers = Peers(folder, inbox)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(folder / "worker-1.sock"))
    stale.close()  # its file stays: a worker killed without cleaning up
    try:
        started = time.monotonic()
        for seq in range(100):
            peers.announce("ws-rad-01", seq)
        assert time.monotonic() - started < 1
        assert inbox.notices == []  # not sent to itself
        assert not (folder / "worker-1.sock").exists()  # nobody was bound there: removed
    finally:
        peers.close()


def test_a_worker_that_cannot_reach_the_others_still_serves_pushes(tmp_path, monkeypatch):
    """The folder is gone (removed by hand, say): the worker starts, says so, and falls back to polling."""
    from fastapi.testclient import TestClient

    from workstation.server import peers
    from workstation.server.app import create_app

    monkeypatch.setenv(peers.ENV, str(tmp_path / "gone"))
    app = create_app(f"sqlite:///{tmp_path / 'server.sqlite'}")
    with TestClient(app) as http:
        assert http.get("/api/v1/health").status_code == 200
        assert app.state.head_waits.announce is None and app.state.workers_share_port is False
