"""Pushing the outbox as a pipeline: while the server checks and commits batch k, the worker reads batch k+1
from the encrypted store and marks batch k-1 synced. One workstation's sync then takes about as long as the
larger of the two sides instead of their sum.

Order and safety are those of one batch at a time: batches go out in seq order, one push in flight; the next
is sent only after the server acknowledged the one before (a refused batch stops the pass before anything
after it is sent); an entry is marked synced only when the server acknowledged it. An acknowledged batch whose
marking is lost (a crash, a store error) is sent again next time and acknowledged as duplicates.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from workstation.core.sync import MAX_BODY_BYTES
from workstation.core.tasks import CancelToken
from workstation.store.database import Store
from workstation.store.outbox import OutboxBatch

log = logging.getLogger(__name__)


class PartialAck(Exception):
    """The server acknowledged only part of a push (it commits a batch whole: not our server, or a bug)."""


class Pusher(Protocol):
    workstation_id: str

    def push_body(self, body: bytes): ...


def push_outbox(store: Store, client: Pusher, batch_size: int, cancel: CancelToken,
                marked: Callable[[int], None]) -> bool:
    """Push every unsynced entry; True when cancelled. Exceptions of the push (Refused, Unreachable...) and of
    the store come out as they are, after the push in flight (if any) has ended."""
    after = 0
    inflight: tuple[OutboxBatch, _Push] | None = None
    try:
        while True:
            upcoming = None if cancel.cancelled else store.outbox_batch(after, batch_size)
            done = None
            if inflight is not None:
                batch, push = inflight
                inflight = None
                ack = push.result()
                _check_ack(store, batch, ack, marked)
                done = (batch, ack)
            if upcoming is not None and not cancel.cancelled:
                upcoming, body = _fit(upcoming, client.workstation_id)
                inflight = (upcoming, _Push(client.push_body, body))
                after = upcoming.last
            if done is not None:
                batch, ack = done
                count = store.mark_batch_synced(batch)
                marked(count)
                log.info("sync: pushed entries %d-%d: %d new, %d already held, %d marked synced; head %d",
                         batch.first, batch.last, ack.accepted, ack.duplicates, count, ack.head_seq)
            if inflight is None:
                return cancel.cancelled
    except BaseException:
        if inflight is not None:
            inflight[1].wait()
        raise


class _Push:
    """One push on a daemon thread. Not a ThreadPoolExecutor: the interpreter joins those threads at exit, so a
    `workstation sync` stopped (Ctrl+C) during a push to a slow server waited for the request's timeout; a push
    in flight is abandoned instead (the server commits a batch whole; what it committed unmarked comes back as
    duplicates next time)."""

    def __init__(self, function: Callable[[bytes], object], body: bytes) -> None:
        self._done = threading.Event()
        self._value: object = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(function, body), name="ws-sync-push", daemon=True).start()

    def _run(self, function: Callable[[bytes], object], body: bytes) -> None:
        try:
            self._value = function(body)
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
