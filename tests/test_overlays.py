"""Overlay planes: placing them (core) and reading them from files (dicom), bounded by the data present."""

from __future__ import annotations

import numpy as np
import pytest

from workstation.core.overlays import overlay_frame_targets, place_overlay


def test_overlay_at_origin_one_one_covers_the_top_left():
    bits = np.zeros((4, 5), np.uint8)
    bits[1, 2] = 1
    plane = place_overlay(bits, (1, 1), (8, 8))
    assert (plane.top, plane.left, plane.bits.shape) == (1, 2, (1, 1))  # only the marks are kept
    mask = plane.mask((8, 8))
    assert mask.dtype == bool and list(zip(*np.nonzero(mask))) == [(1, 2)]


def test_offset_origin_and_clipping():
    bits = np.ones((4, 4), np.uint8)
    mask = place_overlay(bits, (-1, 7), (6, 8)).mask((6, 8))  # starts two rows above the image, ends past its right edge
    assert mask[:2, 6:].all() and mask.sum() == 4


def test_overlay_outside_or_empty_gives_none():
    assert place_overlay(np.ones((2, 2)), (20, 20), (8, 8)) is None
    assert place_overlay(np.zeros((2, 2)), (1, 1), (8, 8)) is None


def test_multi_frame_overlay_targets():
    assert overlay_frame_targets(3, 2, 10) == [(0, 1), (1, 2), (2, 3)]
    assert overlay_frame_targets(3, 9, 10) == [(0, 8), (1, 9)]
    assert overlay_frame_targets(-1, 1, 10) == []
