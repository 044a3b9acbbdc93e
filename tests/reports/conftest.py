"""Fixtures of the report tests: a small demo CT whose AI run a reviewer signed off in a real encrypted store,
and real peers: an MLLP listener (the `hl7` package's asyncio server) and a FHIR stand-in (FastAPI + uvicorn)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "results"))  # the results tests' canned run and review

from report_helpers import open_store  # noqa: E402
from results_helpers import record_run, review_run  # noqa: E402

from workstation.demo import write_demo_study  # noqa: E402
from workstation.dicom.scan import scan_paths  # noqa: E402


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    return write_demo_study(tmp_path_factory.mktemp("report-study"), seed=3, slices=16, size=128)


@pytest.fixture(scope="session")
def catalog(study):
    return scan_paths([str(study.directory)])


@pytest.fixture(scope="session")
def display_set(catalog):
    return catalog.display_sets[0]


@pytest.fixture
def signed_store(tmp_path, display_set):
    """An open store holding the canned run, reviewed (accept, reject, relabel, delete, add) and signed off."""
    store = open_store(tmp_path)
    run = record_run(store, display_set)
    review_run(store, display_set, run)
    yield store
    store.close()
