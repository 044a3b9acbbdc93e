"""Prior studies of a patient and the registration-free alignment of a current and a prior series.

Studies belong to one patient when Patient ID and Issuer of Patient ID agree
(names are spelt differently from one visit to the next; an ID without its
issuer is only as unique as the site makes it). Two series are aligned on
the table (head-foot, patient z) position of their slices: the same z if the
two scans cover comparable ranges (the usual case: one scanner, one landmark
convention), else the centres of their ranges; the reader then adjusts the
offset. No image registration: what the reader sees is what the headers say.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workstation.core.study import Catalog, DisplaySet, PatientRef, StudyRef

MIN_OVERLAP = 0.5  # share of the shorter scan the two z ranges must share to be compared as they are


def patient_key(patient: PatientRef) -> tuple[str, str] | None:
    """(Patient ID, issuer) or None when the ID is empty: no ID, no priors."""
    pid = patient.patient_id.strip()
    return (pid, patient.issuer.strip()) if pid else None


def study_order(study: StudyRef) -> tuple[str, str]:
    return (study.date or "", study.time or "")


@dataclass
class PatientGroup:
    """The patients of the catalog with one key (one when there is no ID) and their studies, newest first."""

    patients: list[PatientRef]
    studies: list[StudyRef]

    @property
    def patient(self) -> PatientRef:
        return self.patients[0]


def patient_groups(catalog: Catalog) -> list[PatientGroup]:
    """The catalog's patients merged by ID + issuer, in the catalog's order, each with its studies newest first."""
    groups: list[PatientGroup] = []
    by_key: dict[tuple[str, str], PatientGroup] = {}
    for patient in catalog.patients():
        key = patient_key(patient)
        group = by_key.get(key) if key is not None else None
        if group is None:
            group = PatientGroup([patient], [])
            groups.append(group)
            if key is not None:
                by_key[key] = group
        elif patient not in group.patients:
            group.patients.append(patient)
    for group in groups:
        studies = [s for s in catalog.studies() if s.patient in group.patients]
        group.studies = sorted(studies, key=study_order, reverse=True)
    return groups


def first_to_read(catalog: Catalog) -> DisplaySet | None:
    """The series to open first: the first patient's newest study (the catalog lists studies oldest first)."""
    if not catalog.display_sets:
        return None
    first = catalog.display_sets[0]
    key = patient_key(first.series.study.patient)
    if key is None:
        return first
    newest = max((d.series.study for d in catalog.display_sets if patient_key(d.series.study.patient) == key),
                 key=study_order)
    return catalog.display_sets_of(newest)[0]


def priors_of(catalog: Catalog, study: StudyRef) -> list[StudyRef]:
    """The patient's other studies before `study` (by date and time), newest first."""
    key = patient_key(study.patient)
    if key is None:
        return []
    older = [s for s in catalog.studies() if s.study_instance_uid != study.study_instance_uid
             and patient_key(s.patient) == key and study_order(s) < study_order(study)]
    return sorted(older, key=study_order, reverse=True)


def matching_series(candidates: list[DisplaySet], current: DisplaySet) -> DisplaySet | None:
    """The prior's series to compare with `current`: same modality, then same body part, description, slice count."""
    same = [d for d in candidates if d.series.modality == current.series.modality]
    if not same:
        return None

    def score(d: DisplaySet) -> tuple:
        return (d.series.body_part == current.series.body_part,
                d.series.description.strip().lower() == current.series.description.strip().lower(),
                table_positions(d) is not None, -abs(len(d.frames) - len(current.frames)))
    return max(same, key=score)


def table_positions(display_set: DisplaySet) -> np.ndarray | None:
    """Patient z (mm, head positive) of each frame's centre; None when a frame has no position or orientation."""
    out = []
    for frame in display_set.frames:
        g, h = frame.geometry, frame.instance
        if g.position is None or g.orientation is None:
            return None
        row_mm, col_mm = h.pixel_spacing or (1.0, 1.0)
        centre = (np.asarray(g.position, float) + np.asarray(g.orientation[:3], float) * col_mm * (h.pixel.columns - 1) / 2
                  + np.asarray(g.orientation[3:6], float) * row_mm * (h.pixel.rows - 1) / 2)
        out.append(centre[2])
    values = np.array(out, dtype=float)
    return values if np.all(np.isfinite(values)) else None


def default_offset(current_z: np.ndarray, prior_z: np.ndarray) -> float:
    """Prior z minus current z for the same anatomy: 0 when the ranges overlap enough, else the centres' difference."""
    c_lo, c_hi = float(np.min(current_z)), float(np.max(current_z))
    p_lo, p_hi = float(np.min(prior_z)), float(np.max(prior_z))
    shorter = max(min(c_hi - c_lo, p_hi - p_lo), 1e-6)
    overlap = min(c_hi, p_hi) - max(c_lo, p_lo)
    if overlap >= MIN_OVERLAP * shorter:
        return 0.0
    return (p_lo + p_hi) / 2 - (c_lo + c_hi) / 2


@dataclass
class Alignment:
    """Current slice <-> prior slice by table position: prior z = current z + offset_mm."""

    current_z: np.ndarray
    prior_z: np.ndarray
    offset_mm: float = 0.0

    @classmethod
    def of(cls, current: DisplaySet, prior: DisplaySet) -> Alignment | None:
        cz, pz = table_positions(current), table_positions(prior)
        if cz is None or pz is None:
            return None
        return cls(cz, pz, default_offset(cz, pz))

    def prior_frame(self, current_frame: int) -> tuple[int, float]:
        """The prior's slice nearest the current slice's position and the distance left (mm)."""
        return _nearest(self.prior_z, float(self.current_z[current_frame]) + self.offset_mm)

    def current_frame(self, prior_frame: int) -> tuple[int, float]:
        return _nearest(self.current_z, float(self.prior_z[prior_frame]) - self.offset_mm)

    def relink(self, current_frame: int, prior_frame: int) -> None:
        """The reader says these two slices show the same anatomy: the offset becomes their difference."""
        self.offset_mm = float(self.prior_z[prior_frame] - self.current_z[current_frame])


def _nearest(values: np.ndarray, target: float) -> tuple[int, float]:
    k = int(np.argmin(np.abs(values - target)))
    return k, float(abs(values[k] - target))
