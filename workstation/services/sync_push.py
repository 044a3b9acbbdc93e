"""Pushing the outbox as a pipeline: two pushes in flight. While the server checks and commits batch k, batch
k+1 is already there (the server decodes and hashes it meanwhile), and the worker reads batch k+2 from the
encrypted store and marks batch k synced. One workstation's sync then takes about as long as the server's part
alone instead of the sum of both sides and the round trips.

Order and safety stay those of one batch at a time: batches go out in seq order, and a push sent while the one
before it may still be in flight says so (`follows`): the server waits for that one to be committed before it
checks the chain (server/pipeline.py), so no batch is ever accepted before its predecessor. An entry is marked
synced only when the server acknowledged it; results are taken in order, and the first failure stops the pass
(after the pushes in flight have ended: a follower of a refused push is refused too, as a gap). A follower
refused as a gap although its predecessor was acknowledged (the server gave up waiting, or does not know
`follows`) is sent once more on its own. An acknowledged batch whose marking is lost (a crash, a store error) is
sent again next time and acknowledged as duplicates.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

from workstation.core.sync import MAX_BODY_BYTES
from workstation.core.tasks import CancelToken
from workstation.store.database import Store
from workstation.store.outbox import OutboxBatch

from .sync_client import Refused

log = logging.getLogger(__name__)

IN_FLIGHT = 2  # pushes at once: enough to keep the server busy; more would only queue there


class PartialAck(Exception):
    """The server acknowledged only part of a push (it commits a batch whole: not our server, or a bug)."""


class Pusher(Protocol):
    workstation_id: str

    def push_body(self, body: bytes, follows: int | None = None): ...


class _Sent:
    __slots__ = ("batch", "body", "follows", "push")

    def __init__(self, batch: OutboxBatch, body: bytes, follows: int | None, client: Pusher) -> None:
        self.batch, self.body, self.follows = batch, body, follows
        self.push = _Push(lambda: client.push_body(body, follows))


def push_outbox(store: Store, client: Pusher, batch_size: int, cancel: CancelToken,
                marked: Callable[[int], None], in_flight: int = IN_FLIGHT) -> bool:
    """Push every unsynced entry; True when cancelled. Exceptions of the push (Refused, Unreachable...) and of
    the store come out as they are, after the pushes in flight (if any) have ended."""
    after = 0
    sent: deque[_Sent] = deque()
    try:
        while True:
            while len(sent) < in_flight and not cancel.cancelled:
                upcoming = store.outbox_batch(after, batch_size)
                if upcoming is None:
                    break
                upcoming, body = _fit(upcoming, client.workstation_id)
                sent.append(_Sent(upcoming, body, sent[-1].batch.last if sent else None, client))
                after = upcoming.last
            if not sent:
                return cancel.cancelled
            oldest = sent.popleft()
            ack = _result(oldest, client)
            _check_ack(store, oldest.batch, ack, marked)
            batch = oldest.batch
            count = store.mark_batch_synced(batch)
            marked(count)
            log.info("sync: pushed entries %d-%d: %d new, %d already held, %d marked synced; head %d",
                     batch.first, batch.last, ack.accepted, ack.duplicates, count, ack.head_seq)
    except BaseException:
        for push in sent:
            push.push.wait()
        raise


def _result(sent: _Sent, client: Pusher):
    """The push's acknowledgement. Its predecessor (if any) is acknowledged by now: a gap means the server did
    not wait for it (gave up, or an older server), so the batch goes again, alone."""
    try:
        return sent.push.result()
    except Refused as refused:
        if sent.follows is None or refused.status != 409 or refused.kind != "gap":
            raise
        log.info("sync: entries %d-%d came before their predecessor was committed; sent again", sent.batch.first,
                 sent.batch.last)
        return client.push_body(sent.body)


class _Push:
    """One push on a daemon thread. Not a ThreadPoolExecutor: the interpreter joins those threads at exit, so a
    `workstation sync` stopped (Ctrl+C) during a push to a slow server waited for the request's timeout; a push
    in flight is abandoned instead (the server commits a batch whole; what it committed unmarked comes back as
    duplicates next time)."""

    def __init__(self, function: Callable[[], object]) -> None:
        self._done = threading.Event()
        self._value: object = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(function,), name="ws-sync-push", daemon=True).start()

    def _run(self, function: Callable[[], object]) -> None:
        try:
            self._value = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread as it is
            self._error = exc
        finally:
            self._done.set()

    def wait(self) -> None:
        self._done.wait()

    def result(self):
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


def _check_ack(store: Store, batch: OutboxBatch, ack, marked: Callable[[int], None]) -> None:
    acknowledged = set(ack.acknowledged)
    if acknowledged.issuperset(batch.entry_ids):
        if len(acknowledged) > len(batch):
            log.warning("the server acknowledged %d entries that were not in the batch (ignored)",
                        len(acknowledged) - len(batch))
        return
    ids = [entry_id for entry_id in batch.entry_ids if entry_id in acknowledged]
    marked(store.mark_synced(ids))
    missing = next(seq for seq, entry_id in zip(batch.seqs, batch.entry_ids) if entry_id not in acknowledged)
    raise PartialAck(f"the server acknowledged a push but not entry {missing}: it stays in the outbox")


def _fit(batch: OutboxBatch, workstation_id: str) -> tuple[OutboxBatch, bytes]:
    """The longest prefix of the batch (halving) whose request body stays under the server's limit, and that body."""
    body = batch.body(workstation_id)
    while len(batch) > 1 and len(body) > MAX_BODY_BYTES:
        batch = batch.head(len(batch) // 2)
        body = batch.body(workstation_id)
    return batch, body
