"""Window/level to 8-bit display values, as lookup tables so a redraw is one `np.take`.

The transfer functions are those of DICOM PS3.3 C.11.2.1.2 (LINEAR,
LINEAR_EXACT, SIGMOID); tests check them against pydicom's apply_windowing.
"""

from __future__ import annotations

import numpy as np

from workstation.core.windowing import WindowLevel

_INT16_DOMAIN = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.float64)


def window_values(values: np.ndarray, window: WindowLevel) -> np.ndarray:
    """Display values in [0, 255] (float) for modality values, per the window's VOI LUT function."""
    x = np.asarray(values, dtype=np.float64)
    c, w = float(window.center), float(window.width)
    if window.function == "SIGMOID":
        with np.errstate(over="ignore"):  # exp overflows to inf far below a narrow window: 0 is right there
            return 255.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    if window.function != "LINEAR_EXACT":
        c, w = c - 0.5, w - 1.0
    if w <= 0:  # LINEAR at width <= 1 is a step: x <= c - 0.5 is black, above is white
        return np.where(x <= c, 0.0, 255.0)
    return np.clip(((x - c) / w + 0.5) * 255.0, 0.0, 255.0)


def _to_uint8(display: np.ndarray, invert: bool) -> np.ndarray:
    out = np.rint(display).astype(np.uint8)
    return 255 - out if invert else out


_GREY_TO_RGBA = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 4, axis=1)
_GREY_TO_RGBA[:, 3] = 255
_GREY_TO_RGBA = _GREY_TO_RGBA.view(np.uint32).ravel()  # opaque grey pixel for each 8-bit value


class WindowRenderer:
    """Turns frames of one volume into 8-bit images for the current window.

    Integer volumes of up to 16 bits go through a cached 64 Ki-entry LUT,
    rebuilt only when the window changes; others are windowed arithmetically.
    `render_rgba` gives 32-bit pixels, the format Qt paints fastest.
    """

    def __init__(self, dtype: np.dtype, invert: bool = False) -> None:
        self.dtype = np.dtype(dtype)
        self.invert = invert
        self._window: WindowLevel | None = None
        self._lut: np.ndarray | None = None
        self._lut_rgba: np.ndarray | None = None

    def render_rgba(self, frame: np.ndarray, window: WindowLevel) -> np.ndarray:
        """(rows, columns, 4) uint8 RGBA: grey levels repeated in R, G, B, opaque alpha."""
        if frame.ndim == 3:
            rgb = self.render(frame, window)
            return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
        if self._uses_lut:
            self._lut_for(window)
            if self._lut_rgba is None:
                self._lut_rgba = np.take(_GREY_TO_RGBA, self._lut)
            packed = np.take(self._lut_rgba, self._lut_index(frame))
        else:
            packed = np.take(_GREY_TO_RGBA, self.render(frame, window))
        return packed.view(np.uint8).reshape(frame.shape + (4,))

    @property
    def _uses_lut(self) -> bool:
        return self.dtype in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16))

    def _lut_index(self, frame: np.ndarray) -> np.ndarray:
        return frame.view(np.uint16) if self.dtype == np.int16 else frame

    def render(self, frame: np.ndarray, window: WindowLevel) -> np.ndarray:
        if frame.ndim == 3:  # colour: shown as stored
            return frame if frame.dtype == np.uint8 else frame.astype(np.uint8)
        if self._uses_lut:
            return np.take(self._lut_for(window), self._lut_index(frame))
        return _to_uint8(window_values(frame, window), self.invert)

    def _lut_for(self, window: WindowLevel) -> np.ndarray:
        if self._lut is None or window != self._window:
            if self.dtype == np.int16:
                domain = _INT16_DOMAIN
            else:
                domain = np.arange(np.iinfo(self.dtype).max + 1, dtype=np.float64)
            self._lut = _to_uint8(window_values(domain, window), self.invert)
            self._lut_rgba = None
            self._window = window
        return self._lut


def auto_window(frame: np.ndarray, low_percentile: float = 0.5, high_percentile: float = 99.5) -> WindowLevel:
    """A window spanning the bulk of a frame's values, for images that recommend none."""
    sample = frame[:: max(1, frame.shape[0] // 256), :: max(1, frame.shape[1] // 256)]
    low, high = np.percentile(sample, [low_percentile, high_percentile])
    if not np.isfinite(low) or not np.isfinite(high):
        return WindowLevel(0.0, 1.0, "Auto")
    width = max(float(high - low), 1.0)
    return WindowLevel(float(low) + width / 2, width, "Auto")
