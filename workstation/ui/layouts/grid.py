"""The viewport grid: the main viewer plus up to three more, each holding a series; drop a series onto one.

The study browser drags a series as SERIES_MIME (its DisplaySet key). The
viewport that was clicked last is the active one, framed in yellow.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QVBoxLayout, QWidget

from workstation.ui.browser import SERIES_MIME
from workstation.ui.viewer import SliceViewer

LAYOUTS = {"1x1": (1, 1), "1x2": (1, 2), "2x2": (2, 2)}
ACTIVE_STYLE = "QFrame#viewport { border: 2px solid #e0c020; }"
IDLE_STYLE = "QFrame#viewport { border: 2px solid #303030; }"


class Viewport(QFrame):
    """A frame around one viewer, which takes series dropped from the browser."""

    def __init__(self, viewer: SliceViewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("viewport")
        self.viewer = viewer
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(viewer)
        self.setStyleSheet(IDLE_STYLE)


class ViewportGrid(QWidget):
    """Up to four viewports; the first holds the main viewer (the one the review and the AI panel follow)."""

    seriesDropped = Signal(int, str)  # viewport index, DisplaySet key
    activated = Signal(int)  # viewport index clicked

    def __init__(self, main_viewer: SliceViewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewports = [Viewport(main_viewer)] + [Viewport(SliceViewer()) for _ in range(3)]
        self.layout_name = "1x1"
        self.active = 0
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(1)
        for index, viewport in enumerate(self.viewports):
            target = viewport.viewer.view.viewport()
            target.setAcceptDrops(True)
            target.installEventFilter(self)
            target.setProperty("viewport_index", index)
        self.set_layout("1x1")

    @property
    def viewers(self) -> list[SliceViewer]:
        return [v.viewer for v in self.viewports]

    def visible_count(self) -> int:
        rows, cols = LAYOUTS[self.layout_name]
        return rows * cols

    def set_layout(self, name: str) -> None:
        rows, cols = LAYOUTS[name]
        self.layout_name = name
        for viewport in self.viewports:
            self._grid.removeWidget(viewport)
            viewport.hide()
        for index in range(rows * cols):
            self._grid.addWidget(self.viewports[index], index // cols, index % cols)
            self.viewports[index].show()
        if self.active >= rows * cols:
            self.set_active(0)
        self._frame()

    def set_active(self, index: int) -> None:
        self.active = index
        self._frame()
        self.activated.emit(index)

    def _frame(self) -> None:
        many = self.visible_count() > 1
        for index, viewport in enumerate(self.viewports):
            viewport.setStyleSheet(ACTIVE_STYLE if many and index == self.active else IDLE_STYLE)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt naming
        kind = event.type()
        index = watched.property("viewport_index")
        if index is None:
            return super().eventFilter(watched, event)
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            if event.mimeData().hasFormat(SERIES_MIME):
                event.acceptProposedAction()
                return True
        elif kind == QEvent.Type.Drop and event.mimeData().hasFormat(SERIES_MIME):
            key = bytes(event.mimeData().data(SERIES_MIME)).decode("utf-8")
            event.acceptProposedAction()
            self.set_active(int(index))
            self.seriesDropped.emit(int(index), key)
            return True
        elif kind == QEvent.Type.MouseButtonPress and int(index) != self.active:
            self.set_active(int(index))
        return super().eventFilter(watched, event)
