"""The problems panel: files that were skipped and series warnings, each with its reason."""

from __future__ import annotations

from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from workstation.core.study import Catalog, FileProblem


class ProblemsPanel(QTreeWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(2)
        self.setHeaderLabels(["File / series", "Reason"])
        self.setRootIsDecorated(False)
        self.setColumnWidth(0, 420)
        self._load_problems: list[FileProblem] = []
        self._catalog = Catalog()

    def show_catalog(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._rebuild()

    def add_load_problems(self, problems: list[FileProblem]) -> None:
        known = {(p.location, p.reason) for p in self._load_problems}
        self._load_problems.extend(p for p in problems if (p.location, p.reason) not in known)
        self._rebuild()

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
