"""Read a TID 1500 measurement report (ours or another highdicom/dcmqi-like tool's) into plain findings.

Planar ROI groups become findings: the 2-D region's bounding box on its image,
the finding type, the score (Certainty of Finding or Probability) and, in our
review SR, the reader's verdict. Groups sharing a tracking UID are one finding
(we write each as a 2-D and a 3-D group); a finding with only a 3-D region is
placed on an image of the same frame of reference when one is at hand.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes as sr_codes
from pydicom.uid import UID

from workstation.core.results import KIND_REVIEW_SR, KIND_SR, ForeignFinding, ForeignFindings
from workstation.results import codes
from workstation.results.regions import bounding_box
from workstation.results.spatial import ImagePlane, to_image

SR_CLASSES = {
    UID("1.2.840.10008.5.1.4.1.1.88.34"): hd.sr.Comprehensive3DSR,
    UID("1.2.840.10008.5.1.4.1.1.88.33"): hd.sr.ComprehensiveSR,
    UID("1.2.840.10008.5.1.4.1.1.88.22"): hd.sr.EnhancedSR,
}
OTHER_DOCUMENTS = {UID("1.2.840.10008.5.1.4.1.1.88.11"), UID("1.2.840.10008.5.1.4.1.1.88.35")}  # basic text, extensible
_SCORES = {(codes.SCORE.value, "DCM"), ("122157", "DCM")}  # Certainty of Finding, Probability


class Unusable(ValueError):
    """The object cannot be shown; the message says why."""


def read_sr(ds: pydicom.Dataset, planes: list[ImagePlane]) -> ForeignFindings:
    sop_class = UID(str(ds.SOPClassUID))
    if sop_class not in SR_CLASSES:
        raise Unusable(f"{sop_class.name} documents are not measurement reports")
    template = _template(ds)
    if template != "1500" and not _is_measurement_report(ds):
        raise Unusable(f"the SR is not a TID 1500 measurement report (template {template or 'not named'})")
    report = SR_CLASSES[sop_class].from_dataset(ds).content
    if not isinstance(report, hd.sr.MeasurementReport):
        raise Unusable("the SR's content is not a TID 1500 measurement report")
    groups = report.get_planar_roi_measurement_groups()
    findings, notes, algorithms = _findings(groups, planes)
    person = _person(report)
    reviewed = any(f.state for f in findings) or bool(person and ds.get("VerificationFlag") == "VERIFIED")
    verifier = ds.get("VerifyingObserverSequence", [None])[0]
    source = algorithms[0] if algorithms else _device(report) or str(ds.get("SeriesDescription", "") or "SR")
    if reviewed or (person and not algorithms):
        source = f"{person or 'reader'}, review of {source}" if reviewed else person
    return ForeignFindings(
        kind=KIND_REVIEW_SR if reviewed else KIND_SR, source=source, sop_instance_uid=str(ds.SOPInstanceUID),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")), series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        referenced_series_uids=_evidence_series(ds), content_datetime=f"{ds.get('ContentDate', '')}{ds.get('ContentTime', '')}",
        findings=tuple(findings), verified_by=_name(verifier.VerifyingObserverName) if verifier else "",
        verified_at=str(verifier.get("VerificationDateTime", "")) if verifier else "", notes=tuple(notes))


def _template(ds: pydicom.Dataset) -> str:
    items = ds.get("ContentTemplateSequence", [])
    return str(items[0].get("TemplateIdentifier", "")) if items else ""


def _is_measurement_report(ds: pydicom.Dataset) -> bool:
    names = ds.get("ConceptNameCodeSequence", [])
    return bool(names) and (names[0].CodeValue, names[0].CodingSchemeDesignator) == ("126000", "DCM")


def _findings(groups, planes: list[ImagePlane]) -> tuple[list[ForeignFinding], list[str], list[str]]:
    by_uid: dict[str, list] = {}
    for number, group in enumerate(groups, start=1):
        by_uid.setdefault(str(group.tracking_uid or f"group-{number}"), []).append(group)
    findings, notes, algorithms = [], [], []
    for uid, members in by_uid.items():
        flat = [g for g in members if isinstance(g.roi, hd.sr.ImageRegion)]
        spatial = [g for g in members if isinstance(g.roi, hd.sr.ImageRegion3D)]
        group = (flat or spatial or members)[0]
        name = str(group.tracking_identifier or uid)
        algorithms += [a for a in (_algorithm(g) for g in members) if a and a not in algorithms]
        place = _flat_place(group.roi) if flat else _spatial_place(spatial[0].roi, planes) if spatial else None
        if place is None:
            notes.append(f"{name}: no region that can be placed on an image")
            continue
        sop_uid, frame, points = place
        evaluations = {(e.name.value, e.name.scheme_designator): e.value for g in members
                       for e in g.get_qualitative_evaluations()}
        state = evaluations.get((codes.REVIEW_STATE.value, codes.REVIEW_SCHEME))
        findings.append(ForeignFinding(
            tracking_uid=uid, tracking_id=name,
            label=codes.label_of(group.finding_type) if group.finding_type is not None else "finding",
            sop_instance_uid=sop_uid, box_px=bounding_box(points), frame_number=frame, score=_score(members),
            state=codes.STATE_OF_CODE.get(state.value, state.meaning) if state is not None else "",
            box_edited=(codes.BOX_EDITED.value, codes.REVIEW_SCHEME) in evaluations,
            relabelled=(codes.RELABELLED.value, codes.REVIEW_SCHEME) in evaluations,
            points_px=tuple((float(c), float(r)) for c, r in points)))
    return findings, notes, algorithms


def _flat_place(roi) -> tuple[str, int | None, np.ndarray] | None:
    references = [item for item in roi.get("ContentSequence", []) if "ReferencedSOPSequence" in item]
    if not references:
        return None
    reference = references[0].ReferencedSOPSequence[0]
    frames = reference.get("ReferencedFrameNumber")
    frame = int(frames[0] if isinstance(frames, (list, pydicom.multival.MultiValue)) else frames) if frames else None
    points = np.asarray(roi.value, dtype=np.float64).reshape(-1, 2)
    if roi.graphic_type in (hd.sr.GraphicTypeValues.CIRCLE, hd.sr.GraphicTypeValues.ELLIPSE):
        points = _conic_extent(roi.graphic_type, points)
    return str(reference.ReferencedSOPInstanceUID), frame, points


def _conic_extent(graphic_type, points: np.ndarray) -> np.ndarray:
    """Corner points of the box around a circle (centre, point on it) or an ellipse (two axes' end points)."""
    if graphic_type == hd.sr.GraphicTypeValues.CIRCLE:
        centre, radius = points[0], float(np.linalg.norm(points[1] - points[0]))
        return np.array([centre - radius, centre + radius])
    return points


def _spatial_place(roi, planes: list[ImagePlane]) -> tuple[str, int | None, np.ndarray] | None:
    points = np.asarray(roi.value, dtype=np.float64).reshape(-1, 3)
    placed = to_image(points, str(roi.frame_of_reference_uid), planes)
    return None if placed is None else (placed[0], None, placed[1])


def _score(groups) -> float | None:
    for group in groups:
        for measurement in group.get_measurements():
            if (measurement.name.value, measurement.name.scheme_designator) in _SCORES:
                return float(measurement.value)
    return None


def _algorithm(group) -> str:
    """TID 4019 "Algorithm Name" / "Algorithm Version" on the group's container, as "name version"."""
    found: dict[str, str] = {}
    for item in group[0].get("ContentSequence", []) if len(group) else []:
        names = item.get("ConceptNameCodeSequence", [])
        if names and names[0].CodingSchemeDesignator == "DCM" and names[0].CodeValue in ("111001", "111003"):
            found.setdefault(names[0].CodeValue, str(item.get("TextValue", "")))
    return " ".join(v for v in (found.get("111001", ""), found.get("111003", "")) if v) if "111001" in found else ""


def _person(report: hd.sr.MeasurementReport) -> str:
    contexts = report.get_observer_contexts(observer_type=sr_codes.DCM.Person)
    return _name(contexts[0].observer_identifying_attributes.name) if contexts else ""


def _device(report: hd.sr.MeasurementReport) -> str:
    contexts = report.get_observer_contexts(observer_type=sr_codes.DCM.Device)
    if not contexts:
        return ""
    attributes = contexts[0].observer_identifying_attributes
    return str(getattr(attributes, "name", "") or getattr(attributes, "model_name", "") or "")


def _name(value) -> str:
    """A PN for people: "carol^" -> "carol", "Smith^Anna" -> "Smith, Anna"."""
    parts = [p for p in str(value).split("=")[0].split("^") if p]
    return ", ".join(parts[:2]) if parts else ""


def _evidence_series(ds: pydicom.Dataset) -> tuple[str, ...]:
    series = []
    for name in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        for study in ds.get(name, []):
            series += [str(s.SeriesInstanceUID) for s in study.get("ReferencedSeriesSequence", [])]
    return tuple(dict.fromkeys(series))
