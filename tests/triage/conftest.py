"""Fixtures of the triage tests: data written once per session, a file keyring per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from keyrings.alt.file import PlaintextKeyring
from pydicom.data import get_testdata_file

from triage_data import write_ct


@pytest.fixture(scope="session")
def triage_studies(tmp_path_factory) -> dict[str, Path]:
    """'nodules': a chest CT with 3 planted nodules, 'clean': one without, 'mr': pydicom's MR_small (one instance)."""
    root = tmp_path_factory.mktemp("triage-data")
    return {"nodules": write_ct(root, 11, 3), "clean": write_ct(root, 12, 0),
            "mr": Path(get_testdata_file("MR_small.dcm", download=False))}


@pytest.fixture
def backend(tmp_path):
    keyring = PlaintextKeyring()
    keyring.file_path = str(tmp_path / "keyring.cfg")
    return keyring
