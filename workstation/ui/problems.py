"""The problems panel: files that were skipped, series warnings, and received instances kept as conflicts."""

from __future__ import annotations

import time

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from workstation.core.receiving import InstanceConflict, KeptConflict
from workstation.core.study import Catalog, FileProblem


class ProblemsPanel(QTreeWidget):
    conflict_arrived = Signal(object)  # KeptConflict, from a receiver thread: queued to the GUI thread
    conflicts_changed = Signal()  # conflicts were added (the window retitles its dock)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(2)
        self.setHeaderLabels(["File / series", "Reason"])
        self.setRootIsDecorated(False)
        self.setColumnWidth(0, 420)
        self._load_problems: list[FileProblem] = []
        self._conflicts: list[KeptConflict] = []
        self._catalog = Catalog()
        self._watched: set[int] = set()
        self.conflict_arrived.connect(lambda conflict: self.add_conflicts([conflict]))

    def show_catalog(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._rebuild()

    def add_load_problems(self, problems: list[FileProblem]) -> None:
        known = {(p.location, p.reason) for p in self._load_problems}
        self._load_problems.extend(p for p in problems if (p.location, p.reason) not in known)
        self._rebuild()

    def add_conflicts(self, conflicts: list[KeptConflict]) -> None:
        known = {c.conflict_path for c in self._conflicts}
        added = [c for c in conflicts if c.conflict_path not in known]
        if added:
            self._conflicts.extend(added)
            self._rebuild()
            self.conflicts_changed.emit()

    def watch_pacs(self, pacs) -> None:
        """Show the conflicts a PacsService's cache holds, and each new one as the receiver keeps it."""
        if pacs is None or id(pacs) in self._watched:
            return
        self._watched.add(id(pacs))
        self.add_conflicts(pacs.conflicts())

        def received(event) -> None:  # on a receiver thread
            if isinstance(event, InstanceConflict):
                self.conflict_arrived.emit(KeptConflict(event.study_instance_uid, event.series_instance_uid,
                                                        event.sop_instance_uid, event.held_path, event.conflict_path,
                                                        f"{event.calling_ae_title} from {event.peer_host}", time.time()))
        pacs.received.connect(received)

    def count(self) -> int:
        return self.topLevelItemCount()

    def _rebuild(self) -> None:
        self.clear()
        for problem in [*self._catalog.problems, *self._load_problems]:
            reason = problem.reason  # a warning (e.g. a suspicious preamble) is about a file that was opened
            QTreeWidgetItem(self, [str(problem.location), reason if reason.startswith("warning:") else f"skipped: {reason}"])
        for display_set in self._catalog.display_sets:
            name = f"Series {display_set.series.number or '-'} {display_set.series.description}".strip()
            if display_set.label:
                name += f" (part {display_set.label})"
            for warning in display_set.warnings:
                QTreeWidgetItem(self, [name, f"warning: {warning}"])
        for conflict in self._conflicts:
            at = time.strftime("%Y-%m-%d %H:%M", time.localtime(conflict.received_at))
            item = QTreeWidgetItem(self, [f"Received instance {conflict.sop_instance_uid}",
                                          f"conflict: held with other content; {conflict.origin} sent another copy "
                                          f"({at}), kept aside"])
            item.setToolTip(0, f"held: {conflict.held_path}\nconflicting copy: {conflict.conflict_path}")
            item.setToolTip(1, item.toolTip(0))
