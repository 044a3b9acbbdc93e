"""AI panel: choose a model that accepts the open series, run it, show/hide the heatmap, review the findings."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from workstation.core.findings import InferenceResult, ModelRef
from workstation.ui.finding_history import FindingHistory
from workstation.ui.findings_panel import FindingsPanel
from workstation.ui.review_panel import ReviewPanel


class WrappedLabel(QLabel):
    """A word-wrapped label that keeps the height its text needs at its width (inside a dock, Qt's layout
    otherwise keeps the height of an earlier, shorter text and the next widget is drawn over it)."""

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self.setWordWrap(True)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt naming
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        needed = self.heightForWidth(max(self.width(), 50)) if self.text() else 0
        if needed != self.minimumHeight():
            self.setMinimumHeight(max(needed, 0))


class AiPanel(QWidget):
    runRequested = Signal(str)  # model reference name:version
    heatmapToggled = Signal(bool)
    opacityChanged = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_box = QComboBox()
        self.run_button = QPushButton("Run AI")
        self.run_button.clicked.connect(self._run)
        self.heatmap_box = QCheckBox("Heatmap")
        self.heatmap_box.setChecked(True)
        self.heatmap_box.toggled.connect(self.heatmapToggled.emit)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setToolTip("Heatmap opacity")
        self.opacity.valueChanged.connect(lambda v: self.opacityChanged.emit(v / 100.0))
        self.device_label = WrappedLabel("Device: (chosen at first run)")
        self.note = WrappedLabel("")
        self.results_label = WrappedLabel("")  # where the result objects of this study stand (PACS)
        self.results_label.setVisible(False)
        self.findings = FindingsPanel()
        self.history = FindingHistory()
        self.review = ReviewPanel()

        row = QHBoxLayout()
        row.addWidget(self.model_box, 1)
        row.addWidget(self.run_button)
        overlay = QHBoxLayout()
        overlay.addWidget(self.heatmap_box)
        overlay.addWidget(QLabel("Opacity"))
        overlay.addWidget(self.opacity, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row)
        layout.addLayout(overlay)
        layout.addWidget(self.device_label)
        layout.addWidget(self.note)
        layout.addWidget(self.results_label)
        layout.addWidget(self.findings, 1)
        layout.addWidget(self.history)
        layout.addWidget(self.review)
        self.set_models([])

    def set_models(self, models: list[tuple[object, str | None]]) -> None:
        """(manifest, reason it does not accept the series or None); only accepting models can be run."""
        self.model_box.clear()
        usable = [m for m, reason in models if reason is None]
        for manifest in usable:
            self.model_box.addItem(f"{manifest.name} {manifest.version}", manifest.ref)
        self.run_button.setEnabled(bool(usable))
        refused = [reason for _, reason in models if reason]
        if not models:
            self.note.setText("No AI models installed.")
        elif not usable:
            self.note.setText("No model accepts this series: " + "; ".join(refused))
        else:
            self.note.setText(usable[0].intended_use)

    def show_result(self, result: InferenceResult | None) -> None:
        """The live run (its findings are listed by the review controller), or None: no run yet."""
        if result is None:
            self.device_label.setText("No AI run on this series yet: choose a model and press Run AI.")
        else:
            self.device_label.setText(f"Device: {result.device}   ({result.seconds:.1f} s, {len(result.findings)} finding(s))")

    def show_stored(self, model: ModelRef, device: str, started_utc: str, count: int) -> None:
        """Findings reopened from the store: say where they come from and why there is no heatmap."""
        self.device_label.setText(
            f"Saved run of {model.name} {model.version} ({started_utc[:16].replace('T', ' ')} UTC, {device}, "
            f"{count} finding(s)). Heatmap not saved: run the model again to see it.")

    def set_running(self, running: bool) -> None:
        """While a run is in progress Run AI is off and says why (a second run is refused, not queued)."""
        self.run_button.setText("Running…" if running else "Run AI")
        self.run_button.setEnabled(not running and self.model_box.count() > 0)
        self.run_button.setToolTip("A model is running on this workstation; wait or press Esc to cancel it"
                                   if running else "Run the chosen model on the open series")

    def _run(self) -> None:
        ref = self.model_box.currentData()
        if ref:
            self.runRequested.emit(ref)
