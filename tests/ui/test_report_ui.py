"""The Report dock in a real window: a sign-off drafts the report, the radiologist edits, saves and sends it to a
real MLLP listener; the deliveries table shows the ACK. A screenshot is kept for the README."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt
from review_helpers import CannedInference, open_window, run_canned_model, site_config

from workstation.core.delivery import DeliverySettings, RisSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))
from peers import MllpListener  # noqa: E402

SCREENSHOT = Path(__file__).resolve().parents[2] / "resources" / "screenshots" / "report-draft.png"
CTRL = Qt.KeyboardModifier.ControlModifier


def test_sign_off_drafts_the_report_and_send_delivers_it(qtbot, small_study, start_session):
    with MllpListener("AA") as ris:
        session = start_session("carol", "radiologist")
        config = replace(site_config("carol", "radiologist"),
                         delivery=DeliverySettings(ris=RisSettings("127.0.0.1", ris.port, timeout_s=5.0)))
        win = open_window(qtbot, small_study.directory, session, CannedInference(), config=config)
        run_canned_model(qtbot, win)
        panel = win.report.panel
        assert not panel.send_button.isEnabled()  # nothing signed off yet
        for key in (Qt.Key.Key_A, Qt.Key.Key_R, Qt.Key.Key_A):
            if win.ai_panel.findings.selected_id() is None:
                qtbot.keyClick(win.viewer, Qt.Key.Key_N)
            qtbot.keyClick(win.viewer, key)
        qtbot.keyClick(win.viewer, Qt.Key.Key_Return, CTRL)  # sign off: the draft follows by itself
        qtbot.waitUntil(lambda: "FINDINGS" in panel.editor.toPlainText(), timeout=20_000)
        text = panel.editor.toPlainText()
        assert text.count("\n1. ") + text.count("\n2. ") + text.count("\n3. ") == 2  # the rejected one is left out
        assert "estimated from the AI heatmap" in text and panel.status.text().startswith("Draft by carol")
        panel.editor.setPlainText(text.replace("[impression: to be completed by the radiologist]",
                                               "Two small nodules; follow-up CT in 12 months."))
        assert panel.save_button.isEnabled()
        panel.save_button.click()
        qtbot.waitUntil(lambda: panel.status.text().startswith("Edited draft by carol"), timeout=10_000)
        win.report.show()
        win.resize(1500, 950)
        panel.send_button.click()
        qtbot.waitUntil(lambda: panel.deliveries.rowCount() == 1 and panel.deliveries.item(0, 2).text() == "delivered",
                        timeout=20_000)
        assert panel.status.text().startswith("Final report by carol")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        win.grab().save(str(SCREENSHOT))
    [message] = ris.received
    assert str(message.segment("MSH")[10]) == panel.deliveries.item(0, 4).text()
    assert any("follow-up CT in 12 months" in str(s) for s in message if str(s[0]) == "OBX")
    kinds = [e.kind for e in session.store.audit_entries() if e.kind.startswith("report.")]
    assert kinds == ["report.draft", "report.edit", "report.final", "report.send"]
    win.close()
