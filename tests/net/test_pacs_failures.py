"""Every failure a user can meet is clear, retried where that helps, and loses nothing that arrived."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from workstation.core.pacs import StudyQuery
from workstation.net.errors import AssociationAborted, AssociationRejected, PacsUnreachable

from netpeers.process import LOCALHOST, free_port
from netpeers.site import node_settings


def test_node_down_is_retried_then_reported(pacs_factory):
    port = free_port()  # nothing listens there
    pacs = pacs_factory(DOWN={"ae_title": "NOBODY", "host": LOCALHOST, "port": port, "retries": 2, "timeout_s": 2})
    started = time.monotonic()
    with pytest.raises(PacsUnreachable) as failure:
        pacs.echo("DOWN")
    message = str(failure.value)
    assert f"{LOCALHOST}:{port}" in message and "refused" in message.lower() and "tried 3 times" in message
    assert time.monotonic() - started >= 1.4  # waited 0.5 s and 1 s between the attempts


def test_silent_peer_times_out(pacs_factory):
    """A peer that accepts TCP but never answers the association request."""
    listener = socket.socket()
    listener.bind((LOCALHOST, 0))
    listener.listen(4)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    try:
        pacs = pacs_factory(SILENT={"ae_title": "SILENT", "host": LOCALHOST, "port": listener.getsockname()[1],
                                    "retries": 0, "timeout_s": 1})
        started = time.monotonic()
        with pytest.raises(PacsUnreachable, match="did not answer within 1 s"):
            pacs.find_studies("SILENT", StudyQuery())
        assert time.monotonic() - started < 10
    finally:
        listener.close()


def test_wrong_called_ae_title_is_rejected(pacs_factory, loaded_orthanc):
    pacs = pacs_factory(MAIN=node_settings(loaded_orthanc, ae_title="NOT-ORTHANC"))
    with pytest.raises(AssociationRejected) as failure:
        pacs.echo("MAIN")
    assert "rejected" in str(failure.value) and "called AE title" in str(failure.value).lower().replace("ae title", "AE title")


def test_unknown_calling_ae_title_is_reported(pacs_factory, loaded_orthanc):
    pacs = pacs_factory(local={"ae_title": "STRANGER"}, MAIN=node_settings(loaded_orthanc))
    with pytest.raises(AssociationAborted, match="aborted the association \\(our AE title .STRANGER. may not be allowed"):
        pacs.find_studies("MAIN", StudyQuery())


def test_move_destination_unknown_to_the_pacs(pacs_factory, orthanc_factory, net_demo_study):
    peer = orthanc_factory(config={"DicomAlwaysAllowFind": True, "DicomAlwaysAllowMove": True, "DicomModalities": {}})
    peer.upload(net_demo_study.files)
    pacs = pacs_factory(MAIN=node_settings(peer))
    result = pacs.retrieve("MAIN", net_demo_study.study_instance_uid, method="move")
    assert result.status == "failed" and not result.ok and result.received == 0
    assert "0xC000" in result.failures[0] or "0xA801" in result.failures[0]
    assert "destination" in result.failures[0]


@pytest.fixture
def disk_fills_up(disk_full_every):
    """Every third instance cannot be written, as on a full disk."""
    disk_full_every(3)


def test_partial_get_reports_failures_and_keeps_the_rest(pacs_factory, loaded_orthanc, net_demo_study, disk_fills_up):
    pacs = pacs_factory(MAIN=node_settings(loaded_orthanc))
    result = pacs.retrieve("MAIN", net_demo_study.study_instance_uid, method="get")
    assert result.status == "partial" and not result.ok
    assert (result.received, result.failed) == (20, 10)
    assert any("reported 10 instance(s) failed" in f for f in result.failures)
    assert any("10 instance(s) could not be stored here: cannot write to the cache: No space left" in f for f in result.failures)
    assert len(list(pacs.study_dir(net_demo_study.study_instance_uid).glob("*.dcm"))) == 20


def test_orthanc_stopping_a_move_at_the_first_refusal_keeps_what_arrived(pacs_factory, loaded_orthanc, net_demo_study,
                                                                        disk_fills_up):
    """Orthanc ends a C-MOVE with 0xC000 at the first failed C-STORE; the two instances before it stay."""
    pacs = pacs_factory(MAIN=node_settings(loaded_orthanc))
    result = pacs.retrieve("MAIN", net_demo_study.study_instance_uid, method="move")
    assert result.status == "failed" and result.received == 2
    assert any("0xC000" in f for f in result.failures)
    assert any("could not be stored here: cannot write to the cache: No space left" in f for f in result.failures)
    assert any("2 instance(s) that arrived are kept" in f for f in result.failures)
    assert len(list(pacs.study_dir(net_demo_study.study_instance_uid).glob("*.dcm"))) == 2


def test_peer_closing_mid_transfer_keeps_what_arrived(pacs_factory, orthanc_factory, net_demo_study):
    peer = orthanc_factory()
    peer.upload(net_demo_study.files)
    pacs = pacs_factory(MAIN=node_settings(peer, timeout_s=5))

    def kill_after_five(progress, stored):
        if stored >= 5 and peer.running:
            peer.stop()  # SIGKILL: the connection drops mid-transfer

    result = pacs.retrieve("MAIN", net_demo_study.study_instance_uid, method="get", progress=kill_after_five)
    assert result.status == "failed" and not result.ok
    assert 5 <= result.received < 30
    assert "connection lost" in result.failures[0]
    assert f"{result.received} instance(s) that arrived are kept" in result.failures[1]
    assert len(list(pacs.study_dir(net_demo_study.study_instance_uid).glob("*.dcm"))) == result.received
