"""The AI panel's wiring: which models accept the open series, running one off the UI thread (progress,
Esc cancels, a second run refused), and what the findings list shows when a series opens: the live result,
else the stored run under review, else results stored with the study (SR / GSPS / Parametric Map)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from workstation.core.findings import ModelRef
from workstation.core.study import DisplaySet
from workstation.core.tasks import Cancelled, CancelToken
from workstation.services.executor import inference as inference_pool
from workstation.services.inference import InferenceService
from workstation.services.loading import SeriesLoad
from workstation.ui.ai_panel import AiPanel
from workstation.ui.bridge import InferenceSignals
from workstation.ui.results_controller import StoredResultsController
from workstation.ui.review_controller import ReviewController
from workstation.ui.viewer import SliceViewer


class AiController(QObject):
    finished = Signal(object)  # InferenceResult, or None when the run failed or was cancelled

    def __init__(self, inference: InferenceService, panel: AiPanel, viewer: SliceViewer, review: ReviewController,
                 stored: StoredResultsController, current: Callable[[], SeriesLoad | None],
                 busy: Callable[[str, int, int], None], idle: Callable[[str], None], notify: Callable[[str], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.inference, self.panel, self.viewer, self.review, self.stored = inference, panel, viewer, review, stored
        self.current, self._busy, self._idle, self._notify = current, busy, idle, notify
        self._cancel: CancelToken | None = None
        self._signals = InferenceSignals(self)
        self._signals.progress.connect(lambda d, t: self._busy(f"AI: slice {d}/{t}…", d, t))
        self._signals.done.connect(self._done)
        self._signals.failed.connect(self._failed)
        panel.runRequested.connect(self.run_model)
        panel.heatmapToggled.connect(viewer.show_heatmap)
        panel.opacityChanged.connect(viewer.set_heatmap_opacity)

    def show_series(self, display_set: DisplaySet, catalog) -> None:
        models = self.inference.models_for(display_set)
        self.panel.set_models(models)
        cached = next((self.inference.cached(display_set, m) for m, reason in models if reason is None
                       and self.inference.cached(display_set, m) is not None), None)
        self.viewer.set_result(cached)
        self.panel.show_result(cached)
        if cached is not None:
            self.review.begin(display_set, cached.model, cached.findings, self.labels(cached.model))
            return
        run = self.review.reopen_saved(display_set, self.labels)  # no live result: the stored one, no heatmap
        if run is not None:
            self.panel.show_stored(run.model, run.device, run.started_utc, len(run.findings))
        else:
            self.stored.show_for(catalog, display_set)  # SR / GSPS / PM found with the study

    def labels(self, model: ModelRef) -> tuple[str, ...]:
        manifest = next((m for m in self.inference.manifests if (m.name, m.version) == (model.name, model.version)), None)
        return tuple(manifest.labels) if manifest is not None else ()

    def run_model(self, ref: str) -> None:
        """Run a model on the open series in the background (progress in the status bar, Esc cancels)."""
        load = self.current()
        if load is None:
            return
        if not load.volume.fully_loaded:
            self._idle("AI runs once the series has finished loading")
            return
        if self._cancel is not None:
            self._notify("A model is already running: wait for it, or press Esc to cancel it first.")
            return
        token = self._cancel = CancelToken()
        self.panel.set_running(True)
        key, relay = load.display_set.key, self._signals

        def work() -> None:
            try:
                result = self.inference.run(load.display_set, load.volume, ref, token,
                                            lambda d, t: relay.deliver(relay.progress, d, t))
            except Cancelled:
                relay.deliver(relay.failed, "AI run cancelled")
            except Exception as exc:  # noqa: BLE001 - ModelError and any failure: a message, never a traceback
                relay.deliver(relay.failed, f"AI not run: {exc}")
            else:
                relay.deliver(relay.done, key, result)

        self._busy(f"AI: running {ref}…", 0, 0)
        inference_pool().submit(work)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    def _done(self, key: str, result) -> None:
        self._cancel = None
        self.panel.set_running(False)
        self._idle(f"AI {result.model}: {len(result.findings)} finding(s) in {result.seconds:.1f} s on {result.device}")
        load = self.current()
        if load is not None and load.display_set.key == key:
            self.viewer.set_result(result)
            self.panel.show_result(result)
            self.review.begin(load.display_set, result.model, result.findings, self.labels(result.model))
        self.finished.emit(result)

    def _failed(self, message: str) -> None:
        self._cancel = None
        self.panel.set_running(False)
        self._idle(message)
        self.finished.emit(None)
