"""The Query/Retrieve window against a real Orthanc: search, series, retrieve, the study opens as it arrives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from netpeers.site import node_settings

pytestmark = pytest.mark.ui


@pytest.fixture
def main_window(qtbot, pacs_factory, loaded_orthanc):
    from workstation.ui.main_window import MainWindow

    pacs = pacs_factory(MAIN=node_settings(loaded_orthanc), DCMTK=node_settings(loaded_orthanc, retrieve="get"))
    window = MainWindow(config=pacs.config)
    window.pacs = pacs  # the service under test, with its own cache
    qtbot.addWidget(window)
    window.resize(1300, 850)
    window.show()
    return window


def open_query(window):
    from workstation.ui.query_window import QueryRetrieveWindow

    window.query_window = QueryRetrieveWindow(window.pacs, window.library, window)
    window.query_window.show()
    return window.query_window


def test_search_expand_retrieve_and_view(qtbot, main_window, net_demo_study, tmp_path):
    query = open_query(main_window)
    assert [query.node_box.itemText(i) for i in range(query.node_box.count())] == ["DCMTK", "MAIN"]
    query.node_box.setCurrentText("MAIN")
    assert query.method_box.currentData() == "move"
    with qtbot.waitSignal(query.searchFinished, timeout=20_000):
        query.search()
    assert query.tree.topLevelItemCount() == 5
    query.fields["patient_name"].setText("DEMO*")
    with qtbot.waitSignal(query.searchFinished, timeout=20_000):
        qtbot.keyClick(query.fields["patient_name"], Qt.Key.Key_Return)
    assert query.tree.topLevelItemCount() == 1
    study = query.tree.topLevelItem(0)
    assert [study.text(i) for i in (0, 1, 2, 4, 7)] == ["DEMO, PHANTOM", "DEMO-0005", "2024-01-01", "CT", "30"]
    study.setExpanded(True)
    qtbot.waitUntil(lambda: study.childCount() == 1, timeout=20_000)
    assert study.child(0).text(3) == "Chest CT phantom 2.5 mm" and study.child(0).text(7) == "30"
    query.tree.setCurrentItem(study)
    study.setSelected(True)
    with qtbot.waitSignal(query.retrieveFinished, timeout=60_000) as finished:
        query.retrieve_button.click()
    result = finished.args[0]
    assert result.ok and result.received == 30
    assert query.progress.value() == 30 and query.progress.maximum() == 30
    assert "Retrieval complete: 30 instance(s) received (30 new)" in query.status.text()
    # the study reaches the viewer without the user opening anything
    qtbot.waitUntil(lambda: main_window.viewer.volume is not None and main_window.viewer.volume.frame_count == 30
                    and main_window.viewer.volume.fully_loaded, timeout=30_000)
    assert main_window.catalog.display_sets[0].series.series_instance_uid == net_demo_study.series_instance_uid
    shots = Path(os.environ.get("WS_SCREENSHOT_DIR", tmp_path))
    assert query.grab().save(str(shots / "query-retrieve.png"))
    assert main_window.grab().save(str(shots / "retrieved-study.png"))


def test_series_retrieve_by_get_with_cancel_available(qtbot, main_window, net_demo_study):
    query = open_query(main_window)
    query.node_box.setCurrentText("DCMTK")  # configured for C-GET
    assert query.method_box.currentData() == "get"
    with qtbot.waitSignal(query.searchFinished, timeout=20_000):
        query.fields["patient_id"].setText("DEMO-0005")
        query.search()
    study = query.tree.topLevelItem(0)
    study.setExpanded(True)
    qtbot.waitUntil(lambda: study.childCount() == 1, timeout=20_000)
    study.child(0).setSelected(True)
    with qtbot.waitSignal(query.retrieveFinished, timeout=60_000) as finished:
        query.retrieve_button.click()
        assert query.cancel_button.isEnabled() and not query.retrieve_button.isEnabled()
    assert finished.args[0].ok and finished.args[0].received == 30
    assert not query.cancel_button.isEnabled() and query.retrieve_button.isEnabled()


def test_failures_are_shown_not_raised(qtbot, main_window):
    query = open_query(main_window)
    query.fields["date_from"].setText("2024-01-01")
    query.search()
    assert "date_from must be YYYYMMDD" in query.status.text()
    query.fields["date_from"].setText("")
    query.retrieve_selected()
    assert "Select a study" in query.status.text()


def test_unreachable_node_is_reported_in_the_window(qtbot, pacs_factory):
    from workstation.ui.main_window import MainWindow
    from workstation.ui.query_window import QueryRetrieveWindow
    from netpeers.process import LOCALHOST, free_port

    pacs = pacs_factory(DOWN={"ae_title": "X", "host": LOCALHOST, "port": free_port(), "retries": 0, "timeout_s": 2})
    window = MainWindow(config=pacs.config)
    qtbot.addWidget(window)
    query = QueryRetrieveWindow(pacs, window.library, window)
    with qtbot.waitSignal(query.searchFinished, timeout=20_000):
        query.search()
    assert "cannot connect" in query.status.text() and query.search_button.isEnabled()


def test_menu_opens_the_window_only_with_nodes(qtbot):
    from workstation.core.site import SiteConfig
    from workstation.ui.main_window import MainWindow

    window = MainWindow(config=SiteConfig())
    qtbot.addWidget(window)
    assert window.open_query_window() is None
    assert "No PACS nodes configured" in window.status_label.text()
