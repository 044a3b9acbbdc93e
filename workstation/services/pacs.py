"""Use cases "echo", "find" and "retrieve" against configured PACS nodes; no Qt.

Retrieved instances go into the StudyCache and are announced through
`instance_stored`, so a viewer can open the study while it arrives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from platformdirs import user_cache_dir

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


def default_cache(config: SiteConfig) -> StudyCache:
    root = Path(config.cache.directory) if config.cache.directory else Path(user_cache_dir("workstation", appauthor=False)) / "pacs"
    return StudyCache(root, config.cache.max_bytes)


class PacsService:
    def __init__(self, config: SiteConfig, cache: StudyCache | None = None) -> None:
        self.config = config
        self.cache = cache or default_cache(config)
        self.instance_stored = Event()  # (StoredInstance)
        self._receiver: StoreReceiver | None = None
        self._arrivals = _Arrivals(self.cache, self.instance_stored)

    # ----- operations
    def echo(self, node_name: str) -> float:
        return net_echo.echo(self.config.node(node_name), self.config.local)

    def find_studies(self, node_name: str, study_query: StudyQuery) -> list[StudyMatch]:
        return list(query.find_studies(self.config.node(node_name), self.config.local, study_query))

    def find_series(self, node_name: str, study_instance_uid: str) -> list[SeriesMatch]:
        return list(query.find_series(self.config.node(node_name), self.config.local, study_instance_uid))

    def retrieve(
        self, node_name: str, study_instance_uid: str, series_uids: tuple[str, ...] | list[str] = (),
        method: str | None = None, cancel: CancelToken | None = None, progress: RetrieveCallback | None = None,
    ) -> RetrieveResult:
        """Retrieve into the cache; failures are reported in the result, never lost: what arrived is kept."""
        node = self.config.node(node_name)
        method = method or node.retrieve
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


def _status_words(last: RetrieveProgress, result: RetrieveResult) -> str:
    if result.failures and not last.final:
        return "failed"
    if result.cancelled:
        return "cancelled"
    if last.failed:
        return "partial"
    return "complete"
