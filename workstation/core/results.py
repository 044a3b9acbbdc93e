"""Results read back from DICOM objects (SR, GSPS, Parametric Map), as plain values the viewer can draw.

They come from objects we wrote or from another vendor's tools, so everything is
read-only and named by its source (algorithm or observer). Pixel coordinates are
DICOM image coordinates: (0, 0) is the top-left corner of the top-left pixel, so a
box is (column0, row0, column1, row1) in the same pixel edges the review uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KIND_SR, KIND_REVIEW_SR, KIND_GSPS, KIND_PMAP = "sr", "review-sr", "gsps", "pmap"


@dataclass(frozen=True)
class ForeignFinding:
    """One region of a TID 1500 report: where it is, what it is, and (review SR) the reader's verdict."""

    tracking_uid: str
    tracking_id: str
    label: str  # the finding type's meaning, e.g. "Nodule"
    sop_instance_uid: str  # the image the region lies on
    box_px: tuple[float, float, float, float]  # (column0, row0, column1, row1): the region's bounding box
    frame_number: int | None = None  # 1-based, for multi-frame images
    score: float | None = None
    state: str = ""  # review SR: accepted / rejected / edited / added / deleted
    box_edited: bool = False
    relabelled: bool = False
    points_px: tuple[tuple[float, float], ...] = ()  # the outline as written (column, row)


@dataclass(frozen=True)
class GraphicItem:
    """One GSPS graphic or text on one image: a polyline (closed when first == last) or a text with an anchor."""

    sop_instance_uid: str
    frame_number: int | None
    layer: str
    points_px: tuple[tuple[float, float], ...] = ()
    text: str = ""
    anchor_px: tuple[float, float] | None = None
    tracking_uid: str = ""
    tracking_id: str = ""


@dataclass(frozen=True)
class ForeignHeatmap:
    """A Parametric Map as probability (or the mapped quantity) per frame, aligned to its source images."""

    values: np.ndarray  # (frames, rows, columns) float32, real-world values
    sop_instance_uids: tuple[str, ...]  # per frame: the source image it lies on ("" when not referenced)
    positions_mm: tuple[tuple[float, float, float] | None, ...]  # per frame: ImagePositionPatient
    label: str = ""  # the real-world value map's label / explanation
    unit: str = ""


@dataclass(frozen=True)
class ForeignFindings:
    """Everything one object contributes, labelled with its source."""

    kind: str  # KIND_SR, KIND_REVIEW_SR, KIND_GSPS or KIND_PMAP
    source: str  # "nodule-detector 1.0.0", "observer dr.smith (reviewer)", or the series description
    sop_instance_uid: str  # the object itself
    study_instance_uid: str
    series_instance_uid: str  # the object's own series
    referenced_series_uids: tuple[str, ...] = ()  # the image series it draws on
    content_datetime: str = ""  # YYYYMMDDHHMMSS as written
    findings: tuple[ForeignFinding, ...] = ()
    graphics: tuple[GraphicItem, ...] = ()
    heatmap: ForeignHeatmap | None = None
    verified_by: str = ""  # review SR: the verifying observer
    verified_at: str = ""
    notes: tuple[str, ...] = field(default=())  # parts that were skipped, with the reason


@dataclass(frozen=True)
class Problem:
    """An object that could not be used (or a part of it), for the Problems panel."""

    reason: str
    sop_instance_uid: str = ""
