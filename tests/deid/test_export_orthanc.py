"""Export to a real research PACS (Orthanc, Debian package) by C-STORE, then query it back by C-FIND: the
pseudonymised patient and study are there with every object, and nothing planted reached the PACS."""

from __future__ import annotations

import pytest

from deid.conftest import SECRET, open_session, site
from netpeers.orthanc import OrthancPeer
from netpeers.process import PeerError, require_isolation
from netpeers.site import node_settings
from workstation.core.pacs import StudyQuery
from workstation.core.roles import Role
from workstation.net.query import find_series, find_studies
from workstation.services.export import Destination, ExportRequest, export_deidentified


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    try:
        require_isolation()
    except PeerError as exc:
        pytest.fail(str(exc), pytrace=False)
    peer = OrthancPeer(tmp_path_factory.mktemp("orthanc-research"), aet="RESEARCH", ws_aet="WSDEID")
    try:
        peer.start()
    except PeerError as exc:
        peer.stop()
        pytest.fail(str(exc), pytrace=False)
    yield peer
    peer.stop()


def test_export_to_research_node_and_query_back(corpus, orthanc, tmp_path):
    data = site()
    data["pacs"] = {"RESEARCH": node_settings(orthanc)}
    session = open_session(tmp_path, Role.REVIEWER, data)
    try:
        report = export_deidentified(ExportRequest(Destination("node", "RESEARCH"), paths=(str(corpus.folder),)),
                                     session.config, session, SECRET)
        assert report.exit_code == 0, report.left_out
        assert report.written == 7
        (patient,) = report.manifest["patients"]
        node = session.config.node("RESEARCH")
        (study,) = list(find_studies(node, session.config.local, StudyQuery(patient_id=patient["pseudonym"])))
        assert study.study_instance_uid == patient["studies"][0] and study.patient_name.startswith("ANON^")
        series = list(find_series(node, session.config.local, study.study_instance_uid))
        assert sorted(s.modality for s in series) == ["CT", "MR", "PR", "SR", "US"]
        stored = b"".join(orthanc.get(f"/instances/{i}/file") for i in orthanc.get("/instances"))
        assert orthanc.get("/statistics")["CountInstances"] == 7
        assert not [v for v in corpus.planted if v.encode() in stored]
        assert session.store.last_entry("export").details["destination"] == "node RESEARCH"
    finally:
        session.store.close()
