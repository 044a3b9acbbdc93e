"""DICOM TLS: associations use TLS when configured, and verify the server certificate by default."""

from __future__ import annotations

import pytest

from workstation.core.pacs import StudyQuery
from workstation.net.errors import PacsError, PacsUnreachable

from netpeers.site import node_settings


def tls(certs, **overrides) -> dict:
    settings = {"ca_file": str(certs.ca_cert), "cert_file": str(certs.client_cert), "key_file": str(certs.client_key)}
    settings.update(overrides)
    return {k: v for k, v in settings.items() if v is not None}


def test_echo_over_tls_to_dcmtk(pacs_factory, storescp_tls_factory, tls_certs):
    peer = storescp_tls_factory()
    pacs = pacs_factory(SECURE=node_settings(peer, tls=tls(tls_certs)))
    assert pacs.echo("SECURE") > 0


def test_plain_association_to_a_tls_peer_fails(pacs_factory, storescp_tls_factory):
    peer = storescp_tls_factory()
    pacs = pacs_factory(SECURE=node_settings(peer, timeout_s=2))
    with pytest.raises(PacsError):
        pacs.echo("SECURE")


def test_untrusted_server_certificate_is_refused(pacs_factory, storescp_tls_factory, tls_certs):
    peer = storescp_tls_factory()
    pacs = pacs_factory(SECURE=node_settings(peer, tls=tls(tls_certs, ca_file=str(tls_certs.wrong_ca_cert))))
    with pytest.raises(PacsUnreachable, match="TLS handshake .* failed: the server certificate is not trusted"):
        pacs.echo("SECURE")


def test_verification_is_on_without_a_ca_file(pacs_factory, storescp_tls_factory, tls_certs):
    """No CA configured means the system CAs, which do not know the test CA: refused, not silently trusted."""
    peer = storescp_tls_factory()
    pacs = pacs_factory(SECURE=node_settings(peer, tls=tls(tls_certs, ca_file=None)))
    with pytest.raises(PacsUnreachable, match="TLS handshake"):
        pacs.echo("SECURE")


def test_server_name_must_match_the_certificate(pacs_factory, storescp_tls_factory, tls_certs):
    peer = storescp_tls_factory()
    pacs = pacs_factory(SECURE=node_settings(peer, tls=tls(tls_certs, server_name="pacs.elsewhere.example")))
    with pytest.raises(PacsUnreachable, match="TLS handshake"):
        pacs.echo("SECURE")


def test_verification_can_be_switched_off_explicitly(pacs_factory, storescp_tls_factory, tls_certs):
    peer = storescp_tls_factory()
    pacs = pacs_factory(SECURE=node_settings(peer, tls=tls(tls_certs, ca_file=None, verify=False)))
    assert pacs.echo("SECURE") > 0


def test_peer_requiring_a_client_certificate(pacs_factory, storescp_tls_factory, tls_certs):
    peer = storescp_tls_factory(require_client_cert=True)
    pacs = pacs_factory(SECURE=node_settings(peer, tls=tls(tls_certs, cert_file=None, key_file=None)))
    with pytest.raises(PacsError, match="client certificate"):
        pacs.echo("SECURE")


def test_find_and_get_over_tls_from_orthanc(pacs_factory, orthanc_factory, tls_certs, net_demo_study):
    peer = orthanc_factory(tls=tls_certs)
    peer.upload(net_demo_study.files)
    pacs = pacs_factory(SECURE=node_settings(peer, tls=tls(tls_certs)))
    (study,) = pacs.find_studies("SECURE", StudyQuery(patient_id="DEMO-0005"))
    result = pacs.retrieve("SECURE", study.study_instance_uid, method="get")
    assert result.ok and result.received == 30
