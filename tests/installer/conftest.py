"""The offline bundle, built once per session from this checkout (and a second one, one patch version newer,
for the upgrade). See installer_helpers for where the wheels come from and the keyring sandbox."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from installer_helpers import build_bundle, manifest


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    path, seconds = build_bundle(tmp_path_factory.mktemp("bundle"))
    print(f"\nbundle {path.name}: {manifest(path)['total_bytes'] / 1e6:.0f} MB, built in {seconds:.1f} s")
    return path


@pytest.fixture(scope="session")
def upgrade_bundle(tmp_path_factory, bundle) -> Path:
    """The same checkout built as the next patch version (from the warm wheel cache: no network)."""
    major, minor, patch = (int(p) for p in re.findall(r"\d+", manifest(bundle)["version"])[:3])
    path, seconds = build_bundle(tmp_path_factory.mktemp("bundle-next"), "--set-version", f"{major}.{minor}.{patch + 1}")
    print(f"\nupgrade bundle {path.name} built in {seconds:.1f} s")
    return path
