"""Undo/redo, sign-off and reopen through the review service, on a real encrypted store."""

from __future__ import annotations

from dataclasses import replace

import pytest
from keyrings.alt.file import PlaintextKeyring

from workstation.core.findings import Finding, ModelRef
from workstation.core.review import Action, FeedbackEntry, State
from workstation.core.roles import PermissionDenied, Role, User
from workstation.services.review import ReviewRefused, ReviewSession, SeriesKey
from workstation.store.database import Identity, Store, now_utc

MODEL = ModelRef("nodule-detector", "1.0.0", "ab" * 32)
KEY = SeriesKey("1.2.study", "1.2.series", tuple(f"1.2.sop.{i}" for i in range(10)), (0.7, 0.7))
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


def test_undo_and_redo_are_new_entries_and_the_state_folds_them(tmp_path, backend):
    with open_store(tmp_path, backend) as store:
        review = ReviewSession(store, KEY, MODEL, FINDINGS)
        review.delete("a")
        assert [s.finding_id for s in review.states()] == ["b"]
        restored = review.undo()
        assert restored.state is State.PENDING and [s.number for s in review.states()] == [1, 2]
        again = review.redo()
        assert not again.visible
        actions = [e.action for e in store.feedback(KEY.series_instance_uid)]
        assert actions == [Action.DELETE, Action.UNDO, Action.REDO]
        undo, redo = store.feedback(KEY.series_instance_uid)[1:]
        assert undo.reverts == store.feedback(KEY.series_instance_uid)[0].entry_id and redo.reverts == undo.entry_id
        kinds = [e.kind for e in store.audit_entries()][-3:]
        assert kinds == ["finding.delete", "finding.undo", "finding.redo"]
        with pytest.raises(ReviewRefused, match="nothing to redo"):
            review.redo()
        assert store.verify().ok


def test_undo_reverts_only_the_users_own_entries_and_the_store_enforces_it(tmp_path, backend):
    with open_store(tmp_path, backend) as store:
        ReviewSession(store, KEY, MODEL, FINDINGS).accept("a")
    with open_store(tmp_path, backend, Role.RADIOLOGIST, "carol") as store:
        review = ReviewSession(store, KEY, MODEL, FINDINGS)
        with pytest.raises(ReviewRefused, match="nothing of yours"):
            review.undo()
        bobs = store.feedback(KEY.series_instance_uid)[0]
        forged = FeedbackEntry("x1", Action.UNDO, "a", KEY.study_instance_uid, KEY.series_instance_uid, "", MODEL.name,
                               MODEL.version, "carol", "radiologist", "ws-07", now_utc(), reverts=bobs.entry_id)
        with pytest.raises(PermissionDenied):
            store.record_feedback(forged)
        assert [e.action for e in store.feedback(KEY.series_instance_uid)] == [Action.ACCEPT]
        assert store.audit_entries()[-1].kind == "access.denied"
        assert review.state("a").state is State.ACCEPTED


def test_sign_off_is_refused_while_findings_are_pending_then_recorded_with_final_states(tmp_path, backend):
    with open_store(tmp_path, backend, Role.RADIOLOGIST, "carol") as store:
        review = ReviewSession(store, KEY, MODEL, FINDINGS)
        review.reject("b", comment="vessel")
        with pytest.raises(ReviewRefused, match=r"1 finding\(s\) still pending \(#1\)"):
            review.sign_off()
        assert store.feedback(KEY.series_instance_uid)[-1].action is Action.REJECT
        review.accept("a")
        signoff = review.sign_off()
        assert signoff.by == "carol" and review.signoff == signoff
        entry = store.feedback(KEY.series_instance_uid)[-1]
        assert entry.action is Action.SIGNOFF and entry.details["model"]["version"] == "1.0.0"
        assert [(f["number"], f["state"]) for f in entry.details["findings"]] == [(1, "accepted"), (2, "rejected")]
        audit = store.audit_entries()[-1]
        assert audit.kind == "review.signoff" and audit.details["final_states"] == {"1": "accepted", "2": "rejected"}
        with pytest.raises(ReviewRefused, match="signed off by carol"):
            review.reject("a")
        with pytest.raises(PermissionDenied):
            review.reopen("radiologists may not reopen")
        assert store.verify().ok
    with open_store(tmp_path, backend) as store:  # a reviewer, later: the sign-off is still there, and can be reopened
        review = ReviewSession(store, KEY, MODEL, FINDINGS)
        assert review.signoff is not None and review.signoff.by == "carol"
        review.reopen("second look at #2")
        assert review.signoff is None
        review.accept("b")
        assert [e.kind for e in store.audit_entries()][-2:] == ["review.reopen", "finding.accept"]
        assert review.sign_off().by == "bob"


def test_boxes_smaller_than_3_px_or_2_mm_are_refused_and_nothing_is_written(tmp_path, backend):
    with open_store(tmp_path, backend) as store:
        review = ReviewSession(store, KEY, MODEL, FINDINGS)
        with pytest.raises(ValueError, match="at least 3 pixels"):
            review.edit_box("a", (10.0, 10.0, 30.0, 11.0))
        wide = ReviewSession(store, replace(KEY, pixel_spacing=(0.5, 0.5)), MODEL, FINDINGS)
        with pytest.raises(ValueError, match="at least 2 mm"):
            wide.add(2, (10.0, 10.0, 13.5, 30.0), "nodule")  # 3.5 px = 1.75 mm
        assert store.feedback(KEY.series_instance_uid) == []
        flipped = review.edit_box("a", (20.0, 21.0, 10.0, 11.0))
        assert flipped.geometry.box_px == (10.0, 11.0, 20.0, 21.0)  # corners dragged past each other: normalised


def test_undo_never_reverts_under_another_readers_later_decision(tmp_path, backend):
    with open_store(tmp_path, backend) as store:  # bob, reviewer: adds a finding and moves box #1
        review = ReviewSession(store, KEY, MODEL, FINDINGS)
        added = review.add(7, (50.0, 50.0, 60.0, 60.0), "nodule")
        review.edit_box("a", (12.0, 12.0, 22.0, 22.0))
    with open_store(tmp_path, backend, Role.RADIOLOGIST, "carol") as store:  # carol accepts both as she sees them
        review = ReviewSession(store, KEY, MODEL, FINDINGS)
        review.accept(added.finding_id, comment="true nodule, 10 mm")
        review.accept("a")
    with open_store(tmp_path, backend) as store:
        review = ReviewSession(store, KEY, MODEL, FINDINGS)
        with pytest.raises(ReviewRefused, match="carol has since accepted this finding"):
            review.undo()  # the move of #1: carol accepted the moved box
        assert review.state("a").geometry.box_px == (12.0, 12.0, 22.0, 22.0)
        bobs_move = [e for e in store.feedback(KEY.series_instance_uid) if e.action is Action.MOVE][0]
        forged = FeedbackEntry("x2", Action.UNDO, "a", KEY.study_instance_uid, KEY.series_instance_uid, "", MODEL.name,
                               MODEL.version, "bob", "reviewer", "ws-07", now_utc(), reverts=bobs_move.entry_id)
        with pytest.raises(PermissionDenied):
            store.record_feedback(forged)  # written past the service: the store refuses it as well
        assert "carol has since accepted" in store.audit_entries()[-1].outcome_text
        assert review.state(added.finding_id).state is State.ACCEPTED


def test_the_store_refuses_changes_to_a_signed_off_run_without_a_reopen(tmp_path, backend):
    with open_store(tmp_path, backend, Role.RADIOLOGIST, "carol") as store:
        review = ReviewSession(store, KEY, MODEL, FINDINGS)
        review.accept("a")
        review.reject("b")
        review.sign_off()
        accept = store.feedback(KEY.series_instance_uid)[0]

        def entry(action, finding, **values):
            return FeedbackEntry(f"x-{action.value}", action, finding, KEY.study_instance_uid, KEY.series_instance_uid,
                                 "", MODEL.name, MODEL.version, "carol", "radiologist", "ws-07", now_utc(), **values)

        for forged in (entry(Action.REJECT, "a"), entry(Action.UNDO, "a", reverts=accept.entry_id),
                       entry(Action.SIGNOFF, "", details={"findings": []})):
            with pytest.raises(PermissionDenied):
                store.record_feedback(forged)
        assert [e.action for e in store.feedback(KEY.series_instance_uid)] == [Action.ACCEPT, Action.REJECT, Action.SIGNOFF]
        assert ReviewSession(store, KEY, MODEL, FINDINGS).pending() == []
