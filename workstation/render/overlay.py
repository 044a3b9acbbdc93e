"""Heatmap colouring: 8-bit probabilities to semi-transparent RGBA, through a cached lookup table."""

from __future__ import annotations

import numpy as np

# A "hot" ramp: dark red -> red -> orange -> yellow as the probability rises (never white: it must not
# read as bright tissue).
_STOPS = np.array([[120, 0, 0], [220, 20, 0], [255, 110, 0], [255, 190, 0], [255, 255, 40]], dtype=float)


def heat_lut(opacity: float, floor: int = 25) -> np.ndarray:
    """256 packed RGBA pixels (uint32); values below `floor` are fully transparent so the anatomy stays visible."""
    values = np.arange(256) / 255.0
    position = values * (len(_STOPS) - 1)
    low = np.floor(position).astype(int).clip(0, len(_STOPS) - 2)
    t = (position - low)[:, None]
    rgb = _STOPS[low] * (1 - t) + _STOPS[low + 1] * t
    alpha = np.where(np.arange(256) < floor, 0.0, np.clip(0.35 + values, 0, 1) * 255 * np.clip(opacity, 0, 1))
    rgba = np.concatenate([rgb, alpha[:, None]], axis=1).round().astype(np.uint8)
    return rgba.view(np.uint32).ravel()


def colour_heatmap(heat: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(rows, columns) uint8 probabilities -> (rows, columns, 4) uint8 RGBA."""
    return np.take(lut, heat).view(np.uint8).reshape(heat.shape + (4,))


OVERLAY_PLANE_RGBA = (255, 70, 255, 255)  # magenta: no review state or heatmap uses it


def overlay_planes_rgba(planes, shape: tuple[int, int], rgba: tuple[int, int, int, int] = OVERLAY_PLANE_RGBA) -> np.ndarray:
    """Overlay planes (core.overlays.OverlayPlane) of one frame as one flat-colour RGBA layer, transparent elsewhere."""
    out = np.zeros(shape + (4,), np.uint8)
    for plane in planes:
        h, w = plane.bits.shape
        out[plane.top:plane.top + h, plane.left:plane.left + w][plane.bits] = rgba
    return out
