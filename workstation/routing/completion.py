"""When has a series arrived? Senders do not say: a series is complete when no instance of it has come for
the site's quiet time, or as soon as the expected number of instances is there (a rule's `expected_instances`,
else the header's Images in Acquisition when the modality sets it).

Thread-safe: instances arrive on the receiver's association threads, `due()` is polled by one service thread.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class PendingSeries:
    study_instance_uid: str
    series_instance_uid: str
    first: object  # what the caller keeps about the series (its first instance's facts)
    instances: set[str] = field(default_factory=set)  # SOP Instance UIDs
    first_arrival: float = 0.0
    last_arrival: float = 0.0
    expected: int | None = None
    reason: str = ""  # why it counts as complete: "quiet 10 s" or "expected count 300 reached"

    @property
    def count(self) -> int:
        return len(self.instances)


# Completed series remembered with their instances: each instance is reported twice (the cache and the
# receiver), and the second report of the one that completed a series must not start that series anew.
REMEMBERED_COMPLETE = 1024


class CompletionTracker:
    def __init__(self, quiet_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_s = quiet_s
        self._clock = clock
        self._pending: dict[str, PendingSeries] = {}
        self._complete: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._lock = threading.Lock()

    def known_complete(self, series_uid: str, sop_uid: str) -> bool:
        """This instance belongs to a series already complete (a second report, or the same instance resent):
        nothing new has arrived. A new instance of a completed series is not: it starts the series anew."""
        with self._lock:
            return series_uid not in self._pending and sop_uid in self._complete.get(series_uid, ())

    def _completed(self, pending: PendingSeries) -> PendingSeries:
        """Called under the lock for each series leaving `_pending`."""
        self._complete[pending.series_instance_uid] = frozenset(pending.instances)
        self._complete.move_to_end(pending.series_instance_uid)
        while len(self._complete) > REMEMBERED_COMPLETE:
            self._complete.popitem(last=False)
        return pending

    def arrived(self, study_uid: str, series_uid: str, sop_uid: str, first: object = None,
                expected: int | None = None) -> PendingSeries | None:
        """Note one instance; returns the series when this instance completes it by count (then it is no longer pending)."""
        now = self._clock()
        with self._lock:
            pending = self._pending.get(series_uid)
            if pending is None and sop_uid in self._complete.get(series_uid, ()):
                return None  # reported again after its series completed: nothing new
            if pending is None:
                pending = self._pending[series_uid] = PendingSeries(study_uid, series_uid, first, first_arrival=now)
            pending.instances.add(sop_uid)
            pending.last_arrival = now
            if expected and not pending.expected:
                pending.expected = expected
            if pending.expected and pending.count >= pending.expected:
                pending.reason = f"expected count {pending.expected} reached"
                return self._completed(self._pending.pop(series_uid))
        return None

    def due(self) -> list[PendingSeries]:
        """Series quiet for the quiet time, oldest first; they are no longer pending (a late instance starts anew)."""
        now = self._clock()
        with self._lock:
            done = [p for p in self._pending.values() if now - p.last_arrival >= self.quiet_s]
            for p in done:
                p.reason = f"no new instance for {self.quiet_s:g} s"
                self._completed(self._pending.pop(p.series_instance_uid))
        return sorted(done, key=lambda p: p.first_arrival)

    def pending(self) -> list[PendingSeries]:
        with self._lock:
            return list(self._pending.values())

    def flush(self) -> list[PendingSeries]:
        """Every pending series, complete or not (the service stops: queue what arrived rather than lose it)."""
        with self._lock:
            done, self._pending = list(self._pending.values()), {}
            for p in done:
                self._completed(p)
        for p in done:
            p.reason = "receiver stopped"
        return sorted(done, key=lambda p: p.first_arrival)
