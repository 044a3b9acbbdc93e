"""Report in the window: after a sign-off the draft appears in the Report dock; the radiologist edits it,
saves, then finalises and sends it to the RIS / FHIR server. Drafting (reads pixels) and sending (network)
run off the UI thread; queued messages that wait for a retry are tried again by a timer.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget

from workstation.services.executor import network
from workstation.ui.report_panel import ReportPanel

if TYPE_CHECKING:
    from workstation.ui.main_window import MainWindow

log = logging.getLogger(__name__)

FOLLOW_MS = 1000  # how often the panel looks which study is on screen
RETRY_MS = 30_000


class ReportController(QObject):
    _done = Signal(str, object)  # (study uid, message or None) from a worker thread

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window, self.service, self.study = window, None, ""
        self.panel = ReportPanel()
        self.dock = QDockWidget("Report", window)
        self.dock.setObjectName("report-dock")
        self.dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        window.tabifyDockWidget(window.ai_dock, self.dock)
        window.ai_dock.raise_()
        self.action = QAction("Report &draft", self)
        self.action.setShortcut("Ctrl+Shift+R")
        self.action.triggered.connect(self.show)
        for menu_action in window.menuBar().actions():  # under Results, beside sending to the PACS
            if menu_action.menu() is not None and menu_action.text().replace("&", "") == "Results":
                menu_action.menu().addSeparator()
                menu_action.menu().addAction(self.action)
        window.addAction(self.action)
        self._busy = False
        self._closed = False
        self._future = None
        session = window.work
        if session is None:
            self.panel.set_enabled(False, "Reports need the encrypted store, which is not open")
            return
        from workstation.services.report_delivery import ReportService

        self.service = ReportService(window.config, session.store)
        self._done.connect(self._finished)
        self.panel.draftRequested.connect(self.draft)
        self.panel.saveRequested.connect(self.save)
        self.panel.sendRequested.connect(self.send)
        self.panel.retryRequested.connect(self.retry)
        window.review.signedOff.connect(lambda *_: self.draft(auto=True))
        self._follow = QTimer(self)
        self._follow.timeout.connect(self._follow_study)
        self._follow.start(FOLLOW_MS)
        self._retry = QTimer(self)
        self._retry.timeout.connect(lambda: self._in_background(self.study, lambda: self.service.deliver(due_only=True)))
        self._retry.start(RETRY_MS)

    def show(self) -> None:
        self.dock.show()
        self.dock.raise_()

    def close(self) -> None:
        """Before the window ends its session: no timer fires and no finished action reads the store after."""
        self._closed = True
        if self.service is not None:
            self._follow.stop()
            self._retry.stop()
        if self._future is not None:
            try:
                self._future.result(timeout=10)  # a draft or send in flight finishes its store writes first
            except Exception:  # noqa: BLE001 - its outcome was reported (or is moot): the window is closing
                pass

    def refresh(self) -> None:
        if self._closed or self.window.work is None:  # the window closed and ended its session: the store is closed
            return
        try:
            self._refresh()
        except RuntimeError as exc:  # StoreError: the session's store was closed under the panel (the session ended)
            self.panel.set_enabled(False, f"Reports unavailable: {exc}")

    def _refresh(self) -> None:
        if self.service is None or not self.study:
            self.panel.set_enabled(False, "Open a study to see its report")
            return
        try:
            self.service.signed_run(self.study)
            signed = True
        except Exception:  # noqa: BLE001 - ReportError: no sign-off in force
            signed = False
        latest = self.service.latest(self.study)
        self.panel.set_enabled(signed and not self._busy)
        if latest is None:
            self.panel.show_version("", "Sign off the AI review to draft a report" if not signed else
                                    "Signed off: press 'New draft from sign-off'")
        else:
            what = {"draft": "Draft", "edit": "Edited draft", "final": "Final report"}[latest.kind]
            note = "" if signed else " (the review was reopened: sign off again for a new draft)"
            self.panel.show_version(latest.text, f"{what} by {latest.user}, {latest.at_utc[:16].replace('T', ' ')} UTC{note}")
        self.panel.show_deliveries([asdict(s) for s in self.service.reports.sends(self.study)])

    def draft(self, auto: bool = False) -> None:
        opened = self.window._open_series()  # noqa: SLF001 - the window's one way to say what is on screen
        if self.service is None or opened is None:
            return
        catalog, display_set = opened
        study = display_set.series.study.study_instance_uid
        if auto and self.service.latest(study) is not None and self.service.latest(study).kind != "final":
            return
        self.study = study
        self.show()
        self._in_background(study, lambda: self.service.draft(study, catalog), "Drafting the report…")

    def save(self, text: str) -> None:
        if self.service is not None and self.study:
            self._in_background(self.study, lambda: self.service.edit(self.study, text))

    def send(self, text: str) -> None:
        if self.service is None or not self.study:
            return
        study = self.study

        def finalise_and_send():
            self.service.finalise(study, text)
            self.service.queue(study)
            return self.service.deliver(study)

        self._in_background(study, finalise_and_send, "Sending the report…")

    def retry(self) -> None:
        if self.service is not None and self.study:
            study = self.study
            self._in_background(study, lambda: (self.service.retry_rejected(study), self.service.deliver(study)),
                                "Sending the report again…")

    def _in_background(self, study: str, work, message: str = "") -> None:
        if self._busy or not study:
            return
        self._busy = True
        self.panel.set_enabled(False, message) if message else None

        def run():
            try:
                work()
                self._done.emit(study, None)
            except Exception as exc:  # noqa: BLE001 - said in the panel, not raised in a pool thread
                log.info("report action failed: %s", exc.__class__.__name__)
                self._done.emit(study, str(exc))

        self._future = network().submit(run)

    def _finished(self, study: str, message) -> None:
        self._busy = False
        if self._closed:
            return
        if study == self.study:
            self.refresh()
            if message:
                self.panel.status.setText(f"Not done: {message}")

    def _follow_study(self) -> None:
        if self._closed or self.window.work is None:  # the window closed and ended its session: the store is closed
            self._follow.stop()
            self._retry.stop()
            return
        opened = self.window._open_series()  # noqa: SLF001
        study = opened[1].series.study.study_instance_uid if opened is not None else ""
        if study != self.study and not self._busy:
            self.study = study
            self.refresh()
