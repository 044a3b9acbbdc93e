"""Delivery of a final report: HL7 ORU^R01 over MLLP to a real listener, FHIR to a real HTTP stand-in."""

from __future__ import annotations

import json

import hl7
import pydicom
import pytest
from report_helpers import keyring_in
from fhir.resources.R4B.bundle import Bundle
from peers import FhirStandIn, MllpListener

from workstation.core.site import parse_site_config
from workstation.services.report_delivery import FHIR_TOKEN_SERVICE, ReportService
from workstation.store.report_store import DELIVERED, REJECTED, RETRYING, SUPERSEDED


def final_report(store, catalog, display_set, config: dict) -> tuple[ReportService, str]:
    reports = ReportService(parse_site_config(config), store, keyring_in(store.path.parent))
    study = display_set.series.study.study_instance_uid
    reports.draft(study, catalog)
    reports.finalise(study, "FINDINGS: nodule right lower lobe | 5.6 mm ^ see image.\nIMPRESSION: follow up.")
    return reports, study


def test_an_acknowledged_oru_is_delivered_once_with_the_study_identifiers(signed_store, catalog, display_set):
    with MllpListener("AA") as ris:
        reports, study = final_report(signed_store, catalog, display_set, {"ris": {"host": "127.0.0.1", "port": ris.port}})
        [queued] = reports.queue(study, ("hl7",))
        [delivery] = reports.deliver(study)
        assert delivery.state == DELIVERED and delivery.answer == "AA"
        assert reports.deliver(study) == []  # nothing left to send
        assert reports.queue(study, ("hl7",))[0].send_id == queued.send_id  # queueing again sends nothing new
    [message] = ris.received
    ds = pydicom.dcmread(display_set.frames[0].instance.location.path, stop_before_pixels=True)
    assert str(message.segment("MSH")[10]) == queued.control_id
    assert str(message.segment("MSH")[9]) == "ORU^R01^ORU_R01"
    assert str(message.segment("PID")[3][0][0]) == str(ds.PatientID)
    assert str(message.segment("OBR")[25]) == "F"
    assert str(message.segment("OBR")[3]) == str(ds.AccessionNumber)
    observations = [s for s in message if str(s[0]) == "OBX"]
    long_axes = [o for o in observations if str(o[3][0][0]) == "103339001"]
    assert len(long_axes) == 3 and all(str(o[6][0][0]) == "mm" for o in long_axes)  # one per verified finding, UCUM
    text = [hl7.unescape(message, str(o[5])) if hasattr(hl7, "unescape") else message.unescape(str(o[5]))
            for o in observations if str(o[2]) == "TX"]
    assert "FINDINGS: nodule right lower lobe | 5.6 mm ^ see image." in text  # delimiters survive the escaping
    sends = [e for e in signed_store.audit_entries() if e.kind == "report.send"]
    assert len(sends) == 1 and sends[0].details["control_id"] == queued.control_id
    assert str(ds.PatientID) not in json.dumps(sends[0].details)


def test_ae_is_kept_for_a_user_retry_and_the_retry_sends_the_same_message(signed_store, catalog, display_set):
    with MllpListener("AE") as ris:
        reports, study = final_report(signed_store, catalog, display_set, {"ris": {"host": "127.0.0.1", "port": ris.port}})
        [queued] = reports.queue(study, ("hl7",))
        [refused] = reports.deliver(study)
        assert refused.state == REJECTED and refused.answer == "AE" and "no such order" in refused.reason
        assert reports.deliver(study) == []  # not retried by itself
        assert reports.retry_rejected(study) == 1
        ris.mode = "AA"
        [delivered] = reports.deliver(study)
    assert delivered.state == DELIVERED
    first, second = ris.received
    assert str(first.segment("MSH")[10]) == str(second.segment("MSH")[10]) == queued.control_id
    assert str(first) == str(second)  # the very same bytes


@pytest.mark.parametrize("mode", ["silent", "close"])
def test_no_answer_is_retried_with_backoff_and_nothing_is_lost(signed_store, catalog, display_set, mode):
    with MllpListener(mode) as ris:
        config = {"ris": {"host": "127.0.0.1", "port": ris.port, "timeout_s": 1.0}}
        reports, study = final_report(signed_store, catalog, display_set, config)
        [queued] = reports.queue(study, ("hl7",))
        [failed] = reports.deliver(study)
        assert failed.state == RETRYING
        assert ("no answer" if mode == "silent" else "closed") in failed.reason
        send = reports.reports.send(queued.send_id)
        assert send.next_attempt_utc and send.attempts == 1
        assert reports.deliver(study, due_only=True) == []  # backing off
        ris.mode = "AA"
        [delivered] = reports.deliver(study)
    assert delivered.state == DELIVERED
    assert {str(m.segment("MSH")[10]) for m in ris.received} == {queued.control_id}


def test_a_dead_ris_is_retried(signed_store, catalog, display_set):
    from peers import free_port

    reports, study = final_report(signed_store, catalog, display_set,
                                  {"ris": {"host": "127.0.0.1", "port": free_port(), "timeout_s": 1.0}})
    reports.queue(study, ("hl7",))
    [failed] = reports.deliver(study)
    assert failed.state == RETRYING and "cannot connect" in failed.reason


def test_a_new_final_version_supersedes_the_unsent_one_and_goes_as_a_correction(signed_store, catalog, display_set):
    with MllpListener("AA") as ris:
        reports, study = final_report(signed_store, catalog, display_set, {"ris": {"host": "127.0.0.1", "port": ris.port}})
        reports.queue(study, ("hl7",))
        reports.deliver(study)
        reports.finalise(study, "FINDINGS: corrected.\nIMPRESSION: none.")
        [correction] = reports.queue(study, ("hl7",))
        reports.finalise(study, "FINDINGS: corrected again.\nIMPRESSION: none.")
        [latest] = reports.queue(study, ("hl7",))
        assert reports.reports.send(correction.send_id).state == SUPERSEDED
        [delivered] = reports.deliver(study)
    assert delivered.send_id == latest.send_id
    assert [str(m.segment("OBR")[25]) for m in ris.received] == ["F", "C"]


@pytest.mark.parametrize("status, state, words", [(201, DELIVERED, ""), (400, REJECTED, "unknown patient"),
                                                   (401, REJECTED, "token"), (503, RETRYING, "try again")])
def test_fhir_answers_are_handled(signed_store, catalog, display_set, status, state, words):
    keyring_in(signed_store.path.parent).set_password(FHIR_TOKEN_SERVICE, "ehr", "s3cret")
    with FhirStandIn(status=status, token="s3cret" if status != 401 else "other") as ehr:
        reports, study = final_report(signed_store, catalog, display_set, {"fhir": {"url": ehr.url, "token_key": "ehr"}})
        reports.queue(study, ("fhir",))
        [delivery] = reports.deliver(study)
    assert delivery.state == state and words in delivery.reason
    [posted] = ehr.received
    assert posted["authorization"] == "Bearer s3cret"
    bundle = Bundle.model_validate_json(posted["body"])
    report = bundle.entry[-1].resource
    assert report.__resource_type__ == "DiagnosticReport" and report.status == "final"
    observations = [e.resource for e in bundle.entry[:-1]]
    assert len(observations) == 3
    assert all(o.valueQuantity.system == "http://unitsofmeasure.org" and o.valueQuantity.code == "mm" for o in observations)
    assert all(o.derivedFrom[0].identifier.value.startswith("urn:oid:") for o in observations)
    assert {o.bodySite.coding[0].code for o in observations} <= {"3341006", "44029006", "39607008"}


def test_fhir_to_a_folder_is_written_whole(signed_store, catalog, display_set, tmp_path):
    reports, study = final_report(signed_store, catalog, display_set, {"fhir": {"folder": str(tmp_path / "out")}})
    [queued] = reports.queue(study, ("fhir",))
    [delivery] = reports.deliver(study)
    assert delivery.state == DELIVERED
    [written] = list((tmp_path / "out").iterdir())
    assert written.name == f"report-{queued.control_id}.json"
    Bundle.model_validate_json(written.read_bytes())
