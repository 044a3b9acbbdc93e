"""The fast uncompressed path gives exactly what pydicom's pixel_array + modality LUT give."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut

from workstation.core.study import FileLocation
from workstation.dicom.header import read_header
from workstation.dicom.native import read_native_into
from workstation.dicom.pixels import decode_instance, output_dtype

from fixtures_data import demo_study  # noqa: F401 - session fixture


def _both_paths(path):
    header = read_header(FileLocation(str(path)))
    dtype = output_dtype([header.pixel])
    slot = np.full((header.pixel.rows, header.pixel.columns), 123, dtype=dtype)  # junk the read must overwrite
    used = read_native_into(header, slot)
    reference = decode_instance(header, dtype)[0]
    return used, slot, reference


@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
                                  "MR_small_padded.dcm", "vlut_04.dcm"])
def test_native_path_matches_pydicom_on_its_files(name):
    path = get_testdata_file(name, download=False)
    header = read_header(FileLocation(str(path)))
    if not hasattr(header, "pixel"):
        pytest.fail(f"{name} not readable: {header}")
    used, slot, reference = _both_paths(path)
    assert used, f"{name} should take the fast path"
    np.testing.assert_array_equal(slot, reference)
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(slot, apply_modality_lut(ds.pixel_array, ds).astype(slot.dtype))


def test_demo_ct_slice_takes_the_native_path(demo_study):
    used, slot, reference = _both_paths(demo_study.files[0])
    assert used and slot.dtype == np.int16
    np.testing.assert_array_equal(slot, reference)


def _rewrite(tmp_path, name, signed, bits_stored, first_raw, intercept=None):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm", download=False))
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = signed, bits_stored, bits_stored - 1
    raw = np.frombuffer(ds.PixelData, dtype="<u2").copy() & ((1 << bits_stored) - 1)
    raw[:4] = first_raw
    ds.PixelData = raw.tobytes()
    if intercept is not None:
        ds.RescaleSlope, ds.RescaleIntercept = 1, intercept
    out = tmp_path / name
    ds.save_as(out, enforce_file_format=True)
    return out


def test_unsigned_high_bits_are_masked_like_pydicom(tmp_path):
    path = _rewrite(tmp_path, "u12.dcm", 0, 12, [0xF123, 0x0FFF, 0x8000, 0x0001], intercept=-1024)
    used, slot, reference = _both_paths(path)
    assert used and slot.dtype == np.int16
    np.testing.assert_array_equal(slot, reference)
    assert slot[0, 0] == 0x123 - 1024 and slot[0, 1] == 4095 - 1024 and slot[0, 2] == -1024


def test_signed_12_bit_values_are_sign_extended_like_pydicom(tmp_path):
    path = _rewrite(tmp_path, "s12.dcm", 1, 12, [0x0F23, 0x07FF, 0x0800, 0x0001])
    used, slot, reference = _both_paths(path)
    assert used
    np.testing.assert_array_equal(slot, reference)
    assert list(slot[0, :4]) == [-221, 2047, -2048, 1]


def test_non_integer_rescale_and_compressed_take_the_general_path(tmp_path):
    assert not _both_paths(get_testdata_file("MR_small_RLE.dcm", download=False))[0]
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm", download=False))
    ds.RescaleSlope, ds.RescaleIntercept = 0.5, 3
    ds.save_as(tmp_path / "slope.dcm", enforce_file_format=True)
    used, _, reference = _both_paths(tmp_path / "slope.dcm")
    assert not used and reference.dtype == np.float32


def test_file_changed_since_scan_falls_back(tmp_path):
    path = _rewrite(tmp_path, "x.dcm", 1, 16, [1, 2, 3, 4])
    header = read_header(FileLocation(str(path)))
    path.write_bytes(path.read_bytes()[: header.native_pixel_offset] + b"\0" * 64)  # pixel element gone
    slot = np.zeros((header.pixel.rows, header.pixel.columns), np.int16)
    assert not read_native_into(header, slot)
