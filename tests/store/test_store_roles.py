"""Roles are enforced by the store itself: a caller that skips the UI and the review service still cannot write
what the signed-in user's role does not allow, and every refusal is itself an audit entry."""

from __future__ import annotations

import pytest
from store_helpers import DECISION_ACTIONS, EDIT_ACTIONS, SERIES, feedback_entry

from workstation.core.audit import Outcome
from workstation.core.review import Action
from workstation.core.roles import PermissionDenied, Role, User


def assert_refused(store, entry, permission: str, reason_has: str) -> None:
    """record_feedback raises, no feedback row is written, exactly one access.denied entry is added."""
    audit_before, feedback_before = store.count("audit"), store.count("feedback")
    with pytest.raises(PermissionDenied) as refused:
        store.record_feedback(entry)
    assert refused.value.permission.value == permission
    assert store.count("feedback") == feedback_before
    assert store.count("audit") == audit_before + 1
    denied = store.audit_entries()[-1]
    user = store.identity.user
    assert (denied.kind, denied.user, denied.role) == ("access.denied", user.login, user.role.value if user.role else "")
    assert denied.outcome == Outcome.MINOR_FAILURE and denied.study_instance_uid == entry.study_instance_uid
    assert denied.details["permission"] == permission and reason_has in denied.details["reason"]
    assert denied.event.event_id.value == "110113"  # Security Alert
    assert not any(e.entry_id == entry.entry_id for e in store.feedback(SERIES))


def test_a_radiologist_may_accept_reject_and_comment(open_store):
    store = open_store(Role.RADIOLOGIST, "carol")
    user = store.identity.user
    written = [feedback_entry(user, action, finding) for action, finding in zip(DECISION_ACTIONS, "abc")]
    audits = [store.record_feedback(entry) for entry in written]
    assert store.feedback(SERIES) == written
    assert [a.kind for a in audits] == ["finding.accept", "finding.reject", "finding.comment"]
    assert [a.details["feedback_entry_id"] for a in audits] == [e.entry_id for e in written]
    assert all((a.user, a.role) == ("carol", "radiologist") for a in audits)
    assert not any(e.kind == "access.denied" for e in store.audit_entries())
    assert store.verify().ok


@pytest.mark.parametrize("action", EDIT_ACTIONS, ids=lambda a: a.value)
def test_a_radiologist_cannot_edit_delete_add_or_relabel(open_store, action):
    store = open_store(Role.RADIOLOGIST, "carol")
    store.record_feedback(feedback_entry(store.identity.user, Action.ACCEPT))  # allowed, for contrast
    permission = "review.add" if action is Action.ADD else "review.edit"
    assert_refused(store, feedback_entry(store.identity.user, action), permission, f"{action.value} refused")
    assert [e.action for e in store.feedback(SERIES)] == [Action.ACCEPT]
    assert store.verify().ok


def test_the_same_edits_are_allowed_to_a_reviewer(open_store):
    store = open_store(Role.REVIEWER, "rita")
    for action in EDIT_ACTIONS:
        store.record_feedback(feedback_entry(store.identity.user, action))
    assert [e.action for e in store.feedback(SERIES)] == list(EDIT_ACTIONS)
    assert store.verify().ok


@pytest.mark.parametrize("role", [None, Role.ADMIN], ids=["no-role", "admin"])
def test_users_without_a_review_role_can_write_no_feedback(open_store, role):
    store = open_store(role, "vic")
    user = store.identity.user
    for action in Action:
        permission = action.permission.value
        assert_refused(store, feedback_entry(user, action), permission, f"{action.value} refused")
    assert store.count("feedback") == 0
    denied = store.audit_entries()
    assert [e.details["permission"] for e in denied] == [a.permission.value for a in Action]
    assert {e.role for e in denied} == {"admin" if role else ""}
    assert store.verify().ok


@pytest.mark.parametrize("claim", [("alice", "reviewer"), ("carol", "reviewer"), ("alice", "radiologist")],
                         ids=["other-user-other-role", "own-login-higher-role", "other-user-same-role"])
def test_an_entry_claiming_another_user_or_role_is_refused(open_store, claim):
    """Signed in as carol (radiologist); the entry names someone else, even for an action carol may do."""
    store = open_store(Role.RADIOLOGIST, "carol")
    user = store.identity.user
    for action in (Action.ACCEPT, Action.MOVE):
        entry = feedback_entry(user, action, claimed_user=claim[0], claimed_role=claim[1])
        assert_refused(store, entry, action.permission.value, f"entry claims user {claim[0]!r} ({claim[1]})")
    assert store.count("feedback") == 0
    assert store.verify().ok


def test_a_reviewer_cannot_write_in_a_radiologists_name(open_store):
    store = open_store(Role.REVIEWER, "rita")
    carol = User("carol", Role.RADIOLOGIST)
    assert_refused(store, feedback_entry(carol, Action.REJECT), "review.decide", "entry claims user 'carol'")
    assert store.count("feedback") == 0


def test_an_entry_claiming_another_workstation_is_refused(open_store):
    store = open_store(Role.REVIEWER, "rita", workstation="ws-07")
    entry = feedback_entry(store.identity.user, Action.ACCEPT, workstation_id="ws-99")
    assert_refused(store, entry, "review.decide", "entry claims workstation 'ws-99' but this is 'ws-07'")
    assert store.count("feedback") == 0
