"""The Report panel: the draft of a signed-off review as editable text, its state, and its deliveries."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QGridLayout, QLabel, QPlainTextEdit, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

DELIVERY_COLUMNS = ("Format", "Destination", "State", "Answer / reason", "Control ID")


class ReportPanel(QWidget):
    draftRequested = Signal()
    saveRequested = Signal(str)
    sendRequested = Signal(str)
    retryRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status = QLabel("Sign off the AI review to draft a report")
        self.status.setWordWrap(True)
        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("The report draft appears here after the sign-off")
        font = QFont("DejaVu Sans Mono")
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.editor.setFont(font)
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.editor.textChanged.connect(self._edited)
        self.draft_button = QPushButton("New draft from sign-off")
        self.draft_button.setToolTip("Measure the verified findings on the images again and start a new draft")
        self.save_button = QPushButton("Save edit")
        self.send_button = QPushButton("Finalise and send")
        self.send_button.setToolTip("Save this text as the final report and send it to the RIS / FHIR server")
        self.retry_button = QPushButton("Retry refused")
        self.draft_button.clicked.connect(self.draftRequested)
        self.save_button.clicked.connect(lambda: self.saveRequested.emit(self.editor.toPlainText()))
        self.send_button.clicked.connect(lambda: self.sendRequested.emit(self.editor.toPlainText()))
        self.retry_button.clicked.connect(self.retryRequested)
        buttons = QGridLayout()  # two rows: the dock stays narrow enough for the image at 150 % scaling
        for position, button in enumerate((self.draft_button, self.save_button, self.send_button, self.retry_button)):
            buttons.addWidget(button, position // 2, position % 2)
        self.deliveries = QTableWidget(0, len(DELIVERY_COLUMNS))
        self.deliveries.setHorizontalHeaderLabels(DELIVERY_COLUMNS)
        self.deliveries.verticalHeader().setVisible(False)
        self.deliveries.horizontalHeader().setStretchLastSection(True)
        self.deliveries.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.deliveries.setMaximumHeight(130)
        self.deliveries.setMinimumWidth(120)  # scrolls rather than widening the dock
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.editor, 1)
        layout.addLayout(buttons)
        layout.addWidget(QLabel("Deliveries"))
        layout.addWidget(self.deliveries)
        self._saved_text = ""
        self.set_enabled(False)

    def set_enabled(self, enabled: bool, reason: str = "") -> None:
        for widget in (self.editor, self.draft_button, self.save_button, self.send_button, self.retry_button):
            widget.setEnabled(enabled)
        if reason:
            self.status.setText(reason)

    def show_version(self, text: str, status: str) -> None:
        self._saved_text = text
        self.editor.blockSignals(True)
        self.editor.setPlainText(text)
        self.editor.blockSignals(False)
        self.status.setText(status)
        self.save_button.setEnabled(False)

    def show_deliveries(self, rows: list[dict]) -> None:
        self.deliveries.setRowCount(len(rows))
        for r, row in enumerate(rows):
            answer = row["answer"] + (f": {row['reason']}" if row["reason"] else "")
            for c, value in enumerate((row["format"].upper(), row["destination"], row["state"], answer, row["control_id"])):
                item = QTableWidgetItem(value)
                item.setToolTip(value)
                self.deliveries.setItem(r, c, item)
        self.deliveries.resizeColumnsToContents()
        self.retry_button.setEnabled(any(row["state"] == "rejected" for row in rows))

    def _edited(self) -> None:
        self.save_button.setEnabled(self.editor.toPlainText() != self._saved_text)
