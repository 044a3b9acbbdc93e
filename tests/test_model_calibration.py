"""Finding scores are calibrated probabilities: the maths, the manifest section, and the shipped model on the
demo phantom (distinct scores, same order, the same findings as 1.0.0 at its threshold)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from workstation.inference import calibration as cal
from workstation.inference.preprocess import restore_heatmap
from workstation.inference.registry import ModelError, parse_manifest

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "models" / "nodule-detector" / "1.1.0"
WEIGHTS_SHA256_1_0_0 = "d73c6327896e2ef38948a6b338c31b750ce40dd3f148e9a07a2bc26d4683781a"
THRESHOLD_1_0_0 = 0.625


# -- the maths -----------------------------------------------------------------------------


def test_fit_recovers_a_known_temperature_and_bias():
    rng = np.random.default_rng(0)
    logits = rng.uniform(-12, 12, 20_000)
    labels = rng.random(logits.size) < cal.sigmoid(logits / 4.0 - 0.5)
    platt = cal.fit(logits, labels, "platt")
    assert platt.temperature == pytest.approx(4.0, rel=0.05) and platt.bias == pytest.approx(-0.5, abs=0.1)
    temperature = cal.fit(logits, rng.random(logits.size) < cal.sigmoid(logits / 3.0), "temperature")
    assert temperature.method == "temperature" and temperature.temperature == pytest.approx(3.0, rel=0.05)
    assert temperature.bias == 0.0


def test_fit_stays_finite_on_separable_data_and_needs_both_classes():
    logits = np.array([-3.0, -2.0, -1.0, 5.0, 8.0, 12.0])
    fitted = cal.fit(logits, logits > 0, "platt")
    assert math.isfinite(fitted.temperature) and fitted.temperature > 0
    assert fitted.apply(12.0) < 1.0 and fitted.apply(-3.0) > 0.0
    with pytest.raises(ValueError, match="both"):
        cal.fit(logits, np.ones(6, bool))


def test_expected_calibration_error_by_hand():
    scores = [0.15, 0.15, 0.85, 0.85, 1.0]
    real = [False, True, True, True, True]
    # bin [0.1, 0.2): mean 0.15, 1 of 2 real -> |0.5 - 0.15| x 2/5; bin [0.8, 0.9): |1 - 0.85| x 2/5;
    # bin [0.9, 1.0] (closed): |1 - 1| x 1/5.
    assert cal.expected_calibration_error(scores, real) == pytest.approx(0.35 * 0.4 + 0.15 * 0.4)
    table = cal.reliability(scores, real)
    assert [row["count"] for row in table] == [2, 2, 1] and table[-1]["bin"] == [0.9, 1.0]


def test_threshold_maps_back_and_forth():
    calibration = cal.Calibration("platt", 5.0, -0.3)
    score = calibration.apply(cal.logit(0.625))
    assert calibration.raw_threshold(score) == pytest.approx(0.625, abs=1e-12)
    assert calibration.apply(np.array([0.0, 10.0])) == pytest.approx(cal.sigmoid(np.array([-0.3, 1.7])))


def test_restored_logit_is_the_heatmaps_logit_and_stays_finite_where_it_saturates():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (2, 20, 24)).astype(np.float32)
    logits[1, 8:13, 10:15] = np.linspace(30, 40, 5, dtype=np.float32)  # sigmoid: 1.0 in float32 and float64
    for shape in ((40, 48), (20, 24), (10, 12), (33, 50)):  # enlarged, same, shrunk, uneven
        prob = restore_heatmap(cal.sigmoid(logits).astype(np.float32), shape)
        for frame, row, col in ((0, 3, 5), (0, shape[0] - 1, 0), (1, shape[0] // 4, shape[1] // 3)):
            value = cal.restored_logit(logits, frame, row, col, shape)
            assert cal.sigmoid(value) == pytest.approx(prob[frame, row, col], abs=1e-6)
    prob = restore_heatmap(cal.sigmoid(logits).astype(np.float32), (40, 48))
    assert prob[1, 20, 24] == 1.0 and prob[1, 20, 22] == 1.0  # saturated: one score for both
    near, far = cal.restored_logit(logits, 1, 20, 22, (40, 48)), cal.restored_logit(logits, 1, 20, 24, (40, 48))
    assert 30 < near < far < 40  # the logits still tell them apart


# -- the manifest section --------------------------------------------------------------------------


def _manifest(**changes):
    data = {"format": "workstation.model-manifest/1", "name": "m", "version": "1.0.0", "task": "detection",
            "architecture": "heatmap-unet/1", "accepts": {"modalities": ["CT"]}, "threshold": 0.5,
            "weights": {"file": "w.pt", "sha256": "0" * 64}, "intended_use": "x", **changes}
    return parse_manifest(json.loads(json.dumps(data)), Path("/models/m/1.0.0"))


def test_calibration_section():
    assert _manifest().calibration is None and _manifest().raw_threshold == 0.5  # older manifests: raw scores
    manifest = _manifest(calibration={"method": "temperature", "temperature": 4.0, "fitted_on": {"seeds": [1, 2]}})
    assert manifest.calibration == cal.Calibration("temperature", 4.0)
    assert manifest.raw_threshold == pytest.approx(cal.sigmoid(4.0 * cal.logit(0.5)))
    stated = {"method": "platt", "temperature": 5.0, "bias": 0.2}
    threshold = cal.Calibration("platt", 5.0, 0.2).apply(cal.logit(0.625))
    assert _manifest(threshold=threshold, calibration={**stated, "uncalibrated_threshold": 0.625}).raw_threshold \
        == pytest.approx(0.625)
    with pytest.raises(ModelError, match="uncalibrated_threshold"):  # threshold edited, calibration not
        _manifest(threshold=0.5, calibration={**stated, "uncalibrated_threshold": 0.625})


@pytest.mark.parametrize("section, words", [
    ({"method": "isotonic", "temperature": 1}, "method"),
    ({"method": "temperature", "temperature": 0}, "temperature"),
    ({"method": "temperature", "temperature": 2, "bias": 1.0}, "platt"),
    ({"method": "platt", "temperature": 2, "bias": "x"}, "bias"),
    ("temperature", "an object"),
])
def test_malformed_calibration_is_refused(section, words):
    with pytest.raises(ModelError, match=words):
        _manifest(calibration=section)


# -- the shipped model ----------------------------------------------------------------------------------------


def test_shipped_manifest_states_its_calibration():
    data = json.loads((MODEL_DIR / "manifest.json").read_text())
    manifest = parse_manifest(data, MODEL_DIR)
    assert hashlib.sha256((MODEL_DIR / "weights.pt").read_bytes()).hexdigest() == WEIGHTS_SHA256_1_0_0
    assert manifest.weights_sha256 == WEIGHTS_SHA256_1_0_0  # calibration left the weights alone
    assert manifest.calibration is not None
    assert data["calibration"]["uncalibrated_threshold"] == THRESHOLD_1_0_0
    assert manifest.raw_threshold == pytest.approx(THRESHOLD_1_0_0, abs=1e-9)
    fitted = set(range(*data["calibration"]["fitted_on"]["seeds"]["randomise"])) | set(
        range(*data["calibration"]["fitted_on"]["seeds"]["default_anatomy"]))
    trained = set(range(*data["training_data"]["seeds"]))
    validated = {s for first, end in data["validation"]["seeds"].values() for s in range(first, end)}
    assert fitted and not fitted & trained and not fitted & validated
    figures = data["validation"]["calibration"]
    assert "10 equal-width bins" in figures["ece_binning"]
    for population in ("reported_findings", "all_candidates"):
        block = figures["held_out"][population]
        assert 0 <= block["ece_after"] <= 1 and 0 <= block["ece_before"] <= 1 and block["count"] > 0


@pytest.fixture(scope="module")
def demo_runs():
    """The shipped model on the `workstation --demo` phantom: calibrated (as the workstation runs it) and
    1.0.0's way (raw heatmap peaks at its threshold), both from the workstation's one prediction (a second full
    prediction cost ~20 CPU s); the heatmap is checked against an independent prediction of the finding frames."""
    pytest.importorskip("torch")
    from workstation.core.volume import Volume, frame_affine
    from workstation.demo import make_chest_phantom
    from workstation.inference.engine import network_for, run_model
    from workstation.inference.network import predict
    from workstation.inference.postprocess import find_candidates
    from workstation.inference.preprocess import Preprocessing, prepare_volume
    from workstation.services.demo import DEMO_SEED

    manifest = parse_manifest(json.loads((MODEL_DIR / "manifest.json").read_text()), MODEL_DIR)
    ph = make_chest_phantom(seed=DEMO_SEED)
    spacing = (ph.pixel_spacing_mm, ph.pixel_spacing_mm)
    volume = Volume(ph.hu, frame_affine(ph.slice_position_mm(0), (1, 0, 0, 0, 1, 0), spacing,
                                        np.array([0.0, 0.0, ph.slice_thickness_mm])), spacing)
    volume.loaded[:] = True
    prob, calibrated = run_model(manifest, volume, "cpu")
    post = manifest.raw["postprocessing"]
    uncalibrated = find_candidates(prob, THRESHOLD_1_0_0, region_threshold=post["region_threshold"],
                                   spacing_mm=(ph.slice_thickness_mm, *spacing), min_volume_mm3=post["min_volume_mm3"])
    # 1.0.0's own pipeline (prepare, predict, restore) on every frame a finding spans, apart from run_model
    frames = sorted({k for c in uncalibrated + calibrated for k in range(c.frames[0], c.frames[1] + 1)})
    x = prepare_volume(ph.hu, spacing, Preprocessing.from_dict(manifest.preprocessing), ph.slice_thickness_mm)
    independent = restore_heatmap(predict(network_for(manifest, "cpu"), x[frames], "cpu"), ph.hu.shape[1:])
    return manifest, calibrated, uncalibrated, (prob[frames], independent)


def test_demo_findings_are_the_same_as_before(demo_runs):
    manifest, calibrated, uncalibrated, (heatmap, independent) = demo_runs
    assert len(uncalibrated) >= 3
    assert np.allclose(heatmap, independent, rtol=0, atol=1e-6)  # the heatmap both sets were found on
    key = lambda c: (c.frame, c.row, c.col, c.box, c.frames, c.voxels)  # noqa: E731
    assert sorted(map(key, calibrated)) == sorted(map(key, uncalibrated))
    assert all(c.score >= manifest.threshold for c in calibrated)


def test_demo_scores_are_distinct_and_keep_their_order(demo_runs):
    _, calibrated, uncalibrated, _ = demo_runs
    scores = [c.score for c in calibrated]
    assert sum(s >= 0.995 for s in [c.score for c in uncalibrated]) >= len(uncalibrated) - 1  # 1.0.0: "1.00"
    assert len({round(s, 4) for s in scores}) == len(scores)  # distinct as stored (4 decimals)
    assert not all(s >= 0.99 for s in scores) and all(0 < s < 1 for s in scores)
    assert scores == sorted(scores, reverse=True)
    raw = {(c.frame, c.row, c.col): c.score for c in uncalibrated}
    by_raw = [raw[(c.frame, c.row, c.col)] for c in calibrated]
    assert all(a >= b - 1e-6 for a, b in zip(by_raw, by_raw[1:]))  # the strongest stay first
