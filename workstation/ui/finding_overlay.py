"""Finding boxes on the image: coloured by review state, and the one editable box a reviewer drags.

The viewer works in patient millimetres (the image item spans columns x
col_mm); findings are stored as pixel edges. This module converts between the
two, so nothing else has to.
"""

from __future__ import annotations

from collections.abc import Callable

import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from workstation.core.review import FindingState, State
from workstation.ui.review_style import BOX_COLOURS, box_caption, box_pen_style

Box = tuple[float, float, float, float]  # (column0, row0, column1, row1) pixel edges


class FindingBox(QGraphicsRectItem):
    """A drawn finding box; a left click on it selects the finding (pyqtgraph delivers mouseClickEvent)."""

    def __init__(self, rect: QRectF, finding_id: str, on_click: Callable[[str], None]) -> None:
        super().__init__(rect)
        self.finding_id = finding_id
        self._on_click = on_click

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph naming
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self._on_click(self.finding_id)


class EditableBox(pg.ROI):
    """The selected finding's box for a reviewer: drag inside to move, corner handles to resize."""

    def __init__(self, rect: QRectF, bounds: QRectF, state: FindingState) -> None:
        colour, style = BOX_COLOURS[state.state], box_pen_style(state.state, on_peak=True)
        super().__init__(rect.topLeft(), rect.size(), pen=pg.mkPen(colour, width=2, style=style),
                         hoverPen=pg.mkPen(colour, width=3, style=style),
                         handlePen=pg.mkPen(colour), handleHoverPen=pg.mkPen("w"), maxBounds=bounds,
                         rotatable=False, resizable=False, removable=False)
        self.finding_id = state.finding_id
        for corner, opposite in (([0, 0], [1, 1]), ([1, 0], [0, 1]), ([0, 1], [1, 0]), ([1, 1], [0, 0])):
            self.addScaleHandle(corner, opposite)

    def rect_mm(self) -> QRectF:
        pos, size = self.pos(), self.size()
        return QRectF(pos.x(), pos.y(), size.x(), size.y())


class FindingOverlay(QObject):
    """Draws one frame's boxes into a ViewBox; emits the edits a reviewer makes."""

    boxEdited = Signal(str, object)  # finding id, new box (pixel edges) on the finding's own frame
    boxClicked = Signal(str)

    def __init__(self, viewbox: pg.ViewBox, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewbox = viewbox
        self.spacing = (1.0, 1.0)  # (row_mm, col_mm)
        self.shape = (0, 0)  # (rows, columns)
        self._items: list = []
        self.editor: EditableBox | None = None
        self._rubber: QGraphicsRectItem | None = None

    # ----- pixel <-> view (mm)
    def to_view(self, box: Box) -> QRectF:
        row_mm, col_mm = self.spacing
        c0, r0, c1, r1 = box
        return QRectF(c0 * col_mm, r0 * row_mm, (c1 - c0) * col_mm, (r1 - r0) * row_mm)

    def to_pixels(self, rect: QRectF) -> Box:
        """View rectangle -> pixel edges, clipped to the image."""
        row_mm, col_mm = self.spacing
        rows, cols = self.shape
        rect = rect.normalized()
        clip = lambda value, top: round(min(max(value, 0.0), float(top)), 2)  # noqa: E731
        return (clip(rect.left() / col_mm, cols), clip(rect.top() / row_mm, rows),
                clip(rect.right() / col_mm, cols), clip(rect.bottom() / row_mm, rows))

    def image_rect(self) -> QRectF:
        return self.to_view((0.0, 0.0, float(self.shape[1]), float(self.shape[0])))

    # ----- drawing
    def clear(self) -> None:
        for item in self._items:
            self.viewbox.removeItem(item)
        self._items = []
        self.editor = None

    def draw(self, frame: int, states: list[FindingState], spans: dict[str, tuple[int, int]],
             selected: str | None, editable: bool) -> None:
        """Boxes of every visible finding that spans `frame`; the selected one editable on its own frame."""
        self.clear()
        for state in states:
            if not state.visible:
                continue
            own = state.geometry.frame_index
            first, last = spans.get(state.finding_id, (own, own))
            if not (frame == own or first <= frame <= last):
                continue
            on_peak, chosen = frame == own, state.finding_id == selected
            if chosen and on_peak and editable:
                self._add_editor(state)
            else:
                self._add_box(state, on_peak, chosen)
            self._add_caption(state, on_peak)

    def _add_box(self, state: FindingState, on_peak: bool, chosen: bool) -> None:
        colour = QColor(BOX_COLOURS[state.state])
        if not on_peak:
            colour.setAlpha(170)
        pen = QPen(colour)
        pen.setCosmetic(True)
        pen.setWidthF(3.0 if chosen else 2.0 if on_peak else 1.0)
        pen.setStyle(box_pen_style(state.state, on_peak))
        box = FindingBox(self.to_view(state.geometry.box_px), state.finding_id, self.boxClicked.emit)
        box.setPen(pen)
        box.setZValue(20)
        self._add(box)

    def _add_editor(self, state: FindingState) -> None:
        editor = EditableBox(self.to_view(state.geometry.box_px), self.image_rect(), state)
        editor.setZValue(30)
        editor.sigRegionChangeFinished.connect(self._editor_finished)
        self.editor = editor
        self._add(editor)

    def _add_caption(self, state: FindingState, on_peak: bool) -> None:
        """Above the box on its key slice, below it on the neighbours: two nearby findings rarely collide."""
        colour = BOX_COLOURS[state.state]
        text = box_caption(state) + ("" if on_peak else f" (key slice {state.geometry.frame_index + 1})")
        caption = pg.TextItem(text, color=colour, anchor=(0, 1) if on_peak else (0, 0), fill=pg.mkBrush(0, 0, 0, 150))
        rect = self.to_view(state.geometry.box_px)
        caption.setPos(rect.left(), rect.top() if on_peak else rect.bottom())
        caption.setZValue(31)
        self._add(caption)

    def _add(self, item) -> None:
        self.viewbox.addItem(item)
        self._items.append(item)

    def _editor_finished(self, editor: EditableBox) -> None:
        self.boxEdited.emit(editor.finding_id, self.to_pixels(editor.rect_mm()))

    # ----- the rubber band while a reviewer draws a new box
    def show_rubber_band(self, rect: QRectF | None) -> None:
        if rect is None:
            if self._rubber is not None:
                self.viewbox.removeItem(self._rubber)
                self._rubber = None
            return
        if self._rubber is None:
            pen = QPen(BOX_COLOURS[State.ADDED])
            pen.setCosmetic(True)
            pen.setWidthF(2.0)
            pen.setStyle(Qt.PenStyle.DashLine)
            self._rubber = QGraphicsRectItem()
            self._rubber.setPen(pen)
            self._rubber.setZValue(40)
            self.viewbox.addItem(self._rubber)
        self._rubber.setRect(rect.normalized())

    def box_items(self) -> list[QGraphicsRectItem]:
        return [item for item in self._items if isinstance(item, QGraphicsRectItem)]
