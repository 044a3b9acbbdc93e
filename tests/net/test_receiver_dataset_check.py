"""The walk that decides whether a received data set is whole (dicom/dataset_check.py), and the cache using it."""

from __future__ import annotations

import io
import zlib

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from workstation.dicom.cache import InvalidInstance, StudyCache
from workstation.dicom.dataset_check import MalformedDataSet, NeedMore, check_data_set
from workstation.dicom.encoded import meta_transfer_syntax

FILES = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "rtplan.dcm", "test-SR.dcm",
         "JPEG2000.dcm", "emri_small_RLE.dcm", "waveform_ecg.dcm"]


def split(name: str) -> tuple[bytes, int, pydicom.uid.UID]:
    encoded = open(get_testdata_file(name, download=False), "rb").read()
    syntax, start = meta_transfer_syntax(encoded)
    return encoded, start, pydicom.uid.UID(syntax)


@pytest.mark.parametrize("name", FILES)
def test_whole_data_sets_pass_and_cut_ones_do_not(name):
    encoded, start, syntax = split(name)
    ds = pydicom.dcmread(io.BytesIO(encoded))
    found = check_data_set(encoded, start, syntax.is_implicit_VR, syntax.is_little_endian)
    assert (found.sop_instance_uid, found.study_instance_uid) == (ds.SOPInstanceUID, ds.StudyInstanceUID)
    boundaries = top_level_ends(encoded, start, syntax)
    cuts = sorted({len(encoded) - n for n in (1, 2, 7, 100, 1000)} | set(range(start + 1, len(encoded), max(97, len(encoded) // 300))))
    for cut in cuts:
        try:
            check_data_set(encoded[:cut], start, syntax.is_implicit_VR, syntax.is_little_endian)
        except MalformedDataSet:
            continue
        assert cut in boundaries, f"cut at {cut} of {len(encoded)} passed"  # between two elements: whole as far as anyone can tell


def top_level_ends(encoded: bytes, start: int, syntax) -> set[int]:
    """Where each top-level element ends, as pydicom's reader finds them."""
    from pydicom.filereader import data_element_generator

    fp = io.BytesIO(encoded)
    fp.seek(start)
    ends = set()
    for _ in data_element_generator(fp, syntax.is_implicit_VR, syntax.is_little_endian, defer_size=0):
        ends.add(fp.tell())
    return ends


def test_a_head_is_enough_unless_the_header_goes_beyond_it():
    encoded, start, syntax = split("MR_small_implicit.dcm")  # Pixel Data is its last element
    head = encoded[:encoded.index(b"\xe0\x7f\x10\x00") + 12]  # up to the Pixel Data element's header (and 4 bytes)
    found = check_data_set(head, start, True, True, end=len(encoded))  # the pixels are skipped by their length
    assert found.sop_instance_uid == pydicom.dcmread(io.BytesIO(encoded)).SOPInstanceUID
    with pytest.raises(NeedMore):
        check_data_set(encoded[:start + 200], start, True, True, end=len(encoded))
    encoded, start, _ = split("CT_small.dcm")  # trailing padding after the pixels: its header lies beyond the head
    with pytest.raises(NeedMore):
        check_data_set(encoded[:encoded.index(b"\xe0\x7f\x10\x00") + 12], start, False, True, end=len(encoded))


def test_garbage_and_deep_nesting_are_malformed():
    with pytest.raises(MalformedDataSet):
        check_data_set(b"\x08\x00\x16\x00XY\x02\x001\x00", 0, False, True)
    with pytest.raises(MalformedDataSet, match="no valid VR"):
        check_data_set(b"\x08\x00\x05\x00CS\x00\x00" + b"\x08\x00\x16\x00XY\x02\x001\x00", 0, False, True)
    ds = Dataset()
    inner = ds
    for _ in range(40):
        item = Dataset()
        inner.ReferencedSeriesSequence = [item]
        inner = item
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=True)
    with pytest.raises(MalformedDataSet, match="nested more than"):
        check_data_set(buffer.getvalue(), 0, False, True)


def test_a_long_header_is_walked_from_the_file(tmp_path):
    """More than the kept head (64 kB) before the UIDs: the cache walks the written file instead."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    ds.add_new(0x00090010, "LO", "TEST")
    ds.add_new(0x00091001, "OB", bytes(200_000))
    encoded, syntax = io.BytesIO(), ds.file_meta.TransferSyntaxUID
    ds.save_as(encoded, enforce_file_format=True)
    data = encoded.getvalue()
    body = data[meta_transfer_syntax(data)[1]:]
    cache = StudyCache(tmp_path, 10**9)
    incoming = cache.incoming(ds.SOPClassUID, ds.SOPInstanceUID, syntax)
    incoming.write(body)
    stored = incoming.commit()
    assert stored.new and stored.path.read_bytes().endswith(body)
    broken = cache.incoming(ds.SOPClassUID, ds.SOPInstanceUID, syntax)
    broken.write(body[:-3])
    with pytest.raises(InvalidInstance, match="does not parse"):
        broken.commit()


def test_a_deflate_stream_cut_short_is_refused(tmp_path):
    encoded, start, _ = split("CT_small.dcm")
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = deflater.compress(encoded[start:]) + deflater.flush()
    ds = pydicom.dcmread(io.BytesIO(encoded))
    incoming = StudyCache(tmp_path, 10**9).incoming(ds.SOPClassUID, ds.SOPInstanceUID, "1.2.840.10008.1.2.1.99")
    incoming.write(deflated[:-10])
    with pytest.raises(InvalidInstance, match="ends before its deflate stream"):
        incoming.commit()
