"""Shared pieces of the results tests: canned findings and heatmap on the demo CT, a reviewed run, validators.

The model is not run (slow): the findings and heatmap are prepared, recorded
through the real store, and reviewed through the real review session, so the
sign-off entry has exactly the shape the viewer writes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from workstation.core.audit import AuditEvent
from workstation.core.findings import Finding, InferenceResult, ModelRef
from workstation.services.review import ReviewSession, SeriesKey
from workstation.store.database import Store, StoredRun

MODEL = ModelRef("nodule-detector", "1.0.0", "ab" * 32)
STARTED = "2026-11-23T10:00:00+00:00"
PIXELMED = "/usr/share/java/pixelmed.jar"
PIXELMED_COMMAND = ["java", "-Djdk.xml.xpathExprOpLimit=0", "-Djdk.xml.xpathExprGrpLimit=0",
                    "-Djdk.xml.xpathTotalOpLimit=0", "-cp", PIXELMED, "com.pixelmed.validate.DicomSRValidator"]


def canned_findings(display_set) -> list[Finding]:
    def finding(fid, label, score, frame, box):
        sop = display_set.frames[frame].instance.sop_instance_uid
        return Finding(fid, label, score, frame, tuple(float(v) for v in box), ((0.0, 0.0, 0.0), (30.0, 30.0, 0.0)),
                       (15.0, 15.0, 0.0), (max(frame - 1, 0), frame + 1), sop)

    return [
        finding("f-a", "nodule", 0.93, 8, (40.25, 30.5, 60.75, 50.0)),
        finding("f-b", "nodule", 0.71, 8, (70, 60, 85, 75)),
        finding("f-c", "mass", 0.55, 4, (20, 70, 45, 95)),
        finding("f-d", "nodule", 0.31, 12, (90, 20, 104, 34)),
    ]


def canned_heatmap(shape: tuple[int, int, int]) -> np.ndarray:
    """Distinct values per frame (a frame sorted into the wrong place would show), a bright spot per finding."""
    frames, rows, columns = shape
    heat = np.zeros(shape, np.uint8)
    for k in range(frames):
        heat[k, :4, :4] = 10 + k
    heat[7:10, 30:50, 40:60] = 237
    heat[4, 70:95, 20:45] = 140
    return heat


def headers(display_set) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(frame.instance.location.path, stop_before_pixels=True) for frame in display_set.frames]


def record_run(store: Store, display_set, heat: bool = True) -> StoredRun:
    series = display_set.series
    shape = (len(display_set.frames), display_set.first.pixel.rows, display_set.first.pixel.columns)
    result = InferenceResult(MODEL, "cpu", series.study.study_instance_uid, series.series_instance_uid,
                             canned_findings(display_set), canned_heatmap(shape) if heat else None, 1.0, STARTED)
    store.record_inference(result, AuditEvent("inference.run", STARTED, {}))
    return store.inference_runs(series.series_instance_uid)[0]


def review_run(store: Store, display_set, run: StoredRun, sign: bool = True) -> ReviewSession:
    """A reviewer's decisions covering every state: accepted, rejected after a box edit, edited (relabelled),
    deleted, and a finding they added; then the sign-off."""
    review = ReviewSession(store, SeriesKey.of(display_set), run.model, run.findings)
    review.accept("f-a", comment="solid")
    review.edit_box("f-b", (72, 61, 88, 77))
    review.reject("f-b", comment="vessel")
    review.relabel("f-c", "nodule")
    review.delete("f-d")
    review.add(10, (90, 90, 101, 102), "nodule")
    if sign:
        review.sign_off()
    return review


def tool(name: str) -> str:
    """The validator's path; a missing one fails the test (CI installs dicom3tools, dcmtk, libpixelmed-java)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install dicom3tools dcmtk libpixelmed-java default-jre-headless")
    return path


def run_tool(command: list[str], timeout: float = 300) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    return done.stdout + done.stderr


def pixelmed(path) -> str:
    tool("java")
    if not Path(PIXELMED).exists():
        pytest.fail(f"{PIXELMED} is missing: apt-get install libpixelmed-java")
    return run_tool([*PIXELMED_COMMAND, str(path)])
