"""Review sessions and work sessions against a real encrypted store file."""

from __future__ import annotations

import pytest
from keyrings.alt.file import PlaintextKeyring

from workstation.core.findings import Finding, ModelRef
from workstation.core.review import Action, State
from workstation.core.roles import PermissionDenied, Role, User
from workstation.core.site import SiteConfig, UserSettings
from workstation.services.review import ReviewSession, SeriesKey
from workstation.services.session import WorkSession, current_user, store_path
from workstation.store.database import Identity, Store

MODEL = ModelRef("nodule-detector", "1.0.0", "ab" * 32)
KEY = SeriesKey("1.2.study", "1.2.series", tuple(f"1.2.sop.{i}" for i in range(10)))
FINDINGS = [
    Finding("a", "nodule", 0.9, 3, (10.0, 10.0, 20.0, 20.0), ((0, 0, 0), (1, 1, 1)), (0, 0, 0), (2, 4), "1.2.sop.3"),
    Finding("b", "nodule", 0.6, 5, (30.0, 30.0, 40.0, 40.0), ((0, 0, 0), (1, 1, 1)), (0, 0, 0), (5, 5), "1.2.sop.5"),
]


@pytest.fixture
def backend(tmp_path):
    keyring = PlaintextKeyring()
    keyring.file_path = str(tmp_path / "keyring.cfg")
    return keyring


def open_store(tmp_path, backend, role=Role.REVIEWER, login="bob") -> Store:
    return Store.open(tmp_path / "store.sqlite", Identity(User(login, role), "ws-07"), backend)


def test_box_edits_are_moves_or_resizes_and_no_op_edits_write_nothing(tmp_path, backend):
    with open_store(tmp_path, backend) as store:
        review = ReviewSession(store, KEY, MODEL, FINDINGS)
        review.edit_box("b", (30.0, 30.0, 40.0, 40.0))
        assert store.feedback(KEY.series_instance_uid) == []
        review.edit_box("b", (35.0, 31.0, 45.0, 41.0))
        review.edit_box("b", (35.0, 31.0, 50.0, 49.0))
        move, resize = store.feedback(KEY.series_instance_uid)
        assert (move.action, resize.action) == (Action.MOVE, Action.RESIZE)
        assert move.before.box_px == (30.0, 30.0, 40.0, 40.0) and move.after.box_px == (35.0, 31.0, 45.0, 41.0)
        assert resize.before == move.after and resize.sop_instance_uid == "1.2.sop.5"
        assert (move.user, move.role, move.workstation_id, move.model_version) == ("bob", "reviewer", "ws-07", "1.0.0")


def test_added_boxes_are_validated_before_anything_is_written(tmp_path, backend):
    with open_store(tmp_path, backend) as store:
        review = ReviewSession(store, KEY, MODEL, FINDINGS)
        for frame, box, label in ((10, (1, 1, 9, 9), "nodule"), (2, (1, 1, 1.5, 9), "nodule"), (2, (1, 1, 9, 9), " ")):
            with pytest.raises(ValueError):
                review.add(frame, box, label)
        added = review.add(2, (9, 9, 1, 1), "mass")  # corners in any order
        assert added.state is State.ADDED and added.geometry.box_px == (1.0, 1.0, 9.0, 9.0)
        assert added.geometry.sop_instance_uid == "1.2.sop.2"
        assert [e.action for e in store.feedback(KEY.series_instance_uid)] == [Action.ADD]


def test_state_is_derived_from_the_store_after_reopening(tmp_path, backend):
    with open_store(tmp_path, backend) as store:
        review = ReviewSession(store, KEY, MODEL, FINDINGS)
        review.accept("a", comment="typical")
        review.edit_box("b", (31.0, 31.0, 41.0, 41.0))
        review.add(7, (50, 50, 60, 60), "nodule")
        before = review.states()
    with open_store(tmp_path, backend, Role.RADIOLOGIST, "carol") as store:
        after = ReviewSession(store, KEY, MODEL, FINDINGS).states()
    assert after == before
    assert [s.state for s in after] == [State.ACCEPTED, State.EDITED, State.ADDED]


def test_a_radiologist_decides_but_cannot_edit(tmp_path, backend):
    with open_store(tmp_path, backend, Role.RADIOLOGIST, "carol") as store:
        review = ReviewSession(store, KEY, MODEL, FINDINGS)
        review.reject("b")
        with pytest.raises(PermissionDenied):
            review.edit_box("a", (0, 0, 5, 5))
        assert review.state("a").state is State.PENDING
        assert [e.action for e in store.feedback(KEY.series_instance_uid)] == [Action.REJECT]
        assert store.audit_entries()[-1].kind == "access.denied"


def test_roles_come_from_the_site_configuration_only(monkeypatch):
    config = SiteConfig(users=UserSettings(roles={"alice": "reviewer"}, login_variable="SITE_LOGIN"))
    assert current_user(config, {"SITE_LOGIN": "alice"}) == User("alice", Role.REVIEWER)
    assert current_user(config, {"SITE_LOGIN": "mallory"}).role is None
    assert current_user(SiteConfig(users=UserSettings(default_role="radiologist")), {}).role is Role.RADIOLOGIST


def test_work_session_records_start_end_and_configuration_changes(tmp_path, backend, monkeypatch):
    monkeypatch.setenv("WORKSTATION_DATA_DIR", str(tmp_path))
    first = SiteConfig(users=UserSettings(default_role="reviewer"))
    second = SiteConfig(users=UserSettings(default_role="reviewer", roles={"it": "admin"}))
    assert store_path(first) == tmp_path / "store.sqlite"
    for config in (first, first, second):
        session = WorkSession.open(config, backend)
        session.start()
        session.end()
    with open_store(tmp_path, backend) as store:
        kinds = [e.kind for e in store.audit_entries()]
        assert kinds.count("application.start") == 3 and kinds.count("session.end") == 3
        (change,) = [e for e in store.audit_entries() if e.kind == "config.change"]
        assert change.details["summary"]["roles"] == {"it": "admin"} and change.event.event_type.value == "110131"
        assert store.verify().ok


def test_work_session_records_an_upgrade_when_the_version_changed(tmp_path, backend, monkeypatch):
    import workstation

    monkeypatch.setenv("WORKSTATION_DATA_DIR", str(tmp_path))
    config = SiteConfig(users=UserSettings(default_role="radiologist"))
    for version in ("0.9.0", "0.9.0", workstation.__version__):
        monkeypatch.setattr(workstation, "__version__", version)
        session = WorkSession.open(config, backend)
        session.start()
        session.end()
    with open_store(tmp_path, backend) as store:
        (upgrade,) = [e for e in store.audit_entries() if e.kind == "software.upgrade"]
        assert upgrade.details["previous_version"] == "0.9.0" and upgrade.details["version"] == workstation.__version__
        assert upgrade.event.event_type.value == "110131"
