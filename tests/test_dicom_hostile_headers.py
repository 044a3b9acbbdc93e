"""Header values that size allocations and loops are checked against what the file holds, before anything is built.

Each file here is small and lies about itself; the scan must name the lie quickly and
without reserving what the header claims.
"""

from __future__ import annotations

import struct
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fixtures_data import demo_study, image_dataset, sample_file, write_image  # noqa: F401
from pydicom.dataelem import DataElement
from pydicom.encaps import encapsulate, generate_fragments
from pydicom.uid import RLELossless

from workstation.core.study import FileLocation, InstanceHeader
from workstation.demo import DemoStudy
from workstation.dicom import limits
from workstation.dicom.header import read_header
from workstation.dicom.scan import scan_paths
from workstation.services.loading import SeriesLoad


def problem_of(path: Path) -> str:
    result = read_header(FileLocation(str(path)))
    assert not isinstance(result, InstanceHeader), f"{path.name} was accepted"
    return result.reason


def within(seconds: float, work):
    """Run `work` on a thread; fail (leaving it behind) if it takes longer than `seconds`."""
    box: list = []
    thread = threading.Thread(target=lambda: box.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return box[0]


def rle_file(path: Path, frames: int = 2, **attributes) -> Path:
    pixels = (np.arange(frames * 8 * 8, dtype=np.uint16) % 1000).reshape(frames, 8, 8)
    ds = image_dataset(pixels[0])
    ds.NumberOfFrames = frames
    ds.compress(RLELossless, pixels if frames > 1 else pixels[0])
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


# -- frame counts ----------------------------------------------------------------------------------


def test_native_file_declaring_more_frames_than_it_holds_is_named(tmp_path: Path) -> None:
    path = tmp_path / "frames.dcm"
    ds = image_dataset(np.zeros((8, 8), np.uint16))
    ds.PixelData = bytes(8 * 8 * 2 * 2)  # two frames
    ds.NumberOfFrames = 2147483647
    ds.save_as(path, enforce_file_format=True)
    assert problem_of(path) == "declares 2147483647 frames, holds 2"


def test_compressed_1kb_file_declaring_millions_of_frames_builds_nothing(tmp_path: Path) -> None:
    """Before: every declared frame became a FrameRef in the catalog (10^8 of them: 8 GB)."""
    path = rle_file(tmp_path / "many.dcm", NumberOfFrames=3_000_000)
    assert path.stat().st_size < 2048
    catalog = within(2.0, lambda: scan_paths([path]))
    assert catalog.display_sets == []
    [problem] = catalog.problems
    assert problem.reason == "declares 3000000 frames, holds 2"


@pytest.mark.parametrize("frames", ["-5", "0"])
def test_negative_or_zero_frame_count_is_a_problem_not_an_invisible_image(tmp_path: Path, frames: str) -> None:
    path = tmp_path / "negative.dcm"
    write_image(path, np.zeros((8, 8), np.uint16), NumberOfFrames=frames)
    catalog = scan_paths([path])
    assert catalog.display_sets == []
    assert [p.reason for p in catalog.problems] == [f"declares {int(frames)} frames"]


def test_frame_count_that_is_not_a_number_is_named(tmp_path: Path) -> None:
    path = write_image(tmp_path / "nan.dcm", np.zeros((8, 8), np.uint16), NumberOfFrames="9")
    data = path.read_bytes()
    old = struct.pack("<HH2sH", 0x0028, 0x0008, b"IS", 2) + b"9 "
    path.write_bytes(data.replace(old, struct.pack("<HH2sH", 0x0028, 0x0008, b"IS", 4) + b"abc "))
    assert problem_of(path) == "NumberOfFrames 'abc' is not a number"


def test_frames_over_the_limit_are_refused_even_when_present(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(limits, "MAX_FRAMES", 3)
    path = tmp_path / "four.dcm"
    ds = image_dataset(np.zeros((4, 4), np.uint8))
    ds.PixelData, ds.NumberOfFrames = bytes(4 * 4 * 4), 4
    ds.save_as(path, enforce_file_format=True)
    assert problem_of(path) == "declares 4 frames (more than 3)"


# -- pixel layout ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("keyword", "value", "words"), [
    ("BitsStored", 28441, "BitsStored 28441 does not fit BitsAllocated 16"),
    ("BitsStored", 2000, "BitsStored 2000 does not fit"),
    ("BitsAllocated", 12, "BitsAllocated 12 is not possible"),
    ("SamplesPerPixel", 0, "SamplesPerPixel 0 is not supported"),
    ("Columns", 0, "image size 0 x 8 is not possible"),
    ("PixelRepresentation", 7, "PixelRepresentation 7 is not 0 or 1"),
    ("RescaleSlope", "1e300", "RescaleSlope 1e+300 is not usable"),
])
def test_impossible_pixel_layouts_are_named_at_scan(tmp_path: Path, keyword: str, value, words: str) -> None:
    path = tmp_path / "layout.dcm"
    write_image(path, np.zeros((8, 8), np.uint16), **{keyword: value})
    assert words in problem_of(path)


def test_rows_of_the_wrong_vr_or_with_two_values_are_named(tmp_path: Path) -> None:
    path = tmp_path / "rows.dcm"
    ds = image_dataset(np.zeros((8, 8), np.uint16))
    ds["Rows"] = DataElement(0x00280010, "UL", 2**31)
    ds.save_as(path, enforce_file_format=True)
    assert problem_of(path) == "image size 8 x 2147483648 is not possible"
    ds["Rows"] = DataElement(0x00280010, "US", [8, 8])
    ds.save_as(path, enforce_file_format=True)
    assert problem_of(path) == "Rows has 2 values"


@pytest.mark.parametrize("change", ["drop data", "wrong VR descriptor", "short data", "8-bit descriptor as text"])
def test_palette_lookup_tables_that_lie_are_problems_and_the_load_finishes(tmp_path: Path, change: str) -> None:
    ds = pydicom.dcmread(sample_file("examples_palette.dcm"))
    if change == "drop data":
        del ds.GreenPaletteColorLookupTableData
    elif change == "wrong VR descriptor":
        ds["RedPaletteColorLookupTableDescriptor"] = DataElement(0x00281101, "UL", [256, 0])
    elif change == "short data":
        ds.BluePaletteColorLookupTableData = ds.BluePaletteColorLookupTableData[:10]
    else:
        ds["RedPaletteColorLookupTableDescriptor"] = DataElement(0x00281101, "LO", "256\\0\\8")
    path = tmp_path / "palette.dcm"
    ds.save_as(path)
    assert "palette" in problem_of(path) or "lookup table" in problem_of(path)


# -- bounded reading -------------------------------------------------------------------------------


def _peak_bytes_while(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_misread_element_length_does_not_reserve_gigabytes(tmp_path: Path) -> None:
    """Before: pydicom read(0xFFFFFFF0) reserved 4 GB first (MemoryError wherever memory is limited)."""
    path = write_image(tmp_path / "ok.dcm", np.zeros((8, 8), np.uint16), StudyDescription="X" * 10)
    data = path.read_bytes()
    at = data.index(struct.pack("<HH2sH", 0x0008, 0x1030, b"LO", 10))
    forged = struct.pack("<HH2s2xI", 0x0008, 0x1030, b"UT", 0xFFFFFFF0)  # a long VR claiming 4 GB
    (tmp_path / "bad.dcm").write_bytes(data[:at] + forged + data[at + 8:])
    peak = _peak_bytes_while(lambda: read_header(FileLocation(str(tmp_path / "bad.dcm"))))
    assert peak < 64 << 20


def test_big_endian_declared_for_little_endian_data_reads_what_the_file_holds(tmp_path: Path) -> None:
    ds = image_dataset(np.zeros((64, 64), np.uint16))
    ds.add_new(0x00051010, "UT", "sixteen letters.")  # first, with a 4-byte length 16: read big endian, 268 MB
    path = tmp_path / "le.dcm"
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    le, be = b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.2\x00"
    assert data.count(le) == 1
    (tmp_path / "be.dcm").write_bytes(data.replace(le, be))
    result = []
    peak = _peak_bytes_while(lambda: result.append(read_header(FileLocation(str(tmp_path / "be.dcm")))))
    assert peak < 64 << 20
    assert not isinstance(result[0], InstanceHeader)


def test_a_2gb_sparse_file_is_refused_from_its_head(tmp_path: Path) -> None:
    """Before: 501 s to call it "not a DICOM file" (pydicom parsed 268 million empty elements)."""
    for name, head in (("zeros.dcm", b""), ("dicm.dcm", bytes(128) + b"DICM")):
        path = tmp_path / name
        with path.open("wb") as out:
            out.write(head)
            out.truncate(2 << 30)
        started = time.monotonic()
        reason = within(30.0, lambda: problem_of(path))
        assert time.monotonic() - started < 10.0
        assert "not a dicom" in reason.lower() or "zero bytes where the data set should start" in reason, reason


def test_deeply_nested_sequences_are_a_problem_not_a_recursion_error(tmp_path: Path) -> None:
    path = write_image(tmp_path / "deep.dcm", np.zeros((8, 8), np.uint16))
    data = path.read_bytes()
    at = data.index(b"\x08\x00\x60\x00")  # Modality: nest before it, in tag order
    nest = (struct.pack("<HH2s2xI", 0x0008, 0x0051, b"SQ", 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)) * 5000
    (tmp_path / "deep.dcm").write_bytes(data[:at] + nest + data[at:])
    reason = within(10.0, lambda: problem_of(tmp_path / "deep.dcm"))
    assert reason == "corrupt DICOM header: sequences nested too deeply"


def test_a_sequence_of_a_million_items_is_refused_within_the_element_budget(tmp_path: Path) -> None:
    path = write_image(tmp_path / "items.dcm", np.zeros((8, 8), np.uint16))
    data = path.read_bytes()
    at = data.index(b"\x08\x00\x60\x00")
    items = struct.pack("<HHI", 0xFFFE, 0xE000, 0) * 1_000_000
    blob = struct.pack("<HH2s2xI", 0x0008, 0x0051, b"SQ", 0xFFFFFFFF) + items + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    (tmp_path / "items.dcm").write_bytes(data[:at] + blob + data[at:])
    started = time.monotonic()
    reason = within(30.0, lambda: problem_of(tmp_path / "items.dcm"))
    assert "more than" in reason and "elements" in reason
    assert time.monotonic() - started < 20.0  # ~3 s on an idle 2-core machine; parsing all of it took minutes


def test_a_deflate_bomb_is_refused_before_it_inflates(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(limits, "MAX_INFLATED_BYTES", 4 << 20)
    ds = image_dataset(np.zeros((8, 8), np.uint16))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    ds.save_as(tmp_path / "small.dcm", enforce_file_format=True)
    data = (tmp_path / "small.dcm").read_bytes()
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    padding = struct.pack("<HH2s2xI", 0x0009, 0x0010, b"OB", 8 << 20) + bytes(8 << 20)  # a private 8 MB element
    body = compressor.compress(padding) + compressor.flush()
    head_end = _meta_end(data)
    (tmp_path / "bomb.dcm").write_bytes(data[:head_end] + body)
    assert (tmp_path / "bomb.dcm").stat().st_size < 64 << 10
    assert problem_of(tmp_path / "bomb.dcm") == "deflated data set inflates to more than 4 MB"


def _meta_end(data: bytes) -> int:
    (group_length,) = struct.unpack_from("<I", data, 132 + 8)
    return 132 + 12 + group_length


# -- geometry that overflows -----------------------------------------------------------------------


@pytest.mark.parametrize("spacing", [["1e308", "1e308"], ["NaN", "NaN"], ["0", "0"]])
def test_absurd_pixel_spacing_is_ignored_with_a_warning_and_the_load_finishes(
        tmp_path: Path, demo_study: DemoStudy, spacing) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    for source in demo_study.files[:3]:
        ds = pydicom.dcmread(source)
        ds.PixelSpacing = spacing
        ds.save_as(folder / source.name)
    [display_set] = scan_paths([folder]).display_sets
    assert display_set.first.pixel_spacing is None
    words = {"1e308": "PixelSpacing 1e+308\\1e+308 mm is not plausible", "NaN": "PixelSpacing 'NaN\\NaN' is not two numbers",
             "0": "PixelSpacing 0\\0 mm is not plausible"}[spacing[0]]
    assert [w for w in display_set.warnings if "PixelSpacing" in w] == [f"{words}: ignored, distances unknown"]
    load = SeriesLoad(display_set)
    finished: list = []
    load.finished.connect(lambda problems, cancelled: finished.append(problems))
    volume = load.run()
    assert finished == [[]] and volume.fully_loaded
    assert np.isfinite(volume.affine).all()


def test_positions_and_orientations_that_overflow_are_unknown_not_infinite(tmp_path: Path) -> None:
    path = write_image(tmp_path / "far.dcm", np.zeros((8, 8), np.uint16), ImagePositionPatient=["1e308", "0", "0"],
                       ImageOrientationPatient=["1e308", "0", "0", "0", "1e308", "0"])
    header = read_header(FileLocation(str(path)))
    assert isinstance(header, InstanceHeader)
    assert header.geometry.position is None and header.geometry.orientation is None


# -- compressed streams that lie -------------------------------------------------------------------


def test_frames_beyond_the_fragments_are_named(tmp_path: Path) -> None:
    path = rle_file(tmp_path / "rle.dcm", frames=2, NumberOfFrames=3)
    assert problem_of(path) == "declares 3 frames, holds 2"


def test_jpeg_frame_header_larger_than_the_image_is_refused_at_scan(tmp_path: Path) -> None:
    """Before: the decoder was handed the forged SOF size and ran for minutes."""
    ds = pydicom.dcmread(sample_file("SC_rgb_jpeg_dcmtk.dcm"))
    [_, stream] = generate_fragments(ds.PixelData)  # the offset table, then one frame
    stream = bytearray(stream)
    sof = stream.index(b"\xff\xc0")
    struct.pack_into(">HH", stream, sof + 5, 60000, 60000)
    ds.PixelData = encapsulate([bytes(stream)])
    ds.save_as(tmp_path / "sof.dcm")
    assert problem_of(tmp_path / "sof.dcm") == "compressed image is 60000 x 60000, header says 100 x 100"


def test_rle_header_with_the_wrong_segment_count_is_refused(tmp_path: Path) -> None:
    path = rle_file(tmp_path / "rle.dcm", frames=1)
    ds = pydicom.dcmread(path)
    [_, stream] = generate_fragments(ds.PixelData)
    stream = bytearray(stream)
    struct.pack_into("<I", stream, 0, 15)
    ds.PixelData = encapsulate([bytes(stream)])
    ds.save_as(path)
    assert problem_of(path).startswith("RLE header declares 15 segments, 2 expected")


# -- two files, one SOP Instance UID ----------------------------------------------------------------


def test_two_files_with_one_uid_and_different_pixels_are_both_kept_and_reported(tmp_path: Path,
                                                                              demo_study: DemoStudy) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    first = pydicom.dcmread(demo_study.files[0])
    for source in demo_study.files[:4]:
        ds = pydicom.dcmread(source)
        if source == demo_study.files[2]:
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = first.SOPInstanceUID
        ds.save_as(folder / source.name)
    (folder / "copy-of-0.dcm").write_bytes(demo_study.files[0].read_bytes())  # the same instance twice: once
    catalog = scan_paths([folder])
    [display_set] = catalog.display_sets
    assert len(display_set.frames) == 4
    [problem] = catalog.problems  # the later of the two differing files, whichever the scan met second
    assert f"shares SOP Instance UID {first.SOPInstanceUID}" in problem.reason and "other pixel data" in problem.reason
    pair = {str(folder / demo_study.files[2].name), str(folder / demo_study.files[0].name), str(folder / "copy-of-0.dcm")}
    assert problem.location.path in pair
    keys = {f.instance.sop_instance_uid for f in display_set.frames}
    assert f"{first.SOPInstanceUID}#2" in keys and first.SOPInstanceUID in keys
    volume = SeriesLoad(display_set).run()
    assert volume.fully_loaded
    assert not np.array_equal(volume.array[0], volume.array[2])
    again = scan_paths([folder])  # re-opened: the same answer, the problem listed once
    assert [p.reason for p in again.problems] == [problem.reason]


def test_a_descriptive_value_of_the_wrong_vr_is_treated_as_absent(tmp_path: Path) -> None:
    """Before: 'corrupt DICOM header (BytesLengthException ...)' for a StudyTime stored as FL."""
    path = write_image(tmp_path / "time.dcm", np.zeros((8, 8), np.uint16), StudyTime="132645.921000")
    data = path.read_bytes()
    old = struct.pack("<HH2sH", 0x0008, 0x0030, b"TM", 14)
    path.write_bytes(data.replace(old, struct.pack("<HH2sH", 0x0008, 0x0030, b"FL", 14)))
    header = read_header(FileLocation(str(path)))
    assert isinstance(header, InstanceHeader) and header.series.study.time == ""

