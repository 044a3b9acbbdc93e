"""The one preprocessing shared by detector training and inference (numpy only).

A CT volume in HU, shaped (frames, rows, cols), becomes the network input
(frames, channels, h, w), float32 in [0, 1]:

1. in-plane resampling to ``Preprocessing.pixel_spacing_mm`` (area averaging
   when shrinking, bilinear when enlarging; the field of view is kept, so the
   output grid covers exactly the input grid),
2. windowing to [0, 1] (``window_center`` / ``window_width`` in HU),
3. stacking ``channels`` neighbouring frames per output frame (2.5-D input),
   frame ``k`` in the middle; frames beyond the volume repeat the edge frame.

:func:`restore_heatmap` maps a model-resolution map (frames, h, w) back onto
the original (rows, cols) grid (bilinear), and :func:`model_to_original`
converts single positions. Nothing here imports torch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np


@dataclass(frozen=True)
class Preprocessing:
    """Parameters of :func:`prepare_volume`, stored in the model manifest."""

    window_center: float = -600.0  # HU
    window_width: float = 1500.0  # HU
    pixel_spacing_mm: float = 1.4  # in-plane spacing the network sees
    channels: int = 3  # neighbouring frames stacked per input (odd: centre frame in the middle)
    # Distance between the stacked frames in mm; None stacks adjacent frames whatever their spacing.
    slice_spacing_mm: float | None = None

    def __post_init__(self) -> None:
        if not self.window_width > 0:
            raise ValueError("window_width must be positive")
        if not self.pixel_spacing_mm > 0:
            raise ValueError("pixel_spacing_mm must be positive")
        if int(self.channels) != self.channels or self.channels < 1:
            raise ValueError("channels must be a positive integer")
        if self.slice_spacing_mm is not None and not self.slice_spacing_mm > 0:
            raise ValueError("slice_spacing_mm must be positive or None")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        """From a manifest's ``preprocessing`` section; unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown preprocessing keys: {sorted(unknown)}")
        values = dict(data)
        for key in ("window_center", "window_width", "pixel_spacing_mm"):
            if key in values:
                values[key] = float(values[key])
        if "channels" in values:
            values["channels"] = int(values["channels"])
        if values.get("slice_spacing_mm") is not None:
            values["slice_spacing_mm"] = float(values["slice_spacing_mm"])
        return cls(**values)


# --------------------------------------------------------------------------
# 1-D resampling kernels, applied separably with gathers (no dense matrices)


def _weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and weights (n_out, taps): area average if shrinking, else bilinear.

    Output sample i covers input edge coordinates [i*s, (i+1)*s), s = n_in / n_out,
    input sample j covers [j, j+1) (pixel centres at j + 0.5 in edge coordinates).
    """
    s = n_in / n_out
    i = np.arange(n_out, dtype=np.float64)
    if n_out == n_in:
        return np.arange(n_in)[:, None], np.ones((n_in, 1), np.float32)
    if n_out < n_in:  # area averaging over the output pixel's footprint
        taps = int(math.ceil(s)) + 1
        lo, hi = i * s, (i + 1) * s
        j = np.floor(lo).astype(np.int64)[:, None] + np.arange(taps)[None, :]
        overlap = np.minimum(j + 1, hi[:, None]) - np.maximum(j, lo[:, None])
        w = np.clip(overlap, 0.0, None) / s
        return np.clip(j, 0, n_in - 1), w.astype(np.float32)
    x = np.clip((i + 0.5) * s - 0.5, 0.0, n_in - 1)  # bilinear, edge clamped
    j0 = np.floor(x).astype(np.int64)
    j1 = np.minimum(j0 + 1, n_in - 1)
    f = (x - j0).astype(np.float32)
    return np.stack([j0, j1], axis=1), np.stack([1 - f, f], axis=1)


def _resample_axis(a: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    n_in = a.shape[axis]
    if n_out == n_in:
        return a
    if n_in % n_out == 0:  # integer shrink: plain block mean (same result, faster)
        f = n_in // n_out
        shape = a.shape[:axis] + (n_out, f) + a.shape[axis + 1:]
        out = a.reshape(shape).sum(axis=axis + 1, dtype=np.float32)
        out *= np.float32(1.0 / f)
        return out
    idx, w = _weights(n_in, n_out)
    shape = [1] * a.ndim
    shape[axis] = n_out
    out = None
    for t in range(idx.shape[1]):
        wt = w[:, t]
        if not wt.any():
            continue
        term = np.take(a, idx[:, t], axis=axis)
        term *= wt.reshape(shape)
        out = term if out is None else np.add(out, term, out=out)
    return out


def model_shape(rows: int, cols: int, pixel_spacing_mm: tuple[float, float],
                pre: Preprocessing) -> tuple[int, int]:
    """(h, w) of the network input for a (rows, cols) image of this spacing."""
    row_mm, col_mm = (float(v) for v in pixel_spacing_mm)
    return (max(1, int(round(rows * row_mm / pre.pixel_spacing_mm))),
            max(1, int(round(cols * col_mm / pre.pixel_spacing_mm))))


def _channel_sources(frames: int, pre: Preprocessing,
                     slice_spacing_mm: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Per channel: frame indices and weights (channels, frames, 2) to interpolate from."""
    offsets = np.arange(pre.channels, dtype=np.float64) - pre.channels // 2
    if pre.slice_spacing_mm is not None and slice_spacing_mm:
        offsets = offsets * (pre.slice_spacing_mm / float(slice_spacing_mm))
    pos = np.clip(np.arange(frames)[None, :] + offsets[:, None], 0, frames - 1)
    k0 = np.floor(pos + 1e-9).astype(np.int64)
    k1 = np.minimum(k0 + 1, frames - 1)
    f = np.clip(pos - k0, 0.0, 1.0).astype(np.float32)
    return np.stack([k0, k1], axis=-1), np.stack([1 - f, f], axis=-1)


def prepare_volume(volume_hu: np.ndarray, pixel_spacing_mm: tuple[float, float],
                   pre: Preprocessing, slice_spacing_mm: float | None = None) -> np.ndarray:
    """HU volume (frames, rows, cols) -> network input (frames, channels, h, w), float32 in [0, 1].

    ``pixel_spacing_mm`` is (row spacing, column spacing). ``slice_spacing_mm``
    (distance between frames) matters only if ``pre.slice_spacing_mm`` is set.
    """
    vol = np.asarray(volume_hu)
    if vol.ndim == 2:
        vol = vol[None]
    if vol.ndim != 3 or min(vol.shape) < 1:
        raise ValueError(f"expected a (frames, rows, cols) volume, got shape {vol.shape}")
    frames, rows, cols = vol.shape
    h, w = model_shape(rows, cols, pixel_spacing_mm, pre)
    lo = pre.window_center - pre.window_width / 2.0
    scale = np.float32(1.0 / pre.window_width)
    work = vol if vol.dtype == np.float32 else vol.astype(np.float32)
    work = _resample_axis(work, h, 1)
    work = _resample_axis(work, w, 2)
    if work is vol:  # same grid: copy, the caller's volume is never modified
        work = vol.copy()
    work -= np.float32(lo)
    work *= scale
    np.clip(work, 0.0, 1.0, out=work)
    idx, wt = _channel_sources(frames, pre, slice_spacing_mm)
    out = np.empty((frames, pre.channels, h, w), np.float32)
    for c in range(pre.channels):
        k0, k1 = idx[c, :, 0], idx[c, :, 1]
        if np.all(wt[c, :, 1] == 0):
            out[:, c] = work[k0]
        else:
            np.multiply(work[k0], wt[c, :, 0, None, None], out=out[:, c])
            out[:, c] += work[k1] * wt[c, :, 1, None, None]
    return out


def restore_heatmap(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Model-resolution map (frames, h, w) -> (frames, rows, cols), float32, bilinear.

    The inverse of the in-plane mapping of :func:`prepare_volume`: both grids
    cover the same field of view, pixel centres at (i + 0.5) * size / count.
    """
    hm = np.asarray(heatmap, np.float32)
    if hm.ndim == 2:
        hm = hm[None]
    rows, cols = int(shape[0]), int(shape[1])
    out = _resample_axis(hm, rows, 1)
    out = _resample_axis(out, cols, 2)
    return out.copy() if out is hm or out is heatmap else out


def model_to_original(row: float, col: float, model_hw: tuple[int, int],
                      original_hw: tuple[int, int]) -> tuple[float, float]:
    """A (row, col) position on the model grid -> the same point on the original grid."""
    sr, sc = original_hw[0] / model_hw[0], original_hw[1] / model_hw[1]
    return (row + 0.5) * sr - 0.5, (col + 0.5) * sc - 0.5


def original_to_model(row: float, col: float, original_hw: tuple[int, int],
                      model_hw: tuple[int, int]) -> tuple[float, float]:
    """A (row, col) position on the original grid -> the same point on the model grid."""
    sr, sc = model_hw[0] / original_hw[0], model_hw[1] / original_hw[1]
    return (row + 0.5) * sr - 0.5, (col + 0.5) * sc - 0.5
