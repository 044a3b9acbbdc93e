"""Results to the PACS through the queue in the encrypted store, against real peers: Orthanc takes every
object; a PACS that is down is retried and sent to later; a PACS that does not take an SOP class (DCMTK
storescp with a profile) refuses those with the reason while the others are sent; nothing is sent twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from io import BytesIO

import pydicom
import pytest
from keyrings.alt.file import PlaintextKeyring
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from netpeers.process import LOCALHOST, free_port
from netpeers.site import node_settings
from workstation.core.roles import Role, User
from workstation.core.site import parse_site_config
from workstation.core.tasks import CancelToken
from workstation.services.results_send import FAILED, QUEUED, RETRYING, SENT, ResultsOutbox, study_state
from workstation.services.session import AuditTrail
from workstation.store.database import Identity, Store

STUDY = "1.2.826.0.1.3680043.8.498.4242"


@dataclass(frozen=True)
class Built:  # what workstation.results.build_results returns: kind, dataset, content_key
    kind: str
    dataset: pydicom.Dataset
    content_key: str


def objects() -> list[Built]:
    """A CT-like and an SR object of one study (the SOP classes matter here, not the content)."""
    made = []
    for kind, name in (("gsps", "CT_small.dcm"), ("ai-sr", "test-SR.dcm")):
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.StudyInstanceUID = STUDY
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        made.append(Built(kind, ds, f"content-of-{kind}"))
    return made


@pytest.fixture
def store(tmp_path):
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "kr.cfg")
    with Store.open(tmp_path / "store.sqlite", Identity(User("carol", Role.RADIOLOGIST), "ws-net"), backend) as s:
        yield s


def outbox(store, ws_ae, node: dict, clock=None) -> ResultsOutbox:
    config = parse_site_config({"workstation": {"ae_title": ws_ae.aet}, "pacs": {"MAIN": node},
                                "results": {"node": "MAIN"}})
    kwargs = {"clock": clock} if clock else {}
    return ResultsOutbox(config, store, AuditTrail(store), **kwargs)


def test_orthanc_takes_every_object_once_and_the_send_is_audited(store, ws_ae, orthanc):
    box = outbox(store, ws_ae, node_settings(orthanc))
    built = objects()
    queued = box.enqueue(built, STUDY, "1.2.series", "run-1")
    assert [q.state for q in queued] == [QUEUED, QUEUED]
    again = box.enqueue(objects(), STUDY, "1.2.series", "run-1")  # rebuilt (new UIDs), same content
    assert [q.sop_instance_uid for q in again] == [q.sop_instance_uid for q in queued]  # nothing new queued
    report = box.send_pending()
    assert report.done and len(report.sent) == 2
    assert {i.state for i in box.items(STUDY)} == {SENT} and study_state(box.items(STUDY)) == "Results: 2 sent to MAIN"
    stored = {i["MainDicomTags"]["SOPInstanceUID"] for i in orthanc.get("/instances?expand")}
    assert stored == {b.dataset.SOPInstanceUID for b in built}
    assert box.send_pending().sent == []  # sent objects are never sent again
    (export,) = [e for e in store.audit_entries() if e.kind == "export"]
    assert export.details["node"] == "MAIN" and sorted(export.details["sop_instance_uids"]) == sorted(stored)
    assert export.study_instance_uid == STUDY and "PatientName" not in str(export.details)
    assert store.verify().ok


def test_a_pacs_that_is_down_is_retried_later_and_gets_the_objects(store, ws_ae, orthanc_factory):
    port = free_port()
    now = [datetime(2026, 12, 4, 10, 0, tzinfo=timezone.utc)]
    box = outbox(store, ws_ae, {"ae_title": "ORTHANC", "host": LOCALHOST, "port": port, "timeout_s": 3, "retries": 0},
                 clock=lambda: now[0])
    box.enqueue(objects(), STUDY, "1.2.series", "run-1")
    report = box.send_pending()
    assert len(report.retrying) == 2 and "MAIN" in report.retrying[0][1]
    items = box.items(STUDY)
    assert {i.state for i in items} == {RETRYING} and all(i.attempts == 1 for i in items)
    assert "waiting to retry" in study_state(items)
    assert box.send_pending().retrying == []  # not due yet: nothing tried
    peer = orthanc_factory(config={"DicomPort": port})
    now[0] += timedelta(hours=2)
    assert len(box.send_pending().sent) == 2
    assert peer.instance_count() == 2 and {i.state for i in box.items(STUDY)} == {SENT}
    outcomes = [e.outcome for e in store.audit_entries() if e.kind == "export"]
    assert outcomes == [8, 0]  # serious failure (nothing sent), then success


PROFILE = """
[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = OppositeEndianExplicit
TransferSyntax3 = LittleEndianImplicit

[[PresentationContexts]]
[CTOnly]
PresentationContext1 = CTImageStorage\\Uncompressed
PresentationContext2 = VerificationSOPClass\\Uncompressed

[[Profiles]]
[Default]
PresentationContexts = CTOnly
"""


def test_a_pacs_refusing_an_sop_class_fails_that_object_with_the_reason_and_takes_the_others(
        store, ws_ae, storescp_factory, tmp_path):
    profile = tmp_path / "ct-only.cfg"
    profile.write_text(PROFILE)
    peer = storescp_factory(profile=(profile, "Default"))
    box = outbox(store, ws_ae, node_settings(peer))
    ct, sr = box.enqueue(objects(), STUDY, "1.2.series", "run-1")
    report = box.send_pending()
    assert report.sent == [ct.sop_instance_uid]
    (failed_uid, reason), = report.failed
    assert failed_uid == sr.sop_instance_uid and "does not accept Comprehensive SR Storage" in reason
    states = {i.sop_instance_uid: i.state for i in box.items(STUDY)}
    assert states == {ct.sop_instance_uid: SENT, sr.sop_instance_uid: FAILED}
    assert study_state(box.items(STUDY)).startswith("Results: 1 refused by MAIN: MAIN does not accept")
    assert len(list(peer.out_dir.rglob("*"))) >= 1
    assert box.retry_failed(STUDY) == 1  # a person asks again
    assert {i.sop_instance_uid: i.state for i in box.items(STUDY)}[sr.sop_instance_uid] == QUEUED
    (export,) = [e for e in store.audit_entries() if e.kind == "export"]
    assert export.outcome == 4 and export.details["not_sent"][0]["sop_instance_uid"] == sr.sop_instance_uid


def test_a_cancelled_send_keeps_the_objects_queued(store, ws_ae, orthanc):
    box = outbox(store, ws_ae, node_settings(orthanc))
    box.enqueue(objects(), STUDY, "1.2.series", "run-1")
    token = CancelToken()
    token.cancel()
    report = box.send_pending(cancel=token)
    assert report.cancelled and report.sent == []
    assert {i.state for i in box.items(STUDY)} == {QUEUED} and orthanc.instance_count() == 0
    assert len(box.send_pending().sent) == 2


# ----- what goes over the wire: the queued bytes as they are, or decompressed for a PACS that wants that


def parametric_maps(study, compressed: bool) -> list[Built]:
    """The Parametric Map of the shared demo run (3 frames of 128x128: several 16 KiB PDUs), plain or JPEG-LS."""
    from results_data import run_context

    from workstation.results import build_results

    run = run_context(study)
    (pmap,) = [b for b in build_results(run, compress_pmap=compressed) if b.kind == "pmap"]
    return [Built("pmap", pmap.dataset, pmap.content_key)]


def stored_pixels(path_or_bytes) -> tuple[str, object]:
    source = BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    ds = pydicom.dcmread(source)
    return str(ds.file_meta.TransferSyntaxUID), ds.pixel_array


def test_a_big_object_arrives_whole_in_pdus_the_peer_takes(store, ws_ae, storescp_factory, net_demo_study):
    peer = storescp_factory()  # DCMTK's default max PDU: 16 KiB
    box = outbox(store, ws_ae, node_settings(peer))
    built = parametric_maps(net_demo_study, compressed=False) + objects()
    box.enqueue(built, STUDY, "1.2.series", "run-1")
    report = box.send_pending()
    assert report.done and len(report.sent) == 3
    received = {ds.SOPInstanceUID: ds for ds in map(pydicom.dcmread, peer.received_files())}
    for b in built:  # storescp writes what it parsed: compare element by element
        back = received[b.dataset.SOPInstanceUID]
        queued = pydicom.dcmread(BytesIO(box.queue.data(str(b.dataset.SOPInstanceUID))))
        assert back.file_meta.TransferSyntaxUID == queued.file_meta.TransferSyntaxUID, b.kind
        assert comparable(back) == comparable(queued), b.kind


def comparable(ds: pydicom.Dataset) -> dict:
    """Every element but group lengths and trailing padding (which storescp drops or recalculates)."""
    return {elem.tag: elem.value for elem in ds if elem.tag.element != 0 and elem.tag != 0xFFFCFFFC}


def test_a_jpeg_ls_parametric_map_goes_compressed_to_orthanc(store, ws_ae, orthanc, net_demo_study):
    box = outbox(store, ws_ae, node_settings(orthanc))
    (pm,) = parametric_maps(net_demo_study, compressed=True)
    box.enqueue([pm], STUDY, "1.2.series", "run-1")
    assert box.send_pending().done
    (instance,) = orthanc.get("/instances")
    assert orthanc.get(f"/instances/{instance}/metadata/TransferSyntax") == b"1.2.840.10008.1.2.4.80"


def test_a_pacs_taking_only_uncompressed_gets_the_map_decompressed_with_the_same_uid_and_values(
        store, ws_ae, orthanc_factory, net_demo_study):
    orthanc = orthanc_factory(config={"AcceptedTransferSyntaxes": ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]})
    box = outbox(store, ws_ae, node_settings(orthanc))
    (pm,) = parametric_maps(net_demo_study, compressed=True)
    (queued,) = box.enqueue([pm], STUDY, "1.2.series", "run-1")
    report = box.send_pending()
    assert report.done and report.sent == [queued.sop_instance_uid] == [str(pm.dataset.SOPInstanceUID)]
    (instance,) = orthanc.get("/instances")
    assert orthanc.get(f"/instances/{instance}/metadata/TransferSyntax") == b"1.2.840.10008.1.2.1"
    syntax, values = stored_pixels(orthanc.request("GET", f"/instances/{instance}/file"))
    assert syntax == "1.2.840.10008.1.2.1" and (values == pm.dataset.pixel_array).all()
    assert orthanc.get(f"/instances/{instance}/simplified-tags")["SOPInstanceUID"] == str(pm.dataset.SOPInstanceUID)


UNCOMPRESSED_PM = PROFILE.replace("CTImageStorage", "1.2.840.10008.5.1.4.1.1.30")


def test_storescp_taking_the_map_only_uncompressed_stores_the_same_values(store, ws_ae, storescp_factory, tmp_path,
                                                                          net_demo_study):
    profile = tmp_path / "pm-uncompressed.cfg"
    profile.write_text(UNCOMPRESSED_PM)
    peer = storescp_factory(profile=(profile, "Default"))
    box = outbox(store, ws_ae, node_settings(peer))
    (pm,) = parametric_maps(net_demo_study, compressed=True)
    box.enqueue([pm], STUDY, "1.2.series", "run-1")
    assert box.send_pending().done
    (path,) = peer.received_files()
    syntax, values = stored_pixels(path)
    assert syntax in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2") and (values == pm.dataset.pixel_array).all()


def test_results_go_over_tls(store, ws_ae, storescp_tls_factory, tls_certs):
    peer = storescp_tls_factory()
    tls = {"ca_file": str(tls_certs.ca_cert), "cert_file": str(tls_certs.client_cert),
           "key_file": str(tls_certs.client_key)}
    box = outbox(store, ws_ae, node_settings(peer, tls=tls))
    box.enqueue(objects(), STUDY, "1.2.series", "run-1")
    report = box.send_pending()
    assert report.done and len(report.sent) == 2 and len(peer.received_files()) == 2
