"""Results stored with a study (SR / GSPS / Parametric Map, e.g. retrieved from the PACS) shown over the series.

Reading happens off the UI thread when a series without a local AI run opens;
what is found is shown read-only (listed, boxes, heatmap) and labelled with its
source, and unusable objects go to the Problems panel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from workstation.core.study import Catalog, DisplaySet
from workstation.services.executor import background
from workstation.ui.ai_panel import AiPanel
from workstation.ui.bridge import ResultSignal
from workstation.ui.problems import ProblemsPanel
from workstation.ui.review_controller import ReviewController
from workstation.ui.viewer import SliceViewer

if TYPE_CHECKING:
    from workstation.services.results_reading import ShownResults

log = logging.getLogger(__name__)


class StoredResultsController(QObject):
    shown = Signal(object)  # ShownResults or None, once reading a series' objects finished (tests, screenshots)

    def __init__(self, viewer: SliceViewer, panel: AiPanel, review: ReviewController, problems: ProblemsPanel,
                 is_current: Callable[[str], bool], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer, self.panel, self.review, self.problems = viewer, panel, review, problems
        self.is_current = is_current
        self.current: ShownResults | None = None
        self._relay = ResultSignal(self)
        self._relay.ready.connect(self._ready)

    def show_for(self, catalog: Catalog, display_set: DisplaySet) -> bool:
        """Read the series' stored result objects in the background; False when there are none."""
        self.current = None
        if not catalog.results_for(display_set.series.series_instance_uid):
            return False
        key = display_set.key

        def work():
            try:
                from workstation.services.results_reading import read_for_series  # highdicom: only when needed

                return read_for_series(catalog, display_set)
            except Exception as exc:  # noqa: BLE001 - reported as a problem below, never a traceback
                log.exception("stored results could not be read")
                return None, [f"stored results could not be read: {exc}"]

        future = background().submit(work)
        future.add_done_callback(lambda f: self._relay.deliver(key, f.result()))
        return True

    def _ready(self, key: str, outcome) -> None:
        shown, problems = outcome
        file_problems = [p for p in problems if not isinstance(p, str)]
        if file_problems:
            self.problems.add_load_problems(file_problems)
        if not self.is_current(key) or self.review.review is not None:
            self.shown.emit(None)
            return  # another series is open now, or a local AI run is under review: that one is shown
        self.current = shown
        if shown is not None:
            self.viewer.set_result(shown.result)
            self.review.show_foreign(shown.result.findings, shown.states, shown.result.model.name,
                                     "Read-only: results stored with the study, not reviewed here.")
            heat = "" if shown.has_heatmap else " (no heatmap)"
            self.panel.device_label.setText(f"Stored with the study (read-only): {shown.source}{heat}")
        elif problems:
            said = [p for p in problems if isinstance(p, str)]  # not tied to a file: said here, in full
            self.panel.device_label.setText(f"Stored results could not be shown: {said[0]}" if said else
                                            "Stored results could not be shown: see Problems.")
        self.shown.emit(shown)
