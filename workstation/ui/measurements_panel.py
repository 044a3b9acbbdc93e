"""The measurements list of the open series: number, kind, values, slice, who; a click jumps to the slice.

Rows come from the measurement session (the fold of the stored entries), so
the list shows what was saved. Delete, Undo and Redo act on the reader's own
entries; the note says when nothing is saved (no store) and why.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QHBoxLayout, QLabel, QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)

from workstation.core.measure import NAMES

ID_ROLE = Qt.ItemDataRole.UserRole
COLUMNS = ["#", "Measurement", "Value", "Slice", "By"]


class MeasurementsPanel(QWidget):
    measurementActivated = Signal(str)  # measurement id: clicked or chosen with the keyboard
    selectionMoved = Signal(object)  # measurement id or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTreeWidget()
        self.table.setHeaderLabels(COLUMNS)
        self.table.setRootIsDecorated(False)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setUniformRowHeights(False)
        self.table.header().setStretchLastSection(True)
        for column, width in enumerate((28, 110, 150, 40)):
            self.table.setColumnWidth(column, width)
        self.table.itemClicked.connect(lambda item, _c: self.measurementActivated.emit(item.data(0, ID_ROLE)))
        self.table.itemActivated.connect(lambda item, _c: self.measurementActivated.emit(item.data(0, ID_ROLE)))
        self.table.currentItemChanged.connect(
            lambda item, _p: self.selectionMoved.emit(item.data(0, ID_ROLE) if item else None))
        self.delete_button, self.undo_button, self.redo_button = QToolButton(), QToolButton(), QToolButton()
        self.note = QLabel()
        self.note.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        for button in (self.delete_button, self.undo_button, self.redo_button):
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.note)

    def set_actions(self, delete, undo, redo) -> None:
        self.delete_button.setDefaultAction(delete)
        self.undo_button.setDefaultAction(undo)
        self.redo_button.setDefaultAction(redo)
        for button, text in ((self.delete_button, "Delete"), (self.undo_button, "Undo"), (self.redo_button, "Redo")):
            button.defaultAction().setIconText(text)

    def show_rows(self, rows: list[tuple[str, int, str, str, int, str]], selected: str | None) -> None:
        """rows: (measurement id, number, kind, value text, frame index, by); a kind may carry what it measured,
        e.g. "diameter|AI #1"."""
        self.table.blockSignals(True)
        self.table.clear()
        chosen = None
        for measurement_id, number, kind, text, frame, by in rows:
            kind, _, of = kind.partition("|")
            name = NAMES.get(kind, kind) + (f" ({of})" if of else "")
            item = QTreeWidgetItem([str(number), name, text.replace("\n", "; "), str(frame + 1), by])
            item.setData(0, ID_ROLE, measurement_id)
            item.setToolTip(2, text)
            self.table.addTopLevelItem(item)
            if measurement_id == selected:
                chosen = item
        self.table.setCurrentItem(chosen)
        if chosen is None:
            self.table.clearSelection()
        self.table.blockSignals(False)

    def select(self, measurement_id: str | None) -> None:
        self.table.blockSignals(True)
        for i in range(self.table.topLevelItemCount()):
            item = self.table.topLevelItem(i)
            if item.data(0, ID_ROLE) == measurement_id:
                self.table.setCurrentItem(item)
                break
        else:
            self.table.setCurrentItem(None)
            self.table.clearSelection()
        self.table.blockSignals(False)

    def selected_id(self) -> str | None:
        item = self.table.currentItem()
        return item.data(0, ID_ROLE) if item is not None and item.isSelected() else None

    def row_texts(self) -> list[list[str]]:
        return [[self.table.topLevelItem(i).text(c) for c in range(len(COLUMNS))]
                for i in range(self.table.topLevelItemCount())]

    def set_note(self, text: str, error: bool = False) -> None:
        self.note.setText(text)
        self.note.setStyleSheet("color: #b00020;" if error else "")
