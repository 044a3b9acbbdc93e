"""The results queue follows the review: objects built from a sign-off that is reopened are withdrawn, a rebuild
supersedes what was not sent yet, and a node removed from the site file is a refusal, not an endless retry.
Real encrypted store, real builders; the network side is a recorder here (tests/net send to real peers)."""

from __future__ import annotations

import keyring.core  # noqa: F401 - the file backend below is chosen explicitly
import pytest
from keyrings.alt.file import PlaintextKeyring

from results_data import run_context
from workstation.core.audit import AuditEvent
from workstation.core.findings import InferenceResult
from workstation.core.roles import Role, User
from workstation.core.site import parse_site_config
from workstation.demo import write_demo_study
from workstation.dicom.scan import scan_paths
from workstation.net.store_scu import StoreOutcome
from workstation.services.results_send import FAILED, SENT, SUPERSEDED, WITHDRAWN, ResultsOutbox
from workstation.services.review import ReviewSession, SeriesKey
from workstation.store.database import Identity, Store

CONFIG = {"workstation": {"ae_title": "WS"}, "pacs": {"MAIN": {"ae_title": "PACS", "host": "127.0.0.1", "port": 104}},
          "results": {"node": "MAIN"}}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_demo_study(tmp_path_factory.mktemp("queue-rules"), seed=4, slices=16, size=96)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, node, local, objects, cancel=None, progress=None):
        self.sent += [o.sop_instance_uid for o in objects]
        return [StoreOutcome(o.sop_instance_uid, True, 0) for o in objects]


@pytest.fixture
def setup(tmp_path, study):
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "kr.cfg")
    store = Store.open(tmp_path / "s.sqlite", Identity(User("carol", Role.REVIEWER), "ws"), backend)
    run = run_context(study)
    series = str(run.sources[0].SeriesInstanceUID)
    result = InferenceResult(run.model, "cpu", study.study_instance_uid, series, run.findings, run.heatmap, 1.0,
                             run.started_utc)
    store.record_inference(result, AuditEvent("inference.run", run.started_utc, {}))
    key = SeriesKey(study.study_instance_uid, series, tuple(str(s.SOPInstanceUID) for s in run.sources))
    yield store, ReviewSession(store, key, run.model, run.findings), series
    store.close()


def test_a_reopened_review_is_withdrawn_and_the_new_sign_off_is_what_goes(setup, study):
    store, review, series = setup
    recorder = Recorder()
    outbox = ResultsOutbox(parse_site_config(CONFIG), store, send=recorder)
    catalog = scan_paths([str(study.directory)])
    review.accept("f1")
    review.accept("f2")
    review.sign_off()
    first = {q.kind: q for q in outbox.build_and_queue(series, catalog)}
    assert first["review-sr"].signoff_entry_id and not first["ai-sr"].signoff_entry_id
    review.reopen("second look")
    review.reject("f2", comment="vessel")
    report = outbox.send_pending()
    states = {i.sop_instance_uid: i.state for i in outbox.items()}
    assert states[first["review-sr"].sop_instance_uid] == WITHDRAWN and states[first["gsps"].sop_instance_uid] == WITHDRAWN
    assert set(recorder.sent) == {first["ai-sr"].sop_instance_uid, first["pmap"].sop_instance_uid} == set(report.sent)
    review.sign_off()
    second = {q.kind: q for q in outbox.build_and_queue(series, catalog)}
    assert second["review-sr"].sop_instance_uid != first["review-sr"].sop_instance_uid
    assert second["ai-sr"].sop_instance_uid == first["ai-sr"].sop_instance_uid  # unchanged: not queued again
    outbox.send_pending()
    assert {second["review-sr"].sop_instance_uid, second["gsps"].sop_instance_uid} <= set(recorder.sent)
    assert first["review-sr"].sop_instance_uid not in recorder.sent


def test_a_rebuild_supersedes_what_was_not_sent_and_a_removed_node_is_a_refusal(setup, study):
    store, review, series = setup
    outbox = ResultsOutbox(parse_site_config(CONFIG), store, send=Recorder())
    catalog = scan_paths([str(study.directory)])
    before = {q.kind: q for q in outbox.build_and_queue(series, catalog)}  # not signed off: AI boxes in the GSPS
    review.accept("f1")
    review.reject("f2")
    review.sign_off()
    after = {q.kind: q for q in outbox.build_and_queue(series, catalog)}
    states = {i.sop_instance_uid: i.state for i in outbox.items()}
    assert states[before["gsps"].sop_instance_uid] == SUPERSEDED and after["gsps"].state == "queued"
    removed = ResultsOutbox(parse_site_config({**CONFIG, "pacs": {"OTHER": CONFIG["pacs"]["MAIN"]},
                                               "results": {"node": "OTHER"}}), store, send=Recorder())
    report = removed.send_pending()
    assert report.failed and "no such PACS node" in report.failed[0][1]
    assert {i.state for i in removed.items() if i.state not in (SUPERSEDED,)} == {FAILED}
    assert SENT not in {i.state for i in removed.items()}
