"""MPR: axial, coronal and sagittal views of one volume with a linked crosshair (sampling in render/mpr.py).

A left click (or drag) in one view moves the crosshair point, and the other
two views move to the planes through it; the wheel scrolls each view along
its own normal; right-drag sets the window of all three; 0-5 are the viewer's
presets. AI boxes are cut by each plane and the heatmap is reformatted like
the image. A thick-slab MIP (5, 10 or 20 mm) helps to find nodules.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPen
from PySide6.QtWidgets import QComboBox, QGraphicsRectItem, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from workstation.core.review import FindingState
from workstation.core.study import DisplaySet
from workstation.core.volume import Volume
from workstation.core.windowing import CT_PRESETS, WindowLevel
from workstation.render.mpr import PLANES, MprGeometry, MprUnavailable, Plane, display_spacing, geometry_problem
from workstation.render.overlay import colour_heatmap, heat_lut
from workstation.render.windowing import WindowRenderer
from workstation.ui.corner_text import ImageAnnotations, window_text
from workstation.ui.review_style import BOX_COLOURS
from workstation.ui.slice_viewbox import SliceViewBox

PLANE_NAMES = ("axial", "coronal", "sagittal")
PLANE_COLOURS = {"axial": QColor(255, 200, 0), "coronal": QColor(0, 200, 255), "sagittal": QColor(255, 90, 210)}
SLABS_MM = (0.0, 5.0, 10.0, 20.0)


class MprViewBox(SliceViewBox):
    """Left click or drag places the crosshair; middle-drag pans; wheel and right-drag as in the viewer."""

    sigPlace = Signal(object)  # QPointF in view (plane mm) coordinates

    def mouseClickEvent(self, ev):  # noqa: N802 - Qt naming
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.sigPlace.emit(self.mapSceneToView(ev.scenePos()))
            return
        super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - Qt naming
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.sigPlace.emit(self.mapSceneToView(ev.scenePos()))
            return
        super().mouseDragEvent(ev, axis)


class MprPane(QWidget):
    """One plane: image, heatmap, crosshair lines, AI boxes, orientation letters and corner text."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.plane: Plane | None = None
        self.image: np.ndarray | None = None  # the reformatted modality values on screen
        self.view = pg.GraphicsView(background="k")
        self.viewbox = MprViewBox()
        self.view.setCentralItem(self.viewbox)
        self.view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.image_item = pg.ImageItem()
        self.heat_item = pg.ImageItem()
        self.heat_item.setZValue(10)
        self.viewbox.addItem(self.image_item)
        self.viewbox.addItem(self.heat_item)
        others = [n for n in PLANE_NAMES if n != name]
        # the vertical line is the plane whose normal runs along this view's x, the horizontal one along its y
        self.lines: dict[str, pg.InfiniteLine] = {}
        u, v = (np.asarray(a, dtype=float) for a in PLANES[name])
        self._vertical = {o: abs(float(np.cross(*(np.asarray(a, dtype=float) for a in PLANES[o])) @ u)) > 0.5 for o in others}
        for other in others:
            line = pg.InfiniteLine(angle=90 if self._vertical[other] else 0, movable=False,
                                   pen=pg.mkPen(PLANE_COLOURS[other], width=1))
            line.setZValue(30)
            self.viewbox.addItem(line)
            self.lines[other] = line
        self.box_items: list[QGraphicsRectItem] = []
        self.position = ""  # where the plane is, e.g. "12.5 H"
        self.sampling: float | None = None  # mm between samples for this view's size and zoom (None: full)
        self._boxes_key: list = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.addWidget(self.view)
        self.setStyleSheet(f"border: 1px solid {PLANE_COLOURS[name].name()};")
        self.annotations = ImageAnnotations(self.view)
        self.corners = self.annotations.corners
        self.message = self.annotations.message
        self.viewbox.sigResized.connect(lambda *_: self.annotations.place())
        self.unit = ""  # " HU" for CT
        self.view.scene().sigMouseMoved.connect(self._hover)

    def _hover(self, scene_pos) -> None:
        """The value under the mouse in this plane as shown (interpolated; the slab's maximum in a MIP)."""
        text = ""
        if self.plane is not None and self.image is not None and self.image_item.isVisible():
            p = self.viewbox.mapSceneToView(scene_pos)
            j, i = int(round(p.y() / self.plane.spacing)), int(round(p.x() / self.plane.spacing))
            if 0 <= j < self.image.shape[0] and 0 <= i < self.image.shape[1]:
                text = f"{self.image[j, i]:g}{self.unit}"
        if text != self.corners["tr"].text():
            self.corners["tr"].setText(text)
            self.annotations.place()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self.annotations.place()

    def show_plane(self, plane: Plane, rgba: np.ndarray, heat: np.ndarray | None) -> None:
        first = self.plane is None
        self.plane = plane
        nv, nu = plane.shape
        s = plane.spacing
        rect = QRectF(-s / 2, -s / 2, nu * s, nv * s)
        self.image_item.setImage(rgba, autoLevels=False, levels=None)
        self.image_item.setRect(rect)
        self.heat_item.setVisible(heat is not None)
        if heat is not None:
            self.heat_item.setImage(heat, autoLevels=False, levels=None)
            self.heat_item.setRect(rect)
        self.annotations.set_markers(plane.labels)
        if first:
            self.viewbox.autoRange(padding=0.0, items=[self.image_item])

    def place_lines(self, point) -> None:
        if self.plane is None:
            return
        x, y, _ = self.plane.coords(point)
        for other, line in self.lines.items():
            value = x if self._vertical[other] else y
            if line.value() != value:
                line.setValue(value)

    def show_boxes(self, boxes: list[tuple[tuple[float, float, float, float], FindingState, bool]]) -> None:
        key = [(rect, state.finding_id, state.state, selected) for rect, state, selected in boxes]
        if key == self._boxes_key:
            return
        self._boxes_key = key
        for item in self.box_items:
            self.viewbox.removeItem(item)
        self.box_items = []
        for (x0, y0, x1, y1), state, selected in boxes:
            item = QGraphicsRectItem(QRectF(x0, y0, x1 - x0, y1 - y0))
            pen = QPen(BOX_COLOURS[state.state], 3 if selected else 2)
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setZValue(20)
            item.setData(0, state.finding_id)
            self.viewbox.addItem(item)
            self.box_items.append(item)


def _plane_axes(name: str):
    return PLANES[name]


class MprView(QWidget):
    """The three linked views of the volume the reader is looking at."""

    windowChanged = Signal(object)
    pointChanged = Signal(object)  # patient (x, y, z) mm of the crosshair

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display_set: DisplaySet | None = None
        self.volume: Volume | None = None
        self.geometry: MprGeometry | None = None
        self.problem = ""
        self.window: WindowLevel | None = None
        self.point = np.zeros(3)
        self.slab_mm = 0.0
        self.active_pane = "axial"  # the view the arrow keys scroll: the last one clicked or scrolled
        self.states: list[FindingState] = []
        self.spans: dict[str, tuple[int, int]] = {}
        self.selected_id: str | None = None
        self.heatmap: np.ndarray | None = None
        self._heat_lut = heat_lut(0.5)
        self._renderer: WindowRenderer | None = None
        self._shown: dict[str, tuple] = {}  # pane -> what it shows (plane origin, window, slab, loaded): skip equal redraws
        self._loaded_seen = -1
        self.panes = {name: MprPane(name) for name in PLANE_NAMES}
        for name, pane in self.panes.items():
            pane.viewbox.sigPlace.connect(lambda pos, n=name: self.place(n, pos))
            pane.viewbox.sigScroll.connect(lambda step, n=name: self.scroll(n, step))
            pane.viewbox.sigWindowDrag.connect(self._drag_window)
            pane.viewbox.sigRangeChanged.connect(lambda *_, n=name: self._zoomed(n))
        self.slab_box = QComboBox()
        for slab in SLABS_MM:
            self.slab_box.addItem("Thin (no slab)" if slab == 0 else f"MIP slab {slab:g} mm", slab)
        self.slab_box.setToolTip("Thick-slab maximum intensity projection in all three planes (nodule search)")
        self.slab_box.currentIndexChanged.connect(lambda i: self.set_slab(self.slab_box.itemData(i)))
        self.title = QLabel()
        self.where = QLabel()  # the crosshair in patient mm: outside the images, so moving it repaints no outlined text
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.addWidget(self.title, 1)
        bar.addWidget(self.where)
        bar.addWidget(QLabel("Slab:"))
        bar.addWidget(self.slab_box)
        grid = QGridLayout()  # axial large on the left, coronal and sagittal stacked on the right
        grid.setSpacing(2)
        grid.addWidget(self.panes["axial"], 0, 0, 2, 1)
        grid.addWidget(self.panes["coronal"], 0, 1)
        grid.addWidget(self.panes["sagittal"], 1, 1)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addLayout(grid, 1)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._poll = QTimer(self)  # frames still decoding: redraw as they arrive
        self._poll.setInterval(300)
        self._poll.timeout.connect(self._check_loading)

    # ----- content
    def show_volume(self, display_set: DisplaySet, volume: Volume, window: WindowLevel | None, point=None) -> str:
        """Show the volume's three planes through `point` (default: its centre); the refusal reason, or ''."""
        self.display_set, self.volume, self.window = display_set, volume, window
        self.problem = geometry_problem(display_set, volume) or ""
        self.geometry = None
        if not self.problem:
            try:
                self.geometry = MprGeometry(volume)
            except MprUnavailable as exc:
                self.problem = str(exc)
        self._shown.clear()
        for pane in self.panes.values():
            pane.plane, pane.sampling = None, None
            pane.message.setText(f"No MPR for this series:\n{self.problem}" if self.problem else "")
            pane.annotations.place()
        if self.problem:
            self.title.setText(f"MPR not available: {self.problem}")
            for pane in self.panes.values():
                pane.image_item.clear()
                pane.heat_item.clear()
                pane.show_boxes([])
                pane.annotations.set_markers(None)
            self._poll.stop()
            return self.problem
        self._renderer = WindowRenderer(volume.array.dtype, invert=display_set.first.pixel.inverted)
        for pane in self.panes.values():
            pane.unit = " HU" if display_set.series.modality == "CT" else ""
        self.point = self.geometry.clamp(self.geometry.center if point is None else point)
        series = display_set.series
        self.title.setText(f"MPR  {series.modality} {series.description or ''}  "
                           f"({volume.frame_count} slices, shown at {self.geometry.spacing:.2f} mm)")
        self._loaded_seen = volume.loaded_count
        if volume.missing_frames:
            self._poll.start()
        self.refresh()
        return ""

    def set_window(self, window: WindowLevel | None) -> None:
        if window is None or window == self.window:
            return
        self.window = window
        self.refresh()
        self.windowChanged.emit(window)

    def set_slab(self, slab_mm: float) -> None:
        self.slab_mm = float(slab_mm or 0.0)
        index = self.slab_box.findData(self.slab_mm)
        if index >= 0 and index != self.slab_box.currentIndex():
            self.slab_box.setCurrentIndex(index)
        self.refresh()

    def set_findings(self, states: list[FindingState], spans: dict[str, tuple[int, int]], selected_id: str | None,
                     heatmap: np.ndarray | None) -> None:
        """The AI boxes and heatmap of the series (the viewer's, so both always agree)."""
        if heatmap is not None and self.volume is not None and heatmap.shape != self.volume.array.shape[:3]:
            heatmap = None
        changed = heatmap is not self.heatmap
        self.states, self.spans, self.selected_id, self.heatmap = list(states), dict(spans), selected_id, heatmap
        if changed:
            self._shown.clear()
        self.refresh()

    # ----- navigation
    def place(self, name: str, pos: QPointF) -> None:
        """A click at `pos` (plane mm) in view `name`: the crosshair goes there, the other planes follow."""
        pane = self.panes[name]
        self.active_pane = name
        if self.geometry is None or pane.plane is None:
            return
        self.set_point(pane.plane.point(pos.x(), pos.y()))

    def set_point(self, point) -> None:
        if self.geometry is None:
            return
        self.point = self.geometry.clamp(point)
        self.refresh()
        self.pointChanged.emit(self.point.copy())

    def scroll(self, name: str, steps: int) -> None:
        """Move the `name` plane by whole native slices along its normal (the other views' lines follow)."""
        if self.geometry is None:
            return
        self.active_pane = name
        u, v = (np.asarray(a, dtype=float) for a in _plane_axes(name))
        self.set_point(self.point + steps * self.geometry.step_mm(name) * np.cross(u, v))

    def _drag_window(self, dx: float, dy: float) -> None:
        if self.window is None or self.volume is None:
            return
        sensitivity = max(self.window.width / 300.0, 0.05 if self.volume.array.dtype.kind == "f" else 0.5)
        self.set_window(self.window.dragged(d_center=dy * sensitivity, d_width=dx * sensitivity))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt naming
        key = event.key()
        if Qt.Key.Key_1 <= key <= Qt.Key.Key_5 and self.display_set is not None and self.display_set.series.modality == "CT":
            self.set_window(CT_PRESETS[key - Qt.Key.Key_1])
        elif key == Qt.Key.Key_F:  # fit every view, as in the viewer
            for pane in self.panes.values():
                pane.viewbox.autoRange(padding=0.0, items=[pane.image_item])
        elif key in (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown):
            steps = {Qt.Key.Key_Up: -1, Qt.Key.Key_Down: 1, Qt.Key.Key_PageUp: -10, Qt.Key.Key_PageDown: 10}[key]
            self.scroll(self.active_pane, steps)
        else:
            super().keyPressEvent(event)

    def _zoomed(self, name: str) -> None:
        """Zoom or resize: sample the plane as finely as the screen shows it (full detail when zoomed in)."""
        pane = self.panes[name]
        if self.geometry is None or pane.plane is None or pane.viewbox.width() < 2:
            return
        (x0, x1), _ = pane.viewbox.viewRange()
        sampling = display_spacing(self.geometry.spacing, (x1 - x0) / pane.viewbox.width())
        if sampling != (pane.sampling or self.geometry.spacing):
            pane.sampling = sampling
            self._shown.pop(name, None)
            QTimer.singleShot(0, self.refresh)  # not inside pyqtgraph's range change

    def _check_loading(self) -> None:
        if self.volume is None or not self.volume.missing_frames:
            self._poll.stop()
        if self.volume is None or self.volume.loaded_count == self._loaded_seen:
            return
        self._loaded_seen = self.volume.loaded_count
        self._shown.clear()
        self.refresh()

    # ----- drawing
    def refresh(self) -> None:
        if self.geometry is None or self.window is None or self._renderer is None:
            return
        missing = self.volume.missing_frames
        for pane in self.panes.values():  # an undecoded slice would read as 0 (water): no planes until all are there
            pane.message.setText(f"Loading {self.volume.loaded_count}/{self.volume.frame_count} slices…\n"
                                 "the planes appear when the series is decoded" if missing else "")
            pane.image_item.setVisible(not missing)
            if missing:
                pane.heat_item.setVisible(False)
            pane.annotations.place()
        if missing:
            if not self._poll.isActive():
                self._poll.start()
            return
        for name, pane in self.panes.items():
            plane = self.geometry.plane(name, self.point, pane.sampling)
            key = (tuple(np.round(plane.origin, 4)), plane.spacing, self.window, self.slab_mm)
            if self._shown.get(name) != key:
                self._shown[name] = key
                image = self.geometry.reformat(plane, slab_mm=self.slab_mm)
                pane.image = image
                heat = None
                if self.heatmap is not None:
                    heat = colour_heatmap(self.geometry.reformat(plane, self.heatmap, self.slab_mm, fill=0), self._heat_lut)
                pane.show_plane(plane, self._renderer.render_rgba(image, self.window), heat)
            pane.place_lines(self.point)
            pane.show_boxes(self._boxes(plane))
            self._corner_text(pane, plane)
        p = self.panes
        self.where.setText(f"Crosshair  {p['sagittal'].position}  {p['coronal'].position}  {p['axial'].position} mm")

    def _boxes(self, plane: Plane):
        out = []
        for state in self.states:
            if not state.visible:
                continue
            own = state.geometry.frame_index
            first, last = self.spans.get(state.finding_id, (own, own))
            rect = self.geometry.box_on_plane(plane, state.geometry.box_px, min(first, own), max(last, own))
            if rect is not None:
                out.append((rect, state, state.finding_id == self.selected_id))
        return out

    def _corner_text(self, pane: MprPane, plane: Plane) -> None:
        axis = {"axial": 2, "coronal": 1, "sagittal": 0}[pane.name]
        letter = {"axial": ("F", "H"), "coronal": ("A", "P"), "sagittal": ("R", "L")}[pane.name]
        value = float(self.point[axis])
        pane.position = f"{abs(value):.1f} {letter[int(value >= 0)]}"
        slab = f"MIP {self.slab_mm:g} mm" if self.slab_mm else f"{self.geometry.spacing:.2f} mm voxels"
        shown = sum(1 for item in pane.box_items)
        texts = {"tl": pane.name.capitalize(), "bl": "\n".join(filter(None, [slab, f"AI: {shown} box(es) here" if self.states else ""])),
                 "br": window_text(self.window, False)}
        if any(pane.corners[k].text() != t for k, t in texts.items()):  # placing the labels costs; the image repaints anyway
            for k, t in texts.items():
                pane.corners[k].setText(t)
            pane.annotations.place()
