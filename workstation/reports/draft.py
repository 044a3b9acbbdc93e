"""The structured report draft of a signed-off review: verified findings as values, and the text a radiologist edits.

Only findings the reader kept (accepted, edited or added) are reported; a
rejected or deleted one never is. Measurements say where they came from (the
reader's own diameter measurement, or an estimate from the AI heatmap or the
box), because an estimate must not read like a measurement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

REPORTED_STATES = ("accepted", "edited", "added")
IMPRESSION_PLACEHOLDER = "[impression: to be completed by the radiologist]"
DRAFT_FORMAT = "workstation.report-draft/1"


@dataclass(frozen=True)
class Identifiers:
    """What the RIS needs to file the result; kept in the encrypted store only, never in audit or logs."""

    patient_id: str = ""
    issuer_of_patient_id: str = ""
    patient_name: str = ""  # DICOM PN: family^given^middle^prefix^suffix (the HL7 XPN order too)
    birth_date: str = ""  # YYYYMMDD
    sex: str = ""  # M, F, O or empty
    accession_number: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    modality: str = ""


@dataclass(frozen=True)
class ReportFinding:
    number: int
    label: str
    state: str  # accepted | edited | added
    frame_index: int  # display frame (0-based); shown 1-based as the slice number
    instance_number: int | None
    sop_instance_uid: str
    center_mm: tuple[float, float, float]  # patient LPS of the region's centre on its key slice
    side: str  # "right", "left" or "midline": the patient's side
    long_mm: float
    short_mm: float
    diameter_source: str  # "measured by the reader" | "estimated from the AI heatmap" | "estimated from the box"
    mean_hu: float | None
    model: str  # "name version" of the model that proposed it; "" when the reader added it
    score: float | None = None

    @property
    def added_by_reader(self) -> bool:
        return self.state == "added"

    @property
    def estimated(self) -> bool:
        return self.diameter_source != "measured by the reader"


@dataclass(frozen=True)
class ReportDraft:
    study_instance_uid: str
    series_instance_uid: str
    run_id: str
    signoff_entry_id: str
    signed_by: str
    signed_at_utc: str
    model_name: str
    model_version: str
    findings: tuple[ReportFinding, ...]
    identifiers: Identifiers = field(default_factory=Identifiers)

    def structured(self) -> dict[str, Any]:
        """The findings as stored with each report version (no patient identifiers: those are kept apart)."""
        data = asdict(self)
        del data["identifiers"]
        data["format"] = DRAFT_FORMAT
        return data

    @classmethod
    def from_structured(cls, data: dict[str, Any], identifiers: Identifiers) -> ReportDraft:
        values = {k: v for k, v in data.items() if k != "format"}
        values["findings"] = tuple(ReportFinding(**{**f, "center_mm": tuple(f["center_mm"])}) for f in values["findings"])
        return cls(**values, identifiers=identifiers)


def finding_line(finding: ReportFinding) -> str:
    x, y, z = finding.center_mm
    where = f"{finding.side} lung" if finding.side in ("right", "left") else "near the midline"
    image = f", image {finding.instance_number}" if finding.instance_number is not None else ""
    hu = f", mean {finding.mean_hu:.0f} HU" if finding.mean_hu is not None else ""
    origin = "added by reader" if finding.added_by_reader else f"proposed by {finding.model}, {finding.state}"
    return (f"{finding.number}. {finding.label.capitalize()}, {where}, slice {finding.frame_index + 1}{image} "
            f"(x {x:.1f}, y {y:.1f}, z {z:.1f} mm): {finding.long_mm:.1f} x {finding.short_mm:.1f} mm "
            f"(long x short axis, {finding.diameter_source}){hu}. {origin.capitalize()}.")


def render_text(draft: ReportDraft) -> str:
    """The editable report text: findings one per line, then the impression left for the radiologist."""
    lines = [f"FINDINGS (AI-assisted review with {draft.model_name} {draft.model_version}, "
             f"signed off by {draft.signed_by} at {draft.signed_at_utc[:16].replace('T', ' ')} UTC):"]
    if draft.findings:
        lines += [finding_line(f) for f in draft.findings]
    else:
        lines.append("No AI-proposed or reader-added finding was verified.")
    lines += ["", "IMPRESSION:", IMPRESSION_PLACEHOLDER]
    return "\n".join(lines)
