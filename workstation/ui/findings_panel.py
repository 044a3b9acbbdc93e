"""The findings panel: AI findings of the open series, strongest first; a click jumps to one."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from workstation.core.findings import Finding, InferenceResult

FINDING_ROLE = Qt.ItemDataRole.UserRole


class FindingsPanel(QTreeWidget):
    findingActivated = Signal(object)  # Finding

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["#", "Finding", "Score", "Slice", "Size (mm)", "Position (mm)"])
        self.setRootIsDecorated(False)
        for column, width in enumerate((28, 58, 46, 42, 64)):
            self.setColumnWidth(column, width)
        self.itemClicked.connect(lambda item, _c: self.findingActivated.emit(item.data(0, FINDING_ROLE)))
        self.itemActivated.connect(lambda item, _c: self.findingActivated.emit(item.data(0, FINDING_ROLE)))

    def show_result(self, result: InferenceResult | None) -> None:
        self.clear()
        if result is None:
            return
        for number, finding in enumerate(result.sorted_findings(), start=1):
            item = QTreeWidgetItem(self, [
                str(number), finding.label, f"{finding.score:.2f}", str(finding.frame_index + 1),
                _size(finding), ", ".join(f"{v:.1f}" for v in finding.center_mm),
            ])
            item.setData(0, FINDING_ROLE, finding)
            item.setTextAlignment(2, Qt.AlignmentFlag.AlignRight)

    def findings(self) -> list[Finding]:
        return [self.topLevelItem(i).data(0, FINDING_ROLE) for i in range(self.topLevelItemCount())]


def _size(finding: Finding) -> str:
    (x0, y0, _), (x1, y1, _) = finding.box_mm
    return f"{abs(x1 - x0):.0f} x {abs(y1 - y0):.0f}"
