"""Decoding runs bounded: a decoder's panic or a runaway decode is a problem for that file only, and a load
always reports finished, with a reason."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fixtures_data import demo_study, sample_file  # noqa: F401
from pydicom.encaps import encapsulate, generate_fragments

from workstation.core.study import FileLocation, InstanceHeader
from workstation.demo import DemoStudy
from workstation.dicom import decode_worker, limits, volume_reader
from workstation.dicom.header import read_header
from workstation.dicom.pixels import DecodeError, decode_instance
from workstation.dicom.scan import scan_paths
from workstation.services.loading import SeriesLoad


class FakePanic(BaseException):
    """What pyo3 raises for a Rust panic: not an Exception."""


def run_load(display_set) -> tuple[SeriesLoad, list]:
    load = SeriesLoad(display_set)
    finished: list = []
    load.finished.connect(lambda problems, cancelled: finished.append((list(problems), cancelled)))
    load.run()
    return load, finished


def test_rle_decoder_panic_on_a_wrong_columns_value_is_a_problem_for_that_file(tmp_path: Path) -> None:
    ds = pydicom.dcmread(sample_file("MR_small_RLE.dcm"))
    ds.Columns = 7  # pylibjpeg-rle indexes past its buffer and panics (PanicException, a BaseException)
    ds.save_as(tmp_path / "rle7.dcm")
    [display_set] = scan_paths([tmp_path / "rle7.dcm"]).display_sets
    load, finished = run_load(display_set)
    [(problems, cancelled)] = finished
    [problem] = problems
    assert problem.reason.startswith("pixel data could not be decoded (") and not cancelled
    assert load.volume.frame_errors == {0: problem.reason}


def test_a_panic_in_one_file_leaves_the_other_slices_loaded(demo_study: DemoStudy, monkeypatch) -> None:
    [display_set] = scan_paths([demo_study.directory]).display_sets
    victim = display_set.frames[1].instance
    real_native, real_pixels = volume_reader.read_native_into, pydicom.Dataset.pixel_array.fget

    def pixels(ds):
        if ds.SOPInstanceUID == victim.sop_instance_uid:
            raise FakePanic("index out of bounds")  # as a Rust decoder plugin does
        return real_pixels(ds)

    monkeypatch.setattr(volume_reader, "read_native_into", lambda h, slot: h != victim and real_native(h, slot))
    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(pixels))
    load, finished = run_load(display_set)
    [(problems, _)] = finished
    assert [p.location for p in problems] == [victim.location]
    assert "FakePanic" in problems[0].reason
    assert load.volume.loaded.sum() == len(display_set.frames) - 1


def test_an_unexpected_failure_still_finishes_the_load_with_its_name(demo_study: DemoStudy, monkeypatch) -> None:
    """Before: "loading stopped: " with nothing after it (MemoryError has no message), or no finish at all."""
    [display_set] = scan_paths([demo_study.files[0]]).display_sets
    for failure in (MemoryError(), FakePanic()):
        def fail(*args, failure=failure, **kwargs):
            raise failure

        monkeypatch.setattr("workstation.services.loading.read_into", fail)
        _, finished = run_load(display_set)
        [(problems, cancelled)] = finished
        [problem] = problems
        assert problem.reason == f"loading stopped: {type(failure).__name__}" and not cancelled


def test_a_series_too_large_to_hold_finishes_with_the_reason(demo_study: DemoStudy, monkeypatch) -> None:
    monkeypatch.setattr(volume_reader, "MAX_VOLUME_BYTES", 1000)
    [display_set] = scan_paths([demo_study.files[0]]).display_sets
    load, finished = run_load(display_set)
    [(problems, _)] = finished
    assert problems[0].reason.startswith("series too large to load")
    assert load.complete and load.volume.frame_errors == {0: problems[0].reason}


# -- decoding in a worker ------------------------------------------------------------------------


def forged_jpeg(path: Path, size: int) -> Path:
    """A 100 x 100 JPEG whose frame header and Rows/Columns both claim `size` x `size`: every check agrees."""
    ds = pydicom.dcmread(sample_file("SC_rgb_jpeg_dcmtk.dcm"))
    [_, stream] = generate_fragments(ds.PixelData)
    stream = bytearray(stream)
    struct.pack_into(">HH", stream, stream.index(b"\xff\xc0") + 5, size, size)
    ds.PixelData = encapsulate([bytes(stream)])
    ds.Rows = ds.Columns = size
    ds.save_as(path)
    return path


def test_a_codestream_claiming_far_more_than_it_holds_is_decoded_in_a_worker(tmp_path: Path, monkeypatch) -> None:
    header = read_header(FileLocation(str(forged_jpeg(tmp_path / "forged.dcm", 2000))))
    assert isinstance(header, InstanceHeader) and header.isolate_decode  # 12 MB from 1.7 kB
    plain = read_header(FileLocation(sample_file("SC_rgb_jpeg_dcmtk.dcm")))
    assert not plain.isolate_decode
    calls: list = []
    real = decode_worker.decode
    monkeypatch.setattr(decode_worker, "decode", lambda h, dtype: calls.append(h) or real(h, dtype))
    frames = decode_instance(header, np.dtype(np.uint8))
    assert frames.shape == (1, 2000, 2000, 3) and calls == [header]


def test_a_decode_running_past_its_time_is_stopped_and_the_worker_replaced(tmp_path: Path) -> None:
    good = read_header(FileLocation(sample_file("SC_rgb_jpeg_dcmtk.dcm")))
    fifo = tmp_path / "never.dcm"
    os.mkfifo(fifo)  # opening it blocks forever: the worker hangs as a runaway decoder would
    stuck = replace(good, location=FileLocation(str(fifo)))
    started = time.monotonic()
    with pytest.raises(decode_worker.WorkerFailed, match="took longer than 1 s"):
        decode_worker.decode(stuck, np.dtype(np.uint8), timeout=1.0)
    assert time.monotonic() - started < 30  # the worker's start-up included
    frames = decode_worker.decode(good, np.dtype(np.uint8))  # a fresh worker
    assert frames.shape == (1, 100, 100, 3)


def test_a_worker_failure_is_a_decode_error_for_that_file(tmp_path: Path) -> None:
    header = read_header(FileLocation(str(forged_jpeg(tmp_path / "forged.dcm", 2000))))
    broken = replace(header, location=FileLocation(str(tmp_path / "gone.dcm")))
    with pytest.raises(DecodeError, match="cannot read file"):
        decode_instance(broken, np.dtype(np.uint8))


# -- the viewer, as a user runs it ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["decoder panic", "pixel spacing 1e308"])
def test_screenshot_of_a_hostile_series_completes(tmp_path: Path, demo_study: DemoStudy, kind: str) -> None:
    """Before: after an RLE panic or with PixelSpacing 1e308 the load never said finished: --screenshot waited forever."""
    folder = tmp_path / "in"
    folder.mkdir()
    if kind == "decoder panic":
        ds = pydicom.dcmread(sample_file("MR_small_RLE.dcm"))
        ds.Columns = 7
        ds.save_as(folder / "rle7.dcm")
    else:
        for source in demo_study.files[:4]:
            ds = pydicom.dcmread(source)
            ds.PixelSpacing = ["1e308", "1e308"]
            ds.save_as(folder / source.name)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    shot = tmp_path / "shot.png"
    done = subprocess.run([sys.executable, "-m", "workstation", str(folder), "--screenshot", str(shot)],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "timed out" not in done.stderr and "Traceback" not in done.stderr
    assert shot.stat().st_size > 0


def teardown_module() -> None:
    decode_worker.shutdown()
