"""Current versus prior: two viewers scrolled together by table position, with one window.

The alignment is core.priors.Alignment (registration-free). The reader moves
the prior with the offset box, or unlinks, scrolls one side to the same
anatomy and links again: the offset becomes the difference of the two slices.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QHBoxLayout, QLabel, QWidget

from workstation.core.priors import Alignment
from workstation.ui.corner_text import date_text


class CompareBar(QWidget):
    """Above the two viewports while comparing: what is compared, the offset and the link."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.offset = QDoubleSpinBox()
        self.offset.setRange(-2000.0, 2000.0)
        self.offset.setDecimals(1)
        self.offset.setSingleStep(1.0)
        self.offset.setSuffix(" mm")
        self.offset.setToolTip("Prior position minus current position for the same anatomy (table position)")
        self.linked = QCheckBox("Linked")
        self.linked.setChecked(True)
        self.linked.setToolTip("Scroll and window together. Unlink, bring the prior to the same anatomy, link again:\n"
                               "the offset is set from the two slices")
        self.where = QLabel()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 1, 4, 1)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.where)
        layout.addWidget(QLabel("Prior offset:"))
        layout.addWidget(self.offset)
        layout.addWidget(self.linked)
        self.setVisible(False)


class PriorSync(QObject):
    """Keeps `prior` on the slice matching `current` (and back), and one window on both, while linked."""

    def __init__(self, current, prior, alignment: Alignment, bar: CompareBar, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.current, self.prior, self.alignment, self.bar = current, prior, alignment, bar
        self.current_set = current.display_set  # another series in the main viewer ends the comparison
        self._busy = False
        c_study, p_study = current.display_set.series.study, prior.display_set.series.study
        bar.label.setText(f"Current {date_text(c_study.date)}  ·  prior {date_text(p_study.date)}  "
                          f"({prior.display_set.series.description or prior.display_set.series.modality})")
        bar.offset.blockSignals(True)
        bar.offset.setValue(alignment.offset_mm)
        bar.offset.blockSignals(False)
        bar.linked.blockSignals(True)
        bar.linked.setChecked(True)
        bar.linked.blockSignals(False)
        bar.setVisible(True)
        self._links = [
            (current.frameChanged, self._current_moved), (prior.frameChanged, self._prior_moved),
            (current.windowChanged, self._current_window), (prior.windowChanged, self._prior_window),
            (bar.offset.valueChanged, self._offset_changed), (bar.linked.toggled, self._link_toggled),
        ]
        for signal, slot in self._links:
            signal.connect(slot)
        self._current_moved(current.frame_index)

    @property
    def linked(self) -> bool:
        return self.bar.linked.isChecked()

    def stop(self) -> None:
        for signal, slot in self._links:
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
        self._links = []
        self.bar.setVisible(False)

    def window_ready(self) -> None:
        """The prior has its first pixels (and its own opening window): give it the current one."""
        if self.linked and self.current.window is not None:
            self._current_window(self.current.window)

    def _current_moved(self, index: int) -> None:
        if self._busy or not self.linked:
            self._show_where()
            return
        frame, _ = self.alignment.prior_frame(index)
        self._move(self.prior, frame)

    def _prior_moved(self, index: int) -> None:
        if self._busy or not self.linked:
            self._show_where()
            return
        frame, _ = self.alignment.current_frame(index)
        self._move(self.current, frame)

    def _move(self, viewer, frame: int) -> None:
        self._busy = True
        try:
            viewer.show_frame(frame)
        finally:
            self._busy = False
        self._show_where()

    def _show_where(self) -> None:
        c, p = self.current.frame_index, self.prior.frame_index
        distance = abs(float(self.alignment.prior_z[p] - self.alignment.current_z[c] - self.alignment.offset_mm))
        self.bar.where.setText(f"z {self.alignment.current_z[c]:.1f} / {self.alignment.prior_z[p]:.1f} mm"
                               + (f"  ({distance:.1f} mm apart)" if distance >= 0.05 else ""))

    def _current_window(self, window) -> None:
        if self._busy or not self.linked or window is None:
            return
        self._busy = True
        try:
            self.prior.set_window(window)
        finally:
            self._busy = False

    def _prior_window(self, window) -> None:
        if self._busy or not self.linked or window is None:
            return
        self._busy = True
        try:
            self.current.set_window(window)
        finally:
            self._busy = False

    def _offset_changed(self, value: float) -> None:
        self.alignment.offset_mm = float(value)
        self._current_moved(self.current.frame_index)

    def _link_toggled(self, on: bool) -> None:
        if on:  # the reader has put both sides on the same anatomy
            self.alignment.relink(self.current.frame_index, self.prior.frame_index)
            self.bar.offset.blockSignals(True)
            self.bar.offset.setValue(self.alignment.offset_mm)
            self.bar.offset.blockSignals(False)
            self._current_window(self.current.window)
        self._show_where()
