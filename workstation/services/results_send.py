"""Use case "send the results to the PACS": a queue in the encrypted store, C-STORE, retries, audit.

Built objects are queued with their bytes, once per (run, kind, content, node):
building again for an unchanged review queues nothing new, so a PACS never
gets the same result twice as different objects. A node that cannot be
reached leaves its objects "retrying" with a growing wait; an object the PACS
refuses becomes "failed" with the status and stays for a user to retry. Every
send is an `export` audit entry (110106) naming the node and the SOP Instance
UIDs, never the patient.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from io import BytesIO

from pydicom import Dataset, dcmwrite

from workstation.core.audit import Outcome
from workstation.core.site import ConfigError, SiteConfig
from workstation.core.tasks import CancelToken
from workstation.net.errors import PacsError
from workstation.net.store_scu import Outgoing, StoreOutcome, outgoing, store_objects
from workstation.services.pacs import AuditSink
from workstation.store.database import Store, now_utc
from workstation.store.result_queue import QueuedResult, ResultQueue

log = logging.getLogger(__name__)

QUEUED, RETRYING, SENT, FAILED = "queued", "retrying", "sent", "failed"
SUPERSEDED, WITHDRAWN = "superseded", "withdrawn"  # never sent: a newer build replaced it / its review was reopened
FIRST_RETRY_S = 30.0


@dataclass
class SendReport:
    """What one `send_pending` did: objects sent, refused (failed), left to retry, with the reasons."""

    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (SOP Instance UID, reason)
    retrying: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False

    @property
    def done(self) -> bool:
        return not self.failed and not self.retrying and not self.cancelled

    def summary(self) -> str:
        parts = [f"{len(self.sent)} sent"]
        if self.failed:
            parts.append(f"{len(self.failed)} refused ({self.failed[0][1]})")
        if self.retrying:
            parts.append(f"{len(self.retrying)} to retry ({self.retrying[0][1]})")
        if self.cancelled:
            parts.append("cancelled")
        return ", ".join(parts)


class ResultsOutbox:
    def __init__(self, config: SiteConfig, store: Store, audit: AuditSink | None = None,
                 send: Callable[..., list[StoreOutcome]] = store_objects,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.config, self.store, self.audit, self._send, self._clock = config, store, audit, send, clock
        self.queue = ResultQueue(store)

    def build_and_queue(self, series_instance_uid: str, sources, node: str | None = None) -> list[QueuedResult]:
        """Build the objects of the series' newest stored run (review SR once signed off) and queue them.

        `sources`: the Catalog or paths holding the series' images. NothingToBuild / ContextError say why not.
        """
        from workstation.results import build_results
        from workstation.services.results_build import contexts_for_series

        run, review = contexts_for_series(self.store, series_instance_uid, sources)
        study = str(run.sources[0].StudyInstanceUID)
        return self.enqueue(build_results(run, review), study, series_instance_uid, run.run_id, node,
                            signoff_entry_id=review.signoff_entry_id if review is not None else "")

    # ----- queueing
    def enqueue(self, objects: list, study_instance_uid: str, series_instance_uid: str, run_id: str,
                node: str | None = None, signoff_entry_id: str = "") -> list[QueuedResult]:
        """Queue built objects (each with .kind, .dataset, .content_key) for `node` (default: the site's).

        An unsent object of the same run and kind with other content is superseded (never sent): the PACS gets
        what the review says now. `signoff_entry_id`: the sign-off the objects were built from, if any.
        """
        node = node or self.config.results.node
        if not node:
            raise ValueError("no PACS node for results: set [results] node in the site configuration")
        self.config.node(node)  # ConfigError naming the known nodes
        queued, stamp = [], now_utc()
        waiting = self.queue.items(study_instance_uid, (QUEUED, RETRYING))
        for built in objects:
            dataset: Dataset = built.dataset
            for old in waiting:
                if (old.run_id, old.kind, old.node) == (run_id, built.kind, node) and old.content_key != built.content_key:
                    self.queue.update(old.sop_instance_uid, state=SUPERSEDED, reason="replaced by a newer build")
            signoff = signoff_entry_id if built.kind in SIGNED_KINDS else ""
            item = QueuedResult(str(dataset.SOPInstanceUID), study_instance_uid, series_instance_uid, run_id,
                                built.kind, built.content_key, node, QUEUED, 0, None, "", stamp, stamp, "", signoff)
            queued.append(self.queue.add(item, part10(dataset)))
        return queued

    def retry_failed(self, study_instance_uid: str | None = None) -> int:
        """A user asks to send refused objects again (after IT fixed the PACS): they are queued again."""
        items = self.queue.items(study_instance_uid, (FAILED,))
        for item in items:
            self.queue.update(item.sop_instance_uid, state=QUEUED, next_attempt_utc="")
        return len(items)

    def items(self, study_instance_uid: str | None = None) -> list[QueuedResult]:
        return self.queue.items(study_instance_uid)

    def pending(self, study_instance_uid: str | None = None) -> list[QueuedResult]:
        return self.queue.items(study_instance_uid, (QUEUED, RETRYING))

    # ----- sending
    def send_pending(self, study_instance_uid: str | None = None, cancel: CancelToken | None = None,
                     progress: Callable[[int, int], None] = lambda _d, _t: None, due_only: bool = True) -> SendReport:
        """Send what is queued (and, with `due_only`, whose retry time has come), node by node."""
        now = self._clock()
        items = [i for i in self._still_valid(self.pending(study_instance_uid))
                 if not due_only or not i.next_attempt_utc or datetime.fromisoformat(i.next_attempt_utc) <= now]
        report = SendReport()
        for node_name in dict.fromkeys(i.node for i in items):
            batch = [i for i in items if i.node == node_name]
            self._send_batch(node_name, batch, report, cancel, progress)
            if report.cancelled:
                break
        return report

    def _still_valid(self, items: list[QueuedResult]) -> list[QueuedResult]:
        """Objects made from a sign-off that was reopened since are withdrawn, not sent (the reader changed it)."""
        from workstation.services.results_build import review_context

        kept, in_force = [], {}
        for item in items:
            if item.signoff_entry_id:
                if item.run_id not in in_force:
                    run = next((r for r in self.store.inference_runs(item.series_instance_uid) if r.run_id == item.run_id), None)
                    review = review_context(self.store, run) if run is not None else None
                    in_force[item.run_id] = review.signoff_entry_id if review is not None else ""
                if in_force[item.run_id] != item.signoff_entry_id:
                    self.queue.update(item.sop_instance_uid, state=WITHDRAWN,
                                      reason="not sent: the review it records was reopened")
                    continue
            kept.append(item)
        return kept

    def _send_batch(self, node_name: str, batch: list[QueuedResult], report: SendReport,
                    cancel: CancelToken | None, progress) -> None:
        try:
            node = self.config.node(node_name)
            objects: list[Outgoing] = [outgoing(self.queue.data(i.sop_instance_uid)) for i in batch]
            outcomes = self._send(node, self.config.local, objects, cancel, progress)
        except ConfigError as exc:  # the node was removed from the site file: retrying cannot help
            outcomes = [StoreOutcome(i.sop_instance_uid, False, None, f"not sent: {exc}", refused=True) for i in batch]
        except PacsError as exc:
            outcomes = [StoreOutcome(i.sop_instance_uid, False, None, str(exc)) for i in batch]
        except Exception as exc:  # noqa: BLE001 - a configuration or store problem: kept, reported, retried
            log.exception("sending results to %s failed", node_name)
            outcomes = [StoreOutcome(i.sop_instance_uid, False, None, f"not sent: {exc}") for i in batch]
        by_uid = {o.sop_instance_uid: o for o in outcomes}
        for item in batch:
            outcome = by_uid.get(item.sop_instance_uid, StoreOutcome(item.sop_instance_uid, False, None, "not sent"))
            self._settle(item, outcome, report)
        self._record(node_name, batch, by_uid)

    def _settle(self, item: QueuedResult, outcome: StoreOutcome, report: SendReport) -> None:
        uid = item.sop_instance_uid
        if outcome.stored:
            self.queue.update(uid, state=SENT, attempts=item.attempts + 1, status=outcome.status, reason="")
            report.sent.append(uid)
        elif outcome.reason == "cancelled":
            report.cancelled = True  # left queued, as it was
        elif outcome.refused:  # the PACS said no (status, or not this SOP class): a person must look
            self.queue.update(uid, state=FAILED, attempts=item.attempts + 1, status=outcome.status, reason=outcome.reason)
            report.failed.append((uid, outcome.reason))
        else:  # not reachable, context rejected, connection lost: try again later
            attempts = item.attempts + 1
            wait = self.backoff(attempts)
            at = (self._clock() + timedelta(seconds=wait)).isoformat(timespec="seconds")
            self.queue.update(uid, state=RETRYING, attempts=attempts, status=None, reason=outcome.reason,
                              next_attempt_utc=at)
            report.retrying.append((uid, outcome.reason))

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try: doubling from 30 s up to the site's maximum, with jitter (many
        workstations after one PACS outage do not all come back at once)."""
        ceiling = min(self.config.results.max_backoff_s, FIRST_RETRY_S * 2 ** max(attempts - 1, 0))
        return random.uniform(ceiling / 2, ceiling)

    def _record(self, node_name: str, batch: list[QueuedResult], outcomes: dict[str, StoreOutcome]) -> None:
        if self.audit is None:
            return
        node = self.config.nodes.get(node_name)
        for study in dict.fromkeys(i.study_instance_uid for i in batch):
            mine = [i for i in batch if i.study_instance_uid == study]
            sent = [i.sop_instance_uid for i in mine if outcomes.get(i.sop_instance_uid, _NONE).stored]
            not_sent = [{"sop_instance_uid": i.sop_instance_uid, "status": outcomes.get(i.sop_instance_uid, _NONE).status,
                         "reason": outcomes.get(i.sop_instance_uid, _NONE).reason[:200]}
                        for i in mine if not outcomes.get(i.sop_instance_uid, _NONE).stored]
            if not sent and all(n["reason"] == "cancelled" for n in not_sent):
                continue  # nothing was attempted
            outcome = Outcome.SUCCESS if not not_sent else Outcome.MINOR_FAILURE if sent else Outcome.SERIOUS_FAILURE
            text = "" if not not_sent else f"{len(not_sent)} of {len(mine)} not sent: {not_sent[0]['reason']}"[:500]
            try:
                self.audit.record("export", study, outcome, text, node=node_name,
                                  ae_title=node.ae_title if node else "", destination="pacs",
                                  sop_instance_uids=sent, not_sent=not_sent,
                                  kinds=sorted({i.kind for i in mine}))
            except Exception:  # noqa: BLE001 - the send happened; a failed audit write is logged, not raised
                log.exception("export audit entry not written")


_NONE = StoreOutcome("", False, None, "not sent")
SIGNED_KINDS = ("review-sr", "gsps")  # a GSPS built after a sign-off draws the reader's verdicts


def part10(dataset: Dataset) -> bytes:
    """The object as a DICOM Part 10 file (what is stored, queued and sent)."""
    buffer = BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def study_state(items: list[QueuedResult]) -> str:
    """One line for the window: 'sent 4 to MAIN', '2 queued', 'failed: reason'."""
    if not items:
        return ""
    states = {s: [i for i in items if i.state == s] for s in (QUEUED, RETRYING, SENT, FAILED)}
    node = items[0].node
    if states[FAILED]:
        return f"Results: {len(states[FAILED])} refused by {node}: {states[FAILED][0].reason}"
    if states[RETRYING]:
        first = states[RETRYING][0]
        return f"Results: {len(states[RETRYING])} waiting to retry ({first.reason}); next try {first.next_attempt_utc[11:16]} UTC"
    if states[QUEUED]:
        return f"Results: {len(states[QUEUED])} queued for {node}"
    return f"Results: {len(states[SENT])} sent to {node}"

