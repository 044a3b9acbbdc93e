"""Review controls under the findings list: decide, comment, undo, sign off, and (reviewers) edit and reopen.

Every control is a QAction with its key, so a button, the Review menu and the
key do the same thing and share one enabled state; the main window adds the
actions to itself, which makes the keys work wherever the focus is in the
window (a line edit still gets its letters: Qt lets it override shortcuts).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QLineEdit, QSizePolicy, QToolButton, QVBoxLayout, QWidget

REVIEWERS_ONLY = "Reviewers only"


class ReviewPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.accept_action = self._action("&Accept finding", "A", "Accept the selected finding (A)")
        self.reject_action = self._action("&Reject finding", "R", "Reject the selected finding (R)")
        self.comment_action = self._action("&Comment", None, "Save the comment alone for the selected finding")
        self.next_action = self._action("&Next pending finding", "N", "Select the next pending finding and show it (N)")
        self.previous_action = self._action("&Previous pending finding", "P",
                                            "Select the previous pending finding and show it (P)")
        self.next_any_action = self._action("Next finding (any state)", "Shift+N", "Select the next finding (Shift+N)")
        self.previous_any_action = self._action("Previous finding (any state)", "Shift+P",
                                                "Select the previous finding (Shift+P)")
        self.undo_action = self._action("&Undo", QKeySequence.StandardKey.Undo,
                                        "Undo your last review action in this series (Ctrl+Z); recorded, never erased")
        self.redo_action = self._action("Re&do", "Ctrl+Shift+Z", "Redo what you undid (Ctrl+Shift+Z)")
        self.signoff_action = self._action("&Sign off review", "Ctrl+Return",
                                           "Mark this AI review complete (Ctrl+Enter); refused while findings are pending")
        self.signoff_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.reopen_action = self._action("Re&open signed-off review", None,
                                          "Reopen a signed-off review so decisions can change (reviewers; recorded)")
        self.delete_action = self._action("&Delete finding…", QKeySequence.StandardKey.Delete,
                                          "Delete the selected AI box (Del, asks first; Ctrl+Z undoes; reviewers)")
        self.relabel_action = self._action("Re&label finding", None, "Give the selected finding the chosen label (reviewers)")
        self.draw_action = self._action("Draw &box", "B", "Draw a box the model missed: drag on the image (B; reviewers)")
        self.draw_action.setCheckable(True)

        self.comment_edit = QLineEdit()
        self.comment_edit.setPlaceholderText("Optional comment for the next accept / reject")
        self.comment_edit.setClearButtonEnabled(True)
        self.label_box = QComboBox()
        self.label_box.setToolTip("Label for Relabel and for boxes you draw")
        self.user_label = QLabel()
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress_label = QLabel()  # "2 of 5 pending"
        self.progress_label.setStyleSheet("font-weight: bold;")
        self.signoff_label = QLabel()
        self.signoff_label.setWordWrap(True)

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(4)
        grid.addWidget(self._button(self.accept_action, "Accept (A)"), 0, 0)
        grid.addWidget(self._button(self.reject_action, "Reject (R)"), 0, 1)
        grid.addWidget(self._button(self.previous_action, "◀ Prev (P)"), 0, 2)
        grid.addWidget(self._button(self.next_action, "Next (N) ▶"), 0, 3)
        grid.addWidget(self.comment_edit, 1, 0, 1, 3)
        grid.addWidget(self._button(self.comment_action, "Comment"), 1, 3)
        grid.addWidget(self.label_box, 2, 0, 1, 2)
        grid.addWidget(self._button(self.relabel_action, "Relabel"), 2, 2)
        grid.addWidget(self._button(self.delete_action, "Delete (Del)"), 2, 3)
        grid.addWidget(self._button(self.draw_action, "Draw box (B)"), 3, 0, 1, 2)
        grid.addWidget(self._button(self.undo_action, "Undo"), 3, 2)
        grid.addWidget(self._button(self.redo_action, "Redo"), 3, 3)
        grid.addWidget(self._button(self.signoff_action, "Sign off (Ctrl+Enter)"), 4, 0, 1, 2)
        grid.addWidget(self._button(self.reopen_action, "Reopen"), 4, 2, 1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.note)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.signoff_label)
        layout.addLayout(grid)
        layout.addWidget(self.user_label)
        layout.addWidget(self.message)
        self.set_disabled_reason("")

    def actions_for_window(self) -> list[QAction]:
        """In menu order; a None is a separator."""
        return [self.accept_action, self.reject_action, self.comment_action, self.next_action, self.previous_action,
                self.next_any_action, self.previous_any_action, None, self.undo_action, self.redo_action, None,
                self.delete_action, self.relabel_action, self.draw_action, None, self.signoff_action,
                self.reopen_action]

    def reviewer_actions(self) -> list[QAction]:
        return [self.delete_action, self.relabel_action, self.draw_action, self.reopen_action]

    def set_progress(self, pending: int, total: int) -> None:
        """'k of n pending' (or 'all n decided'): how far the reader is."""
        if total == 0:
            self.progress_label.setText("")
        elif pending:
            self.progress_label.setText(f"{pending} of {total} pending")
            self.progress_label.setStyleSheet("font-weight: bold; color: #8a5a00;")
        else:
            self.progress_label.setText(f"All {total} decided")
            self.progress_label.setStyleSheet("font-weight: bold; color: #1b6e20;")

    def set_signoff(self, text: str) -> None:
        self.signoff_label.setVisible(bool(text))
        self.signoff_label.setText(text)
        self.signoff_label.setStyleSheet("color: #1b6e20; font-weight: bold;" if text.startswith("✔") else "color: #444;")

    def set_labels(self, labels: tuple[str, ...]) -> None:
        current = self.label_box.currentText()
        self.label_box.clear()
        self.label_box.addItems(list(labels))
        if current in labels:
            self.label_box.setCurrentText(current)

    def set_user(self, text: str, may_edit: bool) -> None:
        self.user_label.setText(text)
        self.label_box.setEnabled(may_edit)
        for action in self.reviewer_actions():
            action.setToolTip(action.statusTip() if may_edit else f"{REVIEWERS_ONLY}: {action.statusTip()}")

    def set_disabled_reason(self, reason: str) -> None:
        """Shown above the controls while review is off (no store, no findings, no role)."""
        self.note.setVisible(bool(reason))
        self.note.setText(reason)
        self.note.setStyleSheet("color: #b00020; font-weight: bold;" if reason.startswith("Review disabled") else "")

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #b00020;" if error else "color: #444;")
        self.message.setText(text)

    def take_comment(self) -> str:
        text = self.comment_edit.text().strip()
        self.comment_edit.clear()
        return text

    def _action(self, text: str, shortcut, tip: str) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.setToolTip(tip)
        return action

    def _button(self, action: QAction, text: str) -> QToolButton:
        action.setIconText(text)  # the button's text; the menu shows action.text()
        button = QToolButton()
        button.setDefaultAction(action)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keyboard stays with the viewer or the list
        button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        return button
