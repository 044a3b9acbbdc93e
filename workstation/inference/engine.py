"""Run a manifest's network on a decoded volume: preprocess, predict, map back, find candidates.

The same preprocessing and post-processing functions are used by the training
script, so what the model was validated on is what runs here.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from workstation.core.tasks import CancelToken, Progress, no_progress
from workstation.core.volume import Volume
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


def run_model(manifest: ModelManifest, volume: Volume, device: str, cancel: CancelToken | None = None,
              progress: Progress = no_progress) -> tuple[np.ndarray, list[Candidate]]:
    """Probabilities (frames, rows, columns) at the volume's resolution, and the candidates above threshold."""
    from workstation.inference.network import predict

    pre = Preprocessing.from_dict(manifest.preprocessing)
    slice_spacing = float(np.linalg.norm(volume.affine[:3, 2]))
    prepared = prepare_volume(volume.array, volume.pixel_spacing, pre, slice_spacing)
    network = network_for(manifest, device)
    model_probabilities = predict(network, prepared, device, cancel=cancel, progress=progress)
    probabilities = restore_heatmap(model_probabilities, volume.array.shape[1:3])
    settings = manifest.raw.get("postprocessing") or {}
    options = {key: settings[key] for key in POSTPROCESSING_KEYS if key in settings}
    if "min_volume_mm3" in options:
        options["spacing_mm"] = (slice_spacing, *volume.pixel_spacing)
    return probabilities, find_candidates(probabilities, manifest.threshold, **options)
