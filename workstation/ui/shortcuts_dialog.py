"""Help > Keyboard shortcuts (F1): every key of the window, read from its actions, so the list cannot go stale."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

# Keys the viewer handles itself (not actions): listed so the reader finds them in one place.
VIEWER_KEYS = [
    ("Mouse wheel, ↑ ↓ ← →", "Scroll slices"),
    ("PageUp / PageDown", "Scroll 10 slices"),
    ("Home / End", "First / last slice"),
    ("Right-drag", "Window width (horizontal) and level (vertical)"),
    ("0", "The images' own window"),
    ("1 2 3 4 5", "CT presets: lung, mediastinum, abdomen, bone, brain"),
    ("Ctrl+wheel, + / -", "Zoom"),
    ("Left-drag", "Pan (draws a box in draw mode)"),
    ("F", "Fit to window"),
]


def shortcut_rows(actions: list[QAction]) -> list[tuple[str, str]]:
    """(keys, what) for every action with a shortcut, without duplicates, in the order given."""
    rows, seen = [], set()
    for action in actions:
        keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts() if not k.isEmpty())
        what = action.text().replace("&", "").rstrip("…") or action.toolTip()
        if keys and (keys, what) not in seen:
            seen.add((keys, what))
            rows.append((keys, what))
    return rows


class ShortcutsDialog(QDialog):
    def __init__(self, actions: list[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(560, 620)
        self.table = QTreeWidget()
        self.table.setHeaderLabels(["Keys", "Does"])
        self.table.setRootIsDecorated(False)
        self.table.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for keys, what in shortcut_rows(actions) + VIEWER_KEYS:
            QTreeWidgetItem(self.table, [keys, what])
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)

    def rows(self) -> list[tuple[str, str]]:
        return [(self.table.topLevelItem(i).text(0), self.table.topLevelItem(i).text(1))
                for i in range(self.table.topLevelItemCount())]
