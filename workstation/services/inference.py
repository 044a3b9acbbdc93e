"""Use case "run a model on the open series": checks, background run, cache, audit event. No Qt, no torch here."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from workstation.core.events import Event
from workstation.core.audit import AuditEvent
from workstation.core.findings import Acquisition, Finding, InferenceResult, ModelRef
from workstation.core.study import DisplaySet
from workstation.core.tasks import CancelToken, Progress, no_progress
from workstation.core.volume import Volume
from workstation.inference.registry import ModelError, ModelManifest, find_model, load_manifests, verify_weights
from workstation.inference.requirements import SeriesGeometry

log = logging.getLogger(__name__)


class InferenceService:
    def __init__(self, models_root: Path | None = None) -> None:
        self.manifests, self.problems = load_manifests(models_root)
        for problem in self.problems:
            log.warning("model not usable: %s", problem)
        self.run_recorded = Event()  # (InferenceResult, AuditEvent) - the store persists both
        self._cache: dict[tuple, InferenceResult] = {}
        self._lock = threading.Lock()
        self._device: str | None = None

    def models_for(self, display_set: DisplaySet) -> list[tuple[ModelManifest, str | None]]:
        """Every installed model with None if it accepts the series, else the reason it does not.

        Besides modality and body part, the series' sampling (slices, spacing,
        field of view) must meet the model's input requirements: a model run
        on a series it cannot read would report "0 findings" as if it had looked.
        """
        return [(m, _refusal(m, display_set)) for m in self.manifests]

    def device(self) -> str:
        """CUDA when present, else CPU; chosen once (importing torch on first use)."""
        if self._device is None:
            from workstation.inference.engine import choose_device

            self._device = choose_device()
            log.info("inference device: %s", self._device)
        return self._device

    def cached(self, display_set: DisplaySet, manifest: ModelManifest) -> InferenceResult | None:
        return self._cache.get(self._key(display_set, manifest))

    def run(self, display_set: DisplaySet, volume: Volume, spec: str | None = None,
            cancel: CancelToken | None = None, progress: Progress = no_progress) -> InferenceResult:
        """Run (or reuse) a model on a fully decoded series; ModelError says why it cannot run."""
        manifest = self.choose(display_set, spec)
        key = self._key(display_set, manifest)
        if key in self._cache:
            return self._cache[key]
        if not volume.fully_loaded:
            raise ModelError("the series is still loading (or has undecodable frames); AI runs on complete series")
        if volume.is_colour:
            raise ModelError("AI models here read greyscale images only")
        verify_weights(manifest)
        from workstation.inference.engine import run_model

        started = datetime.now(timezone.utc)
        clock = time.perf_counter()
        probabilities, detections = run_model(manifest, volume, self.device(), cancel, progress)
        seconds = time.perf_counter() - clock
        result = InferenceResult(
            model=ModelRef(manifest.name, manifest.version, manifest.weights_sha256),
            device=self.device(),
            study_instance_uid=display_set.series.study.study_instance_uid,
            series_instance_uid=display_set.series.series_instance_uid,
            findings=[_finding(d, manifest, volume, display_set) for d in detections],
            heatmap=np.clip(np.rint(probabilities * 255), 0, 255).astype(np.uint8),
            seconds=seconds,
            started_utc=started.isoformat(timespec="seconds"),
            acquisition=_acquisition(display_set),
            threshold=manifest.threshold,
            calibrated=manifest.calibration is not None,
        )
        with self._lock:
            self._cache[key] = result
        self.run_recorded.emit(result, _audit(result))
        return result

    def choose(self, display_set: DisplaySet, spec: str | None) -> ModelManifest:
        """The model `spec` names (or the newest accepting one); ModelError with every reason when none may run."""
        if not self.manifests:
            raise ModelError("no AI models are installed")
        series = display_set.series
        if spec:
            manifest = find_model(self.manifests, spec)
            reason = _refusal(manifest, display_set)
            if reason:
                raise ModelError(f"refusing to run: {reason}")
            return manifest
        models = self.models_for(display_set)
        for manifest, reason in models:
            if reason is None:
                return manifest
        what = f"no installed model accepts {series.modality or 'this'} {series.body_part or ''} series"
        raise ModelError(what.replace("  ", " ") + ": " + "; ".join(reason for _, reason in models))

    @staticmethod
    def _key(display_set: DisplaySet, manifest: ModelManifest) -> tuple:
        return (display_set.key, len(display_set.frames), manifest.ref, manifest.weights_sha256)


def _refusal(manifest: ModelManifest, display_set: DisplaySet) -> str | None:
    series = display_set.series
    return manifest.refusal(series.modality, series.body_part, SeriesGeometry.of(display_set))


def _finding(candidate, manifest: ModelManifest, volume: Volume, display_set: DisplaySet) -> Finding:
    """A post-processing candidate in voxels -> a Finding with its patient (mm) coordinates."""
    c0, r0, c1, r1 = (float(v) for v in candidate.box)  # pixel edges; pixel i's centre is index i
    k = int(candidate.frame)
    corner0 = _mm(volume.index_to_patient(c0 - 0.5, r0 - 0.5, k))
    corner1 = _mm(volume.index_to_patient(c1 - 0.5, r1 - 0.5, k))
    frame, row, column = candidate.centroid
    center = _mm(volume.index_to_patient(column, row, frame))
    return Finding(
        finding_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{display_set.key}/{manifest.ref}/{k}/{c0:.1f}/{r0:.1f}")),
        label=manifest.labels[0],
        score=round(float(candidate.score), 4),
        frame_index=k,
        box_px=(c0, r0, c1, r1),
        box_mm=(corner0, corner1),
        center_mm=center,
        frames=(int(candidate.frames[0]), int(candidate.frames[1])),
        sop_instance_uid=display_set.frames[k].instance.sop_instance_uid,
    )


def _acquisition(display_set: DisplaySet) -> Acquisition:
    """The scanner and reconstruction of the series, for monitoring by input (no patient data)."""
    series = display_set.series
    thickness = display_set.frames[0].instance.slice_thickness if display_set.frames else None
    return Acquisition(series.manufacturer, series.manufacturer_model, series.convolution_kernel,
                       None if thickness is None else round(float(thickness), 3))


def _mm(point) -> tuple[float, float, float]:
    return tuple(round(float(v), 2) for v in point)  # type: ignore[return-value]


def _audit(result: InferenceResult) -> AuditEvent:
    return AuditEvent("inference.run", result.started_utc, {
        "study_instance_uid": result.study_instance_uid,
        "series_instance_uid": result.series_instance_uid,
        "model": result.model.name,
        "version": result.model.version,
        "sha256": result.model.sha256,
        "device": result.device,
        "seconds": round(result.seconds, 3),
        "findings": len(result.findings),
    })
