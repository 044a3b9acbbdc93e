"""The slice viewer: pyqtgraph draws the image; scroll, window/level, zoom, pan and corner text.

Mouse: wheel scrolls slices, Ctrl+wheel zooms, left-drag pans (or draws a
new finding box in draw mode), right-drag changes window (horizontal: width,
vertical: level). Keys: arrows and PageUp/PageDown scroll, Home/End jump, 0
the images' own window, 1-5 the CT presets, +/- zoom, F fit, Ctrl+0 reset
(R is "reject" in the review, so it no longer resets).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QGraphicsRectItem, QHBoxLayout, QLabel, QSlider, QToolButton, QVBoxLayout, QWidget

from workstation.core.findings import Finding, InferenceResult
from workstation.core.orientation import image_edge_labels
from workstation.core.review import FindingState, derive_states
from workstation.core.study import DisplaySet
from workstation.core.volume import Volume
from workstation.core.windowing import CT_PRESETS, WindowLevel
from workstation.render.overlay import colour_heatmap, heat_lut, overlay_planes_rgba
from workstation.render.viewport import zoom_factor
from workstation.render.windowing import WindowRenderer
from workstation.services import windows
from workstation.ui.corner_text import ImageAnnotations, patient_text, position_text, spacing_text, study_text, window_text
from workstation.ui.finding_overlay import FindingOverlay
from workstation.ui.slice_viewbox import SliceViewBox
from workstation.ui.window_box import WindowBox

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

ZOOM_STEP = 1.25
PAGE_STEP = 10
NOT_RESUMED = "Not decoded: loading was stopped.\nSelect the series again to resume."


class SliceViewer(QWidget):
    """Shows one display set's Volume; frames appear as they are decoded."""

    frameChanged = Signal(int)
    windowChanged = Signal(object)
    boxEdited = Signal(str, object)  # finding id, new box (pixel edges) - queued: after the mouse release
    boxDrawn = Signal(int, object)  # frame, new box (pixel edges) drawn in draw mode
    findingClicked = Signal(str)
    volumeChanged = Signal()  # another series (or the same one grown) is shown: layouts, MPR and cine follow
    overlaysChanged = Signal()  # boxes, states, selection or heatmap redrawn: the MPR views redraw theirs

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display_set: DisplaySet | None = None
        self.volume: Volume | None = None
        self.frame_index = 0
        self.window: WindowLevel | None = None  # the one current window: the box, the text and the image follow it
        self.initial_window: WindowLevel | None = None
        self.loading = False  # decoding is under way: missing frames say "Loading…"
        self.loaded_count = 0  # frames decoded as of the last update: the count the status bar shows too
        self._renderer: WindowRenderer | None = None
        self._shown_frame: int | None = None  # the frame whose pixels are on screen (None: a blank placeholder)
        self._cursor: QPointF | None = None  # scene position of the mouse over the image
        self._kept_window: WindowLevel | None = None
        self.result: InferenceResult | None = None  # the live run: heatmap (absent for a stored run)
        self.model_text = ""  # whose findings are shown, e.g. "nodule-detector:1.0.0"
        self.states: list[FindingState] = []
        self.spans: dict[str, tuple[int, int]] = {}  # finding id -> first and last frame the model saw it on
        self.selected_id: str | None = None
        self.editable = False
        self.heatmap_visible = True
        self.heatmap_opacity = 0.5
        self.overlay_planes_visible = True
        self._heat_lut = heat_lut(self.heatmap_opacity)
        self._build()

    # ----- construction
    def _build(self) -> None:
        self.view = pg.GraphicsView(background="k")
        self.viewbox = SliceViewBox()
        self.view.setCentralItem(self.viewbox)
        self.image_item = pg.ImageItem()
        self.viewbox.addItem(self.image_item)
        self.planes_item = pg.ImageItem()  # DICOM overlay planes: a flat colour over the image
        self.planes_item.setZValue(5)
        self.viewbox.addItem(self.planes_item)
        self.heat_item = pg.ImageItem()
        self.heat_item.setZValue(10)
        self.viewbox.addItem(self.heat_item)
        self.viewbox.sigScroll.connect(lambda step: self.step(step))
        self.viewbox.sigWindowDrag.connect(self._drag_window)
        self.viewbox.sigRangeChanged.connect(lambda *_: self._update_text())
        self.viewbox.sigResized.connect(lambda *_: self._update_text())
        self.viewbox.sigBoxDrawing.connect(lambda rect: self.overlay.show_rubber_band(rect))
        self.viewbox.sigBoxDrawn.connect(self._box_drawn)
        self.overlay = FindingOverlay(self.viewbox, self)
        self.overlay.boxEdited.connect(self.boxEdited, Qt.ConnectionType.QueuedConnection)
        self.overlay.boxClicked.connect(self.findingClicked.emit)
        self.view.scene().sigMouseMoved.connect(self._mouse_moved)
        self.view.viewport().installEventFilter(self)  # the mouse leaving the image clears the value shown
        self.view.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.view.setFocusProxy(self)  # a click on the image gives the viewer the keyboard (arrows, presets)

        self.slider = QSlider(Qt.Orientation.Vertical)
        self.slider.setInvertedAppearance(True)  # first slice at the top
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(self.show_frame)

        self.preset_box = WindowBox()
        self.preset_box.windowChosen.connect(self.set_window)
        fit = QToolButton(text="Fit")
        fit.setToolTip("Fit image to the view (F)")
        fit.clicked.connect(self.fit)
        reset = QToolButton(text="Reset")
        reset.setToolTip("Fit and restore the opening window (Ctrl+0)")
        reset.clicked.connect(self.reset)

        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.addWidget(QLabel("Window:"))
        bar.addWidget(self.preset_box, 1)
        bar.addWidget(fit)
        bar.addWidget(reset)
        middle = QHBoxLayout()
        middle.setContentsMargins(0, 0, 0, 0)
        middle.setSpacing(0)
        middle.addWidget(self.view, 1)
        middle.addWidget(self.slider)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addLayout(middle, 1)

        self.annotations = ImageAnnotations(self.view)
        self.corners = self.annotations.corners
        self.message = self.annotations.message
        self.markers = self.annotations.markers
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self._place_corners()

    def _place_corners(self) -> None:
        self.annotations.place()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt naming
        if event.type() == QEvent.Type.Leave and self._cursor is not None:
            self._cursor = None
            self._update_text()
        return super().eventFilter(watched, event)

    # ----- content
    def set_volume(self, display_set: DisplaySet, volume: Volume, start_frame: int, keep_view: bool = False) -> None:
        """Show a (possibly still loading) volume, starting at `start_frame`.

        `keep_view` keeps the window, zoom and pan: the same series, grown by newly arrived images.
        """
        kept_window = self.window if keep_view else None
        kept_range = self.viewbox.viewRange() if keep_view else None
        self.display_set, self.volume = display_set, volume
        self._renderer = WindowRenderer(volume.array.dtype, invert=display_set.first.pixel.inverted)
        self.window = self.initial_window = None
        self._kept_window = kept_window
        self.frame_index = start_frame
        self.loaded_count = volume.loaded_count
        self.preset_box.set_options([])
        self.slider.blockSignals(True)
        self.slider.setRange(0, volume.frame_count - 1)
        self.slider.setValue(start_frame)
        self.slider.blockSignals(False)
        rows, cols = volume.array.shape[1:3]
        row_mm, col_mm = volume.pixel_spacing
        self.image_item.setImage(np.zeros((rows, cols, 4), np.uint8), autoLevels=False, levels=None)
        self.image_item.setRect(QRectF(0, 0, cols * col_mm, rows * row_mm))
        self.overlay.spacing, self.overlay.shape = (row_mm, col_mm), (rows, cols)
        if not keep_view:
            self.result, self.model_text, self.states, self.spans, self.selected_id = None, "", [], {}, None
        if kept_range is None:
            self.fit()
        else:
            self.viewbox.setRange(xRange=kept_range[0], yRange=kept_range[1], padding=0)
        self._refresh()
        self.volumeChanged.emit()

    def frames_ready(self, indices: list[int]) -> None:
        """Called as decoding progresses; the first decoded frame fixes the opening window."""
        if self.volume is None:
            return
        self.loaded_count = self.volume.loaded_count
        if self.window is None and self.volume.loaded.any():
            self._choose_initial_window()
        if self.frame_index in indices or self._shown_frame != self.frame_index and self.volume.loaded[self.frame_index]:
            self._refresh()
        else:
            self._update_text()

    def set_loading(self, loading: bool) -> None:
        """Whether decoding is under way; a stopped load says so on its missing frames instead of "Loading…"."""
        self.loading = loading
        if self.volume is not None:
            self.loaded_count = self.volume.loaded_count
            self._refresh()

    def _choose_initial_window(self) -> None:
        loaded = self.frame_index if self.volume.loaded[self.frame_index] else int(np.argmax(self.volume.loaded))
        if self.volume.is_colour:
            self.initial_window = WindowLevel(127.5, 256, "Colour")
        else:
            self.initial_window = windows.initial_window(self.display_set, self.volume.array[loaded])
        self.window = self._kept_window or self.initial_window
        options = windows.presets(self.display_set) if not self.volume.is_colour else []
        if self.initial_window not in options:
            options.insert(0, self.initial_window)
        self.preset_box.set_options(options, enabled=not self.volume.is_colour)
        self.preset_box.show_window(self.window)

    # ----- navigation
    def show_frame(self, index: int) -> None:
        if self.volume is None:
            return
        index = int(np.clip(index, 0, self.volume.frame_count - 1))
        if index != self.frame_index:
            self.frame_index = index
            self.frameChanged.emit(index)
        if self.slider.value() != index:
            self.slider.setValue(index)
        self._refresh()

    def step(self, delta: int) -> None:
        self.show_frame(self.frame_index + delta)

    def set_window(self, window: WindowLevel) -> None:
        """The only way the window changes (keys, drag, box, reset), so the box, the text and the image agree."""
        if self.volume is None or self.volume.is_colour:
            return
        self.window = window
        self.preset_box.show_window(window)
        self.windowChanged.emit(window)
        self._refresh()

    def _drag_window(self, dx: float, dy: float) -> None:
        if self.window is None:
            return
        sensitivity = max(self.window.width / 300.0, 0.05 if self.volume.array.dtype.kind == "f" else 0.5)
        self.set_window(self.window.dragged(d_center=dy * sensitivity, d_width=dx * sensitivity))

    def apply_preset_key(self, number: int) -> None:
        """0: the opening window; 1-5: lung, mediastinum, abdomen, bone, brain (CT)."""
        if number == 0 and self.initial_window is not None:
            self.set_window(self.initial_window)
        elif 1 <= number <= len(CT_PRESETS) and self.display_set and self.display_set.series.modality == "CT":
            self.set_window(CT_PRESETS[number - 1])

    def zoom_by(self, factor: float) -> None:
        self.viewbox.scaleBy((1 / factor, 1 / factor))

    def zoom(self) -> float:
        """Screen pixels per image pixel (1.0 = one image pixel on one screen pixel): the zoom the text shows."""
        if self.volume is None:
            return 1.0
        self.viewbox.updateMatrix()  # pyqtgraph defers the scene transform to the next paint; items map with it now
        (x0, x1), _ = self.viewbox.viewRange()
        return zoom_factor(self.viewbox.width(), x1 - x0, self.volume.pixel_spacing[1])

    def fit(self) -> None:
        self.viewbox.autoRange(padding=0.0, items=[self.image_item])

    def reset(self) -> None:
        self.fit()
        if self.initial_window is not None:
            self.set_window(self.initial_window)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt naming
        key = event.key()
        steps = {Qt.Key.Key_Up: -1, Qt.Key.Key_Left: -1, Qt.Key.Key_Down: 1, Qt.Key.Key_Right: 1,
                 Qt.Key.Key_PageUp: -PAGE_STEP, Qt.Key.Key_PageDown: PAGE_STEP}
        if key in steps:
            self.step(steps[key])
        elif key == Qt.Key.Key_Home:
            self.show_frame(0)
        elif key == Qt.Key.Key_End and self.volume is not None:
            self.show_frame(self.volume.frame_count - 1)
        elif key == Qt.Key.Key_0 and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.reset()
        elif Qt.Key.Key_0 <= key <= Qt.Key.Key_5:
            self.apply_preset_key(key - Qt.Key.Key_0)
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):  # in a window, its View menu actions take these first
            self.zoom_by(ZOOM_STEP)
        elif key == Qt.Key.Key_Minus:
            self.zoom_by(1 / ZOOM_STEP)
        elif key == Qt.Key.Key_F:
            self.fit()
        else:
            super().keyPressEvent(event)

    # ----- drawing
    def current_image(self) -> np.ndarray | None:
        """The 8-bit image on screen now: grey (rows, columns) or colour (rows, columns, 3)."""
        image = self.image_item.image
        if image is None:
            return None
        return image[..., :3] if self.volume is not None and self.volume.is_colour else image[..., 0]

    def _refresh(self) -> None:
        volume, k = self.volume, self.frame_index
        if volume is None or self._renderer is None:
            return
        if volume.loaded[k] and self.window is not None:
            image = self._renderer.render_rgba(volume.array[k], self.window)
            self._shown_frame = k
            self.message.setText("")
        else:
            image = np.zeros(volume.array.shape[1:3] + (4,), np.uint8)
            self._shown_frame = None
            self.message.setText(f"Frame {k + 1} could not be decoded:\n{volume.frame_errors[k]}"
                                 if k in volume.frame_errors else "Loading…" if self.loading else NOT_RESUMED)
        self.image_item.setImage(image, autoLevels=False, levels=None)  # 8-bit RGBA is shown as is
        self._draw_overlays()
        self._update_text()

    def show_overlay_planes(self, visible: bool) -> None:
        self.overlay_planes_visible = visible
        self._draw_overlays()

    # ----- AI overlays
    def set_result(self, result: InferenceResult | None) -> None:
        """Show a live inference result of this series: heatmap, and its findings as pending boxes."""
        if result is not None and self.volume is not None and result.heatmap.shape[0] != self.volume.frame_count:
            result = None  # made for another version of this series
        self.result = result
        if result is None:
            self.set_findings("", [])
        else:
            self.set_findings(str(result.model), result.findings)

    def set_findings(self, model_text: str, findings: list[Finding], states: list[FindingState] | None = None) -> None:
        """The boxes to draw: the model's findings (their frame spans) and their review states (default pending)."""
        self.model_text = model_text
        self.spans = {f.finding_id: f.frames for f in findings}
        if states is None:
            states = sorted(derive_states(findings, []).values(), key=lambda s: -(s.score or 0.0))
        self.states = list(states)
        if self.selected_id not in {s.finding_id for s in self.states}:
            self.selected_id = None
        self._draw_overlays()
        self._update_text()

    def set_states(self, states: list[FindingState]) -> None:
        self.states = list(states)
        self._draw_overlays()
        self._update_text()

    def select_finding(self, finding_id: str | None) -> None:
        self.selected_id = finding_id
        self._draw_overlays()

    def set_editable(self, editable: bool) -> None:
        """Reviewers get handles on the selected box; everyone else sees boxes only."""
        self.editable = editable
        self._draw_overlays()

    def set_draw_mode(self, on: bool) -> None:
        self.viewbox.draw_mode = on
        self.view.setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor)

    def _box_drawn(self, rect: QRectF) -> None:
        self.overlay.show_rubber_band(None)
        if self.volume is not None:
            self.boxDrawn.emit(self.frame_index, self.overlay.to_pixels(rect))

    def show_heatmap(self, visible: bool) -> None:
        self.heatmap_visible = visible
        self._draw_overlays()

    def set_heatmap_opacity(self, opacity: float) -> None:
        self.heatmap_opacity = float(np.clip(opacity, 0.0, 1.0))
        self._heat_lut = heat_lut(self.heatmap_opacity)
        self._draw_overlays()

    def focus_finding(self, finding: Finding) -> None:
        """Jump to the finding's slice and centre the view on its box (zoom kept)."""
        self.focus_box(finding.frame_index, finding.box_px)

    def focus_box(self, frame_index: int, box_px: tuple[float, float, float, float]) -> None:
        if self.volume is None:
            return
        self.show_frame(frame_index)
        row_mm, col_mm = self.volume.pixel_spacing
        c0, r0, c1, r1 = box_px
        center = QPointF((c0 + c1) / 2 * col_mm, (r0 + r1) / 2 * row_mm)
        (x0, x1), (y0, y1) = self.viewbox.viewRange()
        self.viewbox.setRange(xRange=(center.x() - (x1 - x0) / 2, center.x() + (x1 - x0) / 2),
                              yRange=(center.y() - (y1 - y0) / 2, center.y() + (y1 - y0) / 2), padding=0)

    def box_items(self) -> list[QGraphicsRectItem]:
        return self.overlay.box_items()

    def _draw_overlays(self) -> None:
        if self.volume is None:
            self.overlay.clear()
            self.heat_item.setVisible(False)
            self.planes_item.setVisible(False)
            return
        result, k = self.result, self.frame_index
        rows, cols = self.volume.array.shape[1:3]
        row_mm, col_mm = self.volume.pixel_spacing
        planes = self.volume.overlays.get(k) if self._shown_frame == k and self.overlay_planes_visible else None
        self.planes_item.setVisible(bool(planes))
        if planes:
            self.planes_item.setImage(overlay_planes_rgba(planes, (rows, cols)), autoLevels=False, levels=None)
            self.planes_item.setRect(QRectF(0, 0, cols * col_mm, rows * row_mm))
        self.heat_item.setVisible(result is not None and self.heatmap_visible)
        if result is not None and self.heatmap_visible:
            self.heat_item.setImage(colour_heatmap(result.heatmap[k], self._heat_lut), autoLevels=False, levels=None)
            self.heat_item.setRect(QRectF(0, 0, cols * col_mm, rows * row_mm))
        self.overlay.draw(k, self.states, self.spans, self.selected_id, self.editable)
        self.overlaysChanged.emit()

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        self._cursor = QPointF(scene_pos)
        self._update_text()

    def _cursor_text(self) -> str:
        """The value under the mouse on the frame on screen now; nothing over a frame not yet decoded."""
        if self._cursor is None or self.volume is None or self._shown_frame != self.frame_index:
            return ""
        point = self.viewbox.mapSceneToView(self._cursor)
        row_mm, col_mm = self.volume.pixel_spacing
        col, row = int(np.floor(point.x() / col_mm)), int(np.floor(point.y() / row_mm))
        rows, cols = self.volume.array.shape[1:3]
        if not (0 <= row < rows and 0 <= col < cols):
            return ""
        value = self.volume.array[self.frame_index, row, col]
        unit = " HU" if self.display_set.series.modality == "CT" and not self.volume.is_colour else ""
        shown = ",".join(str(v) for v in value) if np.ndim(value) else f"{value:g}"
        return f"({col}, {row}): {shown}{unit}"

    def _update_text(self) -> None:
        if self.display_set is None or self.volume is None:
            return
        self.corners["tl"].setText(patient_text(self.display_set.series.study.patient))
        self.corners["tr"].setText(study_text(self.display_set))
        k, total, loaded = self.frame_index, self.volume.frame_count, self.loaded_count
        lines = [f"Im {k + 1}/{total}" + ("" if loaded == total else f"   (loaded {loaded}/{total})"),
                 position_text(self.display_set, k), self._cursor_text()]
        if self.model_text:
            here = sum(1 for s in self.states if s.visible and k in self._frames_of(s))
            shown = sum(1 for s in self.states if s.visible)
            lines.append(f"AI {self.model_text}: {shown} finding(s), {here} on this slice")
        self.corners["bl"].setText("\n".join(filter(None, lines)))
        self.corners["br"].setText("\n".join(filter(None, [
            window_text(self.window, self.volume.is_colour), f"Zoom {self.zoom():.2f}x", spacing_text(self.display_set.first)])))
        frame = self.display_set.frames[k]
        self.annotations.set_markers(image_edge_labels(frame.geometry.orientation, frame.instance.patient_orientation))
        self._place_corners()

    def _frames_of(self, state: FindingState) -> range:
        own = state.geometry.frame_index
        first, last = self.spans.get(state.finding_id, (own, own))
        return range(min(first, own), max(last, own) + 1)
