"""The worklist panel in the real window (offscreen): flagged, pending and signed-off studies in priority order,
the threshold in use said, and a double-click opening the flagged study at its strongest finding. With
WORKSTATION_SCREENSHOTS=1 it saves resources/screenshots/worklist.png."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from workstation.core.audit import AuditEvent
from workstation.core.findings import Finding, InferenceResult, ModelRef
from workstation.core.site import parse_site_config
from workstation.dicom.scan import scan_paths
from workstation.services.review import ReviewSession, SeriesKey
from workstation.store.triage_queue import NOT_APPLICABLE, TriageQueue

pytestmark = pytest.mark.ui
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
SCREENSHOT = Path(__file__).resolve().parents[2] / "resources" / "screenshots" / "worklist.png"
MODEL = ModelRef("nodule-detector", "1.1.0", "d7" * 32)
LOGIN_VARIABLE = "WS_TRIAGE_LOGIN"


def _finding(fid: str, score: float, frame: int, sop: str) -> Finding:
    return Finding(fid, "nodule", score, frame, (100.0, 100.0, 120.0, 120.0), ((0.0, 0.0, 0.0), (10.0, 10.0, 0.0)),
                   (5.0, 5.0, 0.0), (frame, frame), sop)


def _record(store, study: str, series: str, findings: list[Finding]) -> None:
    result = InferenceResult(MODEL, "cpu", study, series, findings, np.zeros((1, 1, 1), np.uint8), 1.0,
                             "2026-12-04T08:00:00+00:00")
    store.record_inference(result, AuditEvent("inference.run", result.started_utc, {
        "series_instance_uid": series, "model": MODEL.name, "version": MODEL.version, "findings": len(findings)}))


@pytest.fixture
def session(tmp_path, monkeypatch, backend, triage_studies):
    from workstation.ui.app import open_work_session

    monkeypatch.setenv("WORKSTATION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(LOGIN_VARIABLE, "dr.smith")
    config = parse_site_config({"users": {"default_role": "reviewer", "login_variable": LOGIN_VARIABLE},
                                "workstation": {"id": "ws-ui"}, "alerts": {"nodule-detector": 0.6},
                                "worklist": {"show_at_start": True}})
    work, problem = open_work_session(config, backend)
    assert work is not None, problem
    store, queue = work.store, TriageQueue(work.store)
    flagged = scan_paths([triage_studies["nodules"]]).display_sets[0]
    clean = scan_paths([triage_studies["clean"]]).display_sets[0]
    for ds, name in ((clean, "CLEAN^PHANTOM"), (flagged, "NODULES^PHANTOM")):  # the flagged one arrives last
        series = ds.series
        queue.note_study(series.study.study_instance_uid, patient_name=name, patient_id="DEMO", study_date="20261204",
                         description="CT CHEST", source="received from CT01", folder=str(ds.first.location.path).rsplit("/", 1)[0],
                         series_uid=series.series_instance_uid, modality="CT", series_description=series.description,
                         instances=len(ds.frames))
    sop = flagged.frames[7].instance.sop_instance_uid
    _record(store, flagged.series.study.study_instance_uid, flagged.series.series_instance_uid,
            [_finding("a", 0.97, 7, sop), _finding("b", 0.81, 6, sop), _finding("c", 0.52, 5, sop)])
    queue.add(clean.series.study.study_instance_uid, clean.series.series_instance_uid, "nodule-detector",
              "chest-ct", 7, instances=12)  # pending: queued
    # an older study, read and signed off; and an MR no rule routes
    queue.note_study("1.2.826.0.1.99.1", patient_name="EARLIER^STUDY", study_date="20261203", description="CT CHEST",
                     source="retrieved", series_uid="1.2.826.0.1.99.1.1", modality="CT", instances=120)
    signed = [_finding("s1", 0.31, 40, "1.2.826.0.1.99.1.1.40")]
    _record(store, "1.2.826.0.1.99.1", "1.2.826.0.1.99.1.1", signed)
    review = ReviewSession(store, SeriesKey("1.2.826.0.1.99.1", "1.2.826.0.1.99.1.1", ()), MODEL, signed)
    review.reject("s1")
    review.sign_off()
    queue.note_study("1.2.826.0.1.99.2", patient_name="HEAD^MR", study_date="20261204", description="MR BRAIN",
                     source="received from MR01", series_uid="1.2.826.0.1.99.2.1", modality="MR", instances=1)
    queue.add("1.2.826.0.1.99.2", "1.2.826.0.1.99.2.1", "-", "-", 0, state=NOT_APPLICABLE,
              reason="no routing rule matches: chest-ct: modality MR is not CT")
    return config, work, flagged


def test_worklist_rows_thresholds_and_opening_at_the_strongest_finding(qtbot, session, tmp_path, triage_studies):
    from PySide6.QtCore import Qt

    from workstation.ui.main_window import MainWindow

    config, work, flagged = session
    win = MainWindow(config=config, session=work)
    qtbot.addWidget(win)
    win.resize(1500, 700)
    win.show()
    panel = win.worklist.panel
    qtbot.waitUntil(lambda: panel.table.rowCount() == 4, timeout=10_000)
    texts = [[panel.table.item(r, c).text() for c in range(panel.table.columnCount())] for r in range(4)]
    assert texts[0][2] == "NODULES, PHANTOM" and texts[0][0] == "⚑" and texts[0][1] == "2 ≥ 0.60 · top 0.97"
    assert [t[2] for t in texts[1:]] == ["CLEAN, PHANTOM", "EARLIER, STUDY", "HEAD, MR"] or \
        {t[2] for t in texts[1:]} == {"CLEAN, PHANTOM", "EARLIER, STUDY", "HEAD, MR"}
    by_patient = {t[2]: t for t in texts}
    assert by_patient["CLEAN, PHANTOM"][6] == "queued"
    assert by_patient["EARLIER, STUDY"][7] == "signed off by dr.smith"
    assert by_patient["HEAD, MR"][6].startswith("not applicable: no routing rule matches")
    assert "nodule-detector ≥ 0.60 (site threshold)" in panel.thresholds.text()
    assert not win.worklist.dock.visibleRegion().isEmpty()  # the site shows the worklist at start
    dock = win.worklist.dock
    dock.setFloating(True)  # the screenshot shows the worklist itself, whatever other docks the window has
    dock.resize(1420, 250)
    qtbot.wait(100)
    target = SCREENSHOT if os.environ.get("WORKSTATION_SCREENSHOTS") else tmp_path / SCREENSHOT.name
    target.parent.mkdir(parents=True, exist_ok=True)
    assert dock.grab().save(str(target))  # WORKSTATION_SCREENSHOTS=1 refreshes the README's picture
    dock.setFloating(False)
    dock.raise_()
    # the queued study's job is cancelled from the panel
    clean_row = [r for r in range(4) if panel.table.item(r, 2).text() == "CLEAN, PHANTOM"][0]
    panel.table.selectRow(clean_row)
    assert panel.cancel_button.isEnabled()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: any(panel.table.item(r, 6).text() == "cancelled: before it ran" for r in range(4)))
    assert not panel.cancel_button.isEnabled()
    # filters
    panel.flagged.setChecked(True)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1)
    panel.flagged.setChecked(False)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 4)
    # a double-click opens the study at its strongest finding (series and slice)
    rect = panel.table.visualItemRect(panel.table.item(0, 2))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qtbot.waitSignal(win.seriesLoaded, timeout=30_000):
        qtbot.mouseDClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert win.active.load.display_set.series.series_instance_uid == flagged.series.series_instance_uid
    qtbot.waitUntil(lambda: win.viewer.frame_index == 7, timeout=5000)
    (x0, x1), (y0, y1) = win.viewer.viewbox.viewRange()  # centred on the finding's box (110, 110 px)
    row_mm, col_mm = flagged.first.pixel_spacing
    assert abs((x0 + x1) / 2 - 110 * col_mm) < 1 and abs((y0 + y1) / 2 - 110 * row_mm) < 1
    # a study opened from disk joins the worklist
    win.open_paths([str(triage_studies["mr"])])
    qtbot.waitUntil(lambda: any(r.study.source == "opened" for r in panel.rows), timeout=10_000)
    [opened] = [r for r in panel.rows if r.study.source == "opened"]
    assert opened.study.modalities == "MR" and opened.ai_state == "no AI run"
    win.close()
    from PySide6.QtCore import QTimer

    for timer in win.findChildren(QTimer):  # other docks' timers outlive close() (they would read a closed store)
        timer.stop()


def test_the_window_receives_a_push_and_lists_it(qtbot, tmp_path, monkeypatch, backend, triage_studies):
    """With routing rules the window runs the receiver: an MR pushed by storescu appears, saying why no AI ran."""
    from netpeers.dcmtk import storescu
    from netpeers.process import free_port
    from triage_data import site
    from workstation.ui.app import open_work_session
    from workstation.ui.main_window import MainWindow

    monkeypatch.setenv("WORKSTATION_DATA_DIR", str(tmp_path))
    port = free_port()
    config = parse_site_config({**site(port), "cache": {"directory": str(tmp_path / "cache")},
                                "worklist": {"show_at_start": True}})
    work, problem = open_work_session(config, backend)
    assert work is not None, problem
    win = MainWindow(config=config, session=work)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.worklist.triage is not None and win.pacs is not None, timeout=10_000)
    done = storescu(port, "WSTEST", [triage_studies["mr"]])
    assert done.returncode == 0, done.stdout + done.stderr
    panel = win.worklist.panel
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1 and panel.table.item(0, 6).text().startswith("not applicable"),
                    timeout=20_000)
    assert "modality MR is not CT" in panel.table.item(0, 6).text()
    assert panel.rows[0].study.source == "received from STORESCU"
    win.close()
    from PySide6.QtCore import QTimer

    for timer in win.findChildren(QTimer):
        timer.stop()
