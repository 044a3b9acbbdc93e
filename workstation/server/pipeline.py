"""Pipelined pushes: a workstation may send its next batch before the server has committed the one before it.

Why: one workstation's pushes used to be strictly one at a time, so the server sat idle while the client waited
for the answer, read the next batch from its store and sent it, and the client sat idle while the server
decoded, checked and committed. With two pushes in flight, the server decodes and hashes batch k+1 while batch k
is being inserted and committed (the database releases the interpreter while it writes), and the client's own
work overlaps the server's.

A push says which entries it follows (`POST /entries?follows=N`: the entries up to N were sent in an earlier
push that may still be in flight). Before its chain check, such a push waits until the workstation's accepted
head reaches N, at most WAIT_S. The chain rules do not change: the wait only orders pushes that arrived out of
order; a push whose predecessor is refused, or never arrives, ends as a gap (409), without an incident of its
own (the predecessor's refusal has one; a gap that was only a race is not worth one). At most MAX_WAITING pushes
per workstation wait in a process (more are checked at once), so a workstation cannot hold the server's threads.

A commit in this process wakes the waiters, which find the new head in memory (no query). A commit in another worker
process (`--workers N`) is announced by it (peers.py): the waiters of that workstation read the head from the
database at once. Otherwise the head is read on arrival (when memory does not have it: a restarted server, say)
and then only as a fallback, after POLL_S, doubling up to MAX_POLL_S: a commit nobody announced (a worker that
could not), or a lost notice. (Polling every 5 ms took a fifth of the server's CPU with 8 workstations pushing
at once; reading the head on every arrival, a tenth.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, select

from . import db

WAIT_S = 10.0  # longest wait for the predecessor (a batch of 500 takes well under a second, also under load)
POLL_S = 0.05  # first interval of head polling (a commit nobody announced), doubled after each poll
MAX_POLL_S = 0.5
MAX_WAITING = 4  # per workstation and process: a client keeps two pushes in flight, and with `--workers N` both
# (and the one it sends when the first is answered) may land in one process before the first is seen committed


class HeadWaits:
    """The waiting pushes of this process, by workstation; thread-safe (push routes run in a thread pool)."""

    def __init__(self, wait_s: float = WAIT_S, poll_s: float = POLL_S, max_waiting: int = MAX_WAITING,
                 clock: Callable[[], float] = time.monotonic, max_poll_s: float = MAX_POLL_S,
                 announce: Callable[[str, int], None] | None = None):
        self.wait_s, self.poll_s, self.max_waiting, self.clock = wait_s, poll_s, max_waiting, clock
        self.max_poll_s = max(max_poll_s, poll_s)
        self.announce = announce  # tells the other worker processes of a commit here (peers.Peers.announce)
        self._changed = threading.Condition()
        self._nudges: dict[str, tuple[int, int]] = {}  # workstation -> (notices of commits elsewhere, highest head)
        self._waiting: dict[str, int] = {}  # workstation -> pushes waiting
        self._heads: dict[str, int] = {}  # workstation -> head seq committed in this process
        self._refused_at: dict[str, float] = {}  # workstation -> when a push of it was last refused (this process)

    def wait_for(self, engine: Engine, workstation_id: str, follows: int, since: float) -> str:
        """Wait until the workstation's head reaches `follows`. "ready" when it has, "refused" when one of its
        pushes was refused in this process after `since` (this push's arrival: its predecessor, most likely),
        "timeout" after wait_s, "busy" when max_waiting pushes of it already wait here (then: no wait)."""
        with self._changed:
            if self._waiting.get(workstation_id, 0) >= self.max_waiting:
                return "busy"
            self._waiting[workstation_id] = self._waiting.get(workstation_id, 0) + 1
        try:
            deadline = self.clock() + self.wait_s
            interval, poll_at, nudged = self.poll_s, self.clock(), None
            while True:
                with self._changed:
                    if self._heads.get(workstation_id, -1) >= follows:
                        return "ready"
                    if self._refused_at.get(workstation_id, float("-inf")) >= since:
                        return "refused"
                    now = self.clock()
                    if now >= deadline:
                        return "timeout"
                    nudges = self._nudges.get(workstation_id, (0, -1))
                    if now < poll_at and (nudges == nudged or nudges[1] < follows):
                        self._changed.wait(max(0.0, min(poll_at, deadline) - now))
                        continue
                    nudged = nudges
                # committed elsewhere (another worker said so, or nobody did: the fallback), or just arrived
                if _head_seq(engine, workstation_id) >= follows:
                    return "ready"
                poll_at, interval = self.clock() + interval, min(2 * interval, self.max_poll_s)
        finally:
            with self._changed:
                left = self._waiting.pop(workstation_id) - 1
                if left:
                    self._waiting[workstation_id] = left

    def committed(self, workstation_id: str, head_seq: int) -> None:
        """A push of this workstation committed in this process, up to `head_seq`: its waiting pushes go on."""
        with self._changed:
            if head_seq > self._heads.get(workstation_id, -1):
                self._heads[workstation_id] = head_seq
            self._changed.notify_all()
        if self.announce is not None:
            self.announce(workstation_id, head_seq)

    def nudge(self, workstation_id: str, head_seq: int) -> None:
        """Another worker process says it committed `workstation_id` up to `head_seq`: its waiters here read the
        head from the database now (a notice is a hint; the database says what is committed)."""
        with self._changed:
            if len(self._nudges) > 10_000:
                self._nudges.clear()  # counters only: a waiter that misses one polls on its own schedule
            count, highest = self._nudges.get(workstation_id, (0, -1))
            self._nudges[workstation_id] = (count + 1, max(highest, head_seq))
            self._changed.notify_all()

    def refused(self, workstation_id: str) -> None:
        """A push of this workstation was refused: its followers here stop waiting."""
        with self._changed:
            self._refused_at[workstation_id] = self.clock()
            if len(self._refused_at) > 10_000:  # forget old refusals (no follower waits that long)
                now = self.clock()
                self._refused_at = {k: t for k, t in self._refused_at.items() if now - t < self.wait_s}
            self._changed.notify_all()


def _head_seq(engine: Engine, workstation_id: str) -> int:
    with db.read(engine) as conn:
        seq = conn.execute(select(db.workstations.c.head_seq).where(db.workstations.c.id == workstation_id)).scalar()
    return -1 if seq is None else seq


class Handling:
    """How many pushes of each workstation this process has in hand now (thread-safe). With `--workers N`, a
    push answered while another push of the same workstation is still in hand here closes its connection, so that
    the workstation's next push is accepted by a worker process that is free: on kept-alive connections, both pushes
    a workstation keeps in flight could stay with one process for the whole sync. Otherwise the connection stays
    open (no new connection, nor TLS handshake, per push where the pushes are spread already)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    @contextmanager
    def push_of(self, workstation_id: str) -> Iterator[None]:
        with self._lock:
            self._counts[workstation_id] = self._counts.get(workstation_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._counts.pop(workstation_id) - 1
                if left:
                    self._counts[workstation_id] = left

    def count(self, workstation_id: str) -> int:
        with self._lock:
            return self._counts.get(workstation_id, 0)
