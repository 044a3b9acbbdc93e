"""`workstation --demo` (the demo site: everyone a reviewer) writes to a store of its own."""

from __future__ import annotations

import os

from workstation.cli import _use_demo_store
from workstation.core.site import SiteConfig
from workstation.services.session import store_path


def test_the_demo_site_never_writes_into_the_real_store(monkeypatch, tmp_path):
    monkeypatch.delenv("WORKSTATION_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    real = store_path(SiteConfig())
    _use_demo_store()
    demo = store_path(SiteConfig())
    assert real == tmp_path / "workstation" / "store.sqlite"
    assert demo == tmp_path / "workstation" / "demo" / "store.sqlite"
    monkeypatch.setenv("WORKSTATION_DATA_DIR", str(tmp_path / "chosen"))
    _use_demo_store()  # a data directory chosen explicitly is kept
    assert os.environ["WORKSTATION_DATA_DIR"] == str(tmp_path / "chosen")
