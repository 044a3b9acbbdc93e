"""FHIR R4 DiagnosticReport + one Observation per verified finding, as a transaction Bundle (fhir.resources R4B).

The patient and the imaging study are referenced by their identifiers (no
Patient resource is invented); each resource carries our report version's
identifier and is created conditionally (`ifNoneExist`), so a retried POST
cannot file the report twice. derivedFrom names the ImagingStudy and, when one
was made, the DICOM review SR sent to the PACS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation

from workstation.reports.draft import ReportDraft, ReportFinding

UID_SYSTEM = "urn:dicom:uid"
VERSION_SYSTEM = "urn:ietf:rfc:3986"
SNOMED, LOINC, DCM, UCUM = "http://snomed.info/sct", "http://loinc.org", "http://dicom.nema.org/resources/ontology/DCM", "http://unitsofmeasure.org"
SIDES = {"right": ("3341006", "Right lung structure"), "left": ("44029006", "Left lung structure"),
         "midline": ("39607008", "Lung structure")}


@dataclass(frozen=True)
class FhirOutcome:
    """What a FHIR server said: delivered, or refused (kept for a user's retry) / failed (retried later)."""

    status: int
    delivered: bool
    retry: bool
    text: str


def build_bundle(draft: ReportDraft, text: str, version_id: str, *, corrected: bool, signed_at_utc: str,
                 review_sr_uid: str = "", now: datetime | None = None) -> bytes:
    """The transaction Bundle as JSON bytes (validated by the R4B models on construction)."""
    ident = draft.identifiers
    issued = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    status = "corrected" if corrected else "final"
    subject = {"identifier": {"value": ident.patient_id, **({"system": f"urn:oid:{ident.issuer_of_patient_id}"}
                                                            if _is_oid(ident.issuer_of_patient_id) else {})},
               "display": "patient of the study"}
    study_ref = {"identifier": {"system": UID_SYSTEM, "value": f"urn:oid:{draft.study_instance_uid}"}, "type": "ImagingStudy"}
    derived = [study_ref] + ([{"identifier": {"system": UID_SYSTEM, "value": f"urn:oid:{review_sr_uid}"},
                               "display": "DICOM review SR"}] if review_sr_uid else [])
    entries, results = [], []
    for finding in draft.findings:
        full_url = f"urn:uuid:{_uuid(version_id, finding.number)}"
        observation = Observation(**_observation(finding, status, subject, derived, version_id, issued))
        entries.append(_entry(full_url, observation, "Observation", full_url))
        results.append({"reference": full_url})
    report = DiagnosticReport(
        identifier=[{"system": VERSION_SYSTEM, "value": f"urn:uuid:{version_id}"}]
        + ([{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
             "value": ident.accession_number}] if ident.accession_number else []),
        status=status,
        category=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}],
        code={"coding": [{"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}],
              "text": ident.study_description or "Imaging study"},
        subject=subject, issued=issued,
        effectiveDateTime=_effective(ident.study_date) or issued,
        imagingStudy=[study_ref], result=results or None,
        conclusion=text,
        presentedForm=[{"contentType": "text/plain; charset=utf-8", "data": _base64(text), "title": "Report"}],
    )
    entries.append(_entry(f"urn:uuid:{_uuid(version_id, 0)}", report, "DiagnosticReport", f"urn:uuid:{version_id}"))
    bundle = Bundle(type="transaction", entry=entries)
    return bundle.model_dump_json(exclude_none=True).encode("utf-8")


def classify(status: int, body: bytes) -> FhirOutcome:
    """A server's answer to the transaction: 2xx delivered; 400-499 refused (not retried by itself); else retry."""
    text = _outcome_text(body)
    if 200 <= status < 300:
        return FhirOutcome(status, True, False, "")
    if status in (401, 403):
        return FhirOutcome(status, False, False, f"HTTP {status}: the FHIR server refused the token" + (f" ({text})" if text else ""))
    if 400 <= status < 500 and status not in (408, 429):
        return FhirOutcome(status, False, False, f"HTTP {status}: {text or 'refused'}")
    return FhirOutcome(status, False, True, f"HTTP {status}: {text or 'server unavailable'}")


def _observation(finding: ReportFinding, status: str, subject: dict, derived: list[dict], version_id: str,
                 issued: str) -> dict:
    side_code, side_text = SIDES.get(finding.side, SIDES["midline"])
    components = [
        _quantity("103339001", "Long axis", finding.long_mm, "mm", "mm"),
        _quantity("103340004", "Short axis", finding.short_mm, "mm", "mm"),
    ]
    if finding.mean_hu is not None:
        components.append({"code": {"coding": [{"system": DCM, "code": "112031", "display": "Attenuation Coefficient"}]},
                           "valueQuantity": {"value": finding.mean_hu, "unit": "HU", "system": UCUM, "code": "[hnsf'U]"}})
    origin = "added by reader" if finding.added_by_reader else f"proposed by {finding.model}, {finding.state}"
    x, y, z = finding.center_mm
    return {
        "identifier": [{"system": VERSION_SYSTEM, "value": f"urn:uuid:{_uuid(version_id, finding.number)}"}],
        "status": "corrected" if status == "corrected" else "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "imaging"}]}],
        "code": {"coding": [{"system": SNOMED, "code": "27925004", "display": "Nodule"}]
                 if finding.label.lower() == "nodule" else [], "text": finding.label},
        "subject": subject, "issued": issued,
        "bodySite": {"coding": [{"system": SNOMED, "code": side_code, "display": side_text}]},
        "valueQuantity": {"value": finding.long_mm, "unit": "mm", "system": UCUM, "code": "mm"},
        "component": components,
        "derivedFrom": derived,
        "note": [{"text": f"Finding {finding.number}, slice {finding.frame_index + 1}, patient x {x:.1f} y {y:.1f} "
                          f"z {z:.1f} mm; diameters {finding.diameter_source}; {origin}."}],
    }


def _quantity(code: str, display: str, value: float, unit: str, ucum: str) -> dict:
    return {"code": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": ucum}}


def _entry(full_url: str, resource, kind: str, identifier: str) -> dict:
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": kind, "ifNoneExist": f"identifier={VERSION_SYSTEM}|{identifier}"}}


def _uuid(base: str, number: int) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"radai-report:{base}:{number}"))


def _base64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _effective(study_date: str) -> str:
    if len(study_date) == 8 and study_date.isdigit():
        return f"{study_date[:4]}-{study_date[4:6]}-{study_date[6:]}"
    return ""


def _is_oid(value: str) -> bool:
    return bool(value) and all(part.isdigit() for part in value.split("."))


def _outcome_text(body: bytes) -> str:
    """The diagnostics of an OperationOutcome, else a short piece of the body."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict) and data.get("resourceType") == "OperationOutcome":
        issues = data.get("issue") or []
        texts = [str(i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code") or "")
                 for i in issues if isinstance(i, dict)]
        return "; ".join(t for t in texts if t)[:500]
    return ""
