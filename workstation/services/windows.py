"""Which windows a display set offers, and which one it opens with."""

from __future__ import annotations

import numpy as np

from workstation.core.study import DisplaySet
from workstation.core.windowing import CT_PRESETS, WindowLevel, dicom_windows
from workstation.render.windowing import auto_window


def own_windows(display_set: DisplaySet) -> list[WindowLevel]:
    """The windows the images recommend (WindowCenter/Width), as stored in the first instance."""
    first = display_set.first
    return dicom_windows(first.window_centers, first.window_widths, first.window_explanations, first.voi_lut_function)


def presets(display_set: DisplaySet) -> list[WindowLevel]:
    """The DICOM's own windows first, then the CT presets for CT."""
    result = own_windows(display_set)
    if display_set.series.modality == "CT":
        result.extend(CT_PRESETS)
    return result


def initial_window(display_set: DisplaySet, frame: np.ndarray) -> WindowLevel:
    """The images' own window if any, else a window fitted to the first decoded frame."""
    own = own_windows(display_set)
    return own[0] if own else auto_window(frame)
