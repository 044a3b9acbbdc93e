"""Window/level maths against pydicom's apply_windowing, the LUT fast paths, and the offered presets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_data import demo_catalog, demo_display_set, demo_study, sample_file, write_image  # noqa: F401
from pydicom.dataset import Dataset
from pydicom.pixels import apply_windowing

from workstation.core.study import DisplaySet
from workstation.core.windowing import CT_PRESETS, WindowLevel, dicom_windows
from workstation.dicom.scan import scan_paths
from workstation.render.windowing import WindowRenderer, auto_window, window_values
from workstation.services.windows import initial_window, own_windows, presets

VALUES = np.concatenate([np.linspace(-300.0, 600.0, 3601), np.arange(-300, 601, dtype=float)])

WINDOWS = [
    (40, 400), (-600, 1500), (100, 1), (100.5, 1), (0.5, 1), (10, 2), (10.5, 3), (127.5, 256), (300, 37.25),
    (-1000, 50), (0, 0.5),
]


def _pydicom_windowed(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = 8  # output range 0..255, the same as ours
    ds.PixelRepresentation = 0
    ds.WindowCenter = center
    ds.WindowWidth = width
    ds.VOILUTFunction = function
    return apply_windowing(values.copy(), ds)


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")  # SIGMOID far from a narrow centre
@pytest.mark.parametrize(("function", "center", "width"), [
    (function, center, width) for function in ("LINEAR", "LINEAR_EXACT", "SIGMOID") for center, width in WINDOWS
    if function != "LINEAR" or width >= 1  # LINEAR needs width >= 1 (PS3.3 C.11.2.1.2)
])
def test_window_values_match_pydicom(function: str, center: float, width: float) -> None:
    ours = window_values(VALUES, WindowLevel(center, width, function=function))
    theirs = _pydicom_windowed(VALUES, center, width, function)
    assert ours.min() >= 0 and ours.max() <= 255
    assert np.max(np.abs(ours - theirs)) <= 0.5


def test_linear_width_one_is_a_step_at_center_minus_half() -> None:
    """PS3.3: for LINEAR, x <= c - 0.5 - (w-1)/2 is the minimum; at w = 1 that includes x = c - 0.5 itself."""
    values = window_values(np.array([-1.0, 0.0, 0.5, 1.0]), WindowLevel(0.5, 1))
    assert values.tolist() == [0.0, 0.0, 255.0, 255.0]


def test_linear_window_end_points() -> None:
    window = WindowLevel(40, 400)  # LINEAR: black at <= -159.5 - 0.5 ... white above 239.5 - 0.5
    values = window_values(np.array([-1000.0, -160.0, 40.0, 239.0, 1000.0]), window)
    assert values[0] == 0 and values[1] == 0 and values[-1] == 255 and values[-2] == 255
    assert values[2] == pytest.approx(127.5 + 0.5 * 255 / 399)


def _arithmetic(values: np.ndarray, window: WindowLevel, invert: bool) -> np.ndarray:
    out = np.rint(window_values(values, window)).astype(np.uint8)
    return 255 - out if invert else out


LUT_WINDOWS = [WindowLevel(40, 400), WindowLevel(-600, 1500, function="LINEAR_EXACT"),
               WindowLevel(1000, 30000, function="SIGMOID"), WindowLevel(3.5, 1), WindowLevel(200, 7.5)]


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8])
def test_lut_path_equals_arithmetic_for_every_value(dtype, invert: bool) -> None:
    info = np.iinfo(dtype)
    every = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)
    frame = every.reshape(-1, 256)
    renderer = WindowRenderer(np.dtype(dtype), invert=invert)
    for window in LUT_WINDOWS:
        rendered = renderer.render(frame, window)
        assert rendered.dtype == np.uint8 and rendered.shape == frame.shape
        assert np.array_equal(rendered, _arithmetic(frame.astype(np.float64), window, invert)), window


def test_lut_is_rebuilt_when_the_window_changes() -> None:
    renderer = WindowRenderer(np.dtype(np.int16))
    frame = np.array([[-1000, 0, 40, 1000]], dtype=np.int16)
    first = renderer.render(frame, WindowLevel(40, 400)).copy()
    second = renderer.render(frame, WindowLevel(-600, 1500))
    assert not np.array_equal(first, second)
    assert np.array_equal(second, _arithmetic(frame.astype(float), WindowLevel(-600, 1500), False))
    assert np.array_equal(renderer.render(frame, WindowLevel(40, 400)), first)


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_other_dtypes_are_windowed_arithmetically(dtype) -> None:
    frame = np.linspace(-2000, 5000, 64 * 64).reshape(64, 64).astype(dtype)
    window = WindowLevel(300, 1200)
    for invert in (False, True):
        rendered = WindowRenderer(np.dtype(dtype), invert=invert).render(frame, window)
        assert rendered.dtype == np.uint8
        assert np.array_equal(rendered, _arithmetic(frame.astype(np.float64), window, invert))


def test_window_level_rejects_non_positive_width() -> None:
    for width in (0, -1, -0.001, float("nan")):
        with pytest.raises(ValueError):
            WindowLevel(40, width)
    assert WindowLevel(40, 0.001).width == 0.001
    assert WindowLevel(40, 400).bounds == (-160, 240)


def test_dragging_never_collapses_the_width() -> None:
    window = WindowLevel(40, 10, "Custom", "SIGMOID")
    dragged = window.dragged(5, -100)
    assert (dragged.center, dragged.width, dragged.function) == (45, 1.0, "SIGMOID")
    assert window.dragged(-5, 20).width == 30


def test_dicom_windows_skip_invalid_and_name_them() -> None:
    windows = dicom_windows((40.0, -600.0, 10.0), (400.0, 1500.0, 0.0), ("MEDIASTINUM",), "sigmoid")
    assert [(w.center, w.width, w.name) for w in windows] == [(40, 400, "MEDIASTINUM"), (-600, 1500, "DICOM 2")]
    assert all(w.function == "LINEAR" for w in windows)  # unknown spelling falls back to LINEAR
    assert dicom_windows((1.0,), (2.0,), (), "LINEAR_EXACT")[0].function == "LINEAR_EXACT"


def test_presets_put_the_images_own_windows_first_then_ct_presets(demo_display_set: DisplaySet) -> None:
    offered = presets(demo_display_set)
    assert [(w.name, w.center, w.width) for w in offered[:2]] == [("MEDIASTINUM", 40, 400), ("LUNG", -600, 1500)]
    assert offered[2:] == list(CT_PRESETS)
    assert [w.name for w in CT_PRESETS] == ["Lung", "Mediastinum", "Abdomen", "Bone", "Brain"]
    frame = np.zeros((4, 4), dtype=np.int16)
    assert initial_window(demo_display_set, frame) == offered[0]


def test_ct_presets_are_for_ct_only() -> None:
    [mr] = scan_paths([sample_file("MR_small.dcm")]).display_sets
    assert mr.series.modality == "MR"
    assert presets(mr) == own_windows(mr)
    assert not any(w in CT_PRESETS for w in presets(mr))
    [ct] = scan_paths([sample_file("CT_small.dcm")]).display_sets
    assert presets(ct)[-5:] == list(CT_PRESETS)


def test_without_own_windows_the_initial_window_fits_the_frame(tmp_path: Path) -> None:
    pixels = np.arange(100 * 100, dtype=np.uint16).reshape(100, 100)
    [display_set] = scan_paths([write_image(tmp_path / "plain.dcm", pixels)]).display_sets
    assert own_windows(display_set) == [] and presets(display_set) == []
    window = initial_window(display_set, pixels)
    assert window.name == "Auto"
    low, high = window.bounds
    assert low == pytest.approx(np.percentile(pixels, 0.5), rel=0.05)
    assert high == pytest.approx(np.percentile(pixels, 99.5), rel=0.05)


def test_auto_window_of_a_flat_frame_has_positive_width() -> None:
    window = auto_window(np.full((8, 8), 7, dtype=np.int16))
    assert window.width >= 1 and window.center == pytest.approx(7.5)


def test_rgba_rendering_repeats_the_grey_levels_with_opaque_alpha():
    from workstation.core.windowing import WindowLevel
    from workstation.render.windowing import WindowRenderer

    rng = np.random.default_rng(1)
    window = WindowLevel(40, 400)
    frames = {
        np.int16: rng.integers(-1024, 3000, (37, 41)).astype(np.int16),
        np.uint8: rng.integers(0, 256, (37, 41)).astype(np.uint8),
        np.float32: rng.normal(0, 300, (37, 41)).astype(np.float32),
    }
    for dtype, frame in frames.items():
        for invert in (False, True):
            renderer = WindowRenderer(np.dtype(dtype), invert=invert)
            grey = renderer.render(frame, window)
            rgba = renderer.render_rgba(frame, window)
            assert rgba.shape == frame.shape + (4,) and rgba.dtype == np.uint8
            for channel in range(3):
                np.testing.assert_array_equal(rgba[..., channel], grey)
            assert (rgba[..., 3] == 255).all()
    colour = rng.integers(0, 256, (5, 6, 3)).astype(np.uint8)
    rgba = WindowRenderer(np.dtype(np.uint8)).render_rgba(colour, window)
    np.testing.assert_array_equal(rgba[..., :3], colour)
