"""The device pipeline (torch preprocessing and heatmap restore, used on a GPU) equals the numpy path.

Run here on the CPU through torch: the same kernels and order, so the prepared input, the restored heatmap and the
candidates agree to float32 rounding whichever device runs them (on a GPU the engine takes this path).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # noqa: F841 - torch is a dependency; the import is what is tested next

from workstation.core.volume import Volume, frame_affine  # noqa: E402
from workstation.demo import make_chest_phantom  # noqa: E402
from workstation.inference import device_pipeline, engine  # noqa: E402
from workstation.inference.preprocess import Preprocessing, prepare_volume, restore_heatmap  # noqa: E402
from workstation.inference.registry import find_model, load_manifests  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    manifest = find_model(load_manifests()[0], "nodule-detector")
    phantom = make_chest_phantom(seed=9001, slices=24, size=384)
    return manifest, phantom


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])  # a GPU, when the machine has one, too


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size, spacing", [(384, 0.7), (300, 0.9), (512, 0.6)])
def test_prepare_equals_numpy(setup, size, spacing, device):
    manifest, phantom = setup
    pre = Preprocessing.from_dict(manifest.preprocessing)
    hu = phantom.hu[:, :size, :size].astype(np.int16)  # stored pixels: int16 goes to the device as it is
    expected = prepare_volume(hu, (spacing, spacing), pre, 1.25)
    got = device_pipeline.prepare(hu, (spacing, spacing), pre, 1.25, device).cpu().numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=2e-6)


@pytest.mark.parametrize("shape", [(384, 384), (512, 512), (300, 333)])
def test_restore_equals_numpy(shape):
    rng = np.random.default_rng(4)
    heat = rng.random((3, 256, 256), dtype=np.float32)
    expected = restore_heatmap(heat, shape)
    got = device_pipeline._resample_axis(device_pipeline._resample_axis(torch.from_numpy(heat), shape[0], 1), shape[1], 2)
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_detections_equal_through_either_path(setup, monkeypatch, device):
    manifest, phantom = setup
    spacing = (phantom.pixel_spacing_mm, phantom.pixel_spacing_mm)
    affine = frame_affine(phantom.origin_mm, (1, 0, 0, 0, 1, 0), spacing, np.array([0, 0, phantom.slice_thickness_mm]))
    volume = Volume(phantom.hu[6:14].copy(), affine, spacing)  # 8 slices through three of its nodules
    volume.loaded[:] = True
    numpy_path = engine.detect(manifest, volume, "cpu", manifest.raw_threshold)
    if device == "cpu":  # the device branch on the CPU: the engine takes it for any device other than "cpu"
        monkeypatch.setattr(engine, "network_for", lambda m, d, _f=engine.network_for: _f(m, "cpu"))
        device = torch.device("cpu")
    torch_path = engine.detect(manifest, volume, device, manifest.raw_threshold)
    np.testing.assert_allclose(torch_path.probabilities, numpy_path.probabilities, atol=1e-5)
    assert [(c.frame, c.row, c.col) for c in torch_path.candidates] == [(c.frame, c.row, c.col) for c in numpy_path.candidates]
    np.testing.assert_allclose(torch_path.peak_logits, numpy_path.peak_logits, atol=1e-3)
    assert numpy_path.candidates  # something to compare
