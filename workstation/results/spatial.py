"""Placing patient-space (SCOORD3D) outlines on an image: which plane holds them, and where on it.

Another tool may describe a finding only in patient mm. When the image headers
are at hand, the outline belongs to the image of the same frame of reference
whose plane it lies in (within half a slice), and highdicom maps it there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pydicom
from highdicom.spatial import ReferenceToImageTransformer


@dataclass(frozen=True)
class ImagePlane:
    sop_instance_uid: str
    frame_of_reference_uid: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    spacing: tuple[float, float]
    thickness: float


def planes_of(datasets: list[pydicom.Dataset]) -> list[ImagePlane]:
    """The single-frame images among `datasets` that carry patient geometry."""
    planes = []
    for ds in datasets:
        try:
            if int(ds.get("NumberOfFrames", 1) or 1) > 1 or "PixelSpacing" not in ds:
                continue
            planes.append(ImagePlane(
                str(ds.SOPInstanceUID), str(ds.FrameOfReferenceUID),
                tuple(float(v) for v in ds.ImagePositionPatient), tuple(float(v) for v in ds.ImageOrientationPatient),
                tuple(float(v) for v in ds.PixelSpacing), float(ds.get("SliceThickness", 1.0) or 1.0)))
        except (AttributeError, TypeError, ValueError):
            continue  # not an image with usable geometry: nothing to place on it
    return planes


def to_image(points_mm: np.ndarray, frame_of_reference_uid: str,
             planes: list[ImagePlane]) -> tuple[str, np.ndarray] | None:
    """(SOP Instance UID, (column, row) points) of the plane holding the outline, or None."""
    best: tuple[float, str, np.ndarray] | None = None
    for plane in planes:
        if plane.frame_of_reference_uid != frame_of_reference_uid:
            continue
        mapped = ReferenceToImageTransformer(plane.position, plane.orientation, plane.spacing)(points_mm)
        off_plane = float(np.abs(mapped[:, 2]).max())
        if off_plane <= max(plane.thickness / 2, 0.01) and (best is None or off_plane < best[0]):
            best = (off_plane, plane.sop_instance_uid, mapped[:, :2])
    return None if best is None else (best[1], best[2])
