"""Hostile and corrupt media (issue 18): DICOMDIRs, zip bombs, symbolic links, huge folders, polyglot files.

Each case must end as problems with reasons beside the files that load: no exception out of scan_paths,
no file read outside the opened folder, nothing read through for minutes.
"""

from __future__ import annotations

import os
import struct
import time
import zipfile
import zlib
from pathlib import Path

import pydicom
import pytest
from fixtures_data import DEMO_SLICES, demo_study, sample_file  # noqa: F401
from pydicom.fileset import FileSet

import workstation.dicom.header  # noqa: F401 - loaded, so the spy below reaches its readers
from workstation.core.study import FileLocation
from workstation.demo import DemoStudy
from workstation.dicom import sources
from workstation.dicom.scan import scan_paths

MAX_SECONDS = 20  # generous on a loaded 2-core machine; the real figures are printed


@pytest.fixture()
def opened(monkeypatch: pytest.MonkeyPatch) -> list[FileLocation]:
    """Every location whose bytes the readers open (header, pixels, ordering...: every module importing open_location)."""
    import sys

    from workstation.dicom import sources

    seen: list[FileLocation] = []
    original = sources.open_location

    def spy(location: FileLocation):
        seen.append(location)
        return original(location)

    for name, module in list(sys.modules.items()):
        if name.startswith("workstation.") and getattr(module, "open_location", None) is original:
            monkeypatch.setattr(module, "open_location", spy)
    return seen


@pytest.fixture()
def media(demo_study: DemoStudy, tmp_path: Path) -> Path:
    """The demo series written as DICOM media by pydicom's FileSet; returns the DICOMDIR path."""
    fs = FileSet()
    for path in demo_study.files:
        fs.add(path)
    fs.write(tmp_path / "media")
    return tmp_path / "media" / "DICOMDIR"


# -- DICOMDIR bytes made by hand (explicit VR little endian), to give elements any VR and nesting


def _element(group: int, element: int, vr: bytes, value: bytes, undefined: bool = False) -> bytes:
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        length = 0xFFFFFFFF if undefined else len(value)
        return struct.pack("<HH2sHI", group, element, vr, 0, length) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def _item(content: bytes, undefined: bool = False) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF if undefined else len(content)) + content


def _text(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b" " * (len(raw) % 2)


def _dicomdir(body: bytes) -> bytes:
    meta = (_element(0x0002, 0x0001, b"OB", b"\0\1")
            + _element(0x0002, 0x0002, b"UI", _text("1.2.840.10008.1.3.10"))
            + _element(0x0002, 0x0003, b"UI", _text("1.2.3.4"))
            + _element(0x0002, 0x0010, b"UI", _text("1.2.840.10008.1.2.1")))
    meta = _element(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta))) + meta
    return b"\0" * 128 + b"DICM" + meta + body


def _record(file_id: list[str], extra: bytes = b"") -> bytes:
    return _item(_element(0x0004, 0x1430, b"CS", _text("IMAGE"))
                 + _element(0x0004, 0x1500, b"CS", _text("\\".join(file_id))) + extra)


def _records(*items: bytes) -> bytes:
    return _element(0x0004, 0x1220, b"SQ", b"".join(items))


def _loose_demo_files(demo_study: DemoStudy, folder: Path, count: int = 5) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for i, path in enumerate(demo_study.files[:count]):
        copies.append(folder / f"IM{i:04d}")
        copies[-1].write_bytes(path.read_bytes())
    return copies


# -- DICOMDIR


def test_deeply_nested_sequences_without_delimiters(demo_study: DemoStudy, tmp_path: Path) -> None:
    """pydicom recursed into 5,000 undefined-length sequences and raised RecursionError out of the scan."""
    folder = tmp_path / "cd"
    _loose_demo_files(demo_study, folder)
    open_sequence = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
    open_item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    body = struct.pack("<HH2sHI", 0x0004, 0x1220, b"SQ", 0, 0xFFFFFFFF) + open_item
    body += _element(0x0004, 0x1500, b"CS", _text("IM0000")) + (open_sequence + open_item) * 5000  # no delimiters
    (folder / "DICOMDIR").write_bytes(_dicomdir(body))
    catalog = scan_paths([folder / "DICOMDIR"])  # must not raise
    [problem] = catalog.problems
    assert problem.location.path == str(folder / "DICOMDIR")
    assert "DICOMDIR" in problem.reason and "nested deeper" in problem.reason
    assert len(catalog.headers) == 5  # the folder's files were read instead


def test_corrupt_dicomdir_is_one_problem_beside_the_files_that_load(demo_study: DemoStudy, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "cd"
    _loose_demo_files(demo_study, folder, 3)
    (folder / "DICOMDIR").write_bytes(_dicomdir(b"\x04\x00\x20\x12SQ\0\0\xff\xff\xff\xff" + os.urandom(64)))
    other = tmp_path / "other.dcm"
    other.write_bytes(demo_study.files[10].read_bytes())
    catalog = scan_paths([folder / "DICOMDIR", other])
    assert len(catalog.headers) == 4
    [problem] = catalog.problems
    assert "DICOMDIR" in problem.reason
    from workstation.cli import main

    assert main(["scan", str(folder / "DICOMDIR"), str(other)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "4 image instance(s), 1 unreadable" in out


def test_over_long_file_id_is_refused(media: Path) -> None:
    """A 5,000-character component used to raise OSError (file name too long) out of the scan."""
    ds = pydicom.dcmread(media)
    images = [r for r in ds.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    images[0].ReferencedFileID = ["A" * 5000]
    images[1].ReferencedFileID = ["DIR"] * 40 + ["X"]
    ds.save_as(media)
    catalog = scan_paths([media])
    assert len(catalog.headers) == DEMO_SLICES - 2
    assert len(catalog.problems) == 2
    assert all(p.location.path == str(media) and "DICOMDIR entry" in p.reason for p in catalog.problems)
    assert all(len(p.reason) < 400 for p in catalog.problems)


def test_wrong_vr_elements(demo_study: DemoStudy, tmp_path: Path) -> None:
    """ReferencedFileID as US or SQ, a record sequence as OB: AttributeError / TypeError before."""
    folder = tmp_path / "cd"
    _loose_demo_files(demo_study, folder, 3)
    good = _record(["IM0000"])
    as_number = _item(_element(0x0004, 0x1500, b"US", struct.pack("<H", 7)))
    as_sequence = _item(_element(0x0004, 0x1500, b"SQ", _item(_element(0x0004, 0x1430, b"CS", _text("X")))))
    (folder / "DICOMDIR").write_bytes(_dicomdir(_records(good, as_number, as_sequence, _record(["IM0001"]))))
    catalog = scan_paths([folder / "DICOMDIR"])
    assert sorted(Path(h.location.path).name for h in catalog.headers) == ["IM0000", "IM0001"]
    assert len(catalog.problems) == 2 and all("VR" in p.reason for p in catalog.problems)

    (folder / "DICOMDIR").write_bytes(_dicomdir(_element(0x0004, 0x1220, b"OB", b"\1\2\3\4")))
    catalog = scan_paths([folder / "DICOMDIR"])
    [problem] = catalog.problems
    assert "unreadable DICOMDIR" in problem.reason
    assert len(catalog.headers) == 3  # the folder instead


def test_file_id_through_a_symlinked_folder_out_of_the_media(media: Path, demo_study: DemoStudy, tmp_path: Path,
                                                            opened: list[FileLocation]) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "SECRET").write_bytes(demo_study.files[0].read_bytes())
    (media.parent / "LINK").symlink_to(outside, target_is_directory=True)
    ds = pydicom.dcmread(media)
    images = [r for r in ds.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    images[0].ReferencedFileID = ["LINK", "SECRET"]
    ds.save_as(media)
    catalog = scan_paths([media])
    [problem] = catalog.problems
    assert "outside its folder" in problem.reason
    assert not any(Path(loc.path).resolve().is_relative_to(outside) for loc in opened)


# -- zip archives


def _bomb(path: Path, real: int, declared: int) -> None:
    """One member: `real` zeros deflated, whose zip64 sizes declare `declared` bytes once inflated."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = packer.compress(bytes(real)) + packer.flush()
    name, crc, big = b"zeros.dcm", zlib.crc32(bytes(real)), 0xFFFFFFFF
    extra = struct.pack("<HHQQ", 1, 16, declared, len(data))
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 45, 0, 8, 0, 0, crc, big, big, len(name), len(extra)) + name + extra
    local += data
    central = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 45, 45, 0, 8, 0, 0, crc, big, big, len(name), len(extra),
                          0, 0, 0, 0, 0) + name + extra
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local), 0)
    path.write_bytes(local + central + end)


@pytest.mark.parametrize("declared, words", [(10 << 30, "too large"), (int(3.9 * (1 << 30)), "expands")])
def test_zip_bomb_member_is_refused_from_the_central_directory(tmp_path: Path, declared: int, words: str) -> None:
    """10 MB of deflated zeros declared as 10 GB (over the member limit) or 3.9 GB (just under it: its ratio)."""
    archive = tmp_path / "bomb.zip"
    _bomb(archive, 10 << 20, declared)
    assert zipfile.ZipFile(archive).getinfo("zeros.dcm").file_size == declared  # a zip as zipfile sees it
    started = time.monotonic()
    catalog = scan_paths([archive])
    elapsed = time.monotonic() - started
    [problem] = catalog.problems
    assert problem.location == FileLocation(str(archive), "zeros.dcm") and words in problem.reason
    assert elapsed < 2, elapsed


def test_zip_member_of_zeros_is_not_read_through(tmp_path: Path) -> None:
    """100 MB of zeros (1,000 times smaller deflated): refused by its ratio before a byte is inflated."""
    archive = tmp_path / "zeros.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("x.dcm", "w") as out:
        for _ in range(100):
            out.write(bytes(1 << 20))
    started = time.monotonic()
    [problem] = scan_paths([archive]).problems
    assert "expands" in problem.reason and "zip bomb" in problem.reason
    assert time.monotonic() - started < 2


def _many_members(path: Path, count: int) -> None:
    """A real zip of `count` one-byte stored members, written directly (zipfile takes seconds for this)."""
    local, central = bytearray(), bytearray()
    crc = zipfile.crc32(b"x")
    for i in range(count):
        name = b"m%06d" % i
        offset = len(local)
        local += struct.pack("<4s5HIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, 1, 1, len(name), 0) + name + b"x"
        central += struct.pack("<4s6HIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, 1, 1, len(name), 0, 0, 0, 0,
                               0, offset) + name
    entries = min(count, 0xFFFF)  # zip64 end record for more than 65,535
    end = b""
    if count > 0xFFFF:
        zip64_end_at = len(local) + len(central)
        end += struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), len(local))
        end += struct.pack("<4sIQI", b"PK\x06\x07", 0, zip64_end_at, 1)
        entries = 0xFFFF
    end += struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, entries, entries, len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))


def test_zip_with_100000_members_is_refused_before_reading_its_directory(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    archive = tmp_path / "many.zip"
    _many_members(archive, 100_000)
    assert len(zipfile.ZipFile(archive).infolist()) == 100_000  # a valid archive
    started = time.monotonic()
    catalog = scan_paths([archive])
    elapsed = time.monotonic() - started
    [problem] = catalog.problems
    assert "100000 members" in problem.reason and problem.location == FileLocation(str(archive))
    assert catalog.files_scanned == 1
    with capsys.disabled():
        print(f"\n[100,000-member zip refused in {elapsed * 1000:.1f} ms]", end=" ")
    assert elapsed < 1


def test_zip_with_bytes_appended_and_damaged_versions(demo_study: DemoStudy, tmp_path: Path) -> None:
    """NotImplementedError (a version zipfile refuses) used to escape from the scan."""
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(demo_study.files[0], "x.dcm")
    data = archive.read_bytes()
    appended = tmp_path / "appended.zip"
    appended.write_bytes(data + os.urandom(3000))
    central = data.rfind(b"PK\x01\x02")
    damaged = bytearray(data)
    damaged[central + 6] = 0xFF  # "version needed to extract" 25.5
    (tmp_path / "version.zip").write_bytes(bytes(damaged))
    method = bytearray(data)
    method[central + 10] = 99  # compression method 99 (AES): NotImplementedError on open
    (tmp_path / "method.zip").write_bytes(bytes(method))
    for name in ("appended.zip", "version.zip", "method.zip"):
        catalog = scan_paths([tmp_path / name])  # must not raise
        assert catalog.headers or catalog.problems, name
    assert "method 99" in scan_paths([tmp_path / "method.zip"]).problems[0].reason


# -- folders: symbolic links and many files


def test_symlink_loops_and_links_leaving_the_folder(demo_study: DemoStudy, tmp_path: Path,
                                                   opened: list[FileLocation]) -> None:
    folder = tmp_path / "opened"
    _loose_demo_files(demo_study, folder / "series", 3)
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "other.dcm").write_bytes(demo_study.files[5].read_bytes())
    (folder / "self").symlink_to(folder / "self")
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    (folder / "series" / "up").symlink_to(folder, target_is_directory=True)  # a folder loop, inside
    (folder / "to-file-outside.dcm").symlink_to(outside / "other.dcm")
    (folder / "to-folder-outside").symlink_to(outside, target_is_directory=True)
    (folder / "inside.dcm").symlink_to(folder / "series" / "IM0000")
    started = time.monotonic()
    catalog = scan_paths([folder])
    assert time.monotonic() - started < MAX_SECONDS
    reasons = {Path(p.location.path).name: p.reason for p in catalog.problems}
    assert set(reasons) == {"self", "a", "b", "to-file-outside.dcm", "to-folder-outside"}
    assert all("loop" in reasons[n] for n in ("self", "a", "b"))
    assert "outside the opened folder" in reasons["to-file-outside.dcm"] and "not read" in reasons["to-file-outside.dcm"]
    assert "outside the opened folder" in reasons["to-folder-outside"]
    assert len(catalog.headers) == 3  # the link inside reads a slice already there (same SOP Instance UID)
    assert not any(Path(loc.path).resolve().is_relative_to(outside) for loc in opened)


def test_20000_non_dicom_files_are_rejected_by_their_first_bytes(tmp_path: Path, demo_study: DemoStudy,
                                                                 opened: list[FileLocation],
                                                                 capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "junk"
    folder.mkdir()
    for i in range(20_000):
        (folder / f"note{i:05d}.txt").write_bytes(b"just text %d\n" % i)
    (folder / "zzz.dcm").write_bytes(demo_study.files[0].read_bytes())
    started = time.monotonic()
    catalog = scan_paths([folder])
    elapsed = time.monotonic() - started
    with capsys.disabled():  # shown in the test output, not captured
        print(f"\n[scan of 20,001 files in one folder, 20,000 not DICOM: {elapsed:.2f} s]", end=" ")
    assert catalog.files_scanned == 20_001 and len(catalog.headers) == 1
    assert len(catalog.problems) == 20_000 and {p.reason for p in catalog.problems} == {"not a DICOM file"}
    assert len(opened) == 1  # the header reader never saw the text files
    assert elapsed < MAX_SECONDS


def test_sparse_zero_file_is_rejected_at_once(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse.dcm"
    with open(sparse, "wb") as fp:
        fp.truncate(2 << 30)  # 2 GB of zeros, no blocks on disk
    started = time.monotonic()
    [problem] = scan_paths([sparse]).problems
    assert problem.reason == "not a DICOM file" and time.monotonic() - started < 1


def test_fifo_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.dcm")
    catalog = scan_paths([tmp_path])  # opening the pipe would wait for a writer forever
    [problem] = catalog.problems
    assert "not a regular file" in problem.reason


# -- a preamble that is another format's header (CVE-2019-11687)


def _polyglot(ct: Path, mr: str, target: Path) -> None:
    """A valid DICOM CT that is also a valid ZIP holding an MR: zip magic in the preamble, the archive in the
    trailing padding element (zip readers find its directory at the end of the file)."""
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.write(mr, "hidden.dcm")
        if buffer.tell() % 2:
            zf.comment = b"x"  # an even length: DICOM pads odd values, which would move the zip's end
    ds = pydicom.dcmread(ct)
    ds.preamble = b"PK\x03\x04" + bytes(124)
    ds.add_new(0xFFFCFFFC, "OB", buffer.getvalue())
    ds.save_as(target, enforce_file_format=True)


def test_dicom_that_is_also_a_zip_opens_as_dicom_both_ways_with_a_warning(demo_study: DemoStudy, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    for name in ("poly.zip", "poly.dcm"):
        _polyglot(demo_study.files[0], sample_file("MR_small.dcm"), folder / name)
    poly = folder / "poly.zip"
    with zipfile.ZipFile(poly) as zf:  # really a zip holding another DICOM object
        assert pydicom.dcmread(zf.open("hidden.dcm")).Modality == "MR"
    assert pydicom.dcmread(poly).Modality == "CT"
    for paths in ([poly], [folder / "poly.dcm"], [folder]):
        catalog = scan_paths(paths)
        assert {h.series.modality for h in catalog.headers} == {"CT"}, paths
        assert all(h.location.member is None for h in catalog.headers)
        assert catalog.problems and all("preamble looks like a ZIP archive (CVE-2019-11687)" in p.reason
                                        for p in catalog.problems)
    from workstation.cli import main

    assert main(["scan", str(poly)]) == 0
    out = capsys.readouterr().out
    assert "1 image instance(s), 0 unreadable, 1 warning(s)" in out
    assert "Warnings (files read):" in out and "ZIP archive (CVE-2019-11687)" in out and "CT" in out


def test_dicom_with_an_elf_preamble_is_flagged(demo_study: DemoStudy, tmp_path: Path, qtbot) -> None:
    ds = pydicom.dcmread(demo_study.files[3])
    ds.preamble = b"\x7fELF\x02\x01\x01" + bytes(121)
    ds.save_as(tmp_path / "elf.dcm", enforce_file_format=True)
    catalog = scan_paths([tmp_path])
    assert len(catalog.headers) == 1
    [problem] = catalog.problems
    assert "preamble looks like an ELF executable (CVE-2019-11687)" in problem.reason
    from workstation.ui.problems import ProblemsPanel

    panel = ProblemsPanel()
    qtbot.addWidget(panel)
    panel.show_catalog(catalog)
    shown = [panel.topLevelItem(i).text(1) for i in range(panel.count())]
    assert any("ELF executable (CVE-2019-11687)" in text for text in shown)


def test_preamble_in_a_zip_member_is_flagged(demo_study: DemoStudy, tmp_path: Path) -> None:
    ds = pydicom.dcmread(demo_study.files[3])
    ds.preamble = b"MZ" + bytes(126)
    ds.save_as(tmp_path / "pe.dcm", enforce_file_format=True)
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.write(tmp_path / "pe.dcm", "pe.dcm")
    catalog = scan_paths([tmp_path / "a.zip"])
    assert len(catalog.headers) == 1
    [problem] = catalog.problems
    assert problem.location.member == "pe.dcm" and "Windows (PE) executable" in problem.reason


def test_dicomdir_listing_one_file_many_times_reads_it_once(demo_study: DemoStudy, tmp_path: Path,
                                                             opened: list[FileLocation]) -> None:
    folder = tmp_path / "cd"
    _loose_demo_files(demo_study, folder, 2)
    (folder / "DICOMDIR").write_bytes(_dicomdir(_records(*[_record(["IM0000"])] * 20_000, _record(["IM0001"]))))
    started = time.monotonic()
    catalog = scan_paths([folder / "DICOMDIR"])
    assert time.monotonic() - started < MAX_SECONDS
    assert catalog.problems == [] and catalog.files_scanned == 2 and len(catalog.headers) == 2
    assert len(opened) == 2
