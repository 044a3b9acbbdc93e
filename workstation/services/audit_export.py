"""Export the audit trail: our JSON document, or DICOM audit messages (PS3.15 A.5) as XML.

Both carry exactly what the stored entries hold (who, where, when, what, the
study UID, the outcome and the detail keys each service recorded) plus the
DICOM codes of each event kind; entries never hold patient names, so neither
does an export. Nothing is looked up or added from elsewhere.

JSON (`workstation.audit-export/1`)::

    {"format", "workstation_id", "exported_at", "since", "count",
     "chain": {"entries", "head", "ok"},        # the whole chain at export time
     "entries": [{seq, entry_id, workstation_id, at_utc, kind, user, role, study_instance_uid,
                  outcome, outcome_text, details, prev_hash, hash,
                  "dicom": {"event_id": {code, scheme, meaning}, "action", "event_type", "outcome"}}]}

`load_json` reads it back into AuditEntry values whose hashes still verify.

DICOM XML: one <AuditMessage> (A.5.1 schema) per entry inside <AuditMessages>:
EventIdentification (EventID, EventTypeCode, action, date/time, outcome and its
description), ActiveParticipant for the user (UserIsRequestor true, RoleIDCode
carrying the workstation role, private scheme 99WORKSTATION) and for this
application (UserID = workstation id, AlternativeUserID "AETITLES=<our AE>",
RoleIDCode 110150 Application, plus 110152/110153 Destination/Source for a
retrieval/query, with the PACS node as the other participant),
AuditSourceIdentification (AuditSourceID = workstation id, type 1), and
ParticipantObjectIdentification for the study (110180 Study Instance UID,
type 2, role 3), the query (110181 SOP Class UID of Study Root C-FIND; level
and the names of the keys used, never their values: they are not kept), the
audit log (audit.export / audit.verify) and the workstation's own audit entry
(id, seq and hashes, and the entry's detail keys as ParticipantObjectDetail,
values base64 as the schema requires) so each message can be traced to the chain.
"""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import date, datetime, time, timezone
from typing import Any

from workstation.core.audit import KINDS, AuditEntry, Code, Outcome, canonical_json, verify_chain

FORMAT = "workstation.audit-export/1"
FORMATS = ("json", "dicom-xml")

STUDY_INSTANCE_UID = Code("110180", "Study Instance UID")
SOP_CLASS_UID = Code("110181", "SOP Class UID")
APPLICATION = Code("110150", "Application")
DESTINATION_ROLE = Code("110152", "Destination Role ID")
SOURCE_ROLE = Code("110153", "Source Role ID")
URI = Code("12", "URI", "RFC-3881")
AUDIT_ENTRY = Code("AUDIT-ENTRY", "Workstation audit entry", "99WORKSTATION")
ROLE_SCHEME = "99WORKSTATION"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve Information Model - FIND


# ----- since

def parse_since(text: str) -> str:
    """`--since` as the stored form of a UTC time (entries are compared as text).

    YYYY-MM-DD (midnight), or an ISO 8601 date and time; without an offset it is UTC.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), time(0), timezone.utc)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since: {text!r} is not a date (YYYY-MM-DD) or an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# ----- JSON

def dicom_codes(entry: AuditEntry) -> dict[str, Any]:
    kind = KINDS[entry.kind]
    return {
        "event_id": _code_dict(kind.event_id),
        "action": kind.action,
        "event_type": _code_dict(kind.event_type) if kind.event_type else None,
        "outcome": int(entry.outcome),
    }


def export_json(entries: Sequence[AuditEntry], chain: Sequence[AuditEntry], workstation_id: str,
                since: str | None = None, exported_at: str | None = None) -> str:
    """`entries` are exported; `chain` is the whole stored chain (its head and whether it verifies)."""
    report = verify_chain(chain)
    document = {
        "format": FORMAT,
        "workstation_id": workstation_id,
        "exported_at": exported_at or now_utc(),
        "since": since,
        "count": len(entries),
        "chain": {"entries": report.entries, "head": report.head, "ok": report.ok},
        "entries": [{**entry.to_dict(), "dicom": dicom_codes(entry)} for entry in entries],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def load_json(text: str) -> tuple[dict[str, Any], list[AuditEntry]]:
    """The header and the entries of a JSON export (the entries' hashes can be checked again)."""
    document = json.loads(text)
    if document.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    fields = AuditEntry.__dataclass_fields__
    entries = [AuditEntry(**{k: v for k, v in row.items() if k in fields}) for row in document["entries"]]
    header = {k: v for k, v in document.items() if k != "entries"}
    return header, entries


# ----- DICOM audit messages (PS3.15 A.5)

def export_dicom_xml(entries: Sequence[AuditEntry], chain: Sequence[AuditEntry], workstation_id: str,
                     ae_title: str = "", since: str | None = None, exported_at: str | None = None) -> str:
    report = verify_chain(chain)
    root = ET.Element("AuditMessages", {
        "format": FORMAT, "workstationID": workstation_id, "exportedAt": exported_at or now_utc(),
        "count": str(len(entries)), "chainEntries": str(report.entries), "chainHead": report.head,
        "chainOK": "true" if report.ok else "false",
    })
    if since:
        root.set("since", since)
    for entry in entries:
        root.append(audit_message(entry, ae_title))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def audit_message(entry: AuditEntry, ae_title: str = "") -> ET.Element:
    """One entry as an A.5.1 <AuditMessage> (element order as the schema's)."""
    kind = KINDS[entry.kind]
    message = ET.Element("AuditMessage")

    event = ET.SubElement(message, "EventIdentification", {
        "EventActionCode": kind.action,
        "EventDateTime": entry.at_utc,
        "EventOutcomeIndicator": str(_outcome(entry.outcome)),
    })
    _coded(event, "EventID", kind.event_id)
    if kind.event_type is not None:
        _coded(event, "EventTypeCode", kind.event_type)
    if entry.outcome_text:
        ET.SubElement(event, "EventOutcomeDescription").text = entry.outcome_text

    user = ET.SubElement(message, "ActiveParticipant", {"UserID": entry.user or "unknown", "UserIsRequestor": "true"})
    if entry.role:
        _coded(user, "RoleIDCode", Code(entry.role, entry.role.capitalize(), ROLE_SCHEME))

    application = ET.SubElement(message, "ActiveParticipant", {"UserID": entry.workstation_id})
    if ae_title:
        application.set("AlternativeUserID", f"AETITLES={ae_title}")
    application.set("UserIsRequestor", "false")
    _coded(application, "RoleIDCode", APPLICATION)
    node = str(entry.details.get("node", ""))
    if entry.kind in ("pacs.retrieve", "pacs.query"):
        ours, theirs = (DESTINATION_ROLE, SOURCE_ROLE) if entry.kind == "pacs.retrieve" else (SOURCE_ROLE, DESTINATION_ROLE)
        _coded(application, "RoleIDCode", ours)
        if node:
            peer = ET.SubElement(message, "ActiveParticipant", {"UserID": node, "UserIsRequestor": "false"})
            _coded(peer, "RoleIDCode", theirs)

    source = ET.SubElement(message, "AuditSourceIdentification", {"AuditSourceID": entry.workstation_id})
    ET.SubElement(source, "AuditSourceTypeCode", {"csd-code": "1"})  # end-user display device

    if entry.study_instance_uid:
        study = _object(message, entry.study_instance_uid, STUDY_INSTANCE_UID, type_code="2", role="3")
        if entry.kind == "pacs.retrieve" and entry.details.get("instances_stored") is not None:
            description = ET.SubElement(study, "ParticipantObjectDescription")
            ET.SubElement(description, "SOPClass", {"NumberOfInstances": str(int(entry.details["instances_stored"]))})
    if entry.kind == "pacs.query":
        query = _object(message, STUDY_ROOT_FIND, SOP_CLASS_UID, type_code="2", role="3")
        _detail(query, "QueryRetrieveLevel", entry.details.get("level", ""))
        _detail(query, "QueryKeys", ",".join(str(k) for k in entry.details.get("keys", [])))
    if entry.kind.startswith("audit."):
        _object(message, f"urn:workstation:{entry.workstation_id}:audit-trail", URI, type_code="2", role="13",
                name="Security Audit Log")

    record = _object(message, entry.entry_id, AUDIT_ENTRY, type_code="2", name=f"audit entry {entry.seq}")
    _detail(record, "workstation.seq", str(entry.seq))
    _detail(record, "workstation.hash", entry.hash)
    _detail(record, "workstation.prev_hash", entry.prev_hash)
    for key, value in entry.details.items():  # only the keys the entry holds
        _detail(record, str(key), value)
    return message


def export(format: str, entries: Sequence[AuditEntry], chain: Sequence[AuditEntry], workstation_id: str,
           ae_title: str = "", since: str | None = None) -> str:
    if format == "json":
        return export_json(entries, chain, workstation_id, since)
    if format == "dicom-xml":
        return export_dicom_xml(entries, chain, workstation_id, ae_title, since)
    raise ValueError(f"unknown export format {format!r} ({' or '.join(FORMATS)})")


def _code_dict(code: Code) -> dict[str, str]:
    return {"code": code.value, "scheme": code.scheme, "meaning": code.meaning}


def _coded(parent: ET.Element, tag: str, code: Code) -> ET.Element:
    return ET.SubElement(parent, tag, {"csd-code": code.value, "codeSystemName": code.scheme, "originalText": code.meaning})


def _object(message: ET.Element, object_id: str, id_type: Code, type_code: str, role: str | None = None,
            name: str = "") -> ET.Element:
    """A ParticipantObjectIdentification; its ID type code, then the name (schema order), details follow."""
    attributes = {"ParticipantObjectID": object_id, "ParticipantObjectTypeCode": type_code}
    if role:
        attributes["ParticipantObjectTypeCodeRole"] = role
    element = ET.SubElement(message, "ParticipantObjectIdentification", attributes)
    _coded(element, "ParticipantObjectIDTypeCode", id_type)
    if name:
        ET.SubElement(element, "ParticipantObjectName").text = name
    return element


def _detail(parent: ET.Element, name: str, value: Any) -> None:
    text = value if isinstance(value, str) else canonical_json(value).decode("utf-8")
    ET.SubElement(parent, "ParticipantObjectDetail", {"type": name, "value": base64.b64encode(text.encode("utf-8")).decode("ascii")})


def _outcome(value: int) -> int:
    """EventOutcomeIndicator allows 0, 4, 8, 12 only; anything else stored is reported as a serious failure."""
    try:
        return int(Outcome(value))
    except ValueError:
        return int(Outcome.SERIOUS_FAILURE)
