"""Use case "prefetch": every few minutes, C-FIND a node for recent studies a rule asks for (e.g. today's chest CTs)
and retrieve those not yet here, so they are routed by the triage rules as if they had been pushed.

A study is retrieved once per session (`_seen`) and never when it is already a local study; a failed query or
retrieval is reported (`changed`) and tried again at the next round. Queries and retrievals are audited by
PacsService like a user's.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from workstation.core.events import Event
from workstation.core.pacs import StudyQuery
from workstation.routing.rules import PrefetchRule
from workstation.services.pacs import PacsService

log = logging.getLogger(__name__)


class Prefetcher:
    def __init__(self, pacs: PacsService, rules: tuple[PrefetchRule, ...], local_studies: Callable[[], set[str]],
                 today: Callable[[], dt.date] = dt.date.today) -> None:
        self.pacs, self.rules, self.local_studies, self.today = pacs, rules, local_studies, today
        self.changed = Event()  # (text)
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, rule: PrefetchRule) -> list[str]:
        """One round of one rule: the Study Instance UIDs retrieved."""
        today = self.today()
        first = today - dt.timedelta(days=rule.days)
        query = StudyQuery(date_from=first.strftime("%Y%m%d"), date_to=today.strftime("%Y%m%d"), modality=rule.modality)
        try:
            matches = self.pacs.find_studies(rule.node, query)
        except Exception as exc:  # noqa: BLE001 - a node down: said, tried again next round
            self.changed.emit(f"prefetch {rule.node}: query failed: {exc}")
            return []
        if rule.study_description is not None:
            matches = [m for m in matches if rule.study_description.matches(m.description)]
        local = self.local_studies()
        new = [m for m in matches if m.study_instance_uid not in local and m.study_instance_uid not in self._seen]
        retrieved = []
        for match in new:
            self._seen.add(match.study_instance_uid)
            try:
                result = self.pacs.retrieve(rule.node, match.study_instance_uid)
            except Exception as exc:  # noqa: BLE001
                self._seen.discard(match.study_instance_uid)
                self.changed.emit(f"prefetch {rule.node}: retrieving study {match.study_instance_uid} failed: {exc}")
                continue
            if not result.ok:
                self._seen.discard(match.study_instance_uid)  # what arrived is kept; the rest next round
            self.changed.emit(f"prefetch {rule.node}: study {match.study_instance_uid}: {result.received} instance(s), "
                              f"{result.status}")
            retrieved.append(match.study_instance_uid)
        return retrieved

    def start(self) -> None:
        if not self.rules or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="prefetch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def _loop(self) -> None:
        due = {index: 0.0 for index in range(len(self.rules))}
        clock = 0.0
        while not self._stop.wait(1.0 if clock else 0.0):
            clock += 1.0
            for index, rule in enumerate(self.rules):
                if clock >= due[index]:
                    due[index] = clock + rule.every_minutes * 60
                    try:
                        self.run_once(rule)
                    except Exception:  # noqa: BLE001
                        log.exception("prefetch failed")
