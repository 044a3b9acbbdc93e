"""HL7 v2.5.1 ORU^R01 of a final report, built and validated with hl7apy; the ACK read with `hl7`.

Identifiers come from the study only (Patient ID with its issuer, name, birth
date, sex, Accession Number); nothing is invented: an empty value stays empty.
One OBX group per verified finding (coded with SNOMED CT and DICOM codes, units
in UCUM), then the report text, one TX OBX per line.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime, timezone

import hl7
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message

from workstation.core.delivery import RisSettings
from workstation.reports.draft import ReportDraft, ReportFinding

VERSION = "2.5.1"
TEXT_CODE = "18782-3^Radiology Study observation (narrative)^LN"
FINDING_CODE = "121071^Finding^DCM"
SITE_CODE = "363698007^Finding site^SCT"
LONG_CODE = "103339001^Long axis^SCT"
SHORT_CODE = "103340004^Short axis^SCT"
MEAN_HU_CODE = "112031^Attenuation Coefficient^DCM"
ALGORITHM_CODE = "111001^Algorithm Name^DCM"
ALGORITHM_VERSION_CODE = "111003^Algorithm Version^DCM"
LOCATION_CODE = "LOCATION^Location on image (slice, patient mm)^99RADAI"
SOURCE_CODE = "MEASURE-SOURCE^How the diameters were obtained^99RADAI"
NODULE = "27925004^Nodule^SCT"
SIDES = {"right": "3341006^Right lung structure^SCT", "left": "44029006^Left lung structure^SCT",
         "midline": "39607008^Lung structure^SCT"}
MM = "mm^millimeter^UCUM"
HU = "[hnsf'U]^Hounsfield unit^UCUM"
_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}


class Hl7Error(ValueError):
    """The message could not be built (it would not validate), or an answer is not an HL7 ACK."""


@dataclass(frozen=True)
class Ack:
    code: str  # AA, AE, AR (or CA, CE, CR in enhanced mode)
    control_id: str  # MSA-2: the control ID of the message acknowledged
    text: str  # MSA-3 and ERR text, for the user

    @property
    def accepted(self) -> bool:
        return self.code in ("AA", "CA")


def escape(text: str) -> str:
    """Text for an HL7 field: delimiters escaped, control characters dropped (a comment cannot break a segment)."""
    clean = "".join(ch if ch >= " " else " " for ch in text)
    return "".join(_ESCAPES.get(ch, ch) for ch in clean)


def build_oru(draft: ReportDraft, text: str, control_id: str, settings: RisSettings, *, corrected: bool,
              signed_at_utc: str, now: datetime | None = None) -> bytes:
    """The ORU^R01 as ER7 bytes (UTF-8, segments ended by CR); raises Hl7Error when it does not validate."""
    ident = draft.identifiers
    if not ident.patient_id:
        raise Hl7Error("the study has no Patient ID: the RIS could not file the result (nothing invented)")
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d%H%M%S")
    message = Message("ORU_R01", version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
    msh = message.msh
    msh.msh_3, msh.msh_4 = settings.sending_application, settings.sending_facility
    msh.msh_5, msh.msh_6 = settings.receiving_application, settings.receiving_facility
    msh.msh_7, msh.msh_9, msh.msh_10 = stamp, "ORU^R01^ORU_R01", control_id
    msh.msh_11, msh.msh_12, msh.msh_18 = "P", VERSION, "UNICODE UTF-8"
    result = message.add_group("ORU_R01_PATIENT_RESULT")
    pid = result.add_group("ORU_R01_PATIENT").pid
    pid.pid_1 = "1"
    pid.pid_3 = f"{escape(ident.patient_id)}^^^{escape(ident.issuer_of_patient_id)}^MR"
    if ident.patient_name:
        pid.pid_5 = "^".join(escape(part) for part in ident.patient_name.split("^")[:5])
    if ident.birth_date:
        pid.pid_7 = escape(ident.birth_date)
    if ident.sex in ("M", "F", "O"):
        pid.pid_8 = ident.sex
    order = result.add_group("ORU_R01_ORDER_OBSERVATION")
    order.orc.orc_1 = "RE"
    if ident.accession_number:
        order.orc.orc_3 = escape(ident.accession_number)
    obr = order.obr
    obr.obr_1 = "1"
    if ident.accession_number:
        obr.obr_3 = escape(ident.accession_number)
        obr.obr_18 = escape(ident.accession_number)
    obr.obr_4 = f"^{escape(ident.study_description or (ident.modality + ' study').strip())}"
    if ident.study_date:
        obr.obr_7 = escape(ident.study_date + ident.study_time.split(".")[0])[:14]
    obr.obr_22 = _hl7_time(signed_at_utc) or stamp
    obr.obr_24 = escape(ident.modality) if ident.modality else "RAD"
    obr.obr_25 = "C" if corrected else "F"
    obr.obr_32 = escape(draft.signed_by)
    status = "C" if corrected else "F"
    set_id = 0
    for finding in draft.findings:
        for value_type, code, value, units in _finding_values(finding):
            set_id += 1
            _obx(order, set_id, value_type, code, str(finding.number), value, units, status)
    for line in text_lines(text):
        set_id += 1
        _obx(order, set_id, "TX", TEXT_CODE, "", escape(line), "", status)
    try:
        message.validate()
    except Exception as exc:  # hl7apy raises its own ValidationError family
        raise Hl7Error(f"the ORU^R01 does not validate against HL7 {VERSION}: {exc}") from None
    return message.to_er7().encode("utf-8")


def text_lines(text: str, width: int = 120) -> list[str]:
    """The report text as OBX lines: one per line, long lines wrapped (a value longer than 199 characters would
    not validate), blank lines kept so the layout survives."""
    lines: list[str] = []
    for line in text.splitlines() or [""]:
        lines += textwrap.wrap(line, width, break_long_words=True, replace_whitespace=False) or [""]
    return lines


def parse_ack(data: bytes) -> Ack:
    """MSA of an ACK (and the text of any ERR); raises Hl7Error for anything else."""
    try:
        text = data.decode("utf-8", errors="replace").replace("\n", "\r").strip("\r")
        message = hl7.parse(text)
        msa = message.segment("MSA")
    except Exception as exc:  # noqa: BLE001 - any parse failure is "not an ACK"
        raise Hl7Error(f"the answer is not an HL7 ACK ({exc.__class__.__name__})") from None
    code = str(msa[1]).strip().upper()
    control = str(msa[2]).strip() if len(msa) > 2 else ""
    notes = [str(msa[3]).strip()] if len(msa) > 3 and str(msa[3]).strip() else []
    for segment in message:
        if str(segment[0]) == "ERR":
            notes += [str(field).strip() for field in list(segment)[1:] if str(field).strip()][-1:]
    if code not in ("AA", "AE", "AR", "CA", "CE", "CR"):
        raise Hl7Error(f"the ACK carries an unknown acknowledgment code {code[:10]!r}")
    return Ack(code, control, "; ".join(notes)[:500])


def _finding_values(finding: ReportFinding) -> list[tuple[str, str, str, str]]:
    x, y, z = finding.center_mm
    values = [
        ("CWE", FINDING_CODE, NODULE if finding.label.lower() == "nodule" else f"^{escape(finding.label)}", ""),
        ("CWE", SITE_CODE, SIDES.get(finding.side, SIDES["midline"]), ""),
        ("NM", LONG_CODE, f"{finding.long_mm:.1f}", MM),
        ("NM", SHORT_CODE, f"{finding.short_mm:.1f}", MM),
        ("ST", SOURCE_CODE, escape(finding.diameter_source), ""),
        ("ST", LOCATION_CODE, f"slice {finding.frame_index + 1}, x {x:.1f}, y {y:.1f}, z {z:.1f} mm", ""),
    ]
    if finding.mean_hu is not None:
        values.append(("NM", MEAN_HU_CODE, f"{finding.mean_hu:.0f}", HU))
    if finding.added_by_reader:
        values.append(("ST", ALGORITHM_CODE, "added by reader", ""))
    else:
        name, _, version = finding.model.partition(" ")
        values += [("ST", ALGORITHM_CODE, escape(name), ""), ("ST", ALGORITHM_VERSION_CODE, escape(version), "")]
    return values


def _obx(order, set_id: int, value_type: str, code: str, sub_id: str, value: str, units: str, status: str) -> None:
    obx = order.add_group("ORU_R01_OBSERVATION").obx
    obx.obx_1, obx.obx_2, obx.obx_3 = str(set_id), value_type, code
    if sub_id:
        obx.obx_4 = sub_id
    if value:
        obx.obx_5 = value
    if units:
        obx.obx_6 = units
    obx.obx_11 = status


def _hl7_time(iso_utc: str) -> str:
    try:
        moment = datetime.fromisoformat(iso_utc.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return moment.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S") + "+0000"
