"""A PHI-planted corpus: one patient's CT series (with an overlay, private tags, 3-deep sequences), an
ultrasound-like image with the patient's name drawn into its pixels, and an SR with free-text comments that
refer to the CT images. Every planted value is a distinct string kept in `Corpus.planted`, so a test can
look for each one in every output byte."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

ROOT = "1.2.826.0.1.3680043.8.498.914"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
BURNED_WORDS = ("QUIMBY", "XAVERIA", "7654321")  # drawn into the ultrasound pixels (name and MRN)


@dataclass
class Corpus:
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)  # role -> file
    planted: dict[str, str] = field(default_factory=dict)  # planted value -> where
    ct_pixel_sha: dict[str, str] = field(default_factory=dict)  # CT and MR: original SOP UID -> sha256 of PixelData


class _Planter:
    def __init__(self, corpus: Corpus) -> None:
        self.corpus, self.n = corpus, 0

    def text(self, where: str, prefix: str = "ZPH") -> str:
        self.n += 1
        value = f"{prefix}{self.n:03d}QW"
        self.corpus.planted[value] = where
        return value

    def keep(self, value: str, where: str, *parts: str) -> str:
        """Plant `value`; what must not survive is `parts` (the identifying words of a sentence) or all of it."""
        for part in parts or (value,):
            assert part in value
            self.corpus.planted[part] = where
        return value

    def uid(self, where: str) -> str:
        self.n += 1
        return self.keep(f"{ROOT}.{self.n}.{7000 + self.n}", where)


def _patient(ds: Dataset, p: _Planter) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = p.keep("QUIMBY^XAVERIA^JOLENE", "PatientName", "QUIMBY^XAVERIA^JOLENE", "QUIMBY", "XAVERIA",
                            "JOLENE")
    ds.PatientID = p.keep("7654321", "PatientID")
    ds.IssuerOfPatientID = p.keep("ZPHISSUERQW", "IssuerOfPatientID")
    ds.PatientBirthDate = p.keep("19530917", "PatientBirthDate")
    ds.PatientAddress = p.keep("17 Wisteria Lane Springfield", "PatientAddress", "Wisteria Lane", "Springfield")
    ds.PatientTelephoneNumbers = p.keep("+44 20 7946 0958", "PatientTelephoneNumbers")
    ds.OtherPatientIDs = p.keep("MRN-88442211", "OtherPatientIDs")
    ds.PatientMotherBirthName = p.keep("VANDERKOOY^HELGA", "PatientMotherBirthName")
    ds.PatientComments = p.keep("Patient Xaveria Quimby prefers afternoons", "PatientComments", "Xaveria", "Quimby")
    ds.AccessionNumber = p.keep("ACC99887766", "AccessionNumber")
    ds.ReferringPhysicianName = p.keep("OBERHOLZER^DIETER", "ReferringPhysicianName")
    ds.InstitutionName = p.keep("Saint Quimby Memorial Hospital", "InstitutionName")
    ds.InstitutionAddress = p.keep("99 Harbour Road Quayside", "InstitutionAddress")
    ds.StationName = p.keep("ZPHSTATIONQW", "StationName")
    ds.OperatorsName = p.keep("FENWICK^ORLA", "OperatorsName")
    ds.StudyID = p.keep("ZPHSTUDYQW", "StudyID")
    ds.StudyDate = p.keep("20210314", "StudyDate")
    ds.StudyTime = p.keep("101112", "StudyTime")
    ds.StudyDescription = p.keep("CT chest for Quimby 7654321", "StudyDescription", "Quimby", "7654321")
    ds.AcquisitionDateTime = p.keep("20210314101530", "AcquisitionDateTime")
    ds.DeviceSerialNumber = p.keep("ZPHSERIALQW", "DeviceSerialNumber")


def _deep(ds: Dataset, p: _Planter) -> None:
    """RequestAttributesSequence > ReferencedStudySequence > ... three levels, each with planted values."""
    level3 = Dataset()
    level3.PersonName = p.keep("MACALLISTER^NESSA", "level-3 PersonName")
    level3.UID = p.uid("level-3 UID")
    level3.TextValue = p.keep("call 555-0142 about Jolene", "level-3 TextValue", "555-0142", "Jolene")
    level2 = Dataset()
    level2.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    level2.ReferencedSOPInstanceUID = p.uid("level-2 ReferencedSOPInstanceUID")
    level2.ContentSequence = Sequence([level3])
    level1 = Dataset()
    level1.RequestedProcedureID = p.text("level-1 RequestedProcedureID")
    level1.ScheduledProcedureStepID = p.text("level-1 ScheduledProcedureStepID")
    level1.RequestedProcedureDescription = p.keep("Biopsy planning Quimby", "level-1 RequestedProcedureDescription",
                                                  "Quimby")
    level1.ReferencedStudySequence = Sequence([level2])
    ds.RequestAttributesSequence = Sequence([level1])


def _private(ds: Dataset, p: _Planter) -> None:
    block = ds.private_block(0x0029, "ZPH PRIVATE CREATOR", create=True)
    block.add_new(0x10, "LO", p.text("private LO"))
    block.add_new(0x11, "UN", p.text("private UN").encode())


def _meta(ds: Dataset) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def _ct(p: _Planter, study: str, series: str, frame: str, number: int) -> Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword in ("OtherPatientIDs", "PatientName"):
        if keyword in ds:
            del ds[keyword]
    ds.remove_private_tags()
    _patient(ds, p)
    ds.SOPInstanceUID = p.uid(f"CT {number} SOPInstanceUID")
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [-158.1, -179.0, -75.7 + 5 * number]
    ds.SliceLocation = -75.7 + 5 * number
    ds.InstanceCreatorUID = p.uid("InstanceCreatorUID")
    ds.ContentDate = p.keep(f"2021031{number}", f"CT {number} ContentDate")
    ds.ContentTime = p.keep(f"1020{number}7.250", f"CT {number} ContentTime")
    ds.ImageComments = p.keep(f"seen by Dr Oberholzer on 14/03/2021 #{number}", "ImageComments", "Oberholzer",
                              "14/03/2021")
    _deep(ds, p)
    _private(ds, p)
    _meta(ds)
    return ds


def _overlay(ds: Dataset, p: _Planter) -> None:
    rows, cols = int(ds.Rows), int(ds.Columns)
    bits = np.zeros((rows, cols), dtype=np.uint8)
    bits[10:20, 10:60] = 1
    ds.add_new(0x60000010, "US", rows)
    ds.add_new(0x60000011, "US", cols)
    ds.add_new(0x60000022, "LO", p.text("OverlayDescription"))
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60001500, "LO", p.text("OverlayLabel"))
    ds.add_new(0x60003000, "OW", np.packbits(bits.ravel(), bitorder="little").tobytes())


def _ultrasound(p: _Planter, study: str) -> Dataset:
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(14)
    height, width = 240, 320
    yy, xx = np.mgrid[0:height, 0:width]
    cone = ((xx - width / 2) ** 2 + (yy + 40) ** 2 < 260 ** 2) & (np.abs(xx - width / 2) < (yy + 40) * 0.9)
    image = np.where(cone, rng.normal(70, 20, (height, width)).clip(0, 140), 0).astype(np.uint8)
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.truetype(FONT, 16)
    draw.text((8, 6), f"{BURNED_WORDS[0]} {BURNED_WORDS[1]}", fill=255, font=font)
    draw.text((8, 214), f"ID {BURNED_WORDS[2]}", fill=255, font=font)
    ds = Dataset()
    _patient(ds, p)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    ds.SOPInstanceUID = p.uid("US SOPInstanceUID")
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, p.uid("US SeriesInstanceUID")
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "US", 2, 1
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Manufacturer = "ACME"
    ds.PatientSex, ds.PatientOrientation, ds.Laterality = "F", "", ""
    ds.BurnedInAnnotation = "YES"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = height, width
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.asarray(picture).tobytes()
    _meta(ds)
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _sr(p: _Planter, study: str, cts: list[Dataset]) -> Dataset:
    ds = Dataset()
    _patient(ds, p)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    ds.SOPInstanceUID = p.uid("SR SOPInstanceUID")
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, p.uid("SR SeriesInstanceUID")
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "SR", 9101, 1
    ds.Manufacturer = "Radiology AI Workstation"
    ds.PatientSex = "F"
    ds.ContentDate, ds.ContentTime = p.keep("20210316", "SR ContentDate"), p.keep("141516", "SR ContentTime")
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([_code("126000", "DCM", "Imaging Measurement Report")])
    ds.ReferencedPerformedProcedureStepSequence = Sequence([])
    ds.PerformedProcedureCodeSequence = Sequence([])
    comment = Dataset()
    comment.RelationshipType, comment.ValueType = "CONTAINS", "TEXT"
    comment.ConceptNameCodeSequence = Sequence([_code("121106", "DCM", "Comment")])
    comment.TextValue = p.keep("Reader note: Xaveria Quimby (MRN 7654321), phone 020 7946 0958, "
                               "mail x.quimby@example.org, seen 14/03/2021, ACC99887766.", "SR comment",
                               "Xaveria Quimby", "7654321", "020 7946 0958", "x.quimby@example.org", "14/03/2021",
                               "ACC99887766")
    observer = Dataset()
    observer.RelationshipType, observer.ValueType = "HAS OBS CONTEXT", "PNAME"
    observer.ConceptNameCodeSequence = Sequence([_code("121008", "DCM", "Person Observer Name")])
    observer.PersonName = p.keep("FENWICK^ORLA^M", "SR observer PNAME")
    image = Dataset()
    image.RelationshipType, image.ValueType = "CONTAINS", "IMAGE"
    image.ConceptNameCodeSequence = Sequence([_code("121112", "DCM", "Source of Measurement")])
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = cts[0].SOPClassUID, cts[0].SOPInstanceUID
    image.ReferencedSOPSequence = Sequence([ref])
    group = Dataset()
    group.RelationshipType, group.ValueType, group.ContinuityOfContent = "CONTAINS", "CONTAINER", "SEPARATE"
    group.ConceptNameCodeSequence = Sequence([_code("125007", "DCM", "Measurement Group")])
    inner = Dataset()
    inner.RelationshipType, inner.ValueType = "CONTAINS", "TEXT"
    inner.ConceptNameCodeSequence = Sequence([_code("121106", "DCM", "Comment")])
    inner.TextValue = p.keep("Discussed with Dieter Oberholzer on 2021-03-15", "SR deep comment", "Dieter",
                             "Oberholzer", "2021-03-15")
    group.ContentSequence = Sequence([inner, image])
    ds.ContentSequence = Sequence([observer, comment, group])
    evidence_series = Dataset()
    evidence_series.SeriesInstanceUID = cts[0].SeriesInstanceUID
    items = []
    for ct in cts:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = ct.SOPClassUID, ct.SOPInstanceUID
        items.append(item)
    evidence_series.ReferencedSOPSequence = Sequence(items)
    evidence = Dataset()
    evidence.StudyInstanceUID = study
    evidence.ReferencedSeriesSequence = Sequence([evidence_series])
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])
    _meta(ds)
    return ds


def _gsps(p: _Planter, study: str, cts: list[Dataset]) -> Dataset:
    """A presentation state whose annotation text names the patient (Clean Graphics scrubs it)."""
    ds = Dataset()
    _patient(ds, p)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.11.1"
    ds.SOPInstanceUID = p.uid("GSPS SOPInstanceUID")
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, p.uid("GSPS SeriesInstanceUID")
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "PR", 9104, 1
    ds.Manufacturer = "ACME"
    ds.ContentLabel = "ANNOTATIONS"
    ds.ContentDescription = p.keep("Marked for Xaveria Quimby", "GSPS ContentDescription", "Xaveria", "Quimby")
    ds.ContentCreatorName = p.keep("PLUMTREE^ODESSA", "GSPS ContentCreatorName")
    ds.PresentationCreationDate, ds.PresentationCreationTime = "20210315", "093000"
    image = Dataset()
    image.ReferencedSOPClassUID, image.ReferencedSOPInstanceUID = cts[0].SOPClassUID, cts[0].SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = cts[0].SeriesInstanceUID
    series.ReferencedImageSequence = Sequence([image])
    ds.ReferencedSeriesSequence = Sequence([series])
    text = Dataset()
    text.UnformattedTextValue = p.keep("Quimby MRN 7654321 tel 020 7946 0958", "GSPS text", "7654321", "020 7946 0958")
    text.AnchorPointAnnotationUnits, text.AnchorPoint, text.AnchorPointVisibility = "PIXEL", [10.0, 10.0], "N"
    annotation = Dataset()
    annotation.GraphicLayer = "LAYER1"
    annotation.ReferencedImageSequence = Sequence([image])
    annotation.TextObjectSequence = Sequence([text])
    ds.GraphicAnnotationSequence = Sequence([annotation])
    layer = Dataset()
    layer.GraphicLayer, layer.GraphicLayerOrder = "LAYER1", 1
    ds.GraphicLayerSequence = Sequence([layer])
    ds.PresentationLUTShape = "IDENTITY"
    _meta(ds)
    return ds


def build_corpus(folder: Path) -> Corpus:
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(folder)
    p = _Planter(corpus)
    study, series, frame = p.uid("StudyInstanceUID"), p.uid("CT SeriesInstanceUID"), p.uid("FrameOfReferenceUID")
    cts = [_ct(p, study, series, frame, n) for n in (1, 2, 3)]
    _overlay(cts[0], p)
    for n, ct in enumerate(cts, 1):
        corpus.ct_pixel_sha[str(ct.SOPInstanceUID)] = hashlib.sha256(ct.PixelData).hexdigest()
        corpus.files[f"ct{n}"] = folder / f"ct{n}.dcm"
        ct.save_as(corpus.files[f"ct{n}"], enforce_file_format=True)
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    mr.remove_private_tags()
    _patient(mr, p)
    mr.SOPInstanceUID = p.uid("MR SOPInstanceUID")
    mr.StudyInstanceUID, mr.SeriesInstanceUID = study, p.uid("MR SeriesInstanceUID")
    mr.FrameOfReferenceUID = p.uid("MR FrameOfReferenceUID")
    _meta(mr)
    corpus.ct_pixel_sha[str(mr.SOPInstanceUID)] = hashlib.sha256(mr.PixelData).hexdigest()
    corpus.files["mr"] = folder / "mr.dcm"
    mr.save_as(corpus.files["mr"], enforce_file_format=True)
    us = _ultrasound(p, study)
    corpus.files["us"] = folder / "us.dcm"
    us.save_as(corpus.files["us"], enforce_file_format=True)
    gsps = _gsps(p, study, cts)
    corpus.files["gsps"] = folder / "gsps.dcm"
    gsps.save_as(corpus.files["gsps"], enforce_file_format=True)
    sr = _sr(p, study, cts)
    corpus.files["sr"] = folder / "sr.dcm"
    sr.save_as(corpus.files["sr"], enforce_file_format=True)
    return corpus
