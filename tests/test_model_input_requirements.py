"""A model refuses series it cannot read (too few slices, wrong slice spacing, too small a field of view),
with the reason, in the service, the AI panel and `workstation infer`, instead of reporting "0 findings"."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from workstation.demo import make_chest_phantom, write_demo_study
from workstation.demo.writer import write_ct_series
from workstation.dicom.scan import scan_paths
from workstation.inference.registry import ModelError, default_root, load_manifests, parse_manifest
from workstation.inference.requirements import InputRequirements, SeriesGeometry, parse_requirements
from workstation.services.inference import InferenceService
from workstation.services.loading import SeriesLoad


def _series(directory):
    (display_set,) = scan_paths([directory]).display_sets
    return display_set


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("requirements")
    single = write_demo_study(root / "single", seed=11, slices=1, size=128).directory  # the reported case
    write_ct_series(make_chest_phantom(seed=12, slices=16, size=256, slice_thickness_mm=6.0), root / "thick", seed=12)
    write_ct_series(make_chest_phantom(seed=13, slices=16, size=128, pixel_spacing_mm=0.5), root / "narrow", seed=13)
    ui = write_demo_study(root / "ui", seed=3, slices=40, size=256).directory  # tests/ui/conftest.py's study: 1.4 mm
    fine = write_demo_study(root / "fine", seed=5, slices=24, size=384).directory  # 0.93 mm pixels
    demo = write_demo_study(root / "demo", seed=7).directory  # `workstation --demo`: 120 x 512 x 512
    return {"single": single, "thick": root / "thick", "narrow": root / "narrow", "ui": ui, "fine": fine, "demo": demo}


@pytest.fixture(scope="module")
def service():
    return InferenceService()


def _reason(service, display_set):
    ((manifest, reason),) = [(m, r) for m, r in service.models_for(display_set) if m.name == "nodule-detector"]
    return manifest, reason


@pytest.mark.parametrize("name, words", [
    ("single", "needs at least 10 slices, this series has 1"),
    ("thick", "needs slices 1-3 mm apart, this series has 6.00 mm"),
    ("narrow", "needs an in-plane field of view of at least 250 mm, this series covers 64 x 64 mm"),
    ("ui", "needs pixels of 0.6-1 mm, this series has 1.40 mm"),  # where the model finds mostly false nodules
])
def test_series_outside_the_requirements_are_refused_with_the_reason(studies, service, name, words):
    display_set = _series(studies[name])
    manifest, reason = _reason(service, display_set)
    assert reason is not None and words in reason and reason.startswith(manifest.ref)
    volume = SeriesLoad(display_set).run()
    with pytest.raises(ModelError, match=words):
        service.run(display_set, volume)  # the newest accepting model: none
    with pytest.raises(ModelError, match=f"refusing to run: .*{words}"):
        service.run(display_set, volume, "nodule-detector")  # asked for by name: still refused
    assert service.cached(display_set, manifest) is None


def test_a_single_small_slice_misses_every_requirement_at_once(studies, service):
    _, reason = _reason(service, _series(studies["single"]))
    assert "10 slices" in reason and "pixels of" in reason  # 128 px over 358 mm: 2.8 mm pixels


@pytest.mark.parametrize("name", ["fine", "demo"])
def test_demo_series_are_accepted(studies, service, name):
    display_set = _series(studies[name])
    _, reason = _reason(service, display_set)
    assert reason is None
    geometry = SeriesGeometry.of(display_set)
    assert geometry.slice_spacing_mm == pytest.approx(2.5) and min(geometry.field_of_view_mm) == pytest.approx(358.4)


def test_the_ai_panel_names_the_reason(qtbot, studies, service):
    from workstation.ui.ai_panel import AiPanel

    panel = AiPanel()
    qtbot.addWidget(panel)
    panel.set_models(service.models_for(_series(studies["thick"])))
    assert not panel.run_button.isEnabled()
    assert "needs slices 1-3 mm apart, this series has 6.00 mm" in panel.note.text()
    panel.set_models(service.models_for(_series(studies["fine"])))
    assert panel.run_button.isEnabled() and panel.model_box.count() >= 1


def _infer(*args):
    return subprocess.run([sys.executable, "-m", "workstation", "infer", *map(str, args)], capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})


def test_infer_prints_the_reason_and_fails(studies):
    text = _infer(studies["single"])
    assert text.returncode == 1, text.stderr
    assert "skipped" in text.stdout and "needs at least 10 slices, this series has 1" in text.stdout
    assert "finding" not in text.stdout  # never "0 finding(s)"

    report = _infer(studies["thick"], "--json")
    assert report.returncode == 1, report.stderr
    document = json.loads(report.stdout)
    assert document["runs"] == []
    (skipped,) = document["skipped"]
    assert "needs slices 1-3 mm apart, this series has 6.00 mm" in skipped["reason"]

    named = _infer(studies["narrow"], "--model", "nodule-detector", "--json")
    assert named.returncode == 2
    assert "field of view of at least 250 mm" in named.stderr
    document = json.loads(named.stdout)
    assert document["runs"] == [] and "field of view of at least 250 mm" in document["error"]


def test_shipped_manifest_states_requirements_that_fit_its_preprocessing():
    (manifest,) = [m for m in load_manifests(default_root())[0] if m.name == "nodule-detector"]
    req, pre = manifest.input_requirements, manifest.preprocessing
    assert req is not None and req.min_slices >= pre["channels"]  # a full 2.5-D stack for some slices
    lo, hi = req.slice_spacing_mm
    assert lo <= pre["slice_spacing_mm"] <= hi  # the spacing it was trained at is inside
    trained_pixel_mm = 0.7  # the phantoms it was trained on: 512 pixels over 358.4 mm
    assert req.pixel_spacing_mm[0] <= trained_pixel_mm <= req.pixel_spacing_mm[1]
    assert req.pixel_spacing_mm[1] <= pre["pixel_spacing_mm"]  # images are only ever downsampled to its 1.4 mm grid


# -- the manifest section ---------------------------------------------------------------------


def _manifest(**changes):
    from pathlib import Path

    data = {"format": "workstation.model-manifest/1", "name": "m", "version": "1.0.0", "task": "detection",
            "architecture": "heatmap-unet/1", "accepts": {"modalities": ["CT"]}, "threshold": 0.5,
            "weights": {"file": "w.pt", "sha256": "0" * 64}, "intended_use": "x", **changes}
    return parse_manifest(json.loads(json.dumps(data)), Path("/models/m/1.0.0"))


def test_manifests_without_requirements_stay_valid_and_check_nothing():
    manifest = _manifest()
    assert manifest.input_requirements is None
    assert manifest.refusal("CT", "", SeriesGeometry(1, 16, 16, None, None)) is None


def test_requirements_are_checked_as_stated():
    req = parse_requirements({"min_slices": 5, "min_field_of_view_mm": 200, "slice_spacing_mm": [1, 3],
                              "pixel_spacing_mm": [0.3, 1.5], "rationale": "why"})
    assert req == InputRequirements(5, 200.0, (1.0, 3.0), (0.3, 1.5))
    assert req.check(SeriesGeometry(5, 512, 512, (0.7, 0.7), 3.0)) == []
    assert req.check(SeriesGeometry(40, 300, 300, (0.7, 0.7), 0.5)) == [
        "needs slices 1-3 mm apart, this series has 0.50 mm"]
    assert req.check(SeriesGeometry(40, 256, 200, (0.7, 0.7), 2.0)) == [
        "needs an in-plane field of view of at least 200 mm, this series covers 140 x 179 mm"]
    assert req.check(SeriesGeometry(40, 128, 128, (2.0, 2.0), 2.0)) == [
        "needs pixels of 0.3-1.5 mm, this series has 2.00 mm"]
    unknown = req.check(SeriesGeometry(40, 512, 512, None, None))
    assert any("regular slice spacing" in p for p in unknown) and any("pixel spacing" in p for p in unknown)
    manifest = _manifest(input_requirements={"min_slices": 5})
    assert manifest.refusal("CT", "", SeriesGeometry(4, 64, 64, (1, 1), 2.0)) == \
        "m:1.0.0 needs at least 5 slices, this series has 4"
    assert "accepts CT images, not MR" in manifest.refusal("MR", "", SeriesGeometry(40, 64, 64, (1, 1), 2.0))


@pytest.mark.parametrize("section, words", [
    ([], "an object"),
    ({"min_slices": 0}, "min_slices"),
    ({"min_slices": 2.5}, "min_slices"),
    ({"min_field_of_view_mm": -1}, "min_field_of_view_mm"),
    ({"slice_spacing_mm": [3, 1]}, "slice_spacing_mm"),
    ({"slice_spacing_mm": 2.5}, "slice_spacing_mm"),
    ({"max_slices": 9}, "unknown keys"),
])
def test_malformed_requirements_are_refused(section, words):
    with pytest.raises(ModelError, match=words):
        _manifest(input_requirements=section)
