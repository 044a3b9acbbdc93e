"""The Window combo box: it shows the viewer's current window, whichever way it was set."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox

from workstation.core.windowing import WindowLevel

CUSTOM = "Custom"


def window_label(window: WindowLevel) -> str:
    return f"{window.name or CUSTOM}  (W {window.width:g} / L {window.center:g})"


class WindowBox(QComboBox):
    """Lists the offered windows; the viewer calls `show_window` on every change (keys, drag, reset).

    A window that is none of the offered ones (after a right-drag) is shown as
    a "Custom" entry at the end, so the box never names a window that is not on screen.
    """

    windowChosen = Signal(object)  # WindowLevel picked by the user

    def __init__(self) -> None:
        super().__init__()
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self._options: list[WindowLevel] = []
        self.activated.connect(self._activated)

    def set_options(self, options: list[WindowLevel], enabled: bool = True) -> None:
        self._options = list(options)
        self.clear()
        for window in self._options:
            self.addItem(window_label(window), window)
        self.setEnabled(enabled)

    def show_window(self, window: WindowLevel | None) -> None:
        if window is None:
            self.setCurrentIndex(-1)
            return
        custom = self.count() > len(self._options)
        if window in self._options:
            if custom:
                self.removeItem(self.count() - 1)
            self.setCurrentIndex(self._options.index(window))
            return
        text = f"{CUSTOM}  (W {window.width:g} / L {window.center:g})"
        if custom:
            self.setItemText(self.count() - 1, text)
            self.setItemData(self.count() - 1, window)
        else:
            self.addItem(text, window)
        self.setCurrentIndex(self.count() - 1)

    def current_window(self) -> WindowLevel | None:
        return self.currentData()

    def _activated(self, index: int) -> None:
        window = self.itemData(index)
        if window is not None:
            self.windowChosen.emit(window)
