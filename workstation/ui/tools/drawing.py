"""Drawing a new measurement with the mouse: the viewer's mouse hook while a tool is chosen.

Length, ellipse, rectangle and nodule diameter: press, drag, release (the
diameter's short axis starts perpendicular at the middle, half as long, and is
adjusted with its handles). Angle: drag the first arm to the vertex, then click
the end of the second arm. A drag shorter than a few screen pixels is a slip
and draws nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPointF, Qt

from workstation.core.measure import ANGLE, DIAMETER, LENGTH
from workstation.ui.tools.items import MeasurementItem, OutlinedLabel, label_anchor

MIN_DRAG_PX = 4.0  # screen pixels


class DrawingTool:
    """Turns left drags and clicks on the image into the points of a new measurement (view coordinates).

    `finished(kind, points)` is called with the points; `preview(kind, points)` returns the text to show
    while drawing (values as they will be saved), or "" when they cannot be read.
    """

    def __init__(self, viewbox, finished: Callable[[str, list[QPointF]], None],
                 preview: Callable[[str, list[QPointF]], str], context: Callable[[QPointF, object], bool]) -> None:
        self.viewbox = viewbox
        self.kind: str | None = None
        self._finished, self._preview, self._context = finished, preview, context
        self._draft: MeasurementItem | None = None
        self._label: OutlinedLabel | None = None
        self._arm: list[QPointF] | None = None  # angle: the first arm, waiting for the click that ends the second

    # ----- the hook the view box calls
    def drag(self, ev) -> bool:
        if self.kind is None:
            return False
        ev.accept()
        start, here = self.viewbox.mapSceneToView(ev.buttonDownScenePos()), self.viewbox.mapSceneToView(ev.scenePos())
        if self._arm is not None:  # a second drag while an angle waits: its release ends the angle
            points = self._arm + [here]
            self._show(points)
            if ev.isFinish():
                self._complete(points)
            return True
        points = [start, here]
        if ev.isFinish():
            self._clear_draft()
            if (ev.scenePos() - ev.buttonDownScenePos()).manhattanLength() < MIN_DRAG_PX:
                return True
            if self.kind == ANGLE:
                self._arm = points
                self._show(points)
            else:
                self._finished(self.kind, points)
        else:
            self._show(points)
        return True

    def click(self, ev) -> bool:
        if ev.button() == Qt.MouseButton.RightButton:
            return self._context(self.viewbox.mapSceneToView(ev.scenePos()), ev)
        if self.kind is None or ev.button() != Qt.MouseButton.LeftButton or self._arm is None:
            return False
        ev.accept()
        self._complete(self._arm + [self.viewbox.mapSceneToView(ev.scenePos())])
        return True

    def hover(self, scene_pos) -> None:
        """The mouse moved: an angle waiting for its second arm follows it."""
        if self._arm is not None:
            self._show(self._arm + [self.viewbox.mapSceneToView(scene_pos)])

    # ----- state
    def set_kind(self, kind: str | None) -> None:
        self.cancel()
        self.kind = kind

    def cancel(self) -> None:
        self._arm = None
        self._clear_draft()

    @property
    def drawing(self) -> bool:
        return self._arm is not None or self._draft is not None

    def _complete(self, points: list[QPointF]) -> None:
        self._arm = None
        self._clear_draft()
        self._finished(ANGLE, points)

    def _show(self, points: list[QPointF]) -> None:
        """The draft outline and its values while drawing (an angle's first arm reads as a length)."""
        kind = (LENGTH if len(points) == 2 else ANGLE) if self.kind == ANGLE else self.kind
        shape = self._diameter_preview(points) if kind == DIAMETER else list(points)
        if self._draft is None or self._draft.kind != kind:
            self._clear_draft()
            self._draft = MeasurementItem("", kind, shape, editable=False)
            self._label = OutlinedLabel()
            self.viewbox.addItem(self._draft)
            self.viewbox.addItem(self._label)
        self._draft.prepareGeometryChange()
        self._draft._fixed = shape  # noqa: SLF001 - the draft's own outline
        self._draft.update()
        self._label.set_text(self._preview(kind, list(points)))
        self._label.setPos(label_anchor(kind, shape))

    @staticmethod
    def _diameter_preview(points: list[QPointF]) -> list[QPointF]:
        a, b = points
        middle, half = (a + b) / 2, (b - a) / 4
        normal = QPointF(-half.y(), half.x())
        return [a, b, middle - normal, middle + normal]

    def _clear_draft(self) -> None:
        for item in (self._draft, self._label):
            if item is not None:
                self.viewbox.removeItem(item)
        self._draft = self._label = None
