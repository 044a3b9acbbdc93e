"""Result objects stored beside a study (our SR / review SR / GSPS / Parametric Map, written by the builders) are
found by the scan and shown over the series they refer to: boxes on the right frames, verdicts, the heatmap;
a damaged one is a problem, and the study still opens."""

from __future__ import annotations

import pytest

from results_data import review_context, run_context, write
from workstation.core.review import State
from workstation.demo import write_demo_study
from workstation.dicom.scan import scan_paths
from workstation.results import build_results
from workstation.services.results_reading import read_for_series


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_demo_study(tmp_path_factory.mktemp("results-view"), seed=4, slices=16, size=96)



def test_our_objects_beside_the_study_show_boxes_verdicts_and_heatmap(study, tmp_path):
    run = run_context(study)
    write(build_results(run, review_context(run)), study.directory / "results")
    catalog = scan_paths([str(study.directory)])
    assert len(catalog.display_sets) == 1 and catalog.problems == []  # the objects are neither images nor problems
    assert sorted(r.kind for r in catalog.results) == ["gsps", "pmap", "sr", "sr"]
    shown, problems = read_for_series(catalog, catalog.display_sets[0])
    assert problems == []
    by_frame = {f.frame_index: f for f in shown.result.findings}
    assert set(by_frame) == {6, 10}
    assert by_frame[6].box_px == pytest.approx((20.0, 30.0, 32.0, 41.0), abs=0.5)
    assert {s.geometry.frame_index: s.state for s in shown.states} == {
        6: State.ACCEPTED, 10: State.REJECTED}
    assert shown.source == "review SR, verified by carol 2026-12-04 10:06; heatmap from the parametric map"
    assert shown.has_heatmap and shown.result.heatmap[6, 35, 25] > 150 and shown.result.heatmap[0].max() == 0


def test_a_damaged_result_object_is_a_problem_and_the_series_still_opens(study, tmp_path):
    run = run_context(study)
    folder = tmp_path / "copy"
    import shutil
    shutil.copytree(study.directory, folder, ignore=shutil.ignore_patterns("results"))
    (sr,) = [b for b in build_results(run) if b.kind == "ai-sr"]
    del sr.dataset.ContentSequence[0].ConceptNameCodeSequence  # "another vendor's" SR, broken inside
    write([sr], folder / "results")
    catalog = scan_paths([str(folder)])
    assert len(catalog.display_sets) == 1 and len(catalog.results) == 1
    shown, problems = read_for_series(catalog, catalog.display_sets[0])
    assert shown is None and len(problems) == 1 and "not shown" in problems[0].reason


def test_the_newest_review_sr_wins_whatever_the_file_order(study):
    from dataclasses import replace

    from results_data import review_context, run_context
    from workstation.results import build_results, read_results
    from workstation.services.results_reading import to_display

    run = run_context(study)
    old_review = review_context(run)
    new_states = [dict(s, state="rejected" if s["finding_id"] == "f1" else s["state"]) for s in old_review.final_states]
    new_review = replace(old_review, signed_at_utc="2026-12-04T12:00:00+00:00", signoff_entry_id="signoff-2",
                         final_states=new_states)
    old_sr = next(b.dataset for b in build_results(run, old_review) if b.kind == "review-sr")
    new_sr = next(b.dataset for b in build_results(run, new_review) if b.kind == "review-sr")
    display_set = scan_paths([str(study.directory)]).display_sets[0]
    for order in ([old_sr, new_sr], [new_sr, old_sr]):
        found, _ = read_results(order)
        shown = to_display(found, display_set)
        assert {s.geometry.frame_index: s.state for s in shown.states}[6] == State.REJECTED
