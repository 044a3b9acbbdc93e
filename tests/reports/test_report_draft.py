"""The report draft of a signed-off review: only verified findings, measured on their images, versions audited."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut

from workstation.core.roles import PermissionDenied, Role
from workstation.core.site import parse_site_config
from workstation.reports.draft import IMPRESSION_PLACEHOLDER
from workstation.services.report_delivery import ReportError, ReportService
from workstation.services.review import ReviewSession, SeriesKey


def service(store) -> ReportService:
    return ReportService(parse_site_config({"ris": {"host": "127.0.0.1", "port": 2575}}), store)


def test_the_draft_holds_the_verified_findings_only(signed_store, catalog, display_set):
    version = service(signed_store).draft(display_set.series.study.study_instance_uid, catalog)
    findings = {f["number"]: f for f in version.structured["findings"]}
    states = {f["state"] for f in findings.values()}
    assert states == {"accepted", "edited", "added"}  # f-b rejected and f-d deleted are never reported
    assert len(findings) == 3
    assert "rejected" not in version.text and IMPRESSION_PLACEHOLDER in version.text
    added = next(f for f in findings.values() if f["state"] == "added")
    assert added["model"] == "" and "Added by reader" in version.text
    accepted = next(f for f in findings.values() if f["state"] == "accepted")
    assert accepted["model"] == "nodule-detector 1.0.0"


def test_sizes_side_and_hu_come_from_the_image_and_the_heatmap(signed_store, catalog, display_set):
    version = service(signed_store).draft(display_set.series.study.study_instance_uid, catalog)
    accepted = next(f for f in version.structured["findings"] if f["state"] == "accepted")
    ds = pydicom.dcmread(display_set.frames[8].instance.location.path)
    spacing = float(ds.PixelSpacing[1])
    # the canned heatmap marks rows 30-49, columns 40-59 of frame 8 inside the accepted box: a 20 x 20 pixel square
    assert accepted["diameter_source"] == "estimated from the AI heatmap"
    assert accepted["long_mm"] == pytest.approx(20 * spacing, abs=0.1)
    assert accepted["short_mm"] == pytest.approx(20 * spacing, abs=0.1)
    hu = apply_modality_lut(ds.pixel_array, ds).astype(float)
    assert accepted["mean_hu"] == pytest.approx(hu[30:50, 40:60].mean(), abs=0.1)
    x = float(ds.ImagePositionPatient[0]) + 49.5 * spacing  # centre column of the region, +x = patient's left
    assert accepted["center_mm"][0] == pytest.approx(x, abs=0.01)
    assert accepted["side"] == "right"  # left half of the image (columns 40-59 of 128) is the patient's right
    added = next(f for f in version.structured["findings"] if f["state"] == "added")
    assert added["side"] == "left" and added["diameter_source"] == "estimated from the box"  # no heat there
    assert added["long_mm"] == pytest.approx(np.ceil(12) * spacing, rel=0.15)


def test_versions_are_audited_without_the_text_and_a_reopen_stops_finalising(signed_store, catalog, display_set):
    reports = service(signed_store)
    study = display_set.series.study.study_instance_uid
    reports.draft(study, catalog)
    edited = reports.edit(study, "FINDINGS: one nodule.\nIMPRESSION: follow-up in 12 months.")
    final = reports.finalise(study)
    assert [v.kind for v in reports.reports.versions(study)] == ["draft", "edit", "final"]
    assert final.text == edited.text
    kinds = [e.kind for e in signed_store.audit_entries() if e.kind.startswith("report.")]
    assert kinds == ["report.draft", "report.edit", "report.final"]
    ds = pydicom.dcmread(display_set.frames[0].instance.location.path, stop_before_pixels=True)
    for entry in signed_store.audit_entries():
        recorded = f"{entry.details} {entry.outcome_text}"
        assert "follow-up" not in recorded and str(ds.PatientID) not in recorded
        assert str(ds.PatientName).split("^")[0] not in recorded
    run = signed_store.inference_runs(display_set.series.series_instance_uid)[0]
    review = ReviewSession(signed_store, SeriesKey.of(display_set), run.model, run.findings)
    review.reopen()
    with pytest.raises(ReportError, match="no signed-off review"):
        reports.edit(study, "changed after the reopen")


def test_no_draft_without_a_sign_off(tmp_path, catalog, display_set):
    from report_helpers import open_store
    from results_helpers import record_run, review_run

    with open_store(tmp_path) as store:
        run = record_run(store, display_set)
        review_run(store, display_set, run, sign=False)
        with pytest.raises(ReportError, match="sign off"):
            service(store).draft(display_set.series.study.study_instance_uid, catalog)


def test_a_role_without_the_decision_right_is_refused_and_recorded(tmp_path, catalog, display_set, signed_store):
    from report_helpers import open_store

    signed_store.close()
    with open_store(tmp_path, login="eve", role=None) as store:
        with pytest.raises(PermissionDenied):
            service(store).draft(display_set.series.study.study_instance_uid, catalog)
        assert store.last_entry("access.denied") is not None


def test_the_readers_diameter_measurement_replaces_the_estimate(signed_store, catalog, display_set):
    from workstation.core.measure_log import MeasureAction, Measurement, MeasurementEntry
    from workstation.store.database import now_utc
    from workstation.store.measurements import MeasurementStore

    series = display_set.series
    measured = Measurement("m-1", "diameter", 8, ((42, 40), (58, 40), (50, 33), (50, 47)),
                           display_set.frames[8].instance.sop_instance_uid, {"long": 11.2, "short": 9.8, "mean": 10.5},
                           "mm", "11.2 x 9.8 mm", finding_id="f-a")
    MeasurementStore(signed_store).record(MeasurementEntry(
        "e-1", MeasureAction.ADD, "m-1", series.study.study_instance_uid, series.series_instance_uid, "bob",
        "reviewer", "ws-reports", now_utc(), measured))
    version = service(signed_store).draft(series.study.study_instance_uid, catalog)
    accepted = next(f for f in version.structured["findings"] if f["state"] == "accepted")
    assert (accepted["long_mm"], accepted["short_mm"]) == (11.2, 9.8)
    assert accepted["diameter_source"] == "measured by the reader" and "measured by the reader" in version.text
    others = [f for f in version.structured["findings"] if f["state"] != "accepted"]
    assert all(f["diameter_source"].startswith("estimated") for f in others)
