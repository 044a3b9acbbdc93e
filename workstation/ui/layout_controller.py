"""The reading area: viewport layouts, series dropped onto viewports, MPR, compare with prior, cine, hanging protocols.

The main window hands it its viewer (viewport 1, the one the AI panel and the
review follow) and composes nothing else of it. Other viewports decode their
series with their own SeriesLoad, or share the main window's when it is the
same series (a hanging protocol may show one series twice, in two windows).
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QStackedWidget, QToolBar, QVBoxLayout, QWidget

from workstation.core.hanging import VIEWPORTS, protocol_for
from workstation.core.priors import Alignment, first_to_read, matching_series, priors_of
from workstation.core.study import Catalog, DisplaySet
from workstation.services.loading import SeriesLoad
from workstation.ui.bridge import LoadSignals
from workstation.ui.cine import CineBar
from workstation.ui.layouts.compare import CompareBar, PriorSync
from workstation.ui.layouts.grid import LAYOUTS, ViewportGrid
from workstation.ui.mpr_view import MprView

log = logging.getLogger(__name__)

LAYOUT_KEYS = {"1x1": "Ctrl+1", "1x2": "Ctrl+2", "2x2": "Ctrl+4"}


class LayoutController(QObject):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.win = window
        self.grid = ViewportGrid(window.viewer)
        self.mpr = MprView()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.grid)
        self.stack.addWidget(self.mpr)
        self.compare_bar = CompareBar()
        self.cine = CineBar()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.compare_bar)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.cine)
        window.setCentralWidget(central)
        self.loads: dict[int, LoadSignals] = {}  # viewport index (1-3) -> the load it shows
        self._links: dict[int, list] = {}  # viewport index -> (signal, slot) pairs to cut when it shows another series
        self.sync: PriorSync | None = None
        self._mpr_viewer = None  # the viewer whose series the MPR shows
        self._following = False  # the viewer moves because the crosshair did: not back again
        self._selected: str | None = None  # the finding the crosshair last jumped to
        self._pending_windows: dict[int, object] = {}  # viewport -> protocol window, set once its pixels arrive
        self._hung: set[str] = set()  # studies a hanging protocol was applied to (once per study)
        self._awaiting_prior: tuple | None = None  # (study, protocol, viewport) to fill when the prior arrives
        self.grid.seriesDropped.connect(self.put_series)
        self.grid.activated.connect(self._activated)
        self.cine.attach(window.viewer)
        for index, viewer in enumerate(self.grid.viewers):
            viewer.volumeChanged.connect(lambda i=index: self._volume_changed(i))
        window.viewer.overlaysChanged.connect(self._overlays_changed)
        window.viewer.frameChanged.connect(self._viewer_frame)
        window.viewer.windowChanged.connect(self._viewer_window)
        self.mpr.windowChanged.connect(self._mpr_window)
        self.mpr.pointChanged.connect(self._mpr_point)
        window.seriesLoaded.connect(lambda _key: self._apply_pending(0))
        self._build_actions()

    # ----- actions (View menu and the toolbar)
    def _build_actions(self) -> None:
        self.layout_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for name in LAYOUTS:
            action = QAction(f"Layout {name}", self)
            action.setCheckable(True)
            action.setShortcut(LAYOUT_KEYS[name])
            action.setToolTip(f"{name} viewports ({LAYOUT_KEYS[name]}); drag a series from Studies onto one")
            action.triggered.connect(lambda _=False, n=name: self.set_layout(n))
            group.addAction(action)
            self.layout_actions[name] = action
        self.layout_actions["1x1"].setChecked(True)
        self.mpr_action = QAction("&MPR (axial, coronal, sagittal)", self)
        self.mpr_action.setCheckable(True)
        self.mpr_action.setShortcut("Ctrl+M")
        self.mpr_action.setToolTip("Three linked planes of the series in the active viewport (Ctrl+M)")
        self.mpr_action.triggered.connect(self.show_mpr)
        self.compare_action = QAction("&Compare with prior", self)
        self.compare_action.setShortcut("Ctrl+Shift+C")
        self.compare_action.setToolTip("The patient's previous study beside this one, scrolled together (Ctrl+Shift+C)")
        self.compare_action.triggered.connect(self.compare_with_prior)
        self.cine_action = QAction("Cine &play / pause", self)
        self.cine_action.setShortcut(QKeySequence(Qt.Key.Key_Space))
        self.cine_action.setToolTip("Play the frames of the series in the main viewport (Space)")
        self.cine_action.triggered.connect(self.cine.toggle)
        self.toolbar = QToolBar("Layout")
        self.toolbar.setObjectName("Layout")
        for action in (*self.layout_actions.values(), None, self.mpr_action, self.compare_action, self.cine_action):
            self.toolbar.addSeparator() if action is None else self.toolbar.addAction(action)
        self.win.addToolBar(self.toolbar)

    def actions(self) -> list[QAction]:
        return [*self.layout_actions.values(), self.mpr_action, self.compare_action, self.cine_action]

    def add_to_menu(self, menu) -> None:
        menu.addSeparator()
        for action in self.actions():
            menu.addAction(action)

    # ----- layouts and viewports
    def set_layout(self, name: str) -> None:
        if self.mpr_action.isChecked():
            self.show_mpr(False)
        self.grid.set_layout(name)
        self.layout_actions[name].setChecked(True)
        if self.sync is not None and self.grid.visible_count() < 2:
            self._stop_compare()

    def put_series(self, index: int, key: str) -> None:
        """Show series `key` in viewport `index` (0: the main viewer, through the main window)."""
        display_set = self.win.display_set(key)
        if display_set is None:
            return
        if index == 0:
            self.win.open_display_set(key)
        else:
            self.load_into(index, display_set)

    def load_into(self, index: int, display_set: DisplaySet) -> None:
        viewer = self.grid.viewers[index]
        existing = self.loads.get(index)
        if (existing is not None and existing.load.display_set.key == display_set.key
                and len(existing.load.display_set.frames) == len(display_set.frames)):
            if not existing.load.complete:  # the same series again: a stopped decode resumes
                existing.load.start()
                viewer.set_loading(True)
            return
        if index == 1 and self.sync is not None:  # the prior's viewport gets another series: no longer compared
            self._stop_compare()
        self._unlink(index)
        shared = self.win.loads.get(display_set.key)
        if shared is not None and len(shared.load.display_set.frames) == len(display_set.frames):
            signals, own = shared, False
        else:
            signals, own = LoadSignals(SeriesLoad(display_set), self), True
        links = [(signals.framesReady, lambda idx, v=viewer: v.frames_ready(idx)),
                 (signals.finished, lambda _p, cancelled, i=index: self._finished(i, cancelled))]
        for signal, slot in links:
            signal.connect(slot)
        self._links[index] = links
        old = self.loads.pop(index, None)
        if old is not None and old.parent() is self and old is not signals:
            old.load.cancel()
        self.loads[index] = signals
        viewer.set_volume(display_set, signals.load.volume, signals.load.start_frame)
        viewer.frames_ready(list(range(signals.load.volume.frame_count)))
        load = signals.load
        if not load.complete:
            load.start()
            viewer.set_loading(True)
        else:
            viewer.set_loading(False)
            self._apply_pending(index)
        if own:
            self.win._audit_opened(display_set)

    def _unlink(self, index: int) -> None:
        for signal, slot in self._links.pop(index, []):
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):
                pass

    def _finished(self, index: int, cancelled: bool) -> None:
        viewer = self.grid.viewers[index]
        signals = self.loads.get(index)
        if signals is None or signals.load.busy:
            return
        viewer.frames_ready([])
        viewer.set_loading(False)
        self._apply_pending(index)
        if index == 1 and self.sync is not None:
            self.sync.window_ready()

    def _activated(self, index: int) -> None:
        self.cine.attach(self.grid.viewers[index])

    def _volume_changed(self, index: int) -> None:
        if index == self.grid.active:
            self.cine.series_changed()
        if index == 0 and self.sync is not None and self.win.viewer.display_set is not self.sync.current_set:
            self._stop_compare()
        if self.mpr_shown and self.grid.viewers[index] is self._mpr_viewer:  # another series: its MPR, or the reason
            if not self.show_mpr(True):
                self.show_mpr(False)

    # ----- MPR
    def active_viewer(self):
        return self.grid.viewers[self.grid.active]

    def show_mpr(self, on: bool = True) -> bool:
        """MPR of the active viewport's series; refused with the reason where its geometry is not usable."""
        viewer = self.active_viewer()
        if not on:
            self.mpr_action.setChecked(False)
            self.stack.setCurrentWidget(self.grid)
            viewer.setFocus()
            return False
        if viewer.volume is None or viewer.display_set is None:
            self.mpr_action.setChecked(False)
            self.win._notify("MPR: open a series first")
            return False
        point = self._viewer_point(viewer)
        problem = self.mpr.show_volume(viewer.display_set, viewer.volume, viewer.window, point)
        if problem:
            self.mpr_action.setChecked(False)
            self.win._notify(f"MPR not available: {problem}")
            return False
        self._mpr_viewer = viewer
        self._selected = viewer.selected_id  # opening the MPR keeps the point: no jump to the selected box
        self._overlays_changed()
        self.mpr_action.setChecked(True)
        self.stack.setCurrentWidget(self.mpr)
        self.mpr.setFocus()
        return True

    @property
    def mpr_shown(self) -> bool:
        return self.stack.currentWidget() is self.mpr

    def _viewer_point(self, viewer) -> np.ndarray:
        volume = viewer.volume
        rows, cols = volume.array.shape[1:3]
        return volume.index_to_patient((cols - 1) / 2, (rows - 1) / 2, viewer.frame_index)

    def _overlays_changed(self) -> None:
        viewer = self.win.viewer
        if not self.mpr_shown or self._mpr_viewer is not viewer:
            return
        heat = viewer.result.heatmap if viewer.result is not None and viewer.heatmap_visible else None
        self.mpr.set_findings(viewer.states, viewer.spans, viewer.selected_id, heat)
        if viewer.selected_id != self._selected:  # N / P or a click in the list: the three planes go to the box
            self._selected = viewer.selected_id
            state = next((s for s in viewer.states if s.finding_id == viewer.selected_id), None)
            if state is not None and self.mpr.geometry is not None:
                c0, r0, c1, r1 = state.geometry.box_px
                centre = self.mpr.geometry.to_patient((state.geometry.frame_index, (r0 + r1) / 2 - 0.5, (c0 + c1) / 2 - 0.5))
                self.mpr.set_point(centre)

    def _viewer_frame(self, frame: int) -> None:
        """The main viewer moved to another slice (review keys, a finding clicked): the crosshair follows."""
        viewer = self.win.viewer
        if self._following or not self.mpr_shown or self._mpr_viewer is not viewer or self.mpr.geometry is None:
            return
        rows, cols = viewer.volume.array.shape[1:3]
        target = viewer.volume.index_to_patient((cols - 1) / 2, (rows - 1) / 2, frame)
        normal = viewer.volume.affine[:3, 2] / (np.linalg.norm(viewer.volume.affine[:3, 2]) or 1.0)
        point = self.mpr.point.copy()
        self.mpr.set_point(point + float((target - point) @ normal) * normal)

    def _viewer_window(self, window) -> None:
        if self.mpr_shown and self._mpr_viewer is self.win.viewer:
            self.mpr.set_window(window)

    def _mpr_window(self, window) -> None:
        viewer = self._mpr_viewer
        if viewer is not None and viewer.window != window:
            viewer.set_window(window)

    def _mpr_point(self, point) -> None:
        """The viewer follows the crosshair, so leaving the MPR shows the slice through it."""
        viewer = self._mpr_viewer
        if viewer is None or viewer.volume is None:
            return
        frame = int(round(float(viewer.volume.patient_to_index(tuple(point))[2])))
        self._following = True
        try:
            viewer.show_frame(frame)
        finally:
            self._following = False

    # ----- priors
    def compare_with_prior(self) -> bool:
        """Current (main viewport) and the patient's previous study side by side, scrolled by table position."""
        current = self.win.viewer.display_set
        if current is None:
            self.win._notify("Compare with prior: open a series first")
            return False
        priors = priors_of(self.win.catalog, current.series.study)
        if not priors:
            self.win._notify("No prior study of this patient (same Patient ID and issuer) is open")
            return False
        prior = next((matching_series(self.win.catalog.display_sets_of(s), current) for s in priors
                      if matching_series(self.win.catalog.display_sets_of(s), current) is not None), None)
        if prior is None:
            self.win._notify(f"The prior studies have no {current.series.modality} series to compare")
            return False
        self._stop_compare()
        if self.grid.visible_count() < 2:
            self.set_layout("1x2")
        self.grid.set_active(0)
        self.load_into(1, prior)
        alignment = Alignment.of(current, prior)
        if alignment is None:
            self.win._notify("Prior shown, not synchronised: the slices have no patient position")
            return True
        self.sync = PriorSync(self.win.viewer, self.grid.viewers[1], alignment, self.compare_bar, self)
        return True

    def _stop_compare(self) -> None:
        if self.sync is not None:
            self.sync.stop()
            self.sync = None

    # ----- hanging protocols
    def first_to_read(self, catalog: Catalog) -> DisplaySet:
        """The series the window opens first: the newest study of the first patient, not its oldest prior."""
        return first_to_read(catalog)

    def catalog_changed(self, catalog: Catalog) -> None:
        """A study shown for the first time: the site's hanging protocol for it, if any, lays it out.

        A viewport waiting for the prior is filled when the prior arrives later (retrieved, opened).
        """
        current = self.win.viewer.display_set
        protocols = self.win.config.hanging
        if current is None or not protocols:
            return
        study = current.series.study.study_instance_uid
        if study in self._hung:
            waiting = self._awaiting_prior
            if waiting is not None and waiting[0] == study and priors_of(catalog, current.series.study):
                self._awaiting_prior = None
                self._hang_prior(catalog, current, *waiting[1:])
            return
        protocol = protocol_for(protocols, current)
        if protocol is None:
            return
        self._hung.add(study)
        self.set_layout(protocol.layout)
        candidates = catalog.display_sets_of(current.series.study)
        priors = priors_of(catalog, current.series.study)
        prior_in: int | None = None
        for index, viewport in enumerate(protocol.viewports[:VIEWPORTS[protocol.layout]]):
            if viewport.study == "prior":
                prior_in = index
                continue
            else:
                display_set = protocol.series_for(viewport, candidates, current)
            if viewport.window_level is not None:
                self._pending_windows[index] = viewport.window_level
            if index == 0:
                if display_set.key != current.key:
                    self.win.open_display_set(display_set.key)
                else:
                    self._apply_pending(0)
            else:
                self.load_into(index, display_set)
        if prior_in is not None:
            if priors:
                self._hang_prior(catalog, current, protocol, prior_in)
            else:
                self._awaiting_prior = (study, protocol, prior_in)
                self.win._notify("Hanging protocol: the prior study is not open yet; it is shown when it arrives")

    def _hang_prior(self, catalog: Catalog, current: DisplaySet, protocol, index: int) -> None:
        viewport = protocol.viewports[index]
        priors = priors_of(catalog, current.series.study)
        prior_sets = catalog.display_sets_of(priors[0]) if priors else []
        match = matching_series(prior_sets, current)
        display_set = protocol.series_for(viewport, prior_sets, match) if match or viewport.series else None
        if display_set is None:
            self.win._notify("Hanging protocol: the prior study has no matching series")
            return
        if viewport.window_level is not None:
            self._pending_windows[index] = viewport.window_level
        self.load_into(index, display_set)
        if index == 1:  # current and prior side by side: scrolled together, as Compare with prior does
            alignment = Alignment.of(self.win.viewer.display_set, display_set)
            if alignment is not None:
                self.sync = PriorSync(self.win.viewer, self.grid.viewers[1], alignment, self.compare_bar, self)

    def _apply_pending(self, index: int) -> None:
        window = self._pending_windows.get(index)
        viewer = self.grid.viewers[index]
        if window is not None and viewer.window is not None:
            del self._pending_windows[index]
            viewer.set_window(window)

    def cancel(self) -> None:
        """Esc: the other viewports stop decoding, keeping what they have (dropping the series again resumes)."""
        for index, signals in self.loads.items():
            if signals.parent() is self and signals.load.busy:
                signals.load.cancel()
                self.grid.viewers[index].set_loading(False)

    def close(self) -> None:
        self.cine.pause()
        self._stop_compare()
        for index in list(self._links):
            self._unlink(index)
        for signals in self.loads.values():
            if signals.parent() is self:
                signals.load.cancel()
                signals.detach()
        self.loads.clear()
