"""The viewer's pyqtgraph ViewBox: wheel scrolls slices, right-drag sets the window, left-drag pans or draws."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal


class SliceViewBox(pg.ViewBox):
    """A ViewBox whose wheel scrolls slices, whose right-drag sets the window and whose left-drag draws in draw mode."""

    sigScroll = Signal(int)
    sigWindowDrag = Signal(float, float)
    sigBoxDrawing = Signal(object)  # QRectF in view (mm) coordinates while the button is down
    sigBoxDrawn = Signal(object)  # QRectF when it is released

    def __init__(self) -> None:
        super().__init__(invertY=True, lockAspect=True, enableMenu=False)
        self.setMouseMode(pg.ViewBox.PanMode)
        self.draw_mode = False
        self.mouse_hook = None  # measurement tools: drag(ev) / click(ev) return True when they took the event

    def wheelEvent(self, ev, axis=None):  # noqa: N802 - Qt naming
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        ev.accept()
        self.sigScroll.emit(-1 if ev.delta() > 0 else 1)

    def mouseClickEvent(self, ev):  # noqa: N802 - Qt naming
        if self.mouse_hook is not None and self.mouse_hook.click(ev):
            return
        super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - Qt naming
        if self.mouse_hook is not None and ev.button() == Qt.MouseButton.LeftButton and self.mouse_hook.drag(ev):
            return
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            delta = ev.screenPos() - ev.lastScreenPos()
            self.sigWindowDrag.emit(delta.x(), delta.y())
            return
        if self.draw_mode and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            rect = QRectF(self.mapSceneToView(ev.buttonDownScenePos()), self.mapSceneToView(ev.scenePos())).normalized()
            (self.sigBoxDrawn if ev.isFinish() else self.sigBoxDrawing).emit(rect)
            return
        super().mouseDragEvent(ev, axis)
