"""Where files come from: folders, zip archives (read in place) and DICOMDIR (confined to its folder)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fixtures_data import DEMO_SLICES, demo_catalog, demo_display_set, demo_study, sample_file  # noqa: F401
from pydicom.fileset import FileSet

import workstation.dicom.header  # noqa: F401 - loaded, so the spy below reaches its readers
from workstation.core.study import Catalog, DisplaySet, FileLocation, FileProblem
from workstation.demo import DemoStudy
from workstation.dicom.scan import scan_paths
from workstation.dicom.sources import iter_locations, safe_join
from workstation.services.loading import SeriesLoad


def _uids(display_set: DisplaySet) -> list[str]:
    return [frame.instance.sop_instance_uid for frame in display_set.frames]


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


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


# -- zip ---------------------------------------------------------------------------------


def test_zip_scans_and_loads_like_the_folder(demo_study: DemoStudy, demo_display_set: DisplaySet, tmp_path: Path) -> None:
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, path in enumerate(sorted(demo_study.files)):
            zf.write(path, f"PATIENT/series {i % 2}/{path.name}")
        zf.writestr("PATIENT/readme.txt", "not an image")
        zf.writestr("PATIENT/empty/", "")
    catalog = scan_paths([archive])
    [display_set] = catalog.display_sets
    assert _uids(display_set) == _uids(demo_display_set)
    assert display_set.series == demo_display_set.series
    for frame in display_set.frames:
        assert frame.instance.location.path == str(archive)
        assert frame.instance.location.member.startswith("PATIENT/series ")
    [problem] = catalog.problems
    assert problem.location == FileLocation(str(archive), "PATIENT/readme.txt")
    assert "not a DICOM" in problem.reason
    assert str(problem.location) == f"{archive}!PATIENT/readme.txt"
    volume = SeriesLoad(display_set).run()
    assert volume.array.dtype == np.int16
    assert np.array_equal(volume.array, demo_study.phantom.hu)
    assert _files_under(tmp_path) == {archive}  # nothing extracted


def test_zip_inside_a_folder_is_opened(demo_study: DemoStudy, tmp_path: Path) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    with zipfile.ZipFile(folder / "part.ZIP", "w") as zf:
        for path in demo_study.files[:3]:
            zf.write(path, path.name)
    catalog = scan_paths([folder])
    assert catalog.problems == []
    [display_set] = catalog.display_sets
    assert len(display_set.frames) == 3
    assert all(f.instance.location.member for f in display_set.frames)


def test_zip_member_with_parent_references_is_read_in_place(demo_study: DemoStudy, tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    archive = deep / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../evil.dcm", demo_study.files[7].read_bytes())
        zf.writestr("/abs/evil2.dcm", demo_study.files[8].read_bytes())
    before = _files_under(tmp_path)
    catalog = scan_paths([archive])
    assert catalog.problems == []
    members = sorted(h.location.member for h in catalog.headers)
    assert members == ["../../evil.dcm", "/abs/evil2.dcm"]
    [display_set] = catalog.display_sets
    volume = SeriesLoad(display_set).run()
    assert np.array_equal(volume.array, demo_study.phantom.hu[[7, 8]])
    assert _files_under(tmp_path) == before
    for where in (deep, Path.cwd()):  # where an extracting reader would have put them
        assert not (where / "../../evil.dcm").exists()
    assert not Path("/abs/evil2.dcm").exists()


def test_rewritten_zip_at_the_same_path_is_read_again(demo_study: DemoStudy, tmp_path: Path) -> None:
    """Re-exporting an archive to the same path and opening it again must not use the old directory."""
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(demo_study.files[0], "x.dcm")
    [first] = scan_paths([archive]).display_sets
    assert np.array_equal(SeriesLoad(first).run().array[0], demo_study.phantom.hu[0])
    with zipfile.ZipFile(archive, "w") as zf:  # new layout: member offsets move
        zf.writestr("readme.txt", "notes " * 100)
        zf.write(demo_study.files[1], "x.dcm")
    catalog = scan_paths([archive])
    assert [p.location.member for p in catalog.problems] == ["readme.txt"]
    assert "not a DICOM" in catalog.problems[0].reason
    [second] = catalog.display_sets
    assert np.array_equal(SeriesLoad(second).run().array[0], demo_study.phantom.hu[1])


def test_unreadable_zip_is_a_problem(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x.dcm", b"hello")
    data = bytearray(archive.read_bytes())
    data[:4] = b"XXXX"  # damage the local header: still "a zip" by its central directory
    archive.write_bytes(bytes(data))
    catalog = scan_paths([archive])  # must not raise
    assert catalog.headers == []
    [problem] = catalog.problems
    assert problem.location == FileLocation(str(archive), "x.dcm")
    assert "zip" in problem.reason.lower()


# -- DICOMDIR ---------------------------------------------------------------------------------


@pytest.fixture()
def media(demo_study: DemoStudy, tmp_path: Path) -> Path:
    """The demo series written as DICOM media by pydicom's FileSet; returns the DICOMDIR path."""
    fs = FileSet()
    for path in demo_study.files:
        fs.add(path)
    fs.write(tmp_path / "media")
    return tmp_path / "media" / "DICOMDIR"


def test_dicomdir_gives_the_same_display_set(media: Path, demo_display_set: DisplaySet, demo_study: DemoStudy,
                                             opened: list[FileLocation]) -> None:
    catalog = scan_paths([media])
    assert catalog.problems == [] and catalog.files_scanned == DEMO_SLICES
    [display_set] = catalog.display_sets
    assert _uids(display_set) == _uids(demo_display_set)
    assert all(Path(loc.path).is_relative_to(media.parent) for loc in opened)
    volume = SeriesLoad(display_set).run()
    assert np.array_equal(volume.array, demo_study.phantom.hu)


def test_folder_holding_a_dicomdir_is_not_read_twice(media: Path, demo_display_set: DisplaySet) -> None:
    catalog = scan_paths([media.parent])
    assert catalog.problems == [] and catalog.files_scanned == DEMO_SLICES
    [display_set] = catalog.display_sets
    assert _uids(display_set) == _uids(demo_display_set)


def test_dicomdir_file_ids_match_lower_case_names(media: Path, demo_display_set: DisplaySet) -> None:
    for path in sorted(media.parent.rglob("*"), key=lambda p: -len(p.parts)):  # deepest first
        if path.name != "DICOMDIR":
            path.rename(path.with_name(path.name.lower()))
    catalog = scan_paths([media])
    assert catalog.problems == []
    assert _uids(catalog.display_sets[0]) == _uids(demo_display_set)


def _edit_records(dicomdir: Path, edit) -> list:
    ds = pydicom.dcmread(dicomdir)
    images = [r for r in ds.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    edit(images)
    ds.save_as(dicomdir)
    return images


def test_dicomdir_entry_escaping_its_folder_is_refused(media: Path, opened: list[FileLocation]) -> None:
    def escape(images: list) -> None:
        images[0].ReferencedFileID = ["..", "..", "etc", "passwd"]
        images[1].ReferencedFileID = ["..", "..", "..", "..", "..", "..", "..", "..", "etc", "passwd"]
    _edit_records(media, escape)
    catalog = scan_paths([media])
    assert len(catalog.problems) == 2
    for problem in catalog.problems:
        assert problem.location.path == str(media)
        assert "outside its folder" in problem.reason and "etc/passwd" in problem.reason
    assert len(catalog.headers) == DEMO_SLICES - 2
    assert opened and all(Path(loc.path).is_relative_to(media.parent) for loc in opened)
    assert not any("passwd" in loc.path for loc in opened)


def test_dicomdir_symlink_out_of_its_folder_is_refused(media: Path, demo_study: DemoStudy, tmp_path: Path,
                                                      opened: list[FileLocation]) -> None:
    images = _edit_records(media, lambda images: None)
    target = media.parent.joinpath(*images[0].ReferencedFileID)
    outside = tmp_path / "outside.dcm"
    outside.write_bytes(demo_study.files[0].read_bytes())
    target.unlink()
    target.symlink_to(outside)
    catalog = scan_paths([media])
    [problem] = catalog.problems
    assert "outside its folder" in problem.reason
    assert len(catalog.headers) == DEMO_SLICES - 1
    assert not any(Path(loc.path).resolve() == outside for loc in opened)


def test_dicomdir_entry_for_missing_file(media: Path) -> None:
    images = _edit_records(media, lambda images: None)
    missing = media.parent.joinpath(*images[3].ReferencedFileID)
    missing.unlink()
    catalog = scan_paths([media])
    [problem] = catalog.problems
    assert problem.location.path == str(missing.resolve())
    assert "missing" in problem.reason


def test_unreadable_dicomdir(tmp_path: Path) -> None:
    fake = tmp_path / "DICOMDIR"
    fake.write_text("not a dicomdir")
    catalog = scan_paths([fake])
    [problem] = catalog.problems
    assert "unreadable DICOMDIR" in problem.reason


def test_safe_join() -> None:
    root = Path("/srv/media").resolve()
    assert safe_join(root, ["DICOM", "IM0001"]) == root / "DICOM" / "IM0001"
    for parts in (["..", "etc", "passwd"], ["DICOM", "..", "..", "x"], ["/etc/passwd"], ["DICOM\\..\\..\\x"],
                  ["a/b"], ["."], [""], [], ["C:", "x"], ["a\x00b"]):
        assert safe_join(root, parts) is None, parts


def test_pydicom_dicomdir_examples_scan_without_crashing() -> None:
    dicomdir = Path(sample_file("dicomdirtests/DICOMDIR"))
    catalog = scan_paths([dicomdir])
    assert catalog.problems == []
    assert catalog.files_scanned == len(catalog.headers) == 31
    assert {ds.series.modality for ds in catalog.display_sets} == {"CT", "CR", "MR"}
    assert {p.patient_id for p in catalog.patients()} == {"77654033", "98890234"}


def test_dicomdir_of_images_without_pixel_data() -> None:
    dicomdir = Path(sample_file("dicomdirtests/DICOMDIR")).parent / "TINY_ALPHA" / "DICOMDIR"
    catalog = scan_paths([dicomdir])
    assert catalog.headers == [] and catalog.display_sets == []
    assert len(catalog.problems) == catalog.files_scanned == 50
    assert {p.reason for p in catalog.problems} == {"no pixel data (CT Image Storage)"}


def test_whole_dicomdirtests_folder() -> None:
    folder = Path(sample_file("dicomdirtests/DICOMDIR")).parent
    catalog = scan_paths([folder])
    assert len(catalog.headers) == 31
    reasons = {Path(p.location.path).name: p.reason for p in catalog.problems}
    assert "not a DICOM" in reasons["README.txt"]
    assert not any(name.startswith("DICOMDIR") for name in reasons)  # the index variants are not images
    loaded = SeriesLoad(catalog.display_sets[0]).run()
    assert loaded.fully_loaded


def test_iter_locations_order_is_stable_and_skips_hidden(tmp_path: Path) -> None:
    for name in ("b.dcm", "a.dcm", ".hidden.dcm", "sub/c.dcm"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [item.location if isinstance(item, FileProblem) else item for item in iter_locations([tmp_path])]
    names = [Path(loc.path).relative_to(tmp_path).as_posix() for loc in found]
    assert names == ["a.dcm", "b.dcm", "sub/c.dcm"]  # empty files: skipped as not DICOM, in the same order
