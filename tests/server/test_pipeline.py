"""HeadWaits (server/pipeline.py) on a real SQLite server database: a pipelined push waits until its
workstation's head reaches the entries it follows, stops when a push of that workstation is refused, gives up
after its wait, and only one push per workstation waits at a time. (Through the real server process:
tests/sync/test_pipelined_push.py.)"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import update

from workstation.server import auth, db, pipeline
from workstation.server.pipeline import HeadWaits

WS = "ws-pipe"


@pytest.fixture
def engine(tmp_path):
    made = db.make_engine(f"sqlite:///{tmp_path / 'server.sqlite'}")
    db.create_schema(made)
    with db.write(made) as conn:
        auth.ensure_workstation(conn, WS)
        auth.ensure_workstation(conn, "ws-other")
    yield made
    made.dispose()


def set_head(engine, seq: int) -> None:
    with db.write(engine) as conn:
        conn.execute(update(db.workstations).where(db.workstations.c.id == WS).values(head_seq=seq))


def later(seconds: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True)
    thread.start()
    return thread


def test_ready_at_once_when_the_head_is_there(engine):
    set_head(engine, 40)
    waits = HeadWaits(wait_s=5)
    started = time.monotonic()
    assert waits.wait_for(engine, WS, 40, since=started) == "ready"
    assert waits.wait_for(engine, WS, 30, since=started) == "ready"
    assert time.monotonic() - started < 1


def test_a_commit_in_this_process_wakes_the_waiter_without_a_query(engine, monkeypatch):
    waits = HeadWaits(wait_s=10, poll_s=5.0)  # polling alone would take 5 s: the wake-up must do it
    reads = []
    real = pipeline._head_seq
    monkeypatch.setattr(pipeline, "_head_seq", lambda *args: reads.append(args) or real(*args))
    later(0.3, lambda: waits.committed(WS, 40))  # the head it committed is known here: not read back
    started = time.monotonic()
    assert waits.wait_for(engine, WS, 40, since=started) == "ready"
    assert 0.25 < time.monotonic() - started < 3
    assert len(reads) == 1  # the look on arrival only


def test_a_commit_short_of_the_entries_or_of_another_workstation_does_not_end_the_wait(engine):
    waits = HeadWaits(wait_s=0.4, poll_s=0.05)
    later(0.1, lambda: (waits.committed(WS, 39), waits.committed("ws-other", 100)))
    assert waits.wait_for(engine, WS, 40, since=time.monotonic()) == "timeout"


def test_polling_for_other_processes_backs_off(engine, monkeypatch):
    """Every waiting push used to read its head every 5 ms: with 8 workstations pushing at once, a fifth of the
    server's CPU. Now the interval doubles up to max_poll_s."""
    reads = []
    real = pipeline._head_seq
    monkeypatch.setattr(pipeline, "_head_seq", lambda *args: reads.append(time.monotonic()) or real(*args))
    waits = HeadWaits(wait_s=1.0, poll_s=0.01, max_poll_s=0.16)
    assert waits.wait_for(engine, WS, 40, since=time.monotonic()) == "timeout"
    gaps = [b - a for a, b in zip(reads, reads[1:])]
    assert 6 <= len(reads) <= 13, gaps  # 0, .01, .03, .07, .15, .31, .47, .63, .79, .95 (fixed 10 ms: 100 reads)
    assert gaps[0] < gaps[2] < gaps[4], gaps
    assert max(gaps) < 0.16 + 0.15, gaps


def test_a_commit_elsewhere_is_seen_by_polling(engine):
    waits = HeadWaits(wait_s=10, poll_s=0.02)
    later(0.3, lambda: set_head(engine, 40))  # another worker process: nobody calls committed() here
    started = time.monotonic()
    assert waits.wait_for(engine, WS, 40, since=started) == "ready"
    assert time.monotonic() - started < 3


def test_a_refusal_after_the_push_arrived_ends_the_wait(engine):
    waits = HeadWaits(wait_s=10, poll_s=5.0)
    arrived = time.monotonic()
    later(0.2, lambda: waits.refused(WS))
    assert waits.wait_for(engine, WS, 40, since=arrived) == "refused"
    assert time.monotonic() - arrived < 3


def test_a_refusal_before_the_push_arrived_does_not_count(engine):
    waits = HeadWaits(wait_s=0.3, poll_s=0.05)
    waits.refused(WS)
    time.sleep(0.01)
    started = time.monotonic()
    assert waits.wait_for(engine, WS, 40, since=started) == "timeout"
    assert 0.25 < time.monotonic() - started < 3


def test_a_refusal_of_another_workstation_does_not_count(engine):
    waits = HeadWaits(wait_s=0.3, poll_s=0.05)
    started = time.monotonic()
    later(0.05, lambda: waits.refused("ws-other"))
    assert waits.wait_for(engine, WS, 40, since=started) == "timeout"


def test_at_most_max_waiting_waiters_per_workstation(engine):
    waits = HeadWaits(wait_s=10, poll_s=0.02, max_waiting=2)
    first = []
    threads = [threading.Thread(target=lambda n=n: first.append(waits.wait_for(engine, WS, 40 * n, time.monotonic())))
               for n in (1, 2)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert waits.wait_for(engine, WS, 120, started) == "busy"  # answered at once
    assert time.monotonic() - started < 1
    assert waits.wait_for(engine, "ws-other", 0, started) == "ready"  # another workstation is not limited by it
    set_head(engine, 80)
    for thread in threads:
        thread.join(5)
    assert first == ["ready", "ready"]
    set_head(engine, 40)
    assert waits.wait_for(engine, WS, 40, time.monotonic()) == "ready"  # the slots are free again


def test_an_unknown_workstation_times_out(engine):
    waits = HeadWaits(wait_s=0.2, poll_s=0.05)
    assert waits.wait_for(engine, "ws-unknown", 0, time.monotonic()) == "timeout"


def test_a_head_known_in_memory_is_ready_without_a_query(engine, monkeypatch):
    """With 8 workstations pushing at once, reading the head on every pipelined push's arrival (it was committed
    here a moment before) was a tenth of the server's CPU."""
    reads = []
    monkeypatch.setattr(pipeline, "_head_seq", lambda *args: reads.append(args) or -1)
    waits = HeadWaits(wait_s=5, poll_s=5.0)
    waits.committed(WS, 40)
    assert waits.wait_for(engine, WS, 40, since=time.monotonic()) == "ready"
    assert reads == []


def test_a_notice_from_another_worker_makes_the_waiter_read_the_head_at_once(engine, monkeypatch):
    reads = []
    real = pipeline._head_seq
    monkeypatch.setattr(pipeline, "_head_seq", lambda *args: reads.append(time.monotonic()) or real(*args))
    waits = HeadWaits(wait_s=10, poll_s=5.0)  # the fallback alone would take 5 s
    later(0.2, lambda: waits.nudge(WS, 39))  # short of the entries it follows: not worth a query
    later(0.4, lambda: (set_head(engine, 40), waits.nudge(WS, 40)))  # the other worker commits, then says so
    started = time.monotonic()
    assert waits.wait_for(engine, WS, 40, since=started) == "ready"
    assert 0.35 < time.monotonic() - started < 3
    assert len(reads) == 2  # on arrival, and after the notice of a head that reaches it


def test_a_false_notice_costs_a_query_not_a_wrong_answer(engine):
    waits = HeadWaits(wait_s=0.5, poll_s=5.0)
    later(0.1, lambda: waits.nudge(WS, 1000))  # nothing was committed: the database says so
    assert waits.wait_for(engine, WS, 40, since=time.monotonic()) == "timeout"


def test_a_commit_here_is_announced_to_the_other_workers(engine):
    announced = []
    waits = HeadWaits(announce=lambda ws, seq: announced.append((ws, seq)))
    waits.committed(WS, 40)
    assert announced == [(WS, 40)]


def test_handling_counts_each_workstations_pushes_in_hand_across_threads():
    in_hand = pipeline.Handling()
    inside, release = threading.Barrier(5), threading.Event()

    def one(workstation_id):
        with in_hand.push_of(workstation_id):
            inside.wait(5)
            release.wait(5)

    threads = [threading.Thread(target=one, args=(ws,)) for ws in (WS, WS, WS, "ws-other")]
    for thread in threads:
        thread.start()
    inside.wait(5)
    assert (in_hand.count(WS), in_hand.count("ws-other"), in_hand.count("ws-none")) == (3, 1, 0)
    release.set()
    for thread in threads:
        thread.join(5)
    assert in_hand.count(WS) == in_hand.count("ws-other") == 0
    with pytest.raises(RuntimeError):
        with in_hand.push_of(WS):
            raise RuntimeError("a refused push")
    assert in_hand.count(WS) == 0  # counted out when it fails too
