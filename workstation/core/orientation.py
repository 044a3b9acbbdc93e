"""Orientation markers: which patient direction each edge of the displayed image faces.

The viewer draws a frame with column index growing to the right and row index
growing downwards (row-major image, inverted y axis), so the right edge faces
the row direction cosine of ImageOrientationPatient and the bottom edge its
column direction cosine. Patient axes are DICOM LPS: +x left, +y posterior,
+z head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_AXIS_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))  # (negative, positive) for patient x, y, z
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}
OBLIQUE_TOLERANCE = 0.25  # a secondary axis is named once its share of the direction reaches this (about 15 degrees)


@dataclass(frozen=True)
class EdgeLabels:
    left: str
    right: str
    top: str
    bottom: str


def direction_letters(vector: Sequence[float], tolerance: float = OBLIQUE_TOLERANCE) -> str:
    """Letters of a patient-space direction, main axis first: (1, 0, 0) -> "L", (0.8, 0.6, 0) -> "LP"."""
    v = np.asarray(vector, dtype=float)
    length = float(np.linalg.norm(v))
    if not np.isfinite(length) or length == 0.0:
        return ""
    v = v / length
    letters = []
    for rank, axis in enumerate(np.argsort(-np.abs(v), kind="stable")):
        if rank == 0 or abs(v[axis]) >= tolerance:
            letters.append(_AXIS_LETTERS[axis][int(v[axis] > 0)])
    return "".join(letters)


def opposite(letters: str) -> str:
    return "".join(_OPPOSITE[c] for c in letters)


def edge_labels(orientation: Sequence[float], y_down: bool = True,
                tolerance: float = OBLIQUE_TOLERANCE) -> EdgeLabels:
    """Edge letters from ImageOrientationPatient (row cosines, column cosines)."""
    row = np.asarray(orientation[:3], dtype=float)
    column = np.asarray(orientation[3:6], dtype=float)
    down, up = direction_letters(column, tolerance), direction_letters(-column, tolerance)
    return EdgeLabels(left=direction_letters(-row, tolerance), right=direction_letters(row, tolerance),
                      top=up if y_down else down, bottom=down if y_down else up)


def edge_labels_from_patient_orientation(values: Sequence[str], y_down: bool = True) -> EdgeLabels | None:
    """Edge letters from PatientOrientation (projection images): the row direction, then the column direction.

    None for anything but the six human letters (e.g. quadruped terms): no marker beats a wrong one.
    """
    if len(values) != 2:
        return None
    row, column = (str(v).strip().upper() for v in values)
    if not row or not column or any(c not in _OPPOSITE for c in row + column):
        return None
    return EdgeLabels(left=opposite(row), right=row, top=opposite(column) if y_down else column,
                      bottom=column if y_down else opposite(column))


def image_edge_labels(orientation: Sequence[float] | None, patient_orientation: Sequence[str] = (),
                      y_down: bool = True) -> EdgeLabels | None:
    """ImageOrientationPatient when known, else PatientOrientation, else None (no markers)."""
    if orientation is not None and len(orientation) == 6:
        return edge_labels(orientation, y_down)
    return edge_labels_from_patient_orientation(patient_orientation, y_down) if patient_orientation else None
