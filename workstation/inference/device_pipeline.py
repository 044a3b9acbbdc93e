"""The preprocessing and heatmap restore of `preprocess` as torch operations on the inference device.

On a GPU the network itself is a small part of a run (28 ms for 120 slices on
an H200) while windowing, resampling and stacking in numpy, copying 157 MB of
prepared slices batch by batch and restoring the heatmap in numpy took most of
the 0.6 s. Here the volume goes to the device once (as it is stored: int16
stays int16), and the same kernels (`preprocess._weights`, the same block mean,
the same channel interpolation, in the same order) run there; only the
restored probabilities and the model-grid logits come back. Results equal the
numpy path to float32 rounding (tests compare them); the CPU keeps the numpy
path, which is the faster one there.
"""

from __future__ import annotations

import numpy as np
import torch

from workstation.core.tasks import Cancelled
from workstation.inference.preprocess import Preprocessing, _channel_sources, _weights, model_shape


def _resample_axis(a: torch.Tensor, n_out: int, axis: int) -> torch.Tensor:
    n_in = a.shape[axis]
    if n_out == n_in:
        return a
    if n_in % n_out == 0:  # integer shrink: block mean, as preprocess does
        f = n_in // n_out
        shape = a.shape[:axis] + (n_out, f) + a.shape[axis + 1:]
        return a.reshape(shape).sum(dim=axis + 1) * (1.0 / f)
    idx, w = _weights(n_in, n_out)
    index = torch.from_numpy(idx).to(a.device)
    weights = torch.from_numpy(w).to(a.device)
    shape = [1] * a.ndim
    shape[axis] = n_out
    out = None
    for t in range(idx.shape[1]):
        if not w[:, t].any():
            continue
        term = torch.index_select(a, axis, index[:, t]) * weights[:, t].reshape(shape)
        out = term if out is None else out.add_(term)
    return out


def prepare(volume_hu: np.ndarray, pixel_spacing_mm: tuple[float, float], pre: Preprocessing,
            slice_spacing_mm: float | None, device: str | torch.device) -> torch.Tensor:
    """HU volume (frames, rows, cols) -> network input (frames, channels, h, w) float32 on `device`."""
    vol = np.asarray(volume_hu)
    if vol.ndim == 2:
        vol = vol[None]
    if vol.ndim != 3 or min(vol.shape) < 1:
        raise ValueError(f"expected a (frames, rows, cols) volume, got shape {vol.shape}")
    frames, rows, cols = vol.shape
    h, w = model_shape(rows, cols, pixel_spacing_mm, pre)
    work = torch.from_numpy(np.ascontiguousarray(vol)).to(device).to(torch.float32)
    work = _resample_axis(work, h, 1)
    work = _resample_axis(work, w, 2)
    lo = pre.window_center - pre.window_width / 2.0
    work = ((work - np.float32(lo)) * np.float32(1.0 / pre.window_width)).clamp_(0.0, 1.0)
    idx, wt = _channel_sources(frames, pre, slice_spacing_mm)
    out = torch.empty((frames, pre.channels, h, w), dtype=torch.float32, device=work.device)
    for c in range(pre.channels):
        k0 = torch.from_numpy(idx[c, :, 0]).to(work.device)
        w0 = torch.from_numpy(wt[c, :, 0]).to(work.device)[:, None, None]
        if np.all(wt[c, :, 1] == 0):
            out[:, c] = work[k0]
        else:
            k1 = torch.from_numpy(idx[c, :, 1]).to(work.device)
            w1 = torch.from_numpy(wt[c, :, 1]).to(work.device)[:, None, None]
            out[:, c] = work[k0] * w0 + work[k1] * w1
    return out


def predict_and_restore(network: torch.nn.Module, prepared: torch.Tensor, shape: tuple[int, int], batch: int = 16,
                        cancel=None, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities restored to (frames, rows, cols), logits on the model grid (frames, h, w)), both float32
    on the host; everything between stays on the device."""
    frames = prepared.shape[0]
    logits = torch.empty((frames, *prepared.shape[2:]), dtype=torch.float32, device=prepared.device)
    network.eval()
    with torch.inference_mode():
        for start in range(0, frames, max(1, int(batch))):
            if cancel is not None and cancel.cancelled:
                raise Cancelled()
            chunk = prepared[start:start + batch]
            logits[start:start + chunk.shape[0]] = network(chunk)[:, 0].float()
            if progress is not None:
                progress(min(start + batch, frames), frames)
        probabilities = torch.sigmoid(logits)
        restored = _resample_axis(_resample_axis(probabilities, int(shape[0]), 1), int(shape[1]), 2)
        return restored.contiguous().cpu().numpy(), logits.cpu().numpy()
