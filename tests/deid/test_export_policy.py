"""Who may export, what is left out and why, and that nothing half-written is left in a destination."""

from __future__ import annotations

import pytest
from keyrings.alt.file import PlaintextKeyring

from deid.conftest import SECRET, open_session, site
from workstation.core.roles import Role
from workstation.core.tasks import CancelToken
from workstation.services.export import (
    Destination,
    ExportError,
    ExportRefused,
    ExportRequest,
    export_deidentified,
    site_secret,
)


def leftovers(folder):
    return [p.name for p in folder.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize("role", [Role.RADIOLOGIST, None])
def test_a_role_the_site_does_not_allow_is_refused_and_recorded(corpus, tmp_path, role):
    session = open_session(tmp_path, role)
    try:
        with pytest.raises(ExportRefused):
            export_deidentified(ExportRequest(Destination("folder", str(tmp_path / "out")), paths=(str(corpus.folder),)),
                                session.config, session, SECRET)
        denied = session.store.last_entry("access.denied")
        assert denied is not None and denied.details["function"] == "export"
        assert session.store.last_entry("export") is None
        assert not (tmp_path / "out").exists() and not leftovers(tmp_path)
    finally:
        session.store.close()


def test_site_may_allow_radiologists(corpus, tmp_path):
    session = open_session(tmp_path, Role.RADIOLOGIST, site(export_roles=["radiologist"]))
    try:
        report = export_deidentified(ExportRequest(Destination("zip", str(tmp_path / "x.zip")),
                                                   paths=(str(corpus.files["ct1"]),)), session.config, session, SECRET)
        assert report.exit_code == 0 and (tmp_path / "x.zip").is_file()
    finally:
        session.store.close()


def test_burned_in_images_left_out_when_the_site_does_not_clean_pixels(corpus, tmp_path):
    session = open_session(tmp_path, Role.REVIEWER, site(clean_pixel_data=False))
    try:
        out = tmp_path / "out"
        report = export_deidentified(ExportRequest(Destination("folder", str(out)), paths=(str(corpus.folder),)),
                                     session.config, session, SECRET)
        assert report.exit_code == 1 and report.written == 6
        (left,) = report.left_out
        assert left.source.endswith("us.dcm") and "BurnedInAnnotation is YES" in left.reason
        assert "does not clean pixel data" in left.reason
        assert report.manifest["left_out"] == [{"item": left.item, "reason": left.reason}]
        assert len(list(out.rglob("*.dcm"))) == 6
        entry = session.store.last_entry("export")
        assert entry.details["left_out"] == 1 and entry.outcome == 4
    finally:
        session.store.close()


def test_destination_refusals_and_cancel_leave_nothing(corpus, tmp_path, reviewer):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="not an empty folder"):
        export_deidentified(ExportRequest(Destination("folder", str(busy)), paths=(str(corpus.folder),)),
                            reviewer.config, reviewer, SECRET)
    (tmp_path / "old.zip").write_bytes(b"x")
    with pytest.raises(ExportError, match="exists"):
        export_deidentified(ExportRequest(Destination("zip", str(tmp_path / "old.zip")), paths=(str(corpus.folder),)),
                            reviewer.config, reviewer, SECRET)
    cancel = CancelToken()
    for kind, target in (("folder", tmp_path / "cancelled"), ("zip", tmp_path / "cancelled.zip")):
        report = export_deidentified(ExportRequest(Destination(kind, str(target)), paths=(str(corpus.folder),)),
                                     reviewer.config, reviewer, SECRET, progress=lambda done, total: cancel.cancel(),
                                     cancel=cancel)
        assert report.cancelled and report.exit_code == 1
        assert not target.exists()
    assert not leftovers(tmp_path) and (busy / "keep.txt").exists()
    assert reviewer.store.last_entry("export").outcome_text == "cancelled"


def test_a_dead_node_leaves_every_object_out_with_the_reason(corpus, tmp_path):
    from netpeers.process import LOCALHOST, free_port

    data = site()
    data["pacs"] = {"RESEARCH": {"ae_title": "NOBODY", "host": LOCALHOST, "port": free_port(), "timeout_s": 2,
                                 "retries": 0}}
    session = open_session(tmp_path, Role.REVIEWER, data)
    try:
        report = export_deidentified(ExportRequest(Destination("node", "RESEARCH"), paths=(str(corpus.files["ct1"]),)),
                                     session.config, session, SECRET)
        assert report.exit_code == 1 and report.written == 0
        assert len(report.left_out) == 1 and "not sent to RESEARCH" in report.left_out[0].reason
    finally:
        session.store.close()


def test_site_secret_lives_in_the_keyring_and_stays(tmp_path):
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "kr.cfg")
    first = site_secret(backend)
    assert len(first) == 32 and site_secret(backend) == first
    assert first.hex() not in "".join(p.read_text() for p in tmp_path.glob("*") if p.name != "kr.cfg")
