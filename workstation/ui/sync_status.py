"""The sync line in the status bar: "Sync: 12 pending · last 11:02 · error: server unreachable, retry in 8 s"."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel

if TYPE_CHECKING:  # httpx loads with the sync worker, not with the window
    from workstation.services.sync import SyncState

ERROR_STYLE = "color: #b00020;"
HALTED_STYLE = "color: #b00020; font-weight: bold;"


class SyncStatus(QLabel):
    """Shows the worker's last state; counts down to the next retry while an error is shown."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.state: SyncState | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._refresh)
        self.setContentsMargins(8, 0, 12, 0)  # apart from its neighbours in the status bar
        self.setVisible(False)

    def show_state(self, state: SyncState) -> None:
        self.state = state
        self._refresh()
        if state.last_error and state.running and state.next_attempt_utc:
            self._timer.start()
        else:
            self._timer.stop()

    def show_text(self, text: str, tooltip: str = "", problem: bool = False) -> None:
        """A fixed line (not enrolled, no store...): no countdown."""
        self.state = None
        self._timer.stop()
        self.setText(text)
        self.setToolTip(tooltip or text)
        self.setStyleSheet(HALTED_STYLE if problem else "")
        self.setVisible(True)

    def _refresh(self) -> None:
        state = self.state
        if state is None:
            return
        from workstation.services.sync import describe

        self.setText(describe(state))
        self.setStyleSheet(HALTED_STYLE if state.halted else ERROR_STYLE if state.last_error else "")
        tip = [f"{state.pending} audit/feedback entries not yet on the central server"]
        if state.last_success_utc:
            tip.append(f"last complete sync: {_local(state.last_success_utc)}")
        if state.last_error:
            tip.append(f"last error: {state.last_error}")
        if state.running and state.next_attempt_utc:
            tip.append(f"next attempt: {_local(state.next_attempt_utc)}")
        tip.append("File > Sync now tries at once")
        self.setToolTip("\n".join(tip))
        self.setVisible(True)


def _local(utc: str) -> str:
    return datetime.fromisoformat(utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")
