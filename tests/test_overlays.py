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


def test_planes_become_one_flat_colour_layer():
    from workstation.render.overlay import OVERLAY_PLANE_RGBA, overlay_planes_rgba

    bits = np.zeros((6, 6), np.uint8)
    bits[2, 3] = bits[4, 1] = 1
    plane = place_overlay(bits, (1, 1), (6, 6))
    rgba = overlay_planes_rgba([plane], (6, 6))
    assert tuple(rgba[2, 3]) == OVERLAY_PLANE_RGBA and tuple(rgba[4, 1]) == OVERLAY_PLANE_RGBA
    assert rgba[..., 3].sum() == 2 * 255  # transparent everywhere else


# -- reading them from files ------------------------------------------------------------------

from overlay_files import overlay_bits, write_overlay_image  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402

from workstation.core.study import FileLocation  # noqa: E402
from workstation.dicom.header import read_header  # noqa: E402
from workstation.dicom.overlays import read_overlays  # noqa: E402


def test_siemens_mr_overlay_is_read_and_placed():
    header = read_header(FileLocation(get_testdata_file("MR-SIEMENS-DICOM-WithOverlays.dcm", download=False)))
    assert header.overlay_groups == (0x6000,)
    planes = read_overlays(header)
    assert list(planes) == [0] and len(planes[0]) == 1
    plane = planes[0][0]
    assert plane.bits.sum() == 323 and plane.kind == "G"
    assert plane.mask((484, 484)).sum() == 323


def test_written_overlay_lands_where_its_origin_says(tmp_path):
    bits = overlay_bits(16, 16, (2, 3, 6, 9))
    path = write_overlay_image(tmp_path / "ov.dcm", np.zeros((32, 32), np.uint16), bits, origin=(5, 11), group=0x6002)
    header = read_header(FileLocation(str(path)))
    assert header.overlay_groups == (0x6002,)
    mask = read_overlays(header)[0][0].mask((32, 32))
    expected = np.zeros((32, 32), bool)
    expected[4 + 2:4 + 6, 10 + 3:10 + 9] = True
    np.testing.assert_array_equal(mask, expected)


def test_header_sizes_beyond_the_data_present_are_refused(tmp_path):
    """OverlayRows/Columns of 65535 with 8 bytes of data: nothing is allocated from the header's numbers."""
    bits = overlay_bits(8, 8, (0, 0, 8, 8))
    path = write_overlay_image(tmp_path / "lying.dcm", np.zeros((8, 8), np.uint16), bits)
    import pydicom

    ds = pydicom.dcmread(path)
    ds[0x6000, 0x0010].value = ds[0x6000, 0x0011].value = 65535
    ds.save_as(path)
    header = read_header(FileLocation(str(path)))
    assert read_overlays(header) == {}


def test_unusable_overlays_are_skipped(tmp_path):
    bits = overlay_bits(8, 8, (0, 0, 8, 8))
    path = write_overlay_image(tmp_path / "bits2.dcm", np.zeros((8, 8), np.uint16), bits)
    import pydicom

    ds = pydicom.dcmread(path)
    ds[0x6000, 0x0100].value = 16  # the retired "overlay in the pixel data's unused bits"
    ds.save_as(path)
    assert read_overlays(read_header(FileLocation(str(path)))) == {}
    assert read_overlays(read_header(FileLocation(get_testdata_file("CT_small.dcm", download=False)))) == {}
