"""Priors by Patient ID + issuer and the registration-free alignment on table position (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from workstation.core.priors import Alignment, default_offset, matching_series, patient_groups, priors_of, table_positions
from workstation.core.study import (Catalog, DisplaySet, FileLocation, FrameGeometry, FrameRef, InstanceHeader,
                                    PatientRef, PixelFormat, SeriesRef, StudyRef)


def display_set(patient: PatientRef, study_uid: str, date: str, z_values, modality="CT", description="Chest",
                body_part="CHEST", orientation=(1.0, 0, 0, 0, 1.0, 0)) -> DisplaySet:
    study = StudyRef(study_uid, patient, date=date, time="100000")
    series = SeriesRef(study_uid + ".1", study, modality=modality, description=description, body_part=body_part)
    frames = []
    for k, z in enumerate(z_values):
        header = InstanceHeader(FileLocation(f"{study_uid}-{k}"), "1.2.840.10008.5.1.4.1.1.2", f"{study_uid}.1.{k}", series,
                                "1.2.840.10008.1.2.1", PixelFormat(101, 81), pixel_spacing=(0.5, 0.5),
                                geometry=FrameGeometry((-20.0, -25.0, float(z)), orientation))
        frames.append(FrameRef(header))
    return DisplaySet(series, frames)


ALICE = PatientRef("123", "DOE^ALICE", issuer="HOSP-A")
ALICE_MARRIED = PatientRef("123", "SMITH^ALICE", issuer="HOSP-A")  # same person, new name: still her priors
OTHER_ISSUER = PatientRef("123", "ROE^BOB", issuer="HOSP-B")  # same number from another hospital: someone else
NO_ID = PatientRef("", "ANON")


def test_groups_merge_by_id_and_issuer_and_sort_studies_newest_first():
    sets = [display_set(ALICE, "1.1", "20230105", range(5)), display_set(ALICE_MARRIED, "1.2", "20250301", range(5)),
            display_set(OTHER_ISSUER, "1.3", "20240101", range(5)), display_set(NO_ID, "1.4", "20240101", range(5)),
            display_set(NO_ID, "1.5", "20220101", range(5))]
    catalog = Catalog(display_sets=sets)
    groups = patient_groups(catalog)
    alice = next(g for g in groups if ALICE in g.patients)
    assert alice.patients == [ALICE, ALICE_MARRIED]
    assert [s.date for s in alice.studies] == ["20250301", "20230105"]
    assert any(g.patients == [OTHER_ISSUER] for g in groups)
    current = sets[1].series.study
    assert [s.study_instance_uid for s in priors_of(catalog, current)] == ["1.1"]
    assert priors_of(catalog, sets[0].series.study) == []  # nothing older
    assert priors_of(catalog, sets[3].series.study) == []  # no ID: no priors, even with another anonymous study


def test_matching_series_prefers_same_modality_and_description():
    current = display_set(ALICE, "2.1", "20250101", range(10), description="Chest 1mm")
    candidates = [display_set(ALICE, "2.2", "20240101", range(3), modality="CR"),
                  display_set(ALICE, "2.3", "20240101", range(10), description="Scout"),
                  display_set(ALICE, "2.4", "20240101", range(40), description="CHEST 1mm")]
    assert matching_series(candidates, current) is candidates[2]
    assert matching_series(candidates[:1], current) is None


def test_table_positions_are_the_frame_centres_z():
    tilted = display_set(ALICE, "3.1", "20250101", [0, 5], orientation=(1.0, 0, 0, 0, 0.8, -0.6))
    z = table_positions(tilted)
    # centre = position + column direction * 0.5 mm * (101 - 1) / 2: z moves by -0.6 * 25 mm
    np.testing.assert_allclose(z, [-15.0, -10.0])
    no_geometry = display_set(ALICE, "3.2", "20250101", [0], orientation=None)
    assert table_positions(no_geometry) is None


def test_default_offset_same_table_or_centres():
    assert default_offset(np.arange(0, 300, 2.0), np.arange(-20, 260, 2.5)) == 0.0  # overlap: same table positions
    # another frame of reference: the prior's z runs 1000 mm further; ranges' centres are matched
    assert default_offset(np.arange(0, 300, 2.0), np.arange(1000, 1300, 3.0)) == pytest.approx(1000 + 148.5 - 149)


def test_alignment_maps_slices_both_ways_and_relinks():
    current = display_set(ALICE, "4.1", "20250101", np.arange(0, 100, 2.0))  # 50 slices 2 mm
    prior = display_set(ALICE, "4.2", "20240101", np.arange(-10, 110, 5.0))  # 24 slices 5 mm
    alignment = Alignment.of(current, prior)
    assert alignment.offset_mm == 0.0
    k, miss = alignment.prior_frame(10)  # current z = 20 -> prior z 20 is frame 6
    assert (k, miss) == (6, 0.0)
    assert alignment.current_frame(6) == (10, 0.0)
    alignment.offset_mm = 7.0  # the reader moves the prior 7 mm: current z 20 -> prior z 27 -> frame 7 (z 25)
    assert alignment.prior_frame(10) == (7, 2.0)
    alignment.relink(current_frame=10, prior_frame=9)  # the reader says slice 10 is the prior's 9 (z 35)
    assert alignment.offset_mm == 15.0
    assert alignment.prior_frame(10)[0] == 9 and alignment.current_frame(9)[0] == 10


def test_the_newest_study_is_read_first():
    from workstation.core.priors import first_to_read

    older = display_set(ALICE, "5.1", "20200101", range(3))
    newer = display_set(ALICE_MARRIED, "5.2", "20250101", range(3))
    other = display_set(OTHER_ISSUER, "5.3", "20260101", range(3))
    assert first_to_read(Catalog(display_sets=[older, newer, other])) is newer  # the first patient's newest study
    assert first_to_read(Catalog(display_sets=[display_set(NO_ID, "5.4", "2020", range(3))])).series.study.study_instance_uid == "5.4"
    assert first_to_read(Catalog()) is None
