"""The generated demo chest CT end to end: scan, ordering, exact HU, geometry, load order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_data import (DEMO_SIZE, DEMO_SLICES, demo_catalog, demo_display_set, demo_load,  # noqa: F401
                           demo_study, demo_volume)

from workstation.core.study import Catalog, DisplaySet
from workstation.core.volume import Volume
from workstation.demo import DemoStudy
from workstation.dicom.volume_reader import allocate_volume, decode_order, read_into
from workstation.services.loading import SeriesLoad


def test_scan_finds_one_patient_study_series(demo_catalog: Catalog, demo_study: DemoStudy) -> None:
    assert demo_catalog.problems == []
    assert demo_catalog.files_scanned == DEMO_SLICES
    assert len(demo_catalog.headers) == DEMO_SLICES
    assert len(demo_catalog.patients()) == 1
    [study] = demo_catalog.studies()
    assert study.study_instance_uid == demo_study.study_instance_uid
    assert study.patient.name == "DEMO^PHANTOM"
    [display_set] = demo_catalog.display_sets_of(study)
    assert display_set.series.series_instance_uid == demo_study.series_instance_uid
    assert display_set.series.modality == "CT"
    assert len(display_set.frames) == len(display_set.instances) == DEMO_SLICES
    assert display_set.warnings == []
    assert display_set.label == ""
    assert display_set.slice_spacing == pytest.approx(2.5)


def test_header_fields(demo_display_set: DisplaySet) -> None:
    header = demo_display_set.first
    assert (header.pixel.rows, header.pixel.columns) == (DEMO_SIZE, DEMO_SIZE)
    assert header.pixel.rescale_intercept == -1024 and header.pixel.rescale_slope == 1
    assert header.pixel_spacing == pytest.approx((358.4 / DEMO_SIZE,) * 2)
    assert header.spacing_source == "PixelSpacing"
    assert header.window_centers == (40.0, -600.0) and header.window_widths == (400.0, 1500.0)
    assert header.window_explanations == ("MEDIASTINUM", "LUNG")
    assert header.geometry.orientation == (1, 0, 0, 0, 1, 0)


def test_frames_ordered_by_position_not_file_name(demo_display_set: DisplaySet, demo_study: DemoStudy) -> None:
    z = [frame.geometry.position[2] for frame in demo_display_set.frames]
    assert np.all(np.diff(z) > 0)
    assert np.allclose(np.diff(z), 2.5)
    names = [Path(frame.instance.location.path).name for frame in demo_display_set.frames]
    assert names == [path.name for path in demo_study.files]  # the generator's slice order
    assert names != sorted(names)  # ...which the shuffled file names do not give
    assert [frame.instance.instance_number for frame in demo_display_set.frames] == list(range(1, DEMO_SLICES + 1))


def test_volume_is_int16_and_exactly_the_phantom(demo_load: SeriesLoad, demo_study: DemoStudy) -> None:
    volume = demo_load.volume
    assert demo_load.problems == []
    assert volume.array.dtype == np.int16
    assert volume.array.shape == demo_study.phantom.hu.shape
    assert volume.fully_loaded and volume.frame_errors == {}
    assert np.array_equal(volume.array, demo_study.phantom.hu)


def test_hu_at_nodules_lungs_and_air(demo_volume: Volume, demo_study: DemoStudy) -> None:
    phantom = demo_study.phantom
    assert phantom.nodules
    for nodule in phantom.nodules:
        k, row, col = nodule.center_index
        assert abs(float(demo_volume.array[k, row, col]) - nodule.hu) < 5 * phantom.noise_sigma_hu
    mid = DEMO_SLICES // 2
    assert np.median(demo_volume.array[mid, :4, :4]) == pytest.approx(-1000, abs=30)
    z = float(demo_volume.index_to_patient(0, 0, mid)[2])
    for x in (-105.0, 105.0):  # peripheral right and left lung, found through the volume's own geometry
        col, row, frame = np.rint(demo_volume.patient_to_index((x, -40.0, z))).astype(int)
        assert frame == mid
        patch = demo_volume.array[frame, row - 2:row + 3, col - 2:col + 3]
        assert -920 <= np.median(patch) <= -780


def test_index_to_patient_maps_nodule_centres(demo_volume: Volume, demo_study: DemoStudy) -> None:
    phantom = demo_study.phantom
    half_voxel = np.array([phantom.pixel_spacing_mm, phantom.pixel_spacing_mm, phantom.slice_thickness_mm]) / 2
    for nodule in phantom.nodules:
        k, row, col = nodule.center_index
        mm = demo_volume.index_to_patient(col, row, k)
        assert np.all(np.abs(mm - np.array(nodule.center_mm)) <= half_voxel + 1e-6)
        assert demo_volume.patient_to_index(tuple(mm)) == pytest.approx([col, row, k])
    assert demo_volume.index_to_patient(0, 0, 0) == pytest.approx(phantom.slice_position_mm(0))
    last = DEMO_SLICES - 1
    assert demo_volume.index_to_patient(0, 0, last) == pytest.approx(phantom.slice_position_mm(last))


def test_start_frame_is_decoded_first(demo_display_set: DisplaySet) -> None:
    start = 17
    order = decode_order(demo_display_set, start)
    assert order[0] is demo_display_set.frames[start].instance
    assert len(order) == DEMO_SLICES
    assert {h.sop_instance_uid for h in order} == {h.sop_instance_uid for h in demo_display_set.instances}
    load = SeriesLoad(demo_display_set, start_frame=start)
    ready: list[list[int]] = []
    progress: list[tuple[int, int]] = []
    finished: list[tuple] = []
    load.frames_ready.connect(ready.append)
    load.progress.connect(lambda done, total: progress.append((done, total)))
    load.finished.connect(lambda problems, cancelled: finished.append((problems, cancelled)))
    load.run()
    assert ready[0] == [start]
    assert sorted(i for batch in ready for i in batch) == list(range(DEMO_SLICES))
    assert progress[0] == (1, DEMO_SLICES) and progress[-1] == (DEMO_SLICES, DEMO_SLICES)
    assert finished == [([], False)]


def test_default_start_frame_is_the_middle(demo_display_set: DisplaySet) -> None:
    assert SeriesLoad(demo_display_set).start_frame == DEMO_SLICES // 2


def test_volume_reader_directly_and_cancel(demo_display_set: DisplaySet, demo_study: DemoStudy) -> None:
    volume = allocate_volume(demo_display_set)
    assert volume.array.dtype == np.int16 and not volume.loaded.any()
    assert read_into(volume, demo_display_set, start_frame=3) == []
    assert np.array_equal(volume.array, demo_study.phantom.hu)

    cancelled = SeriesLoad(demo_display_set, start_frame=0)
    cancelled.frames_ready.connect(lambda indices: cancelled.cancel())
    outcome: list[bool] = []
    cancelled.finished.connect(lambda problems, was_cancelled: outcome.append(was_cancelled))
    cancelled.run()
    assert outcome == [True]
    assert cancelled.volume.loaded.sum() == 1 and cancelled.volume.loaded[0]
