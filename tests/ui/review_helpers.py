"""Shared pieces of the review UI tests: a real encrypted store per test, canned findings, mouse drags.

The model is not run here (slow): `CannedInference` returns prepared findings
through the real run path (worker thread, run_recorded -> store, result -> window).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from workstation.core.audit import AuditEvent
from workstation.core.findings import Finding, InferenceResult, ModelRef
from workstation.core.site import SiteConfig, UserSettings
from workstation.core.tasks import no_progress
from workstation.services.inference import InferenceService

LOGIN_VARIABLE = "WS_TEST_LOGIN"
MODEL = ModelRef("test-detector", "2.0.0", "cd" * 32)  # not installed: labels come from the findings
MODEL_REF = str(MODEL)


def site_config(login: str, role: str) -> SiteConfig:
    return SiteConfig(users=UserSettings(roles={login: role}, login_variable=LOGIN_VARIABLE), workstation_id="ws-test")


def canned_findings(display_set) -> list[Finding]:
    def finding(fid, label, score, frame, box, frames):
        sop = display_set.frames[frame].instance.sop_instance_uid
        return Finding(fid, label, score, frame, tuple(float(v) for v in box), ((0.0, 0.0, 0.0), (30.0, 30.0, 0.0)),
                       (15.0, 15.0, 0.0), frames, sop)

    return [
        finding("f-a", "nodule", 0.93, 20, (100, 60, 130, 90), (18, 22)),
        finding("f-b", "nodule", 0.71, 20, (150, 120, 175, 145), (19, 21)),
        finding("f-c", "mass", 0.55, 12, (60, 150, 90, 180), (12, 12)),
    ]


def canned_result(display_set, shape: tuple[int, int, int]) -> InferenceResult:
    heat = np.zeros(shape, np.uint8)
    heat[18:23, 60:90, 100:130] = 220
    return InferenceResult(MODEL, "cpu", display_set.series.study.study_instance_uid,
                           display_set.series.series_instance_uid, canned_findings(display_set), heat, 0.1,
                           "2026-11-23T10:00:00+00:00")


class CannedInference(InferenceService):
    """The real service (manifests, cache lookups, run_recorded) but `run` returns prepared findings."""

    def run(self, display_set, volume, spec=None, cancel=None, progress=no_progress) -> InferenceResult:
        result = canned_result(display_set, volume.array.shape[:3])
        self.run_recorded.emit(result, AuditEvent("inference.run", result.started_utc, {
            "series_instance_uid": result.series_instance_uid, "model": MODEL.name, "version": MODEL.version,
            "findings": len(result.findings)}))
        return result


def open_window(qtbot, study_dir, session, inference=None, review_problem: str = "", config=None):
    from workstation.ui.main_window import MainWindow

    win = MainWindow(session=session, review_problem=review_problem, inference=inference or InferenceService(),
                     config=config)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=5000)
    with qtbot.waitSignal(win.seriesLoaded, timeout=30_000):
        win.open_paths([str(study_dir)])
    return win


def run_canned_model(qtbot, win) -> InferenceResult:
    with qtbot.waitSignal(win.inferenceFinished, timeout=10_000) as blocker:
        win.run_model(MODEL_REF)
    return blocker.args[0]


def view_pos(viewer, scene_point: QPointF) -> QPoint:
    return viewer.view.mapFromScene(scene_point)


def mouse(widget, kind, pos, button, buttons) -> None:
    event = QMouseEvent(kind, QPointF(pos), widget.mapToGlobal(QPointF(pos)), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def drag(qtbot, widget, start: QPoint, delta: QPoint) -> None:
    """Left press, move in ten steps (pyqtgraph drops moves closer than 10 ms), release."""
    left = Qt.MouseButton.LeftButton
    mouse(widget, QMouseEvent.Type.MouseButtonPress, start, left, left)
    for step in range(1, 11):
        mouse(widget, QMouseEvent.Type.MouseMove, start + delta * step / 10, Qt.MouseButton.NoButton, left)
        qtbot.wait(12)
    mouse(widget, QMouseEvent.Type.MouseButtonRelease, start + delta, left, Qt.MouseButton.NoButton)
