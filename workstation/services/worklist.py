"""Use case "what to read first": every local study with its AI state, AI priority and review state.

AI priority per model: the highest calibrated score of the newest run of each series, and how many findings
reach the model's alert threshold (the site's `[alerts]` value when set - a site raises it for a noisy model
without a new model version - else the manifest's own threshold); the row says which was used. Studies with
alerts come first (most alerts' top score first), then by arrival, oldest first, as a reading room reads.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workstation.core.site import SiteConfig
from workstation.routing.rules import RoutingSettings, routing_settings
from workstation.services.review_status import run_review
from workstation.store.database import Store, StoredRun
from workstation.store.triage_queue import FAILED, NOT_APPLICABLE, QUEUED, RUNNING, Job, LocalStudy, TriageQueue

FORMAT = "workstation.worklist/1"
FILTERS = ("unread", "flagged", "today")

_manifest_thresholds: dict[tuple[str, str], float | None] = {}


@dataclass(frozen=True)
class ModelFlag:
    """One model's verdict on a study (over its series' newest runs)."""

    model: str
    version: str
    findings: int
    top_score: float | None
    alerts: int  # findings at or above the threshold
    threshold: float
    threshold_source: str  # "site threshold" or "model threshold"
    critical: tuple[str, ...] = ()  # labels of alert findings the site calls critical


@dataclass(frozen=True)
class Strongest:
    """Where the study opens: the series and slice of its highest-scoring finding."""

    series_instance_uid: str
    frame_index: int
    finding_id: str
    score: float
    box_px: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # pixel edges on its slice


@dataclass
class WorklistRow:
    study: LocalStudy
    ai_state: str
    flags: list[ModelFlag] = field(default_factory=list)
    review_state: str = "unread"
    strongest: Strongest | None = None
    jobs: list[Job] = field(default_factory=list)

    @property
    def alerts(self) -> int:
        return sum(f.alerts for f in self.flags)

    @property
    def flagged(self) -> bool:
        return self.alerts > 0

    @property
    def critical(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(label for f in self.flags for label in f.critical))

    @property
    def top_score(self) -> float | None:
        scores = [f.top_score for f in self.flags if f.top_score is not None]
        return max(scores) if scores else None

    @property
    def priority_text(self) -> str:
        if not self.flags:
            return ""
        parts = []
        for f in self.flags:
            top = "-" if f.top_score is None else f"{f.top_score:.2f}"
            critical = f", CRITICAL {', '.join(f.critical)}" if f.critical else ""
            parts.append(f"{f.model} {top}, {f.alerts} ≥ {f.threshold:.2f} ({f.threshold_source}){critical}")
        return "; ".join(parts)

    def sort_key(self) -> tuple:
        top = self.top_score or 0.0
        return (0 if self.critical else 1, 0 if self.flagged else 1, -top if self.flagged else 0, self.study.arrived_utc)


def model_priority(run: StoredRun, settings: RoutingSettings, models_root: Path | None = None) -> ModelFlag:
    threshold, source = alert_threshold(run.model.name, run.model.version, settings, models_root)
    scores = [f.score for f in run.findings if f.score is not None]
    wanted = settings.critical_labels.get(run.model.name, ())
    critical = tuple(dict.fromkeys(f.label for f in run.findings
                                   if f.score is not None and f.score >= threshold and f.label.lower() in wanted))
    return ModelFlag(run.model.name, run.model.version, len(run.findings), max(scores) if scores else None,
                     sum(1 for s in scores if s >= threshold), threshold, source, critical)


def alert_threshold(name: str, version: str, settings: RoutingSettings, models_root: Path | None = None) -> tuple[float, str]:
    """(threshold, which): the site's `[alerts]` value for the model, else the installed manifest's threshold."""
    if name in settings.alert_thresholds:
        return settings.alert_thresholds[name], "site threshold"
    key = (name, version)
    if key not in _manifest_thresholds:
        from workstation.inference.registry import load_manifests

        manifests, _ = load_manifests(models_root)
        match = [m for m in manifests if m.name == name and m.version == version] or [m for m in manifests if m.name == name]
        _manifest_thresholds[key] = match[0].threshold if match else None
    value = _manifest_thresholds[key]
    return (value, "model threshold") if value is not None else (0.5, "default 0.5: model not installed")


class WorklistService:
    def __init__(self, config: SiteConfig, store: Store, models_root: Path | None = None) -> None:
        self.settings = routing_settings(config)
        self.store = store
        self.queue = TriageQueue(store)
        self.models_root = models_root

    def note_opened(self, study_uid: str, *, patient_name: str = "", patient_id: str = "", study_date: str = "",
                    study_time: str = "", description: str = "", folder: str = "",
                    series: list[tuple[str, str, str, int]] = ()) -> None:
        """A study opened from disk joins the worklist (series: (uid, modality, description, instances))."""
        for uid, modality, text, count in series or [("", "", "", 0)]:
            self.queue.note_study(study_uid, patient_name=patient_name, patient_id=patient_id, study_date=study_date,
                                  study_time=study_time, description=description, source="opened", folder=folder,
                                  series_uid=uid, modality=modality, series_description=text, instances=count)

    def rows(self, filters: tuple[str, ...] = (), modality: str = "", today: dt.date | None = None) -> list[WorklistRow]:
        jobs: dict[str, list[Job]] = {}
        for job in self.queue.jobs():
            jobs.setdefault(job.study_instance_uid, []).append(job)
        rows = [self._row(study, jobs.get(study.study_instance_uid, [])) for study in self.queue.studies()]
        today_text = (today or dt.date.today()).strftime("%Y%m%d")
        if "unread" in filters:
            rows = [r for r in rows if r.review_state == "unread"]
        if "flagged" in filters:
            rows = [r for r in rows if r.flagged]
        if "today" in filters:
            rows = [r for r in rows if r.study.study_date == today_text or r.study.arrived_utc[:10].replace("-", "") == today_text]
        if modality:
            rows = [r for r in rows if modality.upper() in r.study.modalities.upper().split("\\")]
        return sorted(rows, key=WorklistRow.sort_key)

    def _row(self, study: LocalStudy, jobs: list[Job]) -> WorklistRow:
        flags: dict[tuple[str, str], list[ModelFlag]] = {}
        strongest: Strongest | None = None
        signoffs, touched, unsigned = [], False, False
        for series_uid in study.series:
            runs = self.store.inference_runs(series_uid)
            newest: dict[str, StoredRun] = {}
            for run in runs:  # newest first
                newest.setdefault(run.model.name, run)
            for run in newest.values():
                flags.setdefault((run.model.name, run.model.version), []).append(
                    model_priority(run, self.settings, self.models_root))
                for f in run.findings:
                    if f.score is not None and (strongest is None or f.score > strongest.score):
                        strongest = Strongest(series_uid, f.frame_index, f.finding_id, f.score, tuple(f.box_px))
                review = run_review(self.store, run)
                if review.signoff is not None:
                    signoffs.append(review.signoff)
                else:
                    unsigned = True
                if review.signoff is not None or any(s.by for s in review.states):
                    touched = True
        merged = [_merge(group) for group in flags.values()]
        if signoffs and not unsigned:
            last = max(signoffs, key=lambda s: s.at_utc)
            review_state = f"signed off by {last.by}"
        else:
            review_state = "in progress" if touched else "unread"
        return WorklistRow(study, _ai_state(jobs, bool(merged)), merged, review_state, strongest, jobs)

    def document(self, rows: list[WorklistRow]) -> dict[str, Any]:
        return {"format": FORMAT, "rows": [row_json(r) for r in rows]}


def _merge(group: list[ModelFlag]) -> ModelFlag:
    first = group[0]
    scores = [f.top_score for f in group if f.top_score is not None]
    return ModelFlag(first.model, first.version, sum(f.findings for f in group), max(scores) if scores else None,
                     sum(f.alerts for f in group), first.threshold, first.threshold_source,
                     tuple(dict.fromkeys(label for f in group for label in f.critical)))


def _ai_state(jobs: list[Job], has_runs: bool) -> str:
    """The study's AI state in a few words: running / queued first, then failures and refusals, then done."""
    if not jobs:
        return "done" if has_runs else "no AI run"
    running = [j for j in jobs if j.state == RUNNING]
    if running:
        return running[0].state_text
    if any(j.state == QUEUED for j in jobs):
        return "queued"
    newest: dict[tuple[str, str], Job] = {}
    for job in jobs:  # oldest first: the newest job per series and model wins
        newest[(job.series_instance_uid, job.model)] = job
    states = [j for j in newest.values()]
    failed = [j for j in states if j.state == FAILED]
    if failed:
        return failed[-1].state_text
    if any(j.state == "done" for j in states) or has_runs:
        return "done"
    refused = [j for j in states if j.state == NOT_APPLICABLE]
    if refused:
        return refused[-1].state_text
    return states[-1].state_text


def row_json(row: WorklistRow) -> dict[str, Any]:
    s = row.study
    return {
        "study_instance_uid": s.study_instance_uid, "patient_name": s.patient_name, "patient_id": s.patient_id,
        "study_date": s.study_date, "study_time": s.study_time, "modalities": [m for m in s.modalities.split("\\") if m],
        "description": s.description, "source": s.source, "arrived_utc": s.arrived_utc, "folder": s.folder,
        "ai_state": row.ai_state, "flagged": row.flagged, "alerts": row.alerts, "top_score": row.top_score,
        "critical": list(row.critical),
        "models": [{"name": f.model, "version": f.version, "findings": f.findings, "top_score": f.top_score,
                    "alerts": f.alerts, "threshold": f.threshold, "threshold_source": f.threshold_source,
                    "critical": list(f.critical)}
                   for f in row.flags],
        "review_state": row.review_state,
        "open_at": None if row.strongest is None else {
            "series_instance_uid": row.strongest.series_instance_uid, "frame_index": row.strongest.frame_index,
            "finding_id": row.strongest.finding_id, "score": row.strongest.score},
        "jobs": [{"job_id": j.job_id, "series_instance_uid": j.series_instance_uid, "model": j.model, "rule": j.rule,
                  "state": j.state, "state_text": j.state_text} for j in row.jobs],
    }


def rows_text(rows: list[WorklistRow]) -> str:
    if not rows:
        return "The worklist is empty."
    lines = []
    for r in rows:
        s = r.study
        mark = "!!" if r.critical else "! " if r.flagged else "  "
        lines.append(f"{mark}{s.study_date or '--------'}  {s.modalities or '-':<6} {s.patient_name or '-':<20.20} "
                     f"{s.description or '-':<28.28} AI: {r.ai_state:<18.70}  {r.priority_text or '-'}  [{r.review_state}]")
    return "\n".join(lines)
