"""Write a synthetic chest phantom as a DICOM CT series plus ground truth.

One template dataset is built per series and only the per-slice elements
are changed before each write, which keeps 120 slices well under a second
or two. UIDs derive from the seed (and the generation parameters), so the
same call always produces the same study.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian,
                         generate_uid)

from .phantom import Phantom, make_chest_phantom

GROUND_TRUTH_FORMAT = "workstation.demo-ground-truth/1"
GROUND_TRUTH_NAME = "ground_truth.json"
IMAGE_FOLDER = "DICOM"
RESCALE_INTERCEPT = -1024
STUDY_DATE, STUDY_TIME = "20240101", "090000"


@dataclass
class DemoStudy:
    """What ``write_demo_study`` produced."""

    directory: Path
    files: list[Path]  # in ascending slice position order (k = 0 first)
    phantom: Phantom
    ground_truth_path: Path
    study_instance_uid: str
    series_instance_uid: str


@dataclass(frozen=True)
class _Uids:
    study: str
    series: str
    frame_of_reference: str

    @classmethod
    def derive(cls, key: list[str]) -> "_Uids":
        return cls(*(generate_uid(entropy_srcs=key + [kind])
                     for kind in ("study", "series", "frame-of-reference")))

    def instance(self, k: int) -> str:
        return generate_uid(entropy_srcs=[self.series, "instance", str(k)])


def _uid_key(phantom: Phantom, seed: int) -> list[str]:
    """Entropy for the UIDs: the seed plus everything that changes the pixels."""
    s, r, c = phantom.shape
    return ["workstation-demo-phantom", str(seed), f"{s}x{r}x{c}",
            f"{phantom.pixel_spacing_mm:.4f}", f"{phantom.slice_thickness_mm:.4f}",
            f"random={phantom.randomised}", f"nodules={len(phantom.nodules)}"]


def _file_names(count: int, seed: int) -> list[str]:
    """Per-slice names from a seeded permutation, so names never give the order."""
    perm = np.random.default_rng([seed, 0xD1C0]).permutation(count)
    if count > 1 and (np.diff(perm) > 0).all():
        perm = perm[::-1].copy()
    return [f"IM{int(p) + 1:05d}.dcm" for p in perm]


def _template(phantom: Phantom, uids: _Uids, seed: int) -> Dataset:
    """Every element shared by the slices of the series."""
    _, rows, cols = phantom.shape
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = STUDY_DATE
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = STUDY_TIME
    ds.AccessionNumber = f"DEMO{seed:08d}"[-16:]
    ds.Modality = "CT"
    ds.Manufacturer = "Workstation Demo Phantom"
    ds.InstitutionName = "Synthetic"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "CT CHEST DEMO (SYNTHETIC)"
    ds.SeriesDescription = f"Chest CT phantom {phantom.slice_thickness_mm:g} mm"
    ds.ManufacturerModelName = "workstation.demo"
    ds.PatientName = "DEMO^PHANTOM"
    ds.PatientID = f"DEMO-{seed:04d}"
    ds.PatientBirthDate = "19000101"
    ds.PatientSex = "O"
    ds.PatientIdentityRemoved = "YES"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = _ds(phantom.slice_thickness_mm)
    ds.SpacingBetweenSlices = _ds(phantom.slice_thickness_mm)
    ds.KVP = "120"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = uids.study
    ds.SeriesInstanceUID = uids.series
    ds.StudyID = f"{seed % 100000:05d}"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = uids.frame_of_reference
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.PixelSpacing = [_ds(phantom.pixel_spacing_mm)] * 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = ["40", "-600"]
    ds.WindowWidth = ["400", "1500"]
    ds.WindowCenterWidthExplanation = ["MEDIASTINUM", "LUNG"]
    ds.RescaleIntercept = str(RESCALE_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.file_meta = _file_meta()
    return ds


def _file_meta() -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "WS_DEMO_1"
    return meta


def _ds(value: float) -> str:
    """Decimal String without float noise (at most 16 characters)."""
    return f"{value:.10g}"


def _stored_pixels(hu: np.ndarray) -> bytes:
    """HU -> stored value (HU + 1024) as little-endian uint16."""
    return (hu.astype(np.int32) - RESCALE_INTERCEPT).clip(0, 4095).astype("<u2").tobytes()


def write_ct_series(phantom: Phantom, out_dir: Path, seed: int) -> list[Path]:
    """Write one CT Image Storage file per slice; returns paths in slice order.

    UIDs and file names derive from ``seed`` and the phantom's parameters;
    existing files of the same name in ``out_dir`` are overwritten.
    """
    return _write_series(phantom, Path(out_dir), seed, _Uids.derive(_uid_key(phantom, seed)))


def _write_series(phantom: Phantom, out_dir: Path, seed: int, uids: _Uids) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = _template(phantom, uids, seed)
    paths = []
    for k, name in enumerate(_file_names(phantom.shape[0], seed)):
        _set_slice(ds, phantom, uids, k)
        path = out_dir / name
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


def _set_slice(ds: Dataset, phantom: Phantom, uids: _Uids, k: int) -> None:
    """Per-slice elements on the shared template."""
    sop_uid = uids.instance(k)
    x, y, z = phantom.slice_position_mm(k)
    ds.SOPInstanceUID = sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [_ds(x), _ds(y), _ds(z)]
    ds.SliceLocation = _ds(z)
    ds.PixelData = _stored_pixels(phantom.hu[k])
    ds["PixelData"].VR = "OW"


def _ground_truth(phantom: Phantom, seed: int, uids: _Uids) -> dict:
    """JSON-ready description of the study and its nodules."""
    slices, rows, cols = phantom.shape
    return {
        "format": GROUND_TRUTH_FORMAT,
        "seed": seed,
        "study_instance_uid": uids.study,
        "series_instance_uid": uids.series,
        "slices": slices,
        "rows": rows,
        "columns": cols,
        "pixel_spacing_mm": phantom.pixel_spacing_mm,
        "slice_thickness_mm": phantom.slice_thickness_mm,
        "origin_mm": list(phantom.origin_mm),
        "nodules": [{"center_mm": list(n.center_mm), "diameter_mm": n.diameter_mm,
                     "center_index": list(n.center_index), "hu": n.hu}
                    for n in phantom.nodules],
    }


def write_demo_study(out_dir: Path, seed: int = 7, slices: int = 120, size: int = 512,
                     randomise: bool = False) -> DemoStudy:
    """Generate the phantom, write its series into ``out_dir/DICOM`` and ``out_dir/ground_truth.json``.

    The ground truth sits beside the image folder, not in it, so opening the
    folder shows only images. ``size`` keeps a 358.4 mm field of view (0.7 mm pixels at 512). Stale
    files from an earlier, different study in ``out_dir`` are not removed.
    """
    out_dir = Path(out_dir)
    phantom = make_chest_phantom(seed=seed, slices=slices, size=size, randomise=randomise)
    uids = _Uids.derive(_uid_key(phantom, seed))
    files = _write_series(phantom, out_dir / IMAGE_FOLDER, seed, uids)
    truth_path = out_dir / GROUND_TRUTH_NAME
    truth_path.write_text(json.dumps(_ground_truth(phantom, seed, uids), indent=2) + "\n")
    return DemoStudy(directory=out_dir / IMAGE_FOLDER, files=files, phantom=phantom,
                     ground_truth_path=truth_path, study_instance_uid=uids.study,
                     series_instance_uid=uids.series)
