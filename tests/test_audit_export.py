"""Audit export: our JSON document (round trip) and DICOM PS3.15 A.5 audit messages as XML."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET

import pytest
from keyrings.alt.file import PlaintextKeyring

from workstation.core.audit import GENESIS, AuditEvent, Outcome, chain_entry, verify_chain
from workstation.core.pacs import StudyMatch, StudyQuery
from workstation.core.roles import Role, User
from workstation.core.site import parse_site_config
from workstation.services import pacs as pacs_module
from workstation.services.audit_export import (
    FORMAT, STUDY_ROOT_FIND, export, export_dicom_xml, export_json, load_json, parse_since,
)
from workstation.services.pacs import PacsService
from workstation.services.session import AuditTrail
from workstation.store.database import Identity, Store

STUDY = "1.2.826.0.1.3680043.8.498.1"
PATIENT_NAME = "DEMO^PHANTOM"


def build_chain(events: list[AuditEvent], user: str = "alice", role: str = "radiologist", ws: str = "ws-07"):
    entries, prev = [], GENESIS
    for seq, event in enumerate(events, start=1):
        entry = chain_entry(seq, f"entry-{seq}", ws, user, role, event, prev)
        entries.append(entry)
        prev = entry.hash
    return entries


@pytest.fixture
def chain():
    return build_chain([
        AuditEvent("session.start", "2025-03-01T08:00:00.000+00:00", {"role": "radiologist"}),
        AuditEvent("pacs.query", "2025-03-01T08:01:00.000+00:00",
                   {"node": "MAIN", "level": "STUDY", "keys": ["patient_name", "modality"], "matches": 2}),
        AuditEvent("pacs.retrieve", "2025-03-01T08:02:00.000+00:00",
                   {"node": "MAIN", "method": "get", "series_count": 0, "instances_stored": 28, "new": 28,
                    "failed": 2, "cancelled": False, "status": "partial"},
                   STUDY, Outcome.MINOR_FAILURE, "the PACS reported 2 instance(s) failed"),
        AuditEvent("finding.accept", "2025-03-02T09:00:00.000+00:00",
                   {"finding_id": "a", "series_instance_uid": STUDY + ".2", "model": "nodule-detector"}, STUDY),
        AuditEvent("access.denied", "2025-03-02T09:05:00.000+00:00",
                   {"permission": "admin.export-audit", "reason": "audit export refused"},
                   outcome=Outcome.MINOR_FAILURE, outcome_text="alice (radiologist) may not export the audit trail"),
        AuditEvent("audit.verify", "2025-03-02T09:06:00.000+00:00", {"entries": 5, "integrity": "ok"}),
    ])


def messages_by_kind(xml_text: str, chain) -> dict[str, ET.Element]:
    root = ET.fromstring(xml_text.encode("utf-8"))
    messages = root.findall("AuditMessage")
    assert len(messages) == len(chain)
    return {entry.kind: message for entry, message in zip(chain, messages)}


def test_json_round_trip_keeps_every_field_and_the_chain_verifies(chain):
    text = export_json(chain, chain, "ws-07", exported_at="2025-03-03T00:00:00.000+00:00")
    header, entries = load_json(text)
    assert header["format"] == FORMAT == "workstation.audit-export/1"
    assert header["workstation_id"] == "ws-07" and header["exported_at"] == "2025-03-03T00:00:00.000+00:00"
    assert header["count"] == len(chain) and header["since"] is None
    assert header["chain"] == {"entries": len(chain), "head": chain[-1].hash, "ok": True}
    assert entries == chain
    assert all(e.computed_hash() == e.hash for e in entries) and verify_chain(entries).ok
    rows = json.loads(text)["entries"]
    retrieve = rows[2]
    assert retrieve["dicom"] == {"event_id": {"code": "110104", "scheme": "DCM", "meaning": "DICOM Instances Transferred"},
                                 "action": "C", "event_type": None, "outcome": 4}
    assert rows[0]["dicom"]["event_type"] == {"code": "110122", "scheme": "DCM", "meaning": "Login"}
    assert rows[3]["dicom"]["action"] == "U" and rows[3]["dicom"]["event_id"]["code"] == "110103"


def test_json_export_of_a_part_names_the_whole_chain_head(chain):
    header, entries = load_json(export("json", chain[3:], chain, "ws-07", since="2025-03-02T00:00:00.000+00:00"))
    assert [e.seq for e in entries] == [4, 5, 6] and header["count"] == 3
    assert header["chain"]["head"] == chain[-1].hash and header["since"] == "2025-03-02T00:00:00.000+00:00"


def test_tampered_chain_is_flagged_in_the_export_header(chain):
    altered = list(chain)
    altered[1] = type(chain[1])(**{**chain[1].to_dict(), "details": {**chain[1].details, "matches": 99}})
    header, _ = load_json(export_json(altered, altered, "ws-07"))
    assert header["chain"]["ok"] is False


def test_dicom_xml_event_identification(chain):
    by_kind = messages_by_kind(export_dicom_xml(chain, chain, "ws-07", "WS-AE"), chain)
    expected = {  # kind: (EventID, EventActionCode, EventTypeCode, outcome)
        "session.start": ("110114", "E", "110122", "0"),
        "pacs.query": ("110112", "E", None, "0"),
        "pacs.retrieve": ("110104", "C", None, "4"),
        "finding.accept": ("110103", "U", None, "0"),
        "access.denied": ("110113", "E", "110132", "4"),
        "audit.verify": ("110101", "R", None, "0"),
    }
    for kind, (event_id, action, event_type, outcome) in expected.items():
        event = by_kind[kind].find("EventIdentification")
        assert event.get("EventActionCode") == action, kind
        assert event.get("EventOutcomeIndicator") == outcome, kind
        assert event.get("EventDateTime").endswith("+00:00")
        code = event.find("EventID")
        assert (code.get("csd-code"), code.get("codeSystemName")) == (event_id, "DCM"), kind
        assert code.get("originalText")
        types = event.findall("EventTypeCode")
        assert [t.get("csd-code") for t in types] == ([event_type] if event_type else []), kind
    assert by_kind["session.start"].find("EventIdentification/EventTypeCode").get("originalText") == "Login"
    description = by_kind["pacs.retrieve"].find("EventIdentification/EventOutcomeDescription")
    assert description.text == "the PACS reported 2 instance(s) failed"
    assert by_kind["finding.accept"].find("EventIdentification/EventOutcomeDescription") is None


def test_dicom_xml_participants_and_source(chain):
    by_kind = messages_by_kind(export_dicom_xml(chain, chain, "ws-07", "WS-AE"), chain)
    for kind, message in by_kind.items():
        user, application, *others = message.findall("ActiveParticipant")
        assert (user.get("UserID"), user.get("UserIsRequestor")) == ("alice", "true")
        role = user.find("RoleIDCode")
        assert (role.get("csd-code"), role.get("originalText")) == ("radiologist", "Radiologist")
        assert (application.get("UserID"), application.get("UserIsRequestor")) == ("ws-07", "false")
        assert application.get("AlternativeUserID") == "AETITLES=WS-AE"
        assert "110150" in [c.get("csd-code") for c in application.findall("RoleIDCode")]
        assert message.find("AuditSourceIdentification").get("AuditSourceID") == "ws-07"
        assert [child.tag for child in message][:1] == ["EventIdentification"]
        # schema order: event, participants, source, objects
        tags = [child.tag for child in message]
        source_at = tags.index("AuditSourceIdentification")
        assert set(tags[1:source_at]) == {"ActiveParticipant"}
        assert set(tags[source_at + 1:]) == {"ParticipantObjectIdentification"}
        for obj in message.findall("ParticipantObjectIdentification"):
            order = [child.tag for child in obj]
            assert order[0] == "ParticipantObjectIDTypeCode"
            assert order == sorted(order, key=["ParticipantObjectIDTypeCode", "ParticipantObjectName",
                                               "ParticipantObjectDetail", "ParticipantObjectDescription"].index)
    # the PACS node takes part in queries and retrievals: source of the instances, destination of a query
    retrieve_roles = {p.get("UserID"): [c.get("csd-code") for c in p.findall("RoleIDCode")]
                      for p in by_kind["pacs.retrieve"].findall("ActiveParticipant")}
    assert retrieve_roles == {"alice": ["radiologist"], "ws-07": ["110150", "110152"], "MAIN": ["110153"]}
    assert [p.get("UserID") for p in by_kind["session.start"].findall("ActiveParticipant")] == ["alice", "ws-07"]


def _objects(message: ET.Element) -> dict[str, ET.Element]:
    return {o.find("ParticipantObjectIDTypeCode").get("csd-code"): o for o in message.findall("ParticipantObjectIdentification")}


def _details(obj: ET.Element) -> dict[str, str]:
    return {d.get("type"): base64.b64decode(d.get("value")).decode("utf-8") for d in obj.findall("ParticipantObjectDetail")}


def test_dicom_xml_participant_objects(chain):
    by_kind = messages_by_kind(export_dicom_xml(chain, chain, "ws-07"), chain)
    for kind in ("pacs.retrieve", "finding.accept"):
        study = _objects(by_kind[kind])["110180"]
        assert study.get("ParticipantObjectID") == STUDY
        assert (study.get("ParticipantObjectTypeCode"), study.get("ParticipantObjectTypeCodeRole")) == ("2", "3")
        id_type = study.find("ParticipantObjectIDTypeCode")
        assert (id_type.get("codeSystemName"), id_type.get("originalText")) == ("DCM", "Study Instance UID")
    assert by_kind["pacs.retrieve"].find(".//SOPClass").get("NumberOfInstances") == "28"
    for kind in ("session.start", "access.denied", "pacs.query"):
        assert "110180" not in _objects(by_kind[kind])  # no study: no study object
    query = _objects(by_kind["pacs.query"])["110181"]
    assert query.get("ParticipantObjectID") == STUDY_ROOT_FIND
    assert _details(query) == {"QueryRetrieveLevel": "STUDY", "QueryKeys": "patient_name,modality"}
    log = _objects(by_kind["audit.verify"])["12"]
    assert log.find("ParticipantObjectName").text == "Security Audit Log"
    assert log.get("ParticipantObjectTypeCodeRole") == "13"
    # each message names its chained entry; the entry's detail keys, and only those, follow
    record = _objects(by_kind["access.denied"])["AUDIT-ENTRY"]
    assert record.get("ParticipantObjectID") == "entry-5"
    details = _details(record)
    assert details.pop("workstation.seq") == "5" and details.pop("workstation.hash") == chain[4].hash
    assert details.pop("workstation.prev_hash") == chain[3].hash
    assert details == {"permission": "admin.export-audit", "reason": "audit export refused"}
    assert json.loads(_details(_objects(by_kind["pacs.query"])["AUDIT-ENTRY"])["keys"]) == ["patient_name", "modality"]


def test_dicom_xml_root_header(chain):
    root = ET.fromstring(export_dicom_xml(chain[2:], chain, "ws-07", since="2025-03-01T08:02:00.000+00:00").encode())
    assert root.tag == "AuditMessages" and root.get("format") == FORMAT
    assert (root.get("workstationID"), root.get("count"), root.get("chainHead")) == ("ws-07", "4", chain[-1].hash)
    assert root.get("since") == "2025-03-01T08:02:00.000+00:00" and root.get("chainOK") == "true"


def test_entries_without_role_have_no_role_code():
    (entry,) = build_chain([AuditEvent("study.opened", "2025-01-01T00:00:00.000+00:00", {}, STUDY)], role="")
    message = ET.fromstring(export_dicom_xml([entry], [entry], "ws").encode()).find("AuditMessage")
    assert message.find("ActiveParticipant").find("RoleIDCode") is None


@pytest.mark.parametrize("text, expected", [
    ("2025-03-02", "2025-03-02T00:00:00.000+00:00"),
    ("2025-03-02T10:30", "2025-03-02T10:30:00.000+00:00"),
    ("2025-03-02T10:30:00Z", "2025-03-02T10:30:00.000+00:00"),
    ("2025-03-02T12:30:00+02:00", "2025-03-02T10:30:00.000+00:00"),
])
def test_since_is_normalised_to_the_stored_utc_form(text, expected):
    assert parse_since(text) == expected


def test_since_rejects_what_is_not_a_date():
    with pytest.raises(ValueError, match="not a date"):
        parse_since("last tuesday")


def test_patient_names_never_reach_the_trail_or_the_export(tmp_path, monkeypatch):
    """A real store behind the PACS hooks: a query by patient name keeps the key, never the name."""
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    match = StudyMatch(STUDY, patient_id="DEMO-0005", patient_name=PATIENT_NAME, description="CT CHEST")
    monkeypatch.setattr(pacs_module.query, "find_studies", lambda node, local, q: iter([match]))
    config = parse_site_config({"workstation": {"id": "ws-07"}, "pacs": {"MAIN": {"ae_title": "PACS", "host": "127.0.0.1", "port": 4242}}})
    with Store.open(tmp_path / "store.sqlite", Identity(User("alice", Role.RADIOLOGIST), "ws-07"), backend) as store:
        service = PacsService(config, cache=object(), audit=AuditTrail(store))
        assert service.find_studies("MAIN", StudyQuery(patient_name=PATIENT_NAME, patient_id="DEMO-0005")) == [match]
        entries = store.audit_entries()
    (entry,) = entries
    assert entry.details == {"node": "MAIN", "level": "STUDY", "keys": ["patient_name", "patient_id"], "matches": 1}
    document = export_json(entries, entries, "ws-07")
    xml_text = export_dicom_xml(entries, entries, "ws-07")
    decoded = [base64.b64decode(d.get("value")).decode("utf-8")
               for d in ET.fromstring(xml_text.encode()).iter("ParticipantObjectDetail")]
    for text in (document, xml_text, *decoded):
        assert "DEMO" not in text and "PHANTOM" not in text
