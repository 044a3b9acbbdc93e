"""A prefetch rule C-FINDs Orthanc for the day's studies of a modality and retrieves the new ones (C-GET): they are
routed as if pushed (here an MR no rule routes: its row says why), and a second round retrieves nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from netpeers.orthanc import OrthancPeer
from netpeers.process import PeerError, free_port
from triage_data import site
from workstation.core.roles import Role, User
from workstation.core.site import parse_site_config
from workstation.services import triage_intake
from workstation.services.pacs import PacsService
from workstation.services.prefetch import Prefetcher
from workstation.services.triage import TriageService
from workstation.services.worklist import WorklistService
from workstation.store.database import Identity, Store
from workstation.store.triage_queue import NOT_APPLICABLE

MR_DATE = dt.date(2004, 8, 26)  # pydicom's MR_small; CT_small is of 2004-01-19


def test_prefetch_retrieves_new_matching_studies_once(tmp_path, backend):
    port = free_port()
    orthanc = OrthancPeer(tmp_path / "orthanc", ws_aet="WSTEST", ws_port=port)
    try:
        orthanc.start()
    except PeerError as exc:
        orthanc.stop()
        pytest.fail(str(exc), pytrace=False)
    try:
        orthanc.upload([get_testdata_file("MR_small.dcm", download=False), get_testdata_file("CT_small.dcm", download=False)])
        document = site(port, quiet_s=0.3)
        document["pacs"]["ORTHANC"] = {"ae_title": orthanc.aet, "host": "127.0.0.1", "port": orthanc.port,
                                       "retrieve": "get", "timeout_s": 10, "retries": 0}
        document["routing"]["prefetch"] = [{"node": "ORTHANC", "modality": "MR", "every_minutes": 5, "days": 0}]
        config = parse_site_config({**document, "cache": {"directory": str(tmp_path / "cache")}})
        with Store.open(tmp_path / "store.sqlite", Identity(User("reader", Role.REVIEWER), "ws-p"), backend) as store:
            pacs = PacsService(config)
            triage = TriageService(config, store)
            triage_intake.connect(pacs, triage)
            triage.start()
            try:
                prefetcher = Prefetcher(pacs, triage.settings.prefetch,
                                        lambda: {s.study_instance_uid for s in triage.queue.studies()}, today=lambda: MR_DATE)
                [rule] = triage.settings.prefetch
                retrieved = prefetcher.run_once(rule)
                assert retrieved == ["1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"]
                assert triage.wait_idle(30)
                [job] = triage.queue.jobs()
                assert job.state == NOT_APPLICABLE and "modality MR is not CT" in job.reason
                [row] = WorklistService(config, store).rows()
                assert row.study.source == "retrieved" and row.study.modalities == "MR"
                assert prefetcher.run_once(rule) == []  # already here: not retrieved again
            finally:
                triage.stop()
                pacs.close()
    finally:
        orthanc.stop()


def test_a_prefetch_rule_must_name_a_configured_node():
    from workstation.core.site import ConfigError
    from workstation.routing.rules import routing_settings

    config = parse_site_config({"routing": {"prefetch": [{"node": "NOWHERE"}]}})
    with pytest.raises(ConfigError, match=r"routing.prefetch\[0\].node: must name a configured PACS node"):
        routing_settings(config)
