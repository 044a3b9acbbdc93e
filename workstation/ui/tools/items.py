"""What a measurement looks like on the image: a pyqtgraph ROI with one free handle per point, and its values
as outlined text that keeps its size at any zoom.

Items live in the viewer's coordinates (millimetres: x = column x column
spacing); the controller converts to and from the pixel points that are stored.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem

from workstation.core.measure import ANGLE, DIAMETER, ELLIPSE, LENGTH, RECTANGLE
from workstation.ui.corner_text import OUTLINE, OUTLINE_WIDTH

OWN = QColor("#b2ff59")  # the reader's own measurements (unlike any review-state colour)
OTHERS = QColor("#cfd8dc")  # another reader's: shown, not editable
SELECTED_WIDTH, WIDTH = 3.0, 1.6
LABEL_COLOUR = QColor(240, 240, 200)
WARNING_COLOUR = QColor("#ffcc80")


def _pen(colour: QColor, width: float, style=Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(colour, width, style)
    pen.setCosmetic(True)
    return pen


def geometry_path(kind: str, points: list[QPointF]) -> QPainterPath:
    """The outline of a measurement through its points (view coordinates)."""
    path = QPainterPath()
    if kind in (LENGTH, ANGLE, DIAMETER):
        pairs = {LENGTH: [(0, 1)], ANGLE: [(0, 1), (1, 2)], DIAMETER: [(0, 1), (2, 3)]}[kind]
        for i, j in pairs:
            if j < len(points):
                path.moveTo(points[i])
                path.lineTo(points[j])
    elif kind in (ELLIPSE, RECTANGLE) and len(points) >= 2:
        rect = QRectF(points[0], points[1]).normalized()
        path.addEllipse(rect) if kind == ELLIPSE else path.addRect(rect)
    return path


class MeasurementItem(pg.ROI):
    """One measurement: free handles on its points when it is the reader's own (drag a handle, or the
    outline to move it all); another reader's is drawn without handles."""

    def __init__(self, measurement_id: str, kind: str, points: list[QPointF], editable: bool) -> None:
        super().__init__((0, 0), (1, 1), movable=editable, rotatable=False, resizable=False, removable=False,
                         pen=_pen(OWN if editable else OTHERS, WIDTH))
        self.measurement_id, self.kind, self.editable = measurement_id, kind, editable
        self.selected = False
        self._fixed = list(points)
        if editable:
            for point in points:
                self.addFreeHandle(point)
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton if editable else Qt.MouseButton.NoButton)
        self.setZValue(35)

    def points(self) -> list[QPointF]:
        """The points in view coordinates (after any drag of the handles or of the whole item)."""
        if not self.editable:
            return list(self._fixed)
        return [self.mapToParent(handle.pos()) for handle in self.getHandles()]

    def set_selected(self, selected: bool) -> None:
        self.selected = selected
        colour = OWN if self.editable else OTHERS
        self.setPen(_pen(colour, SELECTED_WIDTH if selected else WIDTH))
        self.update()

    def _local_points(self) -> list[QPointF]:
        return [handle.pos() for handle in self.getHandles()] if self.editable else list(self._fixed)

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        px = self.pixelLength(pg.Point(1, 0)) or 1.0
        stroker.setWidth(8 * px)
        path = geometry_path(self.kind, self._local_points())
        return stroker.createStroke(path) + (path if self.kind in (ELLIPSE, RECTANGLE) else QPainterPath())

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt naming
        return self.shape().boundingRect()

    def paint(self, painter: QPainter, *_args) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        dark = _pen(QColor(0, 0, 0, 200), self.currentPen.widthF() + 2.0)
        path = geometry_path(self.kind, self._local_points())
        painter.strokePath(path, dark)  # a dark edge keeps a bright line visible on bone
        painter.strokePath(path, self.currentPen)


class OutlinedLabel(QGraphicsItem):
    """Multi-line text at a point of the image, drawn like the corner text (light fill, dark outline) and
    ignoring the view's zoom, so it stays legible at any magnification."""

    def __init__(self, text: str = "", colour: QColor | None = None, point_size: float = 10.0) -> None:
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setZValue(36)
        self._font = QFont("DejaVu Sans")
        self._font.setPointSizeF(point_size)
        self._colour = colour or LABEL_COLOUR
        self._text = ""
        self._path = QPainterPath()
        self.set_text(text)

    def text(self) -> str:
        return self._text

    def set_text(self, text: str, colour: QColor | None = None) -> None:
        self.prepareGeometryChange()
        self._text = text
        self._colour = colour or self._colour
        self._build()

    def _build(self) -> None:
        metrics = QFontMetricsF(self._font)
        lines = self._text.split("\n") if self._text else []
        self._path = QPainterPath()
        for i, line in enumerate(lines):
            self._path.addText(QPointF(6, 4 + metrics.ascent() + i * metrics.lineSpacing()), self._font, line)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt naming
        return self._path.boundingRect().adjusted(-3, -3, 3, 3)

    def paint(self, painter: QPainter, *_args) -> None:
        if not self._text:
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.strokePath(self._path, QPen(OUTLINE, OUTLINE_WIDTH, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                                            Qt.PenJoinStyle.RoundJoin))
        painter.fillPath(self._path, self._colour)


def label_anchor(kind: str, points: list[QPointF]) -> QPointF:
    """Where the values go: beside the right-most point (the bottom-right corner of an ROI)."""
    if kind in (ELLIPSE, RECTANGLE) and len(points) >= 2:
        rect = QRectF(points[0], points[1]).normalized()
        return rect.bottomRight()
    return max(points, key=lambda p: (p.x(), p.y()))
