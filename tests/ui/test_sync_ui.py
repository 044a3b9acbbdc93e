"""The sync line in the status bar and File > Sync now, with the real central server and a real store.

The worker's state crosses from its thread to the GUI thread as a queued Qt signal (ui/bridge.SyncSignals).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from keyrings.alt.file import PlaintextKeyring
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sync"))  # the sync tests' helpers
from netpeers.central import central, central_factory  # noqa: E402,F401 - fixtures
from sync_helpers import WS, assert_server_holds_exactly, populate, site_config  # noqa: E402

from workstation.core.site import ServerSettings  # noqa: E402
from workstation.services.sync import SyncClient  # noqa: E402
from workstation.ui.app import open_sync, open_work_session  # noqa: E402

pytestmark = pytest.mark.ui


@pytest.fixture
def backend(tmp_path):
    keyring = PlaintextKeyring()
    keyring.file_path = str(tmp_path / "kr.cfg")
    return keyring


@pytest.fixture
def window_for(qtbot, tmp_path, backend, monkeypatch):
    """window_for(url, entries=40, **server settings) -> (MainWindow, session): the app's own start-up path."""
    monkeypatch.setenv("USER", "rita")
    monkeypatch.setenv("LOGNAME", "rita")

    def make(url, entries: int = 40, **server):
        config = site_config(tmp_path / "store.sqlite", url, **server)
        session, problem = open_work_session(config, backend)
        assert session is not None, problem
        populate(session.store, entries, config)
        sync, sync_problem = open_sync(config, session, backend)
        from workstation.ui.main_window import MainWindow

        win = MainWindow(config=config, session=session, sync=sync, sync_problem=sync_problem)
        qtbot.addWidget(win)
        win.resize(1400, 900)
        win.show()
        return win, session

    return make


def enrol(server, backend) -> None:
    with SyncClient(ServerSettings(url=server.url), WS, backend) as client:
        client.enrol(server.issue_code(WS))


def text(win) -> str:
    return win.sync_status.text() if win.sync_status.isVisible() else ""


def test_no_server_configured_says_nothing_about_sync(window_for):
    win, _ = window_for(None)
    assert win.sync is None and not win.sync_status.isVisible() and not win.sync_now_action.isEnabled()


def test_not_enrolled_then_sync_now_after_enrolment(qtbot, window_for, central, backend):
    win, session = window_for(central.url)
    assert text(win) == "Sync: not enrolled" and not win.sync.alive
    assert "workstation enrol --code" in win.sync_status.toolTip()
    win.sync_now()  # still not enrolled: says so, starts nothing
    assert not win.sync.alive and "not enrolled" in win.statusBar().currentMessage()
    enrol(central, backend)
    threads = []
    win.sync_signals.stateChanged.connect(lambda _s: threads.append(QThread.currentThread()))
    win.sync_now_action.trigger()
    qtbot.waitUntil(lambda: text(win).startswith("Sync: up to date · last "), timeout=15_000)
    assert threads and all(t is QApplication.instance().thread() for t in threads)  # queued to the GUI thread
    assert_server_holds_exactly(central, session.store)
    worker = win.sync
    win.close()
    assert not worker.alive  # stopped on close, before the session ended


def test_unreachable_server_shows_the_error_and_the_retry_then_recovers(qtbot, window_for, central, backend):
    enrol(central, backend)
    central.stop()
    win, session = window_for(central.url, max_backoff_s=2.0)
    qtbot.waitUntil(lambda: "error: server unreachable, retry in" in text(win), timeout=15_000)
    shown = text(win)
    assert shown.startswith(f"Sync: {session.store.pending_count()} pending")
    assert "#b00020" in win.sync_status.styleSheet()
    assert "next attempt" in win.sync_status.toolTip()
    central.start()
    win.sync_now()
    qtbot.waitUntil(lambda: text(win).startswith("Sync: up to date"), timeout=15_000)
    assert win.sync_status.styleSheet() == ""
    assert_server_holds_exactly(central, session.store)


def test_a_rejected_token_is_shown_until_enrolled_again(qtbot, window_for, central, backend):
    enrol(central, backend)
    central.revoke(WS)
    win, session = window_for(central.url)
    qtbot.waitUntil(lambda: "stopped: token rejected: enrol again" in text(win), timeout=15_000)
    assert "retry" not in text(win) and not win.sync.state.running
    enrol(central, backend)
    win.sync_now()
    qtbot.waitUntil(lambda: text(win).startswith("Sync: up to date"), timeout=15_000)
    assert_server_holds_exactly(central, session.store)
