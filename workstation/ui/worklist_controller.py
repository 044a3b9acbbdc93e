"""Worklist in the window: the panel's rows from services.worklist, refreshed while triage works; opening a row
opens the study at its strongest finding. With routing rules in the site file it also runs triage: the C-STORE
receiver listens while the app runs, and the queue's worker yields to the reader's own loading and AI runs.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QDockWidget

from workstation.core.study import Catalog
from workstation.ui.bridge import ResultSignal
from workstation.ui.worklist_panel import WorklistPanel

if TYPE_CHECKING:
    from workstation.ui.main_window import MainWindow

log = logging.getLogger(__name__)

REFRESH_MS = 2000
START_DELAY_MS = 300


class WorklistController(QObject):
    def __init__(self, window: MainWindow, start_triage: bool = True) -> None:
        super().__init__(window)
        self.window = window
        self.panel = WorklistPanel()
        self.dock = QDockWidget("Worklist", window)
        self.dock.setObjectName("worklist-dock")
        self.dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.dock)
        studies_dock = window.browser.parentWidget()
        if isinstance(studies_dock, QDockWidget):
            window.tabifyDockWidget(studies_dock, self.dock)
            studies_dock.raise_()
        self.service = None
        self.triage = None
        self.prefetch = None
        self._target: tuple | None = None  # (series UID, frame, box) to show once the study is scanned
        self._closed = False
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worklist")
        self._reading = self._read_again = False
        self._noted: set[tuple] = set()  # (study, its series) already written to the worklist
        self._rows = ResultSignal(self)
        self._rows.ready.connect(self._rows_read)
        session = window.work
        if session is None or window.config_problem:
            why = window.config_problem or "the encrypted store is not open"
            self.panel.thresholds.setText(f"Worklist unavailable: {why}")
            return
        from workstation.services.worklist import WorklistService

        self.service = WorklistService(window.config, session.store)
        self.panel.filtersChanged.connect(self.refresh)
        self.panel.openRequested.connect(self.open_row)
        self.panel.cancelRequested.connect(self.cancel_row)
        window.library_signals.catalogChanged.connect(self._catalog_changed)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.dock.visibilityChanged.connect(lambda visible: visible and self.refresh())
        if self.service.settings.worklist_at_start:
            self.dock.raise_()
        # after the first picture: the receiver loads networking, the rows the review service
        self._starter = QTimer(self)
        self._starter.setSingleShot(True)
        self._starter.timeout.connect(lambda: self._start(start_triage))
        self._starter.start(START_DELAY_MS)

    def _start(self, start_triage: bool) -> None:
        if self._closed:
            return
        if start_triage:
            self._start_triage()
        self.timer.start(REFRESH_MS)
        self.refresh()

    # ----- triage while the app runs
    def _start_triage(self) -> None:
        from workstation.services import triage_intake
        from workstation.services.pacs import PacsService
        from workstation.services.triage import TriageService

        from workstation.services.prefetch import Prefetcher

        window = self.window
        settings = self.service.settings
        if not window.config.nodes:
            return  # nothing can arrive: no node may push or be retrieved from (opened studies are still listed)
        try:  # retrieved studies join the worklist (and are routed) even without rules; pushes need rules
            triage = TriageService(window.config, window.work.store)
            triage.check_models()
            if window.pacs is None:
                window.pacs = PacsService(window.config, audit=window.work.audit)
            triage_intake.connect(window.pacs, triage)
            window.problems.watch_pacs(window.pacs)  # received instances kept as conflicts
            if settings.rules:
                window.pacs.start_receiver()
        except Exception as exc:  # noqa: BLE001 - the viewer stays usable; the reason is shown
            log.error("AI triage not started: %s", exc)
            window._notify(f"AI triage not started: {exc}")
            return
        triage.interactive_busy = self._reader_busy
        triage.start(worker=bool(settings.rules))
        self.triage = triage
        self.prefetch = Prefetcher(window.pacs, settings.prefetch,
                                   lambda: {s.study_instance_uid for s in triage.queue.studies()})
        self.prefetch.start()

    def _reader_busy(self) -> bool:
        """The reader's own work comes first: a series decoding or a manual AI run."""
        active = self.window.active
        return (active is not None and active.load.busy) or getattr(self.window.ai, "_cancel", None) is not None

    def close(self) -> None:
        self._closed = True
        self._reader.shutdown(wait=True)  # before the store closes
        if self.service is not None:
            self.timer.stop()
        if self.prefetch is not None:
            self.prefetch.stop()
            self.prefetch = None
        if self.triage is not None:
            self.triage.stop()
            self.triage = None

    # ----- rows
    def refresh(self) -> None:
        """Read the rows on a worker thread (hundreds of studies take ~0.1 s), show them on the GUI thread."""
        if self.service is None or self._closed or self.dock.visibleRegion().isEmpty():
            return  # hidden behind the Studies tab: nothing to show, nothing read
        if self._reading:
            self._read_again = True
            return
        self._reading = True
        filters, modality = self.panel.filters()
        self._reader.submit(self._read_rows, filters, modality)

    def _read_rows(self, filters: tuple[str, ...], modality: str) -> None:
        try:
            self._rows.deliver("rows", self.service.rows(filters, modality))
        except Exception as exc:  # noqa: BLE001 - a store error is shown, the window goes on
            log.exception("worklist refresh failed")
            self._rows.deliver("error", str(exc))

    def _rows_read(self, kind: str, value) -> None:
        if kind == "noted":
            self.refresh()
            return
        self._reading = False
        if kind == "error":
            self.panel.thresholds.setText(f"Worklist not updated: {value}")
        else:
            self.panel.set_modalities(sorted({m for r in value for m in r.study.modalities.split("\\") if m}))
            self.panel.show_rows(value, _thresholds_text(value, self.service.settings))
        if self._read_again:
            self._read_again = False
            self.refresh()

    def cancel_row(self, row) -> None:
        """Cancel the study's queued jobs; running ones are asked to stop (within a slice)."""
        for job in row.jobs:
            if job.state in ("queued", "running"):
                if self.triage is not None:
                    self.triage.cancel(job.job_id)
                else:
                    self.service.queue.cancel(job.job_id)
        self.refresh()

    def open_row(self, row) -> None:
        """Open the study (its folder) and show the series and slice of its strongest finding."""
        folder = row.study.folder
        if not folder or not Path(folder).exists():
            self.window._notify("This study's files are no longer on this workstation")
            return
        strongest = row.strongest
        self._target = (strongest.series_instance_uid, strongest.frame_index, strongest.box_px) if strongest else None
        known = {ds.series.study.study_instance_uid for ds in self.window.catalog.display_sets}
        if row.study.study_instance_uid in known:
            self._go_to_target(self.window.catalog)
        else:
            self.window.open_paths([folder])

    def _catalog_changed(self, catalog: Catalog, _problems) -> None:
        self._note_opened(catalog)
        self._go_to_target(catalog)

    def _go_to_target(self, catalog: Catalog) -> None:
        if self._target is None:
            return
        series_uid, frame, box = self._target
        match = [ds for ds in catalog.display_sets if ds.series.series_instance_uid == series_uid]
        if match:
            self._target = None
            display_set = max(match, key=lambda ds: len(ds.frames))
            frame = min(frame, len(display_set.frames) - 1)
            self.window.open_display_set(display_set.key, start_frame=frame)
            self.window.viewer.focus_box(frame, box)  # its slice, the view centred on its box

    def _note_opened(self, catalog: Catalog) -> None:
        """Studies opened from disk join the worklist (source 'opened'): what changed since the last catalog is
        written on the worklist's thread (a retrieval changes the catalog many times; each write is synchronous)."""
        notes = []
        for study in catalog.studies():
            sets = catalog.display_sets_of(study)
            series = [(ds.series.series_instance_uid, ds.series.modality, ds.series.description, len(ds.instances))
                      for ds in sets]
            key = (study.study_instance_uid, tuple(series))
            if key in self._noted:
                continue
            self._noted.add(key)
            paths = [f.instance.location.path for ds in sets for f in ds.frames[:1]]
            notes.append((study, series, paths))
        if notes and not self._closed:
            self._reader.submit(self._write_notes, notes)

    def _write_notes(self, notes) -> None:
        for study, series, paths in notes:
            try:
                folder = os.path.commonpath(paths) if paths else ""
                if folder and not Path(folder).is_dir():
                    folder = str(Path(folder).parent)
                self.service.note_opened(
                    study.study_instance_uid, patient_name=study.patient.name, patient_id=study.patient.patient_id,
                    study_date=study.date, study_time=study.time, description=study.description, folder=folder,
                    series=series)
            except Exception:  # noqa: BLE001 - the worklist is a convenience; viewing goes on
                log.exception("could not note an opened study in the worklist")
        self._rows.deliver("noted", None)


def _thresholds_text(rows, settings) -> str:
    used = {}
    for row in rows:
        for flag in row.flags:
            used[flag.model] = (flag.threshold, flag.threshold_source)
    for model, value in settings.alert_thresholds.items():
        used.setdefault(model, (value, "site threshold"))
    if not used:
        return "Alert thresholds: the models' own (no AI result yet)"
    return "Alert thresholds: " + "; ".join(f"{m} ≥ {t:.2f} ({source})" for m, (t, source) in sorted(used.items()))
