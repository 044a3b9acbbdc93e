"""Backoff with full jitter, the worker's schedule after each kind of failure, and the status line."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from workstation.core.site import ServerSettings
from workstation.services.sync import (
    BadResponse, NotEnrolled, Refused, SyncResult, SyncState, SyncWorker, TokenRejected, Unreachable,
    backoff_delay, describe,
)


@pytest.mark.parametrize("failures", range(1, 15))
def test_full_jitter_stays_within_zero_and_the_doubling_ceiling(failures):
    ceiling = min(300.0, 1.0 * 2 ** (failures - 1))
    assert backoff_delay(failures, 1.0, 300.0, rng=lambda: 0.0) == 0.0
    assert backoff_delay(failures, 1.0, 300.0, rng=lambda: 0.999999) == pytest.approx(ceiling, rel=1e-5)
    assert backoff_delay(failures, 1.0, 300.0, rng=lambda: 1.0) == ceiling  # never above, whatever rng says
    import random

    rng = random.Random(failures)
    samples = [backoff_delay(failures, 1.0, 300.0, rng=rng.random) for _ in range(2000)]
    assert all(0.0 <= s <= ceiling for s in samples)
    assert max(samples) > 0.9 * ceiling and min(samples) < 0.1 * ceiling  # spread over the whole range
    assert sum(samples) / len(samples) == pytest.approx(ceiling / 2, rel=0.1)


def test_backoff_doubles_from_the_base_up_to_the_cap():
    ceilings = [backoff_delay(n, 1.0, 300.0, rng=lambda: 1.0) for n in range(0, 12)]
    assert ceilings == [0.0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert backoff_delay(10_000, 1.0, 300.0, rng=lambda: 1.0) == 300.0  # no overflow after days of failures
    assert backoff_delay(3, 0.5, 10.0, rng=lambda: 1.0) == 2.0


class _Client:
    settings = ServerSettings(url="http://127.0.0.1:9", interval_s=30.0, max_backoff_s=60.0)


class _Store:
    def pending_count(self) -> int:
        return 7


def _worker(rng=lambda: 1.0) -> SyncWorker:
    return SyncWorker(_Store(), _Client(), rng=rng)


def _in(state: SyncState, seconds: float) -> bool:
    wait = (datetime.fromisoformat(state.next_attempt_utc) - datetime.now(timezone.utc)).total_seconds()
    return seconds - 1.0 <= wait <= seconds + 0.1


def test_schedule_after_each_outcome():
    worker = _worker()
    unreachable = SyncResult(0, 7, Unreachable("server unreachable"))
    delays = [worker._schedule(unreachable) for _ in range(8)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    assert worker.state.running and not worker.state.halted and _in(worker.state, 60)
    assert worker._schedule(SyncResult(0, 7, Unreachable("busy", retry_after=45.0))) == 60  # capped
    assert worker._schedule(SyncResult(3, 0)) == 30.0 and worker._failures == 0  # success: idle poll
    assert worker._schedule(SyncResult(0, 7, Unreachable("busy", retry_after=20.0))) == 20.0  # 1 s, but the server asked 20
    assert worker._schedule(SyncResult(0, 7, Refused("conflict", 409))) == 60.0  # refused: the longest backoff
    assert worker._schedule(SyncResult(0, 7, BadResponse("what?"))) == 60.0
    assert worker._schedule(SyncResult(0, 7, TokenRejected("token rejected: enrol again"))) is None
    assert not worker.state.running and worker.state.halted and worker.state.next_attempt_utc is None
    assert worker._schedule(SyncResult(0, 7, NotEnrolled("not enrolled"))) is None


def test_status_line():
    now = datetime(2026, 3, 2, 11, 5, tzinfo=timezone.utc)
    last = (now - timedelta(minutes=3)).isoformat()
    local = datetime.fromisoformat(last).astimezone().strftime("%H:%M")
    retry = (now + timedelta(seconds=7.2)).isoformat()
    state = SyncState(pending=12, last_success_utc=last, last_error="server unreachable", next_attempt_utc=retry,
                      running=True)
    assert describe(state, now) == f"Sync: 12 pending · last {local} · error: server unreachable, retry in 8 s"
    assert describe(SyncState(0, last, running=True), now) == f"Sync: up to date · last {local}"
    assert describe(SyncState(3, None, pushing=True, running=True), now) == "Sync: 3 pending · sending…"
    halted = SyncState(5, None, "token rejected: enrol again", None, running=False, halted=True)
    assert describe(halted, now) == "Sync: 5 pending · stopped: token rejected: enrol again"
    yesterday = (now - timedelta(days=2)).isoformat()
    assert describe(SyncState(0, yesterday), now).startswith("Sync: up to date · last 2026-02-")
