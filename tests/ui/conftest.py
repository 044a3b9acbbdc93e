"""Fixtures for the Qt tests (offscreen)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from keyrings.alt.file import PlaintextKeyring  # noqa: E402

from workstation.demo import write_demo_study  # noqa: E402


@pytest.fixture(scope="session")
def small_study(tmp_path_factory):
    """A 40-slice 256x256 chest CT phantom, written once per session."""
    return write_demo_study(tmp_path_factory.mktemp("ui-study"), seed=3, slices=40, size=256)


@pytest.fixture
def window(qtbot, small_study):
    """The main window with the small study loaded completely."""
    from workstation.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    with qtbot.waitSignal(win.seriesLoaded, timeout=30_000):
        win.open_paths([str(small_study.directory)])
    return win


# ----- the review tests: a real encrypted store per test (file keyring under tmp_path)
from review_helpers import LOGIN_VARIABLE, CannedInference, open_window, run_canned_model, site_config  # noqa: E402

from workstation.ui.app import open_work_session  # noqa: E402

@pytest.fixture
def backend(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSTATION_DATA_DIR", str(tmp_path))
    keyring = PlaintextKeyring()
    keyring.file_path = str(tmp_path / "kr.cfg")
    return keyring


@pytest.fixture
def start_session(backend, monkeypatch):
    """Open (and start) a work session for a login with a role, the way the app does."""
    def start(login: str, role: str):
        monkeypatch.setenv(LOGIN_VARIABLE, login)
        session, problem = open_work_session(site_config(login, role), backend)
        assert session is not None, problem
        return session
    return start


@pytest.fixture
def reviewing(qtbot, small_study, start_session):
    """A window factory: the small study open, the canned model run, its findings under review."""
    def make(login: str = "bob", role: str = "reviewer"):
        session = start_session(login, role)
        win = open_window(qtbot, small_study.directory, session, CannedInference())
        run_canned_model(qtbot, win)
        return win, session
    return make
