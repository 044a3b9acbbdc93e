"""Echo, find, move and get through the product's own code against a real Orthanc."""

from __future__ import annotations

import pydicom
import pytest

from workstation.core.pacs import StudyQuery
from workstation.core.tasks import CancelToken
from workstation.dicom.scan import scan_paths

from netpeers.site import node_settings


@pytest.fixture
def pacs(pacs_factory, loaded_orthanc):
    return pacs_factory(MAIN=node_settings(loaded_orthanc))


def demo_uid(net_demo_study) -> str:
    return net_demo_study.study_instance_uid


def test_echo(pacs):
    assert 0 < pacs.echo("MAIN") < 5


def test_find_by_patient_name_wildcard(pacs, net_demo_study):
    matches = pacs.find_studies("MAIN", StudyQuery(patient_name="DEMO*"))
    assert [m.study_instance_uid for m in matches] == [net_demo_study.study_instance_uid]
    match = matches[0]
    assert match.patient_name == "DEMO^PHANTOM" and match.patient_id == "DEMO-0005"
    assert match.modalities == ("CT",) and match.instance_count == 30 and match.series_count == 1
    assert match.description == "CT CHEST DEMO (SYNTHETIC)"


def test_find_by_every_key(pacs, net_demo_study, loaded_orthanc):
    all_studies = pacs.find_studies("MAIN", StudyQuery())
    assert len(all_studies) == len(loaded_orthanc.study_uids()) == 5
    demo = net_demo_study.study_instance_uid
    assert [m.study_instance_uid for m in pacs.find_studies("MAIN", StudyQuery(patient_id="DEMO-0005"))] == [demo]
    by_accession = pacs.find_studies("MAIN", StudyQuery(accession_number=all_studies[0].accession_number or "x"))
    assert all(m.accession_number == (all_studies[0].accession_number or "x") for m in by_accession)
    assert demo in [m.study_instance_uid for m in pacs.find_studies("MAIN", StudyQuery(date_from="20231231", date_to="20240102"))]
    assert demo not in [m.study_instance_uid for m in pacs.find_studies("MAIN", StudyQuery(date_from="20240102"))]
    assert demo in [m.study_instance_uid for m in pacs.find_studies("MAIN", StudyQuery(modality="CT"))]
    assert demo not in [m.study_instance_uid for m in pacs.find_studies("MAIN", StudyQuery(modality="MR"))]
    assert [m.study_instance_uid for m in pacs.find_studies("MAIN", StudyQuery(description="chest demo"))] == [demo]
    assert pacs.find_studies("MAIN", StudyQuery(patient_name="NOBODY*")) == []


def test_find_series(pacs, net_demo_study):
    (series,) = pacs.find_series("MAIN", net_demo_study.study_instance_uid)
    assert series.series_instance_uid == net_demo_study.series_instance_uid
    assert (series.modality, series.number, series.instance_count) == ("CT", 2, 30)
    assert series.description == "Chest CT phantom 2.5 mm"


@pytest.mark.parametrize("method", ["move", "get"])
def test_retrieve_study_lands_in_the_cache_and_opens(pacs, net_demo_study, method):
    seen = []
    result = pacs.retrieve("MAIN", net_demo_study.study_instance_uid, method=method,
                           progress=lambda progress, stored: seen.append((progress, stored)))
    assert result.ok and result.status == "complete", result
    assert (result.received, result.new, result.failed) == (30, 30, 0)
    assert seen and seen[-1][0].final and seen[-1][0].completed == 30
    assert any(p.remaining is not None and p.expected == 30 for p, _ in seen)
    folder = pacs.study_dir(net_demo_study.study_instance_uid)
    files = sorted(folder.glob("*.dcm"))
    assert len(files) == 30
    # names are ours (hashes), never UIDs
    assert all(net_demo_study.study_instance_uid not in f.name and "." not in f.stem for f in files)
    (display_set,) = scan_paths([folder]).display_sets
    assert len(display_set.frames) == 30 and not display_set.warnings
    original = {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f).PixelData for f in net_demo_study.files}
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.PixelData == original[ds.SOPInstanceUID]


def test_retrieving_again_stores_nothing_twice(pacs, net_demo_study):
    first = pacs.retrieve("MAIN", net_demo_study.study_instance_uid, method="move")
    second = pacs.retrieve("MAIN", net_demo_study.study_instance_uid, method="get")
    assert (first.new, second.new, second.received) == (30, 0, 30)
    assert len(list(pacs.study_dir(net_demo_study.study_instance_uid).glob("*.dcm"))) == 30


@pytest.mark.parametrize("method", ["move", "get"])
def test_retrieve_chosen_series_only(pacs, loaded_orthanc, sample_files, method):
    emri = pydicom.dcmread(sample_files[3], stop_before_pixels=True)  # emri_small: one multi-frame instance
    result = pacs.retrieve("MAIN", emri.StudyInstanceUID, [emri.SeriesInstanceUID], method=method)
    assert result.ok and result.received == 1
    stored = list(pacs.study_dir(emri.StudyInstanceUID).glob("*.dcm"))
    assert len(stored) == 1 and pydicom.dcmread(stored[0]).NumberOfFrames == 10


def test_compressed_instances_arrive_unchanged(pacs, sample_files):
    j2k = pydicom.dcmread(sample_files[2])  # JPEG2000.dcm stays JPEG 2000: we accept what we can decode
    result = pacs.retrieve("MAIN", j2k.StudyInstanceUID, method="get")
    assert result.ok and result.received == 1
    (path,) = pacs.study_dir(j2k.StudyInstanceUID).glob("*.dcm")
    received = pydicom.dcmread(path)
    assert received.file_meta.TransferSyntaxUID == j2k.file_meta.TransferSyntaxUID
    assert received.PixelData == j2k.PixelData


def test_cancel_stops_a_retrieval_and_keeps_what_arrived(pacs, net_demo_study):
    token = CancelToken()

    def cancel_after_a_few(progress, stored):
        if stored >= 3:
            token.cancel()

    result = pacs.retrieve("MAIN", net_demo_study.study_instance_uid, method="get", cancel=token, progress=cancel_after_a_few)
    assert result.cancelled and result.status == "cancelled"
    assert 3 <= result.received < 30
    assert len(list(pacs.study_dir(net_demo_study.study_instance_uid).glob("*.dcm"))) == result.received
