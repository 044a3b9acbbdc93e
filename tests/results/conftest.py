"""Fixtures of the results tests: a small demo CT, a run recorded and signed off in a real encrypted store,
and the objects built for it, written to files once per session (the validators read the files)."""

from __future__ import annotations

import pytest
from keyrings.alt.file import PlaintextKeyring
from results_helpers import headers, record_run, review_run

from workstation.core.roles import Role, User
from workstation.demo import write_demo_study
from workstation.dicom.scan import scan_paths
from workstation.results import build_results
from workstation.services.results_build import contexts_for_series, write_objects
from workstation.store.database import Identity, Store


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    return write_demo_study(tmp_path_factory.mktemp("results-study"), seed=3, slices=16, size=128)


@pytest.fixture(scope="session")
def display_set(study):
    return scan_paths([str(study.directory)]).display_sets[0]


@pytest.fixture(scope="session")
def sources(display_set):
    return headers(display_set)


def open_store(folder, login="bob", role=Role.REVIEWER) -> Store:
    keyring = PlaintextKeyring()
    keyring.file_path = str(folder / "keyring.cfg")
    return Store.open(folder / "store.sqlite", Identity(User(login, role), "ws-results"), keyring)


@pytest.fixture(scope="session")
def contexts(tmp_path_factory, study, display_set):
    """(RunContext, ReviewContext) of a run reviewed by a reviewer and signed off, from the real store."""
    folder = tmp_path_factory.mktemp("results-store")
    with open_store(folder) as store:
        run = record_run(store, display_set)
        review_run(store, display_set, run)
        return contexts_for_series(store, display_set.series.series_instance_uid, [study.directory])


@pytest.fixture(scope="session")
def built(contexts):
    return build_results(*contexts)


@pytest.fixture(scope="session")
def written(tmp_path_factory, built):
    """{kind: path} of the objects written as the command line writes them."""
    paths = write_objects(built, tmp_path_factory.mktemp("results-out"))
    return {b.kind: p for b, p in zip(built, paths)}
