"""The study browser's "Export de-identified..." in a real window (offscreen): the menu on a study, the dialog,
the export running off the UI thread with its progress dialog, Cancel, and the outcome shown. Screenshots of
the dialog and the outcome are kept for the README."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from deid.conftest import SECRET, open_session
from workstation.core.roles import Role

pytestmark = pytest.mark.ui
SHOTS = Path(__file__).resolve().parents[2] / "resources" / "screenshots"


@pytest.fixture
def window(qtbot, corpus, tmp_path):
    from workstation.ui.main_window import MainWindow

    session = open_session(tmp_path, Role.REVIEWER)
    session.start()
    win = MainWindow(config=session.config, session=session)
    qtbot.addWidget(win)
    win.resize(1200, 760)
    win.show()
    with qtbot.waitSignal(win.seriesLoaded, timeout=30_000):
        win.open_paths([str(corpus.folder)])
    yield win
    win.close()


def _series_item(win):
    return win.browser._items[win.catalog.display_sets[0].key]


def test_context_menu_exports_the_study_off_the_ui_thread(qtbot, window, tmp_path, corpus):
    from workstation.services.export import Destination
    from workstation.ui.export_controller import ACTION_TEXT, ExportDialog

    controller = window.export
    item = _series_item(window)
    menu = controller.menu_for(item)
    (action,) = menu.actions()
    assert action.text() == ACTION_TEXT and action.isEnabled()
    studies = controller.studies_of(item.parent())  # the study row: all its series
    assert len(studies) == 1
    # the study browser with the menu open on the study row, drawn into one picture for the README
    from PySide6.QtGui import QPainter

    browser = window.browser
    browser.setCurrentItem(item.parent())
    rect = browser.visualItemRect(item.parent())
    menu.popup(browser.viewport().mapToGlobal(rect.center()))
    qtbot.waitUntil(menu.isVisible)
    picture = window.grab()
    painter = QPainter(picture)
    painter.drawPixmap(browser.viewport().mapTo(window, rect.center()), menu.grab())
    painter.end()
    SHOTS.mkdir(parents=True, exist_ok=True)
    picture.save(str(SHOTS / "export-menu.png"))
    menu.close()
    dialog = ExportDialog(1, [], ["retain_modified_dates", "clean_pixel_data"], window)
    dialog.path.setText(str(tmp_path / "research"))
    assert dialog.destination() == Destination("folder", str(tmp_path / "research"))
    dialog.path.setText("/srv/research/hard-cases-2026-12")  # as a user would see it
    dialog.show()
    SHOTS.mkdir(parents=True, exist_ok=True)
    dialog.grab().save(str(SHOTS / "export-dialog.png"))
    dialog.close()

    gate = threading.Event()
    controller.secret = lambda: (gate.wait(20), SECRET)[1]  # holds the worker until the test has looked
    controller.start(studies, Destination("folder", str(tmp_path / "research")))
    assert controller.dialog is not None and controller.dialog.isVisible()
    assert not controller.menu_for(item).actions()[0].isEnabled()  # one export at a time
    with qtbot.waitSignal(controller.finished, timeout=60_000):
        gate.set()
    report = controller.last
    assert report.exit_code == 0 and report.written == 7  # the SR beside the images went too
    assert len(list((tmp_path / "research").rglob("*.dcm"))) == 7
    assert controller.dialog is None and controller.box.isVisible()
    assert controller.box.text().startswith("Exported 7 object(s) de-identified to folder")
    controller.box.grab().save(str(SHOTS / "export-done.png"))
    controller.box.close()

    # the way a user goes: the menu action opens the dialog (modal), they choose a zip and press Export
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def fill_in():
        dialog = QApplication.activeModalWidget()
        dialog.zip.setChecked(True)
        dialog.path.setText(str(tmp_path / "research.zip"))
        dialog.accept()

    gate.clear()
    QTimer.singleShot(200, fill_in)
    with qtbot.waitSignal(controller.finished, timeout=60_000):
        controller.menu_for(item.parent()).actions()[0].trigger()  # returns once the dialog is accepted
        gate.set()
    assert controller.last.exit_code == 0 and (tmp_path / "research.zip").is_file()
    controller.box.close()


def test_cancel_in_the_progress_dialog_writes_nothing(qtbot, window, tmp_path):
    from workstation.services.export import Destination

    controller = window.export
    gate = threading.Event()
    controller.secret = lambda: (gate.wait(20), SECRET)[1]
    controller.start(controller.studies_of(_series_item(window)), Destination("zip", str(tmp_path / "x.zip")))
    from PySide6.QtWidgets import QPushButton

    controller.dialog.findChild(QPushButton).click()  # the dialog's Cancel button, as the user clicks it
    with qtbot.waitSignal(controller.finished, timeout=60_000):
        gate.set()
    assert controller.last.cancelled and not (tmp_path / "x.zip").exists()
    assert controller.box.text() == "Export cancelled: nothing was written"
    controller.box.close()
