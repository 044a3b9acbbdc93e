"""Sign-off sends the results to the PACS by itself (site option on-signoff), in the real window: the objects
arrive in a real Orthanc, the AI panel says so; Results > Send does the same on demand; a dead PACS is said."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from netpeers.orthanc import OrthancPeer
from netpeers.process import LOCALHOST, free_port, require_isolation
from review_helpers import LOGIN_VARIABLE, CannedInference, open_window, run_canned_model
from workstation.core.site import parse_site_config
from workstation.ui.app import open_work_session

pytestmark = pytest.mark.ui


@pytest.fixture
def orthanc(tmp_path):
    require_isolation()
    peer = OrthancPeer(tmp_path / "orthanc", ws_aet="WSTEST", ws_port=free_port()).start()
    yield peer
    peer.stop()


def session_for(backend, monkeypatch, node: dict, send: str):
    monkeypatch.setenv(LOGIN_VARIABLE, "carol")
    config = parse_site_config({
        "workstation": {"id": "ws-test", "ae_title": "WSTEST"}, "pacs": {"MAIN": node},
        "results": {"node": "MAIN", "send": send},
        "users": {"roles": {"carol": "radiologist"}, "login_variable": LOGIN_VARIABLE}})
    session, problem = open_work_session(config, backend)
    assert session is not None, problem
    return session, config


def test_sign_off_sends_every_object_to_the_pacs(qtbot, small_study, backend, monkeypatch, orthanc):
    node = {"ae_title": orthanc.aet, "host": LOCALHOST, "port": orthanc.port, "timeout_s": 10, "retries": 0}
    session, config = session_for(backend, monkeypatch, node, "on-signoff")
    win = open_window(qtbot, small_study.directory, session, CannedInference(), config=config)
    run_canned_model(qtbot, win)
    for _ in range(3):
        qtbot.keyClick(win.viewer, Qt.Key.Key_N)
        qtbot.keyClick(win.viewer, Qt.Key.Key_A)
    with qtbot.waitSignal(win.results_send.finished, timeout=60_000) as done:
        qtbot.keyClick(win.viewer, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    report = done.args[0]
    assert not isinstance(report, str), report
    assert report.done and len(report.sent) == 4  # AI SR, review SR, GSPS, Parametric Map (the canned heatmap)
    modalities = sorted(s["MainDicomTags"].get("Modality", "") for s in orthanc.get("/series?expand"))
    assert modalities == ["OT", "PR", "SR", "SR"]
    assert win.ai_panel.results_label.text() == "Results: 4 sent to MAIN"
    exports = [e for e in session.store.audit_entries() if e.kind == "export"]
    assert len(exports) == 1 and len(exports[0].details["sop_instance_uids"]) == 4
    win.results_send.send_action.trigger()  # again: nothing new to send, nothing sent twice
    qtbot.waitUntil(lambda: not win.results_send.running, timeout=30_000)
    assert orthanc.instance_count() == 4


def test_a_dead_pacs_is_said_and_the_objects_wait_to_be_retried(qtbot, small_study, backend, monkeypatch):
    node = {"ae_title": "NOBODY", "host": LOCALHOST, "port": free_port(), "timeout_s": 2, "retries": 0}
    session, config = session_for(backend, monkeypatch, node, "manual")
    win = open_window(qtbot, small_study.directory, session, CannedInference(), config=config)
    run_canned_model(qtbot, win)
    with qtbot.waitSignal(win.results_send.finished, timeout=60_000) as done:
        win.results_send.send_action.trigger()
    assert len(done.args[0].retrying) == 3  # no sign-off: AI SR, GSPS, Parametric Map
    assert win.ai_panel.results_label.text().startswith("Results: 3 waiting to retry")
    assert "to retry" in win.status_label.text()
