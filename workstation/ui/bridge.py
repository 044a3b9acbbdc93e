"""Qt adapters: re-emit the services' plain events as Qt signals, queued to the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from workstation.core.events import Event
from workstation.services.loading import SeriesLoad, StudyLibrary

if TYPE_CHECKING:  # httpx loads with the sync worker, not with the window
    from workstation.services.sync import SyncWorker


class _Relay(QObject):
    """Connects plain events to Qt signals and cuts the links when the Qt side is destroyed."""

    def _relay(self, pairs: list[tuple[Event, Callable[..., Any]]]) -> None:
        self._links = pairs
        for event, signal_emit in pairs:
            event.connect(signal_emit)
        self.destroyed.connect(self.detach)

    def detach(self, *_args: Any) -> None:
        for event, signal_emit in self._links:
            event.disconnect(signal_emit)
        self._links = []


class LibrarySignals(_Relay):
    scanStarted = Signal()
    scanProgress = Signal(int, int)
    catalogChanged = Signal(object, object)  # catalog, new problems
    scanFailed = Signal(str)

    def __init__(self, library: StudyLibrary, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._relay([
            (library.scan_started, self.scanStarted.emit),
            (library.scan_progress, self.scanProgress.emit),
            (library.catalog_changed, self.catalogChanged.emit),
            (library.scan_failed, self.scanFailed.emit),
        ])


class LoadSignals(_Relay):
    framesReady = Signal(object)  # list of frame indices
    progress = Signal(int, int)
    finished = Signal(object, bool)  # problems, cancelled

    def __init__(self, load: SeriesLoad, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.load = load
        self._relay([
            (load.frames_ready, self.framesReady.emit),
            (load.progress, self.progress.emit),
            (load.finished, self.finished.emit),
        ])


class ResultSignal(QObject):
    """Delivers a background result (e.g. a thumbnail) to the GUI thread."""

    ready = Signal(str, object)

    def deliver(self, key: str, value: Any) -> None:
        """Emit from any thread; a no-op once the receiver is gone (window closed meanwhile)."""
        try:
            self.ready.emit(key, value)
        except RuntimeError:
            pass


class InferenceSignals(QObject):
    """Progress and outcome of a background model run."""

    progress = Signal(int, int)
    done = Signal(object, object)  # (display set key, InferenceResult)
    failed = Signal(str)

    def deliver(self, signal: Any, *args: Any) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # window closed meanwhile
            pass


class SyncSignals(_Relay):
    """The sync worker's state (a SyncState), from its thread to the GUI thread."""

    stateChanged = Signal(object)

    def __init__(self, worker: SyncWorker, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self._relay([(worker.state_changed, self._deliver)])

    def _deliver(self, state: Any) -> None:
        try:
            self.stateChanged.emit(state)
        except RuntimeError:  # the window is gone; the worker is being stopped
            pass
