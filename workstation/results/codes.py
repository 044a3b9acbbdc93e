"""The codes our result objects use, in one place (the README lists the same table).

Standard codes wherever one exists (SNOMED CT, DCM, LOINC, UCUM); two local
schemes for what has none: the reader's verdict on an AI finding ("99WSREV") and
model labels with no SNOMED CT code ("99WSAI"). Local designators start with
"99" (PS3.16 8.2) and are declared in each SR's Coding Scheme Identification.
"""

from __future__ import annotations

from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes

REVIEW_SCHEME = "99WSREV"
LABEL_SCHEME = "99WSAI"
RESPONSIBLE = "Radiology AI Workstation"
SCHEME_NAMES = {REVIEW_SCHEME: "Radiology AI Workstation reader review codes",
                LABEL_SCHEME: "Radiology AI Workstation model labels"}


def _review(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value, REVIEW_SCHEME, meaning)


# the reader's verdict, one qualitative evaluation per finding of the review SR
REVIEW_STATE = _review("RS", "Reader verdict on AI finding")
STATE_CODES = {
    "accepted": _review("RS-ACC", "Accepted by reader"),
    "rejected": _review("RS-REJ", "Rejected by reader"),
    "edited": _review("RS-EDT", "Edited by reader"),
    "added": _review("RS-ADD", "Added by reader"),
    "deleted": _review("RS-DEL", "Deleted by reader"),
    "pending": _review("RS-PND", "Not decided by reader"),
}
STATE_OF_CODE = {code.value: state for state, code in STATE_CODES.items()}
BOX_EDITED = _review("RS-BOX", "Region edited by reader")  # value: SNOMED CT Yes
RELABELLED = _review("RS-LBL", "Finding type changed by reader")
YES = CodedConcept(codes.SCT.Yes.value, "SCT", codes.SCT.Yes.meaning)
# a run without findings: one group "Presence of property" = "Absent"
PRESENCE = CodedConcept("121052", "DCM", "Presence of property")
ABSENT = CodedConcept("121054", "DCM", "Absent")

# the person observer (TID 1003): both reading roles are physicians (CID 7452); signing off is verifying (CID 7453).
# The workstation role itself (radiologist / reviewer) is a permission level, not a DICOM role.
PHYSICIAN = CodedConcept("121081", "DCM", "Physician")
ROLE_CODES = {"radiologist": PHYSICIAN, "reviewer": PHYSICIAN}
VERIFYING = CodedConcept("121098", "DCM", "Verifying")

# finding types (CID 6051-like, SNOMED CT); other labels get a local code named after the label
FINDING_TYPES = {
    "nodule": codes.SCT.Nodule,
    "mass": codes.SCT.Mass,
    "lesion": codes.SCT.Lesion,
}

SCORE = codes.DCM.CertaintyOfFinding  # DCM 111012: the model's score, a fraction 0..1
UNITLESS = codes.UCUM.NoUnits  # UCUM "1"


def finding_type(label: str) -> CodedConcept:
    code = FINDING_TYPES.get(label.strip().lower())
    if code is not None:
        return CodedConcept(code.value, code.scheme_designator, code.meaning)
    value = "".join(ch for ch in label.upper() if ch.isalnum())[:16] or "FINDING"
    return CodedConcept(value, LABEL_SCHEME, label.strip()[:64] or "Finding")


def local_schemes(labels, reviewed: bool) -> set[str]:
    """The local coding schemes an SR with these finding labels uses (declared in the SR)."""
    schemes = {finding_type(label).scheme_designator for label in labels} & {LABEL_SCHEME}
    return schemes | ({REVIEW_SCHEME} if reviewed else set())


def label_of(concept) -> str:
    """The workstation label for a finding type read back (lower case for our own codes)."""
    for label, code in FINDING_TYPES.items():
        if concept.value == code.value and concept.scheme_designator == code.scheme_designator:
            return label
    return str(concept.meaning)


def procedure_reported(modality: str) -> CodedConcept:
    """TID 1500 "Procedure reported" from CID 100 (PixelMed's validator accepts only the group's own codes:
    LOINC "<modality> unspecified body region" where there is one)."""
    loinc = {"CT": ("25045-6", "CT unspecified body region"), "MR": ("25056-3", "MRI unspecified body region"),
             "NM": ("49118-3", "NM unspecified body region"), "PT": ("44136-0", "PET unspecified body region")}
    if modality in loinc:
        value, meaning = loinc[modality]
        return CodedConcept(value, "LN", meaning)
    return CodedConcept("363679005", "SCT", "Imaging procedure")
