"""Tests for the synthetic chest CT demo study (phantom + DICOM writer)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from workstation.demo import DemoStudy, Phantom, make_chest_phantom, write_demo_study

SMALL = dict(slices=24, size=128)


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return make_chest_phantom(seed=7, **SMALL)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> DemoStudy:
    return write_demo_study(tmp_path_factory.mktemp("demo") / "study", seed=7, **SMALL)


def _read_series(directory: Path) -> list[pydicom.Dataset]:
    """Read every slice and order by position, as a viewer must."""
    datasets = [pydicom.dcmread(p) for p in sorted(directory.glob("*.dcm"))]
    return sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))


def _mm_to_index(ph: Phantom, x: float, y: float, k: int) -> tuple[int, int, int]:
    ox, oy, _ = ph.origin_mm
    return k, round((y - oy) / ph.pixel_spacing_mm), round((x - ox) / ph.pixel_spacing_mm)


def _patch(ph: Phantom, x: float, y: float, k: int, half: int = 1) -> np.ndarray:
    k, r, c = _mm_to_index(ph, x, y, k)
    return ph.hu[k, r - half:r + half + 1, c - half:c + half + 1].astype(float)


def _sphere_voxels(ph: Phantom, nodule, radius_mm: float) -> tuple[np.ndarray, ...]:
    """Indices of voxel centres within ``radius_mm`` of the nodule centre."""
    ox, oy, oz = ph.origin_mm
    k, r, c = np.indices(ph.shape, sparse=True)
    cx, cy, cz = nodule.center_mm
    d2 = ((oz + k * ph.slice_thickness_mm - cz) ** 2
          + (oy + r * ph.pixel_spacing_mm - cy) ** 2
          + (ox + c * ph.pixel_spacing_mm - cx) ** 2)
    return np.nonzero(d2 <= radius_mm ** 2)


# -- phantom -----------------------------------------------------------------


def test_phantom_volume_basics(phantom: Phantom) -> None:
    assert phantom.hu.dtype == np.int16
    assert phantom.shape == (24, 128, 128)
    assert phantom.hu.min() >= -1024 and phantom.hu.max() <= 3071
    assert phantom.slice_thickness_mm == 2.5
    assert phantom.pixel_spacing_mm == pytest.approx(358.4 / 128)


def test_same_seed_is_identical_and_different_seed_differs(phantom: Phantom) -> None:
    again = make_chest_phantom(seed=7, **SMALL)
    assert np.array_equal(phantom.hu, again.hu)
    assert phantom.nodules == again.nodules
    other = make_chest_phantom(seed=8, **SMALL)
    assert not np.array_equal(phantom.hu, other.hu)
    assert phantom.nodules != other.nodules


def test_default_anatomy_is_fixed_randomised_anatomy_varies() -> None:
    a, b = (make_chest_phantom(seed=s, **SMALL) for s in (1, 2))
    assert np.array_equal(a.lung_mask, b.lung_mask)
    c, d = (make_chest_phantom(seed=s, randomise=True, **SMALL) for s in (1, 2))
    assert not np.array_equal(c.lung_mask, d.lung_mask)
    assert not np.array_equal(a.lung_mask, c.lung_mask)


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_default_nodules_count_sizes_and_inside_lung(seed: int) -> None:
    ph = make_chest_phantom(seed=seed, **SMALL)
    diameters = [n.diameter_mm for n in ph.nodules]
    assert 4 <= len(diameters) <= 6
    assert all(4.0 <= d <= 20.0 for d in diameters)
    assert sum(d >= 6.0 for d in diameters) >= 2
    for n in ph.nodules:
        assert ph.lung_mask[_sphere_voxels(ph, n, n.diameter_mm / 2)].all()
        assert 30.0 <= n.hu <= 50.0


@pytest.mark.parametrize("seed", range(6))
def test_randomised_nodules_in_range(seed: int) -> None:
    ph = make_chest_phantom(seed=seed, randomise=True, **SMALL)
    assert 0 <= len(ph.nodules) <= 6
    for n in ph.nodules:
        assert 3.0 <= n.diameter_mm <= 25.0
        assert ph.lung_mask[_sphere_voxels(ph, n, n.diameter_mm / 2)].all()


def test_nodule_geometry_matches_index_and_spacing(phantom: Phantom) -> None:
    spacing = np.array([phantom.pixel_spacing_mm, phantom.pixel_spacing_mm,
                        phantom.slice_thickness_mm])
    for n in phantom.nodules:
        at_index = np.array(phantom.index_to_mm(*n.center_index))
        assert (np.abs(at_index - np.array(n.center_mm)) <= spacing / 2 + 1e-6).all()
        k, r, c = n.center_index
        if n.diameter_mm >= 8.0:  # centre voxel fully inside, up to noise
            assert abs(phantom.hu[k, r, c] - n.hu) < 5 * phantom.noise_sigma_hu
            # Anisotropic voxels: extent in slices and in pixels follows mm.
            solid = phantom.hu > -300
            run_z = _run_length(solid[:, r, c], k)
            run_x = _run_length(solid[k, r, :], c)
            assert abs(run_z - n.diameter_mm / phantom.slice_thickness_mm) <= 2
            assert abs(run_x - n.diameter_mm / phantom.pixel_spacing_mm) <= 2


def _run_length(line: np.ndarray, start: int) -> int:
    lo = hi = start
    while lo > 0 and line[lo - 1]:
        lo -= 1
    while hi < line.size - 1 and line[hi + 1]:
        hi += 1
    return hi - lo + 1


def test_plausible_hu_in_air_lung_mediastinum_and_spine(phantom: Phantom) -> None:
    mid = phantom.shape[0] // 2
    heart_level = round(0.3 * (phantom.shape[0] - 1))
    assert np.median(phantom.hu[mid, :4, :4]) == pytest.approx(-1000, abs=30)
    for x in (-105.0, 105.0):  # peripheral right and left lung
        assert -920 <= np.median(_patch(phantom, x, -40.0, mid, half=2)) <= -780
    assert 0 <= _patch(phantom, 16.0, -21.0, heart_level).mean() <= 80
    lung_values = phantom.hu[mid][phantom.lung_mask[mid]]
    assert -900 <= np.median(lung_values) <= -780
    for k in range(phantom.shape[0]):  # posterior bone is present on every slice
        k_, r, c = _mm_to_index(phantom, 0.0, 60.0, k)
        box = phantom.hu[k, r - 15:r + 15, c - 12:c + 12]
        assert box.max() >= 600


# -- writer ------------------------------------------------------------------


def test_written_series_reads_back_exactly(study: DemoStudy) -> None:
    datasets = _read_series(study.directory)
    ph = study.phantom
    assert len(datasets) == ph.shape[0] == len(study.files)
    for k, ds in enumerate(datasets):
        hu = apply_modality_lut(ds.pixel_array, ds)
        assert np.array_equal(hu, ph.hu[k])
        assert int(ds.InstanceNumber) == k + 1
        assert [float(v) for v in ds.ImagePositionPatient] == pytest.approx(
            list(ph.slice_position_mm(k)))
        assert float(ds.SliceLocation) == pytest.approx(ph.slice_position_mm(k)[2])
    for n in ph.nodules:
        k, r, c = n.center_index
        ds = datasets[k]
        assert apply_modality_lut(ds.pixel_array, ds)[r, c] == ph.hu[k, r, c]


def test_file_meta_and_attributes(study: DemoStudy) -> None:
    ds = pydicom.dcmread(study.files[0])  # no force: a real Part 10 file
    meta = ds.file_meta
    assert meta.MediaStorageSOPClassUID == CTImageStorage == ds.SOPClassUID
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert UID(meta.ImplementationClassUID).is_valid
    assert ds.Modality == "CT" and ds.BodyPartExamined == "CHEST"
    assert (ds.Rows, ds.Columns) == (128, 128)
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
    assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
    assert [float(v) for v in ds.WindowCenter] == [40, -600]
    assert [float(v) for v in ds.WindowWidth] == [400, 1500]
    assert list(ds.WindowCenterWidthExplanation) == ["MEDIASTINUM", "LUNG"]
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert str(ds.PatientName) == "DEMO^PHANTOM" and ds.PatientBirthDate == "19000101"
    assert ds.PatientID.startswith("DEMO-") and ds.PatientSex == "O"
    assert ds.Manufacturer == "Workstation Demo Phantom"
    assert ds.StudyDescription == "CT CHEST DEMO (SYNTHETIC)"
    assert ds.SeriesDescription == "Chest CT phantom 2.5 mm" and ds.SeriesNumber == 2
    for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                ds.FrameOfReferenceUID):
        assert UID(uid).is_valid
    assert ds.StudyInstanceUID == study.study_instance_uid
    assert ds.SeriesInstanceUID == study.series_instance_uid


def test_series_is_consistent_and_volume_roughly_centred(study: DemoStudy) -> None:
    datasets = _read_series(study.directory)
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({ds.get(key) for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    z = [float(ds.ImagePositionPatient[2]) for ds in datasets]
    assert np.allclose(np.diff(z), 2.5)
    assert abs(z[0] + z[-1]) < 2.5
    x0 = float(datasets[0].ImagePositionPatient[0])
    assert abs(x0 + (128 - 1) / 2 * float(datasets[0].PixelSpacing[1])) < 1e-3


def test_file_names_do_not_reveal_slice_order(study: DemoStudy) -> None:
    names_in_position_order = [p.name for p in study.files]
    assert names_in_position_order != sorted(names_in_position_order)
    by_name = [pydicom.dcmread(p, stop_before_pixels=True)
               for p in sorted(study.directory.glob("*.dcm"))]
    assert [int(ds.InstanceNumber) for ds in by_name] != sorted(
        int(ds.InstanceNumber) for ds in by_name)


def test_ground_truth_json_matches_phantom(study: DemoStudy) -> None:
    assert study.ground_truth_path == study.directory.parent / "ground_truth.json"
    truth = json.loads(study.ground_truth_path.read_text())
    ph = study.phantom
    assert truth["format"] == "workstation.demo-ground-truth/1"
    assert truth["seed"] == 7
    assert truth["study_instance_uid"] == study.study_instance_uid
    assert truth["series_instance_uid"] == study.series_instance_uid
    assert (truth["slices"], truth["rows"], truth["columns"]) == ph.shape
    assert truth["pixel_spacing_mm"] == ph.pixel_spacing_mm
    assert truth["slice_thickness_mm"] == ph.slice_thickness_mm
    assert len(truth["nodules"]) == len(ph.nodules) >= 4
    for entry, n in zip(truth["nodules"], ph.nodules):
        assert entry["center_mm"] == list(n.center_mm)
        assert entry["center_index"] == list(n.center_index)
        assert entry["diameter_mm"] == n.diameter_mm and entry["hu"] == n.hu


def test_uids_are_deterministic_per_seed(study: DemoStudy, tmp_path: Path) -> None:
    again = write_demo_study(tmp_path / "again", seed=7, **SMALL)
    assert again.study_instance_uid == study.study_instance_uid
    assert again.series_instance_uid == study.series_instance_uid
    sop = lambda s: [pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID  # noqa: E731
                     for p in s.files]
    assert sop(again) == sop(study)
    assert [p.name for p in again.files] == [p.name for p in study.files]
    other = write_demo_study(tmp_path / "other", seed=8, **SMALL)
    assert other.study_instance_uid != study.study_instance_uid
    assert other.series_instance_uid != study.series_instance_uid
    assert not set(sop(other)) & set(sop(study))
