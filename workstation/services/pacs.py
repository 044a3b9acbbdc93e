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
from workstation.core.receiving import (
    AssociationAccepted,
    AssociationEnded,
    AssociationRefused,
    InstanceConflict,
    InstanceReceived,
    InstanceRefused,
    KeptConflict,
)
from workstation.core.site import SiteConfig
from workstation.core.tasks import CancelToken
from workstation.dicom.cache import CacheError, ConflictingInstance, IncomingInstance, StudyCache
from workstation.net import echo as net_echo
from workstation.net import query, retrieve
from workstation.net.errors import PacsError
from workstation.net.receiver import StoreReceiver

log = logging.getLogger(__name__)

SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000
DROPS_AUDITED_EVERY = 60.0  # seconds: one refusal repeated (same address, AE titles, reason) is audited once per this
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
        self._arrivals = _Arrivals(self.cache, self.instance_stored, self)

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
        """Our C-STORE SCP (pushes, and C-MOVE): only configured nodes, from their hosts, may store to it."""
        if self._receiver is None:
            self._receiver = StoreReceiver(self.config.local, _ReceiverReport(self), list(self.config.nodes.values()))
        self._receiver.start()

    @property
    def receiver_running(self) -> bool:
        return self._receiver is not None and self._receiver.running

    def conflicts(self) -> list[KeptConflict]:
        """Conflicting copies kept in the cache (a held SOP Instance UID that arrived with other content)."""
        return self.cache.conflicts()

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
    """net's InstanceSink for C-GET: received instances are streamed into the cache and announced by
    `instance_stored`; why the cache refused any is remembered."""

    def __init__(self, cache: StudyCache, instance_stored: Event, service: PacsService) -> None:
        self.cache = cache
        self.instance_stored = instance_stored
        self.service = service
        self.refusals: list[str] = []  # newest last
        self._lock = threading.Lock()

    def open_instance(self, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> _Arrival:
        return _Arrival(self, self.cache.incoming(sop_class_uid, sop_instance_uid, transfer_syntax_uid, self.origin()),
                        sop_class_uid, sop_instance_uid, transfer_syntax_uid)

    def origin(self) -> str:
        return "retrieved by C-GET"

    def prepare(self) -> None:
        self.cache.prepare_incoming()

    def stored(self, instance: StoredInstance, arrival: _Arrival) -> None:
        self.instance_stored.emit(instance)

    def refuse(self, exc: CacheError, arrival: _Arrival) -> tuple[int, str]:
        """Remember why an instance could not be kept; the C-STORE status (and comment) that tells the sender."""
        log.warning("refused a received instance: %s", exc)
        with self._lock:
            self.refusals.append(str(exc))
        status = getattr(exc, "status", OUT_OF_RESOURCES)
        if "not a DICOM" in str(exc) or "no Study" in str(exc):
            status = CANNOT_UNDERSTAND
        return status, str(exc)

    def conflict(self, exc: ConflictingInstance, arrival: _Arrival) -> tuple[int, str]:
        """A held SOP Instance UID with other content: recorded and reported; the sender gets a failure."""
        conflict = exc.conflict
        if conflict is not None:
            self.service._record("receiver.conflict", conflict.study_instance_uid, Outcome.MINOR_FAILURE, str(exc), {
                "sop_instance_uid": conflict.sop_instance_uid, "series_instance_uid": conflict.series_instance_uid,
                "origin": conflict.origin, "conflict_file": conflict.conflict_path.name})
        self.refuse(exc, arrival)
        return exc.status, "SOP Instance UID held with other content"


class _AssociationArrivals(_Arrivals):
    """The InstanceSink of one association our receiver accepted: instances reported with who sent them."""

    def __init__(self, report: _ReceiverReport, accepted: AssociationAccepted) -> None:
        service = report.service
        super().__init__(service.cache, service.instance_stored, service)
        self.refusals, self._lock = service._arrivals.refusals, service._arrivals._lock  # a retrieval reports them
        self.accepted = accepted
        self.stored_count = self.refused_count = self.conflict_count = 0
        self.new_count = 0
        self.studies: dict[str, list[int]] = {}  # study UID -> [stored, new, conflicts]
        self.reasons: list[str] = []

    def origin(self) -> str:
        return f"{self.accepted.calling_ae_title} from {self.accepted.peer_host}"

    def _study(self, uid: str) -> list[int]:
        return self.studies.setdefault(uid, [0, 0, 0])

    def stored(self, instance: StoredInstance, arrival: _Arrival) -> None:
        self.stored_count += 1
        self.new_count += instance.new
        counts = self._study(instance.study_instance_uid)
        counts[0] += 1
        counts[1] += instance.new
        super().stored(instance, arrival)
        a = self.accepted
        self.service.received.emit(InstanceReceived(
            a.association_id, a.calling_ae_title, a.peer_host, a.node, instance.study_instance_uid,
            instance.series_instance_uid, instance.sop_instance_uid, arrival.sop_class_uid, arrival.transfer_syntax_uid,
            instance.path, instance.new))

    def refuse(self, exc: CacheError, arrival: _Arrival) -> tuple[int, str]:
        answer = super().refuse(exc, arrival)
        if not isinstance(exc, ConflictingInstance):
            self.refused_count += 1
            if len(self.reasons) < 3:
                self.reasons.append(str(exc)[:200])
            a = self.accepted
            self.service.received.emit(InstanceRefused(a.association_id, a.calling_ae_title, a.peer_host, a.node,
                                                       arrival.sop_instance_uid, answer[0], str(exc)))
        return answer

    def conflict(self, exc: ConflictingInstance, arrival: _Arrival) -> tuple[int, str]:
        answer = super().conflict(exc, arrival)
        conflict = exc.conflict
        a = self.accepted
        if conflict is None:  # not kept either: enough conflicting copies of it are held
            self.refused_count += 1
            if len(self.reasons) < 3:
                self.reasons.append(str(exc)[:200])
            self.service.received.emit(InstanceRefused(a.association_id, a.calling_ae_title, a.peer_host, a.node,
                                                       arrival.sop_instance_uid, answer[0], str(exc)))
            return answer
        self.conflict_count += 1
        self._study(conflict.study_instance_uid)[2] += 1
        self.service.received.emit(InstanceConflict(
            a.association_id, a.calling_ae_title, a.peer_host, a.node, conflict.study_instance_uid,
            conflict.series_instance_uid, conflict.sop_instance_uid, conflict.held_path, conflict.conflict_path))
        return answer


class _ReceiverReport:
    """net's ReceiverHandler: receiver events to `PacsService.received` and the audit trail (no patient data)."""

    def __init__(self, service: PacsService) -> None:
        self.service = service
        self._open: dict[int, _AssociationArrivals] = {}
        self._drops: dict[tuple, tuple[float, int]] = {}  # refusal -> (last audited, repeated since)
        self._lock = threading.Lock()

    def accepted(self, association: AssociationAccepted) -> _AssociationArrivals:
        sink = _AssociationArrivals(self, association)
        with self._lock:
            self._open[association.association_id] = sink
        self.service.received.emit(association)
        return sink

    def refused(self, refusal: AssociationRefused) -> None:
        self.service.received.emit(refusal)
        details = {"peer_host": refusal.peer_host, "calling_ae_title": refusal.calling_ae_title,
                   "called_ae_title": refusal.called_ae_title, "tls": refusal.tls}
        # the same refusal again (a flood of idle connections or of requests) is audited once a minute, with a count
        key = (refusal.peer_host, refusal.calling_ae_title, refusal.called_ae_title, refusal.reason.split(":")[0][:60])
        now = time.monotonic()
        with self._lock:
            last, repeated = self._drops.get(key, (-DROPS_AUDITED_EVERY, 0))
            if now - last < DROPS_AUDITED_EVERY:
                self._drops[key] = (last, repeated + 1)
                return
            if len(self._drops) > 10_000:
                self._drops.clear()
            self._drops[key] = (now, 0)
        if repeated:
            details["repeated_since_last_entry"] = repeated
        self.service._record("receiver.refused", "", Outcome.MAJOR_FAILURE, refusal.reason[:OUTCOME_TEXT_MAX], details)

    def ended(self, association: AssociationAccepted, how: str) -> None:
        with self._lock:
            sink = self._open.pop(association.association_id)
        a = association
        self.service.received.emit(AssociationEnded(
            a.association_id, a.peer_host, a.calling_ae_title, a.node, sink.stored_count, sink.refused_count,
            sink.conflict_count, tuple(sink.studies), how))
        base = {"association_id": a.association_id, "peer_host": a.peer_host, "calling_ae_title": a.calling_ae_title,
                "called_ae_title": a.called_ae_title, "node": a.node, "tls": a.tls, "ended": how[:200]}
        if how != "released" or sink.refused_count:
            outcome = Outcome.MINOR_FAILURE
        else:
            outcome = Outcome.SUCCESS
        text = "; ".join(sink.reasons)[:OUTCOME_TEXT_MAX]
        if not sink.studies:
            self.service._record("receiver.association", "", outcome, text, {
                **base, "instances_stored": 0, "new": 0, "conflicts": 0, "refused": sink.refused_count})
        for study, (stored, new, conflicts) in sink.studies.items():
            self.service._record("receiver.association", study, Outcome.MINOR_FAILURE if conflicts else outcome, text, {
                **base, "instances_stored": stored, "new": new, "conflicts": conflicts, "refused": sink.refused_count})


class _Arrival:
    """One instance arriving from the network: into the cache, then announced (or refused)."""

    def __init__(self, arrivals: _Arrivals, incoming: IncomingInstance, sop_class_uid: str, sop_instance_uid: str,
                 transfer_syntax_uid: str) -> None:
        self._arrivals = arrivals
        self._incoming = incoming
        self.sop_class_uid, self.sop_instance_uid, self.transfer_syntax_uid = sop_class_uid, sop_instance_uid, transfer_syntax_uid
        self.write = incoming.write  # the data path: once per received fragment

    def commit(self) -> int | tuple[int, str]:
        try:
            instance = self._incoming.commit()
        except ConflictingInstance as exc:
            return self._arrivals.conflict(exc, self)
        except CacheError as exc:
            self._incoming.discard()
            return self._arrivals.refuse(exc, self)
        self._arrivals.stored(instance, self)
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
