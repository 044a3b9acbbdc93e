"""What the view shows, in numbers: the one definition of zoom the corner text uses."""

from __future__ import annotations


def zoom_factor(view_width_px: float, view_width_mm: float, column_spacing_mm: float) -> float:
    """Screen pixels per image pixel across the image (1.0: one image pixel on one screen pixel).

    Computed from the view's size and range rather than from a cached device
    transform, which lags a resize (the open-time reading was off by 8 %).
    """
    if view_width_px <= 0 or view_width_mm <= 0 or column_spacing_mm <= 0:
        return 1.0
    return view_width_px * column_spacing_mm / view_width_mm
