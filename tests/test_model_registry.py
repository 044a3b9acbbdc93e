"""Model manifests are checked data; weights are used only when their sha256 matches."""

from __future__ import annotations

import hashlib
import json

import pytest

from workstation.inference.registry import ModelError, find_model, load_manifests, parse_manifest, verify_weights


def write_model(root, folder_name="nodule-detector", folder_version="1.0.0", weight_bytes=b"weights-bytes", **changes):
    folder = root / folder_name / folder_version
    folder.mkdir(parents=True)
    (folder / "weights.pt").write_bytes(weight_bytes)
    manifest = {
        "format": "workstation.model-manifest/1", "name": folder_name, "version": folder_version, "task": "detection",
        "architecture": "heatmap-unet/1", "architecture_params": {"base": 8},
        "accepts": {"modalities": ["CT"], "body_parts": ["CHEST"]},
        "preprocessing": {"window_center": -600, "window_width": 1500}, "labels": ["nodule"], "threshold": 0.5,
        "weights": {"file": "weights.pt", "sha256": hashlib.sha256(weight_bytes).hexdigest()},
        "intended_use": "Research only. Not for clinical use.",
    }
    manifest.update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_valid_models_are_listed_newest_first(tmp_path):
    write_model(tmp_path, folder_version="1.0.0")
    write_model(tmp_path, folder_version="1.10.0")
    write_model(tmp_path, folder_version="1.2.0")
    manifests, problems = load_manifests(tmp_path)
    assert problems == []
    assert [m.version for m in manifests] == ["1.10.0", "1.2.0", "1.0.0"]
    assert find_model(manifests, "nodule-detector").version == "1.10.0"
    assert find_model(manifests, "nodule-detector:1.2.0").version == "1.2.0"
    with pytest.raises(ModelError, match="no model 'other'"):
        find_model(manifests, "other")


def test_weights_must_match_their_sha256(tmp_path):
    folder = write_model(tmp_path)
    (manifest,), _ = load_manifests(tmp_path)
    assert verify_weights(manifest) == folder / "weights.pt"
    (folder / "weights.pt").write_bytes(b"weights-bytez")  # one byte changed
    with pytest.raises(ModelError, match="do not match their sha256"):
        verify_weights(manifest)
    (folder / "weights.pt").unlink()
    with pytest.raises(ModelError, match="missing"):
        verify_weights(manifest)


def test_modality_and_body_part_are_checked():
    manifest = parse_manifest(json.loads(json.dumps({
        "format": "workstation.model-manifest/1", "name": "m", "version": "1.0.0", "task": "detection",
        "architecture": "heatmap-unet/1", "accepts": {"modalities": ["CT"], "body_parts": ["CHEST"]},
        "threshold": 0.4, "weights": {"file": "w.pt", "sha256": "0" * 64}, "intended_use": "x"})), _dir("m", "1.0.0"))
    assert manifest.accepts("CT", "CHEST") is None
    assert manifest.accepts("CT", "") is None  # many scanners leave BodyPartExamined empty
    assert "accepts CT images, not MR" in manifest.accepts("MR", "CHEST")
    assert "accepts CHEST, not HEAD" in manifest.accepts("CT", "HEAD")


def _dir(name, version):
    from pathlib import Path

    return Path("/models") / name / version


@pytest.mark.parametrize("change, words", [
    ({"format": "other"}, "format"),
    ({"architecture": "os.system"}, "not one this workstation provides"),
    ({"weights": {"file": "../../evil.pt", "sha256": "0" * 64}}, "plain file name"),
    ({"weights": {"file": "w.pt", "sha256": "xyz"}}, "64 hex"),
    ({"threshold": 2}, "threshold"),
    ({"version": "one"}, "MAJOR.MINOR.PATCH"),
    ({"intended_use": ""}, "intended_use"),
])
def test_bad_manifests_are_reported_not_loaded(tmp_path, change, words):
    write_model(tmp_path, **change)
    manifests, problems = load_manifests(tmp_path)
    assert manifests == [] and len(problems) == 1 and words in problems[0]


def test_manifest_must_live_where_it_says(tmp_path):
    write_model(tmp_path, "nodule-detector", "1.0.0", name="other-model")
    manifests, problems = load_manifests(tmp_path)
    assert manifests == [] and "expected models/other-model/1.0.0/" in problems[0]
