"""The same operations against DCMTK's dcmqrscp, a second PACS implementation."""

from __future__ import annotations

import pytest

from workstation.core.pacs import StudyQuery

from netpeers.site import node_settings


@pytest.fixture
def pacs(pacs_factory, loaded_dcmqrscp):
    return pacs_factory(QR=node_settings(loaded_dcmqrscp))


def test_echo_and_find(pacs, net_demo_study):
    assert pacs.echo("QR") > 0
    (study,) = pacs.find_studies("QR", StudyQuery(patient_id="DEMO-0005"))
    assert study.study_instance_uid == net_demo_study.study_instance_uid
    assert study.patient_name == "DEMO^PHANTOM"
    assert study.series_count is None  # dcmqrscp does not answer counts: shown as unknown, not 0
    (series,) = pacs.find_series("QR", study.study_instance_uid)
    assert series.series_instance_uid == net_demo_study.series_instance_uid and series.modality == "CT"


@pytest.mark.parametrize("method", ["move", "get"])
def test_retrieve(pacs, net_demo_study, method):
    result = pacs.retrieve("QR", net_demo_study.study_instance_uid, method=method)
    assert result.ok and (result.received, result.new) == (30, 30), result
    assert len(list(pacs.study_dir(net_demo_study.study_instance_uid).glob("*.dcm"))) == 30


def test_partial_move_counts_failures_and_keeps_the_rest(pacs, net_demo_study, disk_full_every):
    """dcmqrscp carries on after a refused C-STORE and ends with a warning status: a partial retrieval."""
    disk_full_every(5)
    result = pacs.retrieve("QR", net_demo_study.study_instance_uid, method="move")
    assert result.status == "partial" and (result.received, result.failed) == (24, 6)
    assert any("reported 6 instance(s) failed" in f for f in result.failures)
    assert len(list(pacs.study_dir(net_demo_study.study_instance_uid).glob("*.dcm"))) == 24
