"""Roles and the derivation of a finding's state from its feedback entries (pure domain, no store)."""

from __future__ import annotations

import pytest

from workstation.core.findings import Finding
from workstation.core.review import Action, BoxGeometry, FeedbackEntry, State, derive_states
from workstation.core.roles import Permission, PermissionDenied, Role, User

AI = [
    Finding("a", "nodule", 0.9, 3, (10.0, 10.0, 20.0, 20.0), ((0, 0, 0), (1, 1, 1)), (0, 0, 0), (2, 4), "sop3"),
    Finding("b", "nodule", 0.6, 5, (30.0, 30.0, 40.0, 40.0), ((0, 0, 0), (1, 1, 1)), (0, 0, 0), (5, 5), "sop5"),
]


def entry(n: int, action: Action, finding: str, user: str = "rad", **values) -> FeedbackEntry:
    return FeedbackEntry(f"e{n}", action, finding, "st", "se", "sop", "m", "1", user, "reviewer", "ws",
                         f"2026-01-01T00:00:{n:02d}", **values)


@pytest.mark.parametrize("role, allowed", [
    (Role.RADIOLOGIST, {Permission.DECIDE, Permission.COMMENT}),
    (Role.REVIEWER, {Permission.DECIDE, Permission.COMMENT, Permission.EDIT, Permission.ADD}),
    (Role.ADMIN, {Permission.CONFIGURE, Permission.EXPORT_AUDIT}),
    (None, set()),
])
def test_each_role_has_exactly_its_permissions(role, allowed):
    user = User("u", role)
    assert {p for p in Permission if user.may(p)} == allowed
    for denied in set(Permission) - allowed:
        with pytest.raises(PermissionDenied, match="may not"):
            user.require(denied)


def test_every_action_needs_a_permission_a_radiologist_lacks_for_edits():
    radiologist = User("r", Role.RADIOLOGIST)
    assert [a for a in Action if radiologist.may(a.permission)] == [
        Action.ACCEPT, Action.REJECT, Action.COMMENT, Action.UNDO, Action.REDO, Action.SIGNOFF]
    assert not radiologist.may(Action.REOPEN.permission)  # reopening a signed-off review is for reviewers


def test_no_entries_means_every_finding_pending_with_the_model_geometry():
    states = derive_states(AI, [])
    assert {s.state for s in states.values()} == {State.PENDING}
    assert states["a"].geometry == BoxGeometry(3, (10.0, 10.0, 20.0, 20.0), "sop3")


def test_last_decision_wins_and_comments_accumulate():
    states = derive_states(AI, [
        entry(1, Action.ACCEPT, "a", comment="clear"),
        entry(2, Action.COMMENT, "a", user="other", comment="agree"),
        entry(3, Action.REJECT, "a", user="rev"),
    ])
    a = states["a"]
    assert a.state is State.REJECTED and a.by == "rev"
    assert a.comments == ("clear", "agree") and a.history == ("e1", "e2", "e3")
    assert states["b"].state is State.PENDING


def test_edits_move_the_box_and_mark_it_edited_until_decided():
    moved = BoxGeometry(5, (32.0, 32.0, 42.0, 42.0), "sop5")
    states = derive_states(AI, [entry(1, Action.MOVE, "b", before=BoxGeometry.of(AI[1]), after=moved),
                                entry(2, Action.RELABEL, "b", label="mass")])
    b = states["b"]
    assert (b.state, b.geometry, b.label, b.edited) == (State.EDITED, moved, "mass", True)
    b = derive_states(AI, [entry(1, Action.MOVE, "b", after=moved), entry(2, Action.ACCEPT, "b")])["b"]
    assert b.state is State.ACCEPTED and b.edited and b.geometry == moved


def test_added_findings_appear_and_deleted_ones_disappear():
    added = BoxGeometry(7, (1.0, 1.0, 9.0, 9.0), "sop7")
    states = derive_states(AI, [entry(1, Action.ADD, "new", after=added, label="nodule"),
                                entry(2, Action.RESIZE, "new", after=BoxGeometry(7, (1.0, 1.0, 12.0, 12.0), "sop7")),
                                entry(3, Action.DELETE, "a")])
    assert states["new"].state is State.ADDED and states["new"].score is None
    assert states["new"].geometry.box_px == (1.0, 1.0, 12.0, 12.0)
    assert not states["a"].visible and states["a"].state is State.DELETED


def test_entries_for_unknown_findings_that_are_not_additions_are_ignored():
    assert set(derive_states(AI, [entry(1, Action.ACCEPT, "elsewhere")])) == {"a", "b"}


def test_feedback_entries_round_trip_through_plain_data():
    original = entry(1, Action.RESIZE, "b", before=BoxGeometry.of(AI[1]), after=BoxGeometry(5, (1.0, 2.0, 30.0, 40.0), "x"))
    assert FeedbackEntry.from_dict(original.to_dict()) == original
