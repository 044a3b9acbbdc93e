"""Grouping into display sets and ordering along the slice normal, with the warnings users see."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from fixtures_data import DEMO_SLICES, copy_series, demo_study, rewrite  # noqa: F401
from pydicom.uid import generate_uid

from workstation.core.study import DisplaySet
from workstation.demo import DemoStudy
from workstation.dicom.scan import scan_paths
from workstation.services.loading import SeriesLoad

SAGITTAL = [0, 1, 0, 0, 0, -1]  # normal = row x column = (-1, 0, 0)


@pytest.fixture()
def series_copy(demo_study: DemoStudy, tmp_path: Path) -> list[Path]:
    """Writable copy of the demo series; index k is slice k (ascending z)."""
    return copy_series(demo_study, tmp_path / "series")


def _only_display_set(folder: Path) -> DisplaySet:
    catalog = scan_paths([folder])
    assert catalog.problems == []
    assert len(catalog.display_sets) == 1, [d.warnings for d in catalog.display_sets]
    return catalog.display_sets[0]


def _z(display_set: DisplaySet) -> list[float]:
    return [frame.geometry.position[2] for frame in display_set.frames]


@pytest.mark.parametrize("numbering", ["reversed", "shuffled"])
def test_instance_numbers_do_not_decide_order(series_copy: list[Path], numbering: str) -> None:
    numbers = list(range(DEMO_SLICES, 0, -1))
    if numbering == "shuffled":
        numbers = [int(n) for n in np.random.default_rng(3).permutation(numbers)]
    for path, number in zip(series_copy, numbers):
        rewrite(path, InstanceNumber=number)
    display_set = _only_display_set(series_copy[0].parent)
    assert np.all(np.diff(_z(display_set)) > 0)
    assert [f.instance.instance_number for f in display_set.frames] == numbers
    assert display_set.warnings == []


def test_order_follows_the_slice_normal_not_z(series_copy: list[Path]) -> None:
    """A sagittal stack: its normal is -x, so display order is decreasing x whatever the files say."""
    xs = np.random.default_rng(5).permutation(DEMO_SLICES) * 2.0
    for path, x in zip(series_copy, xs):
        rewrite(path, ImageOrientationPatient=SAGITTAL, ImagePositionPatient=[float(x), -150.0, 150.0])
    display_set = _only_display_set(series_copy[0].parent)
    x_order = [frame.geometry.position[0] for frame in display_set.frames]
    assert x_order == sorted(xs.tolist(), reverse=True)
    assert display_set.slice_spacing == pytest.approx(2.0)
    assert display_set.warnings == []


def test_missing_slices_give_a_gap_warning_naming_the_spacing(series_copy: list[Path], demo_study: DemoStudy) -> None:
    removed = (19, 20, 21)
    for k in removed:
        series_copy[k].unlink()
    display_set = _only_display_set(series_copy[0].parent)
    assert len(display_set.frames) == DEMO_SLICES - 3
    assert display_set.slice_spacing == pytest.approx(2.5)
    [warning] = display_set.warnings
    assert "irregular slice spacing" in warning
    assert "2.50 mm" in warning and "10.00 mm" in warning and "after slice 19" in warning
    # The volume still holds each remaining slice at its own index.
    volume = SeriesLoad(display_set).run()
    kept = [k for k in range(DEMO_SLICES) if k not in removed]
    assert np.array_equal(volume.array, demo_study.phantom.hu[kept])


def test_mixed_orientations_split_into_display_sets(series_copy: list[Path]) -> None:
    sagittal = series_copy[5:8]
    for i, path in enumerate(sagittal):
        rewrite(path, ImageOrientationPatient=SAGITTAL, ImagePositionPatient=[-10.0 + 5 * i, -179.0, 179.0])
    catalog = scan_paths([series_copy[0].parent])
    assert catalog.problems == []
    assert len(catalog.display_sets) == 2
    axial, sag = catalog.display_sets
    assert len(axial.frames) == DEMO_SLICES - 3 and len(sag.frames) == 3
    assert axial.series == sag.series and axial.key != sag.key
    assert (axial.label, sag.label) == ("1/2", "2/2")
    for display_set in (axial, sag):
        assert "mixes 2 orientations" in display_set.warnings[0]
    assert "axial" in axial.warnings[0] and "sagittal" in sag.warnings[0]
    assert {Path(f.instance.location.path) for f in sag.frames} == set(sagittal)
    assert np.all(np.diff(_z(axial)) > 0)


def test_duplicate_positions_are_reported(series_copy: list[Path]) -> None:
    duplicate = series_copy[10].with_name("duplicate.dcm")
    ds = pydicom.dcmread(series_copy[10])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(duplicate, enforce_file_format=True)
    display_set = _only_display_set(series_copy[0].parent)
    assert len(display_set.frames) == DEMO_SLICES + 1
    assert any("1 frame(s) share a position" in w for w in display_set.warnings)
    assert display_set.slice_spacing == pytest.approx(2.5)


def test_same_instance_twice_is_listed_once(series_copy: list[Path], tmp_path: Path) -> None:
    extra = tmp_path / "again"
    extra.mkdir()
    (extra / "copy.dcm").write_bytes(series_copy[4].read_bytes())
    catalog = scan_paths([series_copy[0].parent, extra])
    assert catalog.files_scanned == DEMO_SLICES + 1
    [display_set] = catalog.display_sets
    assert len(display_set.frames) == DEMO_SLICES and display_set.warnings == []


def test_without_positions_order_is_by_instance_number(series_copy: list[Path]) -> None:
    numbers = [int(n) for n in np.random.default_rng(11).permutation(DEMO_SLICES) + 1]
    for path, number in zip(series_copy, numbers):
        rewrite(path, InstanceNumber=number, ImagePositionPatient=None)
    display_set = _only_display_set(series_copy[0].parent)
    assert [f.instance.instance_number for f in display_set.frames] == list(range(1, DEMO_SLICES + 1))
    assert any("no ImagePositionPatient" in w and "InstanceNumber" in w for w in display_set.warnings)
    assert display_set.slice_spacing is None


def test_one_file_without_position_falls_back_to_instance_number(series_copy: list[Path]) -> None:
    for path, number in zip(series_copy, range(DEMO_SLICES, 0, -1)):
        rewrite(path, InstanceNumber=number)
    rewrite(series_copy[12], ImagePositionPatient=None)
    display_set = _only_display_set(series_copy[0].parent)
    assert [f.instance.instance_number for f in display_set.frames] == list(range(1, DEMO_SLICES + 1))
    assert any("no ImagePositionPatient" in w for w in display_set.warnings)


def _second_series(paths: list[Path], **changes) -> None:
    """Turn `paths` into another series of the same study, with other study-level details."""
    series_uid = generate_uid()
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 3
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        for keyword, value in changes.items():
            setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)


def test_series_disagreeing_on_study_details_stay_one_study(series_copy: list[Path]) -> None:
    """A series added later (e.g. by another device) may carry another StudyTime or StudyDescription."""
    _second_series(series_copy[:5], StudyTime="101500", StudyDescription="CT CHEST (edited)")
    catalog = scan_paths([series_copy[0].parent])
    assert len(catalog.display_sets) == 2
    [study] = catalog.studies()
    assert len(catalog.patients()) == 1
    assert sorted(len(d.frames) for d in catalog.display_sets_of(study)) == [5, DEMO_SLICES - 5]
    for display_set in catalog.display_sets:
        assert display_set.warnings == []
