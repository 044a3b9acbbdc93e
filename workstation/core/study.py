"""Patient / study / series / instance references found on disk or in a PACS.

Plain values with no I/O, so every other layer can share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only an annotation: the site file's checks import this module and must not need numpy
    from workstation.core.measure import UltrasoundRegion


@dataclass(frozen=True)
class FileLocation:
    """Where an instance's bytes live: a file, or a member of a zip archive."""

    path: str
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}!{self.member}" if self.member else self.path


@dataclass(frozen=True)
class FileProblem:
    """A file that could not be used, and why, in words a user understands."""

    location: FileLocation
    reason: str


@dataclass(frozen=True)
class ResultRef:
    """A results object found beside the images (SR, GSPS, Parametric Map): read when a series it refers to opens."""

    location: FileLocation
    kind: str  # "sr", "gsps" or "pmap"
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    referenced_series_uids: tuple[str, ...]  # the image series it draws on, as the object says


@dataclass(frozen=True)
class PatientRef:
    patient_id: str
    name: str
    birth_date: str = ""
    sex: str = ""
    issuer: str = ""  # IssuerOfPatientID: the same ID from two issuers is two patients


@dataclass(frozen=True)
class StudyRef:
    study_instance_uid: str
    patient: PatientRef
    date: str = ""
    time: str = ""
    description: str = ""
    accession_number: str = ""


@dataclass(frozen=True)
class SeriesRef:
    series_instance_uid: str
    study: StudyRef
    number: int | None = None
    modality: str = ""
    description: str = ""
    body_part: str = ""
    manufacturer: str = ""  # Manufacturer, ManufacturerModelName, ConvolutionKernel: what monitoring groups by
    manufacturer_model: str = ""
    convolution_kernel: str = ""


@dataclass(frozen=True)
class PixelFormat:
    """How stored pixel values are laid out and turned into modality values."""

    rows: int
    columns: int
    samples_per_pixel: int = 1
    photometric: str = "MONOCHROME2"
    bits_allocated: int = 16
    bits_stored: int = 16
    pixel_representation: int = 0
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    has_modality_lut: bool = False

    @property
    def is_colour(self) -> bool:
        return self.samples_per_pixel > 1 or self.photometric == "PALETTE COLOR"

    @property
    def inverted(self) -> bool:
        """MONOCHROME1: low values are displayed white."""
        return self.photometric == "MONOCHROME1"


@dataclass(frozen=True)
class FrameGeometry:
    """Patient-space placement of one frame; any part may be unknown."""

    position: tuple[float, float, float] | None = None
    orientation: tuple[float, float, float, float, float, float] | None = None


@dataclass(frozen=True)
class InstanceHeader:
    """What a header-only read of one image instance tells us."""

    location: FileLocation
    sop_class_uid: str
    sop_instance_uid: str
    series: SeriesRef
    transfer_syntax_uid: str
    pixel: PixelFormat
    instance_number: int | None = None
    frames: int = 1
    pixel_spacing: tuple[float, float] | None = None  # (between rows, between columns) in mm
    spacing_source: str = ""  # "PixelSpacing", "ImagerPixelSpacing", ...
    slice_thickness: float | None = None
    geometry: FrameGeometry = FrameGeometry()
    frame_geometry: tuple[FrameGeometry, ...] = ()  # enhanced multi-frame: one per frame
    window_centers: tuple[float, ...] = ()
    window_widths: tuple[float, ...] = ()
    window_explanations: tuple[str, ...] = ()
    voi_lut_function: str = "LINEAR"
    acquisition_number: int | None = None
    native_pixel_offset: int | None = None  # file offset of the Pixel Data element, for uncompressed data
    patient_orientation: tuple[str, ...] = ()  # PatientOrientation (row, column directions): projection images
    overlay_groups: tuple[int, ...] = ()  # 60xx groups holding Overlay Data, read with the pixels
    pixel_data_offset: int | None = None  # file offset of the Pixel Data element (None: not in the file as stored)
    isolate_decode: bool = False  # the codestream claims far more than it holds: decode in a worker, with a timeout
    notes: tuple[str, ...] = ()  # values ignored as implausible (PixelSpacing 1e308): said as series warnings
    duplicate_of: str = ""  # the SOP Instance UID this instance shares with another file holding other pixels
    frame_time_ms: float | None = None  # cine: FrameTime, else 1000 / CineRate or RecommendedDisplayFrameRate
    ultrasound_regions: tuple[UltrasoundRegion, ...] = ()  # calibrated 2-D regions (SequenceOfUltrasoundRegions)


@dataclass(frozen=True)
class FrameRef:
    """One displayable 2D frame: an instance and the frame inside it."""

    instance: InstanceHeader
    frame: int = 0

    @property
    def geometry(self) -> FrameGeometry:
        if self.instance.frame_geometry:
            return self.instance.frame_geometry[self.frame]
        return self.instance.geometry


@dataclass
class DisplaySet:
    """An ordered stack of frames of one series that are viewed together.

    Usually a whole series; a series mixing orientations or image sizes is split
    into several display sets, each with a warning saying so.
    """

    series: SeriesRef
    frames: list[FrameRef]
    warnings: list[str] = field(default_factory=list)
    slice_spacing: float | None = None  # mm between consecutive frames, when regular
    label: str = ""

    @property
    def instances(self) -> list[InstanceHeader]:
        seen: dict[str, InstanceHeader] = {}
        for frame in self.frames:
            seen.setdefault(frame.instance.sop_instance_uid, frame.instance)
        return list(seen.values())

    @property
    def first(self) -> InstanceHeader:
        return self.frames[0].instance

    @property
    def key(self) -> str:
        return f"{self.series.series_instance_uid}#{self.label}"


@dataclass
class Catalog:
    """Everything a scan found: display sets grouped by patient/study/series, and problems."""

    display_sets: list[DisplaySet] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    headers: list[InstanceHeader] = field(default_factory=list)
    files_scanned: int = 0
    results: list[ResultRef] = field(default_factory=list)  # SR / GSPS / Parametric Map objects found

    def results_for(self, series_instance_uid: str) -> list[ResultRef]:
        return [r for r in self.results if series_instance_uid in r.referenced_series_uids]

    def studies(self) -> list[StudyRef]:
        """One per Study Instance UID: series of a study may disagree on study-level details (time, description)."""
        first: dict[str, StudyRef] = {}
        for ds in self.display_sets:
            first.setdefault(ds.series.study.study_instance_uid, ds.series.study)
        return list(first.values())

    def patients(self) -> list[PatientRef]:
        return list(dict.fromkeys(s.patient for s in self.studies()))

    def display_sets_of(self, study: StudyRef) -> list[DisplaySet]:
        return [ds for ds in self.display_sets if ds.series.study.study_instance_uid == study.study_instance_uid]
