"""The findings list: every visible finding of the open series with its review state and fixed number.

Rows show review states (derived from the store), not the model's raw output,
so a reopened study lists exactly what was decided; the tint repeats the
box colour on the image. A finding's number is fixed for the life of the run
(by score at run time); clicking a column header sorts the rows without
renumbering them.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from workstation.core.findings import Finding
from workstation.core.review import FindingState
from workstation.ui.review_style import ROW_TINTS, by_text, score_text, state_text

STATE_ROLE = Qt.ItemDataRole.UserRole
COLUMNS = ["#", "Finding", "Score", "Slice", "State", "By", "Comment"]
COMMENT_COLUMN = 6


class FindingItem(QTreeWidgetItem):
    """Sorts numbers as numbers (# 10 after # 9, scores by value)."""

    def __lt__(self, other: QTreeWidgetItem) -> bool:
        column = self.treeWidget().sortColumn() if self.treeWidget() else 0
        mine, theirs = self.data(0, STATE_ROLE), other.data(0, STATE_ROLE)
        if column in (0, 2, 3) and mine is not None and theirs is not None:
            key = {0: lambda s: s.number, 2: lambda s: -1.0 if s.score is None else s.score,
                   3: lambda s: s.geometry.frame_index}[column]
            return (key(mine), mine.number) < (key(theirs), theirs.number)
        return super().__lt__(other)


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
        for column, width in enumerate((30, 64, 44, 40, 120, 90)):
            self.setColumnWidth(column, width)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.ResizeToContents)
        self.setSortingEnabled(True)
        self.sortByColumn(0, Qt.SortOrder.AscendingOrder)
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
        for state in states:
            item = FindingItem(self, [
                str(state.number), state.label, "" if state.score is None else score_text(state.score),
                str(state.geometry.frame_index + 1), state_text(state), by_text(state),
                state.comments[-1] if state.comments else "",
            ])
            item.setData(0, STATE_ROLE, state)
            item.setTextAlignment(2, Qt.AlignmentFlag.AlignRight)
            for column in range(len(COLUMNS)):
                item.setToolTip(column, self._tooltip(state))
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

    def neighbour(self, step: int, pending_only: bool = False) -> FindingState | None:
        """The next (+1) or previous (-1) row from the selected one, in the order shown (wrapping round);
        with `pending_only`, the nearest pending one (None when none is pending)."""
        rows = self.states()
        if not rows:
            return None
        item = self.currentItem()
        here = self.indexOfTopLevelItem(item) if item is not None and item.isSelected() else (-1 if step > 0 else len(rows))
        for offset in range(1, len(rows) + 1):
            index = here + step * offset
            if not pending_only and not 0 <= index < len(rows):
                return rows[min(max(index, 0), len(rows) - 1)]  # any state: stop at the ends
            state = rows[index % len(rows)]
            if not pending_only or state.pending:
                return state
        return None

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
