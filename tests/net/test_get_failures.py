"""Our own C-GET association: it fails in the same words as the pynetdicom ones (echo, find, move), and\nreassembles data sets from any PDU size."""

from __future__ import annotations

import re
import socket
import threading
import time

import pydicom
import pytest

from workstation.net import ul

from netpeers.process import LOCALHOST, free_port
from netpeers.site import node_settings

STUDY = "1.2.3.4"


def get_failure(pacs, node: str = "MAIN") -> str:
    result = pacs.retrieve(node, STUDY, method="get")
    assert result.status == "failed" and result.received == 0, result
    return result.failures[0]


def test_node_down_is_retried_then_reported(pacs_factory):
    port = free_port()
    pacs = pacs_factory(MAIN={"ae_title": "NOBODY", "host": LOCALHOST, "port": port, "retries": 2, "timeout_s": 2})
    started = time.monotonic()
    message = get_failure(pacs)
    assert f"cannot connect to MAIN (NOBODY@{LOCALHOST}:{port})" in message and "refused" in message.lower()
    assert "tried 3 times" in message
    assert time.monotonic() - started >= 1.4  # waited 0.5 s and 1 s between the attempts


def test_silent_peer_times_out(pacs_factory):
    listener = socket.create_server((LOCALHOST, 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    try:
        pacs = pacs_factory(MAIN={"ae_title": "SILENT", "host": LOCALHOST, "port": listener.getsockname()[1],
                                  "retries": 0, "timeout_s": 1})
        assert "accepted the connection but did not answer within 1 s" in get_failure(pacs)
    finally:
        listener.close()


def test_wrong_called_ae_title_is_rejected(pacs_factory, loaded_orthanc):
    pacs = pacs_factory(MAIN=node_settings(loaded_orthanc, ae_title="NOT-ORTHANC"))
    message = get_failure(pacs)
    assert "rejected the association: Called AE title not recognised (Rejected Permanent, Service User)" in message


def test_unknown_calling_ae_title_is_reported(pacs_factory, loaded_orthanc):
    pacs = pacs_factory(local={"ae_title": "STRANGER"}, MAIN=node_settings(loaded_orthanc))
    assert re.search("aborted the association \\(our AE title .STRANGER. may not be allowed", get_failure(pacs))


def test_untrusted_server_certificate_is_refused(pacs_factory, storescp_tls_factory, tls_certs):
    peer = storescp_tls_factory()
    tls = {"ca_file": str(tls_certs.wrong_ca_cert), "cert_file": str(tls_certs.client_cert),
           "key_file": str(tls_certs.client_key)}
    pacs = pacs_factory(MAIN=node_settings(peer, tls=tls, retries=0))
    assert re.search("TLS handshake .* failed: the server certificate is not trusted", get_failure(pacs))


def test_peer_requiring_a_client_certificate(pacs_factory, storescp_tls_factory, tls_certs):
    peer = storescp_tls_factory(require_client_cert=True)
    pacs = pacs_factory(MAIN=node_settings(peer, tls={"ca_file": str(tls_certs.ca_cert)}, retries=0))
    assert "client certificate" in get_failure(pacs)


def test_a_pacs_without_c_get_is_reported(pacs_factory, storescp_factory):
    """storescp accepts the association but none of it is C-GET."""
    pacs = pacs_factory(MAIN=node_settings(storescp_factory(), retries=0))
    assert get_failure(pacs) == "MAIN does not accept Study Root Query/Retrieve Information Model - GET from us"


@pytest.mark.parametrize("peer", ["orthanc", "dcmqrscp"])
def test_small_pdus(pacs_factory, loaded_orthanc, loaded_dcmqrscp, net_demo_study, monkeypatch, peer):
    """We announce a Maximum Length of 4 KiB: every data set arrives in many P-DATA-TF PDUs."""
    pdu_lengths = []
    read_pdu_header = ul.PduSocket.read_pdu_header

    def recorded(self):
        pdu_type, length = read_pdu_header(self)
        if pdu_type == ul.P_DATA_TF_PDU:
            pdu_lengths.append(length)
        return pdu_type, length

    monkeypatch.setattr(ul, "MAX_PDU", 4096)
    monkeypatch.setattr(ul.PduSocket, "read_pdu_header", recorded)
    pacs = pacs_factory(QR=node_settings(loaded_orthanc if peer == "orthanc" else loaded_dcmqrscp))
    result = pacs.retrieve("QR", net_demo_study.study_instance_uid, method="get")
    assert result.ok and (result.received, result.new) == (30, 30), result
    assert max(pdu_lengths) <= 4096 and len(pdu_lengths) > 30 * 8
    folder = pacs.study_dir(net_demo_study.study_instance_uid)
    original = {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f).PixelData for f in net_demo_study.files}
    assert all(pydicom.dcmread(f).PixelData == original[pydicom.dcmread(f).SOPInstanceUID] for f in folder.glob("*.dcm"))
