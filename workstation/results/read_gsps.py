"""Read a GSPS's graphic annotations: polylines and texts per referenced image, in pixel coordinates.

Circles and ellipses become polygons; DISPLAY-unit graphics (fractions of the
displayed area) are converted with the image size when the GSPS gives it; other
graphics are skipped with a note rather than drawn in the wrong place.
"""

from __future__ import annotations

import math

import numpy as np
import pydicom

from workstation.core.results import KIND_GSPS, ForeignFindings, GraphicItem

_SEGMENTS = 36


def read_gsps(ds: pydicom.Dataset) -> ForeignFindings:
    all_images = [(str(image.ReferencedSOPInstanceUID), _frame(image)) for series in ds.get("ReferencedSeriesSequence", [])
                  for image in series.get("ReferencedImageSequence", [])]
    sizes = _display_sizes(ds)
    items, notes = [], []
    for annotation in ds.get("GraphicAnnotationSequence", []):
        targets = [(str(i.ReferencedSOPInstanceUID), _frame(i)) for i in annotation.get("ReferencedImageSequence", [])]
        layer = str(annotation.get("GraphicLayer", ""))
        for graphic in annotation.get("GraphicObjectSequence", []):
            points = _points(graphic, sizes, notes)
            if points is None:
                continue
            for sop_uid, frame in targets or all_images:
                items.append(GraphicItem(sop_uid, frame, layer, points_px=points,
                                         tracking_uid=str(graphic.get("TrackingUID", "")),
                                         tracking_id=str(graphic.get("TrackingID", ""))))
        for text in annotation.get("TextObjectSequence", []):
            anchor = _anchor(text, sizes)
            for sop_uid, frame in targets or all_images:
                items.append(GraphicItem(sop_uid, frame, layer, text=str(text.get("UnformattedTextValue", "")),
                                         anchor_px=anchor, tracking_uid=str(text.get("TrackingUID", "")),
                                         tracking_id=str(text.get("TrackingID", ""))))
    source = str(ds.get("ContentDescription", "") or ds.get("ContentLabel", "") or ds.get("SeriesDescription", "") or "GSPS")
    return ForeignFindings(
        kind=KIND_GSPS, source=source, sop_instance_uid=str(ds.SOPInstanceUID),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")), series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        referenced_series_uids=tuple(str(s.SeriesInstanceUID) for s in ds.get("ReferencedSeriesSequence", [])),
        content_datetime=f"{ds.get('PresentationCreationDate', '')}{ds.get('PresentationCreationTime', '')}",
        graphics=tuple(items), notes=tuple(dict.fromkeys(notes)))


def _frame(image) -> int | None:
    frames = image.get("ReferencedFrameNumber")
    if frames is None or frames == "":
        return None
    return int(frames[0]) if isinstance(frames, (list, pydicom.multival.MultiValue)) else int(frames)


def _display_sizes(ds: pydicom.Dataset) -> tuple[float, float, float, float] | None:
    """(first column, first row, columns, rows) of the displayed area in image coordinates, for DISPLAY units."""
    areas = ds.get("DisplayedAreaSelectionSequence", [])
    if not areas:
        return None
    top_left, bottom_right = areas[0].get("DisplayedAreaTopLeftHandCorner"), areas[0].get("DisplayedAreaBottomRightHandCorner")
    if not top_left or not bottom_right:
        return None
    column0, row0 = float(top_left[0]) - 1, float(top_left[1]) - 1  # the corners name 1-based pixels
    return column0, row0, float(bottom_right[0]) - column0, float(bottom_right[1]) - row0


def _scaled(points: np.ndarray, units: str, sizes) -> np.ndarray | None:
    if units == "PIXEL":
        return points
    if units == "DISPLAY" and sizes is not None:
        return np.array(sizes[:2]) + points * np.array(sizes[2:])
    return None


def _points(graphic, sizes, notes: list[str]) -> tuple[tuple[float, float], ...] | None:
    data = np.asarray([float(v) for v in graphic.get("GraphicData", [])], dtype=np.float64).reshape(-1, 2)
    kind = str(graphic.get("GraphicType", ""))
    points = _scaled(data, str(graphic.get("GraphicAnnotationUnits", "")), sizes)
    if points is None or not len(points):
        notes.append(f"{kind or 'a graphic'} in {graphic.get('GraphicAnnotationUnits', 'unknown')} units not shown")
        return None
    if kind == "CIRCLE" and len(points) >= 2:
        points = _ellipse(points[0], points[1] - points[0], np.array([-(points[1] - points[0])[1], (points[1] - points[0])[0]]))
    elif kind == "ELLIPSE" and len(points) >= 4:
        points = _ellipse((points[0] + points[1]) / 2, (points[1] - points[0]) / 2, (points[3] - points[2]) / 2)
    return tuple((float(c), float(r)) for c, r in points)


def _ellipse(centre: np.ndarray, major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    angles = np.linspace(0.0, 2 * math.pi, _SEGMENTS + 1)
    return centre + np.outer(np.cos(angles), major) + np.outer(np.sin(angles), minor)


def _anchor(text, sizes) -> tuple[float, float] | None:
    if "AnchorPoint" in text:
        point = _scaled(np.array([float(v) for v in text.AnchorPoint]), str(text.get("AnchorPointAnnotationUnits", "")), sizes)
    elif "BoundingBoxTopLeftHandCorner" in text:
        point = _scaled(np.array([float(v) for v in text.BoundingBoxTopLeftHandCorner]),
                        str(text.get("BoundingBoxAnnotationUnits", "")), sizes)
    else:
        return None
    return None if point is None else (float(point[0]), float(point[1]))
