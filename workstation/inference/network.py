"""Loading a manifest's network and running it on prepared input (torch).

Imported only when inference runs; nothing else in the application imports
torch.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from workstation.core.tasks import Cancelled

from .architectures import build


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_network(manifest: dict, weights_path: str | Path, device: str | torch.device = "cpu",
                 verify_sha256: bool = True) -> torch.nn.Module:
    """The manifest's architecture with its weights, in eval mode on ``device``.

    The weights file must hold a plain state dict (loaded with
    ``weights_only=True``: no code is unpickled); when the manifest gives a
    ``weights.sha256`` and ``verify_sha256`` is true, the file must match it.
    """
    weights_path = Path(weights_path)
    expected = (manifest.get("weights") or {}).get("sha256")
    if verify_sha256 and expected:
        actual = sha256_of(weights_path)
        if actual.lower() != str(expected).lower():
            raise ValueError(f"{weights_path.name}: sha256 {actual} does not match the manifest")
    net = build(manifest["architecture"], manifest.get("architecture_params") or {})
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{weights_path.name}: not a state dict")
    net.load_state_dict(state, strict=True)
    return net.to(device).eval()


def predict(network: torch.nn.Module, prepared: np.ndarray, device: str | torch.device = "cpu",
            batch: int = 16, cancel=None, progress: Callable[[int, int], None] | None = None,
            logits_out: np.ndarray | None = None) -> np.ndarray:
    """Probabilities (frames, h, w), float32, for prepared input (frames, channels, h, w).

    ``cancel.cancelled`` is checked before every batch (raises
    :class:`workstation.core.tasks.Cancelled`); ``progress(done, total)``
    is called after every batch with frame counts. ``logits_out``, a float32
    (frames, h, w) array, receives the logits too: calibration needs them where
    the float32 probability has rounded to 1.
    """
    x = np.asarray(prepared, np.float32)
    if x.ndim != 4:
        raise ValueError(f"expected (frames, channels, h, w), got shape {x.shape}")
    frames = x.shape[0]
    out = np.empty((frames,) + x.shape[2:], np.float32)
    batch = max(1, int(batch))
    network.eval()
    with torch.inference_mode():
        for start in range(0, frames, batch):
            if cancel is not None and cancel.cancelled:
                raise Cancelled()
            chunk = torch.from_numpy(np.ascontiguousarray(x[start:start + batch])).to(device)
            logits = network(chunk)
            prob = torch.sigmoid(logits)[:, 0]
            out[start:start + chunk.shape[0]] = prob.float().cpu().numpy()
            if logits_out is not None:
                logits_out[start:start + chunk.shape[0]] = logits[:, 0].float().cpu().numpy()
            if progress is not None:
                progress(min(start + batch, frames), frames)
    return out
