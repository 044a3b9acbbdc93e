"""Connects the measurement session (services) to the toolbar, the slice viewer and the measurements panel.

Like the review controller it keeps no state of its own beyond the selection:
after each entry the items and the list are redrawn from the session (the
fold of the stored entries). A refusal (role, another reader's measurement,
an ROI on a frame not decoded) becomes a message, never an exception escaping
a slot. Keys: L length, G angle, E ellipse, T rectangle, D nodule diameter,
M measure the selected AI / reviewer box, H (or the tool's key again) back to
pan; Shift+Del deletes, Ctrl+Alt+Z / Ctrl+Alt+Shift+Z undo and redo (Ctrl+Z
and Del belong to the review).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QToolBar

from workstation.core.measure import (
    ANGLE, DIAMETER, ELLIPSE, LENGTH, NAMES, RECTANGLE, MeasureError, default_short_axis,
)
from workstation.core.roles import PermissionDenied
from workstation.ui.measurements_panel import MeasurementsPanel
from workstation.ui.tools.drawing import DrawingTool
from workstation.ui.tools.items import WARNING_COLOUR, MeasurementItem, OutlinedLabel, label_anchor

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the service brings the store (SQLCipher, keyring): loaded when the window is made, not imported
    from workstation.services.measurements import MeasurementSession

TOOL_KEYS = ((LENGTH, "L"), (ANGLE, "G"), (ELLIPSE, "E"), (RECTANGLE, "T"), (DIAMETER, "D"))


class MeasureController(QObject):
    changed = Signal()  # items and list redrawn (after an entry, another series or another slice)

    def __init__(self, window: QMainWindow, viewer, work_session=None, notify: Callable[[str], None] = lambda _t: None,
                 beside: QDockWidget | None = None, findings_table=None) -> None:
        super().__init__(window)
        self.window, self.viewer, self.notify = window, viewer, notify
        from workstation.services.measurements import MeasurementService

        self.service = MeasurementService(work_session.store if work_session is not None else None)
        self.session: MeasurementSession | None = None
        self.selected: str | None = None
        self.context: QMenu | None = None  # the last right-click menu on a finding box
        self.items: dict[str, MeasurementItem] = {}
        self.labels: dict[str, OutlinedLabel] = {}
        self.tool = DrawingTool(viewer.viewbox, self._drawn, self._preview, self._context_menu)
        viewer.viewbox.mouse_hook = self.tool
        viewer.view.scene().sigMouseMoved.connect(self.tool.hover)
        viewer.volumeChanged.connect(self._series_shown)
        viewer.frameChanged.connect(lambda _k: self._draw())
        viewer.viewbox.sigRangeChanged.connect(lambda *_: self._layout_labels())  # labels keep their screen size
        self._numbers: dict[str, int] = {}
        viewer.overlaysChanged.connect(self._findings_changed)
        viewer.overlaysChanged.connect(self._guard_editor)
        self.panel = MeasurementsPanel()
        self._build_actions()
        self.panel.set_actions(self.delete_action, self.undo_action, self.redo_action)
        self.panel.measurementActivated.connect(lambda mid: self.select(mid, jump=True))
        self.dock = QDockWidget("Measurements", window)
        self.dock.setObjectName("Measurements")
        self.dock.setWidget(self.panel)
        self.dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.dock)
        if beside is not None:
            window.splitDockWidget(beside, self.dock, Qt.Orientation.Vertical)
        review_panel = getattr(getattr(window, "ai_panel", None), "review", None)
        self._draw_box = getattr(review_panel, "draw_action", None)  # the reviewer's "Draw box" (B): one mode at a time
        if self._draw_box is not None:
            self._draw_box.toggled.connect(lambda on: self.choose_tool(None) if on else None)
        if findings_table is not None:  # "Measure" in the findings list's context menu
            findings_table.addAction(self.measure_action)
            findings_table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.panel.set_note("" if self.service.saved else f"Not saved: {_not_saved().split(': ', 1)[1]}.",
                            error=not self.service.saved)
        self._update_actions()

    # ----- actions, toolbar, menu
    def _build_actions(self) -> None:
        self.tool_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        for kind, key in TOOL_KEYS:
            action = QAction(NAMES[kind], self.window)
            action.setShortcut(QKeySequence(key))
            action.setCheckable(True)
            action.setToolTip(f"{NAMES[kind]} ({key}): drag on the image" + (
                ", then click the end of the second arm" if kind == ANGLE else ""))
            action.toggled.connect(lambda on, k=kind: self._tool_toggled(k, on))
            group.addAction(action)
            self.tool_actions[kind] = action
        self.pan_action = self._action("Pan (no tool)", "H", "Back to panning: left-drag moves the image", self.choose_tool)
        self.measure_action = self._action("Measure finding", "M", "Propose the long and short axes of the selected AI "
                                           "or reviewer box from the heatmap region on its key slice", self.measure_finding)
        self.delete_action = self._action("Delete measurement", "Shift+Del", "Delete the selected measurement (yours)",
                                          self.delete)
        self.undo_action = self._action("Undo measurement", "Ctrl+Alt+Z", "Undo your last measurement entry", self.undo)
        self.redo_action = self._action("Redo measurement", "Ctrl+Alt+Shift+Z", "Redo the measurement entry undone",
                                        self.redo)
        self.toolbar = QToolBar("Measure", self.window)
        self.toolbar.setObjectName("Measure")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        short = {LENGTH: "Length", ANGLE: "Angle", ELLIPSE: "Ellipse", RECTANGLE: "Rectangle", DIAMETER: "Diameter"}
        for kind, action in self.tool_actions.items():
            action.setIconText(short[kind])  # the toolbar's text; the menu shows the full name
        self.pan_action.setIconText("Pan")
        self.measure_action.setIconText("Measure box")
        for action in (self.pan_action, *self.tool_actions.values(), self.measure_action):
            self.toolbar.addAction(action)
        self.window.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.toolbar)
        menu = QMenu("&Measure", self.window)
        for action in (self.pan_action, *self.tool_actions.values()):
            menu.addAction(action)
        menu.addSeparator()
        for action in (self.measure_action, self.delete_action, self.undo_action, self.redo_action):
            menu.addAction(action)
        bar = self.window.menuBar()
        menus = bar.actions()
        bar.insertMenu(menus[-1], menu) if menus else bar.addMenu(menu)  # before Help
        self.menu = menu
        self.window.addActions([self.pan_action, *self.tool_actions.values(), self.measure_action, self.delete_action,
                                self.undo_action, self.redo_action])

    def _action(self, text: str, key: str, tip: str, slot) -> QAction:
        action = QAction(text, self.window)
        action.setShortcut(QKeySequence(key))
        action.setToolTip(f"{tip} ({key})")
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def choose_tool(self, kind: str | None = None) -> None:
        """Pick a drawing tool (None: pan)."""
        if kind is None:
            for action in self.tool_actions.values():
                action.setChecked(False)
        else:
            self.tool_actions[kind].setChecked(True)

    def _tool_toggled(self, kind: str, on: bool) -> None:
        if on:
            self.tool.set_kind(kind)
            if self._draw_box is not None and self._draw_box.isChecked():
                self._draw_box.setChecked(False)
        elif self.tool.kind == kind:
            self.tool.set_kind(None)
        self.viewer.view.setCursor(Qt.CursorShape.CrossCursor if self.tool.kind else Qt.CursorShape.ArrowCursor)
        if self.tool.kind is None:
            self.viewer.select_finding(self.viewer.selected_id)  # redrawn: a reviewer's box takes drags again
        self._guard_editor()

    def _guard_editor(self) -> None:
        """While a tool is chosen, a drag inside the reviewer's editable AI box draws the measurement instead of
        moving the box (measuring a nodule must not move its finding)."""
        editor = self.viewer.overlay.editor
        if editor is not None and self.tool.kind is not None:
            editor.setEnabled(False)  # pyqtgraph then passes it over for hover and drags (its handles too)

    # ----- the series on screen
    def _series_shown(self) -> None:
        display_set = self.viewer.display_set
        if display_set is None:
            return
        uid = display_set.series.series_instance_uid
        if self.session is None or self.session.series.series_instance_uid != uid or \
                len(self.session.series.frames) != len(display_set.frames):
            self.tool.cancel()
            self.selected = None
            try:
                self.session = self.service.session(display_set)
            except Exception as exc:  # noqa: BLE001 - the viewer stays usable
                log.exception("measurements could not be read")
                self.session = None
                self._message(f"Saved measurements could not be read: {exc}", error=True)
        self._refresh()

    def _image(self, frame: int) -> np.ndarray | None:
        volume = self.viewer.volume
        if volume is None or volume.is_colour or not volume.loaded[frame]:
            return None
        return volume.array[frame]

    # ----- coordinates
    def _to_px(self, points: list[QPointF]) -> list[tuple[float, float]]:
        row_mm, col_mm = self.viewer.volume.pixel_spacing
        return [(p.x() / col_mm, p.y() / row_mm) for p in points]

    def _to_view(self, points) -> list[QPointF]:
        row_mm, col_mm = self.viewer.volume.pixel_spacing
        return [QPointF(x * col_mm, y * row_mm) for x, y in points]

    # ----- drawing new ones
    def _points_of(self, kind: str, points: list[QPointF]) -> list[tuple[float, float]]:
        px = self._to_px(points)
        if kind == DIAMETER and len(px) == 2:
            px = default_short_axis(px[0], px[1], self.session.calibration(self.viewer.frame_index, px))
        return px

    def _preview(self, kind: str, points: list[QPointF]) -> str:
        if self.session is None:
            return ""
        try:
            frame = self.viewer.frame_index
            return self.session.reading(kind, frame, self._points_of(kind, points), self._image(frame)).text
        except (MeasureError, ValueError):
            return ""

    def _drawn(self, kind: str, points: list[QPointF]) -> None:
        frame = self.viewer.frame_index
        shown = self._attempt(lambda s: s.add(kind, frame, self._points_of(kind, points), self._image(frame)))
        if shown is not self._FAILED:
            self.selected = shown.measurement.measurement_id
            self._refresh()
            warning = self._warning(shown)
            self._message(f"#{shown.number} {NAMES[kind]}: {shown.measurement.text.replace(chr(10), '; ')}"
                          + (f" ({warning})" if warning else ""))

    def _warning(self, shown) -> str:
        if self.session is None:
            return ""
        try:
            return self.session.reading(shown.measurement.kind, shown.measurement.frame_index,
                                        shown.measurement.points, self._image(shown.measurement.frame_index)).warning
        except (MeasureError, ValueError):
            return ""

    # ----- editing, deleting, undo
    def _item_moved(self, item: MeasurementItem) -> None:
        """While a handle is dragged: the values follow."""
        label = self.labels.get(item.measurement_id)
        if label is None or self.session is None:
            return
        points = item.points()
        label.setPos(label_anchor(item.kind, points))
        try:
            label.set_text(self.session.reading(item.kind, self.viewer.frame_index, self._to_px(points),
                                                self._image(self.viewer.frame_index)).text)
        except (MeasureError, ValueError):
            pass

    def _item_edited(self, item: MeasurementItem) -> None:
        """A handle (or the whole item) was released: one edit entry, after the mouse event is over (the
        items are redrawn from the session, this one included)."""
        points, measurement_id = self._to_px(item.points()), item.measurement_id
        QTimer.singleShot(0, lambda: self._commit_edit(measurement_id, points))

    def _commit_edit(self, measurement_id: str, points) -> None:
        item = self.items.get(measurement_id)
        if item is None:
            return
        self.selected = item.measurement_id
        shown = self._attempt(lambda s: s.edit(item.measurement_id, points, self._image(self.viewer.frame_index)))
        self._refresh()
        if shown is not self._FAILED:
            self._message(f"#{shown.number} changed: {shown.measurement.text.replace(chr(10), '; ')}")

    def delete(self) -> None:
        if self.selected is None:
            self._message("Select a measurement first (click it on the image or in the list).", error=True)
            return
        chosen = self.selected
        if self._attempt(lambda s: s.delete(chosen)) is not self._FAILED:
            self.selected = None
            self._refresh()
            self._message(f"Measurement deleted ({self.undo_action.shortcut().toString()} brings it back)")

    def undo(self) -> None:
        self._revert("Undone", lambda s: s.undo())

    def redo(self) -> None:
        self._revert("Redone", lambda s: s.redo())

    def _revert(self, done: str, call) -> None:
        entry = self._attempt(call)
        if entry is self._FAILED:
            return
        self._refresh()
        self._message(f"{done}: {entry.action.value} of a measurement")

    _FAILED = object()

    def _attempt(self, call):
        if self.session is None:
            self._message("Open a series first.", error=True)
            return self._FAILED
        if not self.service.may_measure:
            self._message(f"Not allowed: {self.service.user.login} has no role that may measure; nothing was saved.",
                          error=True)
            return self._FAILED
        try:
            return call(self.session)
        except PermissionDenied as exc:
            self._message(f"Not allowed: {exc}. Nothing was saved.", error=True)
        except (MeasureError, ValueError, KeyError) as exc:
            self._message(f"Not saved: {exc}", error=True)
        except Exception as exc:  # noqa: BLE001 - a store failure: say so, keep the window
            log.exception("measurement not saved")
            self._message(f"Not saved: the store could not write it ({exc})", error=True)
        self._refresh()
        return self._FAILED

    # ----- "Measure" on an AI or reviewer box
    def measure_finding(self, finding_id: str | None = None) -> None:
        viewer = self.viewer
        finding_id = finding_id or viewer.selected_id
        state = next((s for s in viewer.states if s.finding_id == finding_id and s.visible), None)
        if state is None:
            self._message("Select an AI finding or a reviewer's box first (in the list, on the image or with N).",
                          error=True)
            return
        frame, box = state.geometry.frame_index, state.geometry.box_px
        heat = viewer.result.heatmap[frame] if viewer.result is not None else self._stored_heat(frame)

        def propose(session: MeasurementSession):
            points, source = session.propose(frame, box, heat, self._image(frame))
            return session.add(DIAMETER, frame, points, self._image(frame), finding_id=state.finding_id), source

        result = self._attempt(propose)
        if result is self._FAILED:
            return
        shown, source = result
        self.selected = shown.measurement.measurement_id
        viewer.show_frame(frame)
        self._refresh()
        where = "the heatmap region" if source == "heatmap" else "the image (no heatmap: half-maximum region)"
        self._message(f"Finding #{state.number}: {shown.measurement.text.replace(chr(10), '; ')} from {where}; "
                      "drag the handles to adjust")

    def _stored_heat(self, frame: int) -> np.ndarray | None:
        """A reopened study's run: its heatmap as the store kept it (when it matches the series on screen)."""
        viewer = self.viewer
        try:
            heat = self.service.stored_heatmap(viewer.display_set.series.series_instance_uid, viewer.model_text)
        except Exception:  # noqa: BLE001 - then the image is measured instead, and the message says so
            log.exception("stored heatmap not read")
            return None
        if heat is None or heat.shape[0] != viewer.volume.frame_count or heat.shape[1:] != viewer.volume.array.shape[1:3]:
            return None
        return heat[frame]

    def _context_menu(self, point: QPointF, ev) -> bool:
        """Right click (without a drag) on a finding box: a menu offering "Measure"."""
        viewer = self.viewer
        if viewer.volume is None:
            return False
        k = viewer.frame_index
        row_mm, col_mm = viewer.volume.pixel_spacing
        for state in viewer.states:
            c0, r0, c1, r1 = state.geometry.box_px
            first, last = viewer.spans.get(state.finding_id, (state.geometry.frame_index,) * 2)
            on_frame = state.geometry.frame_index == k or first <= k <= last
            if state.visible and on_frame and QRectF(c0 * col_mm, r0 * row_mm, (c1 - c0) * col_mm,
                                                     (r1 - r0) * row_mm).contains(point):
                ev.accept()
                viewer.findingClicked.emit(state.finding_id)  # selected the way a left click selects it
                if self.context is not None:
                    self.context.deleteLater()  # the previous one
                menu = QMenu(viewer)
                menu.addAction(f"Measure finding #{state.number}", lambda fid=state.finding_id: self.measure_finding(fid))
                menu.popup(ev.screenPos().toPoint())
                self.context = menu
                return True
        return False

    # ----- showing
    def select(self, measurement_id: str | None, jump: bool = False) -> None:
        self.selected = measurement_id
        self.panel.select(measurement_id)
        if jump and measurement_id is not None and self.session is not None:
            shown = self.session.get(measurement_id)
            xs, ys = [p[0] for p in shown.measurement.points], [p[1] for p in shown.measurement.points]
            frame = self.session.frame_of(shown.measurement)
            if frame is not None:
                self.viewer.focus_box(frame, (min(xs), min(ys), max(xs), max(ys)))
        self._draw()
        self._update_actions()

    def _refresh(self) -> None:
        rows = []
        if self.session is not None:
            ids = {s.measurement.measurement_id for s in self.session.measurements()}
            if self.selected not in ids:
                self.selected = None
            numbers = {s.finding_id: s.number for s in self.viewer.states}
            for shown, frame in self.session.here():
                m = shown.measurement
                of = f"|finding #{numbers[m.finding_id]}" if m.finding_id in numbers else ""
                rows.append((m.measurement_id, shown.number, m.kind + of, m.text, frame, shown.user))
        self.panel.show_rows(rows, self.selected)
        self._draw()
        self._update_actions()

    def _draw(self) -> None:
        for item in [*self.items.values(), *self.labels.values()]:
            self.viewer.viewbox.removeItem(item)
        self.items, self.labels = {}, {}
        if self.session is None or self.viewer.volume is None:
            self.changed.emit()
            return
        frame = self.viewer.frame_index
        for shown, where in self.session.here():
            m = shown.measurement
            if where != frame:
                continue
            points = self._to_view(m.points)
            item = MeasurementItem(m.measurement_id, m.kind, points, editable=shown.user == self.service.user.login)
            item.set_selected(m.measurement_id == self.selected)
            item.sigRegionChanged.connect(self._item_moved)
            item.sigRegionChangeFinished.connect(self._item_edited)
            item.sigClicked.connect(lambda it, _ev: QTimer.singleShot(0, lambda: self.select(it.measurement_id)))
            text = f"#{shown.number} {m.text}" + ("\n(px: no calibration)" if m.unit == "px" else "")
            label = OutlinedLabel(text, WARNING_COLOUR if m.unit == "px" else None)
            self.viewer.viewbox.addItem(item)
            self.viewer.viewbox.addItem(label)
            self.items[m.measurement_id], self.labels[m.measurement_id] = item, label
        self._layout_labels()
        self.changed.emit()

    def _layout_labels(self) -> None:
        """Each label beside its measurement, inside the view and clear of the others (again after a zoom or pan:
        the labels keep their size on screen while the image scales)."""
        for measurement_id, label in self.labels.items():
            item = self.items[measurement_id]
            points = item.points()
            label.setPos(label_anchor(item.kind, points))
            self._keep_inside(label, item.kind, points)
        self._unstack(list(self.labels.values()))

    def _unstack(self, labels: list[OutlinedLabel]) -> None:
        """Labels that would cover one another move down below the one they hit (measurements close together)."""
        placed: list = []
        for label in sorted(labels, key=lambda lab: _scene_box(lab).top()):
            box = _scene_box(label)
            for other in placed:
                if box.intersects(other):
                    here = self.viewer.viewbox.mapViewToScene(label.pos())
                    label.setPos(self.viewer.viewbox.mapSceneToView(QPointF(here.x(), here.y() + other.bottom() - box.top() + 2)))
                    box = _scene_box(label)
            placed.append(box)

    def _keep_inside(self, label: OutlinedLabel, kind: str, points: list[QPointF]) -> None:
        """Values that would run off the right edge of the view move left (they stay below their point)."""
        view, box = self.viewer.viewbox.sceneBoundingRect(), _scene_box(label)
        overflow = box.right() - view.right()
        if overflow > 0:
            shift = max(0.0, min(overflow, box.left() - view.left()))
            here = self.viewer.viewbox.mapViewToScene(label.pos())
            label.setPos(self.viewer.viewbox.mapSceneToView(QPointF(here.x() - shift, here.y())))

    def _findings_changed(self) -> None:
        """The findings' numbers name the boxes a measurement was proposed from: the list follows them."""
        numbers = {s.finding_id: s.number for s in self.viewer.states}
        if numbers != self._numbers:
            self._numbers = numbers
            if self.session is not None and any(m.finding_id for m in (s.measurement for s in self.session.measurements())):
                self._refresh()

    def _update_actions(self) -> None:
        session = self.session
        mine = session is not None and self.selected is not None and session.mine(self.selected)
        self.delete_action.setEnabled(mine)
        undo = session.undo_target() if session is not None else None
        redo = session.redo_target() if session is not None else None
        self.undo_action.setEnabled(undo is not None)
        self.redo_action.setEnabled(redo is not None)
        self.undo_action.setText(f"Undo measurement {undo.action.value}" if undo else "Undo measurement")
        self.redo_action.setText(f"Redo measurement {redo.action.value}" if redo else "Redo measurement")

    def _message(self, text: str, error: bool = False) -> None:
        note = "" if self.service.saved else f" (not saved: {_not_saved().split(': ', 1)[1]})"
        self.panel.set_note(text + note, error)
        self.notify(text)

    def clear(self) -> None:
        self.tool.cancel()
        self.session = None
        self._refresh()


def _scene_box(label: OutlinedLabel) -> QRectF:
    """Where a label is on the scene, in screen pixels (it ignores the view's zoom, so its own rectangle is in
    pixels; Qt's sceneBoundingRect would scale it by the zoom)."""
    return label.boundingRect().translated(label.scenePos())


def _not_saved() -> str:
    from workstation.services.measurements import NOT_SAVED

    return NOT_SAVED
