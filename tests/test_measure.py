"""Measurement geometry (core.measure): physical lengths and angles, ROI statistics, diameters, axes of a region."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workstation.core.measure import (
    DIAMETER, ELLIPSE, LENGTH, RECTANGLE, UNCALIBRATED, Calibration, MeasureError, UltrasoundRegion, angle_deg,
    axes_from_mask, calibration, default_short_axis, distance, lung_rads_mean, measure, perpendicular_short_axis,
    propose_axes, roi_mask,
)

ANISO = calibration((0.5, 2.0))  # 0.5 mm between rows, 2 mm between columns


def test_length_on_an_anisotropic_grid_applies_row_and_column_spacing_separately():
    assert distance((0, 0), (10, 0), ANISO) == pytest.approx(20.0)  # 10 columns of 2 mm
    assert distance((0, 0), (0, 10), ANISO) == pytest.approx(5.0)  # 10 rows of 0.5 mm
    assert distance((1, 1), (4, 9), ANISO) == pytest.approx(math.hypot(3 * 2.0, 8 * 0.5))
    reading = measure(LENGTH, [(1, 1), (4, 9)], ANISO)
    assert reading.values["length"] == pytest.approx(math.hypot(6.0, 4.0)) and reading.text == "7.2 mm"
    assert reading.warning == ""


def test_uncalibrated_images_measure_in_pixels_with_a_warning_and_detector_spacing_says_so():
    for spacing in (None, (0.0, 1.0), (float("nan"), 1.0)):
        cal = calibration(spacing)
        reading = measure(LENGTH, [(0, 0), (3, 4)], cal)
        assert (cal.unit, reading.text, reading.warning) == ("px", "5.0 px", UNCALIBRATED)
    detector = measure(LENGTH, [(0, 0), (10, 0)], calibration((0.2, 0.2), "ImagerPixelSpacing"))
    assert detector.text == "2.0 mm" and "magnification" in detector.warning


def test_ultrasound_regions_calibrate_points_inside_one_region_only():
    bmode = UltrasoundRegion(0, 0, 99, 79, delta_x_mm=0.3, delta_y_mm=0.3)
    doppler = UltrasoundRegion(0, 80, 99, 119, delta_x_mm=10.0, delta_y_mm=0.5)
    regions = (bmode, doppler)
    inside = calibration(None, regions=regions, points=((10, 10), (20, 10)))
    assert inside.source == "ultrasound region" and measure(LENGTH, [(10, 10), (20, 10)], inside).text == "3.0 mm"
    strip = calibration(None, regions=regions, points=((10, 90), (10, 100)))
    assert measure(LENGTH, [(10, 90), (10, 100)], strip).values["length"] == pytest.approx(5.0)
    across = calibration((0.1, 0.1), regions=regions, points=((10, 10), (10, 100)))
    assert across.unit == "px" and "across the ultrasound" in across.warning


def test_angle_is_taken_in_physical_space():
    square = calibration((1.0, 1.0))
    assert angle_deg((10, 0), (0, 0), (0, 10), square) == pytest.approx(90.0)
    assert angle_deg((10, 0), (0, 0), (10, 10), square) == pytest.approx(45.0)
    # on 2 mm columns x 0.5 mm rows the "pixel diagonal" is far from 45 degrees
    assert angle_deg((10, 0), (0, 0), (10, 10), ANISO) == pytest.approx(math.degrees(math.atan2(5.0, 20.0)))
    with pytest.raises(MeasureError):
        angle_deg((0, 0), (0, 0), (1, 1), square)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(7)
    return rng.normal(40.0, 12.0, (64, 80)).round().astype(np.int16)


def test_rectangle_statistics_match_numpy_on_the_same_pixels(image):
    reading = measure(RECTANGLE, [(10, 20), (30, 28)], ANISO, image, "HU")
    window = image[20:28, 10:30].astype(float)
    assert reading.values["pixels"] == window.size
    for name, value in (("mean", window.mean()), ("sd", window.std()), ("min", window.min()), ("max", window.max())):
        assert reading.values[name] == pytest.approx(value)
    assert reading.values["area"] == pytest.approx(20 * 2.0 * 8 * 0.5)
    assert "HU" in reading.text and "mm²" in reading.text


def test_ellipse_statistics_match_numpy_on_a_known_mask(image):
    corners = ((20.0, 10.0), (40.0, 30.0))  # a circle of radius 10 px centred on (30, 20)
    yy, xx = np.mgrid[0:64, 0:80]
    known = (xx + 0.5 - 30) ** 2 + (yy + 0.5 - 20) ** 2 <= 100
    mask, (r0, c0) = roi_mask(ELLIPSE, corners, image.shape)
    placed = np.zeros_like(known)
    placed[r0:r0 + mask.shape[0], c0:c0 + mask.shape[1]] = mask
    assert (placed == known).all()
    reading = measure(ELLIPSE, corners, calibration((1.0, 1.0)), image)
    values = image[known].astype(float)
    assert reading.values["mean"] == pytest.approx(values.mean()) and reading.values["sd"] == pytest.approx(values.std())
    assert (reading.values["min"], reading.values["max"], reading.values["pixels"]) == (values.min(), values.max(), known.sum())
    assert reading.values["area"] == pytest.approx(math.pi * 100)


def test_roi_partly_outside_is_clipped_and_one_outside_or_on_colour_is_refused(image):
    clipped = measure(RECTANGLE, [(-5, -5), (4, 3)], ANISO, image)
    assert clipped.values["pixels"] == 4 * 3
    with pytest.raises(MeasureError):
        measure(RECTANGLE, [(100, 100), (120, 120)], ANISO, image)
    with pytest.raises(MeasureError):
        measure(ELLIPSE, [(1, 1), (9, 9)], ANISO, np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(MeasureError):
        measure(LENGTH, [(1, 1)], ANISO)


def test_nodule_diameter_reads_long_short_and_the_lung_rads_mean():
    cal = calibration((0.7, 0.7))
    points = default_short_axis((10, 10), (30, 10), cal)
    assert distance(points[2], points[3], cal) == pytest.approx(7.0)  # half the 14 mm long axis
    reading = measure(DIAMETER, points, cal)
    assert (reading.values["long"], reading.values["short"]) == (pytest.approx(14.0), pytest.approx(7.0))
    assert reading.values["mean"] == lung_rads_mean(14.0, 7.0) == 10.5
    assert reading.text.startswith("14.0 x 7.0 mm")


def test_the_short_axis_is_kept_perpendicular_in_millimetres():
    long_a, long_b = (10.0, 10.0), (30.0, 30.0)
    fixed = perpendicular_short_axis([long_a, long_b, (12.0, 25.0), (25.0, 14.0)], ANISO)
    u = ANISO.to_mm(long_b) - ANISO.to_mm(long_a)
    v = ANISO.to_mm(fixed[3]) - ANISO.to_mm(fixed[2])
    assert abs(np.dot(u, v)) < 1e-9 * np.linalg.norm(u) * np.linalg.norm(v) + 1e-9
    assert fixed[:2] == [long_a, long_b]


def test_axes_of_an_elliptic_region_on_an_anisotropic_grid():
    cal = calibration((0.5, 1.0))  # rows 0.5 mm, columns 1 mm
    yy, xx = np.mgrid[0:100, 0:60]
    # 24 mm wide (24 columns), 10 mm tall (20 rows): an axis-aligned ellipse in mm
    mask = ((xx + 0.5 - 30) / 12) ** 2 + ((yy + 0.5 - 50) / 10) ** 2 <= 1
    points = axes_from_mask(mask, cal)
    long, short = distance(points[0], points[1], cal), distance(points[2], points[3], cal)
    assert long == pytest.approx(24.0, abs=1.0) and short == pytest.approx(10.0, abs=0.6)
    tilt = math.degrees(math.atan2(abs(points[1][1] - points[0][1]) * 0.5, abs(points[1][0] - points[0][0])))
    assert tilt < 10  # along the rows (a digital ellipse's longest chord joins the corners of its flat ends)


def test_propose_axes_takes_the_peak_region_of_the_box_only():
    heat = np.zeros((64, 64), np.uint8)
    yy, xx = np.mgrid[0:64, 0:64]
    heat[(xx - 20) ** 2 / 64 + (yy - 30) ** 2 / 16 <= 1] = 220  # 16 x 8 px blob
    heat[(xx - 40) ** 2 + (yy - 30) ** 2 <= 9] = 120  # a weaker blob in the same box
    cal = calibration((0.8, 0.8))
    points = propose_axes(heat, (5, 15, 50, 45), cal)
    long, short = distance(points[0], points[1], cal), distance(points[2], points[3], cal)
    assert long == pytest.approx(17 * 0.8, abs=1.0) and short == pytest.approx(9 * 0.8, abs=1.0)
    assert max(p[0] for p in points) < 32  # the weaker blob is not part of it
    with pytest.raises(MeasureError):
        propose_axes(heat, (50, 0, 64, 10), cal)


def test_ultrasound_regions_are_read_from_the_header_and_calibrate_a_length(tmp_path):
    from fixtures_data import write_image
    from pydicom.dataset import Dataset

    from workstation.core.study import FileLocation
    from workstation.dicom.header import read_header

    def region(x0, y0, x1, y1, dx_cm, dy_cm, units=3):
        item = Dataset()
        item.RegionLocationMinX0, item.RegionLocationMinY0, item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x0, y0, x1, y1
        item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = units
        item.PhysicalDeltaX, item.PhysicalDeltaY, item.RegionSpatialFormat = dx_cm, dy_cm, 1
        return item

    regions = [region(10, 10, 200, 120, 0.03, 0.03),  # B-mode, 0.3 mm
               region(0, 130, 255, 190, 0.5, 0.02, units=4),  # a Doppler strip in seconds: not a distance
               region(0, 0, 999, 10, 0.01, 0.01)]  # outside the image: ignored
    path = write_image(tmp_path / "us.dcm", np.zeros((200, 256), np.uint8), Modality="US",
                       SequenceOfUltrasoundRegions=regions)
    header = read_header(FileLocation(str(path)))
    assert header.pixel_spacing is None and len(header.ultrasound_regions) == 1
    (bmode,) = header.ultrasound_regions
    assert bmode.delta_x_mm == pytest.approx(0.3) and (bmode.x0, bmode.x1, bmode.y1) == (10, 200, 120)
    inside = ((20.0, 20.0), (120.0, 20.0))
    cal = calibration(header.pixel_spacing, header.spacing_source, header.ultrasound_regions, inside)
    assert measure(LENGTH, inside, cal).values["length"] == pytest.approx(30.0)
    strip = ((20.0, 150.0), (120.0, 150.0))
    cal = calibration(header.pixel_spacing, header.spacing_source, header.ultrasound_regions, strip)
    assert cal.unit == "px" and measure(LENGTH, strip, cal).warning
