"""Qt adapters: re-emit the services' plain events as Qt signals, queued to the GUI thread."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from workstation.services.loading import SeriesLoad, StudyLibrary


class LibrarySignals(QObject):
    scanStarted = Signal()
    scanProgress = Signal(int, int)
    catalogChanged = Signal(object, object)  # catalog, new problems
    scanFailed = Signal(str)

    def __init__(self, library: StudyLibrary, parent: QObject | None = None) -> None:
        super().__init__(parent)
        library.scan_started.connect(self.scanStarted.emit)
        library.scan_progress.connect(self.scanProgress.emit)
        library.catalog_changed.connect(self.catalogChanged.emit)
        library.scan_failed.connect(self.scanFailed.emit)


class LoadSignals(QObject):
    framesReady = Signal(object)  # list of frame indices
    progress = Signal(int, int)
    finished = Signal(object, bool)  # problems, cancelled

    def __init__(self, load: SeriesLoad, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.load = load
        load.frames_ready.connect(self.framesReady.emit)
        load.progress.connect(self.progress.emit)
        load.finished.connect(self.finished.emit)


class ResultSignal(QObject):
    """Delivers a background result (e.g. a thumbnail) to the GUI thread."""

    ready = Signal(str, object)
