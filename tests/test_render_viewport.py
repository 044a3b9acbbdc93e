"""Zoom as screen pixels per image pixel (no Qt)."""

from __future__ import annotations

import pytest

from workstation.render.viewport import zoom_factor


def test_zoom_is_screen_pixels_per_image_pixel():
    # a 256-pixel image of 1.4 mm pixels (358.4 mm) filling 453 screen pixels
    assert zoom_factor(453, 358.4, 1.4) == pytest.approx(453 / 256)
    assert zoom_factor(512, 512 * 0.7, 0.7) == pytest.approx(1.0)


def test_degenerate_views_read_one():
    assert zoom_factor(0, 100, 1) == 1.0 and zoom_factor(100, 0, 1) == 1.0 and zoom_factor(100, 100, 0) == 1.0
