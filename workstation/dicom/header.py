"""Header-only read of one file into a core.InstanceHeader, or a FileProblem saying why not.

Pixel data is not decoded here, but its presence, its size (truncation) and the
availability of a decoder for its transfer syntax are checked, so that a file
that cannot be shown is reported at scan time rather than failing later. Files are
hostile until checked: reads are bounded (limits.open_bounded), and every value that
sizes an allocation or a loop is held against sane limits and what the file holds.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
import struct
from collections.abc import Callable
from typing import Any, TypeVar

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from workstation.core.study import (
    ResultRef,
    FileLocation,
    FileProblem,
    FrameGeometry,
    InstanceHeader,
    PatientRef,
    PixelFormat,
    SeriesRef,
    StudyRef,
)
from workstation.core.measure import UltrasoundRegion
from workstation.dicom import limits
from workstation.dicom.limits import BadData, BoundedReader, LimitExceeded, bounded_sequence, open_bounded
from workstation.dicom.overlays import overlay_groups
from workstation.dicom.pixels import UnusablePixelData, check_pixel_data, lut_problem
from workstation.dicom.sources import MEDIA_STORAGE_DIRECTORY

_multi, _floats, _float, _int = limits.values_of, limits.finite_numbers, limits.finite_number, limits.integer
_triplet, _sextet = limits.position, limits.orientation
PIXEL_DATA_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}


T = TypeVar("T")
_CHARSET_TAG = tag_for_keyword("SpecificCharacterSet")
_MEMO_LIMIT = 4096


def _memo_by_raw_elements(*keywords: str) -> Callable[[Callable[[Dataset], T]], Callable[[Dataset], T]]:
    """Reuse a result for datasets whose raw bytes of `keywords` are identical.

    Every slice of a series repeats the same patient/study/series and pixel
    format elements; converting them (character sets, numbers) once per series
    instead of once per file makes a 500-file scan about a third faster.
    """
    tags = [tag_for_keyword(k) for k in ("SpecificCharacterSet", *keywords)]

    def decorate(build: Callable[[Dataset], T]) -> Callable[[Dataset], T]:
        cache: dict[tuple, T] = {}

        @functools.wraps(build)
        def wrapper(ds: Dataset) -> T:
            key = _raw_key(ds, tags)
            if key is None:
                return build(ds)
            if key not in cache:
                if len(cache) >= _MEMO_LIMIT:
                    cache.clear()
                cache[key] = build(ds)
            return cache[key]

        return wrapper

    return decorate


def _raw_key(ds: Dataset, tags: list[int]) -> tuple | None:
    """The undecoded values of `tags`, or None if one was already decoded (then no safe key)."""
    elements = ds._dict  # noqa: SLF001 - raw elements are only reachable here, and reading them changes nothing
    key: list[Any] = [ds.original_encoding]
    for tag in tags:
        element = elements.get(tag)
        if element is None:
            key.append(None)
        elif isinstance(element, RawDataElement):
            key.append((element.VR, element.value))
        elif tag == _CHARSET_TAG:  # pydicom decodes it while reading, to read the text that follows
            key.append(str(element.value))
        else:
            return None
    return tuple(key)


class NotAnImage(Exception):
    """A valid DICOM object we deliberately skip (DICOMDIR index)."""


class IsResult(Exception):
    """A results object (SR, GSPS, Parametric Map): not shown as images, read over the series it refers to."""

    def __init__(self, ref: ResultRef) -> None:
        super().__init__(ref.kind)
        self.ref = ref


def read_header(location: FileLocation) -> InstanceHeader | ResultRef | FileProblem | None:
    """Header of one image instance, or a results object; a FileProblem if unusable; None for a DICOMDIR index."""
    try:
        return _read(location)
    except NotAnImage:
        return None
    except IsResult as result:
        return result.ref
    except (_Unusable, UnusablePixelData, LimitExceeded, BadData) as exc:
        return FileProblem(location, str(exc))
    except RecursionError:
        return FileProblem(location, "corrupt DICOM header: sequences nested too deeply")
    except (InvalidDicomError, EOFError, struct.error) as exc:
        return FileProblem(location, f"not a DICOM file or truncated header ({_short(exc)})")
    except OSError as exc:  # pydicom raises it for corrupt data too, without an errno
        if exc.errno is None:
            return FileProblem(location, f"corrupt DICOM header ({_short(exc)})")
        return FileProblem(location, f"cannot read file: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - hostile files raise anything; report, never crash
        return FileProblem(location, f"corrupt DICOM header ({type(exc).__name__}: {_short(exc)})")


class _Unusable(Exception):
    pass


RESULT_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.34": "sr",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.33": "sr",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.22": "sr",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.11.1": "gsps",  # Grayscale Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.30": "pmap",  # Parametric Map
}
# A functional group item missing, short, or holding a value that does not fit its VR: treated as absent.
_ITEM_ERRORS = (AttributeError, IndexError, KeyError, TypeError, ValueError, BytesLengthException)
MAX_RESCALE = 1e12  # larger rescale values overflow every output type
MAX_REFERENCED_SERIES = 64  # a hostile object may list thousands; we need the few it draws on


def _referenced_series(ds: Dataset) -> tuple[str, ...]:
    """Series the object refers to: SR evidence, GSPS / PM referenced series (bounded, duplicates dropped)."""
    found: list[str] = []
    try:
        for container in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
            for study in bounded_sequence(ds, container, 4096)[:MAX_REFERENCED_SERIES]:
                found += [str(s.get("SeriesInstanceUID", "")) for s in bounded_sequence(study, "ReferencedSeriesSequence", 4096)[:MAX_REFERENCED_SERIES]]
        found += [str(s.get("SeriesInstanceUID", "")) for s in bounded_sequence(ds, "ReferencedSeriesSequence", 4096)[:MAX_REFERENCED_SERIES]]
    except Exception:  # noqa: BLE001 - a malformed reference list: the object refers to nothing we can use
        return ()
    return tuple(dict.fromkeys(uid for uid in found if uid))[:MAX_REFERENCED_SERIES]


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _read(location: FileLocation) -> InstanceHeader:
    with open_bounded(location) as fp:
        ds = _parse(fp)
        pixel_start = fp.tell()
        head = fp.read(12)
        header = _instance(location, ds, head, None if fp.deflated else pixel_start, fp.deflated)
        # What the header declares is checked against what the file holds, before anything is allocated.
        if check_pixel_data(fp, pixel_start, head, ds.original_encoding, UID(header.transfer_syntax_uid),
                            header.pixel, header.frames):
            header = dataclasses.replace(header, isolate_decode=True)
    if header.frames > limits.MAX_FRAMES:
        raise _Unusable(f"declares {header.frames} frames (more than {limits.MAX_FRAMES})")
    return header


def _parse(fp: BoundedReader) -> Dataset:
    """The header up to the pixel data, read within the reader's bounds."""
    try:
        return pydicom.dcmread(fp, stop_before_pixels=True)
    except InvalidDicomError:
        # Old files without preamble/meta are still DICOM; accept them only if they look like images.
        fp.seek(0)
        if not limits.looks_like_data_set(fp.read(8)):
            raise _Unusable("not a DICOM file") from None
        fp.seek(0)
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
        if not _has_dicom_attributes(ds):
            raise _Unusable("not a DICOM file") from None
        return ds


def _instance(location: FileLocation, ds: Dataset, head: bytes, pixel_start: int | None, deflated: bool) -> InstanceHeader:
    """The header's values, each checked; `pixel_start` is None when the file's offsets do not apply (inflated)."""
    shared = _shared_attributes(ds)
    if shared.sop_class_uid == MEDIA_STORAGE_DIRECTORY or _get(ds.file_meta, "MediaStorageSOPClassUID") == MEDIA_STORAGE_DIRECTORY:
        raise NotAnImage
    kind = RESULT_CLASSES.get(shared.sop_class_uid)
    referenced = _referenced_series(ds) if kind is not None else ()
    if referenced and "SOPInstanceUID" in ds and "StudyInstanceUID" in ds:  # a report on no images is not ours to show
        raise IsResult(ResultRef(location, kind, shared.sop_class_uid, str(_get(ds, "SOPInstanceUID")), str(_get(ds, "StudyInstanceUID")),
                                 str(_get(ds, "SeriesInstanceUID", "")), referenced))
    if not _has_dicom_attributes(ds):
        # pydicom parses random bytes after a "DICM" prefix as one bogus element.
        raise _Unusable("not a DICOM file or corrupt header (no SOP or image attributes)")
    transfer_syntax = UID(limits.DEFLATED) if deflated else _transfer_syntax(ds)
    if not _has_pixel_data(ds, head):
        raise _Unusable(f"no pixel data ({_sop_class_name(ds)})")
    if "Rows" not in ds or "Columns" not in ds:
        raise _Unusable("pixel data without Rows/Columns")
    _check_decodable(transfer_syntax)
    pixel = _pixel_format(ds)
    frames = _frames(ds)
    problem = limits.pixel_format_problem(pixel.rows, pixel.columns, pixel.samples_per_pixel, pixel.bits_allocated,
                                          pixel.bits_stored, frames)
    problem = problem or lut_problem(ds, pixel)
    if problem:
        raise _Unusable(problem)
    native = not transfer_syntax.is_compressed and not transfer_syntax.is_deflated
    position, notes = _position(ds)
    return InstanceHeader(
        location=location,
        sop_class_uid=shared.sop_class_uid,
        sop_instance_uid=str(_get(ds, "SOPInstanceUID", "")) or f"file:{location}",
        series=_series(ds),
        transfer_syntax_uid=str(transfer_syntax),
        pixel=pixel,
        instance_number=_int(_get(ds, "InstanceNumber")),
        frames=frames,
        pixel_spacing=shared.pixel_spacing,
        spacing_source=shared.spacing_source,
        slice_thickness=shared.slice_thickness,
        geometry=FrameGeometry(position, shared.orientation),
        frame_geometry=_per_frame_geometry(ds, frames),
        window_centers=shared.window_centers,
        window_widths=shared.window_widths,
        window_explanations=shared.window_explanations,
        voi_lut_function=shared.voi_lut_function,
        acquisition_number=_int(_get(ds, "AcquisitionNumber")),
        native_pixel_offset=pixel_start if native else None,
        patient_orientation=tuple(str(v).strip().upper() for v in _multi(_get(ds, "PatientOrientation"))),
        overlay_groups=overlay_groups(ds),
        pixel_data_offset=pixel_start,
        notes=shared.notes + notes,
        frame_time_ms=_frame_time(ds),
        ultrasound_regions=_ultrasound_regions(ds, pixel.rows, pixel.columns),
    )


CENTIMETRE = 3  # PhysicalUnitsX/YDirection: 3 = cm (the only unit a distance can be read in)


def _ultrasound_regions(ds: Dataset, rows: int, columns: int) -> tuple[UltrasoundRegion, ...]:
    """The calibrated regions of an ultrasound image: both axes in cm, a plausible spacing, inside the image."""
    regions = []
    for item in bounded_sequence(ds, "SequenceOfUltrasoundRegions", max_items=32):
        try:
            if _int(item.get("PhysicalUnitsXDirection")) != CENTIMETRE or _int(item.get("PhysicalUnitsYDirection")) != CENTIMETRE:
                continue
            dx, dy = abs(_float(item.get("PhysicalDeltaX")) or 0.0) * 10, abs(_float(item.get("PhysicalDeltaY")) or 0.0) * 10
            x0, y0, x1, y1 = (_int(item.get(k)) for k in ("RegionLocationMinX0", "RegionLocationMinY0",
                                                          "RegionLocationMaxX1", "RegionLocationMaxY1"))
        except _ITEM_ERRORS:
            continue
        if None in (x0, y0, x1, y1) or not (limits.plausible_spacing(dx) and limits.plausible_spacing(dy)):
            continue
        if 0 <= x0 <= x1 < columns and 0 <= y0 <= y1 < rows:
            regions.append(UltrasoundRegion(x0, y0, x1, y1, dx, dy))
    return tuple(regions)


def _frame_time(ds: Dataset) -> float | None:
    """Milliseconds per frame for cine: FrameTime, else CineRate or RecommendedDisplayFrameRate; None if absent or absurd."""
    value = _float(_get(ds, "FrameTime"))
    if value is None:
        rate = _float(_get(ds, "CineRate")) or _float(_get(ds, "RecommendedDisplayFrameRate"))
        value = 1000.0 / rate if rate else None
    return value if value is not None and 1.0 <= value <= 10_000.0 else None


@dataclass(frozen=True)
class _Shared:
    """Attributes that are usually the same for every slice of a series."""

    sop_class_uid: str
    pixel_spacing: tuple[float, float] | None
    spacing_source: str
    slice_thickness: float | None
    orientation: tuple[float, float, float, float, float, float] | None
    window_centers: tuple[float, ...]
    window_widths: tuple[float, ...]
    window_explanations: tuple[str, ...]
    voi_lut_function: str
    notes: tuple[str, ...]  # values ignored as implausible, said on the series


def _get(ds: Dataset, keyword: str, default: Any = None) -> Any:
    """A data element's value; `default` when absent or unreadable (a value that does not fit its VR)."""
    try:
        return ds.get(keyword, default)
    except Exception:  # noqa: BLE001 - pydicom raises several types (BytesLengthException...) converting such a value
        return default


def _has_pixel_data(ds: Dataset, head: bytes) -> bool:
    """Whether the element after the header is Pixel Data (a deflated file arrives here inflated)."""
    little = ds.original_encoding[1] is not False
    return len(head) >= 4 and struct.unpack("<HH" if little else ">HH", head[:4]) in PIXEL_DATA_TAGS


def _has_dicom_attributes(ds: Dataset) -> bool:
    """Anything we can show or name has a SOP Class/Instance UID or image rows."""
    return any(keyword in ds for keyword in ("SOPClassUID", "SOPInstanceUID", "Rows"))


@_memo_by_raw_elements("SOPClassUID", "PixelSpacing", "ImagerPixelSpacing",
                       "NominalScannedPixelSpacing", "SharedFunctionalGroupsSequence", "SliceThickness",
                       "ImageOrientationPatient", "WindowCenter", "WindowWidth", "WindowCenterWidthExplanation",
                       "VOILUTFunction")
def _shared_attributes(ds: Dataset) -> _Shared:
    spacing, spacing_source, notes = _pixel_spacing(ds)
    orientation = _sextet(_get(ds, "ImageOrientationPatient"))
    if orientation is None and _floats(_get(ds, "ImageOrientationPatient")):
        notes += ("ImageOrientationPatient is not two unit directions: orientation unknown",)
    thickness = _float(_get(ds, "SliceThickness"))
    centers, widths = _windows(ds)
    return _Shared(
        sop_class_uid=str(_get(ds, "SOPClassUID", "")),
        pixel_spacing=spacing,
        spacing_source=spacing_source,
        slice_thickness=thickness if thickness is not None and 0 < thickness <= limits.MAX_PIXEL_SPACING_MM else None,
        orientation=orientation,
        window_centers=centers,
        window_widths=widths,
        window_explanations=tuple(str(v) for v in _multi(_get(ds, "WindowCenterWidthExplanation"))),
        voi_lut_function=str(_get(ds, "VOILUTFunction", "LINEAR") or "LINEAR").upper(),
        notes=notes,
    )


def _windows(ds: Dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """WindowCenter/Width pairs that can be drawn (positive, finite widths); none if they do not pair up."""
    centers, widths = _floats(_get(ds, "WindowCenter")), _floats(_get(ds, "WindowWidth"))
    if len(centers) != len(widths):
        return centers, widths  # the viewer pairs what it can
    usable = [(c, w) for c, w in zip(centers, widths) if 0 < w < 1e12 and abs(c) < 1e12]
    return tuple(c for c, _ in usable), tuple(w for _, w in usable)


def _frames(ds: Dataset) -> int:
    """NumberOfFrames, checked: a frame count sizes loops and arrays (a missing one means 1)."""
    frames = _count(ds, "NumberOfFrames", 1)
    if frames < 1:
        raise _Unusable(f"declares {frames} frames")
    return frames


def _count(ds: Dataset, keyword: str, default: int | None) -> int:
    """One integer that sizes something, or the file is unusable (several values, text, a wrong VR)."""
    try:
        value = ds[keyword].value if keyword in ds else None
    except Exception as exc:  # noqa: BLE001 - pydicom raises several types for a value of the wrong VR or length
        raise _Unusable(f"{keyword} cannot be read ({type(exc).__name__})") from None
    values = _multi(value)
    if not values:
        if default is None:
            raise _Unusable(f"{keyword} is empty")
        return default
    if len(values) > 1:
        raise _Unusable(f"{keyword} has {len(values)} values")
    try:
        return int(values[0])
    except (TypeError, ValueError, OverflowError):
        raise _Unusable(f"{keyword} {str(values[0])[:20]!r} is not a number") from None


def _transfer_syntax(ds: Dataset) -> UID:
    uid = _get(ds.file_meta, "TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if uid and not isinstance(uid, str):
        raise _Unusable("the Transfer Syntax UID is not one UID")
    if uid:
        return UID(uid)
    implicit, little = ds.original_encoding
    if implicit:
        return UID("1.2.840.10008.1.2")
    return UID("1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2")


def _check_decodable(uid: UID) -> None:
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        name = uid.name if uid.is_valid and uid.name != uid else uid
        raise _Unusable(f"unsupported transfer syntax {name}: no decoder available") from None
    if not decoder.is_available:
        raise _Unusable(f"unsupported transfer syntax {uid.name}: decoder plugin not installed")


def _sop_class_name(ds: Dataset) -> str:
    uid = _get(ds, "SOPClassUID")
    return UID(str(uid)).name if uid else "unknown object"


@_memo_by_raw_elements("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                       "StudyTime", "StudyDescription", "AccessionNumber", "SeriesInstanceUID", "SeriesNumber",
                       "Modality", "SeriesDescription", "BodyPartExamined", "Manufacturer", "ManufacturerModelName",
                       "ConvolutionKernel")
def _series(ds: Dataset) -> SeriesRef:
    patient = PatientRef(
        patient_id=str(_get(ds, "PatientID", "") or ""),
        name=str(_get(ds, "PatientName", "") or ""),
        birth_date=str(_get(ds, "PatientBirthDate", "") or ""),
        sex=str(_get(ds, "PatientSex", "") or ""),
        issuer=str(_get(ds, "IssuerOfPatientID", "") or ""),
    )
    study = StudyRef(
        study_instance_uid=str(_get(ds, "StudyInstanceUID", "") or "unknown-study"),
        patient=patient,
        date=str(_get(ds, "StudyDate", "") or ""),
        time=str(_get(ds, "StudyTime", "") or ""),
        description=str(_get(ds, "StudyDescription", "") or ""),
        accession_number=str(_get(ds, "AccessionNumber", "") or ""),
    )
    return SeriesRef(
        series_instance_uid=str(_get(ds, "SeriesInstanceUID", "") or "unknown-series"),
        study=study,
        number=_int(_get(ds, "SeriesNumber")),
        modality=str(_get(ds, "Modality", "") or "OT"),
        description=str(_get(ds, "SeriesDescription", "") or ""),
        body_part=str(_get(ds, "BodyPartExamined", "") or ""),
        manufacturer=_text(_get(ds, "Manufacturer")),
        manufacturer_model=_text(_get(ds, "ManufacturerModelName")),
        convolution_kernel=_text(_get(ds, "ConvolutionKernel")),
    )


def _text(value: Any) -> str:
    """A short descriptive value (LO, CS with several values joined by '\\'), at most 64 characters."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)
    return str(value).strip()[:64]


@_memo_by_raw_elements("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
                       "BitsStored", "PixelRepresentation", "RescaleSlope", "RescaleIntercept", "ModalityLUTSequence",
                       "SharedFunctionalGroupsSequence")
def _pixel_format(ds: Dataset) -> PixelFormat:
    slope, intercept = _float(_get(ds, "RescaleSlope")), _float(_get(ds, "RescaleIntercept"))
    shared_slope, shared_intercept = _functional_group_rescale(ds)
    if slope is None and shared_slope is not None:
        slope, intercept = shared_slope, shared_intercept
    for name, value in (("RescaleSlope", slope), ("RescaleIntercept", intercept)):
        if value is not None and abs(value) > MAX_RESCALE:
            raise _Unusable(f"{name} {value:g} is not usable")
    bits_allocated = _count(ds, "BitsAllocated", 16)
    representation = _count(ds, "PixelRepresentation", 0)
    if representation not in (0, 1):
        raise _Unusable(f"PixelRepresentation {representation} is not 0 or 1")
    return PixelFormat(
        rows=_count(ds, "Rows", None),
        columns=_count(ds, "Columns", None),
        samples_per_pixel=_count(ds, "SamplesPerPixel", 1),
        photometric=str(_get(ds, "PhotometricInterpretation", "MONOCHROME2")).strip().upper(),
        bits_allocated=bits_allocated,
        bits_stored=_count(ds, "BitsStored", bits_allocated),
        pixel_representation=representation,
        rescale_slope=slope if slope else 1.0,
        rescale_intercept=intercept or 0.0,
        has_modality_lut="ModalityLUTSequence" in ds,
    )


def _functional_group_rescale(ds: Dataset) -> tuple[float | None, float | None]:
    """Enhanced multi-frame objects keep rescale in the shared functional groups."""
    try:
        item = bounded_sequence(ds, "SharedFunctionalGroupsSequence")[0].PixelValueTransformationSequence[0]
        return _float(item.get("RescaleSlope")), _float(item.get("RescaleIntercept"))
    except _ITEM_ERRORS:
        return None, None


def _pixel_spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str, tuple[str, ...]]:
    """(spacing, where it came from, notes): a spacing no real image has (0, NaN, 1e308) is ignored with a note."""
    candidates = [(k, _get(ds, k)) for k in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")]
    try:
        measures = bounded_sequence(ds, "SharedFunctionalGroupsSequence")[0].PixelMeasuresSequence[0]
        candidates.append(("PixelSpacing", measures.get("PixelSpacing")))
    except _ITEM_ERRORS:
        pass
    notes: tuple[str, ...] = ()
    for keyword, value in candidates:
        if not _multi(value):
            continue
        pair = _floats(value)
        if len(pair) == 2 and limits.plausible_spacing(pair[0]) and limits.plausible_spacing(pair[1]):
            return (pair[0], pair[1]), keyword, notes
        if len(pair) == 2:
            notes = (f"{keyword} {pair[0]:g}\\{pair[1]:g} mm is not plausible: ignored, distances unknown",)
        else:
            text = "\\".join(str(v) for v in _multi(value))[:40]
            notes = (f"{keyword} '{text}' is not two numbers: ignored, distances unknown",)
    return None, "", notes


def _position(ds: Dataset) -> tuple[tuple[float, float, float] | None, tuple[str, ...]]:
    position = _triplet(_get(ds, "ImagePositionPatient"))
    if position is not None and max(abs(v) for v in position) > limits.MAX_COORDINATE_MM:
        return None, ("ImagePositionPatient is not plausible: ignored",)
    return position, ()


def _per_frame_geometry(ds: Dataset, frames: int) -> tuple[FrameGeometry, ...]:
    """Positions of each frame of an enhanced multi-frame object, if it has them."""
    groups = bounded_sequence(ds, "PerFrameFunctionalGroupsSequence", max_items=frames)
    if not groups or len(groups) != frames:
        return ()
    shared_orientation = None
    try:
        shared_orientation = _sextet(bounded_sequence(ds, "SharedFunctionalGroupsSequence")[0].PlaneOrientationSequence[0].ImageOrientationPatient)
    except _ITEM_ERRORS:
        pass
    result = []
    for item in groups:
        try:
            position = _triplet(item.PlanePositionSequence[0].ImagePositionPatient)
        except _ITEM_ERRORS:
            return ()
        if position is not None and max(abs(v) for v in position) > limits.MAX_COORDINATE_MM:
            return ()
        orientation = shared_orientation
        try:
            orientation = _sextet(item.PlaneOrientationSequence[0].ImageOrientationPatient) or orientation
        except _ITEM_ERRORS:
            pass
        result.append(FrameGeometry(position, orientation))
    return tuple(result)
