"""Run a manifest's network on a decoded volume: preprocess, predict, map back, find candidates.

The same preprocessing and post-processing functions are used by the training
script, so what the model was validated on is what runs here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from workstation.core.tasks import CancelToken, Progress, no_progress
from workstation.core.volume import Volume
from workstation.inference.calibration import restored_logit
from workstation.inference.postprocess import Candidate, find_candidates
from workstation.inference.preprocess import Preprocessing, prepare_volume, restore_heatmap
from workstation.inference.registry import ModelManifest

POSTPROCESSING_KEYS = ("region_threshold", "min_volume_mm3", "min_voxels", "max_candidates")

_networks: dict[tuple[str, str, str], Any] = {}
_networks_lock = threading.Lock()


def choose_device() -> str:
    """CUDA when a GPU is usable, otherwise the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def network_for(manifest: ModelManifest, device: str) -> Any:
    """The loaded network, kept for reuse: weights are read (and were verified) once per model and device."""
    from workstation.inference.network import load_network

    key = (manifest.ref, manifest.weights_sha256, device)
    with _networks_lock:
        if key not in _networks:
            _networks[key] = load_network(manifest.raw, manifest.weights_path, device, verify_sha256=False)
        return _networks[key]


@dataclass(frozen=True)
class Detections:
    """The uncalibrated output of one run: heatmap, candidates (raw peak probability as score), their peak logits."""

    probabilities: np.ndarray  # (frames, rows, columns) at the volume's resolution
    candidates: list[Candidate]
    peak_logits: list[float]  # per candidate: the logit of the heatmap at its peak voxel


def detect(manifest: ModelManifest, volume: Volume, device: str, raw_threshold: float,
           cancel: CancelToken | None = None, progress: Progress = no_progress) -> Detections:
    """Preprocess, predict, map back and find the candidates whose raw peak probability reaches ``raw_threshold``."""
    from workstation.inference.network import predict

    pre = Preprocessing.from_dict(manifest.preprocessing)
    slice_spacing = float(np.linalg.norm(volume.affine[:3, 2]))
    network = network_for(manifest, device)
    shape = volume.array.shape[1:3]
    if device != "cpu":  # on a GPU the numpy steps around the network would cost 20x the network itself
        from workstation.inference import device_pipeline

        prepared_on_device = device_pipeline.prepare(volume.array, volume.pixel_spacing, pre, slice_spacing, device)
        probabilities, logits = device_pipeline.predict_and_restore(network, prepared_on_device, shape,
                                                                    cancel=cancel, progress=progress)
    else:
        prepared = prepare_volume(volume.array, volume.pixel_spacing, pre, slice_spacing)
        logits = np.empty((prepared.shape[0], *prepared.shape[2:]), np.float32)
        model_probabilities = predict(network, prepared, device, cancel=cancel, progress=progress, logits_out=logits)
        probabilities = restore_heatmap(model_probabilities, shape)
    settings = manifest.raw.get("postprocessing") or {}
    options = {key: settings[key] for key in POSTPROCESSING_KEYS if key in settings}
    if "min_volume_mm3" in options:
        options["spacing_mm"] = (slice_spacing, *volume.pixel_spacing)
    candidates = find_candidates(probabilities, raw_threshold, **options)
    peaks = [restored_logit(logits, c.frame, c.row, c.col, shape) for c in candidates]
    return Detections(probabilities, candidates, peaks)


def run_model(manifest: ModelManifest, volume: Volume, device: str, cancel: CancelToken | None = None,
              progress: Progress = no_progress) -> tuple[np.ndarray, list[Candidate]]:
    """Probabilities (frames, rows, columns) at the volume's resolution, and the candidates above threshold.

    With a calibration in the manifest a candidate's score is its calibrated
    probability; the heatmap stays the network's own per-pixel probability.
    """
    found = detect(manifest, volume, device, manifest.raw_threshold, cancel, progress)
    calibration = manifest.calibration
    if calibration is None:
        return found.probabilities, found.candidates
    scored = [replace(c, score=calibration.apply(logit)) for c, logit in zip(found.candidates, found.peak_logits)]
    scored.sort(key=lambda c: -c.score)  # stable: equal scores keep post-processing's order
    return found.probabilities, scored
