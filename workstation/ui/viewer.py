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
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QComboBox, QGraphicsRectItem, QHBoxLayout, QLabel, QSlider, QToolButton, QVBoxLayout, QWidget

from workstation.core.findings import Finding, InferenceResult
from workstation.core.review import FindingState, derive_states
from workstation.core.study import DisplaySet
from workstation.core.volume import Volume, slice_normal
from workstation.core.windowing import CT_PRESETS, WindowLevel
from workstation.render.overlay import colour_heatmap, heat_lut
from workstation.render.windowing import WindowRenderer
from workstation.services import windows
from workstation.ui.finding_overlay import FindingOverlay

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

ZOOM_STEP = 1.25
PAGE_STEP = 10


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

    def wheelEvent(self, ev, axis=None):  # noqa: N802 - Qt naming
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        ev.accept()
        self.sigScroll.emit(-1 if ev.delta() > 0 else 1)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - Qt naming
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


class CornerText(QLabel):
    def __init__(self, parent: QWidget, alignment: Qt.AlignmentFlag) -> None:
        super().__init__(parent)
        self.setAlignment(alignment)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setStyleSheet("color: #f0f0c8; background: transparent; font-family: 'DejaVu Sans'; font-size: 10pt;")
        self.setTextFormat(Qt.TextFormat.PlainText)


class SliceViewer(QWidget):
    """Shows one display set's Volume; frames appear as they are decoded."""

    frameChanged = Signal(int)
    windowChanged = Signal(object)
    boxEdited = Signal(str, object)  # finding id, new box (pixel edges) - queued: after the mouse release
    boxDrawn = Signal(int, object)  # frame, new box (pixel edges) drawn in draw mode
    findingClicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display_set: DisplaySet | None = None
        self.volume: Volume | None = None
        self.frame_index = 0
        self.window: WindowLevel | None = None
        self.initial_window: WindowLevel | None = None
        self._renderer: WindowRenderer | None = None
        self._cursor_text = ""
        self._kept_window: WindowLevel | None = None
        self.result: InferenceResult | None = None  # the live run: heatmap (absent for a stored run)
        self.model_text = ""  # whose findings are shown, e.g. "nodule-detector:1.0.0"
        self.states: list[FindingState] = []
        self.spans: dict[str, tuple[int, int]] = {}  # finding id -> first and last frame the model saw it on
        self.selected_id: str | None = None
        self.editable = False
        self.heatmap_visible = True
        self.heatmap_opacity = 0.5
        self._heat_lut = heat_lut(self.heatmap_opacity)
        self._build()

    # ----- construction
    def _build(self) -> None:
        self.view = pg.GraphicsView(background="k")
        self.viewbox = SliceViewBox()
        self.view.setCentralItem(self.viewbox)
        self.image_item = pg.ImageItem()
        self.viewbox.addItem(self.image_item)
        self.heat_item = pg.ImageItem()
        self.heat_item.setZValue(10)
        self.viewbox.addItem(self.heat_item)
        self.viewbox.sigScroll.connect(lambda step: self.step(step))
        self.viewbox.sigWindowDrag.connect(self._drag_window)
        self.viewbox.sigRangeChanged.connect(lambda *_: self._update_text())
        self.viewbox.sigBoxDrawing.connect(lambda rect: self.overlay.show_rubber_band(rect))
        self.viewbox.sigBoxDrawn.connect(self._box_drawn)
        self.overlay = FindingOverlay(self.viewbox, self)
        self.overlay.boxEdited.connect(self.boxEdited, Qt.ConnectionType.QueuedConnection)
        self.overlay.boxClicked.connect(self.findingClicked.emit)
        self.view.scene().sigMouseMoved.connect(self._mouse_moved)
        self.view.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.view.setFocusProxy(self)  # a click on the image gives the viewer the keyboard (arrows, presets)

        self.slider = QSlider(Qt.Orientation.Vertical)
        self.slider.setInvertedAppearance(True)  # first slice at the top
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(self.show_frame)

        self.preset_box = QComboBox()
        self.preset_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.preset_box.activated.connect(self._preset_chosen)
        fit = QToolButton(text="Fit")
        fit.setToolTip("Fit image to the view (F)")
        fit.clicked.connect(self.fit)
        reset = QToolButton(text="Reset")
        reset.setToolTip("Fit and restore the opening window (R)")
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

        left, right = Qt.AlignmentFlag.AlignLeft, Qt.AlignmentFlag.AlignRight
        top, bottom = Qt.AlignmentFlag.AlignTop, Qt.AlignmentFlag.AlignBottom
        self.corners = {
            "tl": CornerText(self.view, left | top), "tr": CornerText(self.view, right | top),
            "bl": CornerText(self.view, left | bottom), "br": CornerText(self.view, right | bottom),
        }
        self.message = CornerText(self.view, Qt.AlignmentFlag.AlignCenter)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self._place_corners()

    def _place_corners(self) -> None:
        w, h, margin = self.view.width(), self.view.height(), 6
        for key, label in self.corners.items():
            label.adjustSize()
            x = margin if key[1] == "l" else w - label.width() - margin
            y = margin if key[0] == "t" else h - label.height() - margin
            label.move(max(0, x), max(0, y))
        self.message.adjustSize()
        self.message.move((w - self.message.width()) // 2, (h - self.message.height()) // 2)

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
        self.preset_box.clear()
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

    def frames_ready(self, indices: list[int]) -> None:
        """Called as decoding progresses; the first decoded frame fixes the opening window."""
        if self.volume is None:
            return
        if self.window is None and self.volume.loaded.any():
            self._choose_initial_window()
        if self.frame_index in indices or self.window is not None and not self.volume.loaded[self.frame_index]:
            self._refresh()
        else:
            self._update_text()

    def _choose_initial_window(self) -> None:
        loaded = self.frame_index if self.volume.loaded[self.frame_index] else int(np.argmax(self.volume.loaded))
        if self.volume.is_colour:
            self.initial_window = WindowLevel(127.5, 256, "Colour")
        else:
            self.initial_window = windows.initial_window(self.display_set, self.volume.array[loaded])
        self.window = self._kept_window or self.initial_window
        self._fill_presets()

    def _fill_presets(self) -> None:
        self.preset_box.clear()
        options = windows.presets(self.display_set) if not self.volume.is_colour else []
        if self.initial_window not in options:
            options.insert(0, self.initial_window)
        for window in options:
            self.preset_box.addItem(f"{window.name or 'Custom'}  (W {window.width:g} / L {window.center:g})", window)
        self.preset_box.setEnabled(not self.volume.is_colour)

    def _preset_chosen(self, index: int) -> None:
        window = self.preset_box.itemData(index)
        if window is not None:
            self.set_window(window)

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
        if self.volume is None or self.volume.is_colour:
            return
        self.window = window
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
        """Screen pixels per image pixel (1.0 = one image pixel on one screen pixel)."""
        if self.volume is None:
            return 1.0
        size = self.viewbox.viewPixelSize()[0]
        return float(self.volume.pixel_spacing[1] / size) if size else 1.0

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
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
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
            self.message.setText("")
        else:
            image = np.zeros(volume.array.shape[1:3] + (4,), np.uint8)
            self.message.setText(f"Frame {k + 1} could not be decoded:\n{volume.frame_errors[k]}"
                                 if k in volume.frame_errors else "Loading…")
        self.image_item.setImage(image, autoLevels=False, levels=None)  # 8-bit RGBA is shown as is
        self._draw_overlays()
        self._update_text()

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
            return
        result, k = self.result, self.frame_index
        self.heat_item.setVisible(result is not None and self.heatmap_visible)
        if result is not None and self.heatmap_visible:
            rows, cols = self.volume.array.shape[1:3]
            row_mm, col_mm = self.volume.pixel_spacing
            self.heat_item.setImage(colour_heatmap(result.heatmap[k], self._heat_lut), autoLevels=False, levels=None)
            self.heat_item.setRect(QRectF(0, 0, cols * col_mm, rows * row_mm))
        self.overlay.draw(k, self.states, self.spans, self.selected_id, self.editable)

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        if self.volume is None:
            return
        point = self.viewbox.mapSceneToView(scene_pos)
        row_mm, col_mm = self.volume.pixel_spacing
        col, row = int(np.floor(point.x() / col_mm)), int(np.floor(point.y() / row_mm))
        rows, cols = self.volume.array.shape[1:3]
        if 0 <= row < rows and 0 <= col < cols and self.volume.loaded[self.frame_index]:
            value = self.volume.array[self.frame_index, row, col]
            unit = " HU" if self.display_set.series.modality == "CT" and not self.volume.is_colour else ""
            shown = ",".join(str(v) for v in value) if np.ndim(value) else f"{value:g}"
            self._cursor_text = f"({col}, {row}): {shown}{unit}"
        else:
            self._cursor_text = ""
        self._update_text()

    def _update_text(self) -> None:
        if self.display_set is None or self.volume is None:
            return
        series, study = self.display_set.series, self.display_set.series.study
        patient = study.patient
        self.corners["tl"].setText("\n".join(filter(None, [
            patient.name.replace("^", ", ") or "(no name)",
            f"ID {patient.patient_id}" if patient.patient_id else "",
            " ".join(filter(None, [_date(patient.birth_date), patient.sex])),
        ])))
        self.corners["tr"].setText("\n".join(filter(None, [
            study.description, _date(study.date),
            f"Se {series.number if series.number is not None else '-'}: {series.description}".rstrip(": "),
            series.modality + (f"  part {self.display_set.label}" if self.display_set.label else ""),
        ])))
        k, total = self.frame_index, self.volume.frame_count
        loaded = int(self.volume.loaded.sum())
        lines = [f"Im {k + 1}/{total}" + ("" if loaded == total else f"   (loaded {loaded}/{total})")]
        position = self._position_text(k)
        if position:
            lines.append(position)
        if self._cursor_text:
            lines.append(self._cursor_text)
        if self.model_text:
            here = sum(1 for s in self.states if s.visible and k in self._frames_of(s))
            shown = sum(1 for s in self.states if s.visible)
            lines.append(f"AI {self.model_text}: {shown} finding(s), {here} on this slice")
        self.corners["bl"].setText("\n".join(lines))
        window = self.window
        wl = "" if window is None or self.volume.is_colour else f"W {window.width:.0f}  L {window.center:.0f}" + (
            f"  {window.name}" if window.name else "")
        self.corners["br"].setText("\n".join(filter(None, [wl, f"Zoom {self.zoom():.2f}x", self._spacing_text()])))
        self._place_corners()

    def _frames_of(self, state: FindingState) -> range:
        own = state.geometry.frame_index
        first, last = self.spans.get(state.finding_id, (own, own))
        return range(min(first, own), max(last, own) + 1)

    def _spacing_text(self) -> str:
        first = self.display_set.first
        if first.pixel_spacing is None:
            return "pixel spacing unknown"
        row_mm, col_mm = first.pixel_spacing
        where = " (at detector)" if first.spacing_source == "ImagerPixelSpacing" else ""
        return f"{col_mm:.3g} x {row_mm:.3g} mm/px{where}"

    def _position_text(self, k: int) -> str:
        geometry = self.display_set.frames[k].geometry
        if geometry.position is None:
            return ""
        distance = float(np.dot(slice_normal(geometry.orientation), geometry.position)) if geometry.orientation else None
        thickness = self.display_set.frames[k].instance.slice_thickness
        text = f"Pos {distance:.2f} mm" if distance is not None else ""
        return text + (f"   Thk {thickness:g} mm" if thickness else "")


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value
