"""A study opened with result objects beside it (SR + review SR + GSPS + Parametric Map) shows the stored findings
read-only, with their verdicts and the heatmap, in the real window; a damaged object goes to Problems."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from results_data import review_context, run_context, write
from workstation.core.review import State
from workstation.demo import write_demo_study
from workstation.results import build_results
from workstation.ui.review_style import BOX_COLOURS

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def study_with_results(tmp_path_factory):
    study = write_demo_study(tmp_path_factory.mktemp("stored-results"), seed=4, slices=16, size=96)
    run = run_context(study)
    write(build_results(run, review_context(run)), study.directory / "results")
    return study


def test_stored_results_are_shown_read_only_with_verdicts_and_heatmap(qtbot, study_with_results):
    from workstation.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1300, 850)
    win.show()
    with qtbot.waitSignal(win.stored_results.shown, timeout=30_000) as shown:
        win.open_paths([str(study_with_results.directory)])
    assert shown.args[0] is not None
    panel = win.ai_panel.findings
    rows = {panel.topLevelItem(i).text(4) for i in range(panel.topLevelItemCount())}
    assert rows == {"accepted", "rejected"}
    assert "Read-only" in win.ai_panel.review.note.text() and not win.ai_panel.review.accept_action.isEnabled()
    assert "verified by carol" in win.ai_panel.device_label.text()
    win.viewer.show_frame(6)
    assert win.viewer.heat_item.isVisible()
    pens = [b.pen().color() for b in win.viewer.box_items()]
    assert BOX_COLOURS[State.ACCEPTED] in pens
    assert win.problems.count() == 0
    win.grab().save(str(study_with_results.directory.parent / "stored-results.png"))
    win.close()
