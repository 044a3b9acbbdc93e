"""DCMTK storescu pushes a chest CT and an MR to the workstation's receiver, Orthanc pushes a chest CT with planted
nodules by its REST `/modalities/{id}/store`: the CTs are routed to the model and run, the MR is not (its row says
why), and the worklist puts the study with nodules first."""

from __future__ import annotations

import json
import time

import pytest

from netpeers.dcmtk import storescu
from netpeers.orthanc import OrthancPeer
from netpeers.process import PeerError
from netpeers.process import free_port
from triage_data import site
from workstation.core.roles import Role, User
from workstation.core.site import parse_site_config
from workstation.services import triage_intake
from workstation.services.pacs import PacsService
from workstation.services.triage import TriageService
from workstation.services.worklist import WorklistService
from workstation.store.database import Identity, Store
from workstation.store.triage_queue import DONE, NOT_APPLICABLE


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, triage_studies):
    """One receiver + triage session that received the three studies; everything ran."""
    from keyrings.alt.file import PlaintextKeyring

    tmp = tmp_path_factory.mktemp("triage-push")
    backend = PlaintextKeyring()
    backend.file_path = str(tmp / "keyring.cfg")
    port = free_port()
    orthanc = OrthancPeer(tmp / "orthanc", ws_aet="WSTEST", ws_port=port)
    try:
        orthanc.start()
    except PeerError as exc:
        orthanc.stop()
        pytest.fail(str(exc), pytrace=False)
    document = site(port)
    document["routing"]["rules"][0]["calling_ae"] = ["STORESCU", "ORTHANC"]  # the receiver names the sender
    document["pacs"]["ORTHANC"] = {"ae_title": orthanc.aet, "host": "127.0.0.1", "port": orthanc.port}
    config = parse_site_config({**document, "cache": {"directory": str(tmp / "cache")}})
    store = Store.open(tmp / "store.sqlite", Identity(User("reader", Role.REVIEWER), "ws-triage"), backend)
    pacs = PacsService(config)
    triage = TriageService(config, store)
    lines: list[str] = []
    triage.changed.connect(lambda text, job: text and lines.append(text))
    triage_intake.connect(pacs, triage)
    pacs.start_receiver()
    triage.start()
    try:
        for key in ("clean", "mr"):
            done = storescu(config.local.store_port, "WSTEST", [triage_studies[key]])
            assert done.returncode == 0, done.stdout + done.stderr
        study = orthanc.upload([triage_studies["nodules"]])[0]["ParentStudy"]
        answer = orthanc.post("/modalities/ws/store", {"Resources": [study], "Synchronous": True})
        assert answer.get("InstancesCount", 12) == 12 and answer.get("FailedInstancesCount", 0) == 0, answer
        assert triage.wait_idle(120), "\n".join(lines)
        yield store, config, triage, lines
    finally:
        triage.stop()
        pacs.close()
        store.close()
        orthanc.stop()


def test_the_ct_gets_a_run_and_the_mr_says_why_not(pushed):
    store, config, triage, lines = pushed
    jobs = triage.queue.jobs()
    ct = [j for j in jobs if j.model == "nodule-detector"]
    mr = [j for j in jobs if j.model == "-"]
    assert len(ct) == 2 and all(j.state == DONE and j.run_id for j in ct), [j.state_text for j in jobs]
    assert all(j.instances == 12 and j.rule == "chest-ct" for j in ct)
    assert sorted(j.calling_ae for j in ct) == ["ORTHANC", "STORESCU"]
    assert len(mr) == 1 and mr[0].state == NOT_APPLICABLE and mr[0].calling_ae == "STORESCU"
    assert "modality MR is not CT" in mr[0].state_text
    # every run is audited like a manual one, naming the job that ran it, exactly once
    runs = [e for e in store.audit_entries() if e.kind == "inference.run"]
    assert sorted(e.details["triage_job_id"] for e in runs) == sorted(j.job_id for j in ct)
    assert all(e.details["rule"] == "chest-ct" and e.details["model"] == "nodule-detector" for e in runs)
    assert any(line.startswith("routed: series") for line in lines)
    assert any(line.startswith("association accepted: STORESCU from 127.0.0.1") for line in lines)
    sources = sorted(s.source for s in triage.queue.studies())
    assert sources == ["received from ORTHANC", "received from STORESCU", "received from STORESCU"]
    assert any("not routed" in line and "modality MR is not CT" in line for line in lines)


def test_the_worklist_ranks_the_study_with_nodules_first(pushed, triage_studies):
    store, config, triage, _ = pushed
    rows = WorklistService(config, store).rows()
    assert len(rows) == 3
    first, *others = rows
    assert first.flagged and first.alerts >= 2, [r.priority_text for r in rows]
    assert first.flags[0].threshold == 0.6 and first.flags[0].threshold_source == "site threshold"
    assert first.strongest is not None and first.strongest.score == first.top_score
    assert first.review_state == "unread" and first.ai_state == "done"
    assert not any(r.flagged for r in others)
    by_modality = {r.study.modalities: r for r in others}
    assert by_modality["MR"].ai_state.startswith("not applicable: no routing rule matches")
    assert by_modality["CT"].ai_state == "done"
    # filters
    assert [r.study.study_instance_uid for r in WorklistService(config, store).rows(("flagged",))] == [
        first.study.study_instance_uid]
    assert {r.study.modalities for r in WorklistService(config, store).rows(modality="MR")} == {"MR"}
    document = WorklistService(config, store).document(rows)
    assert document["format"] == "workstation.worklist/1"
    assert json.loads(json.dumps(document))["rows"][0]["open_at"]["frame_index"] == first.strongest.frame_index
