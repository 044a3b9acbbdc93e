"""The nodule detector: preprocessing, postprocessing, evaluation maths and the shipped model."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workstation.inference import evaluation as ev
from workstation.inference.postprocess import Candidate, candidate_to_mm, find_candidates
from workstation.inference.preprocess import (Preprocessing, model_shape, model_to_original,
                                              original_to_model, prepare_volume, restore_heatmap)

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "models" / "nodule-detector" / "1.1.0"


# -- preprocessing -------------------------------------------------------------


def test_prepare_shapes_range_and_window():
    vol = np.full((6, 64, 48), -2000, np.int16)
    vol[:, :32] = 500  # above the window: 1
    vol[:, 32:, :24] = -600  # window centre: 0.5
    pre = Preprocessing(window_center=-600, window_width=1500, pixel_spacing_mm=1.4, channels=3)
    x = prepare_volume(vol, (0.7, 0.7), pre)
    assert x.shape == (6, 3, 32, 24) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert np.allclose(x[:, :, :16], 1.0)
    assert np.allclose(x[:, :, 16:, :12], 0.5)
    assert np.allclose(x[:, :, 16:, 12:], 0.0)
    assert vol.dtype == np.int16 and vol[0, 0, 0] == 500  # input untouched


def test_prepare_area_average_and_channel_stacking():
    frames = 5
    vol = np.zeros((frames, 8, 8), np.float32)
    for k in range(frames):
        vol[k] = -1000 + 100 * k
    vol[0, :2, :2] = [[-1000, -800], [-600, -400]]  # one 2x2 block averages to -700
    pre = Preprocessing(window_center=-500, window_width=1000, pixel_spacing_mm=2.0, channels=3)
    x = prepare_volume(vol, (1.0, 1.0), pre)
    assert x.shape == (frames, 3, 4, 4)
    assert x[0, 1, 0, 0] == pytest.approx((-700 + 1000) / 1000)
    centre = x[:, 1, 1, 1] * 1000 - 1000  # back to HU
    assert np.allclose(centre, [-1000, -900, -800, -700, -600])
    # Neighbouring frames, edges repeated.
    assert np.allclose(x[1:, 0], x[:-1, 1]) and np.allclose(x[:-1, 2], x[1:, 1])
    assert np.allclose(x[0, 0], x[0, 1]) and np.allclose(x[-1, 2], x[-1, 1])


def test_prepare_slice_spacing_picks_frames_in_mm():
    vol = np.zeros((9, 4, 4), np.float32)
    for k in range(9):
        vol[k] = -1000 + 10 * k
    pre = Preprocessing(window_center=-500, window_width=1000, pixel_spacing_mm=1.0, channels=3,
                        slice_spacing_mm=2.5)
    x = prepare_volume(vol, (1.0, 1.0), pre, slice_spacing_mm=1.25)  # +-2.5 mm = +-2 frames
    hu = x[:, :, 0, 0] * 1000 - 1000
    assert np.allclose(hu[4], [-980, -960, -940])
    assert np.allclose(hu[0], [-1000, -1000, -980])


def test_prepare_non_integer_spacing_keeps_field_of_view():
    rows, cols = 100, 90
    ramp = np.broadcast_to(np.linspace(-1000, 0, cols, dtype=np.float32), (3, rows, cols))
    pre = Preprocessing(window_center=-500, window_width=1000, pixel_spacing_mm=1.4, channels=1)
    x = prepare_volume(ramp, (0.8, 0.9), pre)
    assert x.shape[2:] == model_shape(rows, cols, (0.8, 0.9), pre) == (57, 58)
    # Area averaging a linear ramp gives the ramp at the output pixel centres.
    cols_orig = np.array([model_to_original(0, c, (57, 58), (rows, cols))[1] for c in range(58)])
    expected = (np.interp(cols_orig, np.arange(cols), np.linspace(-1000, 0, cols)) + 1000) / 1000
    assert np.allclose(x[0, 0, 10, 2:-2], expected[2:-2], atol=2e-3)


def test_restore_heatmap_inverts_the_mapping():
    pre = Preprocessing(pixel_spacing_mm=1.4, channels=1)
    h, w = model_shape(512, 512, (0.7, 0.7), pre)
    assert (h, w) == (256, 256)
    heat = np.zeros((2, h, w), np.float32)
    heat[1, 100, 60] = 1.0
    up = restore_heatmap(heat, (512, 512))
    assert up.shape == (2, 512, 512) and up.dtype == np.float32
    assert up[0].max() == 0
    k, r, c = np.unravel_index(np.argmax(up), up.shape)
    assert k == 1 and abs(r - 200.5) <= 0.5 and abs(c - 120.5) <= 0.5
    assert model_to_original(100, 60, (h, w), (512, 512)) == (200.5, 120.5)
    assert original_to_model(200.5, 120.5, (512, 512), (h, w)) == (100.0, 60.0)
    # A smooth image survives down- and up-sampling.
    yy, xx = np.mgrid[0:512, 0:512]
    smooth = (np.sin(yy / 40.0) * np.cos(xx / 55.0)).astype(np.float32)[None]
    pre2 = Preprocessing(window_center=0, window_width=2, pixel_spacing_mm=1.4, channels=1)
    back = restore_heatmap(prepare_volume(smooth, (0.7, 0.7), pre2)[:, 0], (512, 512)) * 2 - 1
    assert np.abs(back - smooth)[:, 2:-2, 2:-2].max() < 0.01


def test_preprocessing_from_dict():
    pre = Preprocessing(window_center=-600, window_width=1500, pixel_spacing_mm=1.4, channels=5,
                        slice_spacing_mm=2.5)
    assert Preprocessing.from_dict(json.loads(json.dumps(pre.to_dict()))) == pre
    with pytest.raises(ValueError):
        Preprocessing.from_dict({"channels": 3, "exec": "x"})
    with pytest.raises(ValueError):
        Preprocessing(window_width=0)


def test_light_modules_do_not_import_torch():
    code = ("import sys, workstation.inference, workstation.inference.preprocess,"
            " workstation.inference.postprocess, workstation.inference.evaluation,"
            " workstation.inference.registry, workstation.inference.calibration, workstation.inference.requirements;"
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


# -- postprocessing ------------------------------------------------------------


def _blob(shape, centre, sigma, peak):
    k, r, c = np.indices(shape, sparse=True)
    d2 = (k - centre[0]) ** 2 * 9 + (r - centre[1]) ** 2 + (c - centre[2]) ** 2
    return (peak * np.exp(-d2 / (2 * sigma ** 2))).astype(np.float32)


def test_two_blobs_give_two_detections_with_boxes():
    shape = (20, 96, 128)
    prob = np.maximum(_blob(shape, (5, 30, 40), 4.0, 0.95), _blob(shape, (14, 70, 100), 3.0, 0.7))
    found = find_candidates(prob, 0.5, region_threshold=0.25)
    assert [round(c.score, 2) for c in found] == [0.95, 0.7]
    a, b = found
    assert (a.frame, a.row, a.col) == (5, 30, 40) and (b.frame, b.row, b.col) == (14, 70, 100)
    # Box on the peak frame: where prob >= region_threshold, end exclusive.
    for cand, (cr, cc, s, p) in ((a, (30, 40, 4.0, 0.95)), (b, (70, 100, 3.0, 0.7))):
        half = int(np.floor(np.sqrt(2 * s * s * np.log(p / 0.25))))
        assert cand.box == (cc - half, cr - half, cc + half + 1, cr + half + 1)
        assert np.allclose(cand.centroid, (cand.frame, cr, cc), atol=1e-6)
    assert a.frames[0] < 5 < a.frames[1] and b.frames[0] <= 14 <= b.frames[1]
    assert find_candidates(prob, 0.8, region_threshold=0.25) == [a]  # a higher threshold only drops
    assert find_candidates(prob, 0.99) == []
    assert candidate_to_mm(a, (-10.0, -20.0, 100.0), (2.5, 0.5, 0.5)) == pytest.approx(
        (-10 + 40 * 0.5, -20 + 30 * 0.5, 100 + 5 * 2.5))


def test_hysteresis_and_merging_give_one_detection_per_object():
    shape = (10, 64, 64)
    # Two peaks joined by a saddle above the region threshold: one object.
    prob = np.maximum(_blob(shape, (5, 32, 26), 4.0, 0.9), _blob(shape, (5, 32, 38), 4.0, 0.8))
    found = find_candidates(prob, 0.5, region_threshold=0.2)
    assert len(found) == 1 and found[0].score == pytest.approx(0.9)
    # A weak fragment inside a strong candidate's box (not connected) is merged away.
    ring = np.zeros(shape, np.float32)
    ring[3:8, 20:45, 20:45] = 0.9
    ring[3:8, 24:41, 24:41] = 0.0
    ring[5, 32, 32] = 0.6
    found = find_candidates(ring, 0.5, region_threshold=0.3)
    assert len(found) == 1 and found[0].score == pytest.approx(0.9)


def test_tiny_components_are_dropped():
    prob = np.zeros((4, 32, 32), np.float32)
    prob[1, 5, 5] = 0.9  # one voxel
    prob[2, 20:24, 20:24] = 0.8  # 16 voxels
    found = find_candidates(prob, 0.5, spacing_mm=(2.0, 1.0, 1.0), min_volume_mm3=8.0)
    assert len(found) == 1 and found[0].voxels == 16 and found[0].box == (20, 20, 24, 24)
    assert len(find_candidates(prob, 0.5, min_voxels=2)) == 1
    assert len(find_candidates(prob, 0.5)) == 2


# -- evaluation ------------------------------------------------------------------


def test_matching_rules():
    truths = [ev.Truth((0.0, 0.0, 0.0), 20.0), ev.Truth((50.0, 0.0, 0.0), 4.0)]
    dets = [ev.Detection((9.0, 0.0, 0.0), 0.9),  # inside radius 10 of nodule 0
            ev.Detection((-3.0, 0.0, 0.0), 0.8),  # the same nodule again: duplicate
            ev.Detection((54.5, 0.0, 0.0), 0.7),  # within 5 mm of the small nodule
            ev.Detection((50.0, 5.5, 0.0), 0.6),  # 5.5 mm away: outside max(2, 5)
            ev.Detection((11.0, 0.0, 0.0), 0.95)]  # just outside radius 10
    m = ev.match_scan(dets, truths)
    assert m.kinds == ["hit", "duplicate", "hit", "fp", "fp"]
    assert m.found_by == [0, 2]


def test_evaluate_sensitivity_fps_and_average_precision():
    scan_a = ev.Scan([ev.Detection((0, 0, 0), 0.9), ev.Detection((100, 0, 0), 0.8),
                      ev.Detection((30, 0, 0), 0.3)],
                     [ev.Truth((0, 0, 0), 8.0), ev.Truth((30, 0, 0), 4.0), ev.Truth((60, 0, 0), 10.0)])
    scan_b = ev.Scan([ev.Detection((0, 0, 1), 0.7), ev.Detection((0, 0, 2), 0.5)],
                     [ev.Truth((0, 0, 0), 12.0)])
    m = ev.evaluate([scan_a, scan_b])
    assert (m.nodules, m.nodules_ge_6mm, m.found, m.found_ge_6mm) == (4, 3, 3, 2)
    assert m.sensitivity_all == pytest.approx(0.75) and m.sensitivity_ge_6mm == pytest.approx(2 / 3)
    assert (m.false_positives, m.duplicates) == (2, 1) and m.false_positives_per_scan == pytest.approx(1.0)
    # Ranking: 0.9 hit, 0.8 fp, 0.7 hit, 0.5 dup, 0.3 hit (small nodule).
    # All nodules: precision at the hits 1, 2/3, 3/5 -> AP = (1 + 2/3 + 3/5) / 4.
    assert m.average_precision == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)
    # >= 6 mm: the small-nodule hit is ignored: 0.9 hit, 0.8 fp, 0.7 hit, 0.5 dup -> (1 + 2/3) / 3.
    assert m.average_precision_ge_6mm == pytest.approx((1 + 2 / 3) / 3)
    strict = ev.evaluate([scan_a, scan_b], threshold=0.75)
    assert strict.found == 1 and strict.false_positives == 1
    assert ev.evaluate([ev.Scan([], [])]).false_positives_per_scan == 0.0


def test_scan_from_phantom_geometry():
    class Geo:
        origin_mm = (-100.0, -50.0, 10.0)
        pixel_spacing_mm = 0.5
        slice_thickness_mm = 2.0
        nodules = []

    cand = Candidate(score=0.8, frame=3, row=10, col=20, box=(18, 8, 23, 13), frames=(2, 4),
                     centroid=(3.0, 10.0, 20.0), voxels=50)
    scan = ev.scan_from_phantom([cand], Geo())
    assert scan.detections[0].center_mm == pytest.approx((-90.0, -45.0, 16.0))


# -- architectures and network helpers ----------------------------------------------


def test_architecture_table_and_shapes():
    torch = pytest.importorskip("torch")
    from workstation.inference.architectures import ARCHITECTURES, build

    assert list(ARCHITECTURES) == ["heatmap-unet/1"]
    net = build("heatmap-unet/1", {"in_channels": 5, "widths": [12, 24, 48, 96]}).eval()
    assert sum(p.numel() for p in net.parameters()) < 400_000
    with torch.inference_mode():
        assert net(torch.zeros(2, 5, 37, 50)).shape == (2, 1, 37, 50)
    with pytest.raises(ValueError):
        build("os.system", {})
    with pytest.raises(ValueError):
        build("heatmap-unet/1", {"in_channels": 3, "command": "rm"})
    with pytest.raises(ValueError):
        build("heatmap-unet/1", {"widths": "12,24"})


def test_predict_progress_and_cancel():
    torch = pytest.importorskip("torch")
    from workstation.core.tasks import Cancelled, CancelToken
    from workstation.inference.architectures import build
    from workstation.inference.network import predict

    torch.manual_seed(0)
    net = build("heatmap-unet/1", {"in_channels": 3, "widths": [4, 8]})
    x = np.random.default_rng(0).random((5, 3, 16, 16), dtype=np.float32)
    seen = []
    prob = predict(net, x, "cpu", batch=2, progress=lambda d, t: seen.append((d, t)))
    assert prob.shape == (5, 16, 16) and prob.dtype == np.float32
    assert 0 <= prob.min() and prob.max() <= 1
    assert seen == [(2, 5), (4, 5), (5, 5)]
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        predict(net, x, "cpu", cancel=token)


# -- the shipped model: acceptance ----------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    torch = pytest.importorskip("torch")
    from workstation.inference.network import load_network

    torch.set_num_threads(2)
    manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
    net = load_network(manifest, MODEL_DIR / manifest["weights"]["file"], "cpu")
    return manifest, net


def test_manifest_is_complete(shipped):
    manifest, _ = shipped
    assert manifest["format"] == "workstation.model-manifest/1"
    assert (manifest["name"], manifest["version"], manifest["task"]) == ("nodule-detector", "1.1.0", "detection")
    assert manifest["architecture"] == "heatmap-unet/1"
    assert manifest["accepts"] == {"modalities": ["CT"], "body_parts": ["CHEST"]}
    assert manifest["labels"] == ["nodule"]
    assert (MODEL_DIR / "weights.pt").stat().st_size < 3_000_000
    val = manifest["validation"]
    assert val["sensitivity_ge_6mm"] >= 0.9 and val["false_positives_per_scan"] <= 1.0
    train = manifest["training_data"]["seeds"]
    assert not set(range(*train)) & {9001, 9002, 9003}
    assert "Not for clinical use" in manifest["intended_use"]


def test_load_network_checks_sha256(shipped, tmp_path):
    from workstation.inference.network import load_network

    manifest, _ = shipped
    bad = dict(manifest, weights={"file": "weights.pt", "sha256": "0" * 64})
    with pytest.raises(ValueError, match="sha256"):
        load_network(bad, MODEL_DIR / "weights.pt")


def test_detector_finds_nodules_on_unseen_phantoms(shipped):
    """Preprocess -> predict -> restore -> postprocess on phantoms from seeds never used in
    training or validation (full size: 120 x 512 x 512)."""
    from workstation.demo import make_chest_phantom
    from workstation.inference.network import predict

    from workstation.inference.registry import parse_manifest

    manifest, net = shipped
    pre = Preprocessing.from_dict(manifest["preprocessing"])
    post = manifest["postprocessing"]
    raw_threshold = parse_manifest(manifest, MODEL_DIR).raw_threshold  # the threshold as a heatmap probability
    scans = []
    # The demo anatomy and two randomised patients (6 nodules each, so that the >= 6 mm count is
    # large enough for a sensitivity figure): 12 nodules >= 6 mm in all.
    for seed, randomise, count in ((9001, False, None), (9002, True, 6), (9003, True, 6)):
        ph = make_chest_phantom(seed=seed, randomise=randomise, nodule_count=count)
        spacing = (ph.pixel_spacing_mm, ph.pixel_spacing_mm)
        x = prepare_volume(ph.hu, spacing, pre, slice_spacing_mm=ph.slice_thickness_mm)
        prob = restore_heatmap(predict(net, x, "cpu", batch=16), ph.hu.shape[1:])
        found = find_candidates(prob, raw_threshold, region_threshold=post["region_threshold"],
                                spacing_mm=(ph.slice_thickness_mm, *spacing),
                                min_volume_mm3=post["min_volume_mm3"])
        for c in found:  # boxes on the peak frame contain the peak
            assert c.box[0] <= c.col < c.box[2] and c.box[1] <= c.row < c.box[3]
            assert c.frames[0] <= c.frame <= c.frames[1]
        scans.append(ev.scan_from_phantom(found, ph, name=str(seed)))
    m = ev.evaluate(scans)
    assert m.nodules_ge_6mm >= 10
    assert m.sensitivity_ge_6mm >= 0.9, m.per_scan
    assert m.false_positives_per_scan <= 1.0, m.per_scan
