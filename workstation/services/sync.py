"""Sync with the central server (protocol v1, see core.sync): the worker that pushes the outbox, and this
service's facade (the HTTP client and its errors live in services.sync_client and are exported from here).

`SyncWorker` pushes the store's outbox in seq order, in batches, on a background thread (no Qt), and marks
entries synced only from the ids the server acknowledged in a 200 answer (the server commits a batch before
it answers). While the server cannot be reached (connection errors, timeouts, 5xx, 429) it retries with
exponential backoff and full jitter; a rejected token stops it ("token rejected: enrol again"); a refusal
(409 and other 4xx) is reported with the server's message and retried only after the longest backoff, the
entries staying in the outbox. Attempts are logged (counts and sequence numbers, never entry content) and
never written to the audit trail: every audit entry is itself pushed, so an entry per attempt would keep the
outbox growing for ever.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import keyring.backend

from workstation.core.events import Event
from workstation.core.site import ServerSettings, SiteConfig
from workstation.core.tasks import CancelToken
from workstation.services.sync_client import (NOT_CONFIGURED, NOT_ENROLLED, REPLACED, TOKEN_REJECTED, BadResponse,
                                              ChainMismatch, CodeRejected, KeyringProblem, LocalProblem, NotConfigured,
                                              NotEnrolled, PushAck, Refused, Replaced, SyncClient, SyncError,
                                              TokenRejected, Unreachable)
from workstation.services.sync_push import PartialAck, push_outbox
from workstation.store.database import Store, StoreError

log = logging.getLogger(__name__)

BASE_BACKOFF_S = 1.0
HEAD_CHECK_S = 600.0  # how often the worker compares the server's chain head with ours (also at its first pass)


# ----- backoff
def backoff_delay(failures: int, base: float = BASE_BACKOFF_S, cap: float = 300.0,
                  rng: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(failures - 1))]; 0 before any failure."""
    if failures <= 0:
        return 0.0
    ceiling = min(cap, base * 2.0 ** min(failures - 1, 60))
    return min(ceiling, max(0.0, rng() * ceiling))


# ----- the worker
@dataclass(frozen=True)
class SyncState:
    pending: int = 0  # entries in the outbox
    last_success_utc: str | None = None  # when the outbox was last found empty after a push (or with nothing to push)
    last_error: str = ""  # why the last attempt failed ("" after a success)
    next_attempt_utc: str | None = None  # when the worker tries again by itself (None: not scheduled)
    running: bool = False  # the worker is active and will try again by itself (False: stopped or halted)
    pushing: bool = False  # a push is in progress now
    halted: bool = False  # stopped until someone acts (token rejected, not enrolled, no keyring)


@dataclass(frozen=True)
class SyncResult:
    pushed: int  # entries the server acknowledged in this pass
    pending: int  # entries left in the outbox
    error: SyncError | None = None
    cancelled: bool = False

    @property
    def complete(self) -> bool:
        return self.error is None and not self.cancelled and self.pending == 0


class SyncWorker:
    """Pushes the outbox on a background thread; `sync_once` does one pass in the caller's thread.

    `state_changed` (a plain Event, emitted from whichever thread changed the state) carries a SyncState.
    """

    def __init__(self, store: Store, client: SyncClient, settings: ServerSettings | None = None, *,
                 base_backoff_s: float = BASE_BACKOFF_S, rng: Callable[[], float] = random.random) -> None:
        self.store, self.client = store, client
        self.settings = settings or client.settings
        self.base_backoff_s, self._rng = base_backoff_s, rng
        self.batch_size = self.settings.batch_size
        self.state_changed = Event()
        self._state = SyncState()
        self._state_lock = threading.Lock()
        self._pass_lock = threading.Lock()
        self._wake = threading.Event()
        self._cancel = CancelToken()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._delay: float | None = 0.0
        self._last_logged = ""
        self._head_checked: float | None = None  # time.monotonic() of the last comparison with the server's head
        self._recovered: str = ""  # what the last recovery did (for the status kept in the store)
        self._written: dict[str, str] = {}  # the sync status last written to the store
        self._set(pending=self._pending(0))

    # -- state
    @property
    def state(self) -> SyncState:
        with self._state_lock:
            return self._state

    def _set(self, **changes: Any) -> SyncState:
        with self._state_lock:
            new = replace(self._state, **changes)
            changed, self._state = new != self._state, new
        if changed:
            self.state_changed.emit(new)
        return new

    def _pending(self, default: int | None = None) -> int:
        try:
            return self.store.pending_count()
        except StoreError:
            return self.state.pending if default is None else default

    def enrolled(self) -> bool:
        return self.client.has_token()

    # -- the thread
    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the background thread; its first attempt is at once."""
        if self.alive:
            return
        self._cancel = CancelToken()
        self._delay = 0.0
        self._wake.clear()
        self._set(running=True, halted=False)
        self._thread = threading.Thread(target=self._run, name="ws-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop the thread; returns promptly (a push in flight is abandoned: the server commits a batch whole,
        and entries it committed but we did not mark are sent again and acknowledged as duplicates)."""
        self._cancel.cancel()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._set(running=False, pushing=False, next_attempt_utc=None)
        return thread is None or not thread.is_alive()

    def sync_now(self) -> None:
        """Try at once (the user asked): forget the backoff; also after a halt (someone may have enrolled)."""
        self._failures = 0
        if not self.alive:
            self.start()
            return
        self._delay = 0.0
        self._set(running=True, halted=False)
        self._wake.set()

    def _run(self) -> None:
        cancel = self._cancel
        try:
            while not cancel.cancelled:
                self._wake.wait(self._delay)
                self._wake.clear()
                if cancel.cancelled:
                    break
                result = self.sync_once(cancel)
                if result.cancelled:
                    break
                self._delay = self._schedule(result)
        except Exception:  # noqa: BLE001 - the thread must say why it ended
            log.exception("the sync worker stopped unexpectedly")
            self._set(running=False, halted=True, last_error="sync stopped unexpectedly (see the log)")
        finally:
            self._set(running=False, pushing=False, next_attempt_utc=None)

    def _schedule(self, result: SyncResult) -> float | None:
        """Seconds until the next attempt (None: wait until woken) and the state that says so."""
        error = result.error
        if error is None:
            self._failures = 0
            delay: float | None = self.settings.interval_s
        elif error.halts:
            delay = None
        elif error.transient:
            self._failures += 1
            delay = backoff_delay(self._failures, self.base_backoff_s, self.settings.max_backoff_s, self._rng)
            retry_after = getattr(error, "retry_after", None)
            if retry_after is not None:
                delay = min(self.settings.max_backoff_s, max(delay, retry_after))
        else:  # refused, a strange answer, the local store: nothing changes by itself soon
            self._failures += 1
            delay = self.settings.max_backoff_s
        if delay is None:
            self._set(running=False, halted=True, next_attempt_utc=None)
        else:
            at = datetime.now(timezone.utc) + timedelta(seconds=delay)
            self._set(running=True, halted=False, next_attempt_utc=at.isoformat(timespec="milliseconds"))
        return delay

    # -- one pass
    def sync_once(self, cancel: CancelToken | None = None) -> SyncResult:
        """Push everything pending, batch after batch in seq order, until the outbox is empty or a push fails."""
        cancel = cancel or self._cancel
        with self._pass_lock:
            self._set(pushing=True, next_attempt_utc=None, pending=self._pending())
            error, cancelled = None, False
            progress = [0]  # entries acknowledged so far in this pass (kept when a later batch fails)
            try:
                self._check_head(progress)
                cancelled = self._push_all(cancel, progress)
            except SyncError as exc:
                error = exc
            except StoreError as exc:
                error = LocalProblem(f"the local store: {exc}")
            except Exception as exc:  # noqa: BLE001 - a bug must not kill the worker silently
                log.exception("sync pass failed")
                error = SyncError(f"unexpected failure ({type(exc).__name__}; see the log)")
            result = SyncResult(progress[0], self._pending(), error, cancelled)
            self._report(result)
            return result

    def _push_all(self, cancel: CancelToken, progress: list[int]) -> bool:
        """True when cancelled; `progress[0]` counts the entries marked synced."""
        reconciled = False
        while True:
            try:
                return push_outbox(self.store, self.client, self.batch_size, cancel,
                                   lambda marked: self._marked(marked, progress))
            except PartialAck as exc:
                raise BadResponse(str(exc)) from None
            except Refused as refused:
                # a gap or a chain that does not fit: the server's head says whether it went back (restored
                # from a backup: recover) or is another chain (stop for IT); once per pass
                if reconciled or refused.status != 409 or refused.kind not in ("gap", "broken-link", "conflict"):
                    raise
                reconciled = True
                head = refused.head
                if head is None:  # a server that does not say its head in the 409 body
                    try:
                        head = self.client.head()
                    except Refused:
                        raise refused from None
                if not self._reconcile(head, progress):
                    raise

    def _marked(self, marked: int, progress: list[int]) -> None:
        progress[0] += marked
        self._set(pending=max(0, self.state.pending - marked))  # counted exactly again at the end of the pass

    @property
    def recovered(self) -> str:
        """What the last recovery did ("" when none in this worker's life), e.g. for `workstation sync`."""
        return self._recovered

    # -- a server restored from a backup, or a chain that is not ours
    def _check_head(self, progress: list[int]) -> None:
        """At the first pass and every HEAD_CHECK_S: compare the server's head with what it acknowledged, so that
        a restored server is noticed even with nothing to push."""
        now = time.monotonic()
        if self._head_checked is not None and now - self._head_checked < HEAD_CHECK_S:
            return
        try:
            head = self.client.head()
        except Refused as refused:
            if refused.status != 404:  # 404: a server without the head endpoint (older version): nothing to compare
                raise
            head = None
        self._head_checked = now
        if head is None:
            return
        if head[0] != self.store.synced_through() or self.store.entry_hash(head[0]) != head[1]:
            self._reconcile(head, progress)

    def _reconcile(self, head: tuple[int, str], progress: list[int]) -> bool:
        """Whether entries went back into the outbox because the server's chain is a prefix of ours that ends
        before what it had acknowledged (its database restored from a backup). ChainMismatch (sync stops) when
        the server's chain is not ours at all."""
        seq, server_hash = head
        ws = self.client.workstation_id
        local_hash = self.store.entry_hash(seq)
        act = (f"IT: compare 'workstation audit verify' here with the server's incidents for {ws}; give this machine"
               f" its own id ([workstation] id) and enrol it, or move the id here with a --replace code")
        if local_hash is None:
            last = self.store.head()[0]
            raise ChainMismatch(f"the central server holds another trail for {ws}: tell IT. It holds entries up to"
                                f" {seq} but this machine's trail ends at {last}: another machine uses this id, or this"
                                f" store was restored from an older copy. Sync stopped. {act}")
        if local_hash != server_hash:
            raise ChainMismatch(f"the central server holds another trail for {ws}: tell IT. Its entry {seq} is not"
                                f" this machine's (another hash): another machine uses this id, or one of the trails"
                                f" was rewritten. Sync stopped. {act}")
        acknowledged = self.store.synced_through()
        if acknowledged <= seq:
            return False
        self.client.announce_recovery(seq, server_hash, acknowledged)
        reset = self.store.reset_synced_after(seq)
        self._recovered = (f"server rolled back to entry {seq} at {_now()}: {acknowledged - seq} entries"
                           f" ({seq + 1}-{acknowledged}) sent again")
        log.warning("sync: the central server holds our chain only up to entry %d but had acknowledged %d (restored"
                    " from a backup?); %d entries go back into the outbox", seq, acknowledged, reset)
        self._set(pending=self._pending())
        return True

    def _report(self, result: SyncResult) -> None:
        self._record_status(result)
        error = result.error
        if error is None and not result.cancelled:
            now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
            if result.pushed or self._last_logged:
                log.info("sync: up to date (%d pushed in this pass)", result.pushed)
            self._last_logged = ""
            self._set(pushing=False, pending=result.pending, last_error="",
                      last_success_utc=now if result.pending == 0 else self.state.last_success_utc)
            return
        if error is not None:
            text = str(error)
            if text != self._last_logged:  # a failure that persists is logged once, then at debug level
                log.warning("sync failed (%d pending): %s", result.pending, text)
            else:
                log.debug("sync still failing (%d pending): %s", result.pending, text)
            self._last_logged = text
            self._set(pushing=False, pending=result.pending, last_error=text)
        else:
            self._set(pushing=False, pending=result.pending)

    def _record_status(self, result: SyncResult) -> None:
        """Keep the pass's outcome in the store for doctor and the next start (only when it says something new:
        an idle pass that finds nothing to push writes nothing)."""
        if result.cancelled and result.error is None:
            return
        outcome = outcome_of(result.error)
        values = {"last_outcome": outcome, "last_message": str(result.error or "")[:1000]}
        if result.pushed or outcome != "ok" or self._written.get("last_outcome") != "ok":
            values["last_push_utc"] = _now()
        if outcome == "ok":
            values["last_success_utc"] = _now() if (result.pushed or "last_success_utc" not in self._written) \
                else self._written["last_success_utc"]
        if outcome in REFUSALS:
            values["last_refusal_utc"] = _now()
            values["last_refusal"] = str(result.error)[:1000]
        if self._recovered:
            values["last_recovery"] = self._recovered
        if all(self._written.get(k) == v for k, v in values.items()):
            return
        try:
            self.store.set_sync_status(values)
            self._written.update(values)
        except (StoreError, AttributeError) as exc:  # a store of an older schema, or closed: the pass still counts
            log.debug("sync status not kept: %s", exc)


def outcome_of(error: SyncError | None) -> str:
    """The word kept in the store for a pass's outcome (doctor reads it)."""
    if error is None:
        return "ok"
    if isinstance(error, Replaced):
        return "replaced"
    if isinstance(error, ChainMismatch):
        return "mismatch"
    if isinstance(error, Refused):
        return "refused"
    if isinstance(error, Unreachable):
        return "unreachable"
    if isinstance(error, TokenRejected):
        return "token-rejected"
    return "error"


REFUSALS = ("refused", "replaced", "mismatch", "token-rejected")  # outcomes someone must act on


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def make_worker(config: SiteConfig, store: Store, backend: keyring.backend.KeyringBackend | None = None,
                **options: Any) -> SyncWorker | None:
    """The sync worker of this site (not started), or None when no central server is configured.

    NotConfigured when the [server] settings cannot be used (e.g. an unreadable ca_file)."""
    if not config.server.configured:
        return None
    client = SyncClient(config.server, store.identity.workstation_id, backend)
    return SyncWorker(store, client, config.server, **options)


def describe(state: SyncState, now: datetime | None = None) -> str:
    """One line for a status bar or a terminal, e.g.
    "Sync: 12 pending · last 11:02 · error: server unreachable, retry in 8 s"."""
    now = now or datetime.now(timezone.utc)
    parts = ["Sync: " + ("up to date" if state.pending == 0 and not state.last_error
                         else f"{state.pending} pending")]
    if state.last_success_utc:
        parts.append(f"last {_local_time(state.last_success_utc, now)}")
    if state.pushing:
        parts.append("sending…")
    elif state.last_error and state.halted:
        parts.append(f"stopped: {state.last_error}")
    elif state.last_error:
        error = f"error: {state.last_error}"
        if state.running and state.next_attempt_utc:
            seconds = (datetime.fromisoformat(state.next_attempt_utc) - now).total_seconds()
            error += f", retry in {math.ceil(seconds)} s" if seconds >= 0.5 else ", retrying…"
        parts.append(error)
    return " · ".join(parts)


def _local_time(utc: str, now: datetime) -> str:
    moment = datetime.fromisoformat(utc).astimezone()
    return moment.strftime("%H:%M" if moment.date() == now.astimezone().date() else "%Y-%m-%d %H:%M")


__all__ = [
    "BadResponse", "CodeRejected", "KeyringProblem", "LocalProblem", "NotConfigured", "NotEnrolled", "PushAck",
    "ChainMismatch", "REFUSALS", "Refused", "Replaced", "SyncClient", "SyncError", "SyncResult", "SyncState", "SyncWorker", "TokenRejected", "Unreachable",
    "backoff_delay", "describe", "make_worker", "outcome_of", "NOT_CONFIGURED", "NOT_ENROLLED", "REPLACED",
    "TOKEN_REJECTED",
]
