"""The findings list: every visible finding of the open series with its review state, strongest first.

Rows show review states (derived from the store), not the model's raw output,
so a reopened study lists exactly what was decided; the tint repeats the
box colour on the image.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from workstation.core.findings import Finding
from workstation.core.review import FindingState
from workstation.ui.review_style import ROW_TINTS, by_text, state_text

STATE_ROLE = Qt.ItemDataRole.UserRole
COLUMNS = ["#", "Finding", "Score", "Slice", "State", "By"]


class FindingsPanel(QTreeWidget):
    findingActivated = Signal(object)  # FindingState: clicked or chosen with the keyboard
    selectionMoved = Signal(object)  # FindingState or None: the current row changed (any way)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(COLUMNS)
        self.setRootIsDecorated(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setUniformRowHeights(True)
        header = self.header()
        header.setStretchLastSection(True)
        for column, width in enumerate((30, 70, 46, 42, 110)):
            self.setColumnWidth(column, width)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.ResizeToContents)
        self._details: dict[str, Finding] = {}
        self.itemClicked.connect(lambda item, _c: self.findingActivated.emit(item.data(0, STATE_ROLE)))
        self.itemActivated.connect(lambda item, _c: self.findingActivated.emit(item.data(0, STATE_ROLE)))
        self.currentItemChanged.connect(lambda item, _p: self.selectionMoved.emit(item.data(0, STATE_ROLE) if item else None))

    def show_states(self, states: list[FindingState], findings: list[Finding] = ()) -> None:
        """Replace the rows, keeping the selected finding selected."""
        selected = self.selected_id()
        self._details = {f.finding_id: f for f in findings}
        self.blockSignals(True)
        self.clear()
        for number, state in enumerate(states, start=1):
            item = QTreeWidgetItem(self, [
                str(number), state.label, "" if state.score is None else f"{state.score:.2f}",
                str(state.geometry.frame_index + 1), state_text(state), by_text(state),
            ])
            item.setData(0, STATE_ROLE, state)
            item.setTextAlignment(2, Qt.AlignmentFlag.AlignRight)
            item.setToolTip(1, self._tooltip(state))
            tint = ROW_TINTS.get(state.state)
            if tint is not None:
                for column in range(len(COLUMNS)):
                    item.setBackground(column, QBrush(tint))
                    item.setForeground(column, QBrush(QColor(20, 20, 20)))
            if state.finding_id == selected:
                self.setCurrentItem(item)
        self.blockSignals(False)

    def states(self) -> list[FindingState]:
        return [self.topLevelItem(i).data(0, STATE_ROLE) for i in range(self.topLevelItemCount())]

    def selected(self) -> FindingState | None:
        item = self.currentItem()
        return item.data(0, STATE_ROLE) if item is not None and item.isSelected() else None

    def selected_id(self) -> str | None:
        state = self.selected()
        return state.finding_id if state is not None else None

    def select(self, finding_id: str | None) -> FindingState | None:
        """Make a finding the current row (None clears); returns its state."""
        for i in range(self.topLevelItemCount()):
            item = self.topLevelItem(i)
            if item.data(0, STATE_ROLE).finding_id == finding_id:
                self.setCurrentItem(item)
                item.setSelected(True)
                self.scrollToItem(item)
                return item.data(0, STATE_ROLE)
        self.setCurrentItem(None)
        self.clearSelection()
        return None

    def neighbour(self, step: int) -> FindingState | None:
        """The finding `step` rows from the selected one (the first or last when none is selected)."""
        count = self.topLevelItemCount()
        if not count:
            return None
        item = self.currentItem()
        if item is None or not item.isSelected():
            index = 0 if step > 0 else count - 1
        else:
            index = min(max(self.indexOfTopLevelItem(item) + step, 0), count - 1)
        return self.topLevelItem(index).data(0, STATE_ROLE)

    def _tooltip(self, state: FindingState) -> str:
        lines = [f"{state.label}: {state_text(state)}"]
        finding = self._details.get(state.finding_id)
        if finding is not None:
            (x0, y0, _), (x1, y1, _) = finding.box_mm
            lines.append(f"model box {abs(x1 - x0):.0f} x {abs(y1 - y0):.0f} mm, slices "
                         f"{finding.frames[0] + 1}-{finding.frames[1] + 1}")
        if state.by:
            lines.append(f"last change by {by_text(state)} at {state.at_utc}")
        lines += [f"comment: {text}" for text in state.comments]
        return "\n".join(lines)
