"""A large export is spread over worker processes: the same bytes as one process, a cancel and a dying worker
leave nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

from deid.conftest import SECRET, open_session, site
from workstation.core.roles import Role
from workstation.core.tasks import CancelToken
from workstation.demo.phantom import make_chest_phantom
from workstation.demo.writer import write_ct_series
from workstation.services import export_work
from workstation.services.export import Destination, ExportError, ExportRequest, export_deidentified


@pytest.fixture(scope="module")
def many(corpus, tmp_path_factory):
    """The planted corpus (burned-in ultrasound, SR, GSPS, overlay, private tags) and a 30-slice CT: past
    PARALLEL_FROM, so the export goes to the workers."""
    folder = tmp_path_factory.mktemp("many")
    shutil.copytree(corpus.folder, folder / "planted")
    write_ct_series(make_chest_phantom(seed=3, slices=30, size=48, nodule_count=1), folder / "ct", 3)
    count = sum(1 for p in folder.rglob("*") if p.is_file())
    assert count >= export_work.PARALLEL_FROM
    return folder, count


def _export(tmp_path, name, folder, workers, **kwargs):
    session = open_session(tmp_path / name, Role.REVIEWER, site(workers=workers))
    try:
        report = export_deidentified(ExportRequest(Destination("folder", str(tmp_path / name / "out")),
                                                   paths=(str(folder),), include_results=False),
                                     session.config, session, SECRET, **kwargs)
        return report, session.store.last_entry("export")
    finally:
        session.store.close()


def _files(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.dcm"))}


def test_workers_write_the_same_objects_as_one_process(many, tmp_path):
    folder, count = many
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one, _ = _export(tmp_path, "one", folder, 1)
    two, audit = _export(tmp_path, "two", folder, 2)
    assert export_work._pool._executor is not None  # the workers ran it (and wait for the next export)
    assert one.exit_code == two.exit_code == 0 and one.written == two.written == count
    serial, parallel = _files(tmp_path / "one" / "out"), _files(tmp_path / "two" / "out")
    assert len(serial) == count and serial == parallel  # same names, same bytes, in the same order
    manifests = [json.loads((tmp_path / n / "out" / "manifest.json").read_text()) for n in ("one", "two")]
    assert manifests[0]["instances"] == manifests[1]["instances"]
    assert manifests[1]["summary"]["pixel_cleaned_instances"] == 1  # the ultrasound's OCR ran in a worker
    assert audit.details["instances"] == count and audit.details["studies"]


def test_cancel_and_a_killed_worker_leave_nothing(many, tmp_path):
    folder, _ = many
    cancel = CancelToken()

    def cancel_midway(done, total):
        if done == 10:
            cancel.cancel()

    (tmp_path / "c").mkdir()
    report, audit = _export(tmp_path, "c", folder, 2, progress=cancel_midway, cancel=cancel)
    assert report.cancelled and report.written == 0 and audit.outcome_text == "cancelled"
    assert not (tmp_path / "c" / "out").exists() and not [p for p in (tmp_path / "c").iterdir() if ".partial-" in p.name]

    def kill_a_worker(done, total):
        if done == 5:
            pid = next(iter(export_work._pool._executor._processes))
            os.kill(pid, signal.SIGKILL)

    (tmp_path / "k").mkdir()
    with pytest.raises(ExportError, match="worker process ended unexpectedly"):
        _export(tmp_path, "k", folder, 2, progress=kill_a_worker)
    assert not (tmp_path / "k" / "out").exists() and not [p for p in (tmp_path / "k").iterdir() if ".partial-" in p.name]
    (tmp_path / "again").mkdir()
    report, _ = _export(tmp_path, "again", folder, 2)
    assert report.exit_code == 0  # a fresh pool for the next export
