"""What we write reads back the same: boxes (within 0.5 px), labels, scores, verdicts, tracking UIDs, heatmap;
building again gives the same content keys and the same content apart from instance UIDs and times."""

from __future__ import annotations

from dataclasses import replace
from io import BytesIO

import numpy as np
import pydicom
import pytest
from results_helpers import MODEL, canned_heatmap

from workstation.results import build_results, read_results, tracking_uid
from workstation.results.context import local_time

SHOWN = {"accepted", "edited", "added"}


@pytest.fixture(scope="module")
def read_back(written, sources):
    results, problems = read_results([pydicom.dcmread(p) for p in written.values()] + sources)
    assert problems == []
    return {r.kind: r for r in results}


def by_uid(findings):
    return {f.tracking_uid: f for f in findings}


def close(a, b, tolerance=0.5):
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


def test_ai_sr_gives_back_every_finding_with_box_label_score_and_tracking_uid(read_back, contexts):
    run, _ = contexts
    ai = read_back["sr"]
    assert ai.source == "nodule-detector 1.0.0" and ai.study_instance_uid == str(run.sources[0].StudyInstanceUID)
    assert ai.referenced_series_uids == (str(run.sources[0].SeriesInstanceUID),)
    findings = by_uid(ai.findings)
    assert len(findings) == len(run.findings)  # one finding per tracking UID, though written as 2-D + 3-D groups
    for number, f in enumerate(sorted(run.findings, key=lambda f: -f.score), start=1):
        back = findings[tracking_uid(str(run.sources[0].SeriesInstanceUID), MODEL.name, f.finding_id)]
        assert close(back.box_px, f.box_px), (back.box_px, f.box_px)
        assert (back.label, back.sop_instance_uid, back.tracking_id, back.state) == (f.label, f.sop_instance_uid,
                                                                                    f"finding #{number}", "")
        assert back.score == pytest.approx(f.score, abs=1e-6)


def test_review_sr_gives_back_every_verdict_rejected_and_deleted_included(read_back, contexts):
    run, review = contexts
    reviewed = read_back["review-sr"]
    assert reviewed.source == "bob, review of nodule-detector 1.0.0" and reviewed.verified_by == "bob"
    assert reviewed.verified_at.startswith(local_time(review.signed_at_utc).strftime("%Y%m%d%H%M%S"))  # local time
    findings = by_uid(reviewed.findings)
    series = str(run.sources[0].SeriesInstanceUID)
    assert len(findings) == len(review.final_states) == 5
    for state in review.final_states:
        back = findings[tracking_uid(series, MODEL.name, state["finding_id"])]
        assert back.state == state["state"] and back.label == state["label"]
        assert close(back.box_px, state["geometry"]["box_px"])
        assert (back.box_edited, back.relabelled) == (state["box_edited"], state["relabelled"])
        assert back.score == (None if state["score"] is None else pytest.approx(state["score"]))
    assert sorted(f.state for f in findings.values()) == ["accepted", "added", "deleted", "edited", "rejected"]
    # the same finding has the same tracking UID in the AI SR and the review SR
    assert set(by_uid(read_back["sr"].findings)) < set(findings)


def test_gsps_draws_only_what_the_reader_kept_with_short_labels(read_back, contexts):
    run, review = contexts
    gsps = read_back["gsps"]
    kept = {s["finding_id"]: s for s in review.final_states if s["state"] in SHOWN}
    series = str(run.sources[0].SeriesInstanceUID)
    lines = [g for g in gsps.graphics if g.points_px]
    texts = [g for g in gsps.graphics if g.text]
    assert len(lines) == len(texts) == len(kept) == 3
    for fid, state in kept.items():
        uid = tracking_uid(series, MODEL.name, fid)
        (line,) = [g for g in lines if g.tracking_uid == uid]
        (text,) = [g for g in texts if g.tracking_uid == uid]
        assert line.points_px[0] == line.points_px[-1] and len(line.points_px) == 5  # closed
        box = state["geometry"]["box_px"]
        xs, ys = [p[0] for p in line.points_px], [p[1] for p in line.points_px]
        assert close((min(xs), min(ys), max(xs), max(ys)), box)
        assert text.text == f"#{state['number']} {state['label']}" and line.layer == state["state"].upper()
        assert line.sop_instance_uid == (state["geometry"]["sop_instance_uid"]
                                         or str(run.sources[state["geometry"]["frame_index"]].SOPInstanceUID))


def test_gsps_without_review_draws_every_ai_box_with_its_score(contexts):
    run, _ = contexts
    (gsps,) = [b for b in build_results(run) if b.kind == "gsps"]
    (back,), problems = read_results([gsps.dataset])
    assert problems == []
    assert sorted(g.text for g in back.graphics if g.text) == ["#1 nodule 0.93", "#2 nodule 0.71", "#3 mass 0.55",
                                                               "#4 nodule 0.31"]
    assert {g.layer for g in back.graphics} == {"AI"}


def test_heatmap_reads_back_as_probability_aligned_by_source_image(read_back, contexts):
    run, _ = contexts
    heat = read_back["pmap"].heatmap
    assert heat.values.dtype == np.float32 and heat.unit == "no units"
    order = [heat.sop_instance_uids.index(str(ds.SOPInstanceUID)) for ds in run.sources]
    aligned = heat.values[order]
    assert np.abs(aligned - run.heatmap / 255.0).max() <= 0.5 / 255  # within quantisation
    np.testing.assert_array_equal(np.rint(aligned * 255).astype(np.uint8), run.heatmap)
    positions = [heat.positions_mm[i] for i in order]
    assert positions == [tuple(float(v) for v in ds.ImagePositionPatient) for ds in run.sources]


def test_building_again_gives_the_same_keys_and_content_apart_from_uids_and_times(contexts, built):
    again = build_results(*contexts)
    assert [(b.kind, b.content_key) for b in again] == [(b.kind, b.content_key) for b in built]
    for first, second in zip(built, again):
        assert first.dataset.SOPInstanceUID != second.dataset.SOPInstanceUID
        assert first.dataset.SeriesInstanceUID == second.dataset.SeriesInstanceUID  # one series per kind
        assert normalised(first.dataset) == normalised(second.dataset), first.kind


def test_content_keys_follow_the_review_state(contexts, built):
    run, review = contexts
    keys = {b.kind: b.content_key for b in built}
    unsigned = {b.kind: b.content_key for b in build_results(run)}
    assert unsigned["ai-sr"] == keys["ai-sr"] and unsigned["pmap"] == keys["pmap"]
    assert unsigned["gsps"] != keys["gsps"] and "review-sr" not in unsigned
    states = [dict(s, state="rejected") if s["state"] == "accepted" else s for s in review.final_states]
    changed = {b.kind: b.content_key for b in build_results(run, replace(review, final_states=states))}
    assert changed["review-sr"] != keys["review-sr"] and changed["gsps"] != keys["gsps"]
    other_heat = canned_heatmap(run.heatmap.shape)
    other_heat[0, 0, 0] += 1
    assert {b.kind: b.content_key for b in build_results(replace(run, heatmap=other_heat))}["pmap"] != keys["pmap"]


def test_objects_carry_the_study_patient_new_series_and_our_names(built, sources):
    source = sources[0]
    for b in built:
        ds = b.dataset
        assert (ds.StudyInstanceUID, ds.PatientID, ds.PatientName) == (source.StudyInstanceUID, source.PatientID,
                                                                       source.PatientName)
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID and ds.SOPInstanceUID != source.SOPInstanceUID
        assert ds.Manufacturer == "Radiology AI Workstation" and "nodule-detector 1.0.0" in ds.SeriesDescription
    assert len({b.dataset.SeriesInstanceUID for b in built}) == 4


# everything that may differ between two builds of the same content: instance UIDs and creation times
_VOLATILE = {"00080012", "00080013", "00080018", "00020003", "0018A002", "00700082", "00700083", "00209164"}


def normalised(ds: pydicom.Dataset):
    """The dataset as written to a file and read again (so VRs are settled), without the volatile elements."""
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return _strip(pydicom.dcmread(buffer).to_json_dict(bulk_data_threshold=1 << 40))


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def test_sources_sharing_one_sop_instance_uid_are_refused():
    """A series with a duplicated SOP Instance UID (kept apart in the viewer) cannot be referenced by a result."""
    import pydicom
    from pydicom.data import get_testdata_file

    from workstation.core.findings import ModelRef
    from workstation.results import ContextError, RunContext, build_results

    one = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    two = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    run = RunContext([one, two], ModelRef("m", "1", "ab" * 32), "cpu", "2026-12-04T10:00:00+00:00", "r", [], None, "ws")
    with pytest.raises(ContextError, match="share one SOP Instance UID"):
        build_results(run)
