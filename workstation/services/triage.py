"""Use case "AI triage": series that arrive are routed by the site's rules to a model, queued in the encrypted
store and run one at a time in the background, before the reader opens the study.

Arrivals come from the receiver (services/triage_intake.py is the one place that knows its events); a series
is complete after the quiet time or its expected count (routing.completion), then it is routed
(routing.matching) and one job per model is queued (store.triage_queue). One worker thread runs the jobs on
the inference device, lowest OS priority, and waits while the reader's own interactive work runs. Each run is
recorded exactly like a manual one (InferenceService emits, the store keeps run and audit entry), its audit
entry naming the job: after a crash the job is finished from that entry rather than run twice.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workstation.core.audit import AuditEvent
from workstation.core.events import Event
from workstation.core.findings import InferenceResult
from workstation.core.site import ConfigError, SiteConfig
from workstation.core.study import DisplaySet, FileLocation, InstanceHeader
from workstation.core.tasks import Cancelled, CancelToken
from workstation.dicom.header import read_header
from workstation.dicom.ordering import build_catalog
from workstation.dicom.scan import scan_paths
from workstation.inference.registry import ModelError, find_model
from workstation.routing.completion import CompletionTracker, PendingSeries
from workstation.routing.matching import SeriesFacts, mismatch, route
from workstation.routing.rules import RoutingRule, RoutingSettings, routing_settings
from workstation.services.inference import InferenceService
from workstation.services.triage_headers import SeriesHeaders
from workstation.store.database import Store
from workstation.store.triage_queue import (
    CANCELLED, DONE, FAILED, NOT_APPLICABLE, Job, TriageQueue, worker_name,
)

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often completion and the queue are looked at
PROGRESS_EVERY_S = 0.5  # progress is written to the store at most this often (each write is synchronous)
WORKER_NICE = 10


@dataclass
class _Series:
    """What the service keeps about a series while it arrives (its first instance's header)."""

    header: InstanceHeader | None
    folder: str
    calling_ae: str = ""


class TriageService:
    """Owns the completion tracker, the queue and the worker thread. `changed` (text, Job | None) reports each
    arrival, route and result for the command line and the worklist (emitted on the service's threads)."""

    def __init__(self, config: SiteConfig, store: Store, models_root: Path | None = None,
                 settings: RoutingSettings | None = None) -> None:
        self.config = config
        self.settings = settings or routing_settings(config)
        self.store = store
        self.queue = TriageQueue(store)
        self.models_root = models_root
        self.tracker = CompletionTracker(self.settings.quiet_s)
        self.changed = Event()  # (text, Job | None)
        self.interactive_busy: Callable[[], bool] = lambda: False  # the reader's own work waits for nothing
        self._series: dict[str, _Series] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._cancel: dict[str, CancelToken] = {}  # running job -> its token
        self._work_ready = threading.Event()  # set when a job is queued: the worker starts at once
        self.headers = SeriesHeaders()
        self.device: str | None = None

    # ----- start-up
    def check_models(self) -> None:
        """Every model a rule names is installed (ConfigError with the rule's key otherwise)."""
        service = InferenceService(self.models_root)
        for index, rule in enumerate(self.settings.rules):
            for spec in rule.models:
                try:
                    find_model(service.manifests, spec)
                except ModelError as exc:
                    raise ConfigError(f"routing.rules[{index}].models", str(exc)) from None

    def start(self, worker: bool = True) -> list[tuple[Job, str]]:
        """Recover what a crash left running, then start the completion and (unless `worker` is False: a site
        without rules, where nothing should run) worker threads."""
        recovered = self.queue.recover()
        for job, what in recovered:
            self.changed.emit(f"job {job.job_id[:8]} (series {job.series_instance_uid}) interrupted earlier: {what}",
                              self.queue.job(job.job_id))
        self._stop.clear()
        self.headers.start()
        loops = [(self._complete_loop, "triage-completion")] + ([(self._work_loop, "triage-worker")] if worker else [])
        for target, name in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return recovered

    def stop(self, flush: bool = False) -> None:
        """Stop the threads (a running job is interrupted and queued again at the next start)."""
        self._stop.set()
        for token in list(self._cancel.values()):
            token.cancel()
        for thread in self._threads:
            thread.join(30)
        self._threads = []
        self.headers.stop()
        if flush:
            for pending in self.tracker.flush():
                self._route(pending)

    # ----- arrivals (receiver threads: quick)
    def on_instance(self, study_uid: str, series_uid: str, sop_uid: str, path: Path | str, calling_ae: str = "",
                    source: str = "") -> None:
        """One stored instance. The first of a series has its header read (modality, body part, descriptions)
        here; every one is read in the background for the job (SeriesHeaders)."""
        if self.tracker.known_complete(series_uid, sop_uid):
            return  # its second report (cache and receiver both report it) after the series was routed
        self.headers.add(series_uid, sop_uid, path)
        with self._lock:
            known = self._series.get(series_uid)
        if known is None:
            header = read_header(FileLocation(str(path)))
            known = _Series(header if isinstance(header, InstanceHeader) else None, str(Path(path).parent), calling_ae)
            with self._lock:
                known = self._series.setdefault(series_uid, known)
            self._note_study(study_uid, series_uid, known, source or (f"received from {calling_ae}" if calling_ae else "retrieved"))
            what = _describe(known.header)
            self.changed.emit(f"arriving: series {series_uid} ({what}) from {calling_ae or 'a retrieval'}", None)
        elif calling_ae and not known.calling_ae:  # the receiver's event came after the cache's: now the sender is known
            known.calling_ae = calling_ae
            self.queue.name_sender(study_uid, source or f"received from {calling_ae}")
        completed = self.tracker.arrived(study_uid, series_uid, sop_uid, series_uid, self._expected(known))
        if completed is not None:
            self._route(completed)

    def _expected(self, known: _Series) -> int | None:
        """A rule's expected count, when the series would fall under a rule that has one."""
        facts = self._facts(known, None)
        for rule in self.settings.rules:
            if rule.expected_instances and mismatch(rule, facts, check_count=False) is None:
                return rule.expected_instances
        return None

    def _note_study(self, study_uid: str, series_uid: str, known: _Series, source: str) -> None:
        header = known.header
        if header is None:
            self.queue.note_study(study_uid, source=source, folder=known.folder, series_uid=series_uid)
            return
        study, series = header.series.study, header.series
        self.queue.note_study(study_uid, patient_name=study.patient.name, patient_id=study.patient.patient_id,
                              study_date=study.date, study_time=study.time, description=study.description,
                              source=source, folder=known.folder, series_uid=series_uid, modality=series.modality,
                              series_description=series.description)

    # ----- completion and routing
    def poll(self) -> list[Job]:
        """Route every series that has become complete by quiet time; the jobs made."""
        jobs = []
        for pending in self.tracker.due():
            jobs += self._route(pending)
        return jobs

    def _route(self, pending: PendingSeries) -> list[Job]:
        with self._lock:
            known = self._series.pop(pending.series_instance_uid, None) or _Series(None, "")
        facts = self._facts(known, pending.count)
        self.changed.emit(f"complete: series {pending.series_instance_uid}, {pending.count} instance(s) "
                          f"({pending.reason})", None)
        self.queue.note_study(pending.study_instance_uid, series_uid=pending.series_instance_uid,
                              modality=facts.modality, series_description=facts.series_description,
                              instances=pending.count)
        common = {"calling_ae": known.calling_ae, "instances": pending.count, "folder": known.folder}
        if known.header is None:
            self.headers.drop(pending.series_instance_uid)
            job = self.queue.add(pending.study_instance_uid, pending.series_instance_uid, "-", "-", 0,
                                 state=NOT_APPLICABLE, reason="not an image series this workstation reads", **common)
            self.changed.emit(f"not routed: series {pending.series_instance_uid}: {job.reason}", job)
            return [job]
        decision = route(self.settings.rules, facts)
        if decision.rule is None:
            self.headers.drop(pending.series_instance_uid)
            job = self.queue.add(pending.study_instance_uid, pending.series_instance_uid, "-", "-", 0,
                                 state=NOT_APPLICABLE, reason=decision.why_not, **common)
            self.changed.emit(f"not routed: series {pending.series_instance_uid}: {decision.why_not}", job)
            return [job]
        return [self._queue_model(pending, decision.rule, spec, common) for spec in decision.rule.models]

    def _queue_model(self, pending: PendingSeries, rule: RoutingRule, spec: str, common: dict) -> Job:
        job = self.queue.add(pending.study_instance_uid, pending.series_instance_uid, spec, rule.name, rule.priority,
                             **common)
        self.changed.emit(f"routed: series {pending.series_instance_uid} by rule {rule.name} to {spec} "
                          f"(priority {rule.priority}); job {job.job_id[:8]} queued", job)
        self._work_ready.set()
        return job

    @staticmethod
    def _facts(known: _Series, count: int | None) -> SeriesFacts:
        header = known.header
        if header is None:
            return SeriesFacts(calling_ae=known.calling_ae, slices=count or 0)
        series = header.series
        return SeriesFacts(calling_ae=known.calling_ae, modality=series.modality, body_part=series.body_part,
                           series_description=series.description, study_description=series.study.description,
                           slices=count or 0, thickness_mm=header.slice_thickness)

    def _complete_loop(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a store hiccup must not end routing for the session
                log.exception("triage: routing failed")

    # ----- the worker
    def cancel(self, job_id: str) -> Job | None:
        job = self.queue.cancel(job_id)
        token = self._cancel.get(job_id)
        if token is not None:
            token.cancel()
        if job is not None:
            self.changed.emit(f"job {job_id[:8]}: cancel asked ({job.state_text})", job)
        return job

    def _work_loop(self) -> None:
        _lower_thread_priority()
        while not self._stop.is_set():
            if self.interactive_busy():
                self._stop.wait(POLL_S)
                continue
            try:
                job = self.run_next()
            except Exception:  # noqa: BLE001
                log.exception("triage: the worker failed")
                job = None
            if job is None:
                self._work_ready.wait(POLL_S)
                self._work_ready.clear()

    def run_next(self) -> Job | None:
        """Claim the next job and run it on this thread; the finished job, or None when none waits."""
        job = self.queue.claim(worker_name())
        if job is None:
            return None
        token = self._cancel[job.job_id] = CancelToken()
        self.changed.emit(f"running: job {job.job_id[:8]} {job.model} on series {job.series_instance_uid}", job)
        try:
            state, reason, run_id = self._run(job, token)
        except Cancelled:
            state, reason, run_id = CANCELLED, "while it ran", ""
        except Exception as exc:  # noqa: BLE001 - one series' failure never stops the queue
            log.exception("triage job failed")
            state, reason, run_id = FAILED, _words(exc), ""
        finally:
            self._cancel.pop(job.job_id, None)
            if not self.queue.jobs(("queued",), series_uid=job.series_instance_uid):
                self.headers.drop(job.series_instance_uid)
        if state == CANCELLED and self._stop.is_set() and not self.queue.job(job.job_id).cancel_requested:
            return None  # the service stops: left running for recover() to queue again at the next start
        self.queue.finish(job.job_id, state, reason, run_id)
        finished = self.queue.job(job.job_id)
        self.changed.emit(f"{finished.state_text}: job {job.job_id[:8]} {job.model} on series "
                          f"{job.series_instance_uid}{self._summary(run_id, job)}", finished)
        return finished

    def _run(self, job: Job, token: CancelToken) -> tuple[str, str, str]:
        display_set, problems = _display_set(job, self.headers.get(job.series_instance_uid))
        if display_set is None:
            return FAILED, problems or "no readable image of the series is in the cache", ""
        readable = len(display_set.instances)
        if job.instances and readable < job.instances:  # a corrupt instance fails its series' job, not the queue
            return FAILED, (f"{job.instances - readable} of {job.instances} instance(s) cannot be read"
                            + (f": {problems}" if problems else "")), ""
        service = InferenceService(self.models_root)
        try:
            service.choose(display_set, job.model)
        except ModelError as exc:
            return NOT_APPLICABLE, str(exc).removeprefix("refusing to run: "), ""
        from workstation.services.loading import SeriesLoad

        load = SeriesLoad(display_set, start_frame=0)
        volume = load.run()
        if self.queue.progress(job.job_id, 0.0):  # a cancel asked meanwhile, maybe by another process
            token.cancel()
        token.raise_if_cancelled()
        if volume.frame_errors or load.problems:
            bad = sorted(volume.frame_errors)
            first = next(iter(volume.frame_errors.values()), "") or (load.problems[0].reason if load.problems else "")
            return FAILED, f"{len(bad) or len(load.problems)} of {len(display_set.frames)} image(s) cannot be decoded: {first}", ""
        recorded: list[str] = []
        unrecorded: list[str] = []

        def record(result: InferenceResult, event: AuditEvent) -> None:
            try:
                recorded.append(self._record(job, result, event))
            except Exception as exc:  # noqa: BLE001 - said in the job; a run not in the store is not "done"
                log.exception("triage run not recorded")
                unrecorded.append(_words(exc))

        service.run_recorded.connect(record)
        last = [0.0]

        def progress(done: int, total: int) -> None:
            while self.interactive_busy() and not token.cancelled and not self._stop.is_set():
                time.sleep(POLL_S)  # between slices: the reader's own load or AI run goes first
            now = time.monotonic()
            if total and (now - last[0] >= PROGRESS_EVERY_S or done == total):
                last[0] = now
                if self.queue.progress(job.job_id, 0.99 * done / total):
                    token.cancel()
                self.changed.emit("", self.queue.job(job.job_id))

        service.run(display_set, volume, job.model, token, progress)
        self.device = service.device()
        if not recorded:
            return FAILED, f"the run could not be recorded in the store: {unrecorded[0] if unrecorded else 'no run'}", ""
        return DONE, "", recorded[0]

    def _record(self, job: Job, result: InferenceResult, event: AuditEvent) -> str:
        """The run and its audit entry, as a manual run is recorded, the entry naming the job and rule."""
        details = {**event.details, "triage_job_id": job.job_id, "rule": job.rule, "trigger": "routing"}
        return self.store.record_inference(result, AuditEvent(event.kind, event.at_utc, details, event.study_instance_uid,
                                                              event.outcome, event.outcome_text))

    def _summary(self, run_id: str, job: Job) -> str:
        """', 3 finding(s), top 0.98, 2 at or above 0.60 (site threshold)' for the command line."""
        if not run_id:
            return ""
        from workstation.services.worklist import model_priority

        run = next((r for r in self.store.inference_runs(job.series_instance_uid) if r.run_id == run_id), None)
        if run is None:
            return ""
        flag = model_priority(run, self.settings)
        top = f", top score {flag.top_score:.2f}" if flag.top_score is not None else ""
        return (f": {len(run.findings)} finding(s){top}, {flag.alerts} at or above {flag.threshold:.2f} "
                f"({flag.threshold_source})")

    def wait_idle(self, timeout: float) -> bool:
        """Tests and `receive --once`: True once nothing is pending, queued or running (within `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.tracker.pending() and not self.queue.jobs(("queued", "running")):
                return True
            time.sleep(POLL_S)
        return False


def _display_set(job: Job, cached=None) -> tuple[DisplaySet | None, str]:
    """The series' display set (the largest part when a series is split): from the headers read as it arrived,
    else read from its folder in the cache."""
    if cached is not None and len(cached[0]) + len(cached[1]) >= job.instances:
        headers, problems = cached
        catalog = build_catalog(headers, problems, len(headers) + len(problems))
    elif not job.folder or not Path(job.folder).is_dir():
        return None, "the series' folder is no longer in the cache"
    else:
        catalog = scan_paths([job.folder])
    sets = [ds for ds in catalog.display_sets if ds.series.series_instance_uid == job.series_instance_uid]
    reasons = "; ".join(dict.fromkeys(p.reason for p in catalog.problems))[:300]
    if not sets:
        return None, "no readable image of the series" + (f" ({reasons})" if reasons else "")
    return max(sets, key=lambda ds: len(ds.frames)), reasons


def _describe(header: InstanceHeader | None) -> str:
    if header is None:
        return "not an image"
    series = header.series
    return " ".join(v for v in (series.modality, series.body_part) if v) or "unknown modality"


def _words(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _lower_thread_priority() -> None:
    """The worker runs at a lower OS priority (Linux: per thread), so the reader's interactive work comes first."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
    except (AttributeError, OSError):
        pass
