"""Sync with the central server, as the window shows it: the worker started when enrolled, the status line,
File > Sync now, and a clean stop when the window closes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from workstation.ui.bridge import SyncSignals
from workstation.ui.sync_status import SyncStatus

if TYPE_CHECKING:  # httpx loads with the sync worker, not with the window
    from workstation.services.sync import SyncWorker

log = logging.getLogger(__name__)


class SyncController(QObject):
    def __init__(self, sync: SyncWorker | None, problem: str, status: SyncStatus, notify: Callable[[str], None],
                 parent: QObject | None = None) -> None:
        """`sync` (not started) pushes the store; `problem` says why there is none though a server is configured."""
        super().__init__(parent)
        self.sync, self.problem, self.status, self.notify = sync, problem, status, notify
        self.signals: SyncSignals | None = None

    @property
    def available(self) -> bool:
        return self.sync is not None or bool(self.problem)

    def start(self) -> None:
        if self.sync is None:
            if self.problem:
                self.status.show_text("Sync: off", f"Sync is off: {self.problem}", problem=True)
            return
        self.signals = SyncSignals(self.sync, self)
        self.signals.stateChanged.connect(self.status.show_state)
        if self._enrolled():
            self.sync.start()

    def _enrolled(self) -> bool:
        """Whether a token exists; otherwise the status bar says why the worker does not run."""
        from workstation.services.sync import NOT_ENROLLED, SyncError

        try:
            enrolled = self.sync.enrolled()
        except SyncError as exc:  # no usable keyring
            self.status.show_text("Sync: off", f"Sync is off: {exc}", problem=True)
            return False
        if not enrolled:
            self.status.show_text("Sync: not enrolled", f"Sync: {NOT_ENROLLED}", problem=True)
        return enrolled

    def sync_now(self) -> None:
        """File > Sync now: push at once (starting the worker if this workstation was enrolled meanwhile)."""
        from workstation.services.sync import NOT_CONFIGURED, NOT_ENROLLED

        if self.sync is None:
            self.notify(f"Sync is off: {self.problem or NOT_CONFIGURED}")
            return
        if not self.sync.alive and not self._enrolled():
            self.notify(f"Sync: {NOT_ENROLLED}")
            return
        self.sync.sync_now()  # the sync line shows "sending…" and then the outcome

    def stop(self) -> None:
        if self.sync is None:
            return
        stopped = self.sync.stop()
        if self.signals is not None:
            self.signals.detach()
        if stopped:
            self.sync.client.close()
        else:  # its thread is a daemon; the batch in flight is sent again (a duplicate) next time
            log.warning("the sync worker did not stop in time; its push is abandoned")
        self.sync = None
