"""Results > Send to PACS: build the open series' result objects, queue them in the store and send them,
off the UI thread (progress in the status bar, Esc cancels), retrying what waits; the state per study is
shown in the AI panel. With `[results] send = "on-signoff"` a sign-off starts it by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction

from workstation.core.site import SiteConfig
from workstation.core.study import Catalog, DisplaySet
from workstation.core.tasks import CancelToken
from workstation.services.executor import network
from workstation.ui.ai_panel import AiPanel

if TYPE_CHECKING:  # the outbox (DICOM networking, the store) loads with the session, not with the window
    from workstation.services.results_send import SendReport
    from workstation.services.session import WorkSession

log = logging.getLogger(__name__)

RETRY_POLL_MS = 30_000


class ResultsSendController(QObject):
    finished = Signal(object)  # SendReport, or str (why nothing was sent)
    _done = Signal(object, str)  # (report or message, study uid) from the worker thread

    def __init__(self, config: SiteConfig, work: WorkSession | None, panel: AiPanel,
                 current: Callable[[], tuple[Catalog, DisplaySet] | None], busy: Callable[[str, int, int], None],
                 idle: Callable[[str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.config, self.panel, self.current, self._busy, self._idle = config, panel, current, busy, idle
        self.outbox = None
        if work is not None:
            from workstation.services.results_send import ResultsOutbox

            self.outbox = ResultsOutbox(config, work.store, work.audit)
        self.reason = ("no encrypted store: results cannot be queued" if work is None else
                       "" if config.results.node else "no PACS node for results: IT sets [results] node")
        self._cancel: CancelToken | None = None
        self._future = None
        self._done.connect(self._finished)
        self.send_action = QAction("&Send AI results to PACS", self)
        self.send_action.setShortcut("Ctrl+Shift+P")
        self.send_action.setStatusTip("Build the SR, GSPS and Parametric Map of this series' AI run (and the review "
                                      "SR once signed off) and send them to the PACS")
        self.send_action.triggered.connect(self.send_current)
        self.retry_action = QAction("&Retry refused results", self)
        self.retry_action.triggered.connect(self.retry_refused)
        for action in (self.send_action, self.retry_action):
            action.setEnabled(not self.reason)
            if self.reason:
                action.setToolTip(f"Off: {self.reason}")
        self._timer = QTimer(self)
        self._timer.setInterval(RETRY_POLL_MS)
        self._timer.timeout.connect(self._retry_due)
        if self.outbox is not None and not self.reason:
            self._timer.start()

    @property
    def running(self) -> bool:
        return self._cancel is not None

    def actions(self) -> list[QAction]:
        return [self.send_action, self.retry_action]

    def send_current(self) -> None:
        """Build, queue and send the open series' objects."""
        if self.reason:
            self._idle(f"Results not sent: {self.reason}")
            return
        opened = self.current()
        if opened is None:
            self._idle("Open a series with an AI run first")
            return
        catalog, display_set = opened
        self._start(lambda token, progress: self._build_and_send(catalog, display_set, token, progress),
                    display_set.series.study.study_instance_uid)

    def signed_off(self) -> None:
        """Called after a sign-off: sends by itself when the site says so."""
        if self.config.results.send == "on-signoff" and not self.reason:
            self.send_current()

    def retry_refused(self) -> None:
        if self.running:
            self._idle("Results are being sent already: wait, or press Esc to cancel")
            return
        opened = self.current()
        study = opened[1].series.study.study_instance_uid if opened else None
        try:
            count = self.outbox.retry_failed(study) if self.outbox else 0
        except Exception as exc:  # noqa: BLE001 - a store failure: a message, never a traceback from a slot
            log.exception("refused results could not be queued again")
            self._idle(f"Refused results not queued again: {exc}")
            return
        self._idle(f"{count} refused result object(s) queued again")
        self._start(lambda token, progress: self.outbox.send_pending(study, token, progress, due_only=False), study or "")

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    def close(self, wait_s: float = 10.0) -> None:
        """Window closing: no more retries; a send in flight is cancelled and given a moment to record what the
        PACS already took (its state and audit entry), so nothing it accepted is sent again at the next start."""
        self._timer.stop()
        self.cancel()
        if self._future is not None:
            try:
                self._future.result(timeout=wait_s)
            except Exception:  # noqa: BLE001 - timeout or a failed send: closing goes on
                log.warning("a results send did not finish before the window closed")

    def show_state(self, study_instance_uid: str) -> None:
        text = ""
        if self.outbox and study_instance_uid:
            from workstation.services.results_send import study_state

            try:
                text = study_state(self.outbox.items(study_instance_uid))
            except Exception as exc:  # noqa: BLE001 - the line says so instead of raising in a slot
                log.exception("results state could not be read")
                text = f"Results: state unknown ({exc})"
        self.panel.results_label.setText(text)
        self.panel.results_label.setVisible(bool(text))
        self.panel.results_label.setStyleSheet("color: #b00020;" if "refused" in text or "retry" in text else "")

    # ----- the worker
    def _build_and_send(self, catalog: Catalog, display_set: DisplaySet, token: CancelToken, progress) -> SendReport:
        self.outbox.build_and_queue(display_set.series.series_instance_uid, catalog)
        return self.outbox.send_pending(display_set.series.study.study_instance_uid, token, progress, due_only=False)

    def _start(self, work, study_uid: str) -> None:
        if self._cancel is not None:
            self._idle("Results are being sent already: wait, or press Esc to cancel")
            return
        token = self._cancel = CancelToken()
        relay = self._done
        self._busy("Results: building and sending…", 0, 0)

        def run() -> None:
            try:
                outcome = work(token, lambda d, t: None)
            except Exception as exc:  # noqa: BLE001 - NothingToBuild, ContextError, store errors: a message
                log.info("results not sent", exc_info=True)
                outcome = f"Results not sent: {exc}"
            try:
                relay.emit(outcome, study_uid)
            except RuntimeError:
                pass  # the window closed meanwhile

        self._future = network().submit(run)

    def _finished(self, outcome, study_uid: str) -> None:
        self._cancel = None
        self._future = None
        self._idle(outcome if isinstance(outcome, str) else f"Results: {outcome.summary()}")
        opened = self.current()  # the study on screen now, whichever study the send was for
        self.show_state(opened[1].series.study.study_instance_uid if opened else study_uid)
        self.finished.emit(outcome)

    def _retry_due(self) -> None:
        if self._cancel is not None or self.outbox is None:
            return
        try:
            due = bool(self.outbox.pending())
        except Exception:  # noqa: BLE001 - store closed or failing: try again at the next tick
            log.exception("results queue could not be read")
            return
        if due:
            self._start(lambda token, progress: self.outbox.send_pending(None, token, progress), "")
