"""SeriesLoad without Qt: a cancelled load resumes with only what is missing; overlay planes ride along."""

from __future__ import annotations

import numpy as np
from fixtures_data import demo_catalog, demo_display_set, demo_study  # noqa: F401
from overlay_files import overlay_bits, write_overlay_image

import workstation.dicom.volume_reader as volume_reader
from workstation.dicom.scan import scan_paths
from workstation.services.loading import SeriesLoad


def _count_decodes(monkeypatch) -> dict[str, int]:
    counted: dict[str, int] = {}
    real = volume_reader._decode_into

    def counting(volume, header, targets):
        counted[header.sop_instance_uid] = counted.get(header.sop_instance_uid, 0) + 1
        return real(volume, header, targets)

    monkeypatch.setattr(volume_reader, "_decode_into", counting)
    return counted


def test_cancelled_load_resumes_decoding_only_what_is_missing(demo_display_set, demo_study, monkeypatch):
    decodes = _count_decodes(monkeypatch)
    load = SeriesLoad(demo_display_set)
    finished = []
    load.finished.connect(lambda problems, cancelled: finished.append(cancelled))
    stop_at_seven = lambda _indices: load.volume.loaded_count >= 7 and load.cancel()  # noqa: E731
    load.frames_ready.connect(stop_at_seven)
    load.run()
    load.frames_ready.disconnect(stop_at_seven)
    assert finished == [True] and load.volume.loaded_count == 7 and not load.complete and not load.busy
    first = load.volume.loaded.copy()
    assert load.volume.missing_frames == list(np.flatnonzero(~first))

    load.start().result(timeout=60)
    assert finished == [True, False] and load.complete and load.volume.fully_loaded and not load.busy
    assert len(decodes) == 40 and set(decodes.values()) == {1}  # the first seven were not decoded again
    np.testing.assert_array_equal(load.volume.array, demo_study.phantom.hu)


def test_start_while_running_is_the_same_run(demo_display_set):
    load = SeriesLoad(demo_display_set)
    first = load.start()
    assert load.start() is first
    first.result(timeout=60)
    assert load.complete and not load.busy


def test_overlay_planes_are_carried_into_the_volume(tmp_path):
    bits = overlay_bits(32, 32, (4, 5, 9, 20))
    write_overlay_image(tmp_path / "a.dcm", np.zeros((32, 32), np.uint16), bits, origin=(3, 1))
    (display_set,) = scan_paths([tmp_path]).display_sets
    load = SeriesLoad(display_set)
    seen = []
    load.frames_ready.connect(lambda indices: seen.append(sorted(load.volume.overlays)))
    load.run()
    assert seen == [[0]]  # in place before the frame is announced
    mask = load.volume.overlays[0][0].mask((32, 32))
    assert mask.sum() == 5 * 15 and mask[6, 5] and not mask[4, 5]
