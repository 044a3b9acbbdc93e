"""Undo / redo, fixed numbering, edits beside verdicts and sign-off in the pure review domain."""

from __future__ import annotations

from workstation.core.findings import Finding
from workstation.core.review import (
    Action, BoxGeometry, FeedbackEntry, State, derive_states, sign_off_of, state_summary, undo_redo_targets,
    undone_ids,
)

AI = [
    Finding("low", "nodule", 0.40, 5, (30.0, 30.0, 40.0, 40.0), ((0, 0, 0), (1, 1, 1)), (0, 0, 0), (5, 5), "sop5"),
    Finding("high", "nodule", 0.90, 3, (10.0, 10.0, 20.0, 20.0), ((0, 0, 0), (1, 1, 1)), (0, 0, 0), (2, 4), "sop3"),
    Finding("mid", "nodule", 0.70, 7, (50.0, 50.0, 60.0, 60.0), ((0, 0, 0), (1, 1, 1)), (0, 0, 0), (7, 7), "sop7"),
]


def entry(n: int, action: Action, finding: str, user: str = "rad", **values) -> FeedbackEntry:
    return FeedbackEntry(f"e{n}", action, finding, "st", "se", "sop", "m", "1", user, "reviewer", "ws",
                         f"2026-01-01T00:00:{n:02d}", **values)


def test_numbers_follow_the_run_score_and_never_change_with_decisions():
    before = {fid: s.number for fid, s in derive_states(AI, []).items()}
    assert before == {"high": 1, "mid": 2, "low": 3}
    added = BoxGeometry(1, (5.0, 5.0, 15.0, 15.0), "sop1")
    after = derive_states(AI, [entry(1, Action.REJECT, "high"), entry(2, Action.ADD, "new", label="mass", after=added),
                               entry(3, Action.DELETE, "mid"), entry(4, Action.ACCEPT, "low")])
    assert {fid: s.number for fid, s in after.items()} == {"high": 1, "mid": 2, "low": 3, "new": 4}


def test_undo_takes_the_entry_out_of_force_and_redo_puts_it_back():
    accepted = [entry(1, Action.ACCEPT, "high"), entry(2, Action.REJECT, "high")]
    assert derive_states(AI, accepted)["high"].state is State.REJECTED
    undone = accepted + [entry(3, Action.UNDO, "high", reverts="e2")]
    assert derive_states(AI, undone)["high"].state is State.ACCEPTED
    assert undone_ids(undone) == {"e2"}
    redone = undone + [entry(4, Action.REDO, "high", reverts="e3")]
    assert derive_states(AI, redone)["high"].state is State.REJECTED
    assert undone_ids(redone) == set()
    # history keeps every entry, the reverting ones too
    assert derive_states(AI, redone)["high"].history == ("e1", "e2", "e3", "e4")


def test_undoing_a_delete_brings_the_finding_back_and_undoing_an_add_removes_it():
    added = BoxGeometry(1, (5.0, 5.0, 15.0, 15.0), "sop1")
    entries = [entry(1, Action.DELETE, "mid"), entry(2, Action.ADD, "new", label="mass", after=added)]
    states = derive_states(AI, entries)
    assert not states["mid"].visible and states["new"].state is State.ADDED
    states = derive_states(AI, entries + [entry(3, Action.UNDO, "new", reverts="e2"),
                                          entry(4, Action.UNDO, "mid", reverts="e1")])
    assert "new" not in states and states["mid"].state is State.PENDING


def test_undo_and_redo_stacks_are_per_user_and_cleared_by_a_new_action_or_a_sign_off():
    entries = [entry(1, Action.ACCEPT, "high"), entry(2, Action.REJECT, "mid", user="other"),
               entry(3, Action.ACCEPT, "low")]
    assert undo_redo_targets(entries, "rad")[0].entry_id == "e3"
    assert undo_redo_targets(entries, "other")[0].entry_id == "e2"
    entries.append(entry(4, Action.UNDO, "low", reverts="e3"))
    undo, redo = undo_redo_targets(entries, "rad")
    assert undo.entry_id == "e1" and redo.entry_id == "e4"
    entries.append(entry(5, Action.REDO, "low", reverts="e4"))
    undo, redo = undo_redo_targets(entries, "rad")
    assert undo.entry_id == "e3" and redo is None
    entries += [entry(6, Action.UNDO, "low", reverts="e3"), entry(7, Action.REJECT, "high")]
    assert undo_redo_targets(entries, "rad") == (entries[-1], None)  # a new action drops the redo
    entries.append(entry(8, Action.SIGNOFF, "", details={"findings": []}))
    assert undo_redo_targets(entries, "rad") == (None, None)


def test_moving_a_decided_box_keeps_the_verdict_and_shows_the_edit():
    moved = BoxGeometry(3, (12.0, 12.0, 22.0, 22.0), "sop3")
    states = derive_states(AI, [entry(1, Action.REJECT, "high"), entry(2, Action.MOVE, "high", after=moved)])
    high = states["high"]
    assert high.state is State.REJECTED and high.box_edited and high.geometry == moved
    assert state_summary(high) == "rejected, box edited"
    pending_moved = derive_states(AI, [entry(1, Action.MOVE, "mid", after=moved)])["mid"]
    assert pending_moved.state is State.EDITED and state_summary(pending_moved) == "edited"


def test_a_sign_off_covers_its_run_until_a_reopen_names_it():
    findings = [{"finding_id": fid} for fid in ("high", "mid", "low")]
    signed = [entry(1, Action.ACCEPT, "high"), entry(2, Action.SIGNOFF, "", details={"findings": findings})]
    signoff = sign_off_of(signed, {"high", "mid", "low"})
    assert signoff.entry_id == "e2" and signoff.by == "rad"
    assert sign_off_of(signed, {"high", "other-run"}) is None  # another run of the series is not signed off
    reopened = signed + [entry(3, Action.REOPEN, "", user="rev", reverts="e2")]
    assert sign_off_of(reopened, {"high", "mid", "low"}) is None


def test_old_entries_keep_their_exact_plain_data():
    old = entry(1, Action.ACCEPT, "high")
    assert "reverts" not in old.to_dict() and "details" not in old.to_dict()
    new = entry(2, Action.UNDO, "high", reverts="e1")
    assert FeedbackEntry.from_dict(new.to_dict()) == new
