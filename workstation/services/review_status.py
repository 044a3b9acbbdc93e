"""Where a study's AI review stands, without the UI: per series and run, each finding's state, who, comments,
the pending count and the sign-off (`workstation review status`, and the study browser's marks).

Read-only: it folds the stored entries exactly as the review session does, so
the command line and the window can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workstation.core.review import FindingState, SignOff
from workstation.services.review import ReviewSession, SeriesKey
from workstation.store.database import Store, StoredRun

FORMAT = "workstation.review-status/1"


@dataclass(frozen=True)
class RunReview:
    run: StoredRun
    states: list[FindingState]  # every finding, deleted ones too, by number
    signoff: SignOff | None

    @property
    def pending(self) -> int:
        return sum(s.pending for s in self.states)


def run_review(store: Store, run: StoredRun) -> RunReview:
    session = ReviewSession(store, SeriesKey(run.study_instance_uid, run.series_instance_uid, ()), run.model,
                            run.findings)
    return RunReview(run, session.all_states(), session.signoff)


def series_reviews(store: Store, series_instance_uid: str) -> list[RunReview]:
    """The series' runs, newest first (the newest is the one the viewer reopens)."""
    return [run_review(store, run) for run in store.inference_runs(series_instance_uid)]


def status_document(store: Store, series_uids: list[str], study_uid: str = "") -> dict[str, Any]:
    """The `workstation.review-status/1` document for the given series (or every series of `study_uid`)."""
    if study_uid:
        series_uids = list(dict.fromkeys(run.series_instance_uid for run in store.study_runs(study_uid)))
    series = []
    for uid in series_uids:
        reviews = series_reviews(store, uid)
        study = reviews[0].run.study_instance_uid if reviews else study_uid
        series.append({"study_instance_uid": study, "series_instance_uid": uid,
                       "runs": [_run_json(review) for review in reviews]})
    return {"format": FORMAT, "workstation_id": store.identity.workstation_id, "series": series}


def _run_json(review: RunReview) -> dict[str, Any]:
    run, signoff = review.run, review.signoff
    return {
        "run_id": run.run_id, "model": {"name": run.model.name, "version": run.model.version},
        "started_utc": run.started_utc, "device": run.device,
        "findings": [{
            "number": s.number, "finding_id": s.finding_id, "label": s.label, "score": s.score,
            "state": s.state.value, "box_edited": s.box_edited, "relabelled": s.relabelled,
            "slice": s.geometry.frame_index + 1, "by": s.by, "role": s.role, "at_utc": s.at_utc,
            "comments": list(s.comments),
        } for s in review.states],
        "total": sum(s.visible for s in review.states), "pending": review.pending,
        "signoff": {"by": signoff.by, "role": signoff.role, "at_utc": signoff.at_utc} if signoff else None,
    }


def status_text(document: dict[str, Any]) -> str:
    """The document for a person: one block per series and run."""
    lines: list[str] = []
    if not document["series"]:
        return "No AI runs stored for these series on this workstation."
    for series in document["series"]:
        lines.append(f"Series {series['series_instance_uid']} (study {series['study_instance_uid']})")
        if not series["runs"]:
            lines.append("  no AI run stored")
        for run in series["runs"]:
            signoff = run["signoff"]
            mark = (f"signed off by {signoff['by']} ({signoff['role']}) at {signoff['at_utc'][:16].replace('T', ' ')} UTC"
                    if signoff else "not signed off")
            lines.append(f"  {run['model']['name']} {run['model']['version']}, run {run['started_utc'][:16].replace('T', ' ')}"
                         f" UTC: {run['pending']} of {run['total']} pending, {mark}")
            for f in run["findings"]:
                score = "  -  " if f["score"] is None else f"{f['score']:.2f}"
                state = f["state"] + (", box edited" if f["box_edited"] and f["state"] != "edited" else "")
                who = f" by {f['by']} ({f['role']})" if f["by"] else ""
                lines.append(f"    #{f['number']:<3} {f['label']:<10} {score}  slice {f['slice']:<4} {state}{who}")
                lines += [f"         comment: {c}" for c in f["comments"]]
    return "\n".join(lines)
