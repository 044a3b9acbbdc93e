"""The dark reading theme and window sizes that follow the screen.

Reading rooms are dim: a bright panel beside the image dazzles and changes
how grey levels are seen, so the app starts dark (View > Dark theme turns it
off). Qt's Fusion style with a dark palette covers every panel and dialog;
a few panels colour their messages with stylesheet literals chosen for a
light background (dark red, dark grey), which the theme maps to their
legible counterparts while it is on. Text over the image is outlined anyway
(corner_text.py), so it reads on either theme.

Sizes are in device-independent pixels and fonts in points, so they follow
the screen's scaling; the window opens at its preferred size or 95% of the
screen's available area, whichever is smaller, with the side panels in
proportion, so it fits at 150% scaling too.
"""

from __future__ import annotations

import re

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QPalette
from PySide6.QtWidgets import QApplication, QDockWidget, QMainWindow, QWidget

PREFERRED_SIZE = (1400, 900)
SCREEN_SHARE = 0.95
DOCK_SHARES = {"Studies": 0.2, "AI findings": 0.28}  # of the window's width

_DARK = {
    QPalette.ColorRole.Window: "#202124", QPalette.ColorRole.WindowText: "#e3e3e3",
    QPalette.ColorRole.Base: "#17181a", QPalette.ColorRole.AlternateBase: "#1f2023",
    QPalette.ColorRole.Text: "#e3e3e3", QPalette.ColorRole.Button: "#2b2c30",
    QPalette.ColorRole.ButtonText: "#e3e3e3", QPalette.ColorRole.BrightText: "#ff6b6b",
    QPalette.ColorRole.Highlight: "#2f5f9e", QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.ToolTipBase: "#2b2c30", QPalette.ColorRole.ToolTipText: "#e3e3e3",
    QPalette.ColorRole.Link: "#8ab4f8", QPalette.ColorRole.PlaceholderText: "#8a8a8a",
    QPalette.ColorRole.Light: "#3a3b40", QPalette.ColorRole.Midlight: "#303136", QPalette.ColorRole.Mid: "#28292d",
    QPalette.ColorRole.Dark: "#111214", QPalette.ColorRole.Shadow: "#000000",
}
_DISABLED = {QPalette.ColorRole.WindowText: "#7a7a7a", QPalette.ColorRole.Text: "#7a7a7a",
             QPalette.ColorRole.ButtonText: "#6e6e6e", QPalette.ColorRole.Highlight: "#3a3b40"}

# light-theme literals in the panels' stylesheets -> their legible counterparts on the dark palette
DARK_COLOURS = {"#b00020": "#ff6b6b", "#444": "#c4c4c4", "#555": "#b0b0b0", "#1b6e20": "#7fd987",
                "#8a5a00": "#ffb74d"}
_LITERAL = re.compile("(?:" + "|".join(re.escape(c) for c in sorted(DARK_COLOURS, key=len, reverse=True))
                      + r")(?![0-9a-fA-F])")


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, colour in _DARK.items():
        palette.setColor(QPalette.ColorGroup.All, role, QColor(colour))
    for role, colour in _DISABLED.items():
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(colour))
    return palette


_LIGHT_COLOURS = {dark: light for light, dark in DARK_COLOURS.items()}
_DARK_LITERAL = re.compile("(?:" + "|".join(re.escape(c) for c in _LIGHT_COLOURS) + r")(?![0-9a-fA-F])")


def dark_sheet(sheet: str) -> str:
    """A panel's stylesheet with light-theme colour literals made legible on the dark palette."""
    return _LITERAL.sub(lambda m: DARK_COLOURS[m.group(0)], sheet)


def light_sheet(sheet: str) -> str:
    """The inverse of `dark_sheet` (the theme switched off)."""
    return _DARK_LITERAL.sub(lambda m: _LIGHT_COLOURS[m.group(0)], sheet)


class _SheetMapper(QObject):
    """Rewrites stylesheet colour literals as widgets set them (StyleChange) or are first polished, while the dark
    theme is on."""

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt naming
        if event.type() in (QEvent.Type.StyleChange, QEvent.Type.Polish) and isinstance(watched, QWidget):
            sheet = watched.styleSheet()
            if sheet:
                mapped = dark_sheet(sheet)
                if mapped != sheet:
                    watched.setStyleSheet(mapped)
        return False


_state: dict = {}


def apply(app: QApplication, dark: bool = True) -> None:
    """Switch the whole application (every window, panel and dialog) to the dark theme, or back."""
    if "light" not in _state:
        _state["light"] = (app.style().name(), app.palette())
    if dark:
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
        if "mapper" not in _state:
            _state["mapper"] = _SheetMapper(app)
            app.installEventFilter(_state["mapper"])
        for widget in app.allWidgets():  # sheets set before the theme
            if widget.styleSheet():
                widget.setStyleSheet(dark_sheet(widget.styleSheet()))
    else:
        mapper = _state.pop("mapper", None)
        if mapper is not None:
            app.removeEventFilter(mapper)
        style, palette = _state["light"]
        app.setStyle(style)
        app.setPalette(palette)
        for widget in app.allWidgets():
            if widget.styleSheet():
                widget.setStyleSheet(light_sheet(widget.styleSheet()))
    _state["dark"] = dark


def is_dark() -> bool:
    return bool(_state.get("dark"))


def install(window: QMainWindow, app: QApplication, dark: bool = True) -> QAction:
    """The theme for the reading view (dark by default) and its View menu switch."""
    apply(app, dark)
    action = QAction("&Dark theme", window)
    action.setCheckable(True)
    action.setChecked(dark)
    action.setToolTip("The dark reading theme (panels too); off: the system's light theme")
    action.toggled.connect(lambda on: apply(app, on))
    view = next((a.menu() for a in window.menuBar().actions() if a.menu() and a.text().replace("&", "") == "View"), None)
    if view is not None:
        view.addSeparator()
        view.addAction(action)
    window.addAction(action)
    return action


def fit_to_screen(window: QMainWindow, preferred: tuple[int, int] = PREFERRED_SIZE) -> None:
    """Open at the preferred size or the share of the screen's available area, whichever is smaller (both in
    device-independent pixels, so this follows the display scaling), centred, side panels in proportion."""
    screen = window.screen() or QApplication.primaryScreen()
    area = screen.availableGeometry()
    width = min(preferred[0], int(area.width() * SCREEN_SHARE))
    height = min(preferred[1], int(area.height() * SCREEN_SHARE))
    window.resize(width, height)
    frame = window.frameGeometry()
    frame.moveCenter(area.center())
    window.move(frame.topLeft())
    QTimer.singleShot(0, lambda: _size_docks(window))  # once the window is laid out at its new size


def _size_docks(window: QMainWindow) -> None:
    width = window.width()
    docks = {d.objectName(): d for d in window.findChildren(QDockWidget)}
    chosen = [(docks[name], share) for name, share in DOCK_SHARES.items() if name in docks]
    if chosen:
        window.resizeDocks([d for d, _ in chosen], [int(width * share) for _, share in chosen], Qt.Orientation.Horizontal)
