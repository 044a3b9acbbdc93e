"""The PHI-planted corpus through a de-identified export: nothing planted survives in any byte, in any of the
usual encodings; private tags and overlays are gone; references resolve inside the export; a second export of
the same patient links up; CT pixels are untouched; burned-in text is gone for OCR; the SR's comments are
scrubbed; dciodvfy finds no new errors; one audit entry, no PHI in it."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import zipfile
from io import BytesIO

import pydicom
import pytest

from deid.conftest import SECRET
from deid.corpus import BURNED_WORDS
from workstation.deid import KeyedMapping
from workstation.deid.pixels import burned_in_words
from workstation.services.export import Destination, ExportRequest, export_deidentified


@pytest.fixture(scope="module")
def exported(corpus, reviewer, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "research-1"
    report = export_deidentified(ExportRequest(Destination("folder", str(out)), paths=(str(corpus.folder),)),
                                 reviewer.config, reviewer, SECRET)
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    datasets = {name: pydicom.dcmread(BytesIO(data)) for name, data in files.items() if name.endswith(".dcm")}
    return report, out, files, datasets


def by_modality(datasets, modality):
    return [ds for ds in datasets.values() if ds.Modality == modality]


def forms(value: str) -> list[bytes]:
    raw = value.encode("utf-8")
    return [raw, value.encode("latin-1", "ignore"), value.encode("utf-16-le"), value.encode("utf-16-be"),
            raw.hex().encode(), raw.hex().upper().encode()]


def test_every_instance_exported_with_a_manifest(exported):
    report, out, files, datasets = exported
    assert report.exit_code == 0, report.left_out
    assert report.written == 7 and len(datasets) == 7
    manifest = json.loads(files["manifest.json"])
    assert manifest["format"] == "workstation.deid-export/1"
    assert manifest["counts"] == {"written": 7, "left_out": 0}
    assert {e["file"] for e in manifest["instances"]} == set(datasets)
    assert [c["value"] for c in manifest["codes"]][:2] == ["113100", "113101"]
    assert manifest["summary"]["pixel_cleaned_instances"] == 1
    assert len(manifest["patients"]) == 1 and len(manifest["patients"][0]["studies"]) == 1
    assert not [p for p in out.parent.iterdir() if ".partial-" in p.name]


def test_no_planted_string_in_any_output_byte(exported, corpus):
    _, _, files, _ = exported
    assert len(corpus.planted) > 70
    leaks = [(value, where, name) for value, where in corpus.planted.items() for name, data in files.items()
             if any(form in data for form in forms(value))]
    assert leaks == []
    # the planted values really were in the input (the check can fail)
    inputs = b"".join(p.read_bytes() for p in corpus.files.values())
    assert all(any(form in inputs for form in forms(value)) for value in corpus.planted)


def test_private_tags_and_overlays_gone_identity_marked(exported):
    _, _, _, datasets = exported
    for ds in datasets.values():
        tags = [elem.tag for elem in ds.iterall()]
        assert not [t for t in tags if t.is_private]
        assert not [t for t in tags if 0x6000 <= t.group <= 0x60FF]
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_references_resolve_inside_the_export(exported):
    _, _, _, datasets = exported
    instances = {str(ds.SOPInstanceUID) for ds in datasets.values()}
    series = {str(ds.SeriesInstanceUID) for ds in datasets.values()}
    assert len({str(ds.StudyInstanceUID) for ds in datasets.values()}) == 1
    (sr,) = by_modality(datasets, "SR")
    referenced = [str(e.value) for e in sr.iterall() if e.keyword == "ReferencedSOPInstanceUID"]
    assert len(referenced) == 4 and set(referenced) <= instances
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == sr.StudyInstanceUID
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID in series
    (gsps,) = by_modality(datasets, "PR")
    shown = [str(e.value) for e in gsps.iterall() if e.keyword == "ReferencedSOPInstanceUID"]
    assert len(shown) == 2 and set(shown) <= instances
    assert gsps.ReferencedSeriesSequence[0].SeriesInstanceUID in series
    (text,) = [str(e.value) for e in gsps.iterall() if e.keyword == "UnformattedTextValue"]
    assert text.count("[REMOVED]") == 3  # the name, the MRN and the phone number; "tel" stays
    cts = by_modality(datasets, "CT")
    assert len({str(ct.FrameOfReferenceUID) for ct in cts}) == 1
    assert all(str(uid).startswith("2.25.") for uid in instances | series)


def test_ct_and_mr_pixels_unchanged(exported, corpus):
    _, _, _, datasets = exported
    mapping = KeyedMapping(SECRET)
    out = {str(ds.SOPInstanceUID): hashlib.sha256(ds.PixelData).hexdigest()
           for ds in by_modality(datasets, "CT") + by_modality(datasets, "MR")}
    assert {mapping.uid(uid): sha for uid, sha in corpus.ct_pixel_sha.items()} == out


def test_burned_in_text_no_longer_found_by_ocr(exported, corpus):
    _, _, _, datasets = exported
    before = burned_in_words(pydicom.dcmread(corpus.files["us"]))
    assert set(BURNED_WORDS) <= set(before)  # OCR reads the planted words in the input
    (us,) = by_modality(datasets, "US")
    assert us.BurnedInAnnotation == "NO"
    after = burned_in_words(us)
    assert not set(BURNED_WORDS) & set(after)


def test_sr_comments_scrubbed_and_dates_shifted_together(exported, corpus):
    _, _, _, datasets = exported
    (sr,) = by_modality(datasets, "SR")
    texts = [str(e.value) for e in sr.iterall() if e.keyword == "TextValue"]
    assert len(texts) == 2 and all("[REMOVED]" in t for t in texts)
    assert "Reader note" in texts[0] and "phone" in texts[0]  # the rest of the comment stays readable
    cts = sorted(by_modality(datasets, "CT"), key=lambda ds: int(ds.InstanceNumber))
    originals = [pydicom.dcmread(corpus.files[f"ct{n}"]) for n in (1, 2, 3)]

    def moment(ds, prefix):
        return (pydicom.valuerep.DA(ds[prefix + "Date"].value), pydicom.valuerep.TM(ds[prefix + "Time"].value))

    from datetime import datetime

    def interval(ds):
        (d1, t1), (d2, t2) = moment(ds, "Study"), moment(ds, "Content")
        return datetime.combine(d2, t2) - datetime.combine(d1, t1)

    assert [interval(ds) for ds in cts] == [interval(ds) for ds in originals]
    assert all(ds.StudyDate != o.StudyDate for ds, o in zip(cts, originals))
    assert cts[0].LongitudinalTemporalInformationModified == "MODIFIED"


def test_second_export_links_up(exported, corpus, reviewer, tmp_path):
    _, _, _, first = exported
    target = tmp_path / "again.zip"
    report = export_deidentified(ExportRequest(Destination("zip", str(target)), paths=(str(corpus.files["ct2"]),
                                                                                      str(corpus.files["sr"]))),
                                 reviewer.config, reviewer, SECRET)
    assert report.exit_code == 0 and report.written == 2
    with zipfile.ZipFile(target) as archive:
        second = [pydicom.dcmread(BytesIO(archive.read(n))) for n in archive.namelist() if n.endswith(".dcm")]
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    firsts = {str(ds.SOPInstanceUID): ds for ds in first.values()}
    for ds in second:
        same = firsts[str(ds.SOPInstanceUID)]
        assert (ds.PatientID, ds.PatientName, ds.StudyInstanceUID, ds.StudyDate) == \
               (same.PatientID, same.PatientName, same.StudyInstanceUID, same.StudyDate)


def test_one_audit_entry_without_phi(exported, reviewer, corpus):
    report = exported[0]
    (entry,) = [e for e in reviewer.store.audit_entries() if e.kind == "export"
                and e.details["export_id"] == report.export_id]
    assert entry.details["export_id"] == report.export_id
    assert entry.details["instances"] == 7 and entry.details["destination"] == "folder"
    text = json.dumps(entry.details) + entry.outcome_text
    assert not [v for v in corpus.planted if v in text and not v.startswith("1.2.826")]


def _errors(path) -> list[str]:
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]
    return sorted({re.sub(r"<[^>]*>|\"[^\"]*\"|\d+", "#", line) for line in lines})


def test_dciodvfy_finds_no_new_errors(exported, corpus):
    _, out, _, datasets = exported
    mapping = KeyedMapping(SECRET)
    by_uid = {str(ds.SOPInstanceUID): name for name, ds in datasets.items()}
    for role, path in corpus.files.items():
        original = pydicom.dcmread(path, stop_before_pixels=True)
        assert mapping.uid(str(original.SOPInstanceUID)) in by_uid, role
        written = out / by_uid[mapping.uid(str(original.SOPInstanceUID))]
        new = sorted(set(_errors(written)) - set(_errors(path)))
        assert new == [], f"{role}: {new}"
