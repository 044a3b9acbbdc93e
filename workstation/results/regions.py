"""A box on an image as DICOM coordinates: a closed 2-D polyline in pixel edges, and the same outline in patient mm.

Our boxes are pixel edges, which is exactly DICOM's image coordinate system
(0,0 = top-left corner of the top-left pixel), so no half-pixel shift happens
here; highdicom's ImageToReferenceTransformer applies that convention when it
maps to patient space through the image's IPP / IOP / PixelSpacing.
"""

from __future__ import annotations

import numpy as np
import pydicom
from highdicom.spatial import ImageToReferenceTransformer


def box_outline(box_px: tuple[float, float, float, float]) -> np.ndarray:
    """The closed outline (5 points, first == last) as (column, row) float32, clockwise on screen."""
    c0, r0, c1, r1 = (float(v) for v in box_px)
    c0, c1 = sorted((c0, c1))
    r0, r1 = sorted((r0, r1))
    return np.array([[c0, r0], [c1, r0], [c1, r1], [c0, r1], [c0, r0]], dtype=np.float32)


def has_patient_geometry(ds: pydicom.Dataset) -> bool:
    return all(hasattr(ds, name) for name in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                                               "FrameOfReferenceUID"))


def outline_mm(ds: pydicom.Dataset, outline: np.ndarray) -> np.ndarray:
    """The outline in patient coordinates (mm), through the image plane's geometry."""
    transformer = ImageToReferenceTransformer(
        image_position=[float(v) for v in ds.ImagePositionPatient],
        image_orientation=[float(v) for v in ds.ImageOrientationPatient],
        pixel_spacing=[float(v) for v in ds.PixelSpacing])
    return transformer(outline.astype(np.float64)).astype(np.float32)


def bounding_box(points) -> tuple[float, float, float, float]:
    """(column0, row0, column1, row1) around (column, row) points."""
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return (float(array[:, 0].min()), float(array[:, 1].min()), float(array[:, 0].max()), float(array[:, 1].max()))
