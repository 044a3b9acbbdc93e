"""A stored run's result objects for tests: canned findings on a demo study, a heatmap, a sign-off."""

from __future__ import annotations

import numpy as np
import pydicom

from workstation.core.findings import Finding, ModelRef
from workstation.dicom.scan import scan_paths
from workstation.results import ReviewContext, RunContext

MODEL = ModelRef("nodule-detector", "1.1.0", "ab" * 32)


def run_context(study) -> RunContext:
    display_set = scan_paths([str(study.directory)]).display_sets[0]
    sources = [pydicom.dcmread(f.instance.location.path, stop_before_pixels=True) for f in display_set.frames]
    sops = [str(s.SOPInstanceUID) for s in sources]
    findings = [Finding("f1", "nodule", 0.82, 6, (20.0, 30.0, 32.0, 41.0), ((0, 0, 0), (1, 1, 1)), (0, 0, 0), (5, 7), sops[6]),
                Finding("f2", "nodule", 0.35, 10, (50.0, 50.0, 60.0, 58.0), ((0, 0, 0), (1, 1, 1)), (0, 0, 0), (10, 10), sops[10])]
    rows, cols = int(sources[0].Rows), int(sources[0].Columns)
    heat = np.zeros((len(sources), rows, cols), np.uint8)
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
