"""Our own objects go out with the images: the stored AI run's result SR, the signed-off review SR (with the
readers' comments, scrubbed), GSPS and Parametric Map are built from the encrypted store, de-identified with the
same keyed mapping as the images, and their references resolve to the exported images."""

from __future__ import annotations

import sys
from io import BytesIO
from pathlib import Path

import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "results"))
from results_helpers import record_run, review_run  # noqa: E402

from deid.conftest import SECRET, open_session  # noqa: E402
from workstation.core.roles import Role  # noqa: E402
from workstation.demo import write_demo_study  # noqa: E402
from workstation.dicom.scan import scan_paths  # noqa: E402
from workstation.services.export import Destination, ExportRequest, export_deidentified  # noqa: E402
from workstation.services.review import ReviewSession, SeriesKey  # noqa: E402

COMMENT = "discussed with Mr Phantom, MRN DEMO-0007, call 020 7946 0958 on 2026-11-20"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    study = write_demo_study(tmp_path_factory.mktemp("deid-results-study"), seed=3, slices=16, size=128)
    display_set = scan_paths([str(study.directory)]).display_sets[0]
    session = open_session(tmp_path_factory.mktemp("deid-results-store"), Role.REVIEWER)
    run = record_run(session.store, display_set, heat=False)  # no Parametric Map: the SRs and GSPS suffice here
    review = ReviewSession(session.store, SeriesKey.of(display_set), run.model, run.findings)
    review.comment("f-a", COMMENT)
    review_run(session.store, display_set, run)
    out = tmp_path_factory.mktemp("deid-results-out") / "export.zip"
    report = export_deidentified(ExportRequest(Destination("zip", str(out)), paths=(str(study.directory),)),
                                 session.config, session, SECRET)
    import zipfile

    with zipfile.ZipFile(out) as archive:
        data = {n: archive.read(n) for n in archive.namelist()}
    session.store.close()
    return report, data


def test_result_objects_exported_with_the_images(exported):
    report, data = exported
    assert report.exit_code == 0, report.left_out
    datasets = [pydicom.dcmread(BytesIO(b)) for n, b in data.items() if n.endswith(".dcm")]
    by_modality = {}
    for ds in datasets:
        by_modality.setdefault(ds.Modality, []).append(ds)
    assert len(by_modality["CT"]) == 16
    assert {"SR", "PR"} <= set(by_modality) and len(by_modality["SR"]) == 2
    images = {str(ds.SOPInstanceUID) for ds in by_modality["CT"]}
    assert len({str(ds.StudyInstanceUID) for ds in datasets}) == 1 and len({str(ds.PatientID) for ds in datasets}) == 1
    for ds in datasets:
        if ds.Modality == "CT":
            continue
        referenced = {str(e.value) for e in ds.iterall() if e.keyword == "ReferencedSOPInstanceUID"}
        assert referenced and referenced <= images | {str(d.SOPInstanceUID) for d in datasets}, ds.Modality
        assert ds.PatientIdentityRemoved == "YES"


def test_reader_comments_go_out_scrubbed(exported):
    _, data = exported
    everything = b"".join(data.values())
    for planted in (b"DEMO-0007", b"PHANTOM", b"Phantom", b"020 7946 0958", b"2026-11-20"):
        assert planted not in everything
    texts = [str(e.value) for n, b in data.items() if n.endswith(".dcm")
             for e in pydicom.dcmread(BytesIO(b)).iterall() if e.keyword == "TextValue"]
    (comment,) = [t for t in texts if t.startswith("discussed with")]
    assert comment.count("[REMOVED]") >= 3
