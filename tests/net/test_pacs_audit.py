"""PACS queries and retrievals leave pacs.query / pacs.retrieve entries in a real encrypted store,
with node, keys and counts but never a patient name; a broken audit trail never breaks the PACS."""

from __future__ import annotations

import json
import logging
import time

import pytest
from keyrings.alt.file import PlaintextKeyring

from workstation.core.audit import Outcome
from workstation.core.pacs import StudyQuery
from workstation.core.roles import Role, User
from workstation.net.errors import PacsUnreachable
from workstation.services.session import AuditTrail
from workstation.store.database import Identity, Store

from netpeers.process import LOCALHOST, free_port
from netpeers.site import node_settings


@pytest.fixture
def store(tmp_path):
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    with Store.open(tmp_path / "store.sqlite", Identity(User("rob", Role.RADIOLOGIST), "ws-net"), backend) as opened:
        yield opened


@pytest.fixture
def audited(pacs_factory, loaded_orthanc, store):
    service = pacs_factory(MAIN=node_settings(loaded_orthanc))
    service.audit = AuditTrail(store)
    return service


def assert_no_patient_identity(store: Store) -> None:
    text = json.dumps([e.to_dict() for e in store.audit_entries()])
    for value in ("DEMO", "PHANTOM", "DEMO-0005", "CT CHEST"):  # the demo study's name, ID and description
        assert value not in text


def test_query_and_retrieve_are_recorded_without_patient_names(audited, store, net_demo_study):
    study_uid = net_demo_study.study_instance_uid
    (match,) = audited.find_studies("MAIN", StudyQuery(patient_name="DEMO^PHANTOM", modality="CT"))
    assert match.patient_name == "DEMO^PHANTOM"
    (series,) = audited.find_series("MAIN", study_uid)
    result = audited.retrieve("MAIN", study_uid, [series.series_instance_uid], method="get")
    assert result.ok and result.received == 30

    study_query, series_query, retrieval = store.audit_entries()
    assert study_query.kind == series_query.kind == "pacs.query"
    assert study_query.details == {"node": "MAIN", "level": "STUDY", "keys": ["patient_name", "modality"], "matches": 1}
    assert study_query.study_instance_uid == "" and study_query.outcome == Outcome.SUCCESS
    assert series_query.details == {"node": "MAIN", "level": "SERIES", "keys": ["study_instance_uid"], "matches": 1}
    assert series_query.study_instance_uid == study_uid
    assert retrieval.kind == "pacs.retrieve" and retrieval.study_instance_uid == study_uid
    assert (retrieval.user, retrieval.role, retrieval.outcome, retrieval.outcome_text) == ("rob", "radiologist", 0, "")
    assert retrieval.details == {"node": "MAIN", "method": "get", "series_count": 1, "instances_stored": 30,
                                 "new": 30, "failed": 0, "cancelled": False, "status": "complete"}
    assert_no_patient_identity(store)
    assert store.verify().ok


def test_move_retrieval_is_recorded(audited, store, net_demo_study):
    result = audited.retrieve("MAIN", net_demo_study.study_instance_uid, method="move")
    assert result.ok
    (entry,) = [e for e in store.audit_entries() if e.kind == "pacs.retrieve"]
    assert entry.details["method"] == "move" and entry.details["instances_stored"] == 30
    # the PACS's association to our receiver (the C-MOVE sub-operations) is audited on its own
    deadline = time.monotonic() + 10  # audited once the PACS releases that association, maybe after its C-MOVE-RSP
    while not (transfers := [e for e in store.audit_entries() if e.kind == "receiver.association"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(e.details["instances_stored"] for e in transfers) == 30 and transfers[0].details["node"] == "MAIN"
    assert entry.details["series_count"] == 0 and entry.outcome == Outcome.SUCCESS


def test_partial_retrieval_is_a_minor_failure(audited, store, net_demo_study, disk_full_every):
    disk_full_every(10)
    result = audited.retrieve("MAIN", net_demo_study.study_instance_uid, method="get")
    assert not result.ok and result.status == "partial"
    (entry,) = store.audit_entries()
    assert entry.outcome == Outcome.MINOR_FAILURE
    assert entry.details["instances_stored"] == result.received == 27 and entry.details["failed"] == result.failed
    assert "No space left on device" in entry.outcome_text


def test_failures_are_serious_and_carry_the_error(pacs_factory, store):
    service = pacs_factory(DOWN={"ae_title": "NOBODY", "host": LOCALHOST, "port": free_port(), "retries": 0, "timeout_s": 2})
    service.audit = AuditTrail(store)
    with pytest.raises(PacsUnreachable):
        service.find_studies("DOWN", StudyQuery(patient_name="SMITH*"))
    result = service.retrieve("DOWN", "1.2.3.4", method="get")
    assert result.status == "failed"
    query, retrieval = store.audit_entries()
    assert (query.kind, query.outcome) == ("pacs.query", Outcome.SERIOUS_FAILURE)
    assert query.details == {"node": "DOWN", "level": "STUDY", "keys": ["patient_name"], "matches": None}
    assert "refused" in query.outcome_text.lower() and "SMITH" not in json.dumps(query.to_dict())
    assert (retrieval.kind, retrieval.outcome, retrieval.study_instance_uid) == ("pacs.retrieve", Outcome.SERIOUS_FAILURE, "1.2.3.4")
    assert retrieval.details["status"] == "failed" and retrieval.details["instances_stored"] == 0
    assert result.failures[0] in retrieval.outcome_text


def test_an_audit_failure_is_logged_and_never_breaks_the_operation(pacs_factory, loaded_orthanc, net_demo_study, caplog):
    class BrokenTrail:
        def record(self, kind, study_instance_uid="", outcome=Outcome.SUCCESS, outcome_text="", **details):
            raise RuntimeError("the store is closed")

    service = pacs_factory(MAIN=node_settings(loaded_orthanc))
    service.audit = BrokenTrail()
    with caplog.at_level(logging.ERROR, logger="workstation.services.pacs"):
        assert len(service.find_studies("MAIN", StudyQuery(patient_id="DEMO-0005"))) == 1
        assert service.retrieve("MAIN", net_demo_study.study_instance_uid, method="get").ok
    messages = [r.getMessage() for r in caplog.records]
    assert any("could not record the pacs.query audit entry (node MAIN): the store is closed" in m for m in messages)
    assert any("could not record the pacs.retrieve audit entry" in m for m in messages)
    assert not any("DEMO" in m for m in messages)


def test_no_audit_trail_records_nothing(pacs_factory, loaded_orthanc):
    service = pacs_factory(MAIN=node_settings(loaded_orthanc))
    assert service.audit is None
    assert len(service.find_studies("MAIN", StudyQuery())) == 5
