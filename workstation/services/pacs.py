"""Use cases "echo", "find" and "retrieve" against configured PACS nodes; no Qt.

Retrieved instances go into the StudyCache and are announced through
`instance_stored`, so a viewer can open the study while it arrives.

With an audit trail, every query is recorded as "pacs.query" (node, level, the
names of the keys given - never their values, so no patient name - and the
match count) and every retrieval as "pacs.retrieve" (node, study, method,
series count, instances stored, outcome). A failure to record is logged and
never breaks the PACS operation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

from platformdirs import user_cache_dir

from workstation.core.audit import Outcome
from workstation.core.events import Event
from workstation.core.pacs import RetrieveProgress, RetrieveResult, SeriesMatch, StoredInstance, StudyMatch, StudyQuery
from workstation.core.site import SiteConfig
from workstation.core.tasks import CancelToken
from workstation.dicom.cache import CacheError, IncomingInstance, StudyCache
from workstation.net import echo as net_echo
from workstation.net import query, retrieve
from workstation.net.errors import PacsError
from workstation.net.receiver import StoreReceiver

log = logging.getLogger(__name__)

SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000
LATE_ARRIVAL_WAIT = 5.0  # seconds to wait for C-MOVE sub-operations still in flight after the final response

RetrieveCallback = Callable[[RetrieveProgress, int], None]  # (PACS progress, instances stored locally)
OUTCOME_TEXT_MAX = 500


class AuditSink(Protocol):
    """What PacsService needs of an audit trail (services.session.AuditTrail)."""

    def record(self, kind: str, study_instance_uid: str = "", outcome: Outcome = Outcome.SUCCESS,
               outcome_text: str = "", **details: Any) -> None: ...


def cache_root(config: SiteConfig) -> Path:
    """Where PACS retrievals are cached: the site's `cache.directory`, else the user cache directory."""
    if config.cache.directory:
        return Path(config.cache.directory).expanduser()
    return Path(user_cache_dir("workstation", appauthor=False)) / "pacs"


def default_cache(config: SiteConfig) -> StudyCache:
    return StudyCache(cache_root(config), config.cache.max_bytes)


class PacsService:
    def __init__(self, config: SiteConfig, cache: StudyCache | None = None, audit: AuditSink | None = None) -> None:
        self.config = config
        self.cache = cache or default_cache(config)
        self.audit = audit  # None: nothing is recorded
        self.instance_stored = Event()  # (StoredInstance): every instance cached, by C-GET, C-MOVE or a push
        # (core.receiving.ReceiverEvent): what our C-STORE receiver does, association by association:
        # AssociationAccepted / AssociationRefused, then InstanceReceived / InstanceConflict / InstanceRefused,
        # then AssociationEnded. Emitted on the receiver's threads (see core/receiving.py).
        self.received = Event()
        self._receiver: StoreReceiver | None = None
        self._arrivals = _Arrivals(self.cache, self.instance_stored)

    # ----- operations
    def echo(self, node_name: str) -> float:
        return net_echo.echo(self.config.node(node_name), self.config.local)

    def find_studies(self, node_name: str, study_query: StudyQuery) -> list[StudyMatch]:
        node = self.config.node(node_name)
        keys = _query_keys(study_query)
        try:
            matches = list(query.find_studies(node, self.config.local, study_query))
        except Exception as exc:
            self._record_query(node_name, "STUDY", keys, None, exc)
            raise
        self._record_query(node_name, "STUDY", keys, len(matches))
        return matches

    def find_series(self, node_name: str, study_instance_uid: str) -> list[SeriesMatch]:
        node = self.config.node(node_name)
        try:
            matches = list(query.find_series(node, self.config.local, study_instance_uid))
        except Exception as exc:
            self._record_query(node_name, "SERIES", ["study_instance_uid"], None, exc, study_instance_uid)
            raise
        self._record_query(node_name, "SERIES", ["study_instance_uid"], len(matches), study_instance_uid=study_instance_uid)
        return matches

    def retrieve(
        self, node_name: str, study_instance_uid: str, series_uids: tuple[str, ...] | list[str] = (),
        method: str | None = None, cancel: CancelToken | None = None, progress: RetrieveCallback | None = None,
    ) -> RetrieveResult:
        """Retrieve into the cache; failures are reported in the result, never lost: what arrived is kept."""
        node = self.config.node(node_name)
        method = method or node.retrieve
        try:
            result = self._retrieve(node_name, study_instance_uid, series_uids, method, cancel, progress)
        except Exception as exc:
            self._record_retrieve(node_name, study_instance_uid, series_uids, method, None, exc)
            raise
        self._record_retrieve(node_name, study_instance_uid, series_uids, method, result)
        return result

    def _retrieve(self, node_name: str, study_instance_uid: str, series_uids, method: str,
                  cancel: CancelToken | None, progress: RetrieveCallback | None) -> RetrieveResult:
        node = self.config.node(node_name)
        result = RetrieveResult(study_instance_uid)
        stored: list[StoredInstance] = []
        refusals_before = len(self._arrivals.refusals)

        def count(instance: StoredInstance) -> None:
            if instance.study_instance_uid == study_instance_uid:
                stored.append(instance)

        self.instance_stored.connect(count)
        self.cache.touch(study_instance_uid)  # being opened again: last in line for eviction
        last = RetrieveProgress()
        try:
            if method == "move":
                self.start_receiver()
                responses = retrieve.move(node, self.config.local, self.config.local.ae_title, study_instance_uid,
                                          series_uids, cancel)
            elif method == "get":
                responses = retrieve.get(node, self.config.local, study_instance_uid, self._arrivals, series_uids, cancel)
            else:
                raise ValueError(f"unknown retrieve method {method!r} (move or get)")
            for last in responses:
                if progress is not None:
                    progress(last, len(stored))
            if method == "move":
                self._wait_for_late_arrivals(stored, last)
        except PacsError as exc:
            result.failures.append(str(exc))
            if stored:
                result.failures.append(f"{len(stored)} instance(s) that arrived are kept in the cache")
        finally:
            self.instance_stored.disconnect(count)
        result.received = len(stored)
        result.new = sum(1 for s in stored if s.new)
        result.failed = last.failed
        result.cancelled = last.status == retrieve.CANCELLED or bool(cancel and cancel.cancelled)
        result.status = _status_words(last, result)
        if last.failed:
            listed = f" ({', '.join(last.failed_instances[:5])}{'…' if len(last.failed_instances) > 5 else ''})" if last.failed_instances else ""
            result.failures.append(f"the PACS reported {last.failed} instance(s) failed{listed}")
        refusals = self._arrivals.refusals[refusals_before:]
        if refusals:
            result.failures.append(f"{len(refusals)} instance(s) could not be stored here: {refusals[0]}")
        self.cache.evict(keep={study_instance_uid})
        return result

    # ----- audit
    def _record_query(self, node_name: str, level: str, keys: list[str], matches: int | None,
                      error: BaseException | None = None, study_instance_uid: str = "") -> None:
        details: dict[str, Any] = {"node": node_name, "level": level, "keys": keys, "matches": matches}
        if error is None:
            self._record("pacs.query", study_instance_uid, Outcome.SUCCESS, "", details)
        else:
            self._record("pacs.query", study_instance_uid, Outcome.SERIOUS_FAILURE, _error_text(error), details)

    def _record_retrieve(self, node_name: str, study_instance_uid: str, series_uids, method: str,
                         result: RetrieveResult | None, error: BaseException | None = None) -> None:
        details: dict[str, Any] = {"node": node_name, "method": method, "series_count": len(series_uids or ())}
        if result is None:
            details.update(instances_stored=0, status="failed")
            self._record("pacs.retrieve", study_instance_uid, Outcome.SERIOUS_FAILURE, _error_text(error), details)
            return
        details.update(instances_stored=result.received, new=result.new, failed=result.failed,
                       cancelled=result.cancelled, status=result.status)
        if result.ok:
            outcome = Outcome.SUCCESS
        elif result.status == "failed":
            outcome = Outcome.SERIOUS_FAILURE  # the operation broke off (what arrived is kept and counted)
        else:
            outcome = Outcome.MINOR_FAILURE  # partial or cancelled
        text = "; ".join(result.failures) or ("cancelled" if result.cancelled else "")
        self._record("pacs.retrieve", study_instance_uid, outcome, text[:OUTCOME_TEXT_MAX], details)

    def _record(self, kind: str, study_instance_uid: str, outcome: Outcome, outcome_text: str,
                details: dict[str, Any]) -> None:
        """Write one audit entry; a failure to do so is logged, never raised into the PACS operation."""
        if self.audit is None:
            return
        try:
            self.audit.record(kind, study_instance_uid=study_instance_uid, outcome=outcome,
                              outcome_text=outcome_text, **details)
        except Exception as exc:  # noqa: BLE001 - the operation itself succeeded or failed on its own
            log.error("could not record the %s audit entry (node %s): %s", kind, details.get("node"), exc)

    def study_dir(self, study_instance_uid: str) -> Path:
        return self.cache.study_dir(study_instance_uid)

    # ----- receiver
    def start_receiver(self) -> None:
        """Our C-STORE SCP for C-MOVE; only configured nodes' AE titles may store to it."""
        if self._receiver is None:
            allowed = sorted({node.ae_title for node in self.config.nodes.values()})
            self._receiver = StoreReceiver(self.config.local, self._arrivals, allowed)
        self._receiver.start()

    def close(self) -> None:
        if self._receiver is not None:
            self._receiver.stop()
        self.cache.close()

    def _wait_for_late_arrivals(self, stored: list[StoredInstance], last: RetrieveProgress) -> None:
        """An asynchronous PACS may answer before its last C-STOREs have reached us."""
        deadline = time.monotonic() + LATE_ARRIVAL_WAIT
        while len(stored) < last.completed + last.warning and time.monotonic() < deadline:
            time.sleep(0.05)


class _Arrivals:
    """net's InstanceSink: received instances (C-GET, and our receiver for C-MOVE) are streamed into the
    cache and announced by `instance_stored`; why the cache refused any is remembered."""

    def __init__(self, cache: StudyCache, instance_stored: Event) -> None:
        self.cache = cache
        self.instance_stored = instance_stored
        self.refusals: list[str] = []  # newest last
        self._lock = threading.Lock()

    def open_instance(self, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> _Arrival:
        return _Arrival(self, self.cache.incoming(sop_class_uid, sop_instance_uid, transfer_syntax_uid))

    def prepare(self) -> None:
        self.cache.prepare_incoming()

    def refuse(self, exc: CacheError) -> int:
        """Remember why an instance could not be kept; the C-STORE status that tells the sender."""
        log.warning("refused a received instance: %s", exc)
        with self._lock:
            self.refusals.append(str(exc))
        return CANNOT_UNDERSTAND if "not a DICOM" in str(exc) or "no Study" in str(exc) else OUT_OF_RESOURCES


class _Arrival:
    """One instance arriving from the network: into the cache, then announced (or refused)."""

    def __init__(self, arrivals: _Arrivals, incoming: IncomingInstance) -> None:
        self._arrivals = arrivals
        self._incoming = incoming
        self.write = incoming.write  # the data path: once per received fragment

    def commit(self) -> int:
        try:
            instance = self._incoming.commit()
        except CacheError as exc:
            self._incoming.discard()
            return self._arrivals.refuse(exc)
        self._arrivals.instance_stored.emit(instance)
        return SUCCESS

    def discard(self) -> None:
        self._incoming.discard()


def _query_keys(study_query: StudyQuery) -> list[str]:
    """Which search keys were given (names only: the values, such as a patient name, are not recorded)."""
    return [f.name for f in fields(study_query) if str(getattr(study_query, f.name)).strip()]


def _error_text(error: BaseException | None) -> str:
    if error is None:
        return ""
    return (str(error) or type(error).__name__)[:OUTCOME_TEXT_MAX]


def _status_words(last: RetrieveProgress, result: RetrieveResult) -> str:
    if result.failures and not last.final:
        return "failed"
    if result.cancelled:
        return "cancelled"
    if last.failed:
        return "partial"
    return "complete"
