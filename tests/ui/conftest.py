"""Fixtures for the Qt tests (offscreen)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

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
