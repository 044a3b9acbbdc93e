"""Shared test data for the non-UI tests: the generated demo study and small DICOM helpers.

Import the fixtures into a test module (``from fixtures_data import demo_study``).
A fixture imported into several modules is registered once per module, so the
expensive builders below memoise their result for the whole session.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from workstation.core.study import Catalog, DisplaySet
from workstation.core.volume import Volume
from workstation.demo import DemoStudy, write_demo_study
from workstation.dicom.scan import scan_paths
from workstation.services.loading import SeriesLoad

DEMO_SEED = 7
DEMO_SLICES = 40
DEMO_SIZE = 256

_cache: dict[str, Any] = {}


def sample_file(name: str) -> str:
    """Path of one of pydicom's (or pydicom-data's) test files; never downloads."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} not installed")
    return str(path)


def _memo(key: str, build):
    if key not in _cache:
        _cache[key] = build()
    return _cache[key]


@pytest.fixture(scope="session")
def demo_study(tmp_path_factory: pytest.TempPathFactory) -> DemoStudy:
    """The 40 x 256 x 256 demo chest CT, written once per session (read-only for tests)."""
    return _memo("demo_study", lambda: write_demo_study(
        tmp_path_factory.mktemp("demo") / "study", seed=DEMO_SEED, slices=DEMO_SLICES, size=DEMO_SIZE))


@pytest.fixture(scope="session")
def demo_catalog(demo_study: DemoStudy) -> Catalog:
    return _memo("demo_catalog", lambda: scan_paths([demo_study.directory]))


@pytest.fixture(scope="session")
def demo_display_set(demo_catalog: Catalog) -> DisplaySet:
    assert len(demo_catalog.display_sets) == 1
    return demo_catalog.display_sets[0]


@pytest.fixture(scope="session")
def demo_load(demo_display_set: DisplaySet) -> SeriesLoad:
    """A finished SeriesLoad of the demo series (its volume and problems)."""
    def build() -> SeriesLoad:
        load = SeriesLoad(demo_display_set)
        load.run()
        return load
    return _memo("demo_load", build)


@pytest.fixture(scope="session")
def demo_volume(demo_load: SeriesLoad) -> Volume:
    return demo_load.volume


def copy_series(study: DemoStudy, destination: Path) -> list[Path]:
    """A private copy of the demo DICOM files (in the study's slice order) that a test may modify."""
    destination.mkdir(parents=True, exist_ok=True)
    copies = []
    for source in study.files:
        target = destination / source.name
        shutil.copyfile(source, target)
        copies.append(target)
    return copies


def rewrite(path: Path, **changes: Any) -> None:
    """Set (or, with value None, delete) data elements of a file in place."""
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)


def image_dataset(pixels: np.ndarray, *, bits_stored: int | None = None, signed: bool = False,
                  **attributes: Any) -> Dataset:
    """A minimal single-frame greyscale Secondary Capture holding `pixels` (2D) as stored values."""
    pixels = np.asarray(pixels)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "SYN", "SYNTHETIC^TEST", "OT"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def write_image(path: Path, pixels: np.ndarray, **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image_dataset(pixels, **kwargs).save_as(path, enforce_file_format=True)
    return path


# -- a folder of good and bad files ------------------------------------------------------------

UNSUPPORTED_SYNTAX = "1.2.3.4.5.6"

# file name -> words its problem reason must contain (all of them, case-insensitive)
BAD_FILES: dict[str, tuple[str, ...]] = {
    "notes.txt": ("not a dicom",),
    "empty.dcm": ("not a dicom",),
    "truncated.dcm": ("truncated",),
    "garbage.dcm": ("not a dicom",),
    "report-sr.dcm": ("no pixel data", "SR"),
    "rtplan.dcm": ("no pixel data", "RT Plan"),
    "private-syntax.dcm": ("unsupported transfer syntax", UNSUPPORTED_SYNTAX),
    "broken.zip": ("not a dicom",),
}
CORRUPT_J2K = "corrupt-j2k.dcm"  # scans fine, fails to decode at load time
GOOD_SLICES = (0, 1, 2, 3, 4)  # demo slices copied as they are
J2K_SLICE, CORRUPT_SLICE = 5, 6  # demo slices stored as (good / corrupted) JPEG 2000


def corrupt_j2k(source: Path, target: Path) -> None:
    """`source` compressed to JPEG 2000 lossless, then its COD marker segment overwritten.

    The SIZ segment (image size) stays intact: the scan checks it against Rows/Columns, and this
    file must pass the scan and fail only when decoded.
    """
    from pydicom.encaps import encapsulate, get_frame
    from pydicom.uid import JPEG2000Lossless

    ds = pydicom.dcmread(source)
    ds.compress(JPEG2000Lossless)
    codestream = get_frame(ds.PixelData, 0, number_of_frames=1)
    assert codestream[:4] == b"\xff\x4f\xff\x51"  # SOC, SIZ
    cod = codestream.index(b"\xff\x52")  # coding style: the decoder cannot go on without it
    ds.PixelData = encapsulate([codestream[:cod] + bytes(16) + codestream[cod + 16:]])
    ds.save_as(target, enforce_file_format=True)


def _build_bad_folder(study: DemoStudy, folder: Path) -> Path:
    from pydicom.uid import JPEG2000Lossless

    folder.mkdir(parents=True)
    for k in GOOD_SLICES:
        shutil.copyfile(study.files[k], folder / f"good-{k}.dcm")
    shutil.copyfile(sample_file("CT_small.dcm"), folder / "good-ct-small.dcm")
    shutil.copyfile(sample_file("MR_small.dcm"), folder / "good-mr-small.dcm")
    good_j2k = pydicom.dcmread(study.files[J2K_SLICE])
    good_j2k.compress(JPEG2000Lossless)
    good_j2k.save_as(folder / "good-j2k.dcm", enforce_file_format=True)
    corrupt_j2k(study.files[CORRUPT_SLICE], folder / CORRUPT_J2K)

    (folder / "notes.txt").write_text("Patient notes, not an image.\n" * 10)
    (folder / "empty.dcm").write_bytes(b"")
    data = study.files[10].read_bytes()
    (folder / "truncated.dcm").write_bytes(data[: len(data) - 60000])  # cut inside the pixel data
    rng = np.random.default_rng(1234)
    (folder / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + rng.bytes(3000))
    shutil.copyfile(sample_file("test-SR.dcm"), folder / "report-sr.dcm")
    shutil.copyfile(sample_file("rtplan.dcm"), folder / "rtplan.dcm")
    private = pydicom.dcmread(study.files[12])
    private.file_meta.TransferSyntaxUID = UNSUPPORTED_SYNTAX
    private.save_as(folder / "private-syntax.dcm")
    (folder / "broken.zip").write_bytes(b"PK\x03\x04" + rng.bytes(500))
    return folder


@pytest.fixture(scope="session")
def bad_folder(demo_study: DemoStudy, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good demo slices and pydicom samples mixed with every kind of unusable file (read-only for tests)."""
    return _memo("bad_folder", lambda: _build_bad_folder(demo_study, tmp_path_factory.mktemp("bad") / "mixed"))


@pytest.fixture(scope="session")
def only_bad_folder(bad_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Just the unusable files: nothing here can be read."""
    def build() -> Path:
        folder = tmp_path_factory.mktemp("bad") / "only-bad"
        folder.mkdir()
        for name in BAD_FILES:
            shutil.copyfile(bad_folder / name, folder / name)
        return folder
    return _memo("only_bad_folder", build)
