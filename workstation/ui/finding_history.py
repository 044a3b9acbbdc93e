"""The selected finding's history: every entry about it (who, when, what, comment), undone ones struck through.

Comments and earlier verdicts are otherwise invisible once a finding has been
decided again; a reader deciding after a colleague must see what was said.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

if TYPE_CHECKING:  # the review service (and the store under it) loads with the work session
    from workstation.services.review import HistoryLine

COLUMNS = ["When (UTC)", "Who", "What", "Comment"]


def short_time(at_utc: str) -> str:
    """'04 Dec 15:02' (UTC): short enough for the column, never ambiguous about day and month."""
    try:
        return datetime.fromisoformat(at_utc).astimezone(timezone.utc).strftime("%d %b %H:%M")
    except ValueError:
        return at_utc[:16]


class FindingHistory(QTreeWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(COLUMNS)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setMaximumHeight(130)
        self.setColumnWidth(0, 88)
        self.setColumnWidth(1, 112)
        self.setColumnWidth(2, 130)
        self.header().setStretchLastSection(True)
        self.header().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.setToolTip("History of the selected finding: every review entry, oldest first")
        self.show_lines(None, [])

    def show_lines(self, number: int | None, lines: list[HistoryLine]) -> None:
        self.clear()
        self.setHeaderLabels([f"History of #{number}" if number else COLUMNS[0], *COLUMNS[1:]])
        for line in lines:
            entry = line.entry
            when = short_time(entry.at_utc)
            who = f"{entry.user} ({entry.role})" if entry.role else entry.user
            what = line.text + ("  (undone)" if line.undone else "")
            item = QTreeWidgetItem(self, [when, who, what, entry.comment])
            item.setToolTip(0, entry.at_utc)
            item.setToolTip(3, entry.comment)
            if line.undone:
                font = QFont(self.font())
                font.setStrikeOut(True)
                for column in range(len(COLUMNS)):
                    item.setFont(column, font)
                    item.setForeground(column, QBrush(QColor(130, 130, 130)))
        if lines:
            self.scrollToItem(self.topLevelItem(self.topLevelItemCount() - 1))

    def texts(self) -> list[list[str]]:
        """Row texts (tests, screenshots)."""
        return [[self.topLevelItem(i).text(c) for c in range(len(COLUMNS))] for i in range(self.topLevelItemCount())]
