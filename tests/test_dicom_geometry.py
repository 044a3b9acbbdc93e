"""Voxel <-> patient mapping stays exact across a gap in the stack."""

from __future__ import annotations

import numpy as np
import pytest

from workstation.dicom.scan import scan_paths
from workstation.dicom.volume_reader import allocate_volume

from fixtures_data import copy_series, demo_study  # noqa: F401 - session fixture


def test_frames_after_a_gap_map_to_their_own_positions(demo_study, tmp_path):
    files = copy_series(demo_study, tmp_path)
    for path in files[10:13]:
        path.unlink()
    (display_set,) = scan_paths([tmp_path]).display_sets
    assert any("irregular slice spacing" in w for w in display_set.warnings)
    volume = allocate_volume(display_set)
    spacing = demo_study.phantom.pixel_spacing_mm
    for k, frame in enumerate(display_set.frames):
        assert volume.index_to_patient(0, 0, k) == pytest.approx(frame.geometry.position)
        assert volume.index_to_patient(3, 2, k) == pytest.approx(np.add(frame.geometry.position, [3 * spacing, 2 * spacing, 0]))
        assert volume.patient_to_index(tuple(volume.index_to_patient(5, 7, k))) == pytest.approx([5, 7, k])
    # halfway across the gap (frames 9 and 10 are 4 slice thicknesses apart)
    z9, z10 = display_set.frames[9].geometry.position[2], display_set.frames[10].geometry.position[2]
    assert volume.index_to_patient(0, 0, 9.5)[2] == pytest.approx((z9 + z10) / 2)
    assert volume.patient_to_index((0.0, 0.0, (z9 + z10) / 2))[2] == pytest.approx(9.5)
