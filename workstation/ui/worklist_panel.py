"""The worklist: local studies, most urgent first, with their AI state, AI priority and review state.

A widget only: rows come from services.worklist (through WorklistController), a double-click asks to open one.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

COLUMNS = ("", "AI priority", "Patient", "Date", "Modality", "Description", "AI", "Review")
FLAGGED = QColor("#ffd9d9")
SIGNED = QColor("#dff3df")


def _date(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


class WorklistPanel(QWidget):
    openRequested = Signal(object)  # the WorklistRow
    cancelRequested = Signal(object)  # the WorklistRow whose queued / running AI jobs should stop
    filtersChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list = []
        self.unread = QCheckBox("Unread")
        self.flagged = QCheckBox("Flagged")
        self.today = QCheckBox("Today")
        self.modality = QComboBox()
        self.modality.addItem("All modalities", "")
        for box in (self.unread, self.flagged, self.today):
            box.toggled.connect(lambda _checked: self.filtersChanged.emit())
        self.modality.currentIndexChanged.connect(lambda _index: self.filtersChanged.emit())
        self.cancel_button = QPushButton("Cancel AI")
        self.cancel_button.setToolTip("Cancel the selected study's queued or running AI jobs")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self._cancel)
        filters = QHBoxLayout()
        for widget in (self.unread, self.flagged, self.today, self.modality):
            filters.addWidget(widget)
        filters.addStretch(1)
        filters.addWidget(self.cancel_button)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        self.table.cellDoubleClicked.connect(lambda row, _col: self._open(row))
        self.table.itemActivated.connect(lambda item: self._open(item.row()))
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.thresholds = QLabel()
        self.thresholds.setWordWrap(True)
        self.thresholds.setStyleSheet("color: #555;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.thresholds)

    def filters(self) -> tuple[tuple[str, ...], str]:
        chosen = tuple(name for name, box in (("unread", self.unread), ("flagged", self.flagged), ("today", self.today))
                       if box.isChecked())
        return chosen, self.modality.currentData() or ""

    def set_modalities(self, modalities: list[str]) -> None:
        known = {self.modality.itemData(i) for i in range(self.modality.count())}
        for modality in modalities:
            if modality and modality not in known:
                self.modality.addItem(modality, modality)

    def show_rows(self, rows: list, thresholds: str) -> None:
        """Replace the rows, keeping the selected study selected."""
        selected = self.selected()
        keep = selected.study.study_instance_uid if selected is not None else None
        self.rows = list(rows)
        self.table.setRowCount(len(rows))
        bold = QFont()
        bold.setBold(True)
        for index, row in enumerate(rows):
            study = row.study
            values = ("⚑" if row.flagged else "", _priority(row), study.patient_name.replace("^", ", ").strip(", "),
                      _date(study.study_date), study.modalities.replace("\\", "/"), study.description,
                      row.ai_state, row.review_state)
            for column, text in enumerate(values):
                item = QTableWidgetItem(text)
                if row.flagged:
                    item.setBackground(QBrush(FLAGGED))
                    if column in (0, 1):
                        item.setFont(bold)
                        item.setForeground(QBrush(QColor("#b00020")))
                elif row.review_state.startswith("signed off"):
                    item.setBackground(QBrush(SIGNED))
                if column == 1:
                    item.setToolTip(row.priority_text or "no AI result")
                if column == 6:
                    item.setToolTip(row.ai_state)
                self.table.setItem(index, column, item)
            if keep == study.study_instance_uid:
                self.table.selectRow(index)
        self.thresholds.setText(thresholds)
        self._selection_changed()

    def selected(self):
        row = self.table.currentRow()
        return self.rows[row] if 0 <= row < len(self.rows) and self.table.selectionModel().hasSelection() else None

    def _selection_changed(self) -> None:
        row = self.selected()
        self.cancel_button.setEnabled(row is not None and any(j.state in ("queued", "running") for j in row.jobs))

    def _cancel(self) -> None:
        row = self.selected()
        if row is not None:
            self.cancelRequested.emit(row)

    def _open(self, row: int) -> None:
        if 0 <= row < len(self.rows):
            self.openRequested.emit(self.rows[row])


def _priority(row) -> str:
    """'2 ≥ 0.60 · top 0.98' for flagged studies, 'top 0.41' below the threshold, '' without a result."""
    if row.critical:
        return f"CRITICAL {', '.join(row.critical)} · top {row.top_score:.2f}"
    if row.top_score is None:
        return "no findings" if row.flags else ""
    threshold = row.flags[0].threshold if row.flags else 0.0
    return f"{row.alerts} ≥ {threshold:.2f} · top {row.top_score:.2f}" if row.flagged else f"top {row.top_score:.2f}"
