"""Result objects stored beside a study (our SR / review SR / GSPS / Parametric Map, written by the builders) are
found by the scan and shown over the series they refer to: boxes on the right frames, verdicts, the heatmap;
a damaged one is a problem, and the study still opens."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from workstation.core.findings import Finding, ModelRef
from workstation.core.review import State
from workstation.demo import write_demo_study
from workstation.dicom.scan import scan_paths
from workstation.results import ReviewContext, RunContext, build_results
from workstation.services.results_reading import read_for_series

MODEL = ModelRef("nodule-detector", "1.1.0", "ab" * 32)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_demo_study(tmp_path_factory.mktemp("results-view"), seed=4, slices=16, size=96)


def run_context(study) -> RunContext:
    display_set = scan_paths([str(study.directory)]).display_sets[0]
    sources = [pydicom.dcmread(f.instance.location.path, stop_before_pixels=True) for f in display_set.frames]
    sops = [str(s.SOPInstanceUID) for s in sources]
    findings = [Finding("f1", "nodule", 0.82, 6, (20.0, 30.0, 32.0, 41.0), ((0, 0, 0), (1, 1, 1)), (0, 0, 0), (5, 7), sops[6]),
                Finding("f2", "nodule", 0.35, 10, (50.0, 50.0, 60.0, 58.0), ((0, 0, 0), (1, 1, 1)), (0, 0, 0), (10, 10), sops[10])]
    heat = np.zeros((len(sources), 96, 96), np.uint8)
    heat[5:8, 30:41, 20:32] = 200
    return RunContext(sources, MODEL, "cpu", "2026-12-04T10:00:00+00:00", "run-1", findings, heat, "ws-test")


def review_context(run: RunContext) -> ReviewContext:
    states = []
    for number, (finding, state) in enumerate(zip(run.findings, ("accepted", "rejected")), start=1):
        states.append({"finding_id": finding.finding_id, "number": number, "label": "nodule", "state": state,
                       "score": finding.score, "box_edited": False, "relabelled": False,
                       "geometry": {"frame_index": finding.frame_index, "box_px": list(finding.box_px),
                                    "sop_instance_uid": finding.sop_instance_uid},
                       "by": "carol", "role": "radiologist", "at_utc": "2026-12-04T10:05:00+00:00"})
    return ReviewContext("carol", "radiologist", "2026-12-04T10:06:00+00:00", "signoff-1", states)


def write(objects, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for built in objects:
        built.dataset.save_as(folder / f"{built.kind}.dcm", enforce_file_format=True)


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
    assert "verified by carol" in shown.source and "nodule-detector" in shown.source
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
