"""What a reader sees after closing and reopening the store (a new Store object on the same file) is exactly
what was saved: review states are derived from the stored entries only, and stored runs come back whole."""

from __future__ import annotations

import numpy as np
from store_helpers import FINDINGS, MODEL, SERIES, SOPS, STUDY

from workstation.core.audit import AuditEvent
from workstation.core.findings import InferenceResult
from workstation.core.review import State
from workstation.core.roles import Role
from workstation.services.review import ReviewService, ReviewSession, SeriesKey
from workstation.store.database import now_utc

KEY = SeriesKey(STUDY, SERIES, SOPS)


def snapshot(review: ReviewSession) -> tuple:
    every = {fid: review.state(fid) for fid in review._states}  # deleted ones too (not in states())
    return review.states(), review.counts(), every


def test_review_state_after_reopening_equals_the_state_before(open_store):
    store = open_store(Role.REVIEWER, "rita")
    result = InferenceResult(MODEL, "cpu", STUDY, SERIES, FINDINGS, np.zeros((1, 1, 1), np.uint8), 0.4, now_utc())
    ReviewService(store).record_run(result, AuditEvent("inference.run", now_utc(), {"model": str(MODEL)}, STUDY))
    review = ReviewSession(store, KEY, MODEL, FINDINGS)
    review.accept("a", comment="typical")
    review.comment("a", "follow up in 6 months")
    review.edit_box("b", (31.0, 31.0, 41.0, 41.0))  # move
    review.edit_box("b", (31.0, 31.0, 45.0, 47.0))  # resize
    review.relabel("b", "granuloma")
    review.delete("c", comment="artefact")
    added = review.add(7, (50, 50, 60, 60), "nodule")
    review.edit_box(added.finding_id, (52, 52, 62, 62))
    review.reject(added.finding_id)
    before = snapshot(review)
    assert before[1][State.ACCEPTED] == 1 and before[1][State.EDITED] == 1 and before[1][State.DELETED] == 1
    assert before[2][added.finding_id].state is State.REJECTED and before[2]["b"].label == "granuloma"
    store.close()

    reopened = open_store(Role.RADIOLOGIST, "carol")  # another user, a new Store object, the same file
    assert reopened is not store
    after = snapshot(ReviewSession(reopened, KEY, MODEL, FINDINGS))
    assert after == before
    (run,) = reopened.inference_runs(SERIES)
    assert run.findings == FINDINGS and run.model == MODEL and run.series_instance_uid == SERIES
    assert reopened.verify().ok


def test_a_review_of_another_model_version_does_not_see_these_entries(open_store):
    store = open_store()
    ReviewSession(store, KEY, MODEL, FINDINGS).reject("a")
    store.close()
    other = MODEL.__class__(MODEL.name, "2.0.0", "cd" * 32)
    fresh = [f.__class__(**{**f.__dict__, "finding_id": f"v2-{f.finding_id}"}) for f in FINDINGS]
    states = ReviewSession(open_store(), KEY, other, fresh).states()
    assert [s.state for s in states] == [State.PENDING] * 3


def test_a_runs_heatmap_comes_back_whole_and_is_append_only(open_store, db_path, backend):
    from store_helpers import raw_connect, raw_key

    heat = np.zeros((6, 40, 50), np.uint8)
    heat[2:4, 10:20, 5:30] = np.arange(25, dtype=np.uint8) * 10
    store = open_store(Role.REVIEWER, "rita")
    result = InferenceResult(MODEL, "cpu", STUDY, SERIES, FINDINGS, heat, 0.4, now_utc())
    run_id = store.record_inference(result, AuditEvent("inference.run", now_utc(), {"model": str(MODEL)}, STUDY))
    store.close()
    with open_store(Role.RADIOLOGIST, "carol") as again:
        back = again.heatmap(run_id)
        assert back.shape == heat.shape and np.array_equal(back, heat)
        assert again.heatmap("no-such-run") is None and again.verify().ok
    db = raw_connect(db_path, raw_key(backend))
    import pytest
    with pytest.raises(Exception, match="append-only"):
        db.execute("UPDATE heatmaps SET data = x'00'")
    db.close()
