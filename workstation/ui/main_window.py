"""Main window: study browser (left), viewer (centre), AI findings and review (right), problems (bottom).

The window is given the user's work session (store, audit trail, review) by
the start-up code, or the reason there is none; without one it still views
images, and says that review is disabled.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QToolButton,
)

from workstation import __version__
from workstation.core.site import SiteConfig
from workstation.core.study import Catalog, DisplaySet
from workstation.services.executor import previews
from workstation.services.inference import InferenceService
from workstation.services.loading import SeriesLoad, StudyLibrary, thumbnail
from workstation.ui.ai_controller import AiController
from workstation.ui.ai_panel import AiPanel
from workstation.ui.bridge import LibrarySignals, LoadSignals, ResultSignal
from workstation.ui.browser import StudyBrowser
from workstation.ui.export_controller import ExportController
from workstation.ui.layout_controller import LayoutController
from workstation.ui.problems import ProblemsPanel
from workstation.ui.results_controller import StoredResultsController
from workstation.ui.results_send_controller import ResultsSendController
from workstation.ui.review_controller import ReviewController
from workstation.ui.shortcuts_dialog import ShortcutsDialog
from workstation.ui.sync_controller import SyncController
from workstation.ui.sync_status import SyncStatus
from workstation.ui.tools.controller import MeasureController
from workstation.ui.viewer import ZOOM_STEP, SliceViewer
from workstation.ui.report_controller import ReportController
from workstation.ui.worklist_controller import WorklistController

if TYPE_CHECKING:  # networking, HTTP and the store load when first used, not before the first picture
    from workstation.services.pacs import PacsService
    from workstation.services.session import WorkSession
    from workstation.services.sync import SyncWorker
    from workstation.ui.query_window import QueryRetrieveWindow

log = logging.getLogger(__name__)

KEEP_VOLUMES = 3  # decoded volumes kept in memory for instant switching back


class MainWindow(QMainWindow):
    seriesLoaded = Signal(str)  # emitted when a display set has finished loading (tests, screenshots)
    inferenceFinished = Signal(object)  # InferenceResult, or None when the run failed or was cancelled
    thumbnailsDone = Signal()

    def __init__(self, library: StudyLibrary | None = None, config: SiteConfig | None = None,
                 config_problem: str = "", inference: InferenceService | None = None,
                 session: WorkSession | None = None, review_problem: str = "",
                 sync: SyncWorker | None = None, sync_problem: str = "") -> None:
        """`session` (already started) is ended when the window closes; `review_problem` says why there is none.

        `sync` (not started; the window starts it when the workstation is enrolled and stops it on close) pushes
        the session's store to the central server; `sync_problem` says why there is none though a server is
        configured. Neither: the site has no central server and the status bar says nothing about sync.
        """
        super().__init__()
        self.work = session
        self.inference = inference or InferenceService()
        self.config = config or SiteConfig()
        self.config_problem = config_problem
        self.pacs: PacsService | None = None
        self.query_window: QueryRetrieveWindow | None = None
        self.setWindowTitle("Radiology AI Workstation")
        self.setAcceptDrops(True)
        self.library = library or StudyLibrary()
        self.catalog = Catalog()
        self.loads: OrderedDict[str, LoadSignals] = OrderedDict()
        self.active: LoadSignals | None = None
        self._pending_thumbs: set[str] = set()
        self._thumbnails: dict[str, object] = {}  # DisplaySet.key -> 8-bit preview
        self._thumbs = ResultSignal(self)
        self._thumbs.ready.connect(self._thumbnail_ready)

        self.viewer = SliceViewer()
        self.layouts = LayoutController(self)  # the central area: viewports, MPR, compare with prior, cine
        self.browser = StudyBrowser()
        self.browser.displaySetActivated.connect(self.open_display_set)
        self.problems = ProblemsPanel()
        self.problems.conflicts_changed.connect(lambda: self._update_problems_title())
        self._dock(self.browser, "Studies", Qt.DockWidgetArea.LeftDockWidgetArea)
        self.problems_dock = self._dock(self.problems, "Problems", Qt.DockWidgetArea.BottomDockWidgetArea)
        self.ai_panel = AiPanel()
        self.ai_dock = self._dock(self.ai_panel, "AI findings", Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([self.problems_dock], [110], Qt.Orientation.Vertical)
        self.resizeDocks([self.browser.parentWidget(), self.ai_dock], [300, 420], Qt.Orientation.Horizontal)
        self._build_status_bar()
        disabled = "" if session else f"Review disabled: {review_problem or 'the encrypted store is not open'}"
        self.review = ReviewController(self.ai_panel.review, self.ai_panel.findings, self.viewer,
                                       session.review if session else None, disabled, self._notify, self,
                                       history=self.ai_panel.history, auto_advance=self.config.review.auto_advance)
        self.review.statesChanged.connect(self._show_review_mark)
        self.results_send = ResultsSendController(self.config, session, self.ai_panel, self._open_series,
                                                  self._busy, self._idle, self)
        self.review.signedOff.connect(self.results_send.signed_off)
        self.stored_results = StoredResultsController(
            self.viewer, self.ai_panel, self.review, self.problems,
            lambda key: self.active is not None and self.active.load.display_set.key == key, self)
        self.ai = AiController(self.inference, self.ai_panel, self.viewer, self.review, self.stored_results,
                               lambda: self.active.load if self.active is not None else None,
                               self._busy, self._idle, self._notify, self)
        self.ai.finished.connect(self.inferenceFinished.emit)
        if session is not None:
            self.inference.run_recorded.connect(session.review.record_run)  # worker thread; the store is thread-safe
        self.syncing = SyncController(sync, sync_problem, self.sync_status, self._notify, self)
        self._show_review_status(disabled)
        self._build_menus()
        self.measure = MeasureController(self, self.viewer, session, self._notify, self.browser.parentWidget(),
                                         self.ai_panel.findings)  # Measure toolbar, menu and keys, Measurements panel
        self.syncing.start()

        self.library_signals = LibrarySignals(self.library, self)
        self.library_signals.scanStarted.connect(lambda: self._busy("Scanning…", 0, 0))
        self.library_signals.scanProgress.connect(lambda d, t: self._busy(f"Scanning {d}/{t} files…", d, t))
        self.library_signals.catalogChanged.connect(self._catalog_changed)
        self.library_signals.scanFailed.connect(self._scan_failed)
        self.worklist = WorklistController(self)  # its dock; with routing rules, the receiver and AI triage
        self.report = ReportController(self)  # Report dock: draft after sign-off, edit, send to RIS / FHIR
        self.export = ExportController(self)  # study browser context menu: Export de-identified...
        self._idle("Open a study with File > Open or drop files here")

    def _dock(self, widget, title: str, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        self.status_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.cancel_button = QToolButton(text="Cancel")
        self.cancel_button.setToolTip("Stop scanning or decoding (Esc)")
        self.cancel_button.clicked.connect(self.cancel)
        bar = self.statusBar()
        bar.addWidget(self.status_label, 1)
        self.sync_status = SyncStatus()
        bar.addPermanentWidget(self.sync_status)
        self.review_status = QLabel()
        bar.addPermanentWidget(self.review_status)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "Open &Files… (DICOM, DICOMDIR, zip)", self._open_files_dialog, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open F&older…", self._open_folder_dialog, "Ctrl+Shift+O")
        self._action(file_menu, "&Query/Retrieve from PACS…", self.open_query_window, "Ctrl+R")
        self.sync_now_action = self._action(file_menu, "&Sync now", self.syncing.sync_now, "Ctrl+Shift+S")
        self.sync_now_action.setToolTip("Send the audit trail and review entries to the central server now")
        self.sync_now_action.setEnabled(self.syncing.available)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        view_menu = self.menuBar().addMenu("&View")
        self._action(view_menu, "&Fit to window", self.viewer.fit, None)
        self._action(view_menu, "&Reset view and window", self.viewer.reset, "Ctrl+0")
        view_menu.addSeparator()
        zoom_in = self._action(view_menu, "Zoom &in", lambda: self.viewer.zoom_by(ZOOM_STEP), None)
        zoom_in.setShortcuts([QKeySequence("+"), QKeySequence("=")])  # window-wide, like the review keys
        self._action(view_menu, "Zoom &out", lambda: self.viewer.zoom_by(1 / ZOOM_STEP), "-")
        view_menu.addSeparator()
        self.overlay_planes_action = view_menu.addAction("&Overlay planes")
        self.overlay_planes_action.setToolTip("Show the graphics and ROI overlays stored in the images (60xx)")
        self.overlay_planes_action.setCheckable(True)
        self.overlay_planes_action.setChecked(True)
        self.overlay_planes_action.toggled.connect(self.viewer.show_overlay_planes)
        self.layouts.add_to_menu(view_menu)
        review_menu = self.menuBar().addMenu("Re&view")
        review_actions = self.ai_panel.review.actions_for_window()
        for action in review_actions:
            review_menu.addSeparator() if action is None else review_menu.addAction(action)
        self.addActions([a for a in review_actions if a is not None])  # keys work wherever the focus is
        results_menu = self.menuBar().addMenu("Re&sults")
        for action in self.results_send.actions():
            results_menu.addAction(action)
        self.addActions(self.results_send.actions())
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts, "F1")
        self._action(help_menu, "&About", self._about, None)
        cancel = QAction(self)
        cancel.setShortcut(Qt.Key.Key_Escape)
        cancel.triggered.connect(self.cancel)
        self.addAction(cancel)

    def _action(self, menu, text, slot, shortcut) -> QAction:
        action = menu.addAction(text)
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(shortcut)
        return action

    # ----- opening
    _resume_on_catalog = False  # the user opened files: the next catalog change resumes a stopped load

    def open_paths(self, paths: list[str]) -> None:
        if paths:
            self._resume_on_catalog = True  # opening the same files again resumes a stopped load
            self.library.open_paths(paths)

    def _open_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open DICOM files, DICOMDIR or zip")
        self.open_paths(files)

    def _open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder (searched recursively)")
        self.open_paths([folder] if folder else [])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt naming
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt naming
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def _catalog_changed(self, catalog: Catalog, new_problems) -> None:
        first_time = not self.catalog.display_sets
        self.catalog = catalog
        for key, mark in self.review.stored_marks(catalog.display_sets).items():
            self.browser.set_review_mark(key, mark)
        self.browser.show_catalog(catalog)
        self.problems.show_catalog(catalog)
        self._update_problems_title()
        skipped = f", {len(new_problems)} file(s) skipped (see Problems)" if new_problems else ""
        self._idle(f"{len(catalog.display_sets)} series from {len(catalog.headers)} images{skipped}")
        if first_time and catalog.display_sets:
            self.open_display_set(self.layouts.first_to_read(catalog).key)  # before the thumbnails: the reader waits
        else:
            self._reload_if_grown()
        self.layouts.catalog_changed(catalog)  # the site's hanging protocol for a study shown the first time
        for display_set in catalog.display_sets:
            if display_set.key in self._thumbnails:  # the tree was rebuilt: put known previews back
                self.browser.set_thumbnail(display_set.key, self._thumbnails[display_set.key])
            else:
                self._request_thumbnail(display_set)
        if not catalog.display_sets:
            self.viewer.message.setText("No images found" + (" — see Problems" if catalog.problems else ""))
            self.viewer._place_corners()
        if not self._pending_thumbs:
            self.thumbnailsDone.emit()

    def _reload_if_grown(self) -> None:
        """The open series gained images (a retrieval in progress): reload it, keeping slice and view.

        After the user opened files again, a stopped load of the open series resumes instead.
        """
        resume, self._resume_on_catalog = self._resume_on_catalog, False
        if self.active is None:
            return
        old = self.active.load
        current = self.display_set(old.display_set.key)
        if current is None:
            return
        if len(current.frames) == old.volume.frame_count:
            if resume:
                self._resume(self.active)
            return
        if old.busy:
            return  # a load in progress finishes first; the next catalog change reloads
        shown = old.display_set.frames[self.viewer.frame_index].instance.sop_instance_uid
        start = next((i for i, f in enumerate(current.frames) if f.instance.sop_instance_uid == shown), None)
        self.loads.pop(old.display_set.key, None)
        self.active = None
        self.open_display_set(current.key, start_frame=start, keep_view=True)

    def _scan_failed(self, message: str) -> None:
        self._idle(message)

    def _request_thumbnail(self, display_set: DisplaySet) -> None:
        key = display_set.key
        if key in self._pending_thumbs:
            return
        self._pending_thumbs.add(key)
        future = previews().submit(thumbnail, display_set)
        future.add_done_callback(lambda f, k=key: self._thumbs.deliver(k, None if f.exception() else f.result()))

    def _thumbnail_ready(self, key: str, image) -> None:
        if image is not None:
            self._thumbnails[key] = image
        self.browser.set_thumbnail(key, image)
        self._pending_thumbs.discard(key)
        if not self._pending_thumbs:
            self.thumbnailsDone.emit()

    # ----- loading a series
    def display_set(self, key: str) -> DisplaySet | None:
        return next((d for d in self.catalog.display_sets if d.key == key), None)

    def open_display_set(self, key: str, start_frame: int | None = None, keep_view: bool = False) -> None:
        """Show a series, decoding what of it is not decoded yet (selecting a stopped one resumes it)."""
        display_set = self.display_set(key)
        self._resume_on_catalog = False
        if display_set is None:
            return
        if self.active is not None and self.active.load.display_set.key == key:
            self._resume(self.active)
            return
        if self.active is not None and self.active.load.busy:
            self.active.load.cancel()  # kept: selecting it again decodes only what is missing
        signals = self.loads.get(key)
        if signals is not None and len(signals.load.display_set.frames) != len(display_set.frames):
            self.loads.pop(key).load.cancel()  # the series gained images since it was decoded
            signals = None
        if signals is None:
            signals = LoadSignals(SeriesLoad(display_set, start_frame), self)
            signals.framesReady.connect(lambda idx, s=signals: self._frames_ready(s, idx))
            signals.finished.connect(lambda p, c, s=signals: self._load_finished(s, p, c))
            self.loads[key] = signals
            self._evict()
        else:
            self.loads.move_to_end(key)
            keep_view = False
        self.active = signals
        self.viewer.set_volume(display_set, signals.load.volume, signals.load.start_frame, keep_view)
        self.viewer.frames_ready(list(range(signals.load.volume.frame_count)))
        self._resume(signals)
        if not keep_view:  # keep_view: the same series, grown by a retrieval
            self._audit_opened(display_set)
        self.browser.select(key)
        self._show_models(display_set)
        self.viewer.setFocus()

    def _resume(self, signals: LoadSignals) -> None:
        """Start (or restart after a cancel) decoding the frames still missing; nothing when none are."""
        load = signals.load
        if load.complete:
            self.viewer.set_loading(False)
            return
        load.start()
        self.viewer.set_loading(True)
        self._show_decoding(signals)

    def _evict(self) -> None:
        while len(self.loads) > KEEP_VOLUMES:
            _, old = self.loads.popitem(last=False)
            old.load.cancel()

    def _frames_ready(self, signals: LoadSignals, indices) -> None:
        if signals is self.active:
            self.viewer.frames_ready(indices)
            self._show_decoding(signals)

    def _show_decoding(self, signals: LoadSignals) -> None:
        """The status bar shows the viewer's decode count (taken once from the volume), never one of its own."""
        total = signals.load.volume.frame_count
        done = self.viewer.loaded_count
        self._busy(f"Decoding {done}/{total} frames…", done, total)

    def _load_finished(self, signals: LoadSignals, problems, cancelled: bool) -> None:
        if problems:
            self.problems.add_load_problems(problems)
            self._update_problems_title()
        if signals is not self.active or signals.load.busy:
            return  # another series is shown, or a resumed run carries on (and will report)
        volume = signals.load.volume
        self.viewer.frames_ready([])
        self.viewer.set_loading(False)
        done = self.viewer.loaded_count
        if cancelled:
            self._idle(f"Loading cancelled: {done}/{volume.frame_count} frames decoded; select the series again to resume")
        else:
            failed = f", {len(volume.frame_errors)} could not be decoded (see Problems)" if volume.frame_errors else ""
            self._idle(f"Loaded {done}/{volume.frame_count} frames{failed}")
        self.seriesLoaded.emit(signals.load.display_set.key)
        if not cancelled:
            self._reload_if_grown()

    # ----- AI
    def _open_series(self):
        """(catalog, display set) of the series on screen, for the results controllers."""
        return (self.catalog, self.active.load.display_set) if self.active is not None else None

    def _show_models(self, display_set: DisplaySet) -> None:
        self.results_send.show_state(display_set.series.study.study_instance_uid)
        self.ai.show_series(display_set, self.catalog)

    def run_model(self, ref: str) -> None:
        self.ai.run_model(ref)

    def cancel(self) -> None:
        self.results_send.cancel()
        self.ai.cancel()
        self.library.cancel()
        self.layouts.cancel()  # the other viewports' decoding
        if self.active is not None and not self.active.load.volume.fully_loaded:
            self.active.load.cancel()

    # ----- work session: audit and review status
    def _audit_opened(self, display_set: DisplaySet) -> None:
        """study.opened: which study and series, how many instances; never the patient's name."""
        if self.work is None:
            return
        series = display_set.series
        try:
            self.work.audit.record("study.opened", series.study.study_instance_uid,
                                   series_instance_uid=series.series_instance_uid, modality=series.modality,
                                   instances=len({f.instance.sop_instance_uid for f in display_set.frames}))
        except Exception as exc:  # noqa: BLE001 - say so; viewing goes on
            log.exception("audit entry not written")
            self._notify(f"Audit entry not written: {exc}")

    def _show_review_status(self, disabled: str) -> None:
        if disabled:
            short = disabled if len(disabled) <= 90 else disabled[:88].rstrip() + "…"
            self.review_status.setText(short)
            self.review_status.setStyleSheet("color: #b00020; font-weight: bold;")
            self.review_status.setToolTip(disabled)
            self._idle(disabled)
        else:
            user = self.work.user
            self.review_status.setText(f"{user.login} ({user.role.value if user.role else 'view only'})")
            self.review_status.setToolTip("Signed-in user and role (from the site configuration)")

    # ----- sync with the central server (SyncController); kept as attributes for scripts and tests
    @property
    def sync(self) -> SyncWorker | None:
        return self.syncing.sync

    @property
    def sync_signals(self):
        return self.syncing.signals

    def sync_now(self) -> None:
        self.syncing.sync_now()

    def _notify(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def _update_problems_title(self) -> None:
        self.problems_dock.setWindowTitle(f"Problems ({self.problems.count()})")

    # ----- status
    def _busy(self, text: str, done: int, total: int) -> None:
        self.status_label.setText(text)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _idle(self, text: str) -> None:
        self.status_label.setText(text)
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)

    def open_query_window(self) -> QueryRetrieveWindow | None:
        if self.config_problem:
            QMessageBox.warning(self, "Site configuration", f"The site configuration is invalid:\n{self.config_problem}")
            return None
        if not self.config.nodes:
            self._idle("No PACS nodes configured: IT sets them in the site configuration")
            return None
        if self.query_window is None:
            from workstation.services.pacs import PacsService
            from workstation.ui.query_window import QueryRetrieveWindow

            self.pacs = self.pacs or PacsService(self.config, audit=self.work.audit if self.work is not None else None)
            self.problems.watch_pacs(self.pacs)  # received instances kept as conflicts
            self.query_window = QueryRetrieveWindow(self.pacs, self.library, self)
        self.query_window.show()
        self.query_window.raise_()
        return self.query_window

    def show_shortcuts(self) -> None:
        ShortcutsDialog(self.findChildren(QAction), self).exec()

    def _show_review_mark(self) -> None:
        """The study browser marks the open series reviewed (or not) after every review change."""
        if self.active is not None:
            self.browser.set_review_mark(self.active.load.display_set.key, self.review.review_mark())

    def _about(self) -> None:
        QMessageBox.about(self, "About", f"Radiology AI Workstation {__version__}\nNot for clinical use.")

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self.results_send.close()  # before the store closes: a send in flight records what the PACS took
        self.report.close()  # likewise a report draft or send in flight
        self.layouts.close()
        self.cancel()
        for signals in self.loads.values():
            signals.load.cancel()
            signals.detach()
        self.library_signals.detach()
        if self.query_window is not None:
            self.query_window.cancel()
            self.query_window.close()
        self.worklist.close()
        if self.pacs is not None:
            self.pacs.close()
        self.syncing.stop()
        self._end_session()
        super().closeEvent(event)

    def _end_session(self) -> None:
        self.review.clear()
        if self.work is None:
            return
        self.inference.run_recorded.disconnect(self.work.review.record_run)
        try:
            self.work.end()
        except Exception:  # noqa: BLE001 - closing must not fail
            log.exception("work session did not end cleanly")
        self.work = None
