"""Cine: play a multi-frame object or a series at its own frame rate (or one the reader chooses), looping or once.

The rate comes from the images (FrameTime, CineRate, RecommendedDisplayFrameRate)
and falls back to DEFAULT_FPS; a frame slider under the image follows the
viewer. Space plays and pauses (window-wide, like the zoom keys).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QHBoxLayout, QLabel, QSlider, QToolButton, QWidget

from workstation.core.study import DisplaySet

DEFAULT_FPS = 10.0
MAX_FPS = 60.0


def frame_rate(display_set: DisplaySet | None) -> tuple[float, str]:
    """(frames per second, where it came from) for the display set."""
    if display_set is not None:
        times = [f.instance.frame_time_ms for f in display_set.frames if f.instance.frame_time_ms]
        if times:
            return min(MAX_FPS, 1000.0 / times[0]), "from the images"
    return DEFAULT_FPS, "default"


class CineBar(QWidget):
    """Play/pause, frames per second, loop, and a frame slider: drives one SliceViewer with a timer."""

    playingChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = None
        self.play_button = QToolButton(text="▶ Play")
        self.play_button.setToolTip("Play / pause the frames (Space)")
        self.play_button.setCheckable(True)
        self.play_button.toggled.connect(self._toggled)
        self.fps = QDoubleSpinBox()
        self.fps.setRange(0.5, MAX_FPS)
        self.fps.setDecimals(1)
        self.fps.setSuffix(" fps")
        self.fps.setValue(DEFAULT_FPS)
        self.fps.valueChanged.connect(self._rate_changed)
        self.loop = QCheckBox("Loop")
        self.loop.setChecked(True)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(self._slider_moved)
        self.label = QLabel()
        self.source = QLabel()
        self.source.setStyleSheet("color: grey;")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 1, 4, 1)
        for widget in (self.play_button, self.fps, self.source, self.loop):
            layout.addWidget(widget)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.tick)
        self.setVisible(False)

    def attach(self, viewer) -> None:
        """Follow `viewer` (a SliceViewer): its frames, and the rate of the series it shows."""
        if self.viewer is not None:
            try:
                self.viewer.frameChanged.disconnect(self._follow)
            except (RuntimeError, TypeError):
                pass
        self.viewer = viewer
        viewer.frameChanged.connect(self._follow)
        self.series_changed()

    def series_changed(self) -> None:
        """The viewer shows another series: stop, take its rate, size the slider; shown for multi-frame objects."""
        self.pause()
        viewer = self.viewer
        display_set = viewer.display_set if viewer is not None else None
        rate, source = frame_rate(display_set)
        self.fps.blockSignals(True)
        self.fps.setValue(rate)
        self.fps.blockSignals(False)
        self.source.setText(source)
        count = viewer.volume.frame_count if viewer is not None and viewer.volume is not None else 0
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, count - 1))
        self.slider.setValue(viewer.frame_index if viewer is not None else 0)
        self.slider.blockSignals(False)
        multi_frame = display_set is not None and any(f.instance.frames > 1 for f in display_set.frames[:1])
        self.setVisible(multi_frame or self.isVisible() and count > 1)
        self._follow(viewer.frame_index if viewer is not None else 0)

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def toggle(self) -> None:
        if self.viewer is None or self.viewer.volume is None or self.viewer.volume.frame_count < 2:
            return
        self.setVisible(True)
        self.play_button.setChecked(not self.play_button.isChecked())

    def play(self) -> None:
        if not self.play_button.isChecked():
            self.toggle()

    def pause(self) -> None:
        if self.play_button.isChecked():
            self.play_button.setChecked(False)

    def _toggled(self, on: bool) -> None:
        self.play_button.setText("❚❚ Pause" if on else "▶ Play")
        if on:
            self.timer.start(self.interval_ms())
        else:
            self.timer.stop()
        self.playingChanged.emit(on)

    def interval_ms(self) -> int:
        return max(1, round(1000.0 / self.fps.value()))

    def _rate_changed(self, _value: float) -> None:
        self.source.setText("chosen")
        if self.timer.isActive():
            self.timer.start(self.interval_ms())

    def tick(self) -> None:
        """One frame on; at the end back to the first (loop) or stop."""
        viewer = self.viewer
        if viewer is None or viewer.volume is None:
            self.pause()
            return
        last = viewer.volume.frame_count - 1
        if viewer.frame_index >= last:
            if self.loop.isChecked():
                viewer.show_frame(0)
            else:
                self.pause()
            return
        viewer.step(1)

    def _follow(self, index: int) -> None:
        if self.slider.value() != index:
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        total = self.viewer.volume.frame_count if self.viewer is not None and self.viewer.volume is not None else 0
        self.label.setText(f"frame {index + 1}/{total}")

    def _slider_moved(self, value: int) -> None:
        if self.viewer is not None:
            self.viewer.show_frame(value)

