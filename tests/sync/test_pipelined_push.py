"""Pipelined pushes (services/sync_push.py, server/pipeline.py) against the real central server process, on SQLite
and PostgreSQL: a push that follows another one still in flight waits for it instead of being refused as a gap,
is refused promptly (and without an incident of its own) when that one is refused, and the sync worker keeps two
pushes in flight without losing, duplicating or reordering anything. (A pass that stops at a refused batch,
its followers refused as gaps without incidents of their own: test_sync_server.py's tampered entry.)"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from sync_helpers import WS, assert_server_holds_exactly, populate

from workstation.core.site import ServerSettings
from workstation.core.tasks import CancelToken
from workstation.server.pipeline import WAIT_S
from workstation.services.sync import Refused, SyncClient
from workstation.services.sync_push import push_outbox

DATABASES = ["sqlite", "postgres"]  # postgres: skipped (with the reason) where PostgreSQL is not installed


@pytest.fixture(params=DATABASES)
def server(request, central_factory):
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    return central_factory(url)


@pytest.fixture
def client(server, backend):
    made = SyncClient(ServerSettings(url=server.url), WS, backend)
    made.enrol(server.issue_code(WS))
    yield made
    made.close()


class InThread:
    """A call on its own thread; `result()` returns its value or raises its exception."""

    def __init__(self, function, *args, **kwargs):
        self.value = self.error = None
        self.done = threading.Event()
        self.ended_at = None
        threading.Thread(target=self._run, args=(function, args, kwargs), daemon=True).start()

    def _run(self, function, args, kwargs):
        try:
            self.value = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self.done.set()

    def result(self, timeout: float = 30):
        assert self.done.wait(timeout), "the call did not end"
        if self.error is not None:
            raise self.error
        return self.value


def bodies(store, client, *sizes):
    """Consecutive batches of the outbox, encoded: [(first seq, last seq, body)]."""
    items, out, start = store.outbox(sum(sizes)), [], 0
    for size in sizes:
        part = items[start:start + size]
        out.append((part[0].entry.seq, part[-1].entry.seq, client.encode(part)))
        start += size
    return out


def test_a_push_that_arrives_before_the_one_it_follows_waits_for_it(server, store, client):
    populate(store, 90)
    (_, last_a, body_a), (first_b, last_b, body_b) = bodies(store, client, 40, 50)
    follower = InThread(client.push_body, body_b, follows=last_a)
    time.sleep(0.5)
    assert not follower.done.is_set(), "the follower was answered before the push it follows arrived"
    assert server.status(WS)["entries"] == 0
    first = client.push_body(body_a)
    second = follower.result()
    assert (first.accepted, first.head_seq) == (40, last_a)
    assert (second.accepted, second.duplicates, second.head_seq) == (50, 0, last_b)
    status = server.status(WS)
    assert status["entries"] == 90 and status["head"]["seq"] == last_b and status["incidents"] == []


def test_a_follower_of_a_refused_push_is_refused_promptly_as_a_gap_without_its_own_incident(server, store, client):
    populate(store, 90)
    (first_a, last_a, body_a), (first_b, _, body_b) = bodies(store, client, 40, 50)
    follower = InThread(client.push_body, body_b, follows=last_a)
    time.sleep(0.3)
    tampered = body_a.replace(b'"outcome":0', b'"outcome":1', 1)  # the first entry's hash no longer matches
    assert tampered != body_a
    with pytest.raises(Refused) as refused:
        client.push_body(tampered)
    assert refused.value.kind == "altered" and refused.value.seq == first_a
    answered = time.monotonic()
    with pytest.raises(Refused) as gap:
        follower.result()
    assert gap.value.status == 409 and gap.value.kind == "gap" and gap.value.seq == first_b
    assert "follows entry" in str(gap.value) and "was refused" in str(gap.value)
    assert follower.ended_at - answered < WAIT_S / 2  # not held until the wait's end
    status = server.status(WS)
    assert status["entries"] == 0
    assert [(i["kind"], i["seq"]) for i in status["incidents"]] == [("altered", first_a)]


def test_a_push_with_follows_and_nothing_in_flight_is_checked_at_once(server, store, client):
    populate(store, 60)
    (_, last_a, body_a), (_, last_b, body_b) = bodies(store, client, 30, 30)
    assert client.push_body(body_a).head_seq == last_a
    started = time.monotonic()
    assert client.push_body(body_b, follows=last_a).head_seq == last_b  # its predecessor is committed already
    assert time.monotonic() - started < WAIT_S / 2
    again = client.push_body(body_b, follows=last_b + 5)  # follows an entry it does not continue: no wait,
    assert (again.accepted, again.duplicates) == (0, 30)  # the plain rules answer (here: duplicates)
    assert time.monotonic() - started < WAIT_S / 2


class Recording:
    """The real client, with each push's `follows` recorded; `hold_first` keeps the first push back until the
    second one has been answered (the follower then reaches the server first)."""

    def __init__(self, client: SyncClient, strip_follows: bool = False, hold_first: bool = False):
        self.client, self.workstation_id = client, client.workstation_id
        self.strip, self.hold = strip_follows, hold_first
        self.follows: list[int | None] = []
        self.answered: list[str] = []
        self.second_answered = threading.Event()
        self._lock = threading.Lock()

    def push_body(self, body: bytes, follows: int | None = None):
        with self._lock:
            n = len(self.follows)
            self.follows.append(follows)
        if self.hold and n == 0:
            assert self.second_answered.wait(30)
        try:
            ack = self.client.push_body(body, None if self.strip else follows)
            self.answered.append("ok")
            return ack
        except Refused as refused:
            self.answered.append(refused.kind)
            raise
        finally:
            if n == 1:
                self.second_answered.set()


def test_the_worker_keeps_two_pushes_in_flight_in_order(server, store, client):
    populate(store, 130)
    recording = Recording(client)
    marked: list[int] = []
    assert push_outbox(store, recording, 25, CancelToken(), marked.append) is False
    batches = [25 * n for n in range(1, 6)]
    assert recording.follows == [None, *batches]  # every push after the first follows the one before it
    assert sum(marked) == 130 and recording.answered == ["ok"] * 6
    assert_server_holds_exactly(server, store)
    assert server.status(WS)["incidents"] == []


def test_a_follower_refused_as_a_gap_after_its_predecessor_was_acknowledged_is_sent_again_alone(server, store,
                                                                                                client):
    """As with a server that does not know `follows`: the follower reaches it first and is refused as a gap."""
    populate(store, 80)
    recording = Recording(client, strip_follows=True, hold_first=True)
    marked: list[int] = []
    assert push_outbox(store, recording, 40, CancelToken(), marked.append) is False
    assert recording.follows == [None, 40, None]  # the follower, then the follower again, alone
    assert recording.answered == ["gap", "ok", "ok"]
    assert sum(marked) == 80
    assert_server_holds_exactly(server, store)



@pytest.mark.parametrize("database", DATABASES)
def test_two_worker_processes_share_one_workstations_pipelined_pushes(request, database, central_factory, store,
                                                                      backend):
    """`serve --workers 2`: each push reply closes its connection, so the next push is accepted by the idle worker
    process; a follower that lands on the other worker learns of its predecessor's commit from that worker's
    notice (server/peers.py) and nothing is refused, lost or stored twice. The workers' folder goes at exit."""
    server = central_factory(request.getfixturevalue("postgres_url") if database == "postgres" else None, start=False)
    server.serve_args = ("--workers", "2")
    server.start()
    worker = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()[0]
    environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")  # as `serve` started its workers
    folder = Path(next(v for v in environ if v.startswith(b"WORKSTATION_SERVER_PEERS=")).split(b"=", 1)[1].decode())
    assert folder.stat().st_mode & 0o777 == 0o700
    populate(store, 160)
    with SyncClient(ServerSettings(url=server.url), WS, backend) as client:
        client.enrol(server.issue_code(WS))
        recording = Recording(client)
        marked: list[int] = []
        assert push_outbox(store, recording, 10, CancelToken(), marked.append) is False
    assert recording.answered == ["ok"] * 16 and sum(marked) == 160
    assert_server_holds_exactly(server, store)
    assert server.status(WS)["incidents"] == []
    pids = re.findall(r"\[(\d+)\] INFO workstation\.server\.api: workstation " + WS + ": 10 accepted",
                      server.output_path.read_text())
    assert len(pids) == 16 and len(set(pids)) == 2, pids  # both workers took pushes
    server.stop()
    assert not folder.exists()
