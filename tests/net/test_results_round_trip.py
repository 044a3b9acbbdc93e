"""Round trip through a real Orthanc: our objects are sent by C-STORE from the queue, found by C-FIND at series
level, brought back by C-GET and by C-MOVE into the cache, and the scan + reader give back the same boxes,
verdicts and heatmap."""

from __future__ import annotations

import pytest
from keyrings.alt.file import PlaintextKeyring

from netpeers.site import node_settings
from results_data import review_context, run_context
from workstation.core.review import State
from workstation.core.roles import Role, User
from workstation.core.site import parse_site_config
from workstation.dicom.scan import scan_paths
from workstation.results import build_results
from workstation.services.results_reading import read_for_series
from workstation.services.results_send import ResultsOutbox
from workstation.store.database import Identity, Store


@pytest.fixture
def orthanc_with_results(orthanc, net_demo_study, ws_ae, tmp_path):
    orthanc.upload(net_demo_study.files)
    run = run_context(net_demo_study)
    objects = build_results(run, review_context(run))
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "kr.cfg")
    config = parse_site_config({"workstation": {"ae_title": ws_ae.aet}, "pacs": {"MAIN": node_settings(orthanc)},
                                "results": {"node": "MAIN"}})
    with Store.open(tmp_path / "s.sqlite", Identity(User("carol", Role.RADIOLOGIST), "ws"), backend) as store:
        outbox = ResultsOutbox(config, store)
        outbox.enqueue(objects, net_demo_study.study_instance_uid, str(run.sources[0].SeriesInstanceUID), run.run_id)
        assert outbox.send_pending().done
    return orthanc, run, objects


@pytest.mark.parametrize("method", ["get", "move"])
def test_results_come_back_from_the_pacs_and_show_the_same_boxes_verdicts_and_heatmap(
        pacs_factory, orthanc_with_results, net_demo_study, method):
    orthanc, run, objects = orthanc_with_results
    pacs = pacs_factory(MAIN=node_settings(orthanc))
    series = {s.series_instance_uid: s for s in pacs.find_series("MAIN", net_demo_study.study_instance_uid)}
    for built in objects:  # C-FIND at series level finds each object's own series
        assert str(built.dataset.SeriesInstanceUID) in series
    assert {series[str(b.dataset.SeriesInstanceUID)].modality for b in objects} == {"SR", "PR", "OT"}
    result = pacs.retrieve("MAIN", net_demo_study.study_instance_uid, method=method)
    assert result.ok and result.failed == 0 and result.received == 30 + len(objects), result
    catalog = scan_paths([pacs.study_dir(net_demo_study.study_instance_uid)])
    assert len(catalog.display_sets) == 1 and len(catalog.results) == len(objects)
    shown, problems = read_for_series(catalog, catalog.display_sets[0])
    assert problems == []
    boxes = {f.frame_index: f.box_px for f in shown.result.findings}
    for finding in run.findings:
        assert boxes[finding.frame_index] == pytest.approx(finding.box_px, abs=0.5)
    assert sorted(s.state for s in shown.states) == sorted([State.ACCEPTED, State.REJECTED])
    assert shown.has_heatmap and abs(int(shown.result.heatmap[6, 35, 25]) - int(run.heatmap[6, 35, 25])) <= 1


def test_the_window_shows_results_retrieved_with_the_study(qtbot, pacs_factory, orthanc_with_results, net_demo_study,
                                                           tmp_path):
    """Retrieved by C-GET into the cache, then opened as the query window opens it: boxes, verdicts, heatmap."""
    from workstation.core.review import State
    from workstation.ui.main_window import MainWindow
    from workstation.ui.review_style import BOX_COLOURS

    orthanc, run, _objects = orthanc_with_results
    pacs = pacs_factory(MAIN=node_settings(orthanc))
    assert pacs.retrieve("MAIN", net_demo_study.study_instance_uid, method="get").ok
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1300, 850)
    win.show()
    with qtbot.waitSignal(win.stored_results.shown, timeout=30_000) as shown:
        win.library.add_files(sorted(str(p) for p in pacs.study_dir(net_demo_study.study_instance_uid).glob("*.dcm")))
    assert shown.args[0] is not None
    panel = win.ai_panel.findings
    assert sorted(panel.topLevelItem(i).text(4) for i in range(panel.topLevelItemCount())) == ["accepted", "rejected"]
    win.viewer.show_frame(run.findings[0].frame_index)
    assert win.viewer.heat_item.isVisible()
    assert BOX_COLOURS[State.ACCEPTED] in [b.pen().color() for b in win.viewer.box_items()]
    qtbot.wait(100)  # let the layout settle before the picture
    win.grab().save(str(tmp_path / "retrieved-results.png"))  # resources/screenshots/results-retrieved.png
    win.close()
