"""The DICOM peer fixtures work: checked with DCMTK's command-line SCUs only (no product code)."""

from __future__ import annotations

import socket

import pydicom
import pytest

import netpeers.process
from netpeers import network_isolated
from netpeers.dcmtk import echoscu, findscu, getscu, movescu, storescu, tls_client_args
from netpeers.orthanc import OrthancPeer, modality
from netpeers.process import PeerError


def study_key(uid: str) -> dict[str, str]:
    return {"StudyInstanceUID": uid}


# -- isolation ------------------------------------------------------------------------------------

def test_session_runs_in_a_loopback_only_namespace():
    assert network_isolated()
    assert [name for _, name in socket.if_nameindex()] == ["lo"]


def test_peers_refuse_to_start_without_isolation(monkeypatch, tmp_path):
    monkeypatch.setattr(netpeers.process, "isolation_problem", lambda: "simulated: host network")
    peer = OrthancPeer(tmp_path)
    with pytest.raises(PeerError, match="private network namespace.*simulated"):
        peer.start()
    assert peer.proc is None  # nothing was started


# -- Orthanc ----------------------------------------------------------------------------------------

def test_orthanc_holds_the_loaded_studies(loaded_orthanc, net_demo_study):
    assert loaded_orthanc.instance_count() == 34
    assert len(loaded_orthanc.study_uids()) == 5
    assert net_demo_study.study_instance_uid in loaded_orthanc.study_uids()


def test_orthanc_echo_from_workstation_and_from_strangers(loaded_orthanc, ws_ae):
    assert echoscu(loaded_orthanc.port, "ORTHANC", ws_ae.aet).returncode == 0
    assert echoscu(loaded_orthanc.port, "ORTHANC", "STRANGER").returncode == 0  # DicomAlwaysAllowEcho


def test_orthanc_rejects_a_wrong_called_aet(loaded_orthanc, ws_ae):
    assert echoscu(loaded_orthanc.port, "NOTORTHANC", ws_ae.aet).returncode != 0  # DicomCheckCalledAet


def test_orthanc_find_for_the_workstation(loaded_orthanc, ws_ae, net_demo_study, tmp_path):
    done, answers = findscu(loaded_orthanc.port, "ORTHANC", ws_ae.aet,
                            ["StudyInstanceUID", "PatientName", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"],
                            tmp_path)
    assert done.returncode == 0, done.stderr
    by_uid = {a.StudyInstanceUID: a for a in answers}
    assert len(by_uid) == 5
    demo = by_uid[net_demo_study.study_instance_uid]
    assert demo.ModalitiesInStudy == "CT" and int(demo.NumberOfStudyRelatedInstances) == 30


def test_orthanc_refuses_find_from_an_unknown_calling_aet(loaded_orthanc, tmp_path):
    done, answers = findscu(loaded_orthanc.port, "ORTHANC", "STRANGER", ["StudyInstanceUID"], tmp_path)
    assert done.returncode != 0 and answers == []
    assert "Peer aborted Association" in done.stderr  # Orthanc aborts, it sends no status


def test_orthanc_move_to_a_registered_storescp(orthanc_factory, storescp_factory, net_demo_study, ws_ae):
    dest = storescp_factory(aet="MOVEDEST")
    pacs = orthanc_factory(extra_modalities={"dest": modality("MOVEDEST", dest.port)})
    pacs.upload(net_demo_study.files)
    done = movescu(pacs.port, pacs.aet, ws_ae.aet, "MOVEDEST", study_key(net_demo_study.study_instance_uid))
    assert done.returncode == 0, done.stdout + done.stderr
    received = dest.received_files()
    assert len(received) == 30
    assert {pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID for p in received} == {
        net_demo_study.study_instance_uid}


def test_orthanc_move_to_an_unknown_destination_fails(loaded_orthanc, net_demo_study, ws_ae):
    done = movescu(loaded_orthanc.port, "ORTHANC", ws_ae.aet, "NOBODY", study_key(net_demo_study.study_instance_uid))
    assert done.returncode != 0
    assert "UnableToProcess" in done.stdout + done.stderr  # 0xC000


def test_orthanc_get(loaded_orthanc, net_demo_study, ws_ae, tmp_path):
    done = getscu(loaded_orthanc.port, "ORTHANC", ws_ae.aet, study_key(net_demo_study.study_instance_uid), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list(tmp_path.iterdir())) == 30


def test_orthanc_refuses_get_from_an_unknown_calling_aet(loaded_orthanc, net_demo_study, tmp_path):
    done = getscu(loaded_orthanc.port, "ORTHANC", "STRANGER", study_key(net_demo_study.study_instance_uid), tmp_path)
    assert done.returncode != 0
    assert list(tmp_path.iterdir()) == []


def test_orthanc_accepts_c_store(orthanc, sample_files):
    done = storescu(orthanc.port, orthanc.aet, sample_files[:2], "WSTEST")
    assert done.returncode == 0, done.stdout + done.stderr
    assert orthanc.instance_count() == 2


def test_orthanc_stops_and_frees_its_port(orthanc_factory, ws_ae):
    pacs = orthanc_factory()
    assert pacs.running
    pacs.stop()
    assert not pacs.running
    assert echoscu(pacs.port, pacs.aet, ws_ae.aet, timeout=30).returncode != 0
    with socket.socket() as s:  # the DICOM port is free again
        s.bind(("127.0.0.1", pacs.port))


def test_orthanc_with_dicom_tls(orthanc_factory, tls_certs, ws_ae):
    pacs = orthanc_factory(tls=tls_certs)
    assert echoscu(pacs.port, pacs.aet, ws_ae.aet, tls=tls_client_args(tls_certs)).returncode == 0
    assert echoscu(pacs.port, pacs.aet, ws_ae.aet).returncode != 0  # plain TCP refused
    wrong_ca = tls_client_args(tls_certs, trust=tls_certs.wrong_ca_cert)
    assert echoscu(pacs.port, pacs.aet, ws_ae.aet, tls=wrong_ca).returncode != 0
    untrusted_client = tls_client_args(tls_certs, cert=tls_certs.wrong_client_cert, key=tls_certs.wrong_client_key)
    assert echoscu(pacs.port, pacs.aet, ws_ae.aet, tls=untrusted_client).returncode != 0


# -- dcmqrscp ---------------------------------------------------------------------------------------

def test_dcmqrscp_finds_the_study(loaded_dcmqrscp, net_demo_study, ws_ae, tmp_path):
    done, answers = findscu(loaded_dcmqrscp.port, "DCMQRSCP", ws_ae.aet, ["StudyInstanceUID", "PatientID"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert [a.StudyInstanceUID for a in answers] == [net_demo_study.study_instance_uid]
    done, series = findscu(loaded_dcmqrscp.port, "DCMQRSCP", ws_ae.aet,
                           {**study_key(net_demo_study.study_instance_uid), "SeriesInstanceUID": ""},
                           tmp_path / "series", level="SERIES")
    assert [s.SeriesInstanceUID for s in series] == [net_demo_study.series_instance_uid]


def test_dcmqrscp_move_and_get(dcmqrscp_factory, storescp_factory, net_demo_study, ws_ae, tmp_path):
    dest = storescp_factory(aet="MOVEDEST")
    qr = dcmqrscp_factory(extra_hosts={"dest": ("MOVEDEST", dest.port)})
    qr.store(net_demo_study.files)
    assert len(qr.stored_files()) == 30
    done = movescu(qr.port, qr.aet, ws_ae.aet, "MOVEDEST", study_key(net_demo_study.study_instance_uid))
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(dest.received_files()) == 30
    done = getscu(qr.port, qr.aet, ws_ae.aet, study_key(net_demo_study.study_instance_uid), tmp_path / "get")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list((tmp_path / "get").iterdir())) == 30


# -- storescp with TLS ------------------------------------------------------------------------------

def test_tls_storescp_requiring_a_client_certificate(storescp_tls_factory, tls_certs, sample_files):
    scp = storescp_tls_factory(aet="TLSSCP")
    assert echoscu(scp.port, "TLSSCP", tls=tls_client_args(tls_certs)).returncode == 0
    assert echoscu(scp.port, "TLSSCP", tls=tls_client_args(tls_certs, trust=tls_certs.wrong_ca_cert)).returncode != 0
    assert echoscu(scp.port, "TLSSCP", tls=tls_client_args(
        tls_certs, cert=tls_certs.wrong_client_cert, key=tls_certs.wrong_client_key)).returncode != 0
    assert echoscu(scp.port, "TLSSCP", tls=["+tla", "+cf", str(tls_certs.ca_cert)]).returncode != 0  # no client cert
    assert echoscu(scp.port, "TLSSCP").returncode != 0  # plain TCP
    done = storescu(scp.port, "TLSSCP", sample_files[:1], tls=tls_client_args(tls_certs))
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(scp.received_files()) == 1


def test_tls_storescp_without_client_certificates(storescp_tls_factory, tls_certs):
    scp = storescp_tls_factory(require_client_cert=False)
    assert echoscu(scp.port, scp.aet, tls=["+tla", "+cf", str(tls_certs.ca_cert)]).returncode == 0
    assert echoscu(scp.port, scp.aet, tls=["+tla", "+cf", str(tls_certs.wrong_ca_cert)]).returncode != 0


def test_tls_certificates_verify_with_python_ssl(tls_certs, storescp_tls_factory):
    """What pynetdicom will do: Python's ssl with the test CA, hostname 127.0.0.1 or localhost."""
    import ssl

    scp = storescp_tls_factory()
    for hostname in ("127.0.0.1", "localhost"):
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls_certs.ca_cert))
        ctx.load_cert_chain(str(tls_certs.client_cert), str(tls_certs.client_key))
        with socket.create_connection(scp.address, timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=hostname):
            pass
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls_certs.wrong_ca_cert))
    with socket.create_connection(scp.address, timeout=10) as raw, pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(raw, server_hostname="localhost")
