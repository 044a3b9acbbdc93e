"""The inference use case with the shipped model: refusals, findings in mm, cache, audit event, infer --json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from keyrings.alt.file import PlaintextKeyring

from workstation.core.roles import User
from workstation.core.tasks import CancelToken, Cancelled
from workstation.demo import write_demo_study
from workstation.dicom.scan import scan_paths
from workstation.inference.registry import ModelError, default_root
from workstation.services.inference import InferenceService
from workstation.services.loading import SeriesLoad
from workstation.store.database import Identity, Store


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A phantom the model never saw (seed outside training and validation ranges)."""
    return write_demo_study(tmp_path_factory.mktemp("infer"), seed=9123, slices=60, size=384)  # 0.93 mm pixels


@pytest.fixture(scope="module")
def loaded(study):
    (display_set,) = scan_paths([study.directory]).display_sets
    return display_set, SeriesLoad(display_set).run()


def test_findings_are_the_planted_nodules_in_mm(loaded, study):
    service = InferenceService()
    events = []
    service.run_recorded.connect(lambda result, event: events.append(event))
    display_set, volume = loaded
    result = service.run(display_set, volume)
    assert result.device == "cpu" and result.model.name == "nodule-detector"
    assert result.heatmap.shape == volume.array.shape and result.heatmap.dtype == np.uint8
    large = [n for n in study.phantom.nodules if n.diameter_mm >= 6]
    centres = np.array([f.center_mm for f in result.findings])
    for nodule in large:
        distance = np.linalg.norm(centres - np.array(nodule.center_mm), axis=1).min()
        assert distance <= max(nodule.diameter_mm / 2, 5.0), (nodule, result.findings)
    for finding in result.findings:
        (x0, y0, z0), (x1, y1, z1) = finding.box_mm
        c0, r0, c1, r1 = finding.box_px
        mm = study.phantom.pixel_spacing_mm
        assert abs(x1 - x0) == pytest.approx((c1 - c0) * mm, abs=1e-2)
        assert abs(y1 - y0) == pytest.approx((r1 - r0) * mm, abs=1e-2)
        assert z0 == z1 == pytest.approx(volume.index_to_patient(0, 0, finding.frame_index)[2])
        assert finding.sop_instance_uid == display_set.frames[finding.frame_index].instance.sop_instance_uid
    (event,) = events
    assert event.kind == "inference.run" and event.details["findings"] == len(result.findings)
    acquisition = result.acquisition  # for monitoring by scanner (issue 16): from the series' headers
    assert (acquisition.manufacturer, acquisition.manufacturer_model, acquisition.convolution_kernel) == (
        "Workstation Demo Phantom", "workstation.demo", "STANDARD")
    assert acquisition.slice_thickness_mm == pytest.approx(study.phantom.slice_thickness_mm)
    assert result.threshold == service.choose(display_set, None).threshold and result.calibrated
    assert event.details["sha256"] == result.model.sha256 and event.details["series_instance_uid"] == display_set.series.series_instance_uid
    assert service.run(display_set, volume) is result and len(events) == 1  # cached: instant, no second run


def test_cancel_stops_a_run(loaded):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        InferenceService().run(*loaded, cancel=token)


def test_wrong_modality_and_modified_weights_are_refused(loaded, tmp_path):
    display_set, volume = loaded
    mr = type(display_set.series)(**{**display_set.series.__dict__, "modality": "MR"})
    mr_set = type(display_set)(series=mr, frames=display_set.frames)
    with pytest.raises(ModelError, match="no installed model accepts MR"):
        InferenceService().run(mr_set, volume)
    with pytest.raises(ModelError, match="accepts CT images, not MR"):
        InferenceService().run(mr_set, volume, "nodule-detector")
    models = tmp_path / "models"
    shutil.copytree(default_root() / "nodule-detector", models / "nodule-detector")
    weights = models / "nodule-detector" / "1.1.0" / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit flipped
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="do not match their sha256"):
        InferenceService(models).run(display_set, volume)


def test_infer_json(study, tmp_path):
    keyring_env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
                   "XDG_DATA_HOME": str(tmp_path / "xdg"), "WORKSTATION_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "workstation", "infer", str(study.directory), "--json"],
                          capture_output=True, text=True, timeout=300, env=keyring_env)
    assert done.returncode == 0, done.stderr
    assert "not recorded" not in done.stderr
    report = json.loads(done.stdout)
    assert report["format"] == "workstation.infer/1"
    (run,) = report["runs"]
    assert run["model"]["name"] == "nodule-detector" and len(run["model"]["sha256"]) == 64
    assert run["device"] == "cpu" and run["seconds"] > 0 and run["findings"]
    finding = run["findings"][0]
    assert set(finding) >= {"label", "score", "frame_index", "box_px", "box_mm", "center_mm", "sop_instance_uid"}
    assert set(finding["box_px"]) == {"column0", "row0", "column1", "row1"}
    scores = [f["score"] for f in run["findings"]]
    assert scores == sorted(scores, reverse=True)
    refused = subprocess.run([sys.executable, "-m", "workstation", "infer", str(study.directory), "--model", "nope"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "no model 'nope'" in refused.stderr
    assert "not recorded in the audit trail: no usable OS keyring" in refused.stderr  # no keyring: said, not silent

    # the run and its findings were kept in the encrypted store, with the audit entry
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "xdg" / "python_keyring" / "keyring_pass.cfg")  # where the subprocess kept the key
    with Store.open(tmp_path / "data" / "store.sqlite", Identity(User("reader", None), "ws"), backend) as store:
        (stored,) = store.inference_runs(run["series_instance_uid"])
        assert sorted(f.finding_id for f in stored.findings) == sorted(f["id"] for f in run["findings"])
        kinds = [e.kind for e in store.audit_entries()]
        assert kinds == ["application.start", "session.start", "inference.run", "session.end", "application.stop"]
        assert store.verify().ok
