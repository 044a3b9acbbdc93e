"""Orientation markers from direction cosines (core, no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from workstation.core.orientation import (
    EdgeLabels,
    direction_letters,
    edge_labels,
    edge_labels_from_patient_orientation,
    image_edge_labels,
)


def test_axial_ct_as_radiologists_read_it():
    """Patient's right on the screen's left, anterior at the top."""
    assert edge_labels((1, 0, 0, 0, 1, 0)) == EdgeLabels(left="R", right="L", top="A", bottom="P")


def test_sagittal():
    assert edge_labels((0, 1, 0, 0, 0, -1)) == EdgeLabels(left="A", right="P", top="H", bottom="F")


def test_coronal():
    assert edge_labels((1, 0, 0, 0, 0, -1)) == EdgeLabels(left="R", right="L", top="H", bottom="F")


def test_y_up_swaps_top_and_bottom_only():
    assert edge_labels((1, 0, 0, 0, 1, 0), y_down=False) == EdgeLabels(left="R", right="L", top="P", bottom="A")


def test_oblique_beyond_the_tolerance_gives_compound_letters():
    # pydicom's J2K_pixelrep_mismatch.dcm: a tilted axial CT; its PatientOrientation says L \ PF
    labels = edge_labels((1.0, 0.0, 0.0, 0.0, 0.9272, -0.3746))
    assert labels == EdgeLabels(left="R", right="L", top="AH", bottom="PF")
    assert edge_labels_from_patient_orientation(("L", "PF")) == EdgeLabels(left="R", right="L", top="AH", bottom="PF")


def test_a_small_tilt_stays_a_single_letter():
    tilt = np.radians(5)
    assert edge_labels((1, 0, 0, 0, np.cos(tilt), -np.sin(tilt))).bottom == "P"


@pytest.mark.parametrize(("vector", "letters"), [
    ((1, 0, 0), "L"), ((-1, 0, 0), "R"), ((0, 1, 0), "P"), ((0, -1, 0), "A"), ((0, 0, 1), "H"), ((0, 0, -1), "F"),
    ((0.6, -0.8, 0), "AL"), ((0.7, 0.5, 0.5), "LPH"), ((0, 0, 0), ""), ((np.nan, 0, 0), ""),
])
def test_direction_letters(vector, letters):
    assert direction_letters(vector) == letters


def test_projection_image_uses_patient_orientation():
    # pydicom's RG1_UNCR.dcm (chest CR): rows run to the patient's left, columns to the feet
    assert image_edge_labels(None, ("L", "F")) == EdgeLabels(left="R", right="L", top="H", bottom="F")


def test_orientation_wins_over_patient_orientation_and_unknown_gives_none():
    assert image_edge_labels((1, 0, 0, 0, 1, 0), ("P", "H")).left == "R"
    assert image_edge_labels(None, ()) is None
    assert edge_labels_from_patient_orientation(("CR", "D")) is None  # quadruped terms: no guess
    assert edge_labels_from_patient_orientation(("L",)) is None
