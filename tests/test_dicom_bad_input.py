"""A folder mixing good images with every kind of bad file: each bad file is named with a reason, nothing raises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_data import (BAD_FILES, CORRUPT_J2K, CORRUPT_SLICE, GOOD_SLICES, J2K_SLICE,  # noqa: F401
                           bad_folder, demo_study, only_bad_folder)

from workstation.core.study import Catalog, FileLocation, FileProblem
from workstation.demo import DemoStudy
from workstation.dicom.header import read_header
from workstation.dicom.scan import scan_paths
from workstation.dicom.ordering import build_catalog
from workstation.services.loading import SeriesLoad, StudyLibrary, thumbnail

GOOD_FILES = {f"good-{k}.dcm" for k in GOOD_SLICES} | {"good-ct-small.dcm", "good-mr-small.dcm", "good-j2k.dcm",
                                                        CORRUPT_J2K}


@pytest.fixture(scope="module")
def catalog(bad_folder: Path) -> Catalog:
    return scan_paths([bad_folder])


def _problems_by_name(catalog: Catalog) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in catalog.problems:
        found.setdefault(Path(problem.location.path).name, []).append(problem.reason)
    return found


def test_every_file_was_tried(catalog: Catalog) -> None:
    assert catalog.files_scanned == len(BAD_FILES) + len(GOOD_FILES)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_bad_file_has_a_specific_reason(catalog: Catalog, name: str) -> None:
    problems = _problems_by_name(catalog)
    assert name in problems, f"{name} not reported; problems: {problems}"
    [reason] = problems[name]
    for word in BAD_FILES[name]:
        assert word.lower() in reason.lower(), reason
    assert "Traceback" not in reason and len(reason) < 300


def test_only_bad_files_are_problems(catalog: Catalog) -> None:
    assert set(_problems_by_name(catalog)) == set(BAD_FILES)


def test_every_good_file_is_in_a_display_set(catalog: Catalog) -> None:
    shown = {Path(h.location.path).name for ds in catalog.display_sets for h in ds.instances}
    assert shown == GOOD_FILES
    assert {ds.series.modality for ds in catalog.display_sets} == {"CT", "MR"}


def test_demo_slices_with_mixed_transfer_syntaxes_form_one_stack(catalog: Catalog, demo_study: DemoStudy) -> None:
    [demo] = [ds for ds in catalog.display_sets if ds.series.series_instance_uid == demo_study.series_instance_uid]
    assert len(demo.frames) == len(GOOD_SLICES) + 2
    assert demo.warnings == [] and demo.slice_spacing == pytest.approx(2.5)
    syntaxes = {h.transfer_syntax_uid for h in demo.instances}
    assert syntaxes == {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"}


def test_corrupt_jpeg2000_fails_at_load_and_the_other_frames_load(catalog: Catalog, demo_study: DemoStudy) -> None:
    [demo] = [ds for ds in catalog.display_sets if ds.series.series_instance_uid == demo_study.series_instance_uid]
    load = SeriesLoad(demo)
    finished: list = []
    load.finished.connect(lambda problems, cancelled: finished.append((problems, cancelled)))
    volume = load.run()  # must not raise
    [problem] = load.problems
    assert Path(problem.location.path).name == CORRUPT_J2K
    assert "could not be decoded" in problem.reason
    bad_index = [Path(f.instance.location.path).name for f in demo.frames].index(CORRUPT_J2K)
    assert bad_index == CORRUPT_SLICE  # frames are the demo slices 0..6 in position order
    assert set(volume.frame_errors) == {bad_index}
    assert volume.frame_errors[bad_index] == problem.reason
    assert not volume.fully_loaded and volume.loaded.sum() == len(demo.frames) - 1
    for k in [*GOOD_SLICES, J2K_SLICE]:
        assert volume.loaded[k]
        assert np.array_equal(volume.array[k], demo_study.phantom.hu[k])  # incl. the good JPEG 2000 slice
    assert not volume.array[bad_index].any()  # never filled
    assert finished == [(load.problems, False)]


def test_thumbnail_of_undecodable_series_is_none(bad_folder: Path) -> None:
    [display_set] = scan_paths([bad_folder / CORRUPT_J2K]).display_sets
    assert thumbnail(display_set) is None


def test_every_display_set_loads_without_raising(catalog: Catalog) -> None:
    for display_set in catalog.display_sets:
        volume = SeriesLoad(display_set).run()
        assert volume.loaded.any()


def test_folder_of_only_bad_files(only_bad_folder: Path) -> None:
    catalog = scan_paths([only_bad_folder])
    assert catalog.display_sets == [] and catalog.headers == []
    assert len(catalog.problems) == len(BAD_FILES)


def test_missing_path_and_unreadable_file_are_problems(tmp_path: Path) -> None:
    catalog = scan_paths([tmp_path / "does-not-exist"])
    assert [p.reason for p in catalog.problems] == ["no such file or folder"]
    result = read_header(FileLocation(str(tmp_path)))  # a folder where a file is expected
    assert isinstance(result, FileProblem) and "cannot read" in result.reason


def test_opening_the_same_folder_twice_lists_each_problem_once(bad_folder: Path) -> None:
    library = StudyLibrary()
    changes: list = []
    library.catalog_changed.connect(lambda catalog, new_problems: changes.append(len(new_problems)))
    first = library.open_paths([bad_folder]).result(timeout=60)
    second = library.open_paths([bad_folder]).result(timeout=60)
    assert changes == [len(BAD_FILES), len(BAD_FILES)]  # each scan reports what it found
    assert len(second.problems) == len(first.problems) == len(BAD_FILES)
    assert len(second.headers) == len(first.headers)
    assert [d.key for d in second.display_sets] == [d.key for d in first.display_sets]


def test_build_catalog_keeps_distinct_problems() -> None:
    a = FileProblem(FileLocation("/x/a.dcm"), "not a DICOM file")
    b = FileProblem(FileLocation("/x/a.dcm"), "truncated: pixel data needs 10 bytes, file has 5")
    assert build_catalog([], [a, b, a], files_scanned=3).problems == [a, b]
