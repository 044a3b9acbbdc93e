"""Flood limits kept in the server process's memory: failed enrolments per source address, incident rows per
workstation. With `--workers N` each worker process keeps its own (so N times the limits); a restart forgets
them. Behind a reverse proxy every request comes from the proxy's address: limit there too.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

ENROL_FAILURES_BURST = 20  # failed enrolments a source may make at once...
ENROL_FAILURES_PER_MINUTE = 10  # ...then this many a minute (a 25-character code is never guessed at that rate)
INCIDENT_ROWS_PER_MINUTE = 30  # new incident rows per workstation; more are counted in one "flood" row


class Bucket:
    """Token buckets by key: `burst` at once, refilled at `per_minute`. Thread-safe (sync routes run in a pool)."""

    def __init__(self, burst: int, per_minute: float, clock=time.monotonic):
        self.burst, self.rate, self.clock = float(burst), per_minute / 60.0, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def retry_after(self, key: str) -> int | None:
        """Whole seconds until `key` may try again; None when it may now."""
        with self._lock:
            level = self._level(key, self.clock())
        return None if level >= 1 else max(1, math.ceil((1 - level) / self.rate))

    def spend(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            self._buckets[key] = (max(0.0, self._level(key, now) - 1), now)
            if len(self._buckets) > 10_000:  # forget sources whose bucket is full again
                self._buckets = {k: v for k, v in self._buckets.items() if self._level(k, now) < self.burst}


class Window:
    """At most `limit` events per key in any `seconds`: `allow(key)` records one when it is allowed."""

    def __init__(self, limit: int, seconds: float = 60.0, clock=time.monotonic):
        self.limit, self.seconds, self.clock = limit, seconds, clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        with self._lock:
            now = self.clock()
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.seconds:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True
