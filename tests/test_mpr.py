"""MPR sampling against the affine: every reformatted pixel holds the value at its patient point (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from workstation.core.study import DisplaySet, FrameGeometry, FrameRef, InstanceHeader, PatientRef, PixelFormat, SeriesRef, StudyRef, FileLocation
from workstation.core.volume import Volume, frame_affine, slice_normal
from workstation.render.mpr import MprGeometry, geometry_problem

COEF = np.array([0.7, -1.3, 2.1])  # value = COEF . (x, y, z) + 5: linear, so linear interpolation is exact


def make_volume(orientation=(1, 0, 0, 0, 1, 0), spacing=(0.8, 0.7), positions_along=None, shape=(12, 20, 24),
                origin=(-10.0, 20.0, -30.0), shear=(0.0, 0.0, 0.0), dtype=np.float32) -> Volume:
    """A volume whose voxel values are a linear function of their patient position."""
    frames, rows, cols = shape
    along = np.arange(frames) * 2.5 if positions_along is None else np.asarray(positions_along, float)
    normal = slice_normal(orientation)
    origins = np.array([np.asarray(origin) + d * normal + k * np.asarray(shear) for k, d in enumerate(along)])
    affine = frame_affine(tuple(origins[0]), tuple(orientation), spacing, normal * float(np.median(np.diff(along))))
    volume = Volume(np.zeros(shape, dtype), affine, spacing, frame_origins=origins)
    f, r, c = np.mgrid[0:frames, 0:rows, 0:cols]
    points = np.stack([volume.index_to_patient(cc, rr, ff) for ff, rr, cc in
                       zip(f.ravel(), r.ravel(), c.ravel())]).reshape(shape + (3,))
    volume.array[:] = (points @ COEF + 5).astype(dtype)
    volume.loaded[:] = True
    return volume


def expected(plane, geometry, image):
    """Expected values at every pixel of the plane whose point lies inside the voxel centres' hull."""
    nv, nu = plane.shape
    jj, ii = np.mgrid[0:nv, 0:nu]
    points = plane.origin + (ii[..., None] * plane.u + jj[..., None] * plane.v) * plane.spacing
    index = geometry.to_index(points)
    size = np.array(geometry.volume.array.shape[:3]) - 1
    inside = np.all((index >= 0) & (index <= size), axis=-1)
    return points @ COEF + 5, inside


@pytest.mark.parametrize("name", ["axial", "coronal", "sagittal"])
def test_axial_stack_reformats_to_the_values_at_each_pixels_patient_point(name):
    volume = make_volume()
    geometry = MprGeometry(volume)
    assert geometry.spacing == pytest.approx(0.7)  # isotropic display at the finest native spacing
    point = geometry.center + np.array([1.3, -2.2, 3.1])
    plane = geometry.plane(name, point)
    assert geometry._separable(plane) is not None  # the fast path
    image = geometry.reformat(plane)
    want, inside = expected(plane, geometry, image)
    assert inside.sum() > 0.5 * inside.size
    np.testing.assert_allclose(image[inside], want[inside], atol=1e-3)
    # the plane passes through the crosshair point
    assert plane.coords(point)[2] == pytest.approx(0.0, abs=1e-9)


def test_separable_and_general_paths_agree():
    volume = make_volume(dtype=np.int16)
    geometry = MprGeometry(volume)
    for name in ("axial", "coronal", "sagittal"):
        plane = geometry.plane(name, geometry.center)
        fast = geometry.reformat(plane)
        slow = geometry._sample_general(volume.array, plane, 0.0, float(volume.array.min()))
        assert fast.dtype == np.int16
        np.testing.assert_allclose(fast, np.rint(slow), atol=1)


def test_oblique_stack_goes_the_general_way_and_stays_exact():
    a = np.deg2rad(25)
    b = 0.3  # rows turned 25 degrees in the axial plane, columns tilted 17 degrees towards the feet
    orientation = (np.cos(a), np.sin(a), 0.0, -np.sin(a) * np.cos(b), np.cos(a) * np.cos(b), -np.sin(b))
    volume = make_volume(orientation=orientation, shape=(14, 24, 24))
    geometry = MprGeometry(volume)
    for name in ("axial", "coronal", "sagittal"):
        plane = geometry.plane(name, geometry.center)
        assert geometry._separable(plane) is None
        image = geometry.reformat(plane)
        want, inside = expected(plane, geometry, image)
        assert inside.sum() > 50
        np.testing.assert_allclose(image[inside], want[inside], atol=1e-3)


def test_gantry_tilt_and_gaps_follow_each_frames_own_origin():
    along = [0, 2, 4, 8, 10, 12.5, 15, 17.5]  # a gap after the third slice, then 2.5 mm steps
    volume = make_volume(positions_along=along, shape=(8, 16, 16))
    tilted = make_volume(shape=(8, 16, 16), shear=(0.0, 0.9, 0.0))  # each slice 0.9 mm further posterior
    for vol in (volume, tilted):
        geometry = MprGeometry(vol)
        plane = geometry.plane("coronal", geometry.center)
        image = geometry.reformat(plane)
        want, inside = expected(plane, geometry, image)
        np.testing.assert_allclose(image[inside], want[inside], atol=1e-3)
    assert MprGeometry(tilted)._separable(MprGeometry(tilted).plane("coronal", geometry.center)) is None


def test_sagittal_acquisition_gives_a_true_axial_plane():
    volume = make_volume(orientation=(0, 1, 0, 0, 0, -1), shape=(10, 18, 22))
    geometry = MprGeometry(volume)
    plane = geometry.plane("axial", geometry.center)
    assert geometry._separable(plane) is not None
    image = geometry.reformat(plane)
    want, inside = expected(plane, geometry, image)
    np.testing.assert_allclose(image[inside], want[inside], atol=1e-3)


def test_thick_slab_mip_finds_a_bright_voxel_off_the_plane():
    volume = make_volume(spacing=(1.0, 1.0), positions_along=np.arange(12) * 1.0, dtype=np.int16)
    volume.array[:] = 0
    volume.array[6, 10, 9] = 1000  # 3 mm posterior... of the coronal plane through row 7
    geometry = MprGeometry(volume)
    through = volume.index_to_patient(9, 7, 6)
    plane = geometry.plane("coronal", through)
    assert geometry.reformat(plane).max() == 0
    assert geometry.reformat(plane, slab_mm=10).max() == 1000
    assert geometry.reformat(plane, slab_mm=4).max() == 0  # 2 mm either side does not reach 3 mm
    x, y, _ = plane.coords(volume.index_to_patient(9, 10, 6))
    mip = geometry.reformat(plane, slab_mm=10)
    assert mip[int(round(y / plane.spacing)), int(round(x / plane.spacing))] == 1000


def test_box_cut_by_planes_matches_patient_extent():
    volume = make_volume(spacing=(1.0, 1.0), positions_along=np.arange(12) * 2.0)
    geometry = MprGeometry(volume)
    box = (5.0, 4.0, 9.0, 10.0)  # pixel edges c0, r0, c1, r1 on frames 3..5
    inside = volume.index_to_patient(6.5, 6.5, 4)
    coronal = geometry.plane("coronal", inside)
    x0, y0, x1, y1 = geometry.box_on_plane(coronal, box, 3, 5)
    lo = volume.index_to_patient(4.5, 3.5, 2.5)  # edges: centre coordinates minus a half
    hi = volume.index_to_patient(8.5, 9.5, 5.5)
    assert x1 - x0 == pytest.approx(abs(hi[0] - lo[0]))  # columns span 4 mm of x
    assert y1 - y0 == pytest.approx(abs(hi[2] - lo[2]))  # frames span 3 x 2 mm of z
    assert coronal.coords(lo)[0] == pytest.approx(x0)
    outside = volume.index_to_patient(6.5, 12.0, 4)
    assert geometry.box_on_plane(geometry.plane("coronal", outside), box, 3, 5) is None
    assert geometry.box_on_plane(geometry.plane("axial", volume.index_to_patient(6, 6, 8)), box, 3, 5) is None


def test_orientation_labels_of_the_three_planes():
    geometry = MprGeometry(make_volume())
    labels = {n: geometry.plane(n, geometry.center).labels for n in ("axial", "coronal", "sagittal")}
    assert (labels["axial"].left, labels["axial"].right, labels["axial"].top, labels["axial"].bottom) == ("R", "L", "A", "P")
    assert (labels["coronal"].left, labels["coronal"].right, labels["coronal"].top, labels["coronal"].bottom) == ("R", "L", "H", "F")
    assert (labels["sagittal"].left, labels["sagittal"].right, labels["sagittal"].top, labels["sagittal"].bottom) == ("A", "P", "H", "F")


def _display_set(orientation=(1.0, 0, 0, 0, 1.0, 0), spacing=(1.0, 1.0)):
    study = StudyRef("1.2", PatientRef("P", "N"))
    header = InstanceHeader(FileLocation("x"), "1.2.840.10008.5.1.4.1.1.2", "1.3", SeriesRef("1.4", study, modality="CT"),
                            "1.2.840.10008.1.2.1", PixelFormat(16, 16), pixel_spacing=spacing,
                            geometry=FrameGeometry((0, 0, 0), orientation))
    return DisplaySet(header.series, [FrameRef(header)] * 5)


def test_geometry_problems_are_named():
    volume = make_volume(shape=(5, 16, 16))
    assert geometry_problem(_display_set(), volume) is None
    assert "ImageOrientationPatient" in geometry_problem(_display_set(orientation=None), volume)
    assert "PixelSpacing" in geometry_problem(_display_set(spacing=None), volume)
    flat = make_volume(shape=(5, 16, 16))
    flat.frame_origins[:] = flat.frame_origins[0]
    assert "repeat" in geometry_problem(_display_set(), flat)
    two = make_volume(shape=(2, 16, 16))
    assert "at least 3" in geometry_problem(_display_set(), two)
    no_positions = make_volume(shape=(5, 16, 16))
    no_positions.frame_origins = None
    assert "ImagePositionPatient" in geometry_problem(_display_set(), no_positions)


def test_display_spacing_coarser_only_while_the_screen_cannot_show_more():
    from workstation.render.mpr import display_spacing

    assert display_spacing(0.7, 0.5) == 0.7  # zoomed in: full detail
    assert display_spacing(0.7, 0.7 * 1.3) == pytest.approx(0.7 * 1.25)
    assert display_spacing(0.7, 3.0) == pytest.approx(0.7 * 1.25 ** 6) and 0.7 * 1.25 ** 6 <= 3.0
    volume = make_volume()
    geometry = MprGeometry(volume)
    coarse = geometry.plane("coronal", geometry.center, spacing=2.0)
    full = geometry.plane("coronal", geometry.center)
    assert np.allclose(coarse.origin, full.origin) and coarse.spacing == 2.0
    assert coarse.shape[1] == int(np.floor((full.shape[1] - 1) * full.spacing / 2.0)) + 1
    image = geometry.reformat(coarse)  # the same patient points, fewer of them
    want, inside = expected(coarse, geometry, image)
    np.testing.assert_allclose(image[inside], want[inside], atol=1e-3)


def test_coarse_sampling_at_the_edges_repeats_the_outer_voxels():
    volume = make_volume(spacing=(1.0, 1.0), positions_along=np.arange(12) * 1.0, shape=(12, 30, 30))
    geometry = MprGeometry(volume)
    coarse = geometry.plane("coronal", volume.index_to_patient(10, 10, 5), spacing=3.0)
    fast = geometry.reformat(coarse)
    slow = geometry._sample_general(volume.array, coarse, 0.0, float(volume.array.min()))
    np.testing.assert_allclose(fast, slow, atol=1e-3)
    slab = geometry.reformat(coarse, slab_mm=4.0)
    slow_slab = geometry._sample_general(volume.array, coarse, 4.0, float(volume.array.min()))
    np.testing.assert_allclose(slab, slow_slab, atol=1e-3)


def test_a_stack_ordered_against_its_normal_reformats_the_same():
    volume = make_volume(positions_along=np.arange(12)[::-1] * 2.5)  # first slice highest along the normal
    geometry = MprGeometry(volume)
    for name in ("axial", "coronal", "sagittal"):
        plane = geometry.plane(name, geometry.center + np.array([0.4, -0.3, 0.7]))
        image = geometry.reformat(plane)
        want, inside = expected(plane, geometry, image)
        assert inside.sum() > 0.5 * inside.size
        np.testing.assert_allclose(image[inside], want[inside], atol=1e-3)
