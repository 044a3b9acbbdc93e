"""Fixtures that start real DICOM peers (Orthanc, DCMTK) on free 127.0.0.1 ports, and stop them.

The session runs in a private, loopback-only network namespace (``tests/conftest.py``); without it
every peer fixture fails (it does not skip), because Orthanc and DCMTK listen on all interfaces.

The workstation under test is ``ws_ae``: AE title "WSTEST" with a store port reserved for its own
C-STORE SCP (the peers' C-MOVE destination). Every peer knows it: Orthanc as modality ``"ws"``,
dcmqrscp as HostTable entry ``ws``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from pydicom.data import get_testdata_file

from netpeers.certs import TlsCerts, make_tls_certs
from netpeers.dcmtk import DcmqrscpPeer, StorescpPeer
from netpeers.orthanc import OrthancPeer
from netpeers.process import LOCALHOST, PeerError, PeerProcess, free_port, require_isolation
from workstation.demo import DemoStudy, write_demo_study

WS_AET = "WSTEST"
SAMPLE_FILES = ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "emri_small.dcm")


@dataclass(frozen=True)
class WsAe:
    """The workstation as the peers know it."""

    aet: str
    port: int  # store port reserved for the workstation's C-STORE SCP (C-MOVE destination)
    host: str = LOCALHOST


def _checked() -> None:
    """Fail (never skip) when the session is not in a private network namespace."""
    try:
        require_isolation()
        return
    except PeerError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


def _start(peer: PeerProcess) -> PeerProcess:
    try:
        return peer.start()
    except PeerError as exc:
        message = str(exc)
    peer.stop()
    pytest.fail(message, pytrace=False)


class _Factory:
    """Builds and starts peers; ``close()`` stops every one of them (fixture teardown)."""

    def __init__(self, cls, tmp_path_factory: pytest.TempPathFactory, defaults: dict):
        _checked()
        self.cls, self.tmp, self.defaults = cls, tmp_path_factory, defaults
        self.peers: list[PeerProcess] = []

    def __call__(self, **overrides):
        _checked()
        peer = self.cls(self.tmp.mktemp(self.cls.name), **{**self.defaults, **overrides})
        self.peers.append(peer)
        return _start(peer)

    def close(self) -> None:
        errors = []
        for peer in reversed(self.peers):
            try:
                peer.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others first
                errors.append(exc)
        if errors:
            raise errors[0]


# -- data -------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def ws_ae() -> WsAe:
    return WsAe(aet=WS_AET, port=free_port())


@pytest.fixture(scope="session")
def net_demo_study(tmp_path_factory) -> DemoStudy:
    """A 30-slice 128 x 128 CT (seed 5), the study loaded into the peers."""
    return write_demo_study(tmp_path_factory.mktemp("net-demo"), seed=5, slices=30, size=128)


@pytest.fixture(scope="session")
def sample_files() -> list[Path]:
    """pydicom's CT_small, MR_small, JPEG2000 and emri_small (multi-frame MR): one study each."""
    paths = [get_testdata_file(name, download=False) for name in SAMPLE_FILES]
    missing = [name for name, path in zip(SAMPLE_FILES, paths) if path is None]
    if missing:
        pytest.fail(f"pydicom test files missing: {missing}", pytrace=False)
    return [Path(p) for p in paths]


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory) -> TlsCerts:
    return make_tls_certs(tmp_path_factory.mktemp("tls"), client_cn=WS_AET)


# -- Orthanc ----------------------------------------------------------------------------------------

@pytest.fixture
def orthanc_factory(tmp_path_factory, ws_ae) -> Callable[..., OrthancPeer]:
    """``orthanc_factory(**kw)`` -> a started, empty ``OrthancPeer``; kw as ``OrthancPeer`` (aet, tls,
    extra_modalities, ws_use_tls, max_pdu, config...). All are stopped at teardown."""
    factory = _Factory(OrthancPeer, tmp_path_factory, {"ws_aet": ws_ae.aet, "ws_port": ws_ae.port})
    yield factory
    factory.close()


@pytest.fixture
def orthanc(orthanc_factory) -> OrthancPeer:
    """An empty Orthanc (AET "ORTHANC") for one test."""
    return orthanc_factory()


@pytest.fixture(scope="module")
def loaded_orthanc(tmp_path_factory, ws_ae, net_demo_study, sample_files) -> OrthancPeer:
    """Orthanc holding the demo study (30 CT slices) and the four pydicom samples: 5 studies, 34
    instances. Shared by the tests of one module: treat it as read-only."""
    factory = _Factory(OrthancPeer, tmp_path_factory, {"ws_aet": ws_ae.aet, "ws_port": ws_ae.port})
    try:
        peer = factory()
        peer.upload([*net_demo_study.files, *sample_files])
        yield peer
    finally:
        factory.close()


# -- DCMTK ------------------------------------------------------------------------------------------

@pytest.fixture
def dcmqrscp_factory(tmp_path_factory, ws_ae) -> Callable[..., DcmqrscpPeer]:
    """``dcmqrscp_factory(**kw)`` -> a started, empty ``DcmqrscpPeer`` (kw: aet, extra_hosts, peers,
    max_pdu, max_associations, extra_args). All are stopped at teardown."""
    factory = _Factory(DcmqrscpPeer, tmp_path_factory, {"ws_aet": ws_ae.aet, "ws_port": ws_ae.port})
    yield factory
    factory.close()


@pytest.fixture
def dcmqrscp(dcmqrscp_factory) -> DcmqrscpPeer:
    return dcmqrscp_factory()


@pytest.fixture(scope="module")
def loaded_dcmqrscp(tmp_path_factory, ws_ae, net_demo_study) -> DcmqrscpPeer:
    """dcmqrscp (AET "DCMQRSCP") holding the demo study. Module-shared: treat it as read-only."""
    factory = _Factory(DcmqrscpPeer, tmp_path_factory, {"ws_aet": ws_ae.aet, "ws_port": ws_ae.port})
    try:
        peer = factory()
        peer.store(net_demo_study.files)
        yield peer
    finally:
        factory.close()


@pytest.fixture
def storescp_factory(tmp_path_factory) -> Callable[..., StorescpPeer]:
    """``storescp_factory(**kw)`` -> a started ``StorescpPeer`` (kw: aet, tls, require_client_cert,
    trust, server_cert, server_key, extra_args). All are stopped at teardown."""
    factory = _Factory(StorescpPeer, tmp_path_factory, {})
    yield factory
    factory.close()


@pytest.fixture
def storescp_tls_factory(tmp_path_factory, tls_certs) -> Callable[..., StorescpPeer]:
    """Like ``storescp_factory`` but DICOM TLS with ``tls_certs`` by default; ``require_client_cert``
    (default True) chooses DCMTK's ``-rc`` (client certificate required and verified) or ``-ic``."""
    factory = _Factory(StorescpPeer, tmp_path_factory, {"tls": tls_certs})
    yield factory
    factory.close()


# ----- the workstation's own side: a PacsService configured for the peers under test


@pytest.fixture
def pacs_factory(tmp_path, ws_ae):
    """`pacs_factory(NAME=node_settings(peer), ...)` -> a PacsService with its own cache; closed at teardown."""
    from workstation.core.site import parse_site_config
    from workstation.dicom.cache import StudyCache
    from workstation.services.pacs import PacsService

    services = []

    def build(cache_bytes: int = 10**9, local: dict | None = None, **nodes):
        config = parse_site_config({
            "workstation": {"ae_title": ws_ae.aet, "store_port": ws_ae.port, "bind_address": LOCALHOST, **(local or {})},
            "pacs": nodes,
        })
        service = PacsService(config, StudyCache(tmp_path / f"cache{len(services)}", cache_bytes))
        services.append(service)
        return service

    yield build
    for service in services:
        service.close()


@pytest.fixture
def disk_full_every(monkeypatch):
    """`disk_full_every(n)`: every n-th received instance cannot be written, as on a full disk."""
    from workstation.dicom.cache import CacheError, IncomingInstance

    def install(n: int) -> None:
        real_commit = IncomingInstance.commit
        calls = {"n": 0}

        def failing_commit(self):
            calls["n"] += 1
            if calls["n"] % n == 0:
                raise CacheError("cannot write to the cache: No space left on device")
            return real_commit(self)

        monkeypatch.setattr(IncomingInstance, "commit", failing_commit)

    return install
